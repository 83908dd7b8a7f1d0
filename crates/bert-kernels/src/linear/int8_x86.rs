//! x86-64 int8 microkernels (AVX-512 VNNI and AVX2) and the per-ISA builds of the activation
//! quantizer and the outlier search. Layouts and the arithmetic they share are in `int8.rs`.

use std::arch::x86_64::*;
use std::mem::MaybeUninit;

use super::int8::{
    column_maxima, int8_scale, max_abs, outlier_scan_generic, outlier_weights, quantize_one,
    quantize_tile_generic, store_row, ALayout, OutlierScan, QTile, QuantTile, MAX_MR,
};

/// [`outlier_scan_generic`] vectorized for AVX2.
///
/// # Safety
/// The CPU supports AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn outlier_scan_avx2(scan: OutlierScan<'_>) {
    outlier_scan_generic(scan)
}

/// [`outlier_scan_generic`] vectorized for AVX-512.
///
/// # Safety
/// The CPU supports AVX-512F and BW.
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn outlier_scan_avx512(scan: OutlierScan<'_>) {
    outlier_scan_generic(scan)
}

/// [`column_maxima`] vectorized for AVX2 (a closure of the parallel loop is compiled for the
/// baseline's SSE2).
///
/// # Safety
/// The CPU supports AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn column_maxima_avx2(rows: &[f32], out: &mut [f32]) {
    column_maxima(rows, out)
}

/// [`column_maxima`] vectorized for AVX-512.
///
/// # Safety
/// The CPU supports AVX-512F and BW.
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn column_maxima_avx512(rows: &[f32], out: &mut [f32]) {
    column_maxima(rows, out)
}

/// [`quantize_tile_generic`] for AVX2, A stored signed: the same values. AVX2's own layout,
/// [`ALayout::Groups16`], 8 columns at a time (`vcvtps2dq` rounds half to even as the scalar rule
/// does; NaN lanes are zeroed first, as `NaN as i8` is 0), packed to i16 and stored as the two
/// 8-byte words of its two groups (the generic body, scattering one i16 at a time, was 12% of
/// MiniLM int8 W2F); other layouts by the generic body.
///
/// # Safety
/// The CPU supports AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn quantize_tile_avx2(t: QuantTile<'_>) {
    if t.layout != ALayout::Groups16 {
        return quantize_tile_generic(t, false);
    }
    let QuantTile {
        xs,
        k,
        mr,
        keep,
        dst,
        scales,
        layout: _,
    } = t;
    let k4 = k.div_ceil(4);
    assert!(
        dst.len() >= k4 * mr * 8 && xs.len() / k <= mr,
        "quantize_tile_avx2: tile too small"
    );
    let body = k / 8 * 8;
    let (lo, hi) = (_mm256_set1_ps(-127.0), _mm256_set1_ps(127.0));
    let out = dst.as_mut_ptr();
    for (i, (row, s)) in xs.chunks_exact(k).zip(scales.iter_mut()).enumerate() {
        let (scale, inv) = int8_scale(max_abs(row, keep));
        *s = scale;
        let vinv = _mm256_set1_ps(inv);
        for c in (0..body).step_by(8) {
            let mut v = _mm256_loadu_ps(row.as_ptr().add(c));
            if !keep.is_empty() {
                v = _mm256_mul_ps(v, _mm256_loadu_ps(keep.as_ptr().add(c)));
            }
            v = _mm256_mul_ps(v, vinv);
            v = _mm256_and_ps(v, _mm256_cmp_ps::<_CMP_ORD_Q>(v, v));
            v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
            let q = _mm256_cvtps_epi32(v);
            let q16 = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256::<1>(q));
            // Columns c..c + 4 are group c / 4, c + 4..c + 8 the next.
            let g = c / 4;
            _mm_storel_epi64(out.add((g * mr + i) * 8).cast(), q16);
            _mm_storeh_pd(
                out.add(((g + 1) * mr + i) * 8).cast(),
                _mm_castsi128_pd(q16),
            );
        }
        scatter_tail(dst, row, keep, body, inv, mr, i, ALayout::Groups16);
    }
}

/// [`quantize_tile_generic`] for AVX-512, A stored as u8 = q + 128 for `vpdpbusd` / `tdpbusd`:
/// the same bytes, 16 values per step (`vcvtps2dq` rounds half to even as the scalar rule does;
/// NaN lanes are zeroed first, as `NaN as i8` is 0), where LLVM's vectorization of the generic
/// body spent its time moving lanes one by one. A full VNNI tile of 8 rows is quantized 16 columns
/// at a time and stored transposed into the (K/4, 8, 4) layout by two `vpermt2d` (two 64-byte
/// stores where a row at a time takes 32 4-byte ones); the AMX layout takes each row's 16 bytes
/// as they come.
///
/// # Safety
/// The CPU supports AVX-512F and BW.
///
/// # Panics
/// If the tile has more than [`MAX_MR`] rows, or is AVX2's signed i16 layout
/// ([`ALayout::Groups16`], [`quantize_tile_avx2`]'s).
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn quantize_tile_avx512(t: QuantTile<'_>) {
    let QuantTile {
        xs,
        k,
        mr,
        keep,
        dst,
        scales,
        layout,
    } = t;
    let rows = xs.len() / k;
    assert!(
        rows <= MAX_MR,
        "quantize_tile_avx512: at most {MAX_MR} rows per tile"
    );
    assert!(
        layout != ALayout::Groups16,
        "quantize_tile_avx512: A is shifted u8, not AVX2's signed i16 groups"
    );
    let mut inv = [0.0f32; MAX_MR];
    for ((row, s), inv) in xs.chunks_exact(k).zip(scales.iter_mut()).zip(&mut inv) {
        (*s, *inv) = int8_scale(max_abs(row, keep));
    }
    let body = k / 16 * 16;
    // One row's 16 columns from `c`: u8 = q + 128.
    let (lo, hi) = (_mm512_set1_ps(-127.0), _mm512_set1_ps(127.0));
    let flip = _mm_set1_epi8(0x80u8 as i8);
    let quant16 = |row: &[f32], c: usize, vinv: __m512| {
        let mut v = _mm512_loadu_ps(row.as_ptr().add(c));
        if !keep.is_empty() {
            v = _mm512_mul_ps(v, _mm512_loadu_ps(keep.as_ptr().add(c)));
        }
        v = _mm512_mul_ps(v, vinv);
        v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_ORD_Q>(v, v), v);
        v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
        _mm_xor_si128(_mm512_cvtepi32_epi8(_mm512_cvtps_epi32(v)), flip)
    };
    if layout == ALayout::Groups && mr == 8 && rows == 8 {
        // Rows 0-3 in `r03` and 4-7 in `r47` as 16 words (row r, group g at word 4r + g of the
        // pair); group g's 8 rows are words 4r + g, r = 0..8.
        let idx = |g0: i32| {
            let w = |j: i32| (j % 8) * 4 + g0 + j / 8;
            _mm512_setr_epi32(
                w(0),
                w(1),
                w(2),
                w(3),
                w(4),
                w(5),
                w(6),
                w(7),
                w(8),
                w(9),
                w(10),
                w(11),
                w(12),
                w(13),
                w(14),
                w(15),
            )
        };
        let (idx01, idx23) = (idx(0), idx(2));
        let vinv = inv.map(|v| _mm512_set1_ps(v));
        let rows: [&[f32]; 8] = std::array::from_fn(|i| &xs[i * k..(i + 1) * k]);
        for c in (0..body).step_by(16) {
            let q: [__m128i; 8] = std::array::from_fn(|i| quant16(rows[i], c, vinv[i]));
            let join = |a: &[__m128i]| {
                let v = _mm512_castsi128_si512(a[0]);
                let v = _mm512_inserti32x4::<1>(v, a[1]);
                let v = _mm512_inserti32x4::<2>(v, a[2]);
                _mm512_inserti32x4::<3>(v, a[3])
            };
            let (r03, r47) = (join(&q[..4]), join(&q[4..]));
            let out = dst.as_mut_ptr().add(c / 4 * 32);
            _mm512_storeu_si512(out.cast(), _mm512_permutex2var_epi32(r03, idx01, r47));
            _mm512_storeu_si512(
                out.add(64).cast(),
                _mm512_permutex2var_epi32(r03, idx23, r47),
            );
        }
        for (i, row) in rows.iter().enumerate() {
            scatter_tail(dst, row, keep, body, inv[i], mr, i, ALayout::Groups);
        }
        return;
    }
    // AMX's row-major tile, a partial tile or another mr: a row at a time, straight into its row
    // (Rows), or through a row buffer scattered into the groups.
    let row_bytes = k.div_ceil(4) * 4;
    let rows_layout = layout == ALayout::Rows;
    let mut row_q = if rows_layout {
        Vec::new()
    } else {
        vec![0u8; row_bytes]
    };
    let stride = dst.len() / mr;
    for (i, row) in xs.chunks_exact(k).enumerate() {
        let vinv = _mm512_set1_ps(inv[i]);
        let out = if rows_layout {
            &mut dst[i * stride..][..row_bytes]
        } else {
            &mut row_q[..]
        };
        for c in (0..body).step_by(16) {
            _mm_storeu_si128(out.as_mut_ptr().add(c).cast(), quant16(row, c, vinv));
        }
        for c in body..k {
            let m = keep.get(c).copied().unwrap_or(1.0);
            out[c] = (quantize_one(row[c] * m, inv[i]) as u8) ^ 0x80;
        }
        // As the generic body: the padding of the last group of 4 as 0.
        out[k..].fill(0);
        if !rows_layout {
            store_row(dst, &row_q, mr, i, layout);
        }
    }
}

/// Columns `from..` of row `i` (the part past the vector steps), with the K padding as 0, into
/// the (K/4, mr, 4) tile `dst`, one value at a time (`from` is a multiple of 4): as the x86
/// quantizers store A, u8 = q + 128 in `Groups` (AVX-512's), i16 in `Groups16` (AVX2's).
#[allow(clippy::too_many_arguments)]
fn scatter_tail(
    dst: &mut [u8],
    row: &[f32],
    keep: &[f32],
    from: usize,
    inv: f32,
    mr: usize,
    i: usize,
    layout: ALayout,
) {
    for c in from..row.len().div_ceil(4) * 4 {
        let q = row
            .get(c)
            .map(|&v| quantize_one(v * keep.get(c).copied().unwrap_or(1.0), inv));
        let at = (c / 4) * mr + i;
        match layout {
            ALayout::Groups => dst[at * 4 + c % 4] = q.map_or(0, |q| (q as u8) ^ 0x80),
            ALayout::Groups16 => {
                let at = at * 8 + (c % 4) * 2;
                dst[at..at + 2].copy_from_slice(&i16::from(q.unwrap_or(0)).to_le_bytes());
            }
            ALayout::Rows => unreachable!("row-major tiles are quantized in place"),
        }
    }
}

/// AVX-512 VNNI: `C[R, 48]` in 3R zmm accumulators; per group of 4 k, 3 loads of B, R 4-byte
/// broadcasts of (shifted, unsigned) A and 3R `vpdpbusd`. Then `acc - 128 colsum`, dequantization,
/// bias, residual or activation.
///
/// # Safety
/// The CPU supports AVX-512F, BW and VNNI; `t` describes in-bounds buffers (see [`QTile`]) for R
/// rows and NR = 48 columns.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn vnni_kernel<const R: usize>(t: &QTile) {
    const NV: usize = 3;
    prefetch_c::<R>(t, NV * 16);
    let acc = vnni_sums::<R>(t);
    store_avx512::<NV, false>(t, R, |i, v| acc[i][v]);
}

/// Where `t.prefetch_c`: prefetches the tile's C (R rows of `floats` floats), which the kernel
/// writes once, after its K loop, so that its stores (and the activation's re-read) do not wait
/// for the lines (the f32 kernels' `prefetch_c`; [`super::int8::QTile::prefetch_c`] says when).
///
/// # Safety
/// `t.c` holds R rows of `floats` floats, `t.ldc` apart.
#[inline(always)]
unsafe fn prefetch_c<const R: usize>(t: &QTile, floats: usize) {
    if t.prefetch_c {
        super::avx512::prefetch_block(t.c, t.ldc, R, floats);
    }
}

/// The store of an AVX-512 int8 tile of `rows` rows and NV x 16 columns whose i32 sums are
/// `sums(row, vector)`: `sums - 128 colsum`, dequantization, bias, the outlier columns in f32,
/// residual or activation (the VNNI and AMX kernels').
///
/// With `ACT_IN_STORE` the activation is applied to each vector before its store; else the block
/// is stored, then re-read and activated. AMX's sums come from memory, so its registers are free
/// for the activation, and re-reading C cost it: C's rows are N floats apart (12 KB for
/// bert-base's FFN, so all 32 rows of a tile fall in one L1 set) and the re-read missed L1 (GELU
/// was 9.6% of bert-base int8 W2F's samples; in the store, bert-base int8 W2F took 0.92x and
/// 0.94x the time in two runs of 7 and 9 interleaved rounds on an Intel Xeon). VNNI's sums are 3R
/// registers, which the activation's temporaries would spill (MiniLM int8 W2F 1.04x the time).
///
/// # Safety
/// The CPU supports AVX-512F; `t` describes in-bounds buffers (see [`QTile`]) for `rows` rows and
/// NR = NV x 16 columns.
#[inline(always)]
pub(super) unsafe fn store_avx512<const NV: usize, const ACT_IN_STORE: bool>(
    t: &QTile,
    rows: usize,
    sums: impl Fn(usize, usize) -> __m512i,
) {
    let mut buf = MaybeUninit::uninit();
    let (wo, ldw) = outlier_weights(t, NV * 16, &mut buf);
    for i in 0..rows {
        let sa = _mm512_set1_ps(*t.sa.add(i));
        let c = t.c.add(i * t.ldc);
        for v in 0..NV {
            let corr = _mm512_loadu_si512(t.corr.add(v * 16) as *const _);
            let s = _mm512_mul_ps(sa, _mm512_loadu_ps(t.sw.add(v * 16)));
            let f = _mm512_cvtepi32_ps(_mm512_sub_epi32(sums(i, v), corr));
            let mut r = _mm512_fmadd_ps(f, s, _mm512_loadu_ps(t.bias.add(v * 16)));
            for o in 0..t.n_out {
                let xo = _mm512_set1_ps(*t.xo.add(i * t.n_out + o));
                r = _mm512_fmadd_ps(xo, _mm512_loadu_ps(wo.add(o * ldw + v * 16)), r);
            }
            if !t.res.is_null() {
                r = _mm512_add_ps(r, _mm512_loadu_ps(t.res.add(i * t.ldr + v * 16)));
            }
            if let (true, Some(act)) = (ACT_IN_STORE, t.act) {
                r = super::avx512::activation(act, r);
            }
            _mm512_storeu_ps(c.add(v * 16), r);
        }
    }
    if let (false, Some(act)) = (ACT_IN_STORE, t.act) {
        super::avx512::activate_block(t.c, t.ldc, rows, NV, act);
    }
}

/// The K loop of [`vnni_kernel`], on its own so that its accumulators stay in registers: inlined
/// into the kernel's body (whose epilogue loops over the outlier columns at run time) LLVM stored all
/// 3R of them to the stack on every k step, which halved the kernel's throughput.
///
/// # Safety
/// As [`vnni_kernel`].
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn vnni_sums<const R: usize>(t: &QTile) -> [[__m512i; 3]; R] {
    const NV: usize = 3;
    let mut acc = [[_mm512_setzero_si512(); NV]; R];
    let (mut a, mut b) = (t.a, t.b);
    for _ in 0..t.k4 {
        // Three named B vectors: with `zip` over an array of them LLVM stored more accumulators
        // to the stack on every step.
        let b0 = _mm512_loadu_si512(b as *const _);
        let b1 = _mm512_loadu_si512(b.add(64) as *const _);
        let b2 = _mm512_loadu_si512(b.add(128) as *const _);
        for (i, acc) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_epi32((a.add(4 * i) as *const i32).read_unaligned());
            acc[0] = _mm512_dpbusd_epi32(acc[0], av, b0);
            acc[1] = _mm512_dpbusd_epi32(acc[1], av, b1);
            acc[2] = _mm512_dpbusd_epi32(acc[2], av, b2);
        }
        a = a.add(t.a_step);
        b = b.add(NV * 64);
    }
    acc
}

/// AVX2: `C[R, 16]` as two halves of 8 columns, each in 2R ymm accumulators over the whole K.
/// A is i16 ([`ALayout::Groups16`]); per group of 4 k, the half's 32 bytes of the panel are
/// sign-extended to two vectors of 4 columns x 4 k i16 (`vpmovsxbw`), each row's 4 values are
/// broadcast as one 64-bit lane, and `vpmaddwd` leaves each column's sum in two adjacent i32
/// lanes, added after the K loop. Exact (i16 products, i32 sums). It replaced `vpmaddubsw` on |a|
/// and sign(a) * w (the same integers): that took a `vpsignb` per row and vector besides the two
/// multiplies (`cargo bench --bench int8`'s register-only loops, one Zen 4 core at 256 bits: 133
/// GOP/s against this form's 189, f32 FMAs 117; docs/quantization.md). Both halves in one call,
/// so that each row of C is stored as one whole 64-byte line.
///
/// # Safety
/// The CPU supports AVX2 and FMA; `t` describes in-bounds buffers (see [`QTile`]) for R rows and
/// NR = 16 columns, A in [`ALayout::Groups16`].
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn avx2_kernel<const R: usize>(t: &QTile) {
    const NV: usize = 2;
    prefetch_c::<R>(t, NV * 8);
    let acc = [avx2_sums::<R>(t, 0), avx2_sums::<R>(t, 32)];
    let mut buf = MaybeUninit::uninit();
    let (wo, ldw) = outlier_weights(t, NV * 8, &mut buf);
    for i in 0..R {
        let sa = _mm256_set1_ps(*t.sa.add(i));
        let c = t.c.add(i * t.ldc);
        for (v, acc) in acc.iter().enumerate() {
            let corr = _mm256_loadu_si256(t.corr.add(v * 8) as *const _);
            let s = _mm256_mul_ps(sa, _mm256_loadu_ps(t.sw.add(v * 8)));
            let f = _mm256_cvtepi32_ps(_mm256_sub_epi32(acc[i], corr));
            let mut r = _mm256_fmadd_ps(f, s, _mm256_loadu_ps(t.bias.add(v * 8)));
            for o in 0..t.n_out {
                let xo = _mm256_set1_ps(*t.xo.add(i * t.n_out + o));
                r = _mm256_fmadd_ps(xo, _mm256_loadu_ps(wo.add(o * ldw + v * 8)), r);
            }
            if !t.res.is_null() {
                r = _mm256_add_ps(r, _mm256_loadu_ps(t.res.add(i * t.ldr + v * 8)));
            }
            _mm256_storeu_ps(c.add(v * 8), r);
        }
    }
    if let Some(act) = t.act {
        super::avx2::activate_block(t.c, t.ldc, R, NV, act);
    }
}

/// The K loop of [`avx2_kernel`] over the 8 columns that start at byte `half` of each 64-byte
/// group of the panel, on its own for the reason [`vnni_sums`] is: each row's 8 column sums.
///
/// # Safety
/// As [`avx2_kernel`].
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_sums<const R: usize>(t: &QTile, half: usize) -> [__m256i; R] {
    // acc[i][h]: row i, columns 4h..4h + 4 of the half, two partial sums (k = 0, 1 and k = 2, 3
    // of each group) per column in adjacent lanes.
    let mut acc = [[_mm256_setzero_si256(); 2]; R];
    let (mut a, mut b) = (t.a, t.b.add(half));
    for _ in 0..t.k4 {
        let b0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(b as *const _));
        let b1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(b.add(16) as *const _));
        for (i, acc) in acc.iter_mut().enumerate() {
            let av = _mm256_set1_epi64x((a.add(8 * i) as *const i64).read_unaligned());
            acc[0] = _mm256_add_epi32(acc[0], _mm256_madd_epi16(av, b0));
            acc[1] = _mm256_add_epi32(acc[1], _mm256_madd_epi16(av, b1));
        }
        a = a.add(t.a_step);
        b = b.add(64);
    }
    // hadd(x, y) per 128-bit lane: [x0+x1, x2+x3, y0+y1, y2+y3 | x4+x5, ...] = columns
    // [0, 1, 4, 5 | 2, 3, 6, 7]; the 64-bit permute puts them in order.
    acc.map(|[lo, hi]| _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_hadd_epi32(lo, hi)))
}

/// Register-only loop of `iters` x 12 independent 512-bit FMAs; returns the flops done.
///
/// # Safety
/// The CPU supports AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn peak_fma(iters: usize) -> f64 {
    let mut acc = [_mm512_set1_ps(0.0); 12];
    let (a, b) = (_mm512_set1_ps(0.999), _mm512_set1_ps(1e-3));
    for _ in 0..iters {
        for acc in acc.iter_mut() {
            *acc = _mm512_fmadd_ps(*acc, a, b);
        }
    }
    let mut s = _mm512_setzero_ps();
    for acc in acc {
        s = _mm512_add_ps(s, acc);
    }
    std::hint::black_box(s);
    (iters * 12 * 16 * 2) as f64
}

/// Register-only loop of `iters` x 12 independent `vpdpbusd`; returns the int8 ops done (a multiply
/// and an add per byte pair).
///
/// # Safety
/// The CPU supports AVX-512F, BW and VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn peak_vnni(iters: usize) -> f64 {
    let mut acc = [_mm512_setzero_si512(); 12];
    let (a, b) = (_mm512_set1_epi8(3), _mm512_set1_epi8(-2));
    for _ in 0..iters {
        for acc in acc.iter_mut() {
            *acc = _mm512_dpbusd_epi32(*acc, a, b);
        }
    }
    let mut s = _mm512_setzero_si512();
    for acc in acc {
        s = _mm512_add_epi32(s, acc);
    }
    std::hint::black_box(s);
    (iters * 12 * 64 * 2) as f64
}

/// Register-only loop of `iters` x 12 independent 256-bit multiply-add steps in the form `form`
/// (see [`super::Avx2Loop`]); returns the ops done (2 per multiply-add).
///
/// # Safety
/// The CPU supports AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn peak_avx2(form: super::Avx2Loop, iters: usize) -> f64 {
    use super::Avx2Loop;
    let mut acc = [_mm256_setzero_si256(); 12];
    let (mut a, mut b) = (_mm256_set1_epi8(3), _mm256_set1_epi8(-2));
    let ones = _mm256_set1_epi16(1);
    // The operands made opaque to LLVM for every accumulator and step (no instruction), so that
    // it cannot compute the loop-invariant products once and leave only the additions.
    let mut opaque = || {
        std::arch::asm!("/* {0} {1} */", inout(ymm_reg) a, inout(ymm_reg) b, options(nomem, nostack, preserves_flags));
        (a, b)
    };
    // Multiply-adds per step and accumulator.
    let per = match form {
        Avx2Loop::Fma => {
            let mut f = [_mm256_setzero_ps(); 12];
            let (x, y) = (_mm256_set1_ps(0.999), _mm256_set1_ps(1e-3));
            for _ in 0..iters {
                for f in f.iter_mut() {
                    *f = _mm256_fmadd_ps(x, *f, y);
                }
            }
            std::hint::black_box(f);
            8
        }
        Avx2Loop::SignMaddubs => {
            for _ in 0..iters {
                // As the kernel: |a| once per row, for its two vectors of columns.
                for acc in acc.chunks_exact_mut(2) {
                    let (a, b0) = opaque();
                    let (_, b1) = opaque();
                    let abs = _mm256_sign_epi8(a, a);
                    for (acc, b) in acc.iter_mut().zip([b0, b1]) {
                        let p = _mm256_maddubs_epi16(abs, _mm256_sign_epi8(b, a));
                        *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(p, ones));
                    }
                }
            }
            32
        }
        Avx2Loop::Madd16 => {
            for _ in 0..iters {
                for acc in acc.iter_mut() {
                    let (a, b) = opaque();
                    *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(a, b));
                }
            }
            16
        }
        Avx2Loop::U8Maddubs => {
            for _ in 0..iters {
                for acc in acc.iter_mut() {
                    let (a, b) = opaque();
                    let p = _mm256_maddubs_epi16(a, b);
                    *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(p, ones));
                }
            }
            32
        }
    };
    std::hint::black_box(acc);
    (iters * 12 * per * 2) as f64
}
