//! Laws of the hybrid logical clock: monotonicity whatever the wall clock
//! does, never behind an observed stamp, and drift rejection at exactly the
//! documented limit.
#![cfg(not(target_arch = "wasm32"))]

use edge_crdt::crdt::{Hlc, StampError, COUNTER_BITS};
use proptest::collection::vec;
use proptest::prelude::*;

/// Milliseconds until about the year 2248: stamps stay below 2^53 there.
const MAX_MS: u64 = 1 << (53 - COUNTER_BITS);

/// One input to a clock.
#[derive(Clone, Debug)]
enum Tick {
    /// The wall clock moves by `step` ms (a stall at 0, a step back below 0)
    /// and the node takes a timestamp.
    Now { step: i64 },
    /// The node observes a remote stamp `ahead` above its wall clock's
    /// (negative: behind it), plus a counter within the millisecond.
    Observe { ahead: i64, counter: u64 },
}

fn tick() -> impl Strategy<Value = Tick> {
    let step = prop_oneof![
        3 => Just(0i64),
        3 => 1..3i64,
        2 => -3..0i64,
        1 => -2_000..2_000i64,
    ];
    prop_oneof![
        4 => step.prop_map(|step| Tick::Now { step }),
        1 => (-5..50i64, 0..(1u64 << COUNTER_BITS))
            .prop_map(|(ahead, counter)| Tick::Observe { ahead, counter }),
    ]
}

/// `ms` moved by `by`, kept in `0..MAX_MS`.
fn shift(ms: u64, by: i64) -> u64 {
    ms.saturating_add_signed(by).min(MAX_MS - 1)
}

/// A stamp near `limit`, or anywhere.
fn around(limit: u64) -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => (-2_100..2_100i64).prop_map(move |d| limit.saturating_add_signed(d)),
        1 => any::<u64>(),
        1 => Just(0u64),
        1 => Just(u64::MAX),
    ]
}

/// A wall time and an allowed drift: realistic, or anywhere (saturation).
fn wall_and_drift() -> impl Strategy<Value = (u64, u64)> {
    prop_oneof![
        4 => (0..MAX_MS, 0..100_000u64),
        1 => (any::<u64>(), any::<u64>()),
        1 => (u64::MAX - 3..=u64::MAX, 0..3u64),
    ]
}

proptest! {
    #[test]
    fn prop_now_strictly_increases_and_never_falls_behind(
        start in 0..MAX_MS / 2,
        ticks in vec(tick(), 1..200),
    ) {
        let mut clock = Hlc::default();
        let mut wall = start;
        // The last stamp issued, and the greatest stamp observed.
        let (mut last, mut observed) = (0u64, 0u64);
        for t in &ticks {
            match *t {
                Tick::Now { step } => {
                    wall = shift(wall, step);
                    let before = clock.last();
                    let stamp = clock.now(wall);
                    prop_assert!(stamp > last, "{} after {}", stamp, last);
                    prop_assert!(stamp > observed, "{} after observing {}", stamp, observed);
                    prop_assert!(stamp >= Hlc::stamp_of(wall), "behind the wall clock");
                    // It follows the wall clock: the wall's stamp, or the
                    // least stamp above every earlier one.
                    prop_assert!(stamp == Hlc::stamp_of(wall) || stamp == before + 1);
                    prop_assert_eq!(clock.last(), stamp);
                    prop_assert!(stamp < 1 << 53, "JavaScript reads it exactly");
                    last = stamp;
                }
                Tick::Observe { ahead, counter } => {
                    let remote = Hlc::stamp_of(shift(wall, ahead)) + counter;
                    let before = clock.last();
                    clock.observe(remote);
                    prop_assert_eq!(clock.last(), before.max(remote));
                    observed = observed.max(remote);
                }
            }
            prop_assert!(clock.last() >= last && clock.last() >= observed);
        }
    }

    #[test]
    fn prop_millis_inverts_stamp_of(ms in 0..=u64::MAX >> COUNTER_BITS, counter in 0..(1u64 << COUNTER_BITS)) {
        let stamp = Hlc::stamp_of(ms);
        prop_assert_eq!(Hlc::millis(stamp), ms);
        prop_assert_eq!(Hlc::millis(stamp + counter), ms);
        prop_assert_eq!(stamp % (1 << COUNTER_BITS), 0);
        if ms > 0 {
            prop_assert!(Hlc::stamp_of(ms - 1) < stamp);
        }
    }

    #[test]
    fn prop_stamp_of_is_monotone_and_saturates(a in any::<u64>(), b in any::<u64>()) {
        let (lo, hi) = (a.min(b), a.max(b));
        prop_assert!(Hlc::stamp_of(lo) <= Hlc::stamp_of(hi));
        if hi > u64::MAX >> COUNTER_BITS {
            prop_assert_eq!(Hlc::stamp_of(hi), u64::MAX);
        }
    }

    #[test]
    fn prop_check_accepts_exactly_the_stamps_below_the_drift_limit(
        ((wall, drift), stamp) in wall_and_drift().prop_flat_map(|(wall, drift)| {
            // Exact: the first millisecond past the drift, in stamps.
            let limit = (u128::from(wall) + u128::from(drift) + 1) << COUNTER_BITS;
            let near = u64::try_from(limit).unwrap_or(u64::MAX);
            (Just((wall, drift)), around(near))
        })
    ) {
        let limit = (u128::from(wall) + u128::from(drift) + 1) << COUNTER_BITS;
        let result = Hlc::check(stamp, wall, drift);
        if stamp == 0 {
            prop_assert_eq!(result, Err(StampError::Zero));
        } else if u128::from(stamp) < limit && stamp < u64::MAX {
            prop_assert_eq!(result, Ok(()));
        } else {
            let by_ms = Hlc::millis(stamp).saturating_sub(wall);
            prop_assert_eq!(
                result,
                Err(StampError::Ahead { stamp, by_ms, max_drift_ms: drift })
            );
            // Where the limit is not saturated, a refused stamp is more
            // than the drift ahead.
            if limit < u128::from(u64::MAX) {
                prop_assert!(by_ms > drift);
            }
            let message = result.unwrap_err().to_string();
            prop_assert!(message.contains(&format!("{by_ms} ms ahead")), "{}", message);
        }
        prop_assert!(Hlc::check(u64::MAX, wall, drift).is_err());
    }

    #[test]
    fn prop_check_accepts_what_a_clock_within_the_drift_issues(
        wall in 1..MAX_MS,
        skew in 0..1_000u64,
        drift in 0..1_000u64,
        burst in 1..1_024usize,
    ) {
        // A client whose clock is `skew` ms ahead issues a burst of stamps
        // within one millisecond: accepted exactly when the skew is within
        // the drift.
        let mut clock = Hlc::default();
        for _ in 0..burst {
            let stamp = clock.now(wall + skew);
            prop_assert_eq!(Hlc::check(stamp, wall, drift).is_ok(), skew <= drift);
        }
    }
}

#[test]
fn check_limit_edges() {
    let (wall, drift) = (1_000, 100);
    let limit = Hlc::stamp_of(wall + drift + 1);
    assert_eq!(Hlc::check(limit - 1, wall, drift), Ok(()));
    assert_eq!(
        Hlc::check(limit, wall, drift),
        Err(StampError::Ahead {
            stamp: limit,
            by_ms: drift + 1,
            max_drift_ms: drift
        })
    );
    assert_eq!(Hlc::check(1, wall, drift), Ok(()));
    assert_eq!(Hlc::check(0, wall, drift), Err(StampError::Zero));
    assert!(Hlc::check(u64::MAX - 1, u64::MAX, u64::MAX).is_ok());
    assert!(Hlc::check(u64::MAX, u64::MAX, u64::MAX).is_err());
}
