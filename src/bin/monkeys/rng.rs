//! SplitMix64: small, fast, and enough for choosing operations. Every
//! random choice comes from `--seed` through it, so its outputs must not
//! change: a seed replays the same choices.

/// The SplitMix64 increment (the golden ratio).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// A SplitMix64 generator.
pub struct Rng(u64);

impl Rng {
    /// The generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The generator of stream `stream` of `seed`: each worker draws from
    /// its own. (The `GAMMA` offset keeps the sequences of seeds from
    /// before this module.)
    pub fn stream(seed: u64, stream: u64) -> Rng {
        let key = Rng::new(stream.wrapping_add(0x5EED)).next_u64();
        let state = Rng::new(seed ^ key).next_u64();
        Rng(state.wrapping_add(GAMMA))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GAMMA);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn the_outputs_of_a_seed_do_not_change() {
        // Values of the generator before it had a module of its own.
        let mut plain = Rng::new(42);
        assert_eq!(plain.next_u64(), 0xbdd7_3226_2feb_6e95);
        assert_eq!(plain.next_u64(), 0x28ef_e333_b266_f103);
        let mut stream = Rng::stream(7, 1);
        assert_eq!(stream.next_u64(), 0x5a7a_222d_4959_d744);
        assert_eq!(stream.next_u64(), 0xe1a6_f5f3_a6b4_b4e2);
        assert_eq!(stream.next_u64(), 0xabed_7fd9_6c5b_93c2);
    }

    #[test]
    fn draws_stay_in_their_bounds() {
        let mut rng = Rng::stream(7, 1);
        for _ in 0..1_000 {
            assert!(rng.below(10) < 10);
            assert!((3..=5).contains(&rng.range(3, 5)));
            assert_eq!(rng.range(9, 9), 9);
        }
        assert!((0..100).all(|_| !rng.chance(0.0) && rng.chance(1.0)));
    }

    #[test]
    fn streams_differ() {
        assert_ne!(Rng::stream(7, 2).next_u64(), Rng::stream(7, 1).next_u64());
        assert_ne!(Rng::stream(8, 1).next_u64(), Rng::stream(7, 1).next_u64());
    }
}
