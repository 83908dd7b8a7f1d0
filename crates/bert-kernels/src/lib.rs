//! CPU math for BERT. Knows nothing about checkpoints or tokenizers.
//!
//! Every fast kernel here has a naive scalar twin in [`mod@reference`], the executable spec its tests
//! compare against. Shapes use one vocabulary throughout:
//! `B` batch, `T` sequence, `N` packed (real) tokens, `H` hidden, `NH` heads, `D` head dim,
//! `I` intermediate, `V` vocab, `L` layers.

pub mod activation;
pub mod attention;
pub mod bf16;
mod copy;
pub mod f16;
mod hugepages;
pub mod isa;
pub mod layernorm;
pub mod linear;
pub mod reference;
pub mod rng;
pub mod softmax;
pub mod team;
pub mod train;
mod vexp;

pub use activation::Activation;
pub use attention::{attention, AttentionArgs};
pub use hugepages::HUGE_PAGES_ENV;
pub use isa::{has_avx512_bf16, Isa, AMX_ENV, ISA_ENV};
pub use layernorm::layer_norm;
pub use linear::{Bf16Linear, Epilogue, F16Linear, Int8Linear, Int8Path, Linear};

/// Rows per rayon task for element-wise kernels: large enough to amortize scheduling, small enough to
/// split a short batch over both cores.
pub(crate) fn rows_per_task(rows: usize, row_len: usize) -> usize {
    let target_elems = 16 * 1024;
    (target_elems / row_len.max(1)).clamp(1, rows.max(1))
}
