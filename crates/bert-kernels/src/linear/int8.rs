//! int8 `Linear`: weights quantized once at load per output channel (symmetric, i8 in [-127, 127]),
//! activations quantized per row at each call (symmetric, dynamic), products accumulated in i32 and
//! dequantized in f32 in the tile's store, where the bias, activation or residual are applied as in
//! the f32 [`crate::Linear`]. docs/quantization.md has the design and the measurements.
//!
//! Packed layouts: B (= W^T quantized) is cut into panels of NR columns (the last zero-padded); each
//! panel stores, for each group of 4 consecutive k, the 4 bytes of each of its NR columns
//! ((K/4, NR, 4), K zero-padded to a multiple of 4): one 32-bit lane per column, as `vpdpbusd`
//! consumes them. A is quantized per call into row tiles of MR rows, each (K/4, MR, 4) (i8, or
//! i16 for AVX2's `vpmaddwd`), so a kernel's MR broadcasts per step come from one cache line. No
//! K blocking: K <= a few thousand, so a panel (K x NR bytes) stays in L2 while the task's row
//! tiles pass over it, and the accumulators hold the whole K (no partial sums in C).
//!
//! Paths ([`Int8Path`]): AVX-512 VNNI (`vpdpbusd`, u8 x s8: the activations are stored shifted by
//! +128 and `128 * colsum(W)` is subtracted before dequantization), AVX2 (`vpmaddwd` on A stored as
//! i16 and B's bytes sign-extended as they are read: exact, no i16 saturation), and portable Rust.
//! Every path computes the same integers; they differ only in the f32 rounding of the
//! dequantization.

use std::cell::RefCell;
use std::mem::MaybeUninit;

#[cfg(target_arch = "x86_64")]
use super::amx::amx_kernel;
#[cfg(target_arch = "x86_64")]
use super::int8_x86::{avx2_kernel, vnni_kernel};
use super::{Epilogue, Isa};
use crate::hugepages::HugeBuf;
use crate::team::SendPtr;
use crate::Activation;

/// The int8 kernel family of a CPU path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Int8Path {
    /// Plain Rust, i32 accumulation.
    Portable,
    /// AVX2 `vpmaddwd` on i16 (also AVX-512 CPUs without VNNI).
    Avx2,
    /// AVX-512 VNNI `vpdpbusd`.
    Avx512Vnni,
    /// Intel AMX `tdpbusd` on tile registers (with the AVX-512 quantizer and epilogue).
    Amx,
}

impl Int8Path {
    /// The int8 kernels for the f32 path `isa`: VNNI needs AVX-512 BW + VNNI besides `isa`'s AVX-512F,
    /// else AVX2, else portable. `None` if the CPU cannot run `isa`.
    pub fn for_isa(isa: Isa) -> Option<Int8Path> {
        if !isa.is_supported() {
            return None;
        }
        Some(match isa {
            Isa::Scalar => Int8Path::Portable,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 if Int8Path::Avx512Vnni.is_supported() => {
                if Int8Path::Amx.is_supported() {
                    Int8Path::Amx
                } else {
                    Int8Path::Avx512Vnni
                }
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 | Isa::Avx512 if Isa::Avx2.is_supported() => Int8Path::Avx2,
            _ => Int8Path::Portable,
        })
    }

    /// Whether this CPU runs the path's kernels (AMX also needs the OS's permission and
    /// `BERT_KERNELS_AMX` not 0; see [`crate::AMX_ENV`]).
    pub fn is_supported(self) -> bool {
        match self {
            Int8Path::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Int8Path::Avx2 => Isa::Avx2.is_supported(),
            #[cfg(target_arch = "x86_64")]
            Int8Path::Avx512Vnni => {
                Isa::Avx512.is_supported()
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(target_arch = "x86_64")]
            Int8Path::Amx => Int8Path::Avx512Vnni.is_supported() && super::amx::available(),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Every path this CPU runs.
    pub fn supported() -> Vec<Int8Path> {
        [
            Int8Path::Portable,
            Int8Path::Avx2,
            Int8Path::Avx512Vnni,
            Int8Path::Amx,
        ]
        .into_iter()
        .filter(|p| p.is_supported())
        .collect()
    }

    /// Rows x columns of the register tile (columns at most [`MAX_NR`]).
    fn tile(self) -> (usize, usize) {
        match self {
            Int8Path::Portable => (4, 8),
            Int8Path::Avx2 => (AVX2_MR, 16),
            Int8Path::Avx512Vnni => (8, 48),
            #[cfg(target_arch = "x86_64")]
            Int8Path::Amx => (super::amx::MR, super::amx::NR),
            #[cfg(not(target_arch = "x86_64"))]
            Int8Path::Amx => unreachable!("AMX is x86-64 only"),
        }
    }

    /// Whether A is stored as u8 = q + 128 (`vpdpbusd` and `tdpbusd` multiply unsigned by signed
    /// bytes).
    fn shifted(self) -> bool {
        matches!(self, Int8Path::Avx512Vnni | Int8Path::Amx)
    }

    /// How the quantized A row tiles are laid out.
    fn a_layout(self) -> ALayout {
        match self {
            Int8Path::Amx => ALayout::Rows,
            Int8Path::Avx2 => ALayout::Groups16,
            Int8Path::Portable | Int8Path::Avx512Vnni => ALayout::Groups,
        }
    }

    /// K / 4 rounded up to what the kernels step by (AMX: 16 groups, 64 bytes per tile row).
    fn k4(self, k: usize) -> usize {
        if self == Int8Path::Amx {
            k.div_ceil(64) * 16
        } else {
            k.div_ceil(4)
        }
    }

    /// Bytes of a quantized A tile per row of it (see [`ALayout::row_bytes`]).
    fn a_row_bytes(self, k4: usize) -> usize {
        self.a_layout().row_bytes(k4)
    }

    /// Lower-case name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Int8Path::Portable => "portable",
            Int8Path::Avx2 => "avx2",
            Int8Path::Avx512Vnni => "avx512-vnni",
            Int8Path::Amx => "amx",
        }
    }
}

/// The scale of a symmetric int8 quantization of values whose largest magnitude is `max_abs`, and
/// its inverse: `q = round_ties_even(x * inv)` in [-127, 127], `x ~ q * scale`. All zeros give (0, 0).
pub fn int8_scale(max_abs: f32) -> (f32, f32) {
    if max_abs > 0.0 && max_abs.is_finite() {
        (max_abs / 127.0, 127.0 / max_abs)
    } else {
        (0.0, 0.0)
    }
}

/// `round_ties_even(x * inv)` clamped to [-127, 127]: the one quantization rule of weights and
/// activations (the reference twin uses it too). Rounds by adding and subtracting 1.5 x 2^23
/// (exact round-half-even for |v| <= 127 in the default rounding mode), which vectorizes, where
/// `f32::round_ties_even` became a call to `rintf` per element (a third of an int8 product's time
/// at M = 2048); NaN becomes 0.
#[inline(always)]
pub fn quantize_one(x: f32, inv: f32) -> i8 {
    const MAGIC: f32 = 12_582_912.0;
    let v = (x * inv).clamp(-127.0, 127.0);
    ((v + MAGIC) - MAGIC) as i8
}

/// At most this many input columns per product are taken out of the int8 product and computed
/// in f32 (LLM.int8()'s mixed-precision decomposition, Dettmers et al. 2022).
pub const MAX_OUTLIER_COLUMNS: usize = 8;
/// A column is an outlier when its largest magnitude over the product's rows exceeds this many
/// times the median column's.
pub const OUTLIER_RATIO: f32 = 4.0;

/// The outlier columns of `x` (M, K): BERT's hidden states carry a few channels tens of times
/// larger than the rest, which alone would set every row's int8 step. At most
/// [`MAX_OUTLIER_COLUMNS`] columns whose max |x| exceeds [`OUTLIER_RATIO`] x the median column
/// max, the largest first, returned in increasing order.
pub fn outlier_columns(x: &[f32], k: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let path = Int8Path::for_isa(crate::Isa::selected()).expect("the selected ISA is supported");
    outlier_columns_into(path, x, k, &mut OutlierSearch::default(), &mut out);
    out
}

/// [`outlier_columns`]' working buffers, reused across calls (its three allocations per product
/// were 1-2% of a MiniLM int8 W1 forward, on the thread the other one waits for).
#[derive(Default)]
struct OutlierSearch {
    /// (K) the column maxima; (blocks, K) while the parallel path folds them.
    colmax: Vec<f32>,
}

/// [`outlier_columns`] into `out` (cleared first), its serial parts with the vector code of
/// `path` (in baseline SSE2 the search was 3.4% of a MiniLM int8 W1 forward, on the thread the
/// other one waits for; every path finds the same columns).
fn outlier_columns_into(
    path: Int8Path,
    x: &[f32],
    k: usize,
    search: &mut OutlierSearch,
    out: &mut Vec<usize>,
) {
    let colmax = &mut search.colmax;
    // In parallel over blocks of rows for large inputs (a serial pass was 2.6% of a MiniLM int8
    // W2F forward, with the other core idle); max is exact in any order.
    const BLOCK_ROWS: usize = 64;
    colmax.clear();
    let large = x.len() >= 1 << 16 && x.len() > BLOCK_ROWS * k;
    if large {
        // (blocks, K): each block's column maxima, then their max into the first block's.
        colmax.resize(x.len().div_ceil(BLOCK_ROWS * k) * k, 0.0);
        crate::team::for_each_chunk_mut(colmax, k, |b, out| {
            let rows = &x[b * BLOCK_ROWS * k..((b + 1) * BLOCK_ROWS * k).min(x.len())];
            match path {
                Int8Path::Portable => column_maxima(rows, out),
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the path was checked at construction, so the CPU runs its features.
                Int8Path::Avx2 => unsafe { super::int8_x86::column_maxima_avx2(rows, out) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as above.
                Int8Path::Avx512Vnni | Int8Path::Amx => unsafe {
                    super::int8_x86::column_maxima_avx512(rows, out)
                },
                #[cfg(not(target_arch = "x86_64"))]
                _ => unreachable!("only the portable int8 path exists off x86-64"),
            }
        });
        let (first, rest) = colmax.split_at_mut(k);
        for block in rest.chunks_exact(k) {
            first
                .iter_mut()
                .zip(block)
                .for_each(|(a, &b)| *a = a.max(b));
        }
        colmax.truncate(k);
    } else {
        colmax.resize(k, 0.0);
    }
    let search = OutlierScan {
        x: if large { &[] } else { x },
        colmax,
        out,
    };
    match path {
        Int8Path::Portable => outlier_scan_generic(search),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the path was checked at construction, so the CPU runs its kernels' features.
        Int8Path::Avx2 => unsafe { super::int8_x86::outlier_scan_avx2(search) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Int8Path::Avx512Vnni | Int8Path::Amx => unsafe {
            super::int8_x86::outlier_scan_avx512(search)
        },
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("only the portable int8 path exists off x86-64"),
    }
}

/// `out` (K) = max(`out`, the column maxima of `rows` (rows, K)).
#[inline(always)]
pub(super) fn column_maxima(rows: &[f32], out: &mut [f32]) {
    for row in rows.chunks_exact(out.len()) {
        for (m, v) in out.iter_mut().zip(row) {
            *m = max_ignoring_nan(*m, v.abs());
        }
    }
}

/// What [`outlier_scan_generic`] works on: the column maxima `colmax` (K), first taken over `x`
/// (M, K) unless it is empty (then `colmax` holds them), and the columns found, `out`.
pub(super) struct OutlierScan<'a> {
    pub x: &'a [f32],
    pub colmax: &'a mut [f32],
    pub out: &'a mut Vec<usize>,
}

/// The serial part of [`outlier_columns`]: inlined into each ISA's `target_feature` wrapper so
/// that LLVM vectorizes it with that ISA.
#[inline(always)]
pub(super) fn outlier_scan_generic(scan: OutlierScan<'_>) {
    let OutlierScan { x, colmax, out } = scan;
    let k = colmax.len();
    if !x.is_empty() {
        colmax.fill(0.0);
        column_maxima(x, colmax);
    }
    let colmax = &*colmax;
    // The largest MAX_OUTLIER_COLUMNS columns, largest first, ties to the lower column (a later
    // column displaces one only if strictly larger). 16 columns at a time: past the first few,
    // almost no group holds a value above the smallest kept one, and the test of a whole group
    // vectorizes.
    let mut top = [(0.0f32, 0usize); MAX_OUTLIER_COLUMNS];
    let mut len = 0;
    let mut floor = -1.0f32;
    for (g, group) in colmax.chunks(16).enumerate() {
        let above: u32 = group.iter().map(|&v| u32::from(v > floor)).sum();
        if above == 0 {
            continue;
        }
        for (j, &v) in group.iter().enumerate() {
            if v > floor {
                let mut at = len.min(MAX_OUTLIER_COLUMNS - 1);
                while at > 0 && top[at - 1].0 < v {
                    if at < MAX_OUTLIER_COLUMNS {
                        top[at] = top[at - 1];
                    }
                    at -= 1;
                }
                top[at] = (v, g * 16 + j);
                len = (len + 1).min(MAX_OUTLIER_COLUMNS);
                if len == MAX_OUTLIER_COLUMNS {
                    floor = top[len - 1].0;
                }
            }
        }
    }
    let top = &top[..len];
    // Column c is an outlier iff colmax[c] > OUTLIER_RATIO * median, median the K/2-th smallest:
    // iff more than K/2 columns have OUTLIER_RATIO * colmax < colmax[c] (the ratio is a power of
    // two, so the products are exact and order as the values do). That holds for a prefix of
    // `top`: its length by bisection, a few vectorized counts instead of a median selection over
    // K (the search with the selection was 7% of a MiniLM int8 W1 forward on one thread, and
    // the other thread waits for it).
    const _: () = assert!(OUTLIER_RATIO == 4.0, "exact products need a power of two");
    let outlier = |v: f32| columns_below(colmax, v) > k / 2;
    let (mut lo, mut hi) = (0, top.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if outlier(top[mid].0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    out.clear();
    out.extend(top[..lo].iter().map(|&(_, c)| c));
    out.sort_unstable();
}

/// How many of `colmax` have OUTLIER_RATIO x colmax < `v`: 16 lanes of u32 counts, so that it
/// vectorizes (a function, not a closure, so that it is inlined into the per-ISA wrappers of
/// [`outlier_scan_generic`]: as a closure it was compiled for baseline SSE2).
#[inline(always)]
fn columns_below(colmax: &[f32], v: f32) -> usize {
    let mut below = [0u32; 16];
    let mut chunks = colmax.chunks_exact(16);
    for chunk in &mut chunks {
        for (n, &x) in below.iter_mut().zip(chunk) {
            *n += u32::from(OUTLIER_RATIO * x < v);
        }
    }
    let tail = chunks.remainder().iter();
    below.iter().sum::<u32>() as usize + tail.filter(|&&x| OUTLIER_RATIO * x < v).count()
}

/// The widest register tile of any path, in columns.
pub(super) const MAX_NR: usize = 48;
/// Products of more rows than this prefetch each tile's C before its K loop: at scale C is a
/// cache miss that the stores, and the activation's re-read after them, waited for (MiniLM int8
/// W2F 0.96x the time with VNNI on Zen 4); at W1's 8 rows C is in cache, and the prefetches took
/// load slots from the weights' stream (MiniLM int8 W1 1.06-1.08x the time).
const PREFETCH_C_ROWS: usize = 16;

/// The tallest register tile of any path, in rows (AMX's two 16-row tiles).
pub(super) const MAX_MR: usize = 32;

/// Rows of the AVX2 int8 register tile (`int8_x86::avx2_kernel`): 2 x 6 accumulators, 2 B
/// vectors and the broadcast of A in 15 of the 16 ymm registers (4 rows, tried so that W1's 8
/// rows are two whole tiles: W1 0.98x the time, W2F 1.05x).
const AVX2_MR: usize = 6;

/// How a row tile of quantized A is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ALayout {
    /// (K/4, mr, 4): each row's 4 bytes of a k group side by side, so a kernel's broadcasts per
    /// group come from one cache line (portable, VNNI).
    Groups,
    /// As `Groups` with each value an i16 (little-endian; 8 bytes per row and group): AVX2's
    /// `vpmaddwd` multiplies i16 pairs, and A sign-extended once by the quantizer is not
    /// sign-extended again by every panel's kernel.
    Groups16,
    /// (mr, K4 x 4): row-major, rows `dst.len() / mr` bytes apart (AMX's A tiles: 16 rows of 64
    /// consecutive k; the rows padded to an odd count of 64-byte lines, `Int8Path::a_row_bytes`).
    Rows,
}

impl ALayout {
    /// Bytes of a row tile per row of it, for K4 groups of 4: K4 x 4 (`Groups`), K4 x 8
    /// (`Groups16`), or for AMX's row-major rows the distance from one row to the next, K4 x 4
    /// padded as the bf16 tiles' rows are ([`super::pack::amx_row_bytes`]).
    pub(super) fn row_bytes(self, k4: usize) -> usize {
        match self {
            ALayout::Groups => 4 * k4,
            ALayout::Groups16 => 8 * k4,
            ALayout::Rows => super::pack::amx_row_bytes(4 * k4),
        }
    }
}

/// One microkernel call on a register tile: `C[r, NR] = dequant(A[r, K] B[K, NR])` + epilogue.
pub(super) struct QTile {
    /// Packed A row tile, (K/4, mr, 4) bytes ([`ALayout::Groups`]; the kernel reads its first r
    /// rows), (K/4, mr, 4) i16 ([`ALayout::Groups16`]) or (mr, K4 x 4) ([`ALayout::Rows`]; AMX
    /// reads 16 or 32 rows, past r ignored).
    pub a: *const u8,
    /// Groups: bytes from one k group of A to the next, 4 * mr (Groups16: 8 * mr). Rows: from
    /// one row to the next, at least 4 * K4 (`Int8Path::a_row_bytes`).
    pub a_step: usize,
    /// Packed B panel, (K/4, NR, 4).
    pub b: *const i8,
    /// K / 4, rounded up.
    pub k4: usize,
    /// r row scales.
    pub sa: *const f32,
    /// NR column scales, NR corrections (subtracted from the i32 sums), NR biases.
    pub sw: *const f32,
    pub corr: *const i32,
    pub bias: *const f32,
    /// (r, NR) block of C, rows `ldc` apart.
    pub c: *mut f32,
    pub ldc: usize,
    /// Prefetch C before the K loop (VNNI): where there are more than [`PREFETCH_C_ROWS`] rows.
    pub prefetch_c: bool,
    /// (r, NR) residual rows `ldr` apart, or null.
    pub res: *const f32,
    pub ldr: usize,
    pub act: Option<Activation>,
    /// Outlier columns, computed in f32: `r` rows of `n_out` inputs, and `n_out` rows of NR
    /// dequantized weights `ldw` apart (see [`outlier_columns`]); `wo` null: the kernel
    /// dequantizes the `n_out` columns `cols` of its panel itself (see [`outlier_weights`]).
    pub xo: *const f32,
    pub wo: *const f32,
    pub ldw: usize,
    pub cols: *const usize,
    pub n_out: usize,
}

/// The outlier weights of tile `t`'s epilogue, as (pointer, row stride): the precomputed `t.wo`,
/// or, when it is null, the `t.n_out` columns `t.cols` of the kernel's own panel dequantized into
/// `buf` ((n_out, NR), written before it is read). Called by a kernel after its K loop, when the
/// panel has just been read (dequantizing it before, in the task, read the columns' scattered
/// words from L3 ahead of the kernel's stream: 7% of a MiniLM int8 W1 forward).
///
/// # Safety
/// `t` describes in-bounds buffers (see [`QTile`]) for a panel of `nr` columns.
#[inline(always)]
pub(super) unsafe fn outlier_weights(
    t: &QTile,
    nr: usize,
    buf: &mut MaybeUninit<[f32; MAX_OUTLIER_COLUMNS * MAX_NR]>,
) -> (*const f32, usize) {
    if !t.wo.is_null() || t.n_out == 0 {
        return (t.wo, t.ldw);
    }
    let panel = std::slice::from_raw_parts(t.b, t.k4 * nr * 4);
    let sw = std::slice::from_raw_parts(t.sw, nr);
    let cols = std::slice::from_raw_parts(t.cols, t.n_out);
    assert!(
        t.n_out <= MAX_OUTLIER_COLUMNS && nr <= MAX_NR,
        "outlier_weights: tile too large"
    );
    let out = buf.as_mut_ptr().cast::<f32>();
    // SAFETY: `buf` holds MAX_OUTLIER_COLUMNS * MAX_NR >= n_out * nr floats (checked above).
    dequantize_columns(panel, sw, nr, cols, out);
    (out, nr)
}

/// Row `c` of W^T over one panel of `nr` columns ((K/4, nr, 4) bytes, scales `sw`), dequantized
/// (zero past N), for each of `cols`: (cols, nr) written to `out`.
///
/// # Safety
/// `out` is valid for `cols.len() * nr` writes.
#[inline(always)]
unsafe fn dequantize_columns(panel: &[i8], sw: &[f32], nr: usize, cols: &[usize], out: *mut f32) {
    // Column c: byte `c % 4` of each column's 4-byte word in the (k4, NR, 4) group `c / 4`.
    // Read as whole words and sign-extended by shifts, which vectorizes (a strided byte gather
    // with a bounds check per element was 9% of a MiniLM int8 W1 forward).
    for (o, &c) in cols.iter().enumerate() {
        let group = &panel[(c / 4) * nr * 4..][..nr * 4];
        let shift = 24 - 8 * (c % 4) as u32;
        let dst = out.add(o * nr);
        for (j, (w, &s)) in group.chunks_exact(4).zip(sw).enumerate() {
            let word = i32::from_le_bytes([w[0] as u8, w[1] as u8, w[2] as u8, w[3] as u8]);
            dst.add(j).write(((word << shift) >> 24) as f32 * s);
        }
    }
}

type QKernel = unsafe fn(&QTile);

/// The kernels for tiles of 1..=MR rows.
fn kernels(path: Int8Path) -> &'static [QKernel] {
    macro_rules! table {
        ($k:ident; $($r:literal)*) => { &[$($k::<$r> as QKernel),*] };
    }
    match path {
        Int8Path::Portable => table!(portable_kernel; 1 2 3 4),
        #[cfg(target_arch = "x86_64")]
        Int8Path::Avx2 => table!(avx2_kernel; 1 2 3 4 5 6),
        #[cfg(target_arch = "x86_64")]
        Int8Path::Avx512Vnni => table!(vnni_kernel; 1 2 3 4 5 6 7 8),
        #[cfg(target_arch = "x86_64")]
        Int8Path::Amx => table!(amx_kernel;
            1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32),
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("only the portable int8 path exists off x86-64"),
    }
}

/// A Linear layer's weights quantized to int8 per output channel, packed for the int8 microkernel.
pub struct Int8Linear {
    /// (panels, K/4, NR, 4) quantized W^T, on the weights' huge pages ([`crate::hugepages`]).
    buf: HugeBuf<i8>,
    /// (panels * NR) per-channel scales, `128 * colsum` corrections (shifted paths, else 0), bias;
    /// zero-padded.
    sw: Vec<f32>,
    corr: Vec<i32>,
    bias: Vec<f32>,
    path: Int8Path,
    panels: usize,
    k4: usize,
    in_features: usize,
    out_features: usize,
}

/// A call's per-call buffers, reused across calls (allocating and zeroing them was ~4% of a
/// MiniLM int8 W1 forward): the quantized A tiles and row scales, the outlier search, columns and
/// mask, the outlier inputs and the outlier columns' dequantized weights.
#[derive(Default)]
struct Scratch {
    a: Vec<u8>,
    sa: Vec<f32>,
    search: OutlierSearch,
    outliers: Vec<usize>,
    keep: Vec<f32>,
    xo: Vec<f32>,
    wo: Vec<f32>,
}

thread_local! {
    /// The caller's [`Scratch`].
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl Int8Linear {
    /// Quantizes `weight` (out, in) row-major per output channel for [`Isa::selected`]'s int8 path.
    ///
    /// # Panics
    /// If the sizes disagree or `in_features` is 0.
    pub fn new(weight: &[f32], bias: Vec<f32>, out_features: usize, in_features: usize) -> Self {
        let path = Int8Path::for_isa(Isa::selected()).expect("the selected ISA is supported");
        Self::with_path(weight, bias, out_features, in_features, path)
    }

    /// As [`Int8Linear::new`] with an explicit kernel path (tests, benchmarks).
    ///
    /// # Panics
    /// As `new`, and if this CPU cannot run `path`.
    pub fn with_path(
        weight: &[f32],
        bias: Vec<f32>,
        out_features: usize,
        in_features: usize,
        path: Int8Path,
    ) -> Self {
        let (n, k) = (out_features, in_features);
        assert!(k > 0, "Int8Linear: in_features must be > 0");
        assert_eq!(weight.len(), n * k, "Int8Linear: weight size");
        assert_eq!(bias.len(), n, "Int8Linear: bias size");
        assert!(
            path.is_supported(),
            "Int8Linear: {path:?} is not supported by this CPU"
        );
        let nr = path.tile().1;
        let panels = n.div_ceil(nr);
        let k4 = path.k4(k);
        let len = panels * k4 * nr * 4;
        let mut buf = HugeBuf::<i8>::zeroed(len);
        let mut sw = vec![0.0f32; panels * nr];
        let mut corr = vec![0i32; panels * nr];
        let dst = &mut buf[..];
        for (j, row) in weight.chunks_exact(k).enumerate() {
            let (scale, inv) = int8_scale(row.iter().fold(0.0f32, |m, v| m.max(v.abs())));
            sw[j] = scale;
            let panel = &mut dst[(j / nr) * k4 * nr * 4..][..k4 * nr * 4];
            let c = j % nr;
            let mut sum = 0i32;
            for (kk, &v) in row.iter().enumerate() {
                let q = quantize_one(v, inv);
                sum += q as i32;
                panel[((kk / 4) * nr + c) * 4 + kk % 4] = q;
            }
            if path.shifted() {
                corr[j] = 128 * sum;
            }
        }
        let mut bias = bias;
        bias.resize(panels * nr, 0.0);
        Int8Linear {
            buf,
            sw,
            corr,
            bias,
            path,
            panels,
            k4,
            in_features: k,
            out_features: n,
        }
    }

    pub fn in_features(&self) -> usize {
        self.in_features
    }

    pub fn out_features(&self) -> usize {
        self.out_features
    }

    /// The kernel family this layer was packed for.
    pub fn path(&self) -> Int8Path {
        self.path
    }

    /// Bytes of weights, scales and bias this layer holds.
    pub fn memory_bytes(&self) -> usize {
        self.buf.len() + 4 * (self.sw.capacity() + self.corr.capacity() + self.bias.capacity())
    }

    /// Panel `p`'s outlier columns `cols` dequantized: (cols, NR) in `out` (see
    /// [`dequantize_columns`]).
    fn dequantized_panel(&self, cols: &[usize], p: usize, out: &mut [f32]) {
        let nr = self.path.tile().1;
        let panel = &self.buf[p * self.k4 * nr * 4..][..self.k4 * nr * 4];
        assert!(
            out.len() >= cols.len() * nr,
            "dequantized_panel: output too short"
        );
        // SAFETY: `out` holds cols * NR floats (checked above).
        unsafe { dequantize_columns(panel, &self.sw[p * nr..][..nr], nr, cols, out.as_mut_ptr()) };
    }

    /// `y (M, out) = epilogue(x (M, in) W^T + b)`, x quantized per row.
    pub fn forward(&self, x: &[f32], y: &mut [f32], epilogue: Epilogue<'_>) {
        let (k, n) = (self.in_features, self.out_features);
        let m = super::rows("Int8Linear", x, y, (k, n), epilogue);
        if m == 0 || n == 0 {
            return;
        }
        // A caller that re-enters (a rayon worker stealing another product while it waits) gets
        // fresh buffers.
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => self.run(x, y, epilogue, m, &mut scratch),
            Err(_) => self.run(x, y, epilogue, m, &mut Scratch::default()),
        });
    }

    fn run(&self, x: &[f32], y: &mut [f32], epi: Epilogue<'_>, m: usize, scratch: &mut Scratch) {
        let Scratch {
            a,
            sa,
            search,
            outliers,
            keep,
            xo,
            wo,
        } = scratch;
        let (mr, nr) = self.path.tile();
        let (k, n, k4) = (self.in_features, self.out_features, self.k4);
        let tiles = m.div_ceil(mr);
        let tile_bytes = self.path.a_row_bytes(k4) * mr;
        outlier_columns_into(self.path, x, k, search, outliers);
        let (outliers, n_out) = (&outliers[..], outliers.len());
        outlier_mask(k, outliers, keep);
        let keep = &keep[..];
        // (M, n_out) the outlier inputs (their weights are dequantized per panel, in the tasks).
        xo.clear();
        xo.extend(
            x.chunks_exact(k)
                .flat_map(|row| outliers.iter().map(move |&c| row[c])),
        );
        // Grown, never cleared: the quantizer writes every byte of a tile's rows (K padding as
        // 0), and a kernel reads only a tile's real rows.
        if a.len() < tiles * tile_bytes {
            a.resize(tiles * tile_bytes, 0);
        }
        if sa.len() < tiles * mr {
            sa.resize(tiles * mr, 0.0);
        }
        let (a, sa) = (&mut a[..tiles * tile_bytes], &mut sa[..tiles * mr]);
        let quant = |t: usize, dst: &mut [u8], scales: &mut [f32]| {
            let rows = mr.min(m - t * mr);
            let xs = &x[t * mr * k..(t * mr + rows) * k];
            let t = QuantTile {
                xs,
                k,
                mr,
                keep,
                dst,
                scales: &mut scales[..rows],
                layout: self.path.a_layout(),
            };
            quantize_tile(self.path, t);
        };
        if m * k >= 1 << 16 && tiles > 1 {
            let scales = SendPtr(sa.as_mut_ptr());
            crate::team::for_each_chunk_mut(a, tile_bytes, |t, dst| {
                // SAFETY: tile t's mr scales, sa[t * mr..(t + 1) * mr], are written by this call
                // only; `sa` holds tiles * mr floats and outlives the loop.
                let scales =
                    unsafe { std::slice::from_raw_parts_mut(scales.get().add(t * mr), mr) };
                quant(t, dst, scales);
            });
        } else {
            for (t, (dst, scales)) in a.chunks_mut(tile_bytes).zip(sa.chunks_mut(mr)).enumerate() {
                quant(t, dst, scales);
            }
        }

        // Tasks: row blocks of whole tiles x column blocks of whole panels, as the f32 driver.
        let threads = rayon::current_num_threads();
        let work = 2 * m * n * k;
        let want = if threads <= 1 {
            1
        } else {
            (threads * 2).min((work / (1 << 20)).max(1))
        };
        let tiles_per_block = (64 / mr).max(1);
        let row_blocks = tiles.div_ceil(tiles_per_block);
        let col_blocks = want.div_ceil(row_blocks).clamp(1, self.panels);
        let tasks = row_blocks * col_blocks;
        // (panels, n_out, NR): with several row blocks per panel, every panel's outlier weights
        // are dequantized once, in parallel, before the product; with one (a few tokens), the
        // kernel dequantizes its own panel's after its K loop (see `outlier_weights`; per tile
        // with several row blocks, that cost W2F 4.7%).
        let shared = row_blocks > 1 && n_out > 0;
        let wo_all = if shared {
            wo.resize(self.panels * n_out * nr, 0.0);
            let wo = &mut wo[..self.panels * n_out * nr];
            crate::team::for_each_chunk_mut(wo, n_out * nr, |p, block| {
                self.dequantized_panel(outliers, p, block)
            });
            &wo[..]
        } else {
            &[]
        };
        let (a, sa) = (&a[..], &sa[..]);
        // Each task writes its own (rows, panels) block of y.
        let yp = SendPtr(y.as_mut_ptr());
        let task = |t: usize| {
            #[cfg(target_arch = "x86_64")]
            if self.path == Int8Path::Amx {
                // SAFETY: the path was checked at construction (AMX available).
                unsafe { super::amx::configure() };
            }
            let (rb, cb) = (t / col_blocks, t % col_blocks);
            let t0 = rb * tiles_per_block;
            let t1 = (t0 + tiles_per_block).min(tiles);
            let p0 = cb * self.panels / col_blocks;
            let p1 = (cb + 1) * self.panels / col_blocks;
            for p in p0..p1 {
                let wo = if shared {
                    Some(&wo_all[p * n_out * nr..][..n_out * nr])
                } else {
                    None
                };
                for tile in t0..t1 {
                    let rows = mr.min(m - tile * mr);
                    self.tile(
                        &a[tile * tile_bytes..][..tile_bytes],
                        &sa[tile * mr..][..rows],
                        Outliers {
                            xo: &xo[tile * mr * n_out..],
                            wo,
                            cols: outliers,
                        },
                        p,
                        tile * mr,
                        yp,
                        epi,
                        (m, n, nr),
                    );
                }
            }
        };
        crate::team::for_each(tasks, task);
    }

    /// One register tile: rows `r0..r0 + sa.len()`, panel `p`. Inlined into the task's loop: as a
    /// call it took `out` through memory, and its 16-byte load of two fields the caller had just
    /// stored 8 bytes at a time could not be forwarded from the store buffer, so each tile waited
    /// for the buffer to drain, the last tile's C stores (cache misses at W2F) included: 17% of
    /// MiniLM's int8 W2F on AVX2, 8% with VNNI (docs/quantization.md, "The tile call").
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn tile(
        &self,
        a: &[u8],
        sa: &[f32],
        out: Outliers<'_>,
        p: usize,
        r0: usize,
        y: SendPtr<f32>,
        epi: Epilogue<'_>,
        (m, n, nr): (usize, usize, usize),
    ) {
        let rows = sa.len();
        let j0 = p * nr;
        let ncols = nr.min(n - j0);
        let panel = &self.buf[p * self.k4 * nr * 4..][..self.k4 * nr * 4];
        let (res, act) = match epi {
            Epilogue::Bias => (None, None),
            Epilogue::BiasActivation(act) => (None, Some(act)),
            Epilogue::BiasResidual(r) => (Some(&r[r0 * n + j0..]), None),
        };
        // SAFETY: `y` is (M, N); this task owns rows r0..r0 + rows, columns j0..j0 + ncols of it.
        let c = unsafe { y.0.add(r0 * n + j0) };
        let t = QTile {
            a: a.as_ptr(),
            a_step: match self.path.a_layout() {
                ALayout::Groups => 4 * self.path.tile().0,
                ALayout::Groups16 => 8 * self.path.tile().0,
                ALayout::Rows => self.path.a_row_bytes(self.k4),
            },
            b: panel.as_ptr(),
            k4: self.k4,
            sa: sa.as_ptr(),
            sw: self.sw[j0..].as_ptr(),
            corr: self.corr[j0..].as_ptr(),
            bias: self.bias[j0..].as_ptr(),
            c,
            ldc: n,
            prefetch_c: m > PREFETCH_C_ROWS,
            res: res.map_or(std::ptr::null(), <[f32]>::as_ptr),
            ldr: n,
            act,
            xo: out.xo.as_ptr(),
            wo: out.wo.map_or(std::ptr::null(), <[f32]>::as_ptr),
            ldw: nr,
            cols: out.cols.as_ptr(),
            n_out: out.cols.len(),
        };
        let kernel = kernels(self.path)[rows - 1];
        if ncols == nr {
            // SAFETY: the kernel's path runs on this CPU (checked at construction); a holds
            // (K/4, mr, 4) bytes with mr >= rows, b (K/4, NR, 4), sw/corr/bias NR entries from j0;
            // c and res hold `rows` rows of NR = ncols floats, n apart.
            unsafe { kernel(&t) };
            return;
        }
        edge_tile(kernel, t, res, rows, ncols, n, nr);
    }
}

/// The last, partial panel of [`Int8Linear::tile`]: `kernel` runs on full-width scratch tiles and
/// the real `ncols` columns are copied out (on its own, so the 12 KB of scratch are no part of the
/// frame of every tile's call).
#[cold]
#[inline(never)]
fn edge_tile(
    kernel: QKernel,
    mut t: QTile,
    res: Option<&[f32]>,
    rows: usize,
    ncols: usize,
    n: usize,
    nr: usize,
) {
    let c = t.c;
    let mut cbuf = [0.0f32; MAX_MR * MAX_NR];
    let mut rbuf = [0.0f32; MAX_MR * MAX_NR];
    if let Some(res) = res {
        for i in 0..rows {
            rbuf[i * nr..i * nr + ncols].copy_from_slice(&res[i * n..i * n + ncols]);
        }
        t.res = rbuf.as_ptr();
        t.ldr = nr;
    }
    t.c = cbuf.as_mut_ptr();
    t.ldc = nr;
    // SAFETY: as for a whole panel (see `Int8Linear::tile`), with c and res the (rows, NR) scratch
    // tiles (rows <= MAX_MR, NR <= MAX_NR).
    unsafe { kernel(&t) };
    for i in 0..rows {
        // SAFETY: row i of the tile's C, columns 0..ncols, belong to the caller's task.
        let row = unsafe { std::slice::from_raw_parts_mut(c.add(i * n), ncols) };
        row.copy_from_slice(&cbuf[i * nr..i * nr + ncols]);
    }
}

/// A tile's view of the outlier columns `cols`: (rows, n_out) inputs from the tile's first row
/// and (n_out, NR) dequantized weights of its panel, or `None` for the kernel to dequantize them.
#[derive(Clone, Copy)]
struct Outliers<'a> {
    xo: &'a [f32],
    wo: Option<&'a [f32]>,
    cols: &'a [usize],
}

/// Quantizes the tile `t` with the vector code of `path` (see [`QuantTile`]).
fn quantize_tile(path: Int8Path, t: QuantTile<'_>) {
    match path {
        Int8Path::Portable => quantize_tile_generic(t, false),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the path was checked at construction, so the CPU runs its kernels' features.
        Int8Path::Avx2 => unsafe { super::int8_x86::quantize_tile_avx2(t) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Int8Path::Avx512Vnni | Int8Path::Amx => unsafe { super::int8_x86::quantize_tile_avx512(t) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("only the portable int8 path exists off x86-64"),
    }
}

/// What [`quantize_tile_generic`] quantizes: `xs` (rows, K), rows <= mr, with the outlier columns
/// as 0 (those where `keep`, [`outlier_mask`]'s, is 0), into the row tile `dst` (mr rows in
/// `layout`; the K padding of a row 0 in `Groups`, left as it was in `Rows`, where the padded
/// weights are 0) and the row scales `scales`.
pub(super) struct QuantTile<'a> {
    pub xs: &'a [f32],
    pub k: usize,
    pub mr: usize,
    pub keep: &'a [f32],
    pub dst: &'a mut [u8],
    pub scales: &'a mut [f32],
    pub layout: ALayout,
}

/// The body of every `quantize_tile`: inlined into each ISA's `target_feature` wrapper so LLVM
/// vectorizes it with that ISA. `shift` stores q + 128 (as u8) instead of q.
#[inline(always)]
pub(super) fn quantize_tile_generic(t: QuantTile<'_>, shift: bool) {
    let QuantTile {
        xs,
        k,
        mr,
        keep,
        dst,
        scales,
        layout,
    } = t;
    let k4 = k.div_ceil(4);
    let flip = if shift { 0x80u8 } else { 0 };
    let mut row_q = vec![0u8; k4 * 4];
    for (i, (row, s)) in xs.chunks_exact(k).zip(scales.iter_mut()).enumerate() {
        let max = max_abs(row, keep);
        let (scale, inv) = int8_scale(max);
        *s = scale;
        if keep.is_empty() {
            for (q, &v) in row_q.iter_mut().zip(row) {
                *q = (quantize_one(v, inv) as u8) ^ flip;
            }
        } else {
            for ((q, &v), &m) in row_q.iter_mut().zip(row).zip(keep) {
                *q = (quantize_one(v * m, inv) as u8) ^ flip;
            }
        }
        // Padding k: any byte times the zero-padded weights gives 0.
        store_row(dst, &row_q, mr, i, layout);
    }
}

/// Outlier columns are computed in f32: in the int8 product they are multiplied by 0 (quantized as
/// 0), with no copy of the row. `keep` (K) becomes 1 but 0 at `outliers`; empty when there are none.
pub(super) fn outlier_mask(k: usize, outliers: &[usize], keep: &mut Vec<f32>) {
    keep.clear();
    if !outliers.is_empty() {
        keep.resize(k, 1.0);
        outliers.iter().for_each(|&c| keep[c] = 0.0);
    }
}

/// Stores row `i`'s quantized bytes `row_q` (K/4 x 4) into the tile `dst` of `mr` rows laid out
/// as `layout`.
#[inline(always)]
pub(super) fn store_row(dst: &mut [u8], row_q: &[u8], mr: usize, i: usize, layout: ALayout) {
    match layout {
        ALayout::Groups => scatter_row(dst, row_q, mr, i),
        ALayout::Groups16 => scatter_row16(dst, row_q, mr, i),
        ALayout::Rows => {
            let stride = dst.len() / mr;
            dst[i * stride..][..row_q.len()].copy_from_slice(row_q);
        }
    }
}

/// Stores row `i`'s quantized bytes `row_q` (K4 x 4) into the (K4, mr, 4) tile `dst`.
#[inline(always)]
fn scatter_row(dst: &mut [u8], row_q: &[u8], mr: usize, i: usize) {
    for (g, w) in row_q.chunks_exact(4).enumerate() {
        // Fixed-size arrays: a slice copy of a run-time length 4 became a call to memmove.
        let w: [u8; 4] = [w[0], w[1], w[2], w[3]];
        let d: &mut [u8; 4] = (&mut dst[(g * mr + i) * 4..][..4])
            .try_into()
            .expect("4 bytes");
        *d = w;
    }
}

/// Stores row `i`'s quantized bytes `row_q` (K4 x 4, i8) sign-extended into the (K4, mr, 4) i16
/// tile `dst` ([`ALayout::Groups16`]).
#[inline(always)]
fn scatter_row16(dst: &mut [u8], row_q: &[u8], mr: usize, i: usize) {
    for (g, w) in row_q.chunks_exact(4).enumerate() {
        let mut out = [0u8; 8];
        for (o, &b) in out.chunks_exact_mut(2).zip(w) {
            o.copy_from_slice(&i16::from(b as i8).to_le_bytes());
        }
        let d: &mut [u8; 8] = (&mut dst[(g * mr + i) * 8..][..8])
            .try_into()
            .expect("8 bytes");
        *d = out;
    }
}

/// `f32::max(m, v)` for an `m` that is never NaN (a running maximum from 0): `v` if it is larger,
/// so a NaN `v` is ignored as `f32::max` ignores it. One `maxps`, where `f32::max`'s NaN handling
/// costs a compare and a blend per vector.
#[inline(always)]
pub(super) fn max_ignoring_nan(m: f32, v: f32) -> f32 {
    if v > m {
        v
    } else {
        m
    }
}

/// The largest |row[c] * keep[c]| (`keep` empty: all 1), NaN ignored (as `f32::max`), in 8 lanes
/// so that it vectorizes.
#[inline(always)]
pub(super) fn max_abs(row: &[f32], keep: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut rows = row.chunks_exact(8);
    if keep.is_empty() {
        for c in &mut rows {
            for j in 0..8 {
                acc[j] = max_ignoring_nan(acc[j], c[j].abs());
            }
        }
    } else {
        for (c, m) in (&mut rows).zip(keep.chunks_exact(8)) {
            for j in 0..8 {
                acc[j] = max_ignoring_nan(acc[j], (c[j] * m[j]).abs());
            }
        }
    }
    let tail = row.len() - rows.remainder().len();
    let mut max = acc.iter().fold(0.0f32, |m, &v| m.max(v));
    for (j, &v) in rows.remainder().iter().enumerate() {
        let m = keep.get(tail + j).copied().unwrap_or(1.0);
        max = max.max((v * m).abs());
    }
    max
}

/// Portable microkernel: `C[R, 8]` in i32, then dequantization and the epilogue.
///
/// # Safety
/// `t` describes in-bounds buffers (see [`QTile`]) for R rows and NR = 8 columns.
unsafe fn portable_kernel<const R: usize>(t: &QTile) {
    const NR: usize = 8;
    let mut acc = [[0i32; NR]; R];
    let b = std::slice::from_raw_parts(t.b, t.k4 * NR * 4);
    for g in 0..t.k4 {
        let a = std::slice::from_raw_parts(t.a.add(g * t.a_step), R * 4);
        let bg = &b[g * NR * 4..][..NR * 4];
        for (acc, a) in acc.iter_mut().zip(a.chunks_exact(4)) {
            for (acc, b) in acc.iter_mut().zip(bg.chunks_exact(4)) {
                for (&a, &b) in a.iter().zip(b) {
                    *acc += (a as i8) as i32 * b as i32;
                }
            }
        }
    }
    let mut buf = MaybeUninit::uninit();
    let (wo, ldw) = outlier_weights(t, NR, &mut buf);
    for (i, acc) in acc.iter().enumerate() {
        let sa = *t.sa.add(i);
        let c = std::slice::from_raw_parts_mut(t.c.add(i * t.ldc), NR);
        for (j, (c, &acc)) in c.iter_mut().zip(acc).enumerate() {
            let s = sa * *t.sw.add(j);
            let mut r = (acc - *t.corr.add(j)) as f32 * s + *t.bias.add(j);
            for o in 0..t.n_out {
                r += *t.xo.add(i * t.n_out + o) * *wo.add(o * ldw + j);
            }
            if !t.res.is_null() {
                r += *t.res.add(i * t.ldr + j);
            }
            if let Some(act) = t.act {
                r = act.apply(r);
            }
            *c = r;
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_quantizer_equals_the_generic_one_byte_for_byte() {
        if !(is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw")) {
            return;
        }
        // A full 8-row tile (stored transposed by permutes) and partial or other tiles (a row at
        // a time), K with and without a tail past the 16-column steps; AMX's row-major tiles.
        for (k, mr, rows) in [
            (389, 6, 6),
            (389, 8, 8),
            (384, 8, 8),
            (389, 8, 5),
            (7, 8, 8),
        ] {
            quantizer_case(k, mr, rows, ALayout::Groups);
        }
        for (k, mr, rows) in [(389, 32, 32), (389, 32, 17), (384, 32, 8), (7, 32, 5)] {
            quantizer_case(k, mr, rows, ALayout::Rows);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_quantizer_equals_the_generic_one_byte_for_byte() {
        if !Int8Path::Avx2.is_supported() {
            return;
        }
        // Full and partial tiles, K with and without a tail past the 8-column steps and with a
        // padded last group.
        for (k, mr, rows) in [(389, 6, 6), (384, 6, 6), (389, 6, 5), (7, 6, 6), (12, 6, 5)] {
            quantizer_case(k, mr, rows, ALayout::Groups16);
        }
    }

    #[cfg(target_arch = "x86_64")]
    fn quantizer_case(k: usize, mr: usize, rows: usize, layout: ALayout) {
        let mut xs: Vec<f32> = (0..rows * k)
            .map(|i| ((i * 7919 % 1013) as f32 - 506.0) * 0.013)
            .collect();
        xs[5] = f32::NAN;
        xs[k + 6] = f32::INFINITY;
        xs[2 * k + 3] = 1e30;
        xs[3 * k..4 * k].fill(0.0);
        // Exact halves of the step: ties must round to even on both paths.
        for (j, v) in xs[4 * k..].iter_mut().take(40).enumerate() {
            *v = (j as f32 - 20.0) * 0.5;
        }
        xs[4 * k + k / 2] = 127.0;
        for outliers in [vec![], vec![3usize, k / 10, k - 1]] {
            let mut keep = Vec::new();
            outlier_mask(k, &outliers, &mut keep);
            let run = |avx: bool| {
                // Bytes of rows past `rows` (and in Rows, past a row's K / 4 groups) are not
                // written: start both from the same garbage.
                let row_bytes = match layout {
                    ALayout::Groups => k.div_ceil(4) * 4,
                    ALayout::Groups16 => k.div_ceil(4) * 8,
                    ALayout::Rows => k.div_ceil(64) * 64,
                };
                let mut dst = vec![0x5au8; row_bytes * mr];
                let mut scales = vec![0.0f32; rows];
                let t = QuantTile {
                    xs: &xs,
                    k,
                    mr,
                    keep: &keep,
                    dst: &mut dst,
                    scales: &mut scales,
                    layout,
                };
                match (avx, layout) {
                    // SAFETY: AVX2 detected by the caller.
                    (true, ALayout::Groups16) => unsafe {
                        super::super::int8_x86::quantize_tile_avx2(t)
                    },
                    // SAFETY: AVX-512F and BW detected by the caller.
                    (true, _) => unsafe { super::super::int8_x86::quantize_tile_avx512(t) },
                    // AVX2's A is signed, AVX-512's shifted.
                    (false, _) => quantize_tile_generic(t, layout != ALayout::Groups16),
                }
                (dst, scales)
            };
            let (a, b) = (run(true), run(false));
            assert_eq!(
                a.0, b.0,
                "k {k} mr {mr} rows {rows} {layout:?}: bytes, outliers {outliers:?}"
            );
            let bits = |s: &[f32]| s.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a.1), bits(&b.1), "scales");
        }
    }

    use super::*;
    use crate::reference;
    use crate::reference::test_data;

    fn paths() -> Vec<Int8Path> {
        let p = Int8Path::supported();
        // What the kernels' ISA paths choose is among them.
        for isa in Isa::supported() {
            assert!(p.contains(&Int8Path::for_isa(isa).unwrap()), "{isa:?}");
        }
        p
    }

    fn max_err(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
            .fold(
                0.0,
                |m, d| if d.is_nan() { f32::INFINITY } else { m.max(d) },
            )
    }

    #[test]
    fn path_follows_isa() {
        assert_eq!(Int8Path::for_isa(Isa::Scalar), Some(Int8Path::Portable));
        if Isa::Avx2.is_supported() {
            assert_eq!(Int8Path::for_isa(Isa::Avx2), Some(Int8Path::Avx2));
        }
        #[cfg(target_arch = "x86_64")]
        if Isa::Avx512.is_supported() {
            let vnni =
                is_x86_feature_detected!("avx512bw") && is_x86_feature_detected!("avx512vnni");
            let want = match (vnni, Int8Path::Amx.is_supported()) {
                (true, true) => Int8Path::Amx,
                (true, false) => Int8Path::Avx512Vnni,
                _ => Int8Path::Avx2,
            };
            assert_eq!(Int8Path::for_isa(Isa::Avx512), Some(want));
        }
    }

    #[test]
    fn every_path_matches_reference_on_edge_shapes() {
        for path in paths() {
            for m in [1, 2, 7, 9, 13, 64, 100] {
                for k in [1, 3, 4, 17, 37, 385] {
                    for n in [1, 3, 17, 48, 49, 97] {
                        let (x, w, b, res) = (
                            test_data(m * k, 1, 0.5),
                            test_data(n * k, 2, 0.5),
                            test_data(n, 3, 0.5),
                            test_data(m * n, 4, 0.5),
                        );
                        let lin = Int8Linear::with_path(&w, b.clone(), n, k, path);
                        for epi in [
                            Epilogue::Bias,
                            Epilogue::BiasActivation(Activation::Gelu),
                            Epilogue::BiasActivation(Activation::Relu),
                            Epilogue::BiasResidual(&res),
                        ] {
                            let want = reference::linear_int8_epilogue(&x, &w, &b, (m, k, n), epi);
                            let mut y = vec![f32::NAN; m * n];
                            lin.forward(&x, &mut y, epi);
                            let err = max_err(&y, &want);
                            assert!(err < 2e-5, "{path:?} {m}x{k}x{n} {epi:?}: error {err}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn close_to_f32_within_quantization_error() {
        // Two 8-bit roundings per product: the error of a dot product of K terms with |x|, |w| <=
        // 0.5 is at most K * 0.5 * 0.5 * (1/127) (half a step on each side), and typically
        // sqrt(K) times smaller.
        let (m, k, n) = (33, 384, 96);
        let (x, w, b) = (
            test_data(m * k, 5, 0.5),
            test_data(n * k, 6, 0.5),
            test_data(n, 7, 0.5),
        );
        let exact = reference::linear(&x, &w, &b, m, k, n);
        let bound = k as f32 * 0.25 / 127.0;
        for path in paths() {
            let lin = Int8Linear::with_path(&w, b.clone(), n, k, path);
            let mut y = vec![0.0; m * n];
            lin.forward(&x, &mut y, Epilogue::Bias);
            let err = reference::max_abs_diff(&y, &exact);
            assert!(err < bound / 4.0, "{path:?}: max abs error {err}");
        }
    }

    #[test]
    fn outlier_columns_are_computed_in_f32() {
        // Three columns 50x the rest: taken out of the int8 product, so the other columns keep
        // their resolution and the result is near the f32 product. 9 rows: one row block, each
        // kernel dequantizes its panel's outlier weights; 130: several, dequantized up front.
        let (k, n) = (64, 100);
        for m in [9, 130] {
            let mut x = test_data(m * k, 11, 0.5);
            for row in x.chunks_mut(k) {
                for c in [3, 17, 40] {
                    row[c] *= 50.0;
                }
            }
            assert_eq!(outlier_columns(&x, k), vec![3, 17, 40]);
            let (w, b) = (test_data(n * k, 12, 0.5), test_data(n, 13, 0.5));
            let exact = reference::linear(&x, &w, &b, m, k, n);
            let want = reference::linear_int8_epilogue(&x, &w, &b, (m, k, n), Epilogue::Bias);
            for path in paths() {
                let lin = Int8Linear::with_path(&w, b.clone(), n, k, path);
                let mut y = vec![0.0; m * n];
                lin.forward(&x, &mut y, Epilogue::Bias);
                assert!(max_err(&y, &want) < 2e-5, "{path:?} {m} rows vs reference");
                let err = reference::max_abs_diff(&y, &exact);
                // Weight rounding on the outliers dominates: 3 x 25 x half a step of 0.5 / 127.
                assert!(err < 0.3, "{path:?} {m} rows vs f32: {err}");
            }
        }
        // At most MAX_OUTLIER_COLUMNS, the largest.
        let mut x = test_data(4 * k, 14, 0.5);
        for row in x.chunks_mut(k) {
            for (i, v) in row.iter_mut().take(20).enumerate() {
                *v = 10.0 + i as f32;
            }
        }
        let want: Vec<usize> = (20 - MAX_OUTLIER_COLUMNS..20).collect();
        assert_eq!(outlier_columns(&x, k), want);
    }

    /// The search by counting, on every path, against the definition: a full sort for the
    /// median, every column above OUTLIER_RATIO x it, the largest MAX_OUTLIER_COLUMNS (ties to the
    /// lower column).
    #[test]
    fn outlier_columns_match_the_median_definition() {
        let definition = |x: &[f32], k: usize| {
            let mut colmax = vec![0.0f32; k];
            for row in x.chunks_exact(k) {
                for (m, v) in colmax.iter_mut().zip(row) {
                    *m = m.max(v.abs());
                }
            }
            let mut sorted = colmax.clone();
            sorted.sort_by(f32::total_cmp);
            let median = sorted[k / 2];
            let mut out: Vec<usize> = (0..k)
                .filter(|&c| colmax[c] > OUTLIER_RATIO * median)
                .collect();
            out.sort_by(|&a, &b| colmax[b].total_cmp(&colmax[a]).then(a.cmp(&b)));
            out.truncate(MAX_OUTLIER_COLUMNS);
            out.sort_unstable();
            out
        };
        let mut rng = crate::rng::SplitMix64(7);
        let mut cases = 0;
        for k in [1, 2, 3, 4, 5, 8, 9, 16, 33, 64, 384] {
            for m in [1, 3] {
                for kind in 0..6 {
                    let mut x: Vec<f32> = (0..m * k)
                        .map(|_| match kind {
                            // Few distinct values: ties at the median and among the largest.
                            0 => (rng.next_u64() % 4) as f32,
                            1 => (rng.next_u64() % 3) as f32 * 4.0,
                            2 => 0.0,
                            _ => (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5,
                        })
                        .collect();
                    // Planted outliers: 0, a few, or more than MAX_OUTLIER_COLUMNS, some equal.
                    let planted = [0, 2, 5, 12][kind % 4].min(k);
                    for j in 0..planted {
                        let c = (j * 7 + kind) % k;
                        x[c] = if j % 3 == 0 { 40.0 } else { 10.0 + j as f32 };
                    }
                    if kind == 5 && k > 2 {
                        // Exactly at the threshold: 4 x the median is not an outlier.
                        x.iter_mut().for_each(|v| *v = 1.0);
                        x[1] = 4.0;
                        x[2] = 4.000_001;
                    }
                    let want = definition(&x, k);
                    for path in paths() {
                        let mut got = vec![usize::MAX];
                        outlier_columns_into(path, &x, k, &mut OutlierSearch::default(), &mut got);
                        assert_eq!(got, want, "{path:?} k {k} m {m} kind {kind}");
                    }
                    cases += 1;
                }
            }
        }
        assert_eq!(cases, 11 * 2 * 6);
    }

    /// Large inputs take the parallel path (row blocks of 64): an outlier seen only in the last
    /// block, or only in the first, still counts.
    #[test]
    fn outlier_columns_of_a_large_input_see_every_row_block() {
        let (m, k) = (300, 256);
        assert!(m * k >= 1 << 16, "the parallel path");
        let mut x = test_data(m * k, 15, 0.5);
        for (r, row) in x.chunks_mut(k).enumerate() {
            if r == 3 {
                row[7] = 40.0;
            }
            if r >= 290 {
                row[100] = -30.0;
                row[200] = 20.0;
            }
        }
        assert_eq!(outlier_columns(&x, k), vec![7, 100, 200]);
    }

    #[test]
    fn saturating_values_do_not_overflow() {
        // Every activation and weight at full scale, K large: i16 pairs at 2 * 127 * 127 and i32
        // sums at 3072 * 255 * 127 (the shifted VNNI path) stay exact.
        let (m, k, n) = (5, 3072, 50);
        let x: Vec<f32> = (0..m * k)
            .map(|i| if i % 3 == 0 { -1.0 } else { 1.0 })
            .collect();
        let w: Vec<f32> = (0..n * k)
            .map(|i| if i % 5 == 0 { -2.0 } else { 2.0 })
            .collect();
        let b = vec![0.0; n];
        let want = reference::linear_int8_epilogue(&x, &w, &b, (m, k, n), Epilogue::Bias);
        for path in paths() {
            let lin = Int8Linear::with_path(&w, b.clone(), n, k, path);
            let mut y = vec![0.0; m * n];
            lin.forward(&x, &mut y, Epilogue::Bias);
            assert!(max_err(&y, &want) < 1e-5, "{path:?}");
        }
    }

    /// AMX computes the VNNI kernel's integers and shares its store: the same bits, with outliers,
    /// every epilogue, BERT's shapes and K not a multiple of 64 (where the CPU has both).
    #[test]
    fn amx_equals_vnni_bit_for_bit() {
        if !(Int8Path::Amx.is_supported() && Int8Path::Avx512Vnni.is_supported()) {
            return;
        }
        for (m, k, n) in [
            (8, 384, 1152),
            (70, 1536, 384),
            (33, 100, 50),
            (1, 768, 3072),
        ] {
            let mut x = test_data(m * k, 21, 0.5);
            for row in x.chunks_mut(k) {
                row[k / 3] *= 40.0;
            }
            let (w, b, res) = (
                test_data(n * k, 22, 0.5),
                test_data(n, 23, 0.5),
                test_data(m * n, 24, 0.5),
            );
            let run = |path| {
                let lin = Int8Linear::with_path(&w, b.clone(), n, k, path);
                [
                    Epilogue::Bias,
                    Epilogue::BiasActivation(Activation::Gelu),
                    Epilogue::BiasResidual(&res),
                ]
                .map(|epi| {
                    let mut y = vec![f32::NAN; m * n];
                    lin.forward(&x, &mut y, epi);
                    y.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                })
            };
            assert!(
                run(Int8Path::Amx) == run(Int8Path::Avx512Vnni),
                "{m}x{k}x{n}"
            );
        }
    }

    #[test]
    fn zero_rows_and_threads_agree() {
        let (m, k, n) = (37, 300, 200);
        let mut x = test_data(m * k, 8, 0.5);
        x[k..2 * k].iter_mut().for_each(|v| *v = 0.0);
        let (w, b) = (test_data(n * k, 9, 0.5), test_data(n, 10, 0.5));
        for path in paths() {
            let lin = Int8Linear::with_path(&w, b.clone(), n, k, path);
            let run = |threads| {
                crate::linear::output_on_threads(threads, m * n, |y| {
                    lin.forward(&x, y, Epilogue::Bias)
                })
            };
            let one = run(1);
            assert_eq!(one, run(2), "{path:?}");
            assert_eq!(
                &one[n..2 * n],
                &b[..],
                "{path:?}: a zero row gives the bias"
            );
        }
    }

    #[test]
    fn empty_products() {
        let lin = Int8Linear::new(&[], Vec::new(), 0, 4);
        lin.forward(&[1.0; 8], &mut [], Epilogue::Bias);
        let lin = Int8Linear::new(&[1.0; 12], vec![0.0; 3], 3, 4);
        lin.forward(&[], &mut [], Epilogue::Bias);
    }
}
