//! AVX-512F microkernels (512-bit, 32 registers) and the vectorized activations of their epilogue: the
//! same code as `avx2.rs` with 16 lanes. The FMAs take their A operand as an embedded broadcast, so all
//! 32 registers but the B row can hold accumulators.

use std::arch::x86_64::*;

use super::driver::{Tile, TileEpi, B_BF16, B_F16, B_F32};
use crate::vexp::avx512::{exp, exp2};
use crate::Activation;

/// f32 lanes per register.
pub(super) const LANES: usize = 16;

/// `C = acc (+ C)` and the epilogue: the end of every kernel. A macro, not a function: passing the
/// accumulators by reference to a function LLVM did not inline kept them in memory through the
/// whole K loop (f32 products at half speed); and so did a store loop LLVM did not unroll (below).
///
/// With `act_in_store` true the activation is applied to each vector before its one store (AMX's
/// tall tiles, whose sums are in memory anyway); else the block is stored, re-read and activated,
/// so that the activation's temporaries do not spill the accumulators (the f32 kernels' 16-28
/// registers: f32 W2F 1.015x the time with it in the store).
macro_rules! store_tile {
    ($t:expr, $acc:expr, $mr:expr, $nv:expr) => {
        store_tile!($t, $acc, $mr, $nv, false)
    };
    ($t:expr, $acc:expr, $mr:expr, $nv:expr, $act_in_store:expr) => {{
        let t: &Tile = $t;
        let mut acc = $acc;
        // acc (+ C) (+ bias) (+ residual), in that order either way.
        if $act_in_store {
            // AMX's tall tiles: the sums are in memory anyway; one pass, the activation included.
            for (i, acc) in acc.iter().enumerate() {
                let c = t.c.add(i * t.ldc);
                for (v, &acc) in acc.iter().enumerate() {
                    let cp = c.add(v * LANES);
                    let mut r = acc;
                    if t.accumulate {
                        r = _mm512_add_ps(r, _mm512_loadu_ps(cp));
                    }
                    match t.epi {
                        TileEpi::None => {}
                        TileEpi::Bias { bias, act } => {
                            r = _mm512_add_ps(r, _mm512_loadu_ps(bias.add(v * LANES)));
                            if let Some(act) = act {
                                r = $crate::linear::avx512::activation(act, r);
                            }
                        }
                        TileEpi::BiasResidual { bias, res, ldr } => {
                            let rp = res.add(i * ldr + v * LANES);
                            r = _mm512_add_ps(r, _mm512_loadu_ps(bias.add(v * LANES)));
                            r = _mm512_add_ps(r, _mm512_loadu_ps(rp));
                        }
                    }
                    _mm512_storeu_ps(cp, r);
                }
            }
        } else {
            // The register kernels: one pass per term, each a loop of one or two instructions
            // that LLVM unrolls whatever the kernel. With the epilogue's match inside one loop
            // over the tile, the unroller gave up on some kernels (the bf16 ones of 20-28 sums),
            // which then kept their sums in memory, stored on every K step (bf16 W2F slower than
            // f32 on Zen 4).
            if t.accumulate {
                for (i, acc) in acc.iter_mut().enumerate() {
                    for (v, acc) in acc.iter_mut().enumerate() {
                        let cp = t.c.add(i * t.ldc + v * LANES);
                        *acc = _mm512_add_ps(*acc, _mm512_loadu_ps(cp));
                    }
                }
            }
            match t.epi {
                TileEpi::None => {}
                TileEpi::Bias { bias, .. } => {
                    for acc in acc.iter_mut() {
                        for (v, acc) in acc.iter_mut().enumerate() {
                            *acc = _mm512_add_ps(*acc, _mm512_loadu_ps(bias.add(v * LANES)));
                        }
                    }
                }
                TileEpi::BiasResidual { bias, res, ldr } => {
                    for (i, acc) in acc.iter_mut().enumerate() {
                        for (v, acc) in acc.iter_mut().enumerate() {
                            let r = _mm512_add_ps(*acc, _mm512_loadu_ps(bias.add(v * LANES)));
                            let rp = res.add(i * ldr + v * LANES);
                            *acc = _mm512_add_ps(r, _mm512_loadu_ps(rp));
                        }
                    }
                }
            }
            for (i, acc) in acc.iter().enumerate() {
                for (v, &acc) in acc.iter().enumerate() {
                    _mm512_storeu_ps(t.c.add(i * t.ldc + v * LANES), acc);
                }
            }
            if let TileEpi::Bias { act: Some(act), .. } = t.epi {
                $crate::linear::avx512::activate_block(t.c, t.ldc, $mr, $nv, act);
            }
        }
    }};
}
pub(super) use store_tile;

/// `C[mr, NV*16] (+)= A[mr, kc] B[kc, NV*16]`, then the epilogue.
///
/// # Safety
/// The CPU supports AVX-512F; `t` describes in-bounds buffers: `a` holds `kc * MR` floats, `b`
/// holds `kc * NV * 16` (`pf` is only prefetched, never read), `c` (and `res`) `MR` rows of
/// `NV * 16` floats `ldc` (`ldr`) apart, `bias` `NV * 16` floats.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn kernel<const MR: usize, const NV: usize>(t: &Tile) {
    kernel_body::<MR, NV, B_F32, false>(t)
}

/// As [`kernel`] with A read where it is, unpacked: row `i` at `a + i * lda`, its K steps
/// consecutive (the driver's products of one row block, where packing A was a serial step
/// between the parallel ones).
///
/// # Safety
/// As [`kernel`], with `a` holding `MR` rows of `kc` floats `lda` apart.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn kernel_direct<const MR: usize, const NV: usize>(t: &Tile) {
    kernel_body::<MR, NV, B_F32, true>(t)
}

/// As [`kernel`] with B in 16 bits: `b` and `pf` point at `kc * NV * 16` f16 (`B` =
/// [`B_F16`]) or bf16 ([`B_BF16`]) bits (`u16`), each B row widened to f32 as it is loaded (f16 by
/// `vcvtph2ps`, bf16 by a zero extension and a 16-bit shift); the sums stay f32.
///
/// # Safety
/// As [`kernel`], with `b` and `pf` holding `kc * NV * 16` u16.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn kernel_half<const MR: usize, const NV: usize, const B: u8>(t: &Tile) {
    kernel_body::<MR, NV, B, false>(t)
}

/// The kernels' code; `B` (f32, f16 or bf16 B, [`B_F32`]) and `DIRECT` (A unpacked, rows `lda`
/// apart) are compile-time constants, so the f32 kernel is the same instructions it was before
/// either existed.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn kernel_body<const MR: usize, const NV: usize, const B: u8, const DIRECT: bool>(t: &Tile) {
    // C is written (and, for later K blocks, read) at the end: start fetching it now. Not when
    // streaming (`pf_l1`): these prefetches' misses compete with the stream's (docs/gemm.md,
    // "W1: the stores").
    if !t.pf_l1 {
        prefetch_c::<MR, NV>(t);
    }
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    let (mut a, mut b, mut pf) = (t.a, t.b, t.pf);
    // Floats' worth of memory one B row spans: a 16-bit row is half as long.
    let step = if B == B_F32 {
        NV * LANES
    } else {
        NV * LANES / 2
    };
    for _ in 0..t.kc {
        prefetch_b_row(pf, step, DIRECT && t.pf_l1);
        pf = pf.wrapping_add(step);
        let mut bv = [_mm512_setzero_ps(); NV];
        for (v, bv) in bv.iter_mut().enumerate() {
            let half = || _mm256_loadu_si256(b.cast::<u16>().add(v * LANES).cast());
            *bv = match B {
                B_F16 => _mm512_cvtph_ps(half()),
                B_BF16 => {
                    _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(half())))
                }
                _ => _mm512_loadu_ps(b.add(v * LANES)),
            };
        }
        for (i, acc) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_ps(*a.add(if DIRECT { i * t.lda } else { i }));
            for (acc, bv) in acc.iter_mut().zip(&bv) {
                *acc = _mm512_fmadd_ps(av, *bv, *acc);
            }
        }
        a = a.add(if DIRECT { 1 } else { MR });
        b = b.add(step);
    }
    store_tile!(t, acc, MR, NV);
}

/// Prefetches the (MR, NV * 16) block of C the kernel writes (and, for later K blocks, reads) at
/// its end.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn prefetch_c<const MR: usize, const NV: usize>(t: &Tile) {
    prefetch_block(t.c, t.ldc, MR, NV * LANES);
}

/// Prefetches the `floats` floats at `pf`, every 64-byte line: one k step's row of a B panel, for
/// the f32 and 16-bit-B kernels of both x86 paths. Into L1 (T0) when `l1`: a streaming product's
/// `pf`, 2 KB ahead in the panel being read. Else into L2 (T1): the next panel, a panel ahead
/// (48-96 KB, as much as L1 holds), where a T0 prefetch holds one of L1's few miss buffers until
/// its line arrives (at W1 that capped bert-base at 22 GB/s of weights on an Intel Xeon; T1:
/// 0.88x the time) and, on AVX2's 32 KB L1 (Zen), evicted the panel being read (docs/gemm.md,
/// "W1 on AVX2").
///
/// # Safety
/// None: prefetches do not fault (`pf` is only offset, with wrapping arithmetic).
#[inline(always)]
pub(super) unsafe fn prefetch_b_row(pf: *const f32, floats: usize, l1: bool) {
    if l1 {
        for line in (0..floats).step_by(16) {
            _mm_prefetch::<_MM_HINT_T0>(pf.wrapping_add(line) as *const i8);
        }
    } else {
        for line in (0..floats).step_by(16) {
            _mm_prefetch::<_MM_HINT_T1>(pf.wrapping_add(line) as *const i8);
        }
    }
}

/// Prefetches (T0) `rows` rows of `floats` floats, `ld` apart, from `c`: every 64-byte line, the
/// last float's included (a row need not start on a line). The kernels' C tiles (f32 and int8).
///
/// # Safety
/// None beyond the pointer arithmetic staying in one allocation: `c` holds the block.
#[inline(always)]
pub(super) unsafe fn prefetch_block(c: *const f32, ld: usize, rows: usize, floats: usize) {
    for i in 0..rows {
        let row = c.add(i * ld);
        for f in (0..floats).step_by(LANES) {
            _mm_prefetch::<_MM_HINT_T0>(row.add(f) as *const i8);
        }
        _mm_prefetch::<_MM_HINT_T0>(row.add(floats - 1) as *const i8);
    }
}

/// `C[mr, NV*16] (+)= A[mr, kc] B[kc, NV*16]` in bf16 products with f32 sums, then the epilogue:
/// A and B come as bf16 pairs (two K steps to a 32-bit lane, [`crate::bf16::pair`]) and each
/// `vdpbf16ps` does two K steps of 16 columns, twice an f32 FMA's work.
///
/// # Safety
/// The CPU supports AVX-512F and AVX512-BF16; `a` holds `ceil(kc / 2) * MR` pairs, `b` and `pf`
/// `ceil(kc / 2) * NV * 16`, the rest as [`kernel`].
#[target_feature(enable = "avx512f,avx512bf16")]
pub(super) unsafe fn kernel_bf16<const MR: usize, const NV: usize>(t: &Tile) {
    prefetch_c::<MR, NV>(t);
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    let (mut a, mut b, mut pf) = (t.a.cast::<i32>(), t.b.cast::<i32>(), t.pf);
    for _ in 0..t.kc.div_ceil(2) {
        for line in (0..NV * LANES).step_by(16) {
            _mm_prefetch::<_MM_HINT_T0>(pf.add(line) as *const i8);
        }
        pf = pf.add(NV * LANES);
        let mut bv = [_mm512_setzero_si512(); NV];
        for (v, bv) in bv.iter_mut().enumerate() {
            *bv = _mm512_loadu_si512(b.add(v * LANES).cast());
        }
        for (i, acc) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_epi32(*a.add(i));
            for (acc, &bv) in acc.iter_mut().zip(&bv) {
                // SAFETY (transmute): __m512i and __m512bh are both 64 bytes of lanes.
                *acc = _mm512_dpbf16_ps(
                    *acc,
                    std::mem::transmute::<__m512i, __m512bh>(av),
                    std::mem::transmute::<__m512i, __m512bh>(bv),
                );
            }
        }
        a = a.add(MR);
        b = b.add(NV * LANES);
    }
    store_tile!(t, acc, MR, NV);
}

/// Applies `act` in place to `rows` rows of `nv` vectors, `ld` floats apart.
///
/// # Safety
/// AVX-512F; the block is in bounds.
#[target_feature(enable = "avx512f")]
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
            _mm512_storeu_ps(p, activation(act, _mm512_loadu_ps(p)));
        }
    }
}

/// Applies `act` to each of `xs` in place: vectorized body, scalar [`Activation::apply`] tail.
///
/// # Safety
/// AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn activate_slice(xs: &mut [f32], act: Activation) {
    let mut chunks = xs.chunks_exact_mut(LANES);
    for c in &mut chunks {
        let p = c.as_mut_ptr();
        _mm512_storeu_ps(p, activation(act, _mm512_loadu_ps(p)));
    }
    for x in chunks.into_remainder() {
        *x = act.apply(*x);
    }
}

#[target_feature(enable = "avx512f")]
#[inline]
pub(super) fn activation(act: Activation, x: __m512) -> __m512 {
    match act {
        Activation::Gelu => gelu(x),
        Activation::GeluTanh => gelu_tanh(x),
        Activation::Relu => _mm512_max_ps(x, _mm512_setzero_ps()),
        Activation::Silu => {
            let e = exp(_mm512_sub_ps(_mm512_setzero_ps(), x));
            _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0), e))
        }
    }
}

/// `0.5 x (1 + erf(x / sqrt 2))` with the Abramowitz & Stegun 7.1.26 erf of [`crate::activation::erf`].
#[target_feature(enable = "avx512f")]
#[inline]
fn gelu(x: __m512) -> __m512 {
    use crate::activation::{ERF_A as A, ERF_P as P};
    let z = _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::FRAC_1_SQRT_2));
    let sign = and(z, _mm512_set1_ps(-0.0));
    let a = _mm512_abs_ps(z);
    let one = _mm512_set1_ps(1.0);
    let t = _mm512_div_ps(one, _mm512_fmadd_ps(_mm512_set1_ps(P), a, one));
    let mut poly = _mm512_set1_ps(A[4]);
    for &c in A[..4].iter().rev() {
        poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(c));
    }
    poly = _mm512_mul_ps(poly, t);
    let e = gauss(a);
    let erf = or(_mm512_fnmadd_ps(poly, e, one), sign);
    _mm512_mul_ps(
        _mm512_mul_ps(_mm512_set1_ps(0.5), x),
        _mm512_add_ps(one, erf),
    )
}

/// `exp(-a^2)` for the erf of [`gelu`] and [`gelu_derivative`] (`a = |z| >= 0`), as
/// `2^(-a^2 log2 e)` by `exp2` (the softmax's: eleven vector operations with AVX-512, fifteen on
/// AVX2, where `exp` takes nineteen: GELU was bound by its operations, not its division); 0 from
/// `a > 10`, where `exp2` stops at 2^-126 (and for NaN, which `x` still carries into the result).
#[target_feature(enable = "avx512f")]
#[inline]
fn gauss(a: __m512) -> __m512 {
    let e = exp2(_mm512_mul_ps(
        _mm512_mul_ps(a, a),
        _mm512_set1_ps(-std::f32::consts::LOG2_E),
    ));
    _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_LE_OQ>(a, _mm512_set1_ps(10.0)), e)
}

/// `dz = dy * gelu'(z)` element-wise: vectorized body, scalar
/// [`crate::train::activation::derivative`] tail.
///
/// # Safety
/// The CPU supports AVX512F; the three slices have the same length.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn gelu_backward_slice(dz: &mut [f32], dy: &[f32], z: &[f32]) {
    let body = dz.len() / LANES * LANES;
    for i in (0..body).step_by(LANES) {
        let d = gelu_derivative(_mm512_loadu_ps(z.as_ptr().add(i)));
        let g = _mm512_loadu_ps(dy.as_ptr().add(i));
        _mm512_storeu_ps(dz.as_mut_ptr().add(i), _mm512_mul_ps(g, d));
    }
    for i in body..dz.len() {
        dz[i] = dy[i] * crate::train::activation::derivative(Activation::Gelu, z[i]);
    }
}

/// `gelu'(x) = Phi(x) + x phi(x)`: [`gelu`]'s erf, whose `exp(-x^2 / 2)` is also the normal density's.
#[target_feature(enable = "avx512f")]
#[inline]
fn gelu_derivative(x: __m512) -> __m512 {
    use crate::activation::{ERF_A as A, ERF_P as P};
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    let zs = _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::FRAC_1_SQRT_2));
    let sign = and(zs, _mm512_set1_ps(-0.0));
    let a = _mm512_abs_ps(zs);
    let one = _mm512_set1_ps(1.0);
    let t = _mm512_div_ps(one, _mm512_fmadd_ps(_mm512_set1_ps(P), a, one));
    let mut poly = _mm512_set1_ps(A[4]);
    for &c in A[..4].iter().rev() {
        poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(c));
    }
    poly = _mm512_mul_ps(poly, t);
    let e = gauss(a);
    let erf = or(_mm512_fnmadd_ps(poly, e, one), sign);
    let cdf = _mm512_mul_ps(_mm512_set1_ps(0.5), _mm512_add_ps(one, erf));
    _mm512_fmadd_ps(_mm512_mul_ps(x, _mm512_set1_ps(INV_SQRT_2PI)), e, cdf)
}

/// `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`, tanh(u) = sign(u) (1 - e) / (1 + e), e = exp(-2|u|).
#[target_feature(enable = "avx512f")]
#[inline]
fn gelu_tanh(x: __m512) -> __m512 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    let x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
    let u = _mm512_mul_ps(
        _mm512_set1_ps(SQRT_2_OVER_PI),
        _mm512_fmadd_ps(_mm512_set1_ps(0.044_715), x3, x),
    );
    let sign = and(u, _mm512_set1_ps(-0.0));
    let a = _mm512_abs_ps(u);
    let one = _mm512_set1_ps(1.0);
    let e = exp(_mm512_mul_ps(_mm512_set1_ps(-2.0), a));
    let th = or(
        _mm512_div_ps(_mm512_sub_ps(one, e), _mm512_add_ps(one, e)),
        sign,
    );
    _mm512_mul_ps(
        _mm512_mul_ps(_mm512_set1_ps(0.5), x),
        _mm512_add_ps(one, th),
    )
}

/// Bitwise and of f32 vectors (`_mm512_and_ps` needs AVX-512DQ).
#[target_feature(enable = "avx512f")]
#[inline]
fn and(a: __m512, b: __m512) -> __m512 {
    _mm512_castsi512_ps(_mm512_and_si512(
        _mm512_castps_si512(a),
        _mm512_castps_si512(b),
    ))
}

/// Bitwise or of f32 vectors (`_mm512_or_ps` needs AVX-512DQ).
#[target_feature(enable = "avx512f")]
#[inline]
fn or(a: __m512, b: __m512) -> __m512 {
    _mm512_castsi512_ps(_mm512_or_si512(
        _mm512_castps_si512(a),
        _mm512_castps_si512(b),
    ))
}
