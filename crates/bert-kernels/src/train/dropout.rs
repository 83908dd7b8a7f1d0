//! Inverted dropout from a counter-based generator: whether element `i` of stream `s` is kept is a
//! hash of (seed, s, i), so masks need no storage (the backward regenerates them), do not depend on
//! thread scheduling, and a run is reproducible from its seed.
//!
//! The masks are not PyTorch's (its generator is sequential and device-specific); the distribution
//! is the same: each element is zeroed with probability `p`, survivors are scaled by `1 / (1 - p)`.

use rayon::prelude::*;

use crate::rng::{mix64, GOLDEN};
use crate::Isa;

/// A dropout site's probability and the run's seed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    /// Probability of zeroing an element, in [0, 1).
    pub p: f32,
    pub seed: u64,
}

/// The hash input's step per element index (odd, so indices never collide mod 2^64); `scale` and
/// the vector path's running sum both use it.
const INDEX_STEP: u64 = 0xd1b5_4a32_d192_ed03;

impl Dropout {
    /// The multiplier of element `index` of stream `stream`: 0 or `1 / (1 - p)`.
    #[inline]
    pub fn scale(&self, stream: u64, index: u64) -> f32 {
        if self.p <= 0.0 {
            return 1.0;
        }
        let z = mix64(
            self.seed
                .wrapping_add(stream.wrapping_mul(GOLDEN))
                .wrapping_add(index.wrapping_mul(INDEX_STEP)),
        );
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
        let isa = Isa::selected();
        x.par_chunks_mut(CHUNK).enumerate().for_each(|(c, xs)| {
            self.run(isa, xs, stream, (c * CHUNK) as u64, 1.0, Op::Scale);
        });
    }

    /// `out[j] = scale(stream, base + j) * mul`: one row of multipliers (attention's, `mul` its
    /// head mask), with `isa`'s vector code: the same values as [`Dropout::scale`], bit for bit.
    pub fn multipliers(&self, isa: Isa, out: &mut [f32], stream: u64, base: u64, mul: f32) {
        if self.p <= 0.0 {
            out.fill(mul);
        } else {
            self.run(isa, out, stream, base, mul, Op::Fill);
        }
    }

    fn run(&self, isa: Isa, xs: &mut [f32], stream: u64, base: u64, mul: f32, op: Op) {
        assert!(isa.is_supported(), "dropout: {isa:?} not supported");
        #[cfg(target_arch = "x86_64")]
        {
            if isa == Isa::Avx512 && is_x86_feature_detected!("avx512dq") {
                // SAFETY: AVX-512F (the ISA, asserted above) and DQ (just detected).
                return unsafe { masks_avx512(self, xs, stream, base, mul, op) };
            }
            if isa != Isa::Scalar {
                // SAFETY: AVX-512 and AVX2 machines both have AVX2 + FMA (asserted above for Avx2).
                return unsafe { masks_avx2(self, xs, stream, base, mul, op) };
            }
        }
        masks(self, xs, stream, base, mul, op)
    }
}

/// What [`masks`] does with element `j`'s multiplier `m`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `x[j] = m * mul`.
    Fill,
    /// `x[j] *= m` (`mul` is 1).
    Scale,
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn masks_avx512(d: &Dropout, xs: &mut [f32], stream: u64, base: u64, mul: f32, op: Op) {
    masks(d, xs, stream, base, mul, op)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn masks_avx2(d: &Dropout, xs: &mut [f32], stream: u64, base: u64, mul: f32, op: Op) {
    masks(d, xs, stream, base, mul, op)
}

/// The integer form of [`Dropout::scale`]'s test `u < p`, `u = (z >> 40) / 2^24` exact: an element is
/// dropped when `z >> 40 < drop_below(p)`.
fn drop_below(p: f32) -> u64 {
    (p * (1u64 << 24) as f32).ceil() as u64
}

/// [`Dropout::scale`] for elements `base..base + xs.len()` in a branch-free loop that vectorizes:
/// the 64-bit hash in vector lanes, `u < p` as the integer test `z >> 40 < ceil(p 2^24)` (`u` is
/// `(z >> 40) / 2^24` exactly, so the two agree on every value). The hash's input
/// `seed + stream GOLDEN + index INDEX_STEP` advances by `INDEX_STEP` per element (mod 2^64, the
/// same values), a vector add where `index INDEX_STEP` was the third 64-bit multiply per element
/// (AVX-512's `vpmullq` is three micro-ops on Intel).
#[inline(always)]
fn masks(d: &Dropout, xs: &mut [f32], stream: u64, base: u64, mul: f32, op: Op) {
    let s0 = d.seed.wrapping_add(stream.wrapping_mul(GOLDEN));
    let thr = drop_below(d.p);
    let keep = 1.0 / (1.0 - d.p) * mul;
    let mut h = s0.wrapping_add(base.wrapping_mul(INDEX_STEP));
    for x in xs.iter_mut() {
        let z = mix64(h);
        h = h.wrapping_add(INDEX_STEP);
        let m = if (z >> 40) < thr { 0.0 } else { keep };
        match op {
            Op::Fill => *x = m,
            Op::Scale => *x *= m,
        }
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

    #[test]
    fn integer_threshold_equals_the_float_test_at_its_edge() {
        for p in [0.1f32, 0.25, 0.37, 0.5, 0.999, 1e-7] {
            let t = drop_below(p);
            for k in t.saturating_sub(2)..t + 3 {
                let u = k as f32 / (1u64 << 24) as f32;
                assert_eq!(k < t, u < p, "p {p}, k {k}");
            }
        }
    }

    #[test]
    fn vector_masks_equal_the_scalar_hash_bit_for_bit() {
        // 0.25 * 2^24 is an integer (the threshold's edge case); 0.1 and 0.37 are not.
        for p in [0.1f32, 0.25, 0.37, 0.999] {
            let d = Dropout { p, seed: 99 };
            for isa in Isa::supported() {
                let (base, mul) = (1_000_003u64, 0.5f32);
                let mut m = vec![f32::NAN; 1_037];
                d.multipliers(isa, &mut m, 5, base, mul);
                let mut x: Vec<f32> = (0..40_000).map(|i| i as f32 * 0.01 - 7.0).collect();
                let want_x: Vec<f32> = x
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| v * d.scale(6, i as u64))
                    .collect();
                d.apply(&mut x, 6);
                for (j, &v) in m.iter().enumerate() {
                    let want = d.scale(5, base + j as u64) * mul;
                    assert_eq!(v.to_bits(), want.to_bits(), "{isa:?} p {p} element {j}");
                }
                for (a, b) in x.iter().zip(&want_x) {
                    assert_eq!(a.to_bits(), b.to_bits(), "apply, p {p}");
                }
            }
        }
    }
}
