//! A small seeded pseudo-random generator (wyrand): the same `--seed` gives the same choices
//! of card, amount, basket and kind, so a run can be repeated. Not for keys or PINs.

/// wyrand: 64 bits of state, one multiply per draw.
#[derive(Clone, Debug)]
pub struct Rng {
    /// The state, advanced by a constant per draw.
    state: u64,
}

impl Rng {
    /// A generator from a seed; `stream` separates the generators of one run (one per
    /// terminal) so they do not draw the same sequence.
    pub fn new(seed: u64, stream: u64) -> Rng {
        let mut rng = Rng {
            state: seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        };
        rng.next_u64();
        rng
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.state) * u128::from(self.state ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    }

    /// Uniform in `0..bound` (`bound` > 0; 0 gives 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An exponentially distributed interval with mean `mean_seconds` (Poisson arrivals).
    pub fn exponential(&mut self, mean_seconds: f64) -> f64 {
        -(1.0 - self.unit()).ln() * mean_seconds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_streams_differ() {
        let a: Vec<u64> = (0..8).map(|_| Rng::new(7, 1).next_u64()).collect();
        let mut r1 = Rng::new(7, 1);
        let mut r2 = Rng::new(7, 1);
        let mut r3 = Rng::new(7, 2);
        let x: Vec<u64> = (0..8).map(|_| r1.next_u64()).collect();
        let y: Vec<u64> = (0..8).map(|_| r2.next_u64()).collect();
        let z: Vec<u64> = (0..8).map(|_| r3.next_u64()).collect();
        assert_eq!(x, y);
        assert_ne!(x, z);
        assert_eq!(a.len(), 8);
    }

    #[test]
    fn below_stays_in_range_and_exponential_has_its_mean() {
        let mut rng = Rng::new(1, 0);
        assert!((0..10_000).all(|_| rng.below(7) < 7));
        let n = 200_000;
        let mean = (0..n).map(|_| rng.exponential(0.02)).sum::<f64>() / n as f64;
        assert!((mean - 0.02).abs() < 0.001, "mean {mean}");
    }
}
