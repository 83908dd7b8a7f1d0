//! Which instruction set the kernels (GEMM microkernels, attention) use: detected once at start-up, overridable by
//! `BERT_KERNELS_ISA` so the AVX2 path can be measured on an AVX-512 machine.

use std::sync::OnceLock;

/// An instruction-set path of the GEMM. Each has its own microkernel and packed-weight layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable Rust, no `target_feature` (SSE2 on x86-64 through auto-vectorization).
    Scalar,
    /// x86-64 AVX2 + FMA, 256-bit vectors: the CI and reference-benchmark target (Zen 3).
    Avx2,
    /// x86-64 AVX-512F, 512-bit vectors.
    Avx512,
}

/// The environment variable that overrides detection: `scalar`, `avx2` or `avx512`.
pub const ISA_ENV: &str = "BERT_KERNELS_ISA";

/// Set to `0` to keep the int8 products on the AVX-512 VNNI kernels on a CPU with Intel AMX
/// (`Int8Path::Amx`, chosen by default there), e.g. to compare the two.
pub const AMX_ENV: &str = "BERT_KERNELS_AMX";

impl Isa {
    /// Every path, fastest last.
    pub const ALL: [Isa; 3] = [Isa::Scalar, Isa::Avx2, Isa::Avx512];

    /// Whether this CPU can run the path.
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx2 | Isa::Avx512 => false,
        }
    }

    /// The paths this CPU can run.
    pub fn supported() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.is_supported()).collect()
    }

    /// The fastest path this CPU supports, ignoring the environment.
    pub fn detect() -> Isa {
        *Isa::supported().last().expect("scalar is always supported")
    }

    /// The path [`crate::Linear::new`] uses: `BERT_KERNELS_ISA` when it names a path this CPU
    /// supports, else [`Isa::detect`]. Read once per process.
    pub fn selected() -> Isa {
        static SELECTED: OnceLock<Isa> = OnceLock::new();
        *SELECTED.get_or_init(|| {
            std::env::var(ISA_ENV)
                .ok()
                .and_then(|v| Isa::parse(&v))
                .filter(|i| i.is_supported())
                .unwrap_or_else(Isa::detect)
        })
    }

    /// Parses `scalar`, `avx2` or `avx512` (case-insensitive).
    pub fn parse(name: &str) -> Option<Isa> {
        match name.trim().to_ascii_lowercase().as_str() {
            "scalar" => Some(Isa::Scalar),
            "avx2" => Some(Isa::Avx2),
            "avx512" => Some(Isa::Avx512),
            _ => None,
        }
    }

    /// The lower-case name `parse` accepts.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }
}

/// Whether this CPU has AVX512-BF16 (`vdpbf16ps`, `vcvtneps2bf16`): the native bf16 product of
/// [`crate::linear::Bf16Linear`]; elsewhere bf16 is emulated on the f32 kernels.
pub fn has_avx512_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Asks the CPU to bring the cache lines of `s` into L1 ahead of a read: for strided reads (a
/// column block of a row-major matrix, row after row) that the hardware prefetchers do not follow.
/// No effect on the values read; nothing on other architectures.
#[inline(always)]
pub(crate) fn prefetch(s: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(last) = s.last() {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // One prefetch per cache line (16 floats), and the last element's line when the slice
        // does not start on a line.
        for c in (0..s.len()).step_by(16) {
            // SAFETY: a prefetch of an in-bounds address has no effect on memory.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(s[c..].as_ptr().cast()) };
        }
        // SAFETY: as above.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(last).cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = s;
}
