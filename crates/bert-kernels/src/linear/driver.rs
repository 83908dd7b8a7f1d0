//! The GEMM driver: cuts `y (M, N) = x (M, K) W^T` into parallel tasks ([`crate::team`]) and cache blocks, packs A, and
//! calls the ISA's microkernel on each register tile, the epilogue fused into the last K block's store.
//!
//! Loop nest of one task (rows `r0..r1`, panels `p0..p1`), GotoBLAS/BLIS order:
//! for each column chunk (`nc`) -> for each K block (`kc`): pack the task's A rows into row tiles
//! (kept in L2) -> for each panel: its (kc, NR) B micro-panel is read from memory once and from cache
//! by the other row tiles -> for each row tile: microkernel. Tasks split the (M, N) grid: M into blocks
//! of at most `mc` rows, N into column blocks so that every thread gets work even for M = 8, where
//! the packed weights are streamed once with the threads splitting N. docs/gemm.md has the numbers
//! behind each choice.

use std::cell::RefCell;

use super::f16::{Half, Widen};
#[cfg(target_arch = "x86_64")]
use super::pack::pack_a_avx2;
use super::pack::{
    bf16_tile_len, pack_a, pack_a_bf16, pack_a_transposed, pack_a_transposed_bf16, Elem, PackedB,
};
use super::{Epilogue, GemmOptions, Isa};
use crate::team::SendPtr;
use crate::Activation;

/// One microkernel call: `C[mr, NR] (+)= A[mr, kc] B[kc, NR]`, then the epilogue.
#[derive(Clone, Copy)]
pub(super) struct Tile {
    /// Packed A row tile, (kc, mr); for the bf16 kernels (ceil(kc / 2), mr) bf16 pairs. For the
    /// direct kernels ([`kernels_direct`]) A itself: mr rows of kc floats, `lda` apart.
    pub a: *const f32,
    /// Floats from one row of A to the next: read by the direct kernels only.
    pub lda: usize,
    /// Packed B micro-panel, (kc, NR): f32, f16 or bf16 bits (u16) for the 16-bit kernels, or
    /// (ceil(kc / 2), NR) bf16 pairs (u32) for the bf16 kernels.
    pub b: *const f32,
    /// What to prefetch, one B row per k step (only prefetched, so it may point past `b`'s
    /// buffer): the next panel on a row block's last tile (which otherwise re-reads `b` from cache
    /// while DRAM idles), `b` itself on the other tiles, or, streaming, `b` plus
    /// [`GemmOptions::stream_ahead`] floats.
    pub pf: *const f32,
    /// Streaming ([`Gemm::task`]): prefetch `pf` into L1 (the AVX-512 kernels otherwise prefetch
    /// into L2; the AVX2 ones always into L1); `c` is not prefetched.
    pub pf_l1: bool,
    pub kc: usize,
    /// Top-left of the (mr, NR) block of C, rows `ldc` apart.
    pub c: *mut f32,
    pub ldc: usize,
    /// Add the partial sum already in C (an earlier K block's).
    pub accumulate: bool,
    pub epi: TileEpi,
}

/// What the last K block adds before its store.
#[derive(Clone, Copy)]
pub(super) enum TileEpi {
    /// Not the last K block: store the partial sum.
    None,
    /// Add `bias` (NR floats), then apply `act`.
    Bias {
        bias: *const f32,
        act: Option<Activation>,
    },
    /// Add `bias` and the (mr, NR) block of `res`, rows `ldr` apart.
    BiasResidual {
        bias: *const f32,
        res: *const f32,
        ldr: usize,
    },
}

/// A microkernel for one row count.
pub(super) type KernelFn = unsafe fn(&Tile);

/// The microkernels for tiles of 1..=mr rows, or `None` if that shape is not compiled.
pub(super) fn kernels(isa: Isa, mr: usize, nv: usize) -> Option<&'static [KernelFn]> {
    macro_rules! table {
        ($m:ident; $($mr:literal)*) => { Some(&[$(super::$m::kernel::<$mr> as KernelFn),*]) };
        ($m:ident, $nv:literal; $($mr:literal)*) => {
            Some(&[$(super::$m::kernel::<$mr, $nv> as KernelFn),*])
        };
    }
    match (isa, mr, nv) {
        (Isa::Scalar, 4, 1) => table!(portable; 1 2 3 4),
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx2, 6, 2) => table!(avx2, 2; 1 2 3 4 5 6),
        // 4x3 needs all 16 registers and LLVM spills in its loop: kept only for the benchmark.
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx2, 4, 3) => table!(avx2, 3; 1 2 3 4),
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx512, 6, 3) => table!(avx512, 3; 1 2 3 4 5 6),
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx512, 8, 3) => table!(avx512, 3; 1 2 3 4 5 6 7 8),
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx512, 12, 2) => table!(avx512, 2; 1 2 3 4 5 6 7 8 9 10 11 12),
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx512, 14, 2) => table!(avx512, 2; 1 2 3 4 5 6 7 8 9 10 11 12 13 14),
        _ => None,
    }
}

/// The microkernels for tiles of 1..=mr rows that read A unpacked, rows `lda` apart (see
/// [`Gemm::direct`]), or `None` if that shape has none.
pub(super) fn kernels_direct(isa: Isa, mr: usize, nv: usize) -> Option<&'static [KernelFn]> {
    macro_rules! table {
        ($m:ident, $nv:literal; $($mr:literal)*) => {
            Some(&[$(super::$m::kernel_direct::<$mr, $nv> as KernelFn),*])
        };
    }
    match (isa, mr, nv) {
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx2, 6, 2) => table!(avx2, 2; 1 2 3 4 5 6),
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx512, 12, 2) => table!(avx512, 2; 1 2 3 4 5 6 7 8 9 10 11 12),
        _ => None,
    }
}

/// f32 lanes of one vector register of `isa`.
pub(super) fn lanes(isa: Isa) -> usize {
    match isa {
        Isa::Scalar => super::portable::NR,
        Isa::Avx2 => 8,
        Isa::Avx512 => 16,
    }
}

/// The kernels that read 16-bit B panels directly (widening each row to f32 as they load it: f16
/// by `vcvtph2ps`, bf16 by a 16-bit shift), for tiles of 1..=mr rows, or `None` where this ISA has
/// none for `half` (the product then widens panels into scratch): f16 on AVX-512, bf16 on AVX-512
/// and AVX2.
pub(super) fn kernels_half(
    half: Half,
    isa: Isa,
    mr: usize,
    nv: usize,
) -> Option<&'static [KernelFn]> {
    macro_rules! table {
        ($m:ident, $h:expr, $nv:literal; $($mr:literal)*) => {
            Some(&[$(super::$m::kernel_half::<$mr, $nv, { $h }> as KernelFn),*])
        };
    }
    match (half, isa, mr, nv) {
        #[cfg(target_arch = "x86_64")]
        (Half::F16, Isa::Avx512, 6, 3) => table!(avx512, B_F16, 3; 1 2 3 4 5 6),
        #[cfg(target_arch = "x86_64")]
        (Half::F16, Isa::Avx512, 8, 3) => table!(avx512, B_F16, 3; 1 2 3 4 5 6 7 8),
        #[cfg(target_arch = "x86_64")]
        (Half::F16, Isa::Avx512, 12, 2) => {
            table!(avx512, B_F16, 2; 1 2 3 4 5 6 7 8 9 10 11 12)
        }
        #[cfg(target_arch = "x86_64")]
        (Half::F16, Isa::Avx512, 14, 2) => {
            table!(avx512, B_F16, 2; 1 2 3 4 5 6 7 8 9 10 11 12 13 14)
        }
        #[cfg(target_arch = "x86_64")]
        (Half::Bf16, Isa::Avx512, 6, 3) => table!(avx512, B_BF16, 3; 1 2 3 4 5 6),
        #[cfg(target_arch = "x86_64")]
        (Half::Bf16, Isa::Avx512, 8, 3) => table!(avx512, B_BF16, 3; 1 2 3 4 5 6 7 8),
        #[cfg(target_arch = "x86_64")]
        (Half::Bf16, Isa::Avx512, 12, 2) => {
            table!(avx512, B_BF16, 2; 1 2 3 4 5 6 7 8 9 10 11 12)
        }
        #[cfg(target_arch = "x86_64")]
        (Half::Bf16, Isa::Avx512, 14, 2) => {
            table!(avx512, B_BF16, 2; 1 2 3 4 5 6 7 8 9 10 11 12 13 14)
        }
        #[cfg(target_arch = "x86_64")]
        (Half::Bf16, Isa::Avx2, 6, 2) => table!(avx2, B_BF16, 2; 1 2 3 4 5 6),
        #[cfg(target_arch = "x86_64")]
        (Half::Bf16, Isa::Avx2, 4, 3) => table!(avx2, B_BF16, 3; 1 2 3 4),
        _ => None,
    }
}

/// What a kernel's B elements are (its `B` const parameter): f32, f16 bits or bf16 bits.
pub(super) const B_F32: u8 = 0;
/// See [`B_F32`].
pub(super) const B_F16: u8 = 1;
/// See [`B_F32`].
pub(super) const B_BF16: u8 = 2;

/// The kernels that multiply bf16 pairs (`vdpbf16ps`: A and B as [`super::pack::Bf16Pair`]s, f32
/// sums; at 32 x 2 vectors AMX's `tdpbf16ps`, see [`amx_bf16`]), for tiles of 1..=mr rows, or
/// `None` where this ISA or CPU has none (AVX512-BF16 only).
pub(super) fn kernels_bf16(isa: Isa, mr: usize, nv: usize) -> Option<&'static [KernelFn]> {
    macro_rules! table {
        ($nv:literal; $($mr:literal)*) => {
            Some(&[$(super::avx512::kernel_bf16::<$mr, $nv> as KernelFn),*])
        };
    }
    if !crate::isa::has_avx512_bf16() {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    if amx_bf16(isa, mr, nv) {
        macro_rules! amx {
            ($($mr:literal)*) => { &[$(super::amx::bf16_kernel::<$mr> as KernelFn),*] };
        }
        return Some(amx!(
            1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32
        ));
    }
    match (isa, mr, nv) {
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx512, 8, 3) => table!(3; 1 2 3 4 5 6 7 8),
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx512, 12, 2) => table!(2; 1 2 3 4 5 6 7 8 9 10 11 12),
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx512, 14, 2) => table!(2; 1 2 3 4 5 6 7 8 9 10 11 12 13 14),
        _ => None,
    }
}

/// Whether the bf16 kernels of this shape are AMX's: 32 x 2 vectors on AVX-512, where the CPU has
/// AMX-BF16 (A is then packed row-major, and each task loads the tile configuration).
pub(super) fn amx_bf16(isa: Isa, mr: usize, nv: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        (isa, mr, nv) == (Isa::Avx512, super::amx::MR, super::amx::NR / 16)
            && super::amx::bf16_available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, mr, nv);
        false
    }
}

/// Packed B and how the kernels read it.
#[derive(Clone, Copy)]
pub(super) struct BOperand<'a, T> {
    pub packed: &'a PackedB<T>,
    /// Microkernels for tiles of 1..=mr rows that read `packed` as it is (f32 kernels for f32 B,
    /// 16-bit kernels for f16 or bf16 B), if this ISA has them.
    pub kernels: Option<&'static [KernelFn]>,
    /// 16-bit B only: when to widen panels for the f32 kernels instead.
    pub widen: Option<Widened>,
    /// `kernels` are AMX's ([`amx_bf16`]).
    pub amx: bool,
}

/// Widening 16-bit B: each (kc, NR) micro-panel is converted once into a per-thread f32 scratch, which
/// the f32 kernels then read for every row tile of the task.
#[derive(Clone, Copy, Debug)]
pub(super) struct Widened {
    pub widen: Widen,
    /// f32 kernels for tiles of 1..=mr rows.
    pub kernels: &'static [KernelFn],
    /// Widen when a task has at least this many row tiles (or when B has no direct kernels).
    pub min_tiles: usize,
}

/// The largest register tile any kernel has, in floats: sizes the edge-tile scratch.
const MAX_TILE: usize = 16 * 64;

/// Everything a task needs, shared by all tasks of one product.
struct Gemm<'a, T> {
    opts: GemmOptions,
    b: BOperand<'a, T>,
    /// (panels * NR): the bias zero-padded to whole panels.
    bias: &'a [f32],
    /// (M, K).
    x: &'a [f32],
    /// (M, N): each task writes its own (rows, columns) block.
    y: SendPtr<f32>,
    epi: Epilogue<'a>,
    /// How `x` is laid out and whether `y` is added to.
    how: Product,
    m: usize,
    k: usize,
    n: usize,
    /// A packed once for every task, K block after K block, and where each block starts (its
    /// last entry the end): when all tasks share one row block (see [`forward_with`]).
    shared_a: Option<(&'a [f32], &'a [usize])>,
    /// Kernels that read A where it is, not packed: when all tasks share one row block of a plain
    /// f32 product (see [`forward_with`]).
    direct: Option<&'static [KernelFn]>,
}

/// The layout of A and the treatment of C in one product: the plain `y = x W^T` of inference, or
/// training's `dW += dy^T x` (A given transposed, C accumulated into).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Product {
    /// `x` is stored (K, M) row-major (A^T), not (M, K).
    pub a_transposed: bool,
    /// `y += ...` (before the epilogue's bias/residual) rather than `y = ...`.
    pub accumulate: bool,
    /// Round A to bf16 as it is packed: the emulated bf16 product on the f32 kernels (the bf16
    /// kernels' A is bf16 whatever this says).
    pub a_bf16: bool,
}

impl Product {
    /// Training's `dx += dy W`: `y += x W^T`.
    pub const ACCUMULATE: Product = Product {
        a_transposed: false,
        accumulate: true,
        a_bf16: false,
    };
    /// Training's `dW += dy^T x`: A given transposed, `y` accumulated into.
    pub const ACCUMULATE_TRANSPOSED: Product = Product {
        a_transposed: true,
        accumulate: true,
        a_bf16: false,
    };
}

thread_local! {
    /// Each worker's C tiles of one column chunk, for the streaming products that write C there.
    static C_TILES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// Each worker's packed-A scratch, reused across calls.
    static A_PACK: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// Each worker's f32 copy of the 16-bit B micro-panel it is working on (see [`BOperand::widen`]).
    static B_WIDE: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// The calling thread's A packed for all of a product's tasks ([`Gemm::shared_a`]), and its K
    /// blocks' offsets.
    static A_SHARED: RefCell<(Vec<f32>, Vec<usize>)> = const { RefCell::new((Vec::new(), Vec::new())) };
    /// The calling thread's A rounded to bf16 for an emulated bf16 product of one row block.
    static A_ROUNDED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `y (M, N) = epilogue(x (M, K) W^T + bias)` with W packed in `b`.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward(
    opts: GemmOptions,
    b: &PackedB,
    bias: &[f32],
    x: &[f32],
    y: &mut [f32],
    epi: Epilogue<'_>,
    how: Product,
    mkn: (usize, usize, usize),
) {
    let b = BOperand {
        packed: b,
        kernels: kernels(opts.isa, opts.mr, opts.nv),
        widen: None,
        amx: false,
    };
    forward_with(opts, b, bias, x, y, epi, how, mkn);
}

/// [`forward`] with B in any element type and its kernels.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward_with<T: Elem>(
    opts: GemmOptions,
    b: BOperand<'_, T>,
    bias: &[f32],
    x: &[f32],
    y: &mut [f32],
    epi: Epilogue<'_>,
    how: Product,
    (m, k, n): (usize, usize, usize),
) {
    let panels = b.packed.panels();
    let rows = row_blocks(m, opts.mr, opts.mc);
    let work = 2 * m * n * k;
    let threads = rayon::current_num_threads();
    let per_thread = if rows.len() == 1 {
        opts.one_block_tasks_per_thread
    } else {
        opts.tasks_per_thread
    };
    let want = if threads <= 1 {
        1
    } else {
        (threads * per_thread).min((work / opts.min_task_flops).max(1))
    };
    let cols = col_blocks(panels, want.div_ceil(rows.len()));
    let g = Gemm {
        opts,
        b,
        bias,
        x,
        y: SendPtr(y.as_mut_ptr()),
        epi,
        how,
        m,
        k,
        n,
        shared_a: None,
        direct: None,
    };
    let tasks = rows.len() * cols.len();
    if rows.len() > 1 || cols.len() == 1 {
        let run = |t: usize| g.task(rows[t / cols.len()], cols[t % cols.len()]);
        crate::team::for_each(tasks, run);
        return;
    }
    // One row block (few rows: W1's 8) split by columns: every task would pack the same A. A plain
    // f32 product reads A where it is: packing it once on the calling thread before the tasks (the
    // next case) cost MiniLM's f32 W1 8% of its time, the other threads idle meanwhile.
    let plain = T::K_PER == 1 && !how.a_transposed && g.b.widen.is_none();
    if let Some(direct) = kernels_direct(opts.isa, opts.mr, opts.nv).filter(|_| plain) {
        if how.a_bf16 {
            // Emulated bf16 (f32 B): A rounded once, what packing it would do, then read in place
            // by the direct kernels like a plain product's (packed, MiniLM's emulated bf16 W1
            // took 1.12x f32's time).
            A_ROUNDED.with_borrow_mut(|xr| {
                super::pack::round_bf16_into(x, xr);
                let g = Gemm {
                    x: &xr[..],
                    how: Product {
                        a_bf16: false,
                        ..how
                    },
                    direct: Some(direct),
                    ..g
                };
                crate::team::for_each(tasks, |t| g.task(rows[0], cols[t]));
            });
            return;
        }
        let g = Gemm {
            direct: Some(direct),
            ..g
        };
        crate::team::for_each(tasks, |t| g.task(rows[0], cols[t]));
        return;
    }
    // Else A is packed once here, by the calling thread, for all of them (before, each task
    // packed it: at W1, 9% of the samples).
    A_SHARED.with_borrow_mut(|(buf, offs)| {
        let tiles = row_tiles(rows[0], opts.mr);
        offs.clear();
        offs.push(0);
        buf.clear();
        // Each K block packed into this thread's task scratch (free until the tasks start), then
        // appended.
        A_PACK.with_borrow_mut(|block| {
            for (k0, kc) in g.b.packed.k_blocks() {
                g.pack_a(&tiles, k0, kc, block);
                buf.extend_from_slice(block);
                offs.push(buf.len());
            }
        });
        let g = Gemm {
            shared_a: Some((&buf[..], &offs[..])),
            ..g
        };
        let run = |t: usize| g.task(rows[0], cols[t]);
        crate::team::for_each(tasks, run);
    });
}

/// Splits `m` rows into blocks of at most `mc` (rounded to `mr`), as even as `mr` allows.
fn row_blocks(m: usize, mr: usize, mc: usize) -> Vec<(usize, usize)> {
    let count = m.div_ceil(mc.max(mr));
    let per = m.div_ceil(count).next_multiple_of(mr);
    (0..m)
        .step_by(per)
        .map(|r0| (r0, (r0 + per).min(m)))
        .collect()
}

/// Splits `panels` into `count` (at most `panels`) nearly equal ranges.
fn col_blocks(panels: usize, count: usize) -> Vec<(usize, usize)> {
    let count = count.clamp(1, panels.max(1));
    (0..count)
        .map(|i| (i * panels / count, (i + 1) * panels / count))
        .collect()
}

/// Splits rows `r0..r1` into tiles of at most `mr` rows, as even as possible: 8 rows with mr = 6
/// become 4 + 4, which keeps both kernels' FMA chains long enough, rather than 6 + 2.
fn row_tiles((r0, r1): (usize, usize), mr: usize) -> Vec<(usize, usize)> {
    let rows = r1 - r0;
    let count = rows.div_ceil(mr);
    let (base, extra) = (rows / count, rows % count);
    let mut start = r0;
    (0..count)
        .map(|i| {
            let len = base + usize::from(i < extra);
            let tile = (start, len);
            start += len;
            tile
        })
        .collect()
}

/// The operands of one register tile.
struct Job<'s> {
    /// (kc, mr) packed A ((ceil(kc / 2), mr) pairs for bf16); for the direct kernels, A from the
    /// tile's first row and K block on (rows `k` apart).
    a: &'s [f32],
    /// (kc, NR) packed B, in the element type `kernels` read.
    b: *const f32,
    /// For tiles of 1..=mr rows.
    kernels: &'static [KernelFn],
    /// (kc, NR), prefetched as the kernel runs (see [`Tile::pf`]).
    pf: *const f32,
    /// See [`Tile::pf_l1`].
    pf_l1: bool,
    /// Where the (mr, NR) tile of C goes instead of `y`, and its rows' distance: a scratch tile
    /// that [`Gemm::task`] copies into `y` at the end of a column chunk.
    out: Option<(*mut f32, usize)>,
    kc: usize,
    /// (first row, rows).
    rows: (usize, usize),
    /// First column.
    j0: usize,
    /// Not the first K block.
    accumulate: bool,
    /// The last K block: apply the epilogue.
    last: bool,
}

impl<T: Elem> Gemm<'_, T> {
    /// Rows `rows` x panels `cols` of `y`, all of K: column chunks of at most `nc` columns, so the
    /// (rows, nc) block of C that each K block updates stays in L2.
    fn task(&self, rows: (usize, usize), cols: (usize, usize)) {
        let tiles = row_tiles(rows, self.opts.mr);
        let nr = self.opts.nr();
        let chunk = (self.opts.nc / nr).max(1);
        let widened = self
            .b
            .widen
            .filter(|w| self.b.kernels.is_none() || tiles.len() >= w.min_tiles);
        let kernels = match (widened, self.direct) {
            (_, Some(direct)) => direct,
            (Some(w), None) => w.kernels,
            (None, None) => self.b.kernels.expect("Linear::new checked B has kernels"),
        };
        #[cfg(target_arch = "x86_64")]
        if self.b.amx {
            // SAFETY: `amx` is set only where `amx_bf16` found the tiles available.
            unsafe { super::amx::configure() };
        }
        // Elements of a packed A row tile of `rows` rows and a K block of `kc`.
        let tile_len = |kc: usize, rows: usize| match self.b.amx {
            true => bf16_tile_len::<true>(kc, rows),
            false => kc.div_ceil(T::K_PER) * rows,
        };
        let packed_b = self.b.packed;
        let blocks = packed_b.k_block_count();
        // The panel this task reads after panel `p` of K block `q` in chunk `p0..p1`, which the
        // kernel prefetches as it runs: the next panel, else the chunk's first panel in the next
        // K block, else the next chunk's first; `None` at the task's end. (At W1, bert-base's
        // tasks are 6 panels wide and K = 3,072 is 4 blocks: one panel in 6 was read unfetched.)
        let after = |q: usize, p: usize, (p0, p1): (usize, usize)| {
            let (q, p) = if p + 1 < p1 {
                (q, p + 1)
            } else if q + 1 < blocks {
                (q + 1, p0)
            } else if p1 < cols.1 {
                (0, p1)
            } else {
                return None;
            };
            Some(packed_b.panel(packed_b.k_block(q), p))
        };
        // A product of one row tile that reads A where it is (W1's) streams B once: each panel
        // is prefetched into L1 `stream_ahead` floats ahead of the kernel. Where the weights
        // come from memory (the process holds more than a last-level cache), C goes to
        // per-thread scratch tiles, copied into `y` once a column chunk is done: stores into `y`
        // between the panels made bert-base's W1 1.1x slower, while with the weights in cache
        // the copy costs more than it saves (docs/gemm.md, "W1: the stores"). Training's `y +=`
        // keeps C in place. With `stream_tiles`, weights from memory stream in products of
        // several row tiles too (AVX2's W1: 8 rows are two tiles of 4, each panel read twice):
        // the first tile's prefetches are the stream, the second reads the panel from cache
        // (docs/gemm.md, "W1 on AVX2").
        let ahead = self.opts.stream_ahead;
        let from_memory = crate::hugepages::held_bytes() >= self.opts.stream_scratch_bytes;
        let several = self.opts.stream_tiles && from_memory;
        let stream = ahead > 0 && self.direct.is_some() && (tiles.len() == 1 || several);
        let scratch = stream && !self.how.accumulate && from_memory;
        // The row block's rows: the scratch holds all of them, panel after panel.
        let block = (tiles[0].0, tiles.iter().map(|t| t.1).sum::<usize>());
        let mut ctiles = Vec::new();
        if scratch {
            ctiles = C_TILES.take();
            ctiles.resize(chunk.min(cols.1 - cols.0) * block.1 * nr, 0.0);
        }
        A_PACK.with_borrow_mut(|apack| {
            B_WIDE.with_borrow_mut(|wide| {
                for p0 in (cols.0..cols.1).step_by(chunk) {
                    let p1 = (p0 + chunk).min(cols.1);
                    for (q, (k0, kc)) in packed_b.k_blocks().enumerate() {
                        let pack_here = self.direct.is_none() && self.shared_a.is_none();
                        if pack_here && (p0 == cols.0 || blocks > 1) {
                            self.pack_a(&tiles, k0, kc, apack);
                        }
                        let apack: &[f32] = match self.shared_a {
                            Some((buf, offs)) => &buf[offs[q]..offs[q + 1]],
                            None => apack,
                        };
                        let last = q + 1 == blocks;
                        for p in p0..p1 {
                            let b = self.b.packed.panel((k0, kc), p);
                            // The kernel prefetches (and 16-bit widening reads) as many
                            // elements as `b` has: a next panel of another length (the K blocks
                            // differ by one row at most) is not prefetched.
                            let next = after(q, p, (p0, p1))
                                .filter(|next| next.len() == b.len())
                                .unwrap_or(b);
                            let (b, next) = match widened {
                                None => (b.as_ptr().cast::<f32>(), next.as_ptr().cast::<f32>()),
                                Some(w) => {
                                    let half =
                                        T::as_half(b).expect("only 16-bit panels are widened");
                                    let next = T::as_half(next).expect("as b");
                                    wide.resize(half.len(), 0.0);
                                    w.widen.run(half, wide, next);
                                    (wide.as_ptr(), wide.as_ptr())
                                }
                            };
                            let mut a_off = 0;
                            for (t, &rows) in tiles.iter().enumerate() {
                                let a_len = tile_len(kc, rows.1);
                                let a = match self.direct {
                                    Some(_) => &self.x[rows.0 * self.k + k0..],
                                    None => &apack[a_off..a_off + a_len],
                                };
                                self.tile(Job {
                                    a,
                                    b,
                                    pf: if stream {
                                        b.wrapping_add(ahead)
                                    } else if self.opts.prefetch && t + 1 == tiles.len() {
                                        next
                                    } else {
                                        b
                                    },
                                    pf_l1: stream,
                                    out: scratch.then(|| {
                                        let at = ((p - p0) * block.1 + rows.0 - block.0) * nr;
                                        (ctiles[at..].as_mut_ptr(), nr)
                                    }),
                                    kc,
                                    kernels,
                                    rows,
                                    j0: p * nr,
                                    accumulate: q > 0 || self.how.accumulate,
                                    last,
                                });
                                a_off += a_len;
                            }
                        }
                    }
                    if scratch {
                        self.copy_out(&ctiles, block, (p0, p1));
                    }
                }
            })
        });
        if scratch {
            C_TILES.set(ctiles);
        }
    }

    /// Copies the C tiles of panels `p0..p1`, rows `(r0, mr)`, from `ctiles` (one contiguous
    /// (mr, NR) tile per panel) into `y`.
    fn copy_out(&self, ctiles: &[f32], (r0, mr): (usize, usize), (p0, p1): (usize, usize)) {
        let nr = self.opts.nr();
        let n = self.n;
        for (p, tile) in (p0..p1).zip(ctiles.chunks(mr * nr)) {
            let j0 = p * nr;
            let ncols = nr.min(n - j0);
            for (i, src) in tile.chunks(nr).enumerate() {
                // SAFETY: this task owns rows r0..r0 + mr, columns j0..j0 + ncols of y (M, N).
                let row = unsafe {
                    std::slice::from_raw_parts_mut(self.y.0.add((r0 + i) * n + j0), ncols)
                };
                row.copy_from_slice(&src[..ncols]);
            }
        }
    }

    /// Packs the row tiles `tiles` of A, K block (`k0`, `kc`), into `dst` in the layout the
    /// kernels read.
    fn pack_a(&self, tiles: &[(usize, usize)], k0: usize, kc: usize, dst: &mut Vec<f32>) {
        #[cfg(target_arch = "x86_64")]
        if T::K_PER == 1
            && !self.how.a_transposed
            && self.opts.isa != Isa::Scalar
            && Isa::Avx2.is_supported()
        {
            let ld = self.k;
            // SAFETY: the AVX2 and AVX-512 paths run on CPUs with AVX2 (every AVX-512 one); the
            // tiles are rows of x, (M, K), and the K block lies in K.
            unsafe {
                if self.how.a_bf16 {
                    pack_a_avx2::<true>(self.x, ld, tiles, k0, kc, dst)
                } else {
                    pack_a_avx2::<false>(self.x, ld, tiles, k0, kc, dst)
                }
            }
            return;
        }
        let pack = match (T::K_PER, self.how.a_transposed, self.how.a_bf16) {
            (1, false, false) => pack_a::<false>,
            (1, false, true) => pack_a::<true>,
            (1, true, false) => pack_a_transposed::<false>,
            (1, true, true) => pack_a_transposed::<true>,
            (_, false, _) if self.b.amx => pack_a_bf16::<true>,
            (_, true, _) if self.b.amx => pack_a_transposed_bf16::<true>,
            (_, false, _) => pack_a_bf16::<false>,
            (_, true, _) => pack_a_transposed_bf16::<false>,
        };
        let ld = if self.how.a_transposed {
            self.m
        } else {
            self.k
        };
        pack(self.x, ld, tiles, k0, kc, dst);
    }

    /// One register tile: rows `r0..r0 + mr`, columns `j0..j0 + NR` (clipped to N).
    fn tile(&self, job: Job<'_>) {
        let Job {
            a,
            b,
            pf,
            pf_l1,
            out,
            kc,
            kernels,
            rows: (r0, mr),
            j0,
            accumulate,
            last,
        } = job;
        let nr = self.opts.nr();
        let n = self.n;
        let ncols = nr.min(n - j0);
        let bias = self.bias[j0..].as_ptr();
        let res = match self.epi {
            Epilogue::BiasResidual(r) if last => Some(&r[r0 * n + j0..]),
            _ => None,
        };
        let epi = |res: *const f32, ldr: usize| match (last, self.epi) {
            (false, _) => TileEpi::None,
            (true, Epilogue::Bias) => TileEpi::Bias { bias, act: None },
            (true, Epilogue::BiasActivation(act)) => TileEpi::Bias {
                bias,
                act: Some(act),
            },
            (true, Epilogue::BiasResidual(_)) => TileEpi::BiasResidual { bias, res, ldr },
        };
        // C in place, or the scratch tile `out` of a streaming product.
        // SAFETY: `y` is (M, N) and this task owns rows r0..r0 + mr, columns j0..j0 + ncols of it.
        let (c, ldc) = out.unwrap_or_else(|| (unsafe { self.y.0.add(r0 * n + j0) }, n));
        let run = |c: *mut f32, ldc: usize, res: *const f32, ldr: usize| {
            let t = Tile {
                a: a.as_ptr(),
                lda: self.k,
                b,
                pf,
                pf_l1,
                kc,
                c,
                ldc,
                accumulate,
                epi: epi(res, ldr),
            };
            // SAFETY: `kernels` matches the options' ISA, which Linear::new checked the CPU
            // supports; a is (kc, mr) packed, or for the direct kernels x from row r0, column k0
            // on (rows r0..r0 + mr < M of K floats, so every a + i * k + kk with kk < kc is in
            // x); b is (kc, NR) of the elements `kernels` read (pf only prefetched); c and res
            // hold mr rows of NR floats, ldc and ldr apart (the callers below).
            unsafe { kernels[mr - 1](&t) };
        };
        if ncols == nr {
            run(c, ldc, res.map_or(std::ptr::null(), <[f32]>::as_ptr), n);
            return;
        }
        // The last panel of an N that is not a multiple of NR: run the kernel on a full-width scratch
        // tile and copy the real columns in and out.
        let mut cbuf = [0.0f32; MAX_TILE];
        let mut rbuf = [0.0f32; MAX_TILE];
        for i in 0..mr {
            // SAFETY: as above, row r0 + i, columns j0..j0 + ncols of C belong to this task.
            let row = unsafe { std::slice::from_raw_parts(c.add(i * ldc), ncols) };
            if accumulate {
                cbuf[i * nr..i * nr + ncols].copy_from_slice(row);
            }
            if let Some(res) = res {
                rbuf[i * nr..i * nr + ncols].copy_from_slice(&res[i * n..i * n + ncols]);
            }
        }
        // (mr * NR <= MAX_TILE.)
        run(cbuf.as_mut_ptr(), nr, rbuf.as_ptr(), nr);
        for i in 0..mr {
            // SAFETY: as above.
            let row = unsafe { std::slice::from_raw_parts_mut(c.add(i * ldc), ncols) };
            row.copy_from_slice(&cbuf[i * nr..i * nr + ncols]);
        }
    }
}
