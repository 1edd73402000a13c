//! Laws of the address books' data types: a contact row's merge is a join
//! (commutative, associative, idempotent); merging deltas in any order
//! equals merging the states they make up, and a row is the join of its
//! columns (its delta interval); a contact clock's stamps increase strictly
//! and pass every stamp it observed, and a stamp past the drift bound is
//! refused without moving the clock; a contact's flattened cells hold
//! exactly its row.
#![cfg(not(target_arch = "wasm32"))]

use edge_crdt::crdt::contacts::{
    BookRow, ClockId, Column, ContactClock, ContactRow, HlcStamp, StampError, Value,
};
use edge_crdt::crdt::Crdt;
use edge_crdt::engine::{Cell, Flat, RowType};
use edge_crdt::kinds::contacts::{contact_of_cells, BookRows, CONTACT_TABLE};
use proptest::collection::vec;
use proptest::prelude::*;

/// A stamp from few writers and times, so ties and equal stamps happen.
fn stamp() -> impl Strategy<Value = HlcStamp> {
    (1..6u64, 0..3u16, 0..3u64).prop_map(|(millis, counter, w)| HlcStamp {
        millis,
        counter,
        writer: ClockId::client(w),
    })
}

/// One column's write, from few values.
fn delta() -> impl Strategy<Value = ContactRow> {
    let column = prop::sample::select(Column::ALL.to_vec());
    (column, stamp(), 0..3u8, any::<bool>()).prop_map(|(column, stamp, v, flag)| {
        let value = match column {
            Column::Tombstone => Value::Flag(flag),
            _ => Value::Text(format!("v{v}")),
        };
        ContactRow::of(column, value, stamp).expect("fits")
    })
}

fn row() -> impl Strategy<Value = ContactRow> {
    vec(delta(), 0..6).prop_map(|deltas| join(&deltas))
}

fn join(rows: &[ContactRow]) -> ContactRow {
    let mut out = ContactRow::default();
    for r in rows {
        out.merge(r);
    }
    out
}

fn merged(a: &ContactRow, b: &ContactRow) -> ContactRow {
    let mut out = a.clone();
    out.merge(b);
    out
}

proptest! {
    #[test]
    fn row_merge_is_a_join(a in row(), b in row(), c in row()) {
        prop_assert_eq!(merged(&a, &b), merged(&b, &a));
        prop_assert_eq!(merged(&merged(&a, &b), &c), merged(&a, &merged(&b, &c)));
        let mut same = a.clone();
        prop_assert!(!same.merge(&a), "merging itself changes nothing");
        prop_assert_eq!(same, a);
    }

    #[test]
    fn merge_reports_change_exactly(a in row(), b in row()) {
        let mut m = a.clone();
        let changed = m.merge(&b);
        prop_assert_eq!(changed, m != a);
    }

    #[test]
    fn deltas_in_any_order_equal_their_states(
        deltas in vec(delta(), 1..12),
        order in Just(()).prop_perturb(|_, mut rng| rng.random::<u64>()),
        split in 0..12usize,
    ) {
        // A permutation of the deltas, seeded by `order`.
        let mut shuffled = deltas.clone();
        let mut state = order;
        for i in (1..shuffled.len()).rev() {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (state >> 33) as usize % (i + 1));
        }
        prop_assert_eq!(join(&deltas), join(&shuffled));
        // Two replicas each joined part of them; their states merge to the same.
        let cut = split.min(deltas.len());
        let (left, right) = deltas.split_at(cut);
        prop_assert_eq!(merged(&join(left), &join(right)), join(&deltas));
    }

    #[test]
    fn a_row_is_the_join_of_its_columns(r in row()) {
        let columns: Vec<ContactRow> = r
            .columns()
            .map(|(c, f)| ContactRow::of(c, f.value.clone(), f.stamp).expect("fits"))
            .collect();
        prop_assert_eq!(join(&columns), r.clone());
        prop_assert!(r.validate().is_ok());
        let bytes = postcard::to_allocvec(&r).unwrap();
        prop_assert_eq!(postcard::from_bytes::<ContactRow>(&bytes).unwrap(), r);
    }
}

/// One input to a clock: a wall step and a stamp, or an observed stamp.
#[derive(Clone, Debug)]
enum Tick {
    Now { step: i64 },
    Observe { ahead: i64, counter: u16 },
}

fn tick() -> impl Strategy<Value = Tick> {
    prop_oneof![
        4 => prop_oneof![Just(0i64), 1..3i64, -3..0i64, -2_000..2_000i64]
            .prop_map(|step| Tick::Now { step }),
        1 => (-5..80i64, any::<u16>()).prop_map(|(ahead, counter)| Tick::Observe { ahead, counter }),
    ]
}

const DRIFT_MS: u64 = 50;

proptest! {
    #[test]
    fn clock_stamps_increase_and_pass_what_they_observed(ticks in vec(tick(), 1..200)) {
        let me = ClockId::client(1);
        let mut clock = ContactClock::new(me);
        let mut wall = 1_000_000u64;
        let mut last: Option<HlcStamp> = None;
        for t in ticks {
            match t {
                Tick::Now { step } => {
                    wall = wall.saturating_add_signed(step).max(1);
                    let before = clock.last();
                    match clock.now(wall) {
                        Ok(s) => {
                            prop_assert!(last.is_none_or(|l| s > l), "{s} after {last:?}");
                            prop_assert!(s.millis >= wall && s.writer == me);
                            last = Some(s);
                        }
                        Err(e) => {
                            prop_assert_eq!(e, StampError::CounterOverflow);
                            prop_assert_eq!(clock.last(), before, "a refused stamp moves nothing");
                        }
                    }
                }
                Tick::Observe { ahead, counter } => {
                    let remote = HlcStamp {
                        millis: wall.saturating_add_signed(ahead).max(1),
                        counter,
                        writer: ClockId::client(2),
                    };
                    let before = clock.last();
                    match clock.observe(remote, wall, DRIFT_MS) {
                        Ok(()) => {
                            prop_assert!(ahead <= DRIFT_MS as i64);
                            let (l, r) = (clock.last(), remote);
                            prop_assert!((l.millis, l.counter) >= (r.millis, r.counter));
                            if let Ok(next) = clock.now(wall) {
                                prop_assert!((next.millis, next.counter) > (r.millis, r.counter));
                                last = Some(next);
                            }
                        }
                        Err(e) => {
                            prop_assert!(ahead > DRIFT_MS as i64);
                            let by_ms = ahead as u64;
                            prop_assert_eq!(e, StampError::Ahead { by_ms, max_drift_ms: DRIFT_MS });
                            prop_assert_eq!(clock.last(), before);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn stamps_round_trip_as_text(millis in 1..(1u64 << 50), counter in any::<u16>(), w in any::<u64>()) {
        let s = HlcStamp { millis, counter, writer: ClockId(w) };
        prop_assert_eq!(s.to_string().parse::<HlcStamp>(), Ok(s));
        let json = serde_json::to_string(&s).unwrap();
        prop_assert_eq!(serde_json::from_str::<HlcStamp>(&json).unwrap(), s);
    }
}

/// A book row: a contact, or a client's applied numbers in a few ranges.
fn book_row() -> impl Strategy<Value = BookRow> {
    prop_oneof![
        row().prop_map(BookRow::contact),
        vec((1..40u64, 0..4u64), 1..5).prop_map(|ranges| {
            let mut r = BookRow::default();
            for (first, len) in ranges {
                r.merge(&BookRow::applied(first, first + len));
            }
            r
        }),
    ]
}

proptest! {
    #[test]
    fn book_row_merge_is_a_join(a in book_row(), b in book_row(), c in book_row()) {
        let m = |x: &BookRow, y: &BookRow| { let mut z = x.clone(); z.merge(y); z };
        prop_assert_eq!(m(&a, &b), m(&b, &a));
        prop_assert_eq!(m(&m(&a, &b), &c), m(&a, &m(&b, &c)));
        prop_assert_eq!(m(&a, &a), a.clone());
        prop_assert!(m(&a, &b).validate().is_ok());
    }

    #[test]
    fn applied_numbers_are_exactly_the_ranges_joined(ranges in vec((1..60u64, 0..5u64), 1..12)) {
        let mut r = BookRow::default();
        let mut want = std::collections::BTreeSet::new();
        for (first, len) in ranges {
            r.merge(&BookRow::applied(first, first + len));
            want.extend(first..=first + len);
        }
        for seq in 1..70 {
            prop_assert_eq!(r.applied.has(seq), want.contains(&seq), "{}", seq);
        }
        let upto = (1..).find(|s| !want.contains(s)).unwrap() - 1;
        prop_assert_eq!(r.applied.upto(), upto);
    }
}

proptest! {
    /// A contact stored flattened reads back as the same bytes: the nodes'
    /// digests of a row stay those of what they merged.
    #[test]
    fn a_contact_stored_as_cells_reads_back_byte_for_byte(r in row()) {
        let book = BookRows;
        let state = postcard::to_allocvec(&BookRow::contact(r.clone())).unwrap();
        let cells = book.cells(&state).unwrap();
        prop_assert_eq!(cells.len(), CONTACT_TABLE.columns.len());
        for (column, pair) in Column::ALL.into_iter().zip(cells.chunks(2)) {
            let stamp = r.field(column).map(|f| f.stamp.to_string());
            prop_assert_eq!(pair[1].as_text(), stamp.as_deref());
        }
        prop_assert_eq!(book.state(&cells).unwrap(), state);
    }
}

#[test]
fn cells_that_are_not_a_contact_are_refused() {
    let ts = Cell::Text("1700000000000-0000-0000000100000000".into());
    let mut cells = vec![Cell::Null; 8];
    cells[0] = Cell::Text("Ada".into());
    cells[1] = ts.clone();
    assert_eq!(
        contact_of_cells(&cells).unwrap().text(Column::Name),
        Some("Ada")
    );
    let bad = |i: usize, cell: Cell| {
        let mut c = cells.clone();
        c[i] = cell;
        contact_of_cells(&c).unwrap_err().0
    };
    assert!(bad(0, Cell::Int(3)).contains("`name`"));
    assert!(bad(1, Cell::Text("yesterday".into())).contains("`name_ts`"));
    assert!(bad(1, Cell::Int(5)).contains("`name_ts`"));
    assert!(bad(0, Cell::Text("x".repeat(300))).contains("at most"));
    assert!(contact_of_cells(&cells[..7]).is_err());
    let applied = postcard::to_allocvec(&BookRow::applied(1, 2)).unwrap();
    assert!(
        BookRows.cells(&applied).is_err(),
        "a contact key never holds push numbers"
    );
    let client = BookRow::client_key(ClockId::client(7));
    let contact =
        postcard::to_allocvec(&BookRow::contact(contact_of_cells(&cells).unwrap())).unwrap();
    let uuid = "00000000-0000-4000-8000-000000000001";
    assert!(BookRows.check(uuid, &contact).is_ok() && BookRows.check(&client, &applied).is_ok());
    assert!(
        BookRows.check(&client, &contact).is_err(),
        "a contact under a client's key"
    );
    assert!(
        BookRows.check(uuid, &applied).is_err(),
        "push numbers under a contact's key"
    );
    assert!(BookRows.check("not-a-uuid", &contact).is_err());
    assert!(BookRows.holds(uuid));
    assert!(!BookRows.holds(&BookRow::client_key(ClockId::client(7))));
}
