use super::*;
use crate::engine::{Catalog, Config, Engine, MemoryStore, Message, ObjectId};
use crate::kinds::Call;
use std::collections::BTreeMap;

struct Books;

impl Catalog for Books {
    fn row_type(&self, prefix: &str) -> Option<&dyn RowType> {
        (prefix == "contacts").then_some(&BookRows as &dyn RowType)
    }
    fn prefixes(&self) -> Vec<&'static str> {
        vec!["contacts"]
    }
}

static BOOKS: Books = Books;

const NOW: u64 = 1_764_000_000_000;

fn engine() -> Engine<MemoryStore> {
    Engine::start(NodeId(0), Config::default(), &BOOKS, MemoryStore::default()).unwrap()
}

fn run(e: &mut Engine<MemoryStore>, op: Op) -> Result<Outcome, ApiError> {
    run_at(e, op, NOW)
}

/// Runs `op` at wall-clock time `now`.
fn run_at(e: &mut Engine<MemoryStore>, op: Op, now: u64) -> Result<Outcome, ApiError> {
    let object = Some(ObjectId::new("contacts", "book").unwrap());
    let out = Contacts::execute(
        op,
        &mut Call {
            engine: e,
            object,
            now,
        },
    );
    e.settle().unwrap();
    out
}

fn id(n: u32) -> ContactId {
    format!("00000000-0000-4000-8000-{n:012}").parse().unwrap()
}

fn client(n: u64) -> ClockId {
    ClockId::client(n)
}

fn delta(c: u64, seq: u64, contact: u32, column: Column, text: &str) -> Pushed {
    Pushed {
        id: id(contact),
        column,
        value: match column {
            Column::Tombstone => Value::Flag(text == "1"),
            _ => Value::Text(text.into()),
        },
        timestamp: HlcStamp {
            millis: NOW - 1_000 + seq,
            counter: 0,
            writer: client(c),
        },
        seq,
    }
}

fn push(
    e: &mut Engine<MemoryStore>,
    c: u64,
    deltas: Vec<Pushed>,
) -> Result<(u64, usize), ApiError> {
    match run(
        e,
        Op::Push {
            client: client(c),
            deltas,
            cursor: None,
        },
    )? {
        Outcome::Pushed { acked, applied, .. } => Ok((acked, applied)),
        other => panic!("{other:?}"),
    }
}

/// Pulls pages until none is left: the changes, the final cursor, and
/// whether any page was a snapshot.
fn pull(
    e: &mut Engine<MemoryStore>,
    mut cursor: Cursor,
    limit: usize,
) -> (Vec<Change>, Cursor, bool) {
    let (mut all, mut snap) = (Vec::new(), false);
    for _ in 0..1_000 {
        let Outcome::Changes {
            changes,
            cursor: next,
            snapshot,
            more,
            ..
        } = run(e, Op::Changes { cursor, limit }).unwrap()
        else {
            panic!("not changes")
        };
        all.extend(changes);
        snap |= snapshot;
        cursor = next;
        if !more {
            return (all, cursor, snap);
        }
    }
    panic!("the pages do not end")
}

/// A page of the live contacts' ids after `after`, and the next `after`.
fn list(
    e: &mut Engine<MemoryStore>,
    after: Option<ContactId>,
    limit: usize,
) -> (Vec<ContactId>, Option<ContactId>) {
    match run(e, Op::List { after, limit }).unwrap() {
        Outcome::Page(_, page, next) => (page.into_iter().map(|(i, _)| i).collect(), next),
        other => panic!("{other:?}"),
    }
}

fn name(e: &mut Engine<MemoryStore>, n: u32) -> Option<String> {
    match run(e, Op::Get(id(n))).unwrap() {
        Outcome::Contact(_, _, row) => row?.text(Column::Name).map(str::to_owned),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_retried_push_is_applied_once_and_a_gap_is_refused() {
    let mut e = engine();
    let first = vec![
        delta(1, 1, 1, Column::Name, "Bob"),
        delta(1, 2, 1, Column::Phone, "555"),
    ];
    assert_eq!(push(&mut e, 1, first.clone()), Ok((2, 2)));
    assert_eq!(
        push(&mut e, 1, first),
        Ok((2, 0)),
        "a retry changes nothing"
    );
    let overlapping = vec![
        delta(1, 2, 1, Column::Phone, "555"),
        delta(1, 3, 1, Column::Name, "Jim"),
    ];
    assert_eq!(push(&mut e, 1, overlapping), Ok((3, 1)));
    // Numbers out of order (pushed at another node first) are applied,
    // and acknowledged once the ones below them are.
    assert_eq!(
        push(&mut e, 1, vec![delta(1, 5, 1, Column::Name, "Ann")]),
        Ok((3, 1))
    );
    assert_eq!(
        push(&mut e, 1, vec![delta(1, 4, 2, Column::Name, "Cy")]),
        Ok((5, 1))
    );
    let far = push(
        &mut e,
        1,
        vec![delta(1, 5 + MAX_AHEAD + 1, 1, Column::Name, "x")],
    );
    assert_eq!(far.unwrap_err().error, ErrorCode::SequenceGap);
    assert_eq!(name(&mut e, 1).as_deref(), Some("Ann"));
    let (log, _, _) = pull(&mut e, Cursor::default(), 100);
    assert_eq!(log.len(), 3, "one change per column: {log:?}");
}

#[test]
fn bad_pushes_say_what_is_wrong_and_change_nothing() {
    let mut e = engine();
    let mut ahead = delta(1, 1, 1, Column::Name, "Bob");
    ahead.timestamp.millis = NOW + Config::default().max_drift_ms + 1;
    let cases = [
        (1, vec![], ErrorCode::BadBatch),
        (
            1,
            vec![
                delta(1, 2, 1, Column::Name, "x"),
                delta(1, 4, 1, Column::Name, "y"),
            ],
            ErrorCode::BadBatch,
        ),
        (
            1,
            vec![delta(1, 0, 1, Column::Name, "x")],
            ErrorCode::BadBatch,
        ),
        (
            1,
            vec![delta(2, 1, 1, Column::Name, "x")],
            ErrorCode::BadTimestamp,
        ),
        (1, vec![ahead], ErrorCode::BadTimestamp),
        (
            1,
            vec![delta(1, 1, 1, Column::Name, &"x".repeat(300))],
            ErrorCode::BadValue,
        ),
    ];
    for (c, deltas, code) in cases {
        assert_eq!(
            push(&mut e, c, deltas.clone()).unwrap_err().error,
            code,
            "{deltas:?}"
        );
    }
    let server = run(
        &mut e,
        Op::Push {
            client: ClockId(3),
            deltas: vec![],
            cursor: None,
        },
    )
    .unwrap_err();
    assert_eq!(server.error, ErrorCode::BadId);
    assert_eq!(
        pull(&mut e, Cursor::default(), 10).0,
        vec![],
        "nothing changed"
    );
}

#[test]
fn a_newcomer_gets_a_snapshot_then_the_tail_and_a_trimmed_cursor_a_snapshot() {
    let mut e = engine();
    // 20 contacts, each renamed 30 times: 620 deltas of history.
    let mut seq = 0;
    for round in 0..31 {
        let deltas: Vec<Pushed> = (0..20)
            .map(|n| {
                seq += 1;
                delta(1, seq, n, Column::Name, &format!("n{n}r{round}"))
            })
            .collect();
        push(&mut e, 1, deltas).unwrap();
    }
    let (changes, cursor, snapshot) = pull(&mut e, Cursor::default(), 7);
    assert!(snapshot);
    assert_eq!(
        changes.len(),
        20,
        "the latest value of each column, not the history"
    );
    assert!(changes
        .iter()
        .all(|c| matches!(&c.value, Value::Text(t) if t.ends_with("r30"))));
    // The tail: what follows the snapshot, and only that.
    push(
        &mut e,
        1,
        vec![delta(1, seq + 1, 3, Column::Email, "a@b.c")],
    )
    .unwrap();
    let (tail, cursor, snapshot) = pull(&mut e, cursor, 7);
    assert!(!snapshot);
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].column, Column::Email);
    // The log keeps its latest entries: an old cursor gets a snapshot.
    let old = Cursor {
        logs: NodeMap::from_iter([(NodeId(0), 5)]),
        snapshot: None,
    };
    let (changes, _, snapshot) = pull(&mut e, old, 50);
    assert!(snapshot && changes.len() == 21);
    let (none, same, _) = pull(&mut e, cursor.clone(), 7);
    assert!(none.is_empty() && same == cursor);
}

#[test]
fn deletes_are_soft_and_listing_skips_them() {
    let mut e = engine();
    let deltas = (0..5)
        .map(|n| delta(1, u64::from(n) + 1, n, Column::Name, "x"))
        .collect();
    push(&mut e, 1, deltas).unwrap();
    push(&mut e, 1, vec![delta(1, 6, 2, Column::Tombstone, "1")]).unwrap();
    let (page, next) = list(&mut e, None, 2);
    assert_eq!(page, [id(0), id(1)]);
    let (rest, end) = list(&mut e, next, 10);
    assert_eq!(rest, [id(3), id(4)]);
    assert_eq!(end, None);
    assert_eq!(
        name(&mut e, 2).as_deref(),
        Some("x"),
        "a deleted contact keeps its columns"
    );
}

/// The contacts a run of pulls gave.
fn replay(changes: &[Change]) -> BTreeMap<ContactId, ContactRow> {
    let mut rows: BTreeMap<ContactId, ContactRow> = BTreeMap::new();
    for ch in changes {
        let row = ContactRow::of(ch.column, ch.value.clone(), ch.timestamp).unwrap();
        rows.entry(ch.id.clone()).or_default().merge(&row);
    }
    rows
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    /// A reader that followed the whole log and a newcomer that got a
    /// snapshot of the trimmed log plus its tail hold the same book.
    #[test]
    fn snapshot_and_tail_equal_replaying_the_full_log(
        pushes in proptest::collection::vec(
            proptest::collection::vec((0..30u32, 0..3usize, 0..4u8), 1..40),
            1..40,
        ),
        snapshot_at in 0..40usize,
        limit in 1..50usize,
    ) {
        let mut e = engine();
        let (mut seq, mut follower, mut cursor) = (0, Vec::new(), Cursor::default());
        let mut newcomer = None;
        for (i, push_) in pushes.iter().enumerate() {
            let deltas = push_
                .iter()
                .map(|&(n, c, v)| {
                    seq += 1;
                    let column = [Column::Name, Column::Phone, Column::Email][c];
                    delta(1, seq, n, column, &format!("v{v}"))
                })
                .collect();
            push(&mut e, 1, deltas).unwrap();
            let (changes, next, _) = pull(&mut e, cursor, limit);
            follower.extend(changes);
            cursor = next;
            if i == snapshot_at.min(pushes.len() - 1) {
                newcomer = Some(pull(&mut e, Cursor::default(), limit));
            }
        }
        let (mut changes, late, snapshot) = newcomer.unwrap();
        proptest::prop_assert!(snapshot || changes.is_empty());
        changes.extend(pull(&mut e, late, limit).0);
        let full = replay(&follower);
        proptest::prop_assert_eq!(replay(&changes), full.clone());
        let Outcome::Page(_, page, _) = run(&mut e, Op::List { after: None, limit: 1_000 }).unwrap() else {
            panic!()
        };
        proptest::prop_assert_eq!(page.into_iter().collect::<BTreeMap<_, _>>(), full);
    }
}

/// Pushes with a cursor; the cursor that comes back.
fn push_with(e: &mut Engine<MemoryStore>, c: u64, deltas: Vec<Pushed>, cursor: Cursor) -> Cursor {
    let push = Op::Push {
        client: client(c),
        deltas,
        cursor: Some(cursor),
    };
    match run(e, push).unwrap() {
        Outcome::Pushed {
            cursor: Some(c), ..
        } => c,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_caught_up_cursor_skips_the_pushs_own_entries_and_no_others() {
    let mut e = engine();
    push(&mut e, 2, vec![delta(2, 1, 1, Column::Name, "Bob")]).unwrap();
    let (_, cursor, _) = pull(&mut e, Cursor::default(), 10);
    let cursor = push_with(
        &mut e,
        1,
        vec![delta(1, 1, 1, Column::Phone, "555")],
        cursor,
    );
    assert_eq!(
        pull(&mut e, cursor.clone(), 10).0,
        vec![],
        "its own change is not echoed"
    );
    // Another client's change came first: nothing is skipped.
    push(&mut e, 2, vec![delta(2, 2, 2, Column::Name, "Cy")]).unwrap();
    let cursor = push_with(
        &mut e,
        1,
        vec![delta(1, 2, 1, Column::Email, "a@b.c")],
        cursor,
    );
    let (changes, _, _) = pull(&mut e, cursor, 10);
    let columns: Vec<Column> = changes.iter().map(|c| c.column).collect();
    assert_eq!(columns, [Column::Name, Column::Email]);
}

#[test]
fn a_client_whose_clock_ran_ahead_keeps_its_outbox_through_the_422_and_recovers() {
    let mut e = engine();
    let drift = Config::default().max_drift_ms;
    let mut client = Replica::new(ClockId::client(5));
    let ahead = NOW + drift + 5_000;
    client
        .edit(&id(1), Column::Name, Value::Text("Early".into()), ahead)
        .unwrap();
    let try_push = |e: &mut Engine<MemoryStore>, client: &mut Replica, now: u64| {
        let batch = client.push(MAX_PUSH).unwrap();
        let op = Op::Push {
            client: batch.client,
            deltas: batch.deltas,
            cursor: None,
        };
        match run_at(e, op, now) {
            Ok(Outcome::Pushed { acked, .. }) => {
                client.acknowledged(acked, &batch.cursor, None);
                Ok(())
            }
            Ok(other) => panic!("{other:?}"),
            Err(err) => Err(err),
        }
    };
    let refused = try_push(&mut e, &mut client, NOW).unwrap_err();
    assert_eq!(
        (refused.status(), refused.error),
        (422, ErrorCode::BadTimestamp)
    );
    assert!(
        refused.message.contains("5000 ms ahead"),
        "{}",
        refused.message
    );
    assert_eq!(client.pending(), 1, "the outbox is kept");
    // Later edits queue behind it; once the server clock catches up, all go.
    client
        .edit(&id(1), Column::Phone, Value::Text("555".into()), NOW)
        .unwrap();
    assert!(try_push(&mut e, &mut client, NOW + 1_000).is_err());
    try_push(&mut e, &mut client, NOW + 5_000).unwrap();
    assert_eq!(client.pending(), 0);
    assert_eq!(name(&mut e, 1).as_deref(), Some("Early"));
}

#[test]
fn a_peer_row_stamped_past_the_clock_is_ahead_of_any_limit() {
    let stamp = HlcStamp {
        millis: u64::MAX,
        counter: 5,
        writer: ClockId::client(1),
    };
    let row = ContactRow::of(Column::Name, Value::Text("Eve".into()), stamp).unwrap();
    let bytes = postcard::to_allocvec(&BookRow::contact(row)).unwrap();
    assert_eq!(
        BookRows.merge(None, &bytes, crate::crdt::Hlc::stamp_of(NOW)),
        Err(RowError::Ahead(u64::MAX))
    );
}

#[test]
fn a_push_after_a_peer_acknowledged_the_last_numbers_overflows_nothing() {
    // Found by fuzzing peer frames: a client row acknowledged up to the
    // last numbers made the next push's `upto + MAX_AHEAD` overflow.
    let mut e = engine();
    let row = postcard::to_allocvec(&BookRow::applied(1, u64::MAX - 1)).unwrap();
    let book = ObjectId::new("contacts", "book").unwrap();
    let rows = vec![(book, vec![(BookRow::client_key(client(1)), row)])];
    let gossip = Message::Gossip {
        members: None,
        rows,
        want: Vec::new(),
    };
    e.receive(NodeId(1), gossip, NOW).unwrap();
    let pushed = push(&mut e, 1, vec![delta(1, 1, 1, Column::Name, "Bob")]);
    assert_eq!(pushed, Ok((u64::MAX - 1, 0)), "every number was applied");
}
