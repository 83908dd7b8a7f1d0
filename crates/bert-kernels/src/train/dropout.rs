//! Inverted dropout from a counter-based generator: whether element `i` of stream `s` is kept is a
//! hash of (seed, s, i), so masks need no storage (the backward regenerates them), do not depend on
//! thread scheduling, and a run is reproducible from its seed.
//!
//! The masks are not PyTorch's (its generator is sequential and device-specific); the distribution
//! is the same: each element is zeroed with probability `p`, survivors are scaled by `1 / (1 - p)`.

use rayon::prelude::*;

/// A dropout site's probability and the run's seed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    /// Probability of zeroing an element, in [0, 1).
    pub p: f32,
    pub seed: u64,
}

impl Dropout {
    /// The multiplier of element `index` of stream `stream`: 0 or `1 / (1 - p)`.
    #[inline]
    pub fn scale(&self, stream: u64, index: u64) -> f32 {
        if self.p <= 0.0 {
            return 1.0;
        }
        let mut z = self
            .seed
            .wrapping_add(stream.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .wrapping_add(index.wrapping_mul(0xd1b5_4a32_d192_ed03));
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        // Uniform in [0, 1) from the top 24 bits.
        let u = (z >> 40) as f32 / (1u64 << 24) as f32;
        if u < self.p {
            0.0
        } else {
            1.0 / (1.0 - self.p)
        }
    }

    /// `x[i] *= scale(stream, i)`: the forward, and (applied to the gradient) the backward.
    pub fn apply(&self, x: &mut [f32], stream: u64) {
        if self.p <= 0.0 {
            return;
        }
        const CHUNK: usize = 16 * 1024;
        x.par_chunks_mut(CHUNK).enumerate().for_each(|(c, xs)| {
            for (i, x) in xs.iter_mut().enumerate() {
                *x *= self.scale(stream, (c * CHUNK + i) as u64);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_about_p_and_is_reproducible() {
        let d = Dropout { p: 0.1, seed: 42 };
        let mut x = vec![1.0f32; 100_000];
        d.apply(&mut x, 7);
        let zeros = x.iter().filter(|&&v| v == 0.0).count();
        assert!((9_000..11_000).contains(&zeros), "{zeros}");
        assert!(x.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.9).abs() < 1e-6));
        let mut y = vec![1.0f32; 100_000];
        d.apply(&mut y, 7);
        assert_eq!(x, y);
        let mut z = vec![1.0f32; 100_000];
        d.apply(&mut z, 8);
        assert_ne!(x, z);
        let mut keep = vec![2.0f32; 10];
        Dropout { p: 0.0, seed: 1 }.apply(&mut keep, 0);
        assert_eq!(keep, vec![2.0; 10]);
    }
}
