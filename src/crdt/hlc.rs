//! A hybrid logical clock: timestamps that follow wall-clock milliseconds
//! and still increase strictly at one node, even when its clock stalls or
//! steps back, and never fall behind a timestamp it has observed.
//!
//! A timestamp is one `u64`: milliseconds shifted left by [`COUNTER_BITS`],
//! plus a counter for events within one millisecond. It stays below 2^53
//! until the year 2248, so JavaScript reads it exactly.
//!
//! ```
//! use edge_crdt::crdt::Hlc;
//! let mut clock = Hlc::default();
//! let a = clock.now(1_000);
//! let b = clock.now(1_000); // same millisecond
//! let c = clock.now(999); // the wall clock stepped back
//! assert!(a < b && b < c);
//! assert_eq!(Hlc::millis(a), 1_000);
//! ```

use std::fmt;

/// Low bits of a timestamp that count events within one millisecond.
pub const COUNTER_BITS: u32 = 10;

/// A hybrid logical clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hlc {
    last: u64,
}

/// A timestamp too far ahead of the receiver's clock, or out of range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StampError {
    /// 0 is not a timestamp (the seed's "delete at 0" attack).
    Zero,
    /// Ahead of the receiver's clock by more than the allowed drift.
    Ahead {
        /// the timestamp
        stamp: u64,
        /// how far ahead, in milliseconds
        by_ms: u64,
        /// the allowed drift, in milliseconds
        max_drift_ms: u64,
    },
}

impl fmt::Display for StampError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StampError::Zero => write!(f, "timestamp 0 is not allowed"),
            StampError::Ahead {
                stamp,
                by_ms,
                max_drift_ms,
            } => write!(
                f,
                "timestamp {stamp} is {by_ms} ms ahead of the server clock; at most {max_drift_ms} ms is allowed"
            ),
        }
    }
}

impl Hlc {
    /// The timestamp of `millis` with counter 0.
    pub fn stamp_of(millis: u64) -> u64 {
        millis.saturating_mul(1 << COUNTER_BITS)
    }

    /// The milliseconds of a timestamp.
    pub fn millis(stamp: u64) -> u64 {
        stamp >> COUNTER_BITS
    }

    /// The latest timestamp issued or observed.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// A new timestamp, greater than every one issued or observed before.
    pub fn now(&mut self, wall_ms: u64) -> u64 {
        self.last = Self::stamp_of(wall_ms).max(self.last.saturating_add(1));
        self.last
    }

    /// Moves the clock past `stamp`, a timestamp seen in remote data.
    pub fn observe(&mut self, stamp: u64) {
        self.last = self.last.max(stamp);
    }

    /// Checks a timestamp from an untrusted client against the wall clock:
    /// not 0, and at most `max_drift_ms` ahead (so not `u64::MAX` either).
    pub fn check(stamp: u64, wall_ms: u64, max_drift_ms: u64) -> Result<(), StampError> {
        if stamp == 0 {
            return Err(StampError::Zero);
        }
        let limit = Self::stamp_of(wall_ms.saturating_add(max_drift_ms).saturating_add(1));
        if stamp >= limit {
            return Err(StampError::Ahead {
                stamp,
                by_ms: Self::millis(stamp).saturating_sub(wall_ms),
                max_drift_ms,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn observing_moves_the_clock_past_remote_stamps() {
        let mut clock = Hlc::default();
        clock.observe(Hlc::stamp_of(5_000) + 3);
        let next = clock.now(4_000);
        assert_eq!(next, Hlc::stamp_of(5_000) + 4);
    }

    #[test]
    fn check_rejects_zero_and_the_far_future() {
        assert_eq!(Hlc::check(0, 1_000, 100), Err(StampError::Zero));
        assert!(Hlc::check(u64::MAX, 1_000, 100).is_err());
        assert!(Hlc::check(Hlc::stamp_of(1_100) + 1023, 1_000, 100).is_ok());
        assert!(Hlc::check(Hlc::stamp_of(1_101), 1_000, 100).is_err());
        assert!(Hlc::check(1, 1_000, 100).is_ok());
    }
}
