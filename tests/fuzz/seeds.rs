//! Real values, made by the types' own mutators, whose encodings seed the
//! targets: counters with decrements and retirements, sets of each bias,
//! registers with siblings and contexts, contacts, a client's replica, and
//! linked stream events.

use edge_crdt::crdt::contacts::{
    BookRow, ClockId, Column, ContactClock, ContactId, ContactRow, HlcStamp, Value,
};
use edge_crdt::crdt::stream::{block_id, Cid, Event};
use edge_crdt::crdt::{
    Bias, CausalContext, Crdt, Element, Hlc, LwwSet, MvRegister, Payload, PnCounter, Stamp,
};
use edge_crdt::kinds::contacts::{Change, Cursor, Pushed, Replica, Snapshot};
use edge_crdt::{NodeId, NodeMap};

/// The wall clock of every seed and check, ms.
pub const NOW_MS: u64 = 1_700_000_000_000;

/// A stamp `ago_ms` before [`NOW_MS`].
pub fn stamp_ago(ago_ms: u64) -> u64 {
    Hlc::stamp_of(NOW_MS - ago_ms)
}

fn step(c: &mut PnCounter, node: u32, by: i64) {
    let delta = c.add(NodeId(node), by).expect("a step in range");
    c.merge(&delta);
}

/// Counters: empty, one node, many, with decrements, with retired nodes.
pub fn counters() -> Vec<PnCounter> {
    let mut out = vec![PnCounter::default()];
    let mut c = PnCounter::default();
    step(&mut c, 0, 1);
    out.push(c.clone());
    for node in 1..70 {
        step(&mut c, node, i64::from(node) * 1_000 - 3);
        if node % 3 == 0 {
            step(&mut c, node, -7);
        }
    }
    out.push(c.clone());
    for (retired, heir) in [(5, 0), (6, 1), (7, 1), (40, 2)] {
        if let Some(delta) = c.absorb(NodeId(retired), NodeId(heir)) {
            c.merge(&delta);
        }
    }
    assert!(!c.retired().is_empty(), "a counter with retired nodes");
    out.push(c);
    let mut big = PnCounter::default();
    step(&mut big, u32::MAX - 1, i64::MAX);
    step(&mut big, 3, -1_000_000);
    out.push(big);
    out
}

/// Elements of every kind.
pub fn elements() -> Vec<Element> {
    let json = serde_json::json!([
        "apple",
        "",
        "ünïcödé ✓",
        3,
        -0.5,
        1e300,
        true,
        false,
        12345678901234567890u64
    ]);
    json.as_array()
        .unwrap()
        .iter()
        .map(|v| Element::from_json(v).expect("a scalar"))
        .collect()
}

/// Sets of each bias, with adds and removes.
pub fn sets() -> Vec<LwwSet> {
    let mut out = vec![LwwSet::default()];
    for (i, bias) in [Bias::AddWins, Bias::RemoveWins].into_iter().enumerate() {
        let mut s = LwwSet::new(bias, stamp_ago(10_000));
        s.merge(&s.insert(elements(), stamp_ago(5_000 + i as u64)));
        s.merge(&s.remove(elements().into_iter().take(3), stamp_ago(4_000)));
        out.push(s);
    }
    out
}

/// A write of `payload` at `node`, `ago_ms` before now, over `seen`.
pub fn write(
    r: &MvRegister,
    node: u32,
    ago_ms: u64,
    seen: &CausalContext,
    payload: Payload,
) -> MvRegister {
    let at = Stamp {
        node: NodeId(node),
        time: stamp_ago(ago_ms),
        holds_own_writes: true,
    };
    let mut next = r.clone();
    next.merge(&r.write(at, seen, payload));
    next
}

/// Registers: one value, concurrent siblings, bytes, overwritten, deleted.
pub fn registers() -> Vec<MvRegister> {
    let none = CausalContext::default();
    let one = write(
        &MvRegister::default(),
        0,
        900,
        &none,
        Payload::Text("hello".into()),
    );
    let mut two = write(&one, 1, 800, &none, Payload::Bytes(vec![0, 1, 2, 255]));
    two = write(&two, 2, 700, &none, Payload::Text(String::new()));
    let over = write(&two, 3, 600, two.context(), Payload::Text("ünïcödé".into()));
    let mut deleted = over.clone();
    deleted.merge(&over.delete(over.context()));
    vec![MvRegister::default(), one, two, over, deleted]
}

/// Causal contexts of those registers.
pub fn contexts() -> Vec<CausalContext> {
    registers().iter().map(|r| r.context().clone()).collect()
}

/// A contact id.
pub fn contact_id(n: u32) -> ContactId {
    format!("123e4567-e89b-42d3-a456-{n:012}")
        .parse()
        .expect("a UUID")
}

/// A client's stamp `ago_ms` before now.
pub fn contact_stamp(ago_ms: u64, counter: u16, client: u64) -> HlcStamp {
    HlcStamp {
        millis: NOW_MS - ago_ms,
        counter,
        writer: ClockId::client(client),
    }
}

/// Deltas a client pushes, numbered from 1.
pub fn pushed(client: u64) -> Vec<Pushed> {
    let writes = [
        (Column::Name, Value::Text("Bob".into())),
        (Column::Phone, Value::Text("+1 555 0100".into())),
        (Column::Email, Value::Text("bob@example.com".into())),
        (Column::Tombstone, Value::Flag(true)),
    ];
    writes
        .into_iter()
        .enumerate()
        .map(|(i, (column, value))| Pushed {
            id: contact_id(i as u32 % 2),
            column,
            value,
            timestamp: contact_stamp(100 - i as u64, i as u16, client),
            seq: i as u64 + 1,
        })
        .collect()
}

/// Contact rows, and the book rows of a contact and of a client.
pub fn book_rows() -> Vec<(String, BookRow)> {
    let mut row = ContactRow::default();
    for p in pushed(7) {
        let one = ContactRow::of(p.column, p.value, p.timestamp).expect("a value that fits");
        row.merge(&one);
    }
    vec![
        (contact_id(0).as_str().to_owned(), BookRow::contact(row)),
        (
            BookRow::client_key(ClockId::client(7)),
            BookRow::applied(1, 4),
        ),
    ]
}

/// Pull cursors: the start, a few nodes' logs, a snapshot under way.
pub fn cursors() -> Vec<Cursor> {
    let logs: NodeMap<u64> = NodeMap::from_iter([(NodeId(0), 4), (NodeId(3), u64::MAX)]);
    vec![
        Cursor::default(),
        Cursor {
            logs: logs.clone(),
            snapshot: None,
        },
        Cursor {
            logs,
            snapshot: Some(Snapshot {
                node: NodeId(1),
                at: 12,
                after: contact_id(3),
            }),
        },
    ]
}

/// Changes a pull returns.
pub fn changes() -> Vec<Change> {
    pushed(9)
        .into_iter()
        .map(|p| Change {
            id: p.id,
            column: p.column,
            value: p.value,
            timestamp: p.timestamp,
        })
        .collect()
}

/// A client's replica: new, with edits waiting, after a push and a pull.
pub fn replicas() -> Vec<Replica> {
    let fresh = Replica::new(ClockId::client(7));
    let mut edited = fresh.clone();
    for (i, p) in pushed(7).into_iter().enumerate() {
        edited
            .edit(&p.id, p.column, p.value, NOW_MS + i as u64)
            .expect("an edit");
    }
    let mut synced = edited.clone();
    let push = synced.push(2).expect("edits to push");
    synced.acknowledged(2, &push.cursor, Some(cursors()[2].clone()));
    synced.pulled(changes(), cursors()[1].clone());
    let resumed = Replica::from_parts(
        ContactClock::resume(contact_stamp(0, 9, 7)),
        synced.rows().clone(),
        synced.outbox().to_vec(),
        synced.next_seq(),
        synced.cursor().clone(),
    );
    vec![fresh, edited, synced, resumed]
}

/// The topic of the stream seeds.
pub const TOPIC: &str = "chat";

/// A topic's events, each linking the one before (and the third two), as
/// (id, block).
pub fn events() -> Vec<(Cid, Vec<u8>)> {
    let mut out: Vec<(Cid, Vec<u8>)> = Vec::new();
    let messages: [&[u8]; 4] = [b"hello", b"", "ünïcödé".as_bytes(), &[0, 255, 10]];
    for (i, message) in messages.into_iter().enumerate() {
        let links = match i {
            0 => vec![],
            2 => vec![out[0].0, out[1].0],
            _ => vec![out[i - 1].0],
        };
        let at = (NOW_MS - 1_000 + i as u64) * 1_000_000;
        let block = Event::new(TOPIC, at, message.to_vec(), links).encode();
        out.push((block_id(&block), block));
    }
    out
}
