//! AVX2 + FMA microkernels (256-bit, 16 registers) and the vectorized activations of their epilogue.
//!
//! A kernel holds an `MR x NV*8` block of C in `MR * NV` registers and, for each of `kc` steps, loads
//! `NV` vectors of the packed B row and broadcasts `MR` values of the packed A column: the BLIS
//! register-blocked outer product. 6x16 uses 12 accumulators + 2 B vectors + 1 broadcast = 15 of the 16
//! registers, enough independent FMAs (12) to cover the 4-cycle FMA latency on two FMA pipes.

use std::arch::x86_64::*;

use super::avx512::{prefetch_b_row, prefetch_block};
use super::driver::{Tile, TileEpi, B_BF16, B_F32};
use crate::vexp::avx2::{exp, exp2};
use crate::Activation;

/// f32 lanes per register.
pub(super) const LANES: usize = 8;

/// `C[mr, NV*8] (+)= A[mr, kc] B[kc, NV*8]`, then the epilogue.
///
/// # Safety
/// The CPU supports AVX2 and FMA; `t` describes in-bounds buffers: `a` holds `kc * MR` floats, `b`
/// holds `kc * NV * 8` (`pf` is only prefetched, never read), `c` (and `res`) `MR` rows of `NV * 8`
/// floats `ldc` (`ldr`) apart, `bias` `NV * 8` floats.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn kernel<const MR: usize, const NV: usize>(t: &Tile) {
    kernel_body::<MR, NV, B_F32, false>(t)
}

/// As [`kernel`] with A read where it is, unpacked: row `i` at `a + i * lda`, its K steps
/// consecutive (see `avx512::kernel_direct`).
///
/// # Safety
/// As [`kernel`], with `a` holding `MR` rows of `kc` floats `lda` apart.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn kernel_direct<const MR: usize, const NV: usize>(t: &Tile) {
    kernel_body::<MR, NV, B_F32, true>(t)
}

/// As [`kernel`] with B in bf16 (`B` = [`B_BF16`], the only 16-bit B of this ISA): `b` and `pf`
/// point at `kc * NV * 8` bf16 bits (`u16`), each B row widened to f32 as it is loaded (a zero
/// extension and a 16-bit shift, 2 operations per 8 values); the sums stay f32.
///
/// # Safety
/// As [`kernel`], with `b` and `pf` holding `kc * NV * 8` u16.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn kernel_half<const MR: usize, const NV: usize, const B: u8>(t: &Tile) {
    const { assert!(B == B_BF16, "AVX2 widens bf16 B only") };
    kernel_body::<MR, NV, B, false>(t)
}

/// The kernels' code; `B` (f32 or bf16 B) and `DIRECT` are compile-time constants, so the f32
/// kernel is the same instructions it was before either existed.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn kernel_body<const MR: usize, const NV: usize, const B: u8, const DIRECT: bool>(t: &Tile) {
    // C is written (and, for later K blocks, read) at the end: start fetching it now. Not when
    // streaming (`pf_l1`): these prefetches' misses compete with the stream's.
    if !t.pf_l1 {
        prefetch_block(t.c, t.ldc, MR, NV * LANES);
    }
    let mut acc = [[_mm256_setzero_ps(); NV]; MR];
    let (mut a, mut b, mut pf) = (t.a, t.b, t.pf);
    // Floats' worth of memory one B row spans: a bf16 row is half as long.
    let step = if B == B_F32 {
        NV * LANES
    } else {
        NV * LANES / 2
    };
    for _ in 0..t.kc {
        prefetch_b_row(pf, step, DIRECT && t.pf_l1);
        pf = pf.wrapping_add(step);
        let mut bv = [_mm256_setzero_ps(); NV];
        for (v, bv) in bv.iter_mut().enumerate() {
            *bv = if B == B_BF16 {
                let half = _mm_loadu_si128(b.cast::<u16>().add(v * LANES).cast());
                _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(half)))
            } else {
                _mm256_loadu_ps(b.add(v * LANES))
            };
        }
        for (i, acc) in acc.iter_mut().enumerate() {
            let av = _mm256_broadcast_ss(&*a.add(if DIRECT { i * t.lda } else { i }));
            for (acc, bv) in acc.iter_mut().zip(&bv) {
                *acc = _mm256_fmadd_ps(av, *bv, *acc);
            }
        }
        a = a.add(if DIRECT { 1 } else { MR });
        b = b.add(step);
    }
    for (i, acc) in acc.iter().enumerate() {
        let c = t.c.add(i * t.ldc);
        for (v, &acc) in acc.iter().enumerate() {
            let cp = c.add(v * LANES);
            let mut r = acc;
            if t.accumulate {
                r = _mm256_add_ps(r, _mm256_loadu_ps(cp));
            }
            match t.epi {
                TileEpi::None => {}
                TileEpi::Bias { bias, .. } => {
                    r = _mm256_add_ps(r, _mm256_loadu_ps(bias.add(v * LANES)))
                }
                TileEpi::BiasResidual { bias, res, ldr } => {
                    let rp = res.add(i * ldr + v * LANES);
                    r = _mm256_add_ps(r, _mm256_loadu_ps(bias.add(v * LANES)));
                    r = _mm256_add_ps(r, _mm256_loadu_ps(rp));
                }
            }
            _mm256_storeu_ps(cp, r);
        }
    }
    if let TileEpi::Bias { act: Some(act), .. } = t.epi {
        activate_block(t.c, t.ldc, MR, NV, act);
    }
}

/// Applies `act` in place to `rows` rows of `nv` vectors, `ld` floats apart.
///
/// # Safety
/// AVX2 + FMA; the block is in bounds.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn activate_block(
    c: *mut f32,
    ld: usize,
    rows: usize,
    nv: usize,
    act: Activation,
) {
    for i in 0..rows {
        for v in 0..nv {
            let p = c.add(i * ld + v * LANES);
            _mm256_storeu_ps(p, activation(act, _mm256_loadu_ps(p)));
        }
    }
}

/// Applies `act` to each of `xs` in place: vectorized body, scalar [`Activation::apply`] tail.
///
/// # Safety
/// AVX2 + FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn activate_slice(xs: &mut [f32], act: Activation) {
    let mut chunks = xs.chunks_exact_mut(LANES);
    for c in &mut chunks {
        let p = c.as_mut_ptr();
        _mm256_storeu_ps(p, activation(act, _mm256_loadu_ps(p)));
    }
    for x in chunks.into_remainder() {
        *x = act.apply(*x);
    }
}

#[target_feature(enable = "avx2,fma")]
#[inline]
fn activation(act: Activation, x: __m256) -> __m256 {
    match act {
        Activation::Gelu => gelu(x),
        Activation::GeluTanh => gelu_tanh(x),
        Activation::Relu => _mm256_max_ps(x, _mm256_setzero_ps()),
        Activation::Silu => {
            let e = exp(_mm256_sub_ps(_mm256_setzero_ps(), x));
            _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0), e))
        }
    }
}

/// `0.5 x (1 + erf(x / sqrt 2))` with the Abramowitz & Stegun 7.1.26 erf of [`crate::activation::erf`].
#[target_feature(enable = "avx2,fma")]
#[inline]
fn gelu(x: __m256) -> __m256 {
    use crate::activation::{ERF_A as A, ERF_P as P};
    let z = _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::FRAC_1_SQRT_2));
    let sign = _mm256_and_ps(z, _mm256_set1_ps(-0.0));
    let a = _mm256_andnot_ps(_mm256_set1_ps(-0.0), z);
    let one = _mm256_set1_ps(1.0);
    let t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(P), a, one));
    let mut poly = _mm256_set1_ps(A[4]);
    for &c in A[..4].iter().rev() {
        poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(c));
    }
    poly = _mm256_mul_ps(poly, t);
    let e = gauss(a);
    let erf = _mm256_or_ps(_mm256_fnmadd_ps(poly, e, one), sign);
    _mm256_mul_ps(
        _mm256_mul_ps(_mm256_set1_ps(0.5), x),
        _mm256_add_ps(one, erf),
    )
}

/// `exp(-a^2)` for the erf of [`gelu`] and [`gelu_derivative`] (`a = |z| >= 0`), as
/// `2^(-a^2 log2 e)` by `exp2` (the softmax's: eleven vector operations with AVX-512, fifteen on
/// AVX2, where `exp` takes nineteen: GELU was bound by its operations, not its division); 0 from
/// `a > 10`, where `exp2` stops at 2^-126 (and for NaN, which `x` still carries into the result).
#[target_feature(enable = "avx2,fma")]
#[inline]
fn gauss(a: __m256) -> __m256 {
    let e = exp2(_mm256_mul_ps(
        _mm256_mul_ps(a, a),
        _mm256_set1_ps(-std::f32::consts::LOG2_E),
    ));
    _mm256_and_ps(_mm256_cmp_ps::<_CMP_LE_OQ>(a, _mm256_set1_ps(10.0)), e)
}

/// `dz = dy * gelu'(z)` element-wise: vectorized body, scalar
/// [`crate::train::activation::derivative`] tail.
///
/// # Safety
/// The CPU supports AVX2 + FMA; the three slices have the same length.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn gelu_backward_slice(dz: &mut [f32], dy: &[f32], z: &[f32]) {
    let body = dz.len() / LANES * LANES;
    for i in (0..body).step_by(LANES) {
        let d = gelu_derivative(_mm256_loadu_ps(z.as_ptr().add(i)));
        let g = _mm256_loadu_ps(dy.as_ptr().add(i));
        _mm256_storeu_ps(dz.as_mut_ptr().add(i), _mm256_mul_ps(g, d));
    }
    for i in body..dz.len() {
        dz[i] = dy[i] * crate::train::activation::derivative(Activation::Gelu, z[i]);
    }
}

/// `gelu'(x) = Phi(x) + x phi(x)`: [`gelu`]'s erf, whose `exp(-x^2 / 2)` is also the normal density's.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn gelu_derivative(x: __m256) -> __m256 {
    use crate::activation::{ERF_A as A, ERF_P as P};
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    let zs = _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::FRAC_1_SQRT_2));
    let sign = _mm256_and_ps(zs, _mm256_set1_ps(-0.0));
    let a = _mm256_andnot_ps(_mm256_set1_ps(-0.0), zs);
    let one = _mm256_set1_ps(1.0);
    let t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(P), a, one));
    let mut poly = _mm256_set1_ps(A[4]);
    for &c in A[..4].iter().rev() {
        poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(c));
    }
    poly = _mm256_mul_ps(poly, t);
    let e = gauss(a);
    let erf = _mm256_or_ps(_mm256_fnmadd_ps(poly, e, one), sign);
    let cdf = _mm256_mul_ps(_mm256_set1_ps(0.5), _mm256_add_ps(one, erf));
    _mm256_fmadd_ps(_mm256_mul_ps(x, _mm256_set1_ps(INV_SQRT_2PI)), e, cdf)
}

/// `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`, tanh(u) = sign(u) (1 - e) / (1 + e), e = exp(-2|u|).
#[target_feature(enable = "avx2,fma")]
#[inline]
fn gelu_tanh(x: __m256) -> __m256 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    let x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
    let u = _mm256_mul_ps(
        _mm256_set1_ps(SQRT_2_OVER_PI),
        _mm256_fmadd_ps(_mm256_set1_ps(0.044_715), x3, x),
    );
    let sign = _mm256_and_ps(u, _mm256_set1_ps(-0.0));
    let a = _mm256_andnot_ps(_mm256_set1_ps(-0.0), u);
    let one = _mm256_set1_ps(1.0);
    let e = exp(_mm256_mul_ps(_mm256_set1_ps(-2.0), a));
    let th = _mm256_or_ps(
        _mm256_div_ps(_mm256_sub_ps(one, e), _mm256_add_ps(one, e)),
        sign,
    );
    _mm256_mul_ps(
        _mm256_mul_ps(_mm256_set1_ps(0.5), x),
        _mm256_add_ps(one, th),
    )
}
