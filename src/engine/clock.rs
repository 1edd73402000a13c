//! A node's hybrid logical clock and the floor it stores: restored, the
//! node stamps above the floor, so its stamps (and its registers' dots)
//! stay new even when its wall clock is behind those it gave before a
//! restart.

use crate::crdt::Hlc;

/// How far ahead of its latest stamp a node's stored floor is set.
const FLOOR_STEP_MS: u64 = 1_000;

#[derive(Clone, Debug, Default)]
pub(crate) struct Clock {
    hlc: Hlc,
    /// The floor last stored: every stamp given so far is below it.
    floor: u64,
}

impl Clock {
    /// Starts above a stored floor.
    pub fn restore(&mut self, floor: u64) {
        self.hlc.observe(floor);
        self.floor = floor;
    }

    /// A new stamp at wall time `now`, and the floor to store if it moved.
    pub fn stamp(&mut self, now: u64) -> (u64, Option<u64>) {
        let time = self.hlc.now(now);
        if time < self.floor {
            return (time, None);
        }
        self.floor = time + Hlc::stamp_of(FLOOR_STEP_MS);
        (time, Some(self.floor))
    }

    /// Moves past a stamp seen in remote or stored data.
    pub fn observe(&mut self, stamp: u64) {
        self.hlc.observe(stamp);
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn the_floor_moves_ahead_of_stamps_once_a_step() {
        let mut c = Clock::default();
        let (a, floor) = c.stamp(1_000);
        let floor = floor.expect("the first stamp stores a floor");
        assert!(floor > a);
        let (b, none) = c.stamp(1_001);
        assert!(b > a && none.is_none());
        let mut again = Clock::default();
        again.restore(floor);
        assert!(again.stamp(500).0 > floor, "stamps above the stored floor");
    }
}
