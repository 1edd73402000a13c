//! The hybrid logical clock: stamps that only move forward, and the drift
//! window its check accepts.

use edge_crdt::crdt::{Hlc, StampError, COUNTER_BITS};
use proptest::collection::vec;
use proptest::prelude::*;

/// A wall clock that stalls, steps back and jumps ahead, from a realistic
/// start (milliseconds up to the year 2248, where stamps reach 2^53).
#[derive(Clone, Debug)]
enum ClockOp {
    Now(i64),
    Observe(i64),
}

fn clock_ops() -> impl Strategy<Value = (u64, Vec<ClockOp>)> {
    let step = prop_oneof![
        3 => Just(0i64),
        3 => -5..5i64,
        1 => -100_000..100_000i64,
    ];
    let observed = prop_oneof![-3_000..3_000i64, -(1 << 20)..(1i64 << 20)];
    let op = prop_oneof![
        4 => step.prop_map(ClockOp::Now),
        1 => observed.prop_map(ClockOp::Observe),
    ];
    (0..(1u64 << 42), vec(op, 1..100))
}

proptest! {
    #![proptest_config(crate::config())]

    #[test]
    fn prop_hlc_now_strictly_increases((start, ops) in clock_ops()) {
        let mut clock = Hlc::default();
        let mut wall = start;
        let mut last = 0u64;
        let mut observed = 0u64;
        for op in ops {
            match op {
                ClockOp::Now(step) => {
                    wall = wall.saturating_add_signed(step);
                    let before = clock.last();
                    let t = clock.now(wall);
                    prop_assert!(t > last, "{t} after {last}");
                    prop_assert!(t > observed, "{t} not after observed {observed}");
                    prop_assert!(t >= Hlc::stamp_of(wall), "behind the wall clock");
                    if Hlc::stamp_of(wall) > before {
                        prop_assert_eq!(t, Hlc::stamp_of(wall), "a clock ahead of every stamp reads the wall");
                        prop_assert_eq!(Hlc::millis(t), wall);
                    } else {
                        prop_assert_eq!(t, before + 1, "a stalled clock counts on");
                    }
                    prop_assert_eq!(clock.last(), t);
                    last = t;
                }
                ClockOp::Observe(offset) => {
                    let stamp = Hlc::stamp_of(wall).saturating_add_signed(offset).max(1);
                    clock.observe(stamp);
                    observed = observed.max(stamp);
                    prop_assert!(clock.last() >= stamp);
                    let t = clock.now(wall);
                    prop_assert!(t > stamp && t > last, "{t} not after observed {stamp}");
                    last = t;
                }
            }
        }
    }

    #[test]
    fn prop_hlc_check_accepts_exactly_the_window(
        wall in prop_oneof![4 => 0..(1u64 << 43), 1 => any::<u64>(), 1 => Just(u64::MAX)],
        drift in prop_oneof![4 => 0..100_000_000u64, 1 => any::<u64>(), 1 => Just(u64::MAX)],
        probe in any::<u64>(),
        near in -3..3i64,
    ) {
        // The window is 1..stamp_of(wall + drift + 1), saturating: every
        // stamp of the last allowed millisecond is in, u64::MAX never is.
        let exact = (u128::from(wall) + u128::from(drift) + 1) << COUNTER_BITS;
        let limit = exact.min(u128::from(u64::MAX)) as u64;
        for stamp in [0, 1, 2, probe, u64::MAX, limit.saturating_add_signed(near), Hlc::stamp_of(wall)] {
            let got = Hlc::check(stamp, wall, drift);
            if stamp == 0 {
                prop_assert_eq!(got, Err(StampError::Zero));
            } else if stamp < limit {
                prop_assert_eq!(got, Ok(()), "{} is inside 1..{}", stamp, limit);
            } else {
                let ahead = matches!(got, Err(StampError::Ahead { stamp: s, max_drift_ms, .. }) if s == stamp && max_drift_ms == drift);
                prop_assert!(ahead, "{} is outside 1..{}: {:?}", stamp, limit, got);
            }
        }
    }
}

#[test]
fn check_saturates_at_the_top_of_the_range() {
    // `wall + drift + 1` once overflowed (a panic in debug builds).
    assert_eq!(Hlc::check(1, 0, u64::MAX), Ok(()));
    assert_eq!(Hlc::check(u64::MAX - 1, u64::MAX, 0), Ok(()));
    assert!(matches!(
        Hlc::check(u64::MAX, u64::MAX - 5, 5),
        Err(StampError::Ahead { .. })
    ));
}
