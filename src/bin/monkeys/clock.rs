//! Wall-clock time, and the skewed hybrid logical clock of an offline
//! replica.

use edge_crdt::crdt::Hlc;
use edge_crdt::Rng;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn sleep_ms(ms: u64) {
    if ms > 0 {
        thread::sleep(Duration::from_millis(ms));
    }
}

/// A client's HLC on its own wall clock: shifted by a skew, and maybe
/// coarse (16 ms steps), so that clients stamp alike and tie.
pub struct SkewedHlc {
    hlc: Hlc,
    skew_ms: i64,
    coarse: bool,
}

impl SkewedHlc {
    /// A skew of up to ±2 s; coarse half the time.
    pub fn random(rng: &mut Rng) -> SkewedHlc {
        let skew_ms = rng.range(0, 4_000) as i64 - 2_000;
        let coarse = rng.chance(500);
        SkewedHlc {
            hlc: Hlc::default(),
            skew_ms,
            coarse,
        }
    }

    /// A new timestamp, later than every one issued or observed.
    pub fn stamp(&mut self) -> u64 {
        let local = self.local_ms(wall_ms());
        self.hlc.now(local)
    }

    /// Moves the clock past `stamp`, seen in another client's data.
    pub fn observe(&mut self, stamp: u64) {
        self.hlc.observe(stamp);
    }

    /// This client's reading of the wall clock at `wall`.
    fn local_ms(&self, wall: u64) -> u64 {
        let ms = (wall as i64 + self.skew_ms).max(1) as u64;
        if self.coarse {
            (ms / 16 * 16).max(1)
        } else {
            ms
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn clock(skew_ms: i64, coarse: bool) -> SkewedHlc {
        SkewedHlc {
            hlc: Hlc::default(),
            skew_ms,
            coarse,
        }
    }

    #[test]
    fn the_local_time_is_skewed_and_maybe_coarse() {
        assert_eq!(clock(-2_000, false).local_ms(10_005), 8_005);
        assert_eq!(clock(1_500, false).local_ms(10_005), 11_505);
        assert_eq!(clock(0, true).local_ms(10_005), 10_000);
        assert_eq!(clock(-2_000, false).local_ms(5), 1);
        assert_eq!(clock(0, true).local_ms(7), 1);
    }

    #[test]
    fn stamps_increase_and_pass_what_was_observed() {
        let mut c = clock(0, true);
        let a = c.stamp();
        let b = c.stamp();
        assert!(b > a);
        c.observe(b + 1_000_000);
        assert!(c.stamp() > b + 1_000_000);
    }

    #[test]
    fn random_skews_stay_within_two_seconds() {
        let mut rng = Rng::stream(1, 2);
        for _ in 0..200 {
            let c = SkewedHlc::random(&mut rng);
            assert!((-2_000..=2_000).contains(&c.skew_ms));
        }
    }
}
