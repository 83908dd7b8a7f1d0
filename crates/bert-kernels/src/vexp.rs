//! e^x on SIMD vectors, shared by the softmax and the GEMM's activation epilogues (GELU, tanh,
//! SiLU). The reference is `f64::exp` (test below).
//!
//! Cephes `expf`: x = n ln2 + r, |r| <= ln2/2, a degree-6 polynomial in r, relative error about
//! 1e-7. Inputs are clamped to [-87.33, 88], so the result is never infinite and never below
//! 2^-126 (about 1.2e-38 instead of 0 for very negative inputs: harmless in a softmax, whose sum
//! is at least 1, and in the activations, which multiply it by a bounded factor).

/// The polynomial's coefficients, highest degree first.
#[cfg(target_arch = "x86_64")]
const P: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    0.166_666_65,
    0.5,
];
/// ln 2 split in two for an exact range reduction.
#[cfg(target_arch = "x86_64")]
const LN2_HI: f32 = 0.693_359_4;
#[cfg(target_arch = "x86_64")]
const LN2_LO: f32 = -2.121_944_4e-4;
#[cfg(target_arch = "x86_64")]
const LO: f32 = -87.33;
#[cfg(target_arch = "x86_64")]
const HI: f32 = 88.0;

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use std::arch::x86_64::*;

    /// e^x for 8 lanes.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub(crate) fn exp(x: __m256) -> __m256 {
        let x = _mm256_min_ps(
            _mm256_max_ps(x, _mm256_set1_ps(super::LO)),
            _mm256_set1_ps(super::HI),
        );
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)),
        );
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(super::LN2_HI), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(super::LN2_LO), r);
        let mut p = _mm256_set1_ps(super::P[0]);
        for &c in &super::P[1..] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let y = _mm256_fmadd_ps(
            p,
            _mm256_mul_ps(r, r),
            _mm256_add_ps(r, _mm256_set1_ps(1.0)),
        );
        let pow2n = _mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvtps_epi32(n),
            _mm256_set1_epi32(127),
        ));
        _mm256_mul_ps(y, _mm256_castsi256_ps(pow2n))
    }

    /// 2^z for 8 lanes, z clamped to [-126, 127]: as [`super::avx512::exp2`], with 2^n built
    /// in the exponent bits (AVX2 has no `vscalefps`). Fifteen vector operations with the
    /// caller's scaling `fmsub`, where [`exp`] takes nineteen.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub(crate) fn exp2(z: __m256) -> __m256 {
        let z = _mm256_min_ps(
            _mm256_max_ps(z, _mm256_set1_ps(-126.0)),
            _mm256_set1_ps(127.0),
        );
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(z);
        let f = _mm256_sub_ps(z, n);
        let mut p = _mm256_set1_ps(super::EXP2_TAYLOR[0]);
        for &c in &super::EXP2_TAYLOR[1..] {
            p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(c));
        }
        let pow2n = _mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvtps_epi32(n),
            _mm256_set1_epi32(127),
        ));
        _mm256_mul_ps(p, _mm256_castsi256_ps(pow2n))
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    use std::arch::x86_64::*;

    /// e^x for 16 lanes.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(crate) fn exp(x: __m512) -> __m512 {
        let x = _mm512_min_ps(
            _mm512_max_ps(x, _mm512_set1_ps(super::LO)),
            _mm512_set1_ps(super::HI),
        );
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
        );
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(super::LN2_HI), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(super::LN2_LO), r);
        let mut p = _mm512_set1_ps(super::P[0]);
        for &c in &super::P[1..] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
        }
        let y = _mm512_fmadd_ps(
            p,
            _mm512_mul_ps(r, r),
            _mm512_add_ps(r, _mm512_set1_ps(1.0)),
        );
        let pow2n = _mm512_slli_epi32::<23>(_mm512_add_epi32(
            _mm512_cvtps_epi32(n),
            _mm512_set1_epi32(127),
        ));
        _mm512_mul_ps(y, _mm512_castsi512_ps(pow2n))
    }

    /// 2^z for 16 lanes, z >= -126 (below, the result is 2^-126 rather than smaller): z = n + f
    /// with n an integer and |f| <= 1/2, 2^f by its degree-6 Taylor polynomial (relative error
    /// below 2.5e-7, tested), times 2^n by `vscalefps`. Eleven vector operations with the caller's scaling
    /// `fmsub`, where [`exp`] takes nineteen: the softmax of bf16 attention folds log2(e) into
    /// its scale.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(crate) fn exp2(z: __m512) -> __m512 {
        let z = _mm512_max_ps(z, _mm512_set1_ps(-126.0));
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(z);
        let f = _mm512_sub_ps(z, n);
        let mut p = _mm512_set1_ps(super::EXP2_TAYLOR[0]);
        for &c in &super::EXP2_TAYLOR[1..] {
            p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(c));
        }
        _mm512_scalef_ps(p, n)
    }
}

/// (ln 2)^k / k!, k = 6 down to 0: 2^f = e^(f ln 2) near 0.
#[cfg(target_arch = "x86_64")]
const EXP2_TAYLOR: [f32; 7] = [
    1.540_353e-4,
    1.333_355_8e-3,
    9.618_129e-3,
    5.550_411e-2,
    0.240_226_5,
    std::f32::consts::LN_2,
    1.0,
];

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use crate::Isa;
    use std::arch::x86_64::*;

    /// `f` on 16 values through the AVX2 kernel (two halves) or the AVX-512 one.
    fn on_16(
        isa: Isa,
        xs: &[f32; 16],
        avx2: unsafe fn(__m256) -> __m256,
        avx512: unsafe fn(__m512) -> __m512,
    ) -> [f32; 16] {
        let mut out = [0.0f32; 16];
        // SAFETY: callers check the ISA is supported; both arrays hold 16 lanes.
        unsafe {
            match isa {
                Isa::Avx2 => {
                    let lo = avx2(_mm256_loadu_ps(xs.as_ptr()));
                    let hi = avx2(_mm256_loadu_ps(xs.as_ptr().add(8)));
                    _mm256_storeu_ps(out.as_mut_ptr(), lo);
                    _mm256_storeu_ps(out.as_mut_ptr().add(8), hi);
                }
                _ => _mm512_storeu_ps(out.as_mut_ptr(), avx512(_mm512_loadu_ps(xs.as_ptr()))),
            }
        }
        out
    }

    /// e^x of 16 values.
    fn vector_exp(isa: Isa, xs: &[f32; 16]) -> [f32; 16] {
        on_16(isa, xs, super::avx2::exp, super::avx512::exp)
    }

    /// 2^z of 16 values.
    fn vector_exp2(isa: Isa, zs: &[f32; 16]) -> [f32; 16] {
        on_16(isa, zs, super::avx2::exp2, super::avx512::exp2)
    }

    /// The largest relative error of `kernel` against the f64 `want` over `range`: vectors of 16
    /// values `spread` apart, starting every `step`.
    fn worst_relative_error(
        isa: Isa,
        kernel: fn(Isa, &[f32; 16]) -> [f32; 16],
        want: fn(f64) -> f64,
        range: std::ops::RangeInclusive<f32>,
        step: f32,
        spread: f32,
    ) -> f64 {
        let mut worst = 0.0f64;
        let mut x = *range.start();
        while x <= *range.end() {
            let xs: [f32; 16] = std::array::from_fn(|k| x + spread * k as f32);
            for (&xi, &o) in xs.iter().zip(&kernel(isa, &xs)) {
                let want = want(xi as f64);
                worst = worst.max((o as f64 - want).abs() / want);
            }
            x += step;
        }
        worst
    }

    #[test]
    fn vector_exp2_is_accurate() {
        for isa in [Isa::Avx2, Isa::Avx512] {
            if !isa.is_supported() {
                continue;
            }
            let worst =
                worst_relative_error(isa, vector_exp2, f64::exp2, -125.9..=126.9, 0.0113, 0.000_7);
            assert!(worst < 2.5e-7, "{isa:?}: max relative error {worst:e}");
            // Below the clamp: 2^-126, not 0 (a softmax's sum stays positive).
            for &o in &vector_exp2(isa, &[-1e30; 16]) {
                assert_eq!(o, 2f32.powi(-126), "{isa:?}");
            }
        }
        // AVX2's upper clamp: 2^127, not a wrapped exponent.
        if Isa::Avx2.is_supported() {
            for &o in &vector_exp2(Isa::Avx2, &[1e30; 16]) {
                assert_eq!(o, 2f32.powi(127));
            }
        }
    }

    #[test]
    fn vector_exp_is_accurate() {
        for isa in [Isa::Avx2, Isa::Avx512] {
            if !isa.is_supported() {
                continue;
            }
            // Relative error over the whole normal range, in steps that hit no lattice.
            let worst =
                worst_relative_error(isa, vector_exp, f64::exp, -87.0..=87.9, 0.0137, 0.001);
            assert!(worst < 3e-7, "{isa:?}: max relative error {worst:e}");
            // Clamped ends: finite and positive, never 0 or infinity.
            for (&xi, &o) in [-1e30f32; 16].iter().zip(&vector_exp(isa, &[-1e30; 16])) {
                assert!(o > 0.0 && o < 2e-38, "{isa:?}: exp({xi}) = {o}");
            }
            for &o in &vector_exp(isa, &[1e30; 16]) {
                assert!(o.is_finite() && o > 1e38, "{isa:?}: exp(1e30) = {o}");
            }
        }
    }
}
