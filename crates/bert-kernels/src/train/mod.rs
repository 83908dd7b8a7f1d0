//! Training ops as forward/backward pairs, llm.c style: each forward saves exactly what its backward
//! needs; each backward reads the forward in reverse and accumulates (`+=`) into parameter gradients.
//!
//! Buffers are row-major slices with the shape vocabulary of the crate (N packed tokens, H hidden, ...).
//! The naive twins in [`crate::reference`] (`*_backward` functions) are the spec the tests compare
//! against, together with finite differences of the forwards.

pub mod activation;
pub mod adamw;
pub mod attention;
pub mod dropout;
pub mod embedding;
pub mod gemm;
pub mod layernorm;

pub use dropout::Dropout;

/// Fixed-size chunks for parallel reductions, so sums are added in the same order whatever the
/// scheduling: a seeded run is reproducible bit for bit on the same thread count and machine.
pub(crate) const REDUCE_ROWS: usize = 64;

/// Adds per-chunk partial sums of rows (each `width` long) into `acc`, in chunk order.
pub(crate) fn add_partials(acc: &mut [f32], partials: &[Vec<f32>]) {
    for p in partials {
        for (a, v) in acc.iter_mut().zip(p) {
            *a += v;
        }
    }
}
