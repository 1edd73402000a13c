//! The serde layout of the register, to build states its API cannot: the
//! layout itself, and the broken states validation rejects.

use crate::{at, dot};
use edge_crdt::codec::{self, DecodeError};
use edge_crdt::crdt::{
    CausalContext, Crdt, Dot, MvRegister, Payload, TooManySiblings, Versioned, MAX_MERGED_SIBLINGS,
};
use edge_crdt::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The serde layout of [`MvRegister`], to build states its API cannot.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RawRegister {
    pub values: BTreeMap<Dot, Versioned>,
    pub context: RawContext,
}

/// The serde layout of [`CausalContext`]: the version vector, and per node
/// the runs of dots above it, first counter to last.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawContext {
    pub vv: BTreeMap<NodeId, u64>,
    pub cloud: BTreeMap<NodeId, BTreeMap<u64, u64>>,
}

/// A register with `values` (dot, stamp), vector entries (node, n) and
/// runs (node, first, last).
fn raw(values: &[(Dot, u64)], vv: &[(u32, u64)], runs: &[(u32, u64, u64)]) -> RawRegister {
    let mut cloud: BTreeMap<NodeId, BTreeMap<u64, u64>> = BTreeMap::new();
    for (node, first, last) in runs {
        cloud
            .entry(NodeId(*node))
            .or_default()
            .insert(*first, *last);
    }
    RawRegister {
        values: values
            .iter()
            .map(|(d, stamp)| {
                (
                    *d,
                    Versioned {
                        payload: Payload::Bytes(vec![1]),
                        stamp: *stamp,
                    },
                )
            })
            .collect(),
        context: RawContext {
            vv: vv.iter().map(|(n, c)| (NodeId(*n), *c)).collect(),
            cloud,
        },
    }
}

pub fn decode_raw(r: &RawRegister) -> Result<MvRegister, DecodeError> {
    codec::decode_state::<MvRegister>(&codec::encode(r))
}

#[test]
fn the_raw_layout_matches() {
    let none = CausalContext::default();
    let mut reg = MvRegister::default();
    // Node 0's first dot is its stamp 1, then the next: a vector entry.
    reg.merge(&reg.write(at(NodeId(0), 1), &none, Payload::Text("x".into())));
    reg.merge(&reg.write(at(NodeId(0), 2), &none, Payload::Text("y".into())));
    // Node 1's are 6 and 7, a run; a delete that saw (1, 9) leaves a gap at 8.
    let mut other = MvRegister::default();
    other.merge(&other.write(at(NodeId(1), 6), &none, Payload::Bytes(vec![2])));
    other.merge(&other.write(at(NodeId(1), 8), &none, Payload::Bytes(vec![3])));
    reg.merge(&other);
    let mut gap = CausalContext::default();
    gap.insert(dot(1, 9));
    reg.merge(&reg.delete(&gap));
    let bytes = codec::encode(&reg);
    let back: RawRegister = codec::decode(&bytes, codec::MAX_STATE).unwrap();
    assert_eq!(codec::encode(&back), bytes);
    assert_eq!(
        back.values.keys().copied().collect::<Vec<_>>(),
        vec![dot(0, 1), dot(0, 2), dot(1, 6), dot(1, 7)]
    );
    assert_eq!(back.context.vv, BTreeMap::from([(NodeId(0), 2)]));
    assert_eq!(
        back.context.cloud,
        BTreeMap::from([(NodeId(1), BTreeMap::from([(6, 7), (9, 9)]))])
    );
    assert_eq!(decode_raw(&back), Ok(reg));
    // The same bytes, built by hand.
    let by_hand = RawRegister {
        values: back.values.clone(),
        context: raw(&[], &[(0, 2)], &[(1, 6, 7), (1, 9, 9)]).context,
    };
    assert_eq!(codec::encode(&by_hand), bytes);
    // Hand-built valid states are accepted.
    let ok = raw(&[(dot(0, 1), 1), (dot(2, 4), 9)], &[(0, 2)], &[(2, 4, 4)]);
    assert!(decode_raw(&ok).is_ok());
    let inside = raw(&[(dot(0, 5), 1)], &[], &[(0, 4, 6), (0, 8, 8)]);
    assert!(decode_raw(&inside).is_ok());
}

#[test]
fn validate_rejects_broken_states() {
    values_outside_the_context();
    contexts_that_are_not_compact();
    zero_counters_and_stamps();
    too_many_context_entries();
    too_many_merged_siblings();
}

/// Decoding `r` fails validation.
fn bad(r: RawRegister, why: &str) {
    let decoded = decode_raw(&r);
    assert!(
        matches!(decoded, Err(DecodeError::Invalid(_))),
        "{why}: {r:?} gave {decoded:?}"
    );
}

/// A value whose dot is outside the context.
fn values_outside_the_context() {
    bad(raw(&[(dot(0, 1), 1)], &[], &[]), "no context");
    bad(raw(&[(dot(0, 3), 1)], &[(0, 2)], &[]), "past the vector");
    bad(raw(&[(dot(0, 3), 1)], &[(0, 1)], &[(0, 4, 5)]), "in a gap");
    bad(raw(&[(dot(0, 7), 1)], &[], &[(0, 4, 6)]), "past a run");
    bad(raw(&[(dot(0, 3), 1)], &[], &[(0, 4, 6)]), "before a run");
    bad(raw(&[(dot(1, 1), 1)], &[(0, 1)], &[]), "another node");
    bad(
        raw(&[(dot(1, 4), 1)], &[], &[(0, 4, 4)]),
        "another node's run",
    );
}

/// A context that is not compact.
fn contexts_that_are_not_compact() {
    bad(
        raw(&[], &[(0, 1)], &[(0, 2, 2)]),
        "a cloud run closing the gap",
    );
    bad(
        raw(&[], &[(0, 1)], &[(0, 2, 5)]),
        "a longer cloud run closing the gap",
    );
    bad(
        raw(&[], &[(0, 3)], &[(0, 2, 2)]),
        "a cloud run under the vector",
    );
    bad(
        raw(&[], &[(0, 3)], &[(0, 2, 6)]),
        "a cloud run overlapping the vector",
    );
    bad(raw(&[], &[], &[(0, 1, 1)]), "a first dot in the cloud");
    bad(raw(&[], &[], &[(0, 1, 4)]), "a first run in the cloud");
    bad(raw(&[], &[], &[(0, 3, 4), (0, 5, 6)]), "adjacent runs");
    bad(raw(&[], &[], &[(0, 3, 5), (0, 4, 6)]), "overlapping runs");
    bad(raw(&[], &[], &[(0, 3, 8), (0, 4, 6)]), "a run inside a run");
    bad(
        raw(&[], &[], &[(0, 5, 3)]),
        "a run that ends before it starts",
    );
    let mut empty_runs = raw(&[], &[(0, 1)], &[]);
    empty_runs.context.cloud.insert(NodeId(1), BTreeMap::new());
    bad(empty_runs, "a node with no runs");
}

/// A zero counter: in the vector, in the cloud, or in a value's dot; and
/// timestamp 0.
fn zero_counters_and_stamps() {
    bad(raw(&[], &[(0, 0)], &[]), "a zero vector entry");
    bad(raw(&[], &[(0, 1)], &[(1, 0, 0)]), "a zero cloud dot");
    bad(raw(&[], &[(0, 1)], &[(1, 0, 3)]), "a cloud run from 0");
    bad(
        raw(&[(dot(0, 0), 1)], &[(0, 2)], &[]),
        "a value at counter 0",
    );
    bad(
        raw(&[(dot(0, 0), 1)], &[], &[]),
        "a value at counter 0, no context",
    );
    bad(raw(&[(dot(0, 1), 0)], &[(0, 1)], &[]), "stamp 0");
}

/// At most 4096 vector entries and runs in all.
fn too_many_context_entries() {
    let sized = |entries: u64| {
        let vv: Vec<(u32, u64)> = (0..8).map(|n| (n, 1)).collect();
        let runs: Vec<(u32, u64, u64)> = (0..entries - 8)
            .map(|i| (9, 3 + 2 * i, 3 + 2 * i))
            .collect();
        raw(&[], &vv, &runs)
    };
    assert!(decode_raw(&sized(4096)).is_ok());
    bad(sized(4097), "4097 entries");
}

/// Replicas that admit writes concurrently merge past MAX_SIBLINGS: a
/// remote state may carry up to MAX_MERGED_SIBLINGS, and no more.
fn too_many_merged_siblings() {
    let none = CausalContext::default();
    let mut reg = MvRegister::default();
    for i in 0..MAX_MERGED_SIBLINGS {
        let node = NodeId(i as u32);
        assert!(reg.merge(&MvRegister::default().write(
            at(node, 1),
            &none,
            Payload::Bytes(vec![])
        )));
    }
    assert_eq!(reg.siblings().count(), MAX_MERGED_SIBLINGS);
    assert_eq!(reg.validate(), Ok(()));
    assert_eq!(reg.admits(&none), Err(TooManySiblings(MAX_MERGED_SIBLINGS)));
    let one_more = reg.write(at(NodeId(0), 2), &none, Payload::Bytes(vec![]));
    reg.merge(&one_more);
    assert_eq!(reg.siblings().count(), MAX_MERGED_SIBLINGS + 1);
    assert!(reg.validate().is_err());
    assert!(matches!(
        codec::decode_state::<MvRegister>(&codec::encode(&reg)),
        Err(DecodeError::Invalid(_))
    ));
}
