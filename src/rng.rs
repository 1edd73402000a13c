//! The one seeded generator of the project: SplitMix64. The simulator,
//! the benchmarks and the chaos clients draw from it, so a seed replays a
//! run exactly. Not for anything that must be unpredictable.
//!
//! ```
//! use edge_crdt::Rng;
//! let (mut a, mut b) = (Rng::new(7), Rng::new(7));
//! assert_eq!(a.next_u64(), b.next_u64());
//! assert!(a.below(10) < 10);
//! assert!((5..=9).contains(&a.range(5, 9)));
//! ```

/// A SplitMix64 generator.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator that replays the same numbers for the same seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// Generator number `stream` of `seed`, one per worker of a run: the
    /// streams of one seed differ from each other and from `new(seed)`.
    pub fn stream(seed: u64, stream: u64) -> Self {
        let key = Rng::new(stream.wrapping_add(0x5eed)).next_u64();
        let state = Rng::new(seed ^ key).next_u64();
        Rng(state.wrapping_add(0x9e37_79b9_7f4a_7c15))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo).saturating_add(1))
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True `per_mille` times in a thousand.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// One of `items`, if there are any.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        let i = self.below(items.len() as u64) as usize;
        items.get(i).copied()
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn draws_stay_in_their_ranges_and_cover_them() {
        let mut rng = Rng::new(1);
        let mut seen = [false; 6];
        for _ in 0..1000 {
            let v = rng.range(3, 8);
            assert!((3..=8).contains(&v));
            seen[(v - 3) as usize] = true;
        }
        assert!(seen.iter().all(|s| *s), "{seen:?}");
        assert_eq!(rng.below(0), 0);
        assert_eq!(rng.pick::<u8>(&[]), None);
        assert!((0..1000)
            .map(|_| rng.unit())
            .all(|u| (0.0..1.0).contains(&u)));
        assert!((0..100).all(|_| !rng.chance(0) && rng.chance(1000)));
    }

    #[test]
    fn a_seed_and_its_streams_replay_the_same_numbers() {
        // SplitMix64's reference outputs, and the chaos clients' streams
        // as they were when they had a generator of their own.
        let mut plain = Rng::new(42);
        assert_eq!(plain.next_u64(), 0xbdd7_3226_2feb_6e95);
        assert_eq!(plain.next_u64(), 0x28ef_e333_b266_f103);
        let mut stream = Rng::stream(7, 1);
        assert_eq!(stream.next_u64(), 0x5a7a_222d_4959_d744);
        assert_eq!(stream.next_u64(), 0xe1a6_f5f3_a6b4_b4e2);
        assert_eq!(stream.next_u64(), 0xabed_7fd9_6c5b_93c2);
        assert_ne!(Rng::stream(7, 2).next_u64(), Rng::stream(7, 1).next_u64());
        assert_ne!(Rng::stream(8, 1).next_u64(), Rng::stream(7, 1).next_u64());
    }
}
