//! `torch.nn.Linear`: `y = x W^T + b`, with the element-wise work that follows it fused in.
//!
//! The weights are packed once, at [`Linear::new`], into the panel layout of a register-blocked
//! microkernel (AVX-512, AVX2 + FMA, or portable Rust, chosen at start-up: see [`Isa`]); `forward`
//! splits the product over rayon's current pool and applies the bias, activation or residual in the
//! store of each tile. docs/gemm.md has the measurements behind the design.

#[cfg(target_arch = "x86_64")]
pub(crate) mod amx;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod bf16;
mod driver;
mod f16;
mod int8;
#[cfg(target_arch = "x86_64")]
mod int8_x86;
mod pack;
mod portable;

pub use crate::isa::{Isa, ISA_ENV};
pub use bf16::Bf16Linear;
pub use f16::{F16Linear, F16Read, WIDEN_ALL_MIN_ROWS, WIDEN_MIN_TILES};
pub use int8::{
    int8_scale, outlier_columns, quantize_one, Int8Linear, Int8Path, MAX_OUTLIER_COLUMNS,
    OUTLIER_RATIO,
};

use crate::Activation;
use driver::Product;
use pack::{Lifetime, PackedB};

/// What happens to `x W^T + b` before it is stored.
#[derive(Clone, Copy, Debug)]
pub enum Epilogue<'a> {
    /// `y = x W^T + b`.
    Bias,
    /// `y = act(x W^T + b)`.
    BiasActivation(Activation),
    /// `y = x W^T + b + residual`, `residual` shaped like `y`.
    BiasResidual(&'a [f32]),
}

/// The microkernel shape and cache blocking of a [`Linear`]: the tuning knobs docs/gemm.md measured.
/// [`GemmOptions::new`] gives the chosen defaults for an ISA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmOptions {
    pub isa: Isa,
    /// Rows of the register tile.
    pub mr: usize,
    /// Vector registers per row of the register tile: NR = `nv` x lanes (8 AVX2, 16 AVX-512).
    pub nv: usize,
    /// K block: the microkernel's loop length. Larger blocks mean fewer kernel calls and passes over
    /// C; smaller ones keep the (kc, NR) B micro-panel in L1 while the kernel walks a row block.
    pub kc: usize,
    /// M block: at most this many rows of packed A (kept in L2) per task.
    pub mc: usize,
    /// N block: a task walks its columns in chunks of at most this many, so the (mc, nc) block of C
    /// that each K block updates stays in L2.
    pub nc: usize,
    /// Rayon tasks to aim for per thread (load balance against per-task overhead).
    pub tasks_per_thread: usize,
    /// The same for a product of one row block (at most `mc` rows, e.g. W1's 8), cut by columns
    /// only: it streams B once and does little else, and each task start reads its first panel
    /// unprefetched; one per thread did not balance worse than two (Intel Xeon, f32 W1: MiniLM
    /// 0.96x the time of two, bert-base 0.985x; bf16 0.98-0.99x).
    pub one_block_tasks_per_thread: usize,
    /// No task is cut smaller than this many flops (2 M N K / tasks).
    pub min_task_flops: usize,
    /// A row block's last tile prefetches the next B micro-panel (keeps DRAM busy for small M).
    pub prefetch: bool,
    /// Products of one row tile that read A unpacked (W1's few rows) prefetch each B panel into
    /// L1 this many floats ahead of the kernel instead of the next panel into L2; 0: as larger
    /// products.
    pub stream_ahead: usize,
    /// While the process holds at least this many bytes of weights packed at load (a forward's
    /// weights then stream from memory, not from the last-level cache), those products write C
    /// to per-thread scratch tiles, copied into the output once per column chunk, not in place.
    pub stream_scratch_bytes: usize,
    /// Products of one row block of several row tiles stream too while the weights come from
    /// memory (see `stream_scratch_bytes`): the first tile's prefetches are the stream, the
    /// others read each panel from cache.
    pub stream_tiles: bool,
}

impl GemmOptions {
    /// The measured defaults for `isa` (docs/gemm.md).
    pub fn new(isa: Isa) -> Self {
        let (mr, nv, kc, mc, nc) = match isa {
            Isa::Scalar => (4, 1, 512, 64, 512),
            Isa::Avx2 => (6, 2, 768, 72, 768),
            Isa::Avx512 => (12, 2, 768, 48, 768),
        };
        // 2 KB and 128 MiB: measured on an Intel Xeon (docs/gemm.md, "W1: the stores"); AVX2's
        // on Zen 4 with the AVX2 kernels forced, as Zen 3 runs them ("W1 on AVX2").
        let stream_ahead = if isa == Isa::Scalar { 0 } else { 512 };
        let stream_scratch_bytes = 128 << 20;
        // AVX2's 6-row tiles cut W1's 8 rows in two; AVX-512's 12 hold them (its products of
        // 13-48 rows, bert-base's W3U, streamed took 1.015x the time).
        let stream_tiles = isa == Isa::Avx2;
        GemmOptions {
            isa,
            mr,
            nv,
            kc,
            mc,
            nc,
            tasks_per_thread: 2,
            one_block_tasks_per_thread: 1,
            min_task_flops: 1 << 20,
            prefetch: true,
            stream_ahead,
            stream_scratch_bytes,
            stream_tiles,
        }
    }

    /// Columns of the register tile.
    pub fn nr(&self) -> usize {
        self.nv * driver::lanes(self.isa)
    }
}

/// A Linear layer's weights, packed once at load for fast products.
pub struct Linear {
    /// W^T in the microkernel's panel layout.
    packed: PackedB,
    /// (out) zero-padded to whole panels.
    bias: Vec<f32>,
    opts: GemmOptions,
    in_features: usize,
    out_features: usize,
}

impl Linear {
    /// `weight` is (out, in) row-major (PyTorch layout); `bias` has `out` entries. Packs the weight
    /// for [`Isa::selected`].
    ///
    /// # Panics
    /// If the sizes disagree or `in_features` is 0 (an empty product has no rows to infer M from).
    pub fn new(weight: Vec<f32>, bias: Vec<f32>, out_features: usize, in_features: usize) -> Self {
        Self::with_options(
            weight,
            bias,
            out_features,
            in_features,
            GemmOptions::new(Isa::selected()),
        )
    }

    /// As [`Linear::new`] from borrowed weights (training packs the current weights every step).
    pub fn from_slice(
        weight: &[f32],
        bias: &[f32],
        out_features: usize,
        in_features: usize,
    ) -> Self {
        let opts = GemmOptions::new(Isa::selected());
        Self::pack(
            weight,
            bias.to_vec(),
            (out_features, in_features),
            opts,
            Lifetime::Step,
        )
    }

    /// As [`Linear::new`], with an explicit ISA and blocking: for tests and benchmarks.
    ///
    /// # Panics
    /// As `new`, and if `opts.isa` is not supported by this CPU or (`mr`, `nv`) is not a compiled
    /// kernel shape.
    pub fn with_options(
        weight: Vec<f32>,
        bias: Vec<f32>,
        out_features: usize,
        in_features: usize,
        opts: GemmOptions,
    ) -> Self {
        Self::pack(
            &weight,
            bias,
            (out_features, in_features),
            opts,
            Lifetime::Model,
        )
    }

    /// Checks, then packs `weight` (out, in) row-major, stored for `life`: the body of
    /// `with_options` (weights kept for the model's life) and `from_slice` (one training step's).
    fn pack(
        weight: &[f32],
        bias: Vec<f32>,
        (out_features, in_features): (usize, usize),
        opts: GemmOptions,
        life: Lifetime,
    ) -> Self {
        Self::check(weight.len(), &bias, out_features, in_features, opts);
        let packed = PackedB::new(
            weight,
            (out_features, in_features),
            opts.nr(),
            opts.kc,
            life,
        );
        Self::from_packed(packed, bias, out_features, in_features, opts)
    }

    /// The size and option checks of every constructor.
    fn check(
        weight_len: usize,
        bias: &[f32],
        out_features: usize,
        in_features: usize,
        opts: GemmOptions,
    ) {
        Self::check_with(weight_len, bias, out_features, in_features, opts, true);
    }

    /// [`Linear::check`], the f32 kernels of `opts` required only if `f32_kernels` (a bf16 layer's
    /// native kernels may have a shape the f32 ones lack).
    fn check_with(
        weight_len: usize,
        bias: &[f32],
        out_features: usize,
        in_features: usize,
        opts: GemmOptions,
        f32_kernels: bool,
    ) {
        assert!(in_features > 0, "Linear: in_features must be > 0");
        assert_eq!(
            weight_len,
            out_features * in_features,
            "Linear: weight size"
        );
        assert_eq!(bias.len(), out_features, "Linear: bias size");
        assert!(
            opts.isa.is_supported(),
            "Linear: {:?} is not supported by this CPU",
            opts.isa
        );
        assert!(
            !f32_kernels || driver::kernels(opts.isa, opts.mr, opts.nv).is_some(),
            "Linear: no {:?} kernel of {}x{} vectors",
            opts.isa,
            opts.mr,
            opts.nv
        );
        assert!(
            opts.kc > 0
                && opts.mc > 0
                && opts.nc > 0
                && opts.tasks_per_thread > 0
                && opts.one_block_tasks_per_thread > 0
                && opts.min_task_flops > 0
        );
    }

    /// As [`Linear::new`] from the transposed weight `weight_t` (in, out) row-major (W^T, e.g. an
    /// activation matrix in training's `dW = dy^T x`): packs without a transpose, into exactly what
    /// `Linear::new(transpose(weight_t), ..)` packs.
    pub fn from_transposed(
        weight_t: &[f32],
        bias: Vec<f32>,
        out_features: usize,
        in_features: usize,
    ) -> Self {
        Self::from_transposed_with_options(
            weight_t,
            bias,
            out_features,
            in_features,
            GemmOptions::new(Isa::selected()),
        )
    }

    /// As [`Linear::from_transposed`], with an explicit ISA and blocking.
    pub fn from_transposed_with_options(
        weight_t: &[f32],
        bias: Vec<f32>,
        out_features: usize,
        in_features: usize,
        opts: GemmOptions,
    ) -> Self {
        Self::check(weight_t.len(), &bias, out_features, in_features, opts);
        let dims = (out_features, in_features);
        let packed = PackedB::from_kn(weight_t, dims, opts.nr(), opts.kc, Lifetime::Step);
        Self::from_packed(packed, bias, out_features, in_features, opts)
    }

    fn from_packed(
        packed: PackedB,
        bias: Vec<f32>,
        out_features: usize,
        in_features: usize,
        opts: GemmOptions,
    ) -> Self {
        let nr = opts.nr();
        let mut bias = bias;
        bias.resize(packed.panels() * nr, 0.0);
        Linear {
            packed,
            bias,
            opts,
            in_features,
            out_features,
        }
    }

    pub fn in_features(&self) -> usize {
        self.in_features
    }

    pub fn out_features(&self) -> usize {
        self.out_features
    }

    /// Bytes of packed weights and bias this layer holds.
    pub fn memory_bytes(&self) -> usize {
        4 * (self.packed.capacity() + self.bias.capacity())
    }

    /// The ISA and blocking this layer was packed for.
    pub fn options(&self) -> GemmOptions {
        self.opts
    }

    /// `y (M, out) = epilogue(x (M, in) W^T + b)`.
    pub fn forward(&self, x: &[f32], y: &mut [f32], epilogue: Epilogue<'_>) {
        self.product(x, y, epilogue, Product::default());
    }

    /// `y (M, out) += x (M, in) W^T + b`: training's `dx += dy W` (a zero bias).
    pub fn accumulate(&self, x: &[f32], y: &mut [f32]) {
        self.product(x, y, Epilogue::Bias, Product::ACCUMULATE);
    }

    /// `y (M, out) += xt^T W^T + b` with `xt` (in, M) row-major, i.e. A given transposed: training's
    /// `dW += dy^T x` reads `dy` (tokens, out) as it is stored.
    pub fn accumulate_transposed(&self, xt: &[f32], y: &mut [f32]) {
        self.product(xt, y, Epilogue::Bias, Product::ACCUMULATE_TRANSPOSED);
    }

    fn product(&self, x: &[f32], y: &mut [f32], epilogue: Epilogue<'_>, how: Product) {
        let (k, n) = (self.in_features, self.out_features);
        let m = rows("Linear", x, y, (k, n), epilogue);
        if m == 0 || n == 0 {
            return;
        }
        driver::forward(
            self.opts,
            &self.packed,
            &self.bias,
            x,
            y,
            epilogue,
            how,
            (m, k, n),
        );
    }
}

/// The rows M of a product `y (M, n) = epilogue(x (M, k) W^T + b)`, after checking that `x` is whole
/// rows and that `y` and any residual are (M, n): the shape checks of every Linear's `forward`.
fn rows(what: &str, x: &[f32], y: &[f32], (k, n): (usize, usize), epilogue: Epilogue<'_>) -> usize {
    assert_eq!(x.len() % k, 0, "{what}: x is not whole rows");
    let m = x.len() / k;
    assert_eq!(y.len(), m * n, "{what}: y size");
    if let Epilogue::BiasResidual(res) = epilogue {
        assert_eq!(res.len(), y.len(), "{what}: residual size");
    }
    m
}

/// Applies `act` in place with `isa`'s vector code (the epilogue's), scalar [`Activation::apply`] for
/// the tail and on the portable path.
///
/// # Panics
/// If `isa` is not supported by this CPU.
pub fn activate(isa: Isa, act: Activation, xs: &mut [f32]) {
    assert!(
        isa.is_supported(),
        "activate: {isa:?} is not supported by this CPU"
    );
    match isa {
        Isa::Scalar => xs.iter_mut().for_each(|x| *x = act.apply(*x)),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU supports AVX2 + FMA (asserted above).
        Isa::Avx2 => unsafe { avx2::activate_slice(xs, act) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU supports AVX-512F (asserted above).
        Isa::Avx512 => unsafe { avx512::activate_slice(xs, act) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("only the scalar path is supported off x86-64"),
    }
}

/// `dz = dy * act'(z)` with `isa`'s vector code for GELU (the erf form), scalar
/// [`crate::train::activation::derivative`] otherwise.
///
/// # Panics
/// If `isa` is not supported by this CPU or the slices differ in length.
pub fn activation_backward_slice(isa: Isa, act: Activation, dz: &mut [f32], dy: &[f32], z: &[f32]) {
    assert!(
        isa.is_supported(),
        "activation_backward_slice: {isa:?} is not supported by this CPU"
    );
    assert!(dy.len() == dz.len() && z.len() == dz.len());
    match (isa, act) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU supports AVX2 + FMA (asserted above); the lengths agree.
        (Isa::Avx2, Activation::Gelu) => unsafe { avx2::gelu_backward_slice(dz, dy, z) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU supports AVX-512F (asserted above); the lengths agree.
        (Isa::Avx512, Activation::Gelu) => unsafe { avx512::gelu_backward_slice(dz, dy, z) },
        _ => {
            for ((d, &g), &z) in dz.iter_mut().zip(dy).zip(z) {
                *d = g * crate::train::activation::derivative(act, z);
            }
        }
    }
}

/// Benchmark helper: `iters` x 12 independent 512-bit FMAs from registers on this thread; the
/// flops done, or `None` without AVX-512F. Divided by the time taken, the core's FMA peak.
pub fn peak_fma(iters: usize) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    if Isa::Avx512.is_supported() {
        // SAFETY: the CPU supports AVX-512F (checked just above).
        return Some(unsafe { int8_x86::peak_fma(iters) });
    }
    let _ = iters;
    None
}

/// Benchmark helper: `iters` x 12 independent `vpdpbusd` from registers on this thread; the int8
/// ops done (2 per byte pair), or `None` without AVX-512 VNNI.
pub fn peak_vnni(iters: usize) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    if Int8Path::Avx512Vnni.is_supported() {
        // SAFETY: the CPU supports AVX-512F, BW and VNNI (what the VNNI path requires).
        return Some(unsafe { int8_x86::peak_vnni(iters) });
    }
    let _ = iters;
    None
}

/// The multiply-add forms of [`peak_avx2`]'s register-only loops (256-bit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Avx2Loop {
    /// f32 `vfmadd` (8 multiply-adds).
    Fma,
    /// The former int8 AVX2 kernel's: `vpsignb`, `vpmaddubsw(|a|, sign(a) w)`, `vpmaddwd` with
    /// ones, `vpaddd` (32 exact multiply-adds).
    SignMaddubs,
    /// The int8 AVX2 kernel's: `vpmaddwd` on i16, `vpaddd` (16 exact multiply-adds).
    Madd16,
    /// ONNX Runtime's (MLAS) u8 x s8 form without VNNI: `vpmaddubsw`, `vpmaddwd` with ones,
    /// `vpaddd` (32 multiply-adds whose pair sums can saturate i16: not exact).
    U8Maddubs,
}

/// Benchmark helper: `iters` x 12 independent steps of `form` from registers on this thread; the
/// ops done (2 per multiply-add), or `None` without AVX2 + FMA. Divided by the time taken, the
/// core's rate in that form (docs/quantization.md, "AVX2: `vpmaddwd` on i16").
pub fn peak_avx2(form: Avx2Loop, iters: usize) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    if Isa::Avx2.is_supported() {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        return Some(unsafe { int8_x86::peak_avx2(form, iters) });
    }
    let _ = (form, iters);
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference;
    use crate::reference::test_data;

    #[test]
    fn matches_reference_on_edge_shapes() {
        for &(m, k, n) in &[
            (1, 1, 1),
            (1, 7, 3),
            (3, 32, 37),
            (8, 384, 1152),
            (13, 37, 32),
            (64, 64, 64),
        ] {
            let x = test_data(m * k, 1, 0.5);
            let w = test_data(n * k, 2, 0.5);
            let b = test_data(n, 3, 0.5);
            let res = test_data(m * n, 4, 0.5);
            let lin = Linear::new(w.clone(), b.clone(), n, k);
            for epi in [
                Epilogue::Bias,
                Epilogue::BiasActivation(Activation::Gelu),
                Epilogue::BiasResidual(&res),
            ] {
                let mut y = vec![f32::NAN; m * n];
                lin.forward(&x, &mut y, epi);
                let want = reference::linear_epilogue(&x, &w, &b, (m, k, n), epi);
                for (a, w) in y.iter().zip(&want) {
                    assert!((a - w).abs() < 1e-4, "{m}x{k}x{n} {epi:?}: {a} vs {w}");
                }
            }
        }
    }
}

/// For each kernel shape (ISA, mr, nv) this CPU runs, its default blocking and a blocking small
/// enough that edge shapes cross K blocks, row blocks and many column tasks: the f32 and f16 tests'
/// configurations.
#[cfg(test)]
pub(crate) fn test_blockings(shapes: &[(Isa, usize, usize)]) -> Vec<GemmOptions> {
    let mut out = Vec::new();
    for &(isa, mr, nv) in shapes.iter().filter(|s| s.0.is_supported()) {
        let base = GemmOptions {
            mr,
            nv,
            ..GemmOptions::new(isa)
        };
        out.push(base);
        let small = GemmOptions {
            kc: 16,
            mc: 2 * mr,
            tasks_per_thread: 64,
            one_block_tasks_per_thread: 64,
            min_task_flops: 1,
            ..base
        };
        out.push(small);
        // One-row-block products' other paths (see `stream_ahead`): not streamed, streamed with
        // C in place, streamed through scratch tiles (the weights the tests hold are few), the
        // last two with several row tiles or one.
        for (stream_ahead, stream_scratch_bytes) in [(0, 0), (512, usize::MAX), (512, 0)] {
            for stream_tiles in [false, true] {
                out.push(GemmOptions {
                    stream_ahead,
                    stream_scratch_bytes,
                    stream_tiles,
                    ..small
                });
            }
        }
    }
    out
}

/// `forward(y)` into a zeroed buffer of `len` floats, run on a pool of `threads` threads: the
/// tests that one and two threads give the same bits.
#[cfg(test)]
pub(crate) fn output_on_threads(
    threads: usize,
    len: usize,
    forward: impl FnOnce(&mut [f32]) + Send,
) -> Vec<f32> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let mut y = vec![0.0; len];
    pool.install(|| forward(&mut y));
    y
}

#[cfg(test)]
mod isa_tests {
    use super::*;
    use crate::reference;
    use crate::reference::test_data;

    /// Every compiled kernel shape of every ISA this CPU runs, with default and small blocking.
    fn configs() -> Vec<GemmOptions> {
        test_blockings(&[
            (Isa::Scalar, 4, 1),
            (Isa::Avx2, 6, 2),
            (Isa::Avx2, 4, 3),
            (Isa::Avx512, 6, 3),
            (Isa::Avx512, 8, 3),
            (Isa::Avx512, 12, 2),
            (Isa::Avx512, 14, 2),
        ])
    }

    #[test]
    fn every_isa_matches_reference_on_edge_shapes() {
        let configs = configs();
        assert!(configs.iter().any(|c| c.isa == Isa::Scalar));
        for m in [1, 2, 7, 13, 64, 100] {
            for k in [1, 3, 17, 37, 385] {
                for n in [1, 3, 17, 37, 385] {
                    let (x, w, b, res) = (
                        test_data(m * k, 1, 0.5),
                        test_data(n * k, 2, 0.5),
                        test_data(n, 3, 0.5),
                        test_data(m * n, 4, 0.5),
                    );
                    let epis = [
                        Epilogue::Bias,
                        Epilogue::BiasActivation(Activation::Gelu),
                        Epilogue::BiasActivation(Activation::GeluTanh),
                        Epilogue::BiasActivation(Activation::Relu),
                        Epilogue::BiasActivation(Activation::Silu),
                        Epilogue::BiasResidual(&res),
                    ];
                    let wants: Vec<_> = epis
                        .iter()
                        .map(|&e| reference::linear_epilogue(&x, &w, &b, (m, k, n), e))
                        .collect();
                    for opts in &configs {
                        let lin = Linear::with_options(w.clone(), b.clone(), n, k, *opts);
                        for (&epi, want) in epis.iter().zip(&wants) {
                            let mut y = vec![f32::NAN; m * n];
                            lin.forward(&x, &mut y, epi);
                            let err = reference::max_abs_diff(&y, want);
                            assert!(
                                err < 1e-4,
                                "{m}x{k}x{n} {epi:?} {opts:?}: max abs error {err}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn from_transposed_packs_as_new_of_the_transpose() {
        // (300, 385) is large enough to be packed in parallel, in groups of panels.
        for (k, n) in [(1, 1), (3, 17), (37, 385), (385, 37), (64, 48), (300, 385)] {
            let w = test_data(n * k, 8, 0.5);
            let mut wt = vec![0.0; n * k];
            for r in 0..n {
                for c in 0..k {
                    wt[c * n + r] = w[r * k + c];
                }
            }
            let (b, x) = (test_data(n, 9, 0.5), test_data(13 * k, 10, 0.5));
            for opts in configs() {
                let a = Linear::with_options(w.clone(), b.clone(), n, k, opts);
                let t = Linear::from_transposed_with_options(&wt, b.clone(), n, k, opts);
                assert_eq!(
                    a.packed.panel_data(),
                    t.packed.panel_data(),
                    "{k}x{n} {opts:?}"
                );
                let (mut ya, mut yt) = (vec![0.0; 13 * n], vec![1.0; 13 * n]);
                a.forward(&x, &mut ya, Epilogue::Bias);
                t.forward(&x, &mut yt, Epilogue::Bias);
                assert_eq!(ya, yt, "{k}x{n} {opts:?}");
            }
        }
    }

    #[test]
    fn one_and_two_threads_agree() {
        let (m, k, n) = (37, 300, 200);
        let (x, w, b) = (
            test_data(m * k, 5, 0.5),
            test_data(n * k, 6, 0.5),
            test_data(n, 7, 0.5),
        );
        for opts in configs() {
            let lin = Linear::with_options(w.clone(), b.clone(), n, k, opts);
            let run = |threads| {
                crate::linear::output_on_threads(threads, m * n, |y| {
                    lin.forward(&x, y, Epilogue::Bias)
                })
            };
            assert_eq!(run(1), run(2), "{opts:?}");
        }
    }

    #[test]
    #[should_panic(expected = "in_features must be > 0")]
    fn zero_in_features_is_rejected() {
        Linear::new(Vec::new(), vec![0.0; 3], 3, 0);
    }

    #[test]
    fn zero_out_features_and_zero_rows_are_empty_products() {
        let lin = Linear::new(Vec::new(), Vec::new(), 0, 4);
        lin.forward(&[1.0; 8], &mut [], Epilogue::Bias);
        let lin = Linear::new(vec![1.0; 12], vec![0.0; 3], 3, 4);
        lin.forward(&[], &mut [], Epilogue::Bias);
    }

    #[test]
    fn vector_activations_match_f64_reference() {
        // Every activation on [-10, 10] and a few extremes; erf-GELU to 1e-6 like the scalar form.
        let mut xs: Vec<f32> = (-20_000..=20_000).map(|i| i as f32 * 5e-4).collect();
        xs.extend([
            -100.0, -90.0, -30.0, 30.0, 90.0, 100.0, 1e-30, -1e-30, 0.0, -0.0,
        ]);
        for isa in Isa::supported() {
            for act in [
                Activation::Gelu,
                Activation::GeluTanh,
                Activation::Relu,
                Activation::Silu,
            ] {
                let mut ys = xs.clone();
                activate(isa, act, &mut ys);
                for (&x, &y) in xs.iter().zip(&ys) {
                    let want = reference::activation(act, x);
                    let tol = 1e-6 * want.abs().max(1.0);
                    assert!(
                        (y - want).abs() <= tol,
                        "{isa:?} {act:?}({x}) = {y}, want {want}"
                    );
                }
            }
        }
    }
}
