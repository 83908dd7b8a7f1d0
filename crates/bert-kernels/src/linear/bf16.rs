//! `Bf16Linear`: a Linear whose products read bf16 weights and bf16-rounded activations and sum in
//! f32, as `torch.autocast("cpu", dtype=torch.bfloat16)` runs `nn.Linear`.
//!
//! - **native** (AVX512-BF16): the weights are packed once at load as bf16 pairs ([`Bf16Pair`]: two
//!   K steps to a 32-bit lane, half the bytes of f32) and each product packs its A rows as pairs,
//!   rounded to nearest even; the microkernel's `vdpbf16ps` does two K steps of 16 columns per
//!   instruction where the f32 kernel's FMA does one. Bias, activation and residual are the f32
//!   epilogues.
//! - **emulated** (every other CPU): a model's weights are rounded to bf16 at load and held as bf16
//!   bits in the f32 panel layout ([`F16Linear`]'s bf16 form: half f32's bytes), widened back to f32
//!   (a 16-bit shift, exact) in the kernel or panel by panel as f16 weights are; A is rounded as it
//!   is packed; the f32 kernels' FMAs do the rest. Every product of two bf16 values is exact in
//!   f32, so the two paths differ only in the order of the f32 sums. A training step's packings
//!   ([`Bf16Linear::from_slice`], [`Bf16Linear::from_transposed`]), packed anew every step, keep
//!   the rounded weights as f32 for the f32 kernels unchanged.

use super::driver::{self, BOperand, Product};
use super::pack::{Bf16Pair, Lifetime, PackedB};
use super::{Epilogue, F16Linear, F16Read, GemmOptions, Isa, Linear};

/// A Linear layer with bf16 products (see the module docs).
pub struct Bf16Linear {
    path: Path,
    in_features: usize,
    out_features: usize,
}

enum Path {
    Native {
        /// W^T as bf16 pairs, in the f32 Linear's panel layout with two K rows to a panel row.
        packed: PackedB<Bf16Pair>,
        /// (out) zero-padded to whole panels.
        bias: Vec<f32>,
        opts: GemmOptions,
    },
    /// A model's weights as bf16 bits, widened to f32 for the f32 kernels.
    Emulated(F16Linear),
    /// A training step's weights rounded to bf16, as f32.
    EmulatedStep(Linear),
}

/// What a constructor packs: a model's weight (kept for its life), one training step's weight, or
/// a transposed operand (training's, per step).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Build {
    Model,
    Step,
    Transposed,
}

impl Bf16Linear {
    /// `weight` (out, in) row-major (PyTorch layout), rounded to bf16; `bias` (out) stays f32.
    /// Native where [`Isa::selected`] and this CPU have the bf16 kernels, emulated otherwise.
    ///
    /// # Panics
    /// If the sizes disagree or `in_features` is 0.
    pub fn new(weight: &[f32], bias: Vec<f32>, out_features: usize, in_features: usize) -> Self {
        let opts = Self::default_options(Isa::selected());
        Self::with_options(weight, bias, (out_features, in_features), opts)
    }

    /// Whether [`Bf16Linear::new`] runs the native kernels on `isa` here (AVX-512 on a CPU with
    /// AVX512-BF16).
    pub fn native_on(isa: Isa) -> bool {
        let opts = Self::default_options(isa);
        driver::kernels_bf16(isa, opts.mr, opts.nv).is_some()
    }

    /// The blocking of the native kernel where `isa` and this CPU have one, else the f32 defaults
    /// of `isa` (emulated). With AMX-BF16: the AMX kernel's 32 x 2 vectors, K blocks of 3,072 (all
    /// of BERT's K in one block; 1,536 and 768 were 1.02x and 1.05x slower at bert-base W2F on an
    /// Intel Xeon) and row blocks of 64 (0.96-0.97x the time of 128 at W2F and T2; 32: 0.99x).
    /// Else AVX-512: 8 x 3 vectors and K blocks of 1,536, the same bytes of B as f32's 768 (`cargo
    /// bench --bench bf16` on Zen 4: 1.66-2.41x f32 at M = 8, 128 and 2,048, where 12 x 2 gave
    /// 1.60-2.19x and 14 x 2 fell to 1.43x at M = 128).
    pub fn default_options(isa: Isa) -> GemmOptions {
        let base = GemmOptions::new(isa);
        let amx = GemmOptions {
            mr: 32,
            nv: 2,
            kc: 3072,
            mc: 64,
            ..base
        };
        if driver::amx_bf16(isa, amx.mr, amx.nv) {
            return amx;
        }
        let native = GemmOptions {
            mr: 8,
            nv: 3,
            kc: 1536,
            ..base
        };
        match driver::kernels_bf16(isa, native.mr, native.nv) {
            Some(_) => native,
            None => GemmOptions::new(isa),
        }
    }

    /// As [`Bf16Linear::new`] with explicit blocking (native if `opts` names a bf16 kernel this CPU
    /// runs): for tests and benchmarks.
    ///
    /// # Panics
    /// As `new`, and as [`Linear::with_options`] for `opts`.
    pub fn with_options(
        weight: &[f32],
        bias: Vec<f32>,
        (out_features, in_features): (usize, usize),
        opts: GemmOptions,
    ) -> Self {
        Self::build(
            weight,
            bias,
            (out_features, in_features),
            opts,
            Build::Model,
        )
    }

    /// As [`Bf16Linear::new`] for one training step ([`Linear::from_slice`]): the packing is freed
    /// with the step, so it stays off the huge pages of the model's weights.
    pub fn from_slice(
        weight: &[f32],
        bias: Vec<f32>,
        out_features: usize,
        in_features: usize,
    ) -> Self {
        let opts = Self::default_options(Isa::selected());
        Self::build(weight, bias, (out_features, in_features), opts, Build::Step)
    }

    /// As [`Bf16Linear::new`] from the transposed weight `weight_t` (in, out) row-major: training's
    /// `dx = dy W` and `dW = dy^T x` read W and x as they are stored ([`Linear::from_transposed`]).
    pub fn from_transposed(
        weight_t: &[f32],
        bias: Vec<f32>,
        out_features: usize,
        in_features: usize,
    ) -> Self {
        let opts = Self::default_options(Isa::selected());
        Self::build(
            weight_t,
            bias,
            (out_features, in_features),
            opts,
            Build::Transposed,
        )
    }

    /// Checks, then packs `weight` ((out, in), or (in, out) for [`Build::Transposed`]) for the
    /// native or the emulated path.
    fn build(
        weight: &[f32],
        bias: Vec<f32>,
        (out_features, in_features): (usize, usize),
        opts: GemmOptions,
        how: Build,
    ) -> Self {
        let native = driver::kernels_bf16(opts.isa, opts.mr, opts.nv).is_some();
        // The emulated path runs the f32 kernels of `opts`; the native one its own.
        Linear::check_with(
            weight.len(),
            &bias,
            out_features,
            in_features,
            opts,
            !native,
        );
        let (n, k, nr) = (out_features, in_features, opts.nr());
        let life = match how {
            Build::Model => Lifetime::Model,
            Build::Step | Build::Transposed => Lifetime::Step,
        };
        let path = if native {
            let packed = if how == Build::Transposed {
                PackedB::<Bf16Pair>::from_kn(weight, (n, k), nr, opts.kc, life)
            } else {
                PackedB::<Bf16Pair>::new(weight, (n, k), nr, opts.kc, life)
            };
            let mut bias = bias;
            bias.resize(packed.panels() * opts.nr(), 0.0);
            Path::Native { packed, bias, opts }
        } else if how == Build::Model {
            Path::Emulated(F16Linear::bf16(weight, bias, (n, k), opts, F16Read::Auto))
        } else {
            let rounded: Vec<f32> = weight.iter().map(|&w| crate::bf16::round(w)).collect();
            Path::EmulatedStep(if how == Build::Transposed {
                Linear::from_transposed_with_options(&rounded, bias, n, k, opts)
            } else {
                Linear::pack(&rounded, bias, (n, k), opts, life)
            })
        };
        Bf16Linear {
            path,
            in_features,
            out_features,
        }
    }

    /// The emulated path whatever the CPU has: for tests and benchmarks of the fallback.
    ///
    /// # Panics
    /// As [`Bf16Linear::with_options`].
    pub fn emulated(
        weight: &[f32],
        bias: Vec<f32>,
        (out_features, in_features): (usize, usize),
        opts: GemmOptions,
    ) -> Self {
        let dims = (out_features, in_features);
        Bf16Linear {
            path: Path::Emulated(F16Linear::bf16(weight, bias, dims, opts, F16Read::Auto)),
            in_features,
            out_features,
        }
    }

    /// The emulated path of a training step's packing whatever the CPU has: for tests.
    #[cfg(test)]
    fn emulated_step(
        weight: &[f32],
        bias: Vec<f32>,
        (out_features, in_features): (usize, usize),
        opts: GemmOptions,
    ) -> Self {
        Linear::check(weight.len(), &bias, out_features, in_features, opts);
        let rounded: Vec<f32> = weight.iter().map(|&w| crate::bf16::round(w)).collect();
        let dims = (out_features, in_features);
        Bf16Linear {
            path: Path::EmulatedStep(Linear::pack(&rounded, bias, dims, opts, Lifetime::Step)),
            in_features,
            out_features,
        }
    }

    /// Whether this layer runs the `vdpbf16ps` kernels (else the f32 kernels on rounded values).
    pub fn is_native(&self) -> bool {
        matches!(self.path, Path::Native { .. })
    }

    pub fn in_features(&self) -> usize {
        self.in_features
    }

    pub fn out_features(&self) -> usize {
        self.out_features
    }

    /// Bytes of packed weights (2 each, but 4 for a training step's emulated packing) and bias (4
    /// each) this layer holds.
    pub fn memory_bytes(&self) -> usize {
        match &self.path {
            Path::Native { packed, bias, .. } => 4 * (packed.capacity() + bias.capacity()),
            Path::Emulated(l) => l.memory_bytes(),
            Path::EmulatedStep(l) => l.memory_bytes(),
        }
    }

    /// The weights as f32 (each the bf16 it was rounded to), (out, in) row-major: for tests.
    pub fn weight_f32(&self) -> Vec<f32> {
        let (n, k) = (self.out_features, self.in_features);
        let mut w = vec![0.0; n * k];
        match &self.path {
            Path::Native { packed, opts, .. } => {
                let nr = opts.nr();
                for (k0, kc) in packed.k_blocks() {
                    for p in 0..packed.panels() {
                        let panel = packed.panel((k0, kc), p);
                        for (kk, row) in panel.chunks_exact(nr).enumerate() {
                            for (c, pair) in row.iter().enumerate().take(n.saturating_sub(p * nr)) {
                                let at = (p * nr + c) * k + k0 + 2 * kk;
                                w[at] = crate::bf16::bf16_to_f32(pair.0 as u16);
                                if 2 * kk + 1 < kc {
                                    w[at + 1] = crate::bf16::bf16_to_f32((pair.0 >> 16) as u16);
                                }
                            }
                        }
                    }
                }
            }
            Path::Emulated(l) => return l.weight_f32(),
            Path::EmulatedStep(l) => {
                let (packed, nr) = (&l.packed, l.opts.nr());
                for (k0, kc) in packed.k_blocks() {
                    for p in 0..packed.panels() {
                        let panel = packed.panel((k0, kc), p);
                        for (kk, row) in panel.chunks_exact(nr).enumerate() {
                            for (c, &v) in row.iter().enumerate().take(n.saturating_sub(p * nr)) {
                                w[(p * nr + c) * k + k0 + kk] = v;
                            }
                        }
                    }
                }
            }
        }
        w
    }

    /// `y (M, out) = epilogue(bf16(x) (M, in) bf16(W)^T + b)`, sums in f32.
    pub fn forward(&self, x: &[f32], y: &mut [f32], epilogue: Epilogue<'_>) {
        self.product(x, y, epilogue, Product::default());
    }

    /// `y (M, out) += bf16(x) bf16(W)^T + b`: training's `dx += dy W` (a zero bias).
    pub fn accumulate(&self, x: &[f32], y: &mut [f32]) {
        self.product(x, y, Epilogue::Bias, Product::ACCUMULATE);
    }

    /// `y (M, out) += bf16(xt)^T bf16(W)^T + b` with `xt` (in, M) row-major: training's
    /// `dW += dy^T x` ([`Linear::accumulate_transposed`]).
    pub fn accumulate_transposed(&self, xt: &[f32], y: &mut [f32]) {
        self.product(xt, y, Epilogue::Bias, Product::ACCUMULATE_TRANSPOSED);
    }

    fn product(&self, x: &[f32], y: &mut [f32], epilogue: Epilogue<'_>, how: Product) {
        let how = Product {
            a_bf16: true,
            ..how
        };
        match &self.path {
            Path::Emulated(l) => l.product(x, y, epilogue, how),
            Path::EmulatedStep(l) => l.product(x, y, epilogue, how),
            Path::Native { packed, bias, opts } => {
                let (k, n) = (self.in_features, self.out_features);
                let m = super::rows("Bf16Linear", x, y, (k, n), epilogue);
                if m == 0 || n == 0 {
                    return;
                }
                let b = BOperand {
                    packed,
                    kernels: driver::kernels_bf16(opts.isa, opts.mr, opts.nv),
                    widen: None,
                    amx: driver::amx_bf16(opts.isa, opts.mr, opts.nv),
                };
                driver::forward_with(*opts, b, bias, x, y, epilogue, how, (m, k, n));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::test_data;
    use crate::{reference, Activation};

    /// Every kernel shape of every ISA this CPU runs, default and small blocking, each native where
    /// the CPU has the bf16 kernel of that shape and emulated as well.
    fn layers(w: &[f32], b: &[f32], (n, k): (usize, usize)) -> Vec<(String, Bf16Linear)> {
        layers_with_options(w, b, (n, k))
            .into_iter()
            .map(|(label, _, lin)| (label, lin))
            .collect()
    }

    /// [`layers`] with the options each was built with.
    fn layers_with_options(
        w: &[f32],
        b: &[f32],
        (n, k): (usize, usize),
    ) -> Vec<(String, GemmOptions, Bf16Linear)> {
        let blockings = super::super::test_blockings(&[
            (Isa::Scalar, 4, 1),
            (Isa::Avx2, 6, 2),
            (Isa::Avx512, 8, 3),
            (Isa::Avx512, 12, 2),
            (Isa::Avx512, 14, 2),
        ]);
        let mut out = Vec::new();
        for opts in blockings {
            let native = Bf16Linear::with_options(w, b.to_vec(), (n, k), opts);
            let label = format!("{opts:?} native={}", native.is_native());
            out.push((label, opts, native));
            let emulated = Bf16Linear::emulated(w, b.to_vec(), (n, k), opts);
            out.push((format!("{opts:?} emulated"), opts, emulated));
            let step = Bf16Linear::emulated_step(w, b.to_vec(), (n, k), opts);
            out.push((format!("{opts:?} emulated step"), opts, step));
        }
        // AMX (no f32 kernels of its shape, so native only): the default blocking, K blocks of
        // 48 (one whole tile of pairs and 8 more by `vdpbf16ps`) and of 16 (no whole tile), small
        // row blocks and many tasks.
        if driver::amx_bf16(Isa::Avx512, 32, 2) {
            let base = Bf16Linear::default_options(Isa::Avx512);
            for kc in [base.kc, 48, 16] {
                let opts = GemmOptions {
                    kc,
                    mc: if kc == base.kc { base.mc } else { 64 },
                    tasks_per_thread: if kc == base.kc { 2 } else { 64 },
                    min_task_flops: if kc == base.kc { 1 << 20 } else { 1 },
                    ..base
                };
                let native = Bf16Linear::with_options(w, b.to_vec(), (n, k), opts);
                assert!(native.is_native());
                out.push((format!("{opts:?} amx"), opts, native));
            }
        }
        out
    }

    #[test]
    fn every_path_matches_reference_on_edge_shapes() {
        let mut natives = 0;
        for m in [1, 2, 7, 13, 64, 100] {
            for k in [1, 2, 3, 17, 38, 385] {
                for n in [1, 3, 17, 37, 385] {
                    let (x, w, b, res) = (
                        test_data(m * k, 1, 0.5),
                        test_data(n * k, 2, 0.5),
                        test_data(n, 3, 0.5),
                        test_data(m * n, 4, 0.5),
                    );
                    // The reference multiplies the bf16-rounded operands in f32 (every product
                    // exact), so only the summation order differs.
                    let round = |v: &[f32]| v.iter().map(|&v| crate::bf16::round(v)).collect();
                    let (xh, wh): (Vec<f32>, Vec<f32>) = (round(&x), round(&w));
                    let epis = [
                        Epilogue::Bias,
                        Epilogue::BiasActivation(Activation::Gelu),
                        Epilogue::BiasResidual(&res),
                    ];
                    let wants: Vec<_> = epis
                        .iter()
                        .map(|&e| reference::linear_epilogue(&xh, &wh, &b, (m, k, n), e))
                        .collect();
                    for (label, lin) in layers(&w, &b, (n, k)) {
                        natives += usize::from(lin.is_native());
                        for (&epi, want) in epis.iter().zip(&wants) {
                            let mut y = vec![f32::NAN; m * n];
                            lin.forward(&x, &mut y, epi);
                            let err = reference::max_abs_diff(&y, want);
                            assert!(
                                err < 1e-4,
                                "{m}x{k}x{n} {epi:?} {label}: max abs error {err}"
                            );
                        }
                    }
                }
            }
        }
        assert_eq!(natives > 0, crate::isa::has_avx512_bf16());
    }

    #[test]
    fn weights_are_the_bf16_rounding_and_native_holds_half_the_bytes() {
        let (n, k) = (37, 385);
        let w = test_data(n * k, 5, 0.5);
        let want: Vec<f32> = w.iter().map(|&v| crate::bf16::round(v)).collect();
        for (label, opts, lin) in layers_with_options(&w, &vec![0.0; n], (n, k)) {
            assert_eq!(lin.weight_f32(), want, "{label}");
            // AMX's shape has no f32 kernels: compare with f32's default blocking.
            let f32_opts = match driver::kernels(opts.isa, opts.mr, opts.nv) {
                Some(_) => opts,
                None => GemmOptions::new(opts.isa),
            };
            let f32_bytes =
                Linear::with_options(w.clone(), vec![0.0; n], n, k, f32_opts).memory_bytes();
            if lin.is_native() {
                assert!(lin.memory_bytes() * 10 < f32_bytes * 6, "{label}");
            }
        }
    }

    #[test]
    fn one_and_two_threads_agree() {
        let (m, k, n) = (37, 301, 200);
        let (x, w, b) = (
            test_data(m * k, 5, 0.5),
            test_data(n * k, 6, 0.5),
            test_data(n, 7, 0.5),
        );
        for (label, lin) in layers(&w, &b, (n, k)) {
            let run = |threads| {
                crate::linear::output_on_threads(threads, m * n, |y| {
                    lin.forward(&x, y, Epilogue::Bias)
                })
            };
            assert_eq!(run(1), run(2), "{label}");
        }
    }

    /// Training's products: `y += x W^T` (`accumulate`), with A given transposed
    /// (`accumulate_transposed`, several tiles and K blocks at the small blocking), and B packed
    /// from W^T (`from_transposed`), against the reference on the rounded operands.
    #[test]
    fn accumulating_and_transposed_products_match_reference() {
        let (m, k, n) = (29, 77, 53);
        let (x, w, y0) = (
            test_data(m * k, 11, 0.5),
            test_data(n * k, 12, 0.5),
            test_data(m * n, 13, 0.5),
        );
        let mut xt = vec![0.0; m * k];
        let mut wt = vec![0.0; n * k];
        for i in 0..m {
            for c in 0..k {
                xt[c * m + i] = x[i * k + c];
            }
        }
        for j in 0..n {
            for c in 0..k {
                wt[c * n + j] = w[j * k + c];
            }
        }
        let round = |v: &[f32]| -> Vec<f32> { v.iter().map(|&v| crate::bf16::round(v)).collect() };
        let product = reference::linear(&round(&x), &round(&w), &vec![0.0; n], m, k, n);
        let want: Vec<f32> = product.iter().zip(&y0).map(|(p, y)| p + y).collect();
        for (label, lin) in layers(&w, &vec![0.0; n], (n, k)) {
            let mut y = y0.clone();
            lin.accumulate(&x, &mut y);
            assert!(
                reference::max_abs_diff(&y, &want) < 1e-4,
                "{label} accumulate"
            );
            let mut y = y0.clone();
            lin.accumulate_transposed(&xt, &mut y);
            assert!(
                reference::max_abs_diff(&y, &want) < 1e-4,
                "{label} transposed A"
            );
        }
        let lin = Bf16Linear::from_transposed(&wt, vec![0.0; n], n, k);
        let mut y = y0.clone();
        lin.accumulate(&x, &mut y);
        assert!(reference::max_abs_diff(&y, &want) < 1e-4, "from_transposed");
    }

    /// Pairs packed from W (N, K) and from W^T (K, N) are the same bits, for odd K, odd K blocks
    /// and N not a multiple of the panel width; the last two large enough to be packed in
    /// parallel, in groups of panels (7 panels: groups of 4 and 3 on two threads).
    #[test]
    fn pairs_from_w_and_from_w_transposed_are_equal() {
        for (n, k, nr, kc) in [
            (5, 7, 16, 16),
            (37, 385, 48, 16),
            (50, 1537, 48, 1536),
            (100, 1537, 16, 512),
            (3, 1, 16, 2),
        ] {
            let w = test_data(n * k, 8, 0.5);
            let mut wt = vec![0.0; n * k];
            for j in 0..n {
                for i in 0..k {
                    wt[i * n + j] = w[j * k + i];
                }
            }
            let a = PackedB::<Bf16Pair>::new(&w, (n, k), nr, kc, Lifetime::Model);
            let b = PackedB::<Bf16Pair>::from_kn(&wt, (n, k), nr, kc, Lifetime::Step);
            assert_eq!(a.panel_data(), b.panel_data(), "{n}x{k} nr {nr} kc {kc}");
        }
    }

    #[test]
    fn zero_rows_and_zero_out_features_are_empty_products() {
        let lin = Bf16Linear::new(&[], Vec::new(), 0, 4);
        lin.forward(&[1.0; 8], &mut [], Epilogue::Bias);
        let lin = Bf16Linear::new(&[1.0; 12], vec![0.0; 3], 3, 4);
        lin.forward(&[], &mut [], Epilogue::Bias);
    }
}
