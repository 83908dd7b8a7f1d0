//! `F16Linear`: a Linear whose weights are held in f16 (half the bytes of f32), products in f32.
//!
//! The weights are converted once at load (round to nearest even, [`crate::f16`]) into the same
//! (kc, NR) panel layout as the f32 [`super::Linear`]. A product reads them one of three ways, all
//! with f32 FMAs and the f32 epilogues:
//! - **in the kernel** (AVX-512): the f16 variant of the f32 microkernel widens each B row with
//!   `vcvtph2ps` as it loads it; nothing else changes. Best when a task has few row tiles (M = 8),
//!   where every B byte is read once and the f16 panel halves the memory traffic. At large M its two
//!   `vcvtph2ps` per k step cost ~5% against the tile's 24 FMAs (Zen 4).
//! - **widened**: each (kc, NR) micro-panel is converted once into a per-thread f32 scratch, which the
//!   f32 kernel reads for every row tile of the task, so the conversion is shared by the row tiles
//!   of a row block (96 rows). Every ISA has it (AVX2 uses F16C's `vcvtph2ps`, portable Rust
//!   [`crate::f16::f16_to_f32`]); it is the only path of the ISAs without an f16 kernel.
//! - **widened whole**: for large products ([`WIDEN_ALL_MIN_ROWS`] rows and more), all of B is
//!   converted once per call into a per-thread f32 copy and the f32 product runs on it, unchanged:
//!   the conversion is shared by all M rows, so f16 runs at f32's speed where compute dominates.
//!
//! The same layer holds bf16 weights ([`Half::Bf16`]) for [`super::Bf16Linear`] on a CPU without
//! AVX512-BF16 (its emulated path): bf16 bits in the same panels, widened by a 16-bit shift (exact),
//! in the kernel on AVX-512 and AVX2, and A rounded to bf16 as it is packed.

use super::driver::{self, BOperand, Product, Widened};
use super::pack::{Lifetime, PackedB};
use super::{Epilogue, GemmOptions, Isa};

/// How an f16 product reads its weights (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum F16Read {
    /// Whole B widened for products of at least [`WIDEN_ALL_MIN_ROWS`] rows; below, widened
    /// panel by panel where a task has at least [`WIDEN_MIN_TILES`] row tiles or the ISA has no f16
    /// kernel, in the kernel otherwise.
    #[default]
    Auto,
    /// Always in the kernel (AVX-512, and AVX2 for bf16 weights; elsewhere the same as
    /// `Widened`).
    InKernel,
    /// Always widened panel by panel into per-thread f32 scratch.
    Widened,
    /// Always the whole B widened into per-thread f32 scratch, then the f32 product.
    WidenedAll,
}

/// [`F16Read::Auto`] widens B panels when a task runs at least this many row tiles over each
/// (docs/quantization.md: in the kernel is faster at M = 8 and 128, widened at M = 2048).
pub const WIDEN_MIN_TILES: usize = 8;

/// [`F16Read::Auto`] widens the whole of B once, then runs the f32 product, from this many rows:
/// the conversion (N x K) is then shared by every row of the product, where panel-by-panel
/// widening repeats it for each row block and left f16 4-6% behind f32 at M = 256-2048 (Zen 4,
/// `cargo bench --bench f16`: whole 0.98x f32 at M = 256, 0.99-1.01x at 512 and 2048; at M = 128
/// the kernel's own widening is ahead, 0.97-0.98x against 0.95-0.96x). The price is a per-thread
/// f32 scratch the size of the largest such B (bert-base: 9.4 MB).
pub const WIDEN_ALL_MIN_ROWS: usize = 256;

/// The 16-bit format of the weights: IEEE f16, or bf16 (the upper half of an f32).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Half {
    F16,
    Bf16,
}

/// The 16-bit -> f32 conversion of a widened micro-panel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Widen {
    Scalar,
    /// F16C `vcvtph2ps`, 8 lanes.
    #[cfg(target_arch = "x86_64")]
    F16c,
    /// AVX-512F `vcvtph2ps`, 16 lanes.
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// bf16, in Rust.
    Bf16Scalar,
    /// bf16 by AVX2's zero extension and shift, 8 lanes.
    #[cfg(target_arch = "x86_64")]
    Bf16Avx2,
    /// bf16 by AVX-512F's, 16 lanes.
    #[cfg(target_arch = "x86_64")]
    Bf16Avx512,
}

impl Widen {
    /// The fastest conversion of `half` that `isa` (supported by this CPU) allows.
    fn for_isa(isa: Isa, half: Half) -> Widen {
        match (half, isa) {
            #[cfg(target_arch = "x86_64")]
            (Half::F16, Isa::Avx512) => Widen::Avx512,
            #[cfg(target_arch = "x86_64")]
            (Half::F16, Isa::Avx2) if is_x86_feature_detected!("f16c") => Widen::F16c,
            (Half::F16, _) => Widen::Scalar,
            #[cfg(target_arch = "x86_64")]
            (Half::Bf16, Isa::Avx512) => Widen::Bf16Avx512,
            #[cfg(target_arch = "x86_64")]
            (Half::Bf16, Isa::Avx2) => Widen::Bf16Avx2,
            (Half::Bf16, _) => Widen::Bf16Scalar,
        }
    }

    /// `dst = f32(src)`, fetching `next` (the panel widened after this one) into L2 on the way, as
    /// the f32 kernels' last row tile prefetches the next panel; the lengths are equal.
    pub(super) fn run(self, src: &[u16], dst: &mut [f32], next: &[u16]) {
        assert!(src.len() == dst.len() && next.len() == src.len());
        match self {
            Widen::Scalar => {
                for (d, &h) in dst.iter_mut().zip(src) {
                    *d = crate::f16::f16_to_f32(h);
                }
            }
            Widen::Bf16Scalar => {
                for (d, &h) in dst.iter_mut().zip(src) {
                    *d = crate::bf16::bf16_to_f32(h);
                }
            }
            #[cfg(target_arch = "x86_64")]
            // SAFETY: chosen by `for_isa` only where the CPU has F16C; the lengths are equal.
            Widen::F16c => unsafe { x86::widen_f16c(src, dst, next) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: chosen by `for_isa` only for a supported Isa::Avx512; the lengths are equal.
            Widen::Avx512 => unsafe { x86::widen_avx512(src, dst, next) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: chosen by `for_isa` only for a supported Isa::Avx2; the lengths are equal.
            Widen::Bf16Avx2 => unsafe { x86::widen_bf16_avx2(src, dst, next) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: chosen by `for_isa` only for a supported Isa::Avx512; the lengths are equal.
            Widen::Bf16Avx512 => unsafe { x86::widen_bf16_avx512(src, dst, next) },
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// The loop every widening shares: `LANES` values at a time by `vector(src, dst)`, fetching
    /// `next` into L2 every 32 values on the way, the tail by `scalar`.
    ///
    /// # Safety
    /// The three lengths are equal; `vector` reads `LANES` u16 at `src` and writes `LANES` f32 at
    /// `dst`, with features its caller has.
    #[inline(always)]
    unsafe fn widen_loop<const LANES: usize>(
        (src, dst, next): (&[u16], &mut [f32], &[u16]),
        vector: impl Fn(*const u16, *mut f32),
        scalar: fn(u16) -> f32,
    ) {
        let body = src.len() / LANES * LANES;
        for i in (0..body).step_by(LANES) {
            if i % 32 == 0 {
                _mm_prefetch::<_MM_HINT_T1>(next.as_ptr().add(i).cast());
            }
            vector(src.as_ptr().add(i), dst.as_mut_ptr().add(i));
        }
        for i in body..src.len() {
            dst[i] = scalar(src[i]);
        }
    }

    /// f16 by `vcvtph2ps`, 8 lanes.
    ///
    /// # Safety
    /// The CPU has AVX and F16C; the three lengths are equal.
    #[target_feature(enable = "avx,f16c")]
    pub(super) unsafe fn widen_f16c(src: &[u16], dst: &mut [f32], next: &[u16]) {
        let vector = |s: *const u16, d: *mut f32| {
            _mm256_storeu_ps(d, _mm256_cvtph_ps(_mm_loadu_si128(s.cast())))
        };
        widen_loop::<8>((src, dst, next), vector, crate::f16::f16_to_f32);
    }

    /// f16 by `vcvtph2ps`, 16 lanes.
    ///
    /// # Safety
    /// The CPU has AVX-512F; the three lengths are equal.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn widen_avx512(src: &[u16], dst: &mut [f32], next: &[u16]) {
        let vector = |s: *const u16, d: *mut f32| {
            _mm512_storeu_ps(d, _mm512_cvtph_ps(_mm256_loadu_si256(s.cast())))
        };
        widen_loop::<16>((src, dst, next), vector, crate::f16::f16_to_f32);
    }

    /// bf16 by a zero extension and a 16-bit shift, 8 lanes.
    ///
    /// # Safety
    /// The CPU has AVX2; the three lengths are equal.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn widen_bf16_avx2(src: &[u16], dst: &mut [f32], next: &[u16]) {
        let vector = |s: *const u16, d: *mut f32| {
            let h = _mm256_cvtepu16_epi32(_mm_loadu_si128(s.cast()));
            _mm256_storeu_ps(d, _mm256_castsi256_ps(_mm256_slli_epi32::<16>(h)))
        };
        widen_loop::<8>((src, dst, next), vector, crate::bf16::bf16_to_f32);
    }

    /// bf16 by a zero extension and a 16-bit shift, 16 lanes.
    ///
    /// # Safety
    /// The CPU has AVX-512F; the three lengths are equal.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn widen_bf16_avx512(src: &[u16], dst: &mut [f32], next: &[u16]) {
        let vector = |s: *const u16, d: *mut f32| {
            let h = _mm512_cvtepu16_epi32(_mm256_loadu_si256(s.cast()));
            _mm512_storeu_ps(d, _mm512_castsi512_ps(_mm512_slli_epi32::<16>(h)))
        };
        widen_loop::<16>((src, dst, next), vector, crate::bf16::bf16_to_f32);
    }
}

thread_local! {
    /// The caller's f32 copy of a whole widened B ([`F16Read::WidenedAll`]), reused across calls.
    static WIDE_B: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A Linear layer with f16 weights, packed once at load; f32 activations, sums and epilogues. (Or
/// bf16 weights and bf16-rounded activations: [`super::Bf16Linear`]'s emulated path.)
pub struct F16Linear {
    /// W^T in f16 (or bf16) bits, in the f32 Linear's panel layout.
    packed: PackedB<u16>,
    half: Half,
    /// (out) zero-padded to whole panels.
    bias: Vec<f32>,
    opts: GemmOptions,
    read: F16Read,
    in_features: usize,
    out_features: usize,
}

impl F16Linear {
    /// `weight` (out, in) row-major (PyTorch layout), rounded to f16; `bias` (out) stays f32.
    /// Packs for [`Isa::selected`] with [`F16Read::Auto`].
    ///
    /// # Panics
    /// If the sizes disagree or `in_features` is 0.
    pub fn new(weight: &[f32], bias: Vec<f32>, out_features: usize, in_features: usize) -> Self {
        let opts = Self::default_options(Isa::selected());
        Self::with_options(
            weight,
            bias,
            (out_features, in_features),
            opts,
            F16Read::Auto,
        )
    }

    /// The f32 blocking of `isa`, with row blocks twice as tall where `isa` has an f16 kernel, so
    /// that a large product's widened panel is shared by [`WIDEN_MIN_TILES`] row tiles (AVX-512:
    /// 96 rows of 12).
    pub fn default_options(isa: Isa) -> GemmOptions {
        let opts = GemmOptions::new(isa);
        match driver::kernels_half(Half::F16, isa, opts.mr, opts.nv) {
            Some(_) => GemmOptions {
                mc: 2 * opts.mc,
                ..opts
            },
            None => opts,
        }
    }

    /// As [`F16Linear::new`] with explicit blocking and read path: for tests and benchmarks.
    ///
    /// # Panics
    /// As `new`, and as [`super::Linear::with_options`] for `opts`.
    pub fn with_options(
        weight: &[f32],
        bias: Vec<f32>,
        (out_features, in_features): (usize, usize),
        opts: GemmOptions,
        read: F16Read,
    ) -> Self {
        super::Linear::check(weight.len(), &bias, out_features, in_features, opts);
        let dims = (out_features, in_features);
        let packed = PackedB::<u16>::new(weight, dims, opts.nr(), opts.kc, Lifetime::Model);
        Self::from_packed(packed, Half::F16, bias, dims, opts, read)
    }

    /// As [`F16Linear::with_options`] with `weight` rounded to bf16 (products to be run by
    /// [`F16Linear::product`] with A rounded too): [`super::Bf16Linear`]'s emulated path.
    pub(super) fn bf16(
        weight: &[f32],
        bias: Vec<f32>,
        (out_features, in_features): (usize, usize),
        opts: GemmOptions,
        read: F16Read,
    ) -> Self {
        super::Linear::check(weight.len(), &bias, out_features, in_features, opts);
        let dims = (out_features, in_features);
        // Packed as f32 first (on the heap, freed here), then converted panel by panel.
        let packed = PackedB::<f32>::new(weight, dims, opts.nr(), opts.kc, Lifetime::Step)
            .to_bf16_bits(Lifetime::Model);
        Self::from_packed(packed, Half::Bf16, bias, dims, opts, read)
    }

    fn from_packed(
        packed: PackedB<u16>,
        half: Half,
        bias: Vec<f32>,
        (out_features, in_features): (usize, usize),
        opts: GemmOptions,
        read: F16Read,
    ) -> Self {
        let mut bias = bias;
        bias.resize(packed.panels() * opts.nr(), 0.0);
        F16Linear {
            packed,
            half,
            bias,
            opts,
            read,
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

    /// Bytes of packed weights (2 each) and bias (4 each) this layer holds.
    pub fn memory_bytes(&self) -> usize {
        2 * self.packed.capacity() + 4 * self.bias.capacity()
    }

    /// The weights as f32 (each the f16, or bf16, it was rounded to), (out, in) row-major: for
    /// tests.
    pub fn weight_f32(&self) -> Vec<f32> {
        let (n, nr) = (self.out_features, self.opts.nr());
        let mut w = vec![0.0; n * self.in_features];
        for (k0, kc) in self.packed.k_blocks() {
            for p in 0..self.packed.panels() {
                let panel = self.packed.panel((k0, kc), p);
                for (kk, row) in panel.chunks_exact(nr).enumerate() {
                    for (c, &h) in row.iter().enumerate().take(n.saturating_sub(p * nr)) {
                        w[(p * nr + c) * self.in_features + k0 + kk] = match self.half {
                            Half::F16 => crate::f16::f16_to_f32(h),
                            Half::Bf16 => crate::bf16::bf16_to_f32(h),
                        };
                    }
                }
            }
        }
        w
    }

    /// `y (M, out) = epilogue(x (M, in) W^T + b)`.
    pub fn forward(&self, x: &[f32], y: &mut [f32], epilogue: Epilogue<'_>) {
        self.product(x, y, epilogue, Product::default());
    }

    /// [`F16Linear::forward`] as `how` says (A's layout, `y +=`, A rounded to bf16).
    pub(super) fn product(&self, x: &[f32], y: &mut [f32], epilogue: Epilogue<'_>, how: Product) {
        let (k, n) = (self.in_features, self.out_features);
        let m = super::rows("F16Linear", x, y, (k, n), epilogue);
        if m == 0 || n == 0 {
            return;
        }
        let (isa, mr, nv) = (self.opts.isa, self.opts.mr, self.opts.nv);
        let widen_all = match self.read {
            F16Read::Auto => m >= WIDEN_ALL_MIN_ROWS,
            F16Read::WidenedAll => true,
            F16Read::InKernel | F16Read::Widened => false,
        };
        if widen_all {
            // The f32 product with the f32 row blocks (the f16 ones are taller for panel widening).
            let opts = GemmOptions {
                mc: self.opts.mc.min(GemmOptions::new(isa).mc),
                ..self.opts
            };
            let widen = Widen::for_isa(isa, self.half);
            let mut run = |buf: Vec<f32>| {
                let packed = self
                    .packed
                    .widened(buf, |src, dst| widen.run(src, dst, src));
                driver::forward(opts, &packed, &self.bias, x, y, epilogue, how, (m, k, n));
                packed.into_buf()
            };
            // A caller that re-enters (a rayon worker stealing another product while it waits)
            // gets a fresh buffer.
            WIDE_B.with(|cell| match cell.try_borrow_mut() {
                Ok(mut buf) => *buf = run(std::mem::take(&mut *buf)),
                Err(_) => drop(run(Vec::new())),
            });
            return;
        }
        let direct = driver::kernels_half(self.half, isa, mr, nv);
        let widened = Widened {
            widen: Widen::for_isa(isa, self.half),
            kernels: driver::kernels(isa, mr, nv).expect("checked at F16Linear::new"),
            min_tiles: match self.read {
                F16Read::Auto => WIDEN_MIN_TILES,
                F16Read::InKernel => usize::MAX,
                F16Read::Widened | F16Read::WidenedAll => 0,
            },
        };
        let b = BOperand {
            packed: &self.packed,
            kernels: direct,
            widen: Some(widened),
            amx: false,
        };
        driver::forward_with(self.opts, b, &self.bias, x, y, epilogue, how, (m, k, n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::test_data;
    use crate::{reference, Activation};

    /// Every kernel shape and read path of every ISA this CPU runs, with default and small
    /// blocking ([`super::super::test_blockings`]).
    fn configs() -> Vec<(GemmOptions, F16Read)> {
        let blockings = super::super::test_blockings(&[
            (Isa::Scalar, 4, 1),
            (Isa::Avx2, 6, 2),
            (Isa::Avx2, 4, 3),
            (Isa::Avx512, 8, 3),
            (Isa::Avx512, 12, 2),
        ]);
        let reads = [
            F16Read::Auto,
            F16Read::InKernel,
            F16Read::Widened,
            F16Read::WidenedAll,
        ];
        blockings
            .into_iter()
            .flat_map(|opts| reads.map(|read| (opts, read)))
            .collect()
    }

    /// The layer of `half` ([`F16Linear::bf16`] for bf16) and the `how` of its products (A
    /// rounded to bf16 for bf16).
    fn layer(
        half: Half,
        (w, b): (&[f32], &[f32]),
        (n, k): (usize, usize),
        (opts, read): (GemmOptions, F16Read),
    ) -> (F16Linear, Product) {
        match half {
            Half::F16 => (
                F16Linear::with_options(w, b.to_vec(), (n, k), opts, read),
                Product::default(),
            ),
            Half::Bf16 => (
                F16Linear::bf16(w, b.to_vec(), (n, k), opts, read),
                Product {
                    a_bf16: true,
                    ..Product::default()
                },
            ),
        }
    }

    #[test]
    fn every_isa_and_read_path_matches_reference_on_edge_shapes() {
        let configs = configs();
        assert!(configs.iter().any(|c| c.0.isa == Isa::Scalar));
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
                        Epilogue::BiasActivation(Activation::Relu),
                        Epilogue::BiasResidual(&res),
                    ];
                    for half in [Half::F16, Half::Bf16] {
                        // The reference runs on the weights rounded to f16 (bf16: and A rounded
                        // to bf16, every product then exact), so only the summation order
                        // differs.
                        let (xh, wh): (Vec<f32>, Vec<f32>) = match half {
                            Half::F16 => (
                                x.clone(),
                                w.iter().map(|&v| reference::f16_round(v)).collect(),
                            ),
                            Half::Bf16 => {
                                let round =
                                    |v: &[f32]| v.iter().map(|&v| crate::bf16::round(v)).collect();
                                (round(&x), round(&w))
                            }
                        };
                        let wants: Vec<_> = epis
                            .iter()
                            .map(|&e| reference::linear_epilogue(&xh, &wh, &b, (m, k, n), e))
                            .collect();
                        for &config in &configs {
                            let (lin, how) = layer(half, (&w, &b), (n, k), config);
                            for (&epi, want) in epis.iter().zip(&wants) {
                                let mut y = vec![f32::NAN; m * n];
                                lin.product(&x, &mut y, epi, how);
                                let err = reference::max_abs_diff(&y, want);
                                assert!(
                                    err < 1e-4,
                                    "{half:?} {m}x{k}x{n} {epi:?} {config:?}: max abs error {err}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// The bf16 form's products are the f32 Linear's on the rounded operands, bit for bit, on
    /// every read path: the same f32 values summed in the same order (what the emulated bf16
    /// path was before it held bf16 weights).
    #[test]
    fn bf16_products_equal_the_f32_products_of_the_rounded_operands() {
        let (x, w, b) = (
            test_data(100 * 385, 8, 0.5),
            test_data(37 * 385, 9, 0.5),
            test_data(37, 10, 0.5),
        );
        let round = |v: &[f32]| -> Vec<f32> { v.iter().map(|&v| crate::bf16::round(v)).collect() };
        let (xh, wh) = (round(&x), round(&w));
        for m in [1, 8, 100] {
            for config in configs() {
                let f32_lin =
                    super::super::Linear::with_options(wh.clone(), b.clone(), 37, 385, config.0);
                let (lin, how) = layer(Half::Bf16, (&w, &b), (37, 385), config);
                let (mut want, mut got) = (vec![0.0; m * 37], vec![f32::NAN; m * 37]);
                f32_lin.forward(
                    &xh[..m * 385],
                    &mut want,
                    Epilogue::BiasActivation(Activation::Gelu),
                );
                lin.product(
                    &x[..m * 385],
                    &mut got,
                    Epilogue::BiasActivation(Activation::Gelu),
                    how,
                );
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "m {m} {config:?}");
            }
        }
    }

    #[test]
    fn weights_are_the_f16_rounding_and_half_the_bytes() {
        let (n, k) = (37, 385);
        let w = test_data(n * k, 5, 0.5);
        let lin = F16Linear::new(&w, vec![0.0; n], n, k);
        let want: Vec<f32> = w.iter().map(|&v| reference::f16_round(v)).collect();
        assert_eq!(lin.weight_f32(), want);
        let opts = GemmOptions::new(Isa::selected());
        let bf16 = F16Linear::bf16(&w, vec![0.0; n], (n, k), opts, F16Read::Auto);
        let want: Vec<f32> = w.iter().map(|&v| crate::bf16::round(v)).collect();
        assert_eq!(bf16.weight_f32(), want);
        let f32_lin = super::super::Linear::new(w, vec![0.0; n], n, k);
        assert!(lin.memory_bytes() * 10 < f32_lin.memory_bytes() * 6);
        assert!(bf16.memory_bytes() * 10 < f32_lin.memory_bytes() * 6);
    }

    #[test]
    fn one_and_two_threads_agree() {
        let (m, k, n) = (37, 300, 200);
        let (x, w, b) = (
            test_data(m * k, 5, 0.5),
            test_data(n * k, 6, 0.5),
            test_data(n, 7, 0.5),
        );
        for half in [Half::F16, Half::Bf16] {
            for config in configs() {
                let (lin, how) = layer(half, (&w, &b), (n, k), config);
                let run = |threads| {
                    crate::linear::output_on_threads(threads, m * n, |y| {
                        lin.product(&x, y, Epilogue::Bias, how)
                    })
                };
                assert_eq!(run(1), run(2), "{half:?} {config:?}");
            }
        }
    }

    #[test]
    fn widen_matches_scalar_for_every_f16_and_bf16() {
        let src: Vec<u16> = (0..=u16::MAX).collect();
        for (half, scalar) in [(Half::F16, Widen::Scalar), (Half::Bf16, Widen::Bf16Scalar)] {
            check_widen(half, scalar, &src);
        }
        // bf16 in Rust is the upper half of an f32.
        let mut got = vec![0.0; src.len()];
        Widen::Bf16Scalar.run(&src, &mut got, &src);
        for (&h, g) in src.iter().zip(&got) {
            assert_eq!(g.to_bits(), u32::from(h) << 16);
        }
    }

    fn check_widen(half: Half, scalar: Widen, src: &[u16]) {
        let mut want = vec![0.0; src.len()];
        scalar.run(src, &mut want, src);
        for isa in Isa::supported() {
            let widen = Widen::for_isa(isa, half);
            // An odd length exercises the scalar tail.
            let mut got = vec![0.0; src.len() - 3];
            widen.run(&src[3..], &mut got, &src[3..]);
            for (i, (g, w)) in got.iter().zip(&want[3..]).enumerate() {
                assert!(
                    g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                    "{widen:?} {:#06x}: {g} vs {w}",
                    i + 3
                );
            }
        }
    }

    #[test]
    fn zero_rows_and_zero_out_features_are_empty_products() {
        let lin = F16Linear::new(&[], Vec::new(), 0, 4);
        lin.forward(&[1.0; 8], &mut [], Epilogue::Bias);
        let lin = F16Linear::new(&[1.0; 12], vec![0.0; 3], 3, 4);
        lin.forward(&[], &mut [], Epilogue::Bias);
    }
}
