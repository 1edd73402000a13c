//! Writes by hand: what a stale write keeps, and the dots and context
//! entries of many consecutive writes.

use crate::oracle::sibling_dots;
use crate::raw::RawContext;
use crate::{at, dot};
use edge_crdt::codec;
use edge_crdt::crdt::{CausalContext, Crdt, Hlc, MvRegister, Payload};
use edge_crdt::NodeId;
use std::collections::{BTreeMap, BTreeSet};

#[test]
fn a_stale_write_keeps_what_arrived_after_its_read() {
    let none = CausalContext::default();
    let mut a = MvRegister::default();
    a.merge(&a.write(at(NodeId(0), 1), &none, Payload::Text("a".into())));
    let read = a.context().clone();
    let mut b = MvRegister::default();
    b.merge(&b.write(at(NodeId(1), 2), &none, Payload::Text("b".into())));
    a.merge(&b);
    a.merge(&a.write(at(NodeId(0), 3), &read, Payload::Text("c".into())));
    assert!(
        !a.context().contains(dot(1, 1)),
        "b's first write covers nothing below its dot"
    );
    // b's first dot is its stamp; a's second write continues after a's first.
    assert_eq!(sibling_dots(&a), BTreeSet::from([dot(0, 2), dot(1, 2)]));
    assert_eq!(
        a.resolve().map(|v| &v.payload),
        Some(&Payload::Text("c".into()))
    );
    // Equal stamps: the greater dot wins.
    let mut c = MvRegister::default();
    c.merge(&c.write(at(NodeId(2), 3), &none, Payload::Text("d".into())));
    a.merge(&c);
    assert_eq!(
        a.resolve().map(|v| &v.payload),
        Some(&Payload::Text("d".into()))
    );
}

#[test]
fn consecutive_writes_keep_one_context_entry_per_node() {
    let (a, first_a, first_b) = two_writers_exchanging_now_and_then();
    let want = RawContext {
        vv: BTreeMap::new(),
        cloud: BTreeMap::from([
            (NodeId(0), BTreeMap::from([(first_a, first_a + 999)])),
            (NodeId(1), BTreeMap::from([(first_b, first_b + 999)])),
        ]),
    };
    let got: RawContext = codec::decode(&codec::encode(a.context()), codec::MAX_STATE).unwrap();
    assert_eq!(got, want, "one run per node");
    // The version byte, two lengths, and per node its id, a length and a
    // run's two counters (3 bytes each at these stamps).
    assert!(
        codec::encode(a.context()).len() <= 20,
        "a context of two runs stays small: {:?}",
        codec::encode(a.context())
    );
    assert_eq!(a.context().next_dot(NodeId(0)).counter, first_a + 1_000);
    // A node whose first dot is 1 keeps one vector entry instead.
    let mut c = MvRegister::default();
    for stamp in 1..=1_000 {
        let seen = c.context().clone();
        c.merge(&c.write(at(NodeId(2), stamp), &seen, Payload::Bytes(vec![])));
    }
    let got: RawContext = codec::decode(&codec::encode(c.context()), codec::MAX_STATE).unwrap();
    assert_eq!(
        got,
        RawContext {
            vv: BTreeMap::from([(NodeId(2), 1_000)]),
            cloud: BTreeMap::new(),
        }
    );
}

/// Node 0 writes 1,000 times at its replica, half of them with a stale
/// read, and node 1 writes at its own; the replicas exchange states now
/// and then. Each node's dots form one run from its first stamp. Returns
/// the two replicas merged, and each node's first stamp.
fn two_writers_exchanging_now_and_then() -> (MvRegister, u64, u64) {
    let mut clocks = [Hlc::default(); 2];
    let mut a = MvRegister::default();
    let mut b = MvRegister::default();
    let mut stale = a.context().clone();
    let (mut first_a, mut first_b) = (None, None);
    for i in 0..1_000u64 {
        let wall = 1_000 + i / 3;
        let seen = if i % 2 == 0 {
            a.context().clone()
        } else {
            stale.clone()
        };
        if i % 10 == 0 {
            stale = a.context().clone();
        }
        let stamp = clocks[0].now(wall);
        first_a.get_or_insert(stamp);
        a.merge(&a.write(
            at(NodeId(0), stamp),
            &seen,
            Payload::Bytes(i.to_le_bytes().to_vec()),
        ));
        let stamp = clocks[1].now(wall);
        first_b.get_or_insert(stamp);
        let seen = b.context().clone();
        b.merge(&b.write(at(NodeId(1), stamp), &seen, Payload::Bytes(vec![1])));
        if i % 100 == 99 {
            a.merge(&b);
            b.merge(&a);
            clocks[0].observe(a.latest_stamp().unwrap());
            clocks[1].observe(b.latest_stamp().unwrap());
        }
        assert!(
            a.siblings().count() <= 12,
            "{i}: {} siblings",
            a.siblings().count()
        );
    }
    a.merge(&b);
    assert_eq!(a.validate(), Ok(()));
    (a, first_a.unwrap(), first_b.unwrap())
}
