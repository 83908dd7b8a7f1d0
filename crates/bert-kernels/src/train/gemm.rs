//! The three products of a Linear layer in training, on unpacked (out, in) weights that change every
//! step: `y = x W^T + b`, `dx (+)= dy W`, `dW += dy^T x` with `db += colsum(dy)`.
//!
//! Each product goes through the packed GEMM of [`crate::Linear`] (its microkernels and threading).
//! Operands the GEMM reads as W^T are packed straight from their row-major layout
//! ([`Linear::from_transposed`]) and `dy` is read as the transposed A of `dW += dy^T x`
//! ([`Linear::accumulate_transposed`]): no operand is transposed or copied. Packing is O(weights) per
//! call against O(tokens x weights) of arithmetic: a few percent for real batches.
//!
//! With [`Precision::Bf16`] (mixed precision, as `torch.autocast("cpu", dtype=torch.bfloat16)`)
//! all three products read their operands rounded to bf16 and sum in f32 ([`Bf16Linear`]); the
//! weights, gradients and everything outside the products stay f32.

use rayon::prelude::*;

use super::{add_partials, REDUCE_ROWS};
use crate::{Activation, Bf16Linear, Epilogue, Linear};

/// The arithmetic of a training product.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// f32 operands and sums.
    #[default]
    F32,
    /// Operands rounded to bf16, f32 sums (native `vdpbf16ps` on AVX512-BF16, emulated elsewhere).
    Bf16,
}

/// A packed operand in either precision: the three products' common code.
enum Packed {
    F32(Linear),
    Bf16(Bf16Linear),
}

impl Packed {
    /// `w` (out, in) row-major.
    fn new(prec: Precision, w: &[f32], b: &[f32], out: usize, inp: usize) -> Self {
        match prec {
            Precision::F32 => Packed::F32(Linear::from_slice(w, b, out, inp)),
            Precision::Bf16 => Packed::Bf16(Bf16Linear::from_slice(w, b.to_vec(), out, inp)),
        }
    }

    /// `wt` (in, out) row-major, a zero bias.
    fn transposed(prec: Precision, wt: &[f32], out: usize, inp: usize) -> Self {
        let bias = vec![0.0; out];
        match prec {
            Precision::F32 => Packed::F32(Linear::from_transposed(wt, bias, out, inp)),
            Precision::Bf16 => Packed::Bf16(Bf16Linear::from_transposed(wt, bias, out, inp)),
        }
    }

    fn forward(&self, x: &[f32], y: &mut [f32], epi: Epilogue<'_>) {
        match self {
            Packed::F32(l) => l.forward(x, y, epi),
            Packed::Bf16(l) => l.forward(x, y, epi),
        }
    }

    fn accumulate(&self, x: &[f32], y: &mut [f32]) {
        match self {
            Packed::F32(l) => l.accumulate(x, y),
            Packed::Bf16(l) => l.accumulate(x, y),
        }
    }

    fn accumulate_transposed(&self, xt: &[f32], y: &mut [f32]) {
        match self {
            Packed::F32(l) => l.accumulate_transposed(xt, y),
            Packed::Bf16(l) => l.accumulate_transposed(xt, y),
        }
    }
}

/// Elements per task of the element-wise passes (the activation after a product).
const CHUNK: usize = 1 << 14;

/// What follows the product in [`linear_forward`].
#[derive(Debug)]
pub enum Post<'a> {
    None,
    /// `y = act(z)`; `z` (the pre-activation, which the backward needs) is stored separately.
    Activation(Activation, &'a mut [f32]),
    /// `y += residual`.
    Residual(&'a [f32]),
}

/// `y (M, N) = x (M, K) W^T + b`, `w` (N, K) row-major, then `post`; the product in `prec`.
pub fn linear_forward(
    y: &mut [f32],
    x: &[f32],
    w: &[f32],
    b: &[f32],
    (m, k, n): (usize, usize, usize),
    mut post: Post<'_>,
    prec: Precision,
) {
    assert_eq!(x.len(), m * k, "linear_forward: x size");
    assert_eq!(w.len(), n * k, "linear_forward: w size");
    assert_eq!(y.len(), m * n, "linear_forward: y size");
    assert_eq!(b.len(), n, "linear_forward: b size");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for row in y.chunks_exact_mut(n) {
            row.copy_from_slice(b);
        }
    } else {
        let lin = Packed::new(prec, w, b, n, k);
        match post {
            Post::Residual(r) => lin.forward(x, y, Epilogue::BiasResidual(r)),
            Post::Activation(_, ref mut z) => lin.forward(x, z, Epilogue::Bias),
            Post::None => lin.forward(x, y, Epilogue::Bias),
        }
    }
    match post {
        Post::None => {}
        Post::Residual(r) if k == 0 => y.iter_mut().zip(r).for_each(|(y, r)| *y += r),
        Post::Residual(_) => {}
        Post::Activation(act, z) => {
            assert_eq!(z.len(), y.len(), "linear_forward: pre-activation size");
            if k == 0 {
                z.copy_from_slice(y);
            }
            let isa = crate::Isa::selected();
            y.par_chunks_mut(CHUNK)
                .zip(z.par_chunks(CHUNK))
                .for_each(|(y, z)| {
                    y.copy_from_slice(z);
                    crate::linear::activate(isa, act, y);
                });
        }
    }
}

/// `dx (M, K) (+)= dy (M, N) W`, `w` (N, K): the input gradient of `y = x W^T + b`, in `prec`.
pub fn linear_backward_input(
    dx: &mut [f32],
    dy: &[f32],
    w: &[f32],
    (m, k, n): (usize, usize, usize),
    accumulate: bool,
    prec: Precision,
) {
    assert_eq!(dx.len(), m * k, "linear_backward_input: dx size");
    assert_eq!(dy.len(), m * n, "linear_backward_input: dy size");
    assert_eq!(w.len(), n * k, "linear_backward_input: w size");
    if m == 0 || k == 0 || n == 0 {
        if !accumulate {
            dx.fill(0.0);
        }
        return;
    }
    // dx = dy (W^T)^T: a Linear whose (out, in) weight is W^T (K, N), i.e. whose transposed
    // weight is W itself: packed straight from it.
    let lin = Packed::transposed(prec, w, k, n);
    if accumulate {
        lin.accumulate(dy, dx);
    } else {
        lin.forward(dy, dx, Epilogue::Bias);
    }
}

/// `dw (N, K) += dy^T x` and `db (N) += colsum(dy)`: the parameter gradients of `y = x W^T + b`,
/// the product in `prec` (the bias sum always f32).
pub fn linear_backward_params(
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    dy: &[f32],
    x: &[f32],
    (m, k, n): (usize, usize, usize),
    prec: Precision,
) {
    assert_eq!(dw.len(), n * k, "linear_backward_params: dw size");
    assert_eq!(dy.len(), m * n, "linear_backward_params: dy size");
    assert_eq!(x.len(), m * k, "linear_backward_params: x size");
    if let Some(db) = db {
        assert_eq!(db.len(), n, "linear_backward_params: db size");
        col_sums(db, dy, n);
    }
    if m == 0 || k == 0 || n == 0 {
        return;
    }
    // dW (N, K) += dy^T (N, M) x (M, K): a Linear on rows dy^T (read from dy as stored) whose
    // (out, in) weight is x^T (K, M), i.e. whose transposed weight is x itself: packed straight from it.
    let lin = Packed::transposed(prec, x, k, m);
    lin.accumulate_transposed(dy, dw);
}

/// `acc (W) += sum over rows of x (R, W)`, in fixed chunks (reproducible).
pub fn col_sums(acc: &mut [f32], x: &[f32], width: usize) {
    if width == 0 {
        return;
    }
    let partials: Vec<Vec<f32>> = x
        .par_chunks(REDUCE_ROWS * width)
        .map(|chunk| {
            let mut s = vec![0.0f32; width];
            for row in chunk.chunks_exact(width) {
                for (a, v) in s.iter_mut().zip(row) {
                    *a += v;
                }
            }
            s
        })
        .collect();
    add_partials(acc, &partials);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference;
    use crate::reference::test_data;

    /// Both precisions against the reference; bf16's reference multiplies the bf16-rounded
    /// operands in f32 (every product exact), its bias gradient sums the f32 `dy`.
    #[test]
    fn products_match_reference() {
        for prec in [Precision::F32, Precision::Bf16] {
            let round = |v: &[f32]| -> Vec<f32> {
                match prec {
                    Precision::F32 => v.to_vec(),
                    Precision::Bf16 => v.iter().map(|&v| crate::bf16::round(v)).collect(),
                }
            };
            for &(m, k, n) in &[
                (1, 1, 1),
                (3, 7, 5),
                (17, 33, 9),
                (64, 48, 80),
                (0, 4, 3),
                // Large enough that packing splits over threads and K spans several blocks.
                (300, 1000, 290),
                (301, 1537, 97),
            ] {
                let what = |s: &str| format!("{prec:?} {m}x{k}x{n} {s}");
                let x = test_data(m * k, 1, 0.5);
                let w = test_data(n * k, 2, 0.5);
                let b = test_data(n, 3, 0.5);
                let dy = test_data(m * n, 4, 0.5);
                let (xr, wr, dyr) = (round(&x), round(&w), round(&dy));
                let mut y = vec![0.0; m * n];
                linear_forward(&mut y, &x, &w, &b, (m, k, n), Post::None, prec);
                let want = reference::linear(&xr, &wr, &b, m, k, n);
                close(&y, &want, &what("forward"));

                let mut dx = test_data(m * k, 5, 0.5);
                let mut want_dx = dx.clone();
                linear_backward_input(&mut dx, &dy, &w, (m, k, n), true, prec);
                let mut dw = test_data(n * k, 6, 0.5);
                let mut db = test_data(n, 7, 0.5);
                let (mut want_dw, mut want_db) = (dw.clone(), db.clone());
                linear_backward_params(&mut dw, Some(&mut db), &dy, &x, (m, k, n), prec);
                let mut ignored = vec![0.0; n];
                reference::linear_backward(
                    &mut want_dx,
                    &mut want_dw,
                    &mut ignored,
                    &dyr,
                    &xr,
                    &wr,
                    (m, k, n),
                );
                reference::linear_backward(
                    &mut vec![0.0; m * k],
                    &mut vec![0.0; n * k],
                    &mut want_db,
                    &dy,
                    &x,
                    &w,
                    (m, k, n),
                );
                close(&dx, &want_dx, &what("dx"));
                close(&dw, &want_dw, &what("dw"));
                close(&db, &want_db, &what("db"));

                let mut fresh = vec![f32::NAN; m * k];
                linear_backward_input(&mut fresh, &dy, &w, (m, k, n), false, prec);
                let mut want = vec![0.0; m * k];
                reference::linear_backward(
                    &mut want,
                    &mut vec![0.0; n * k],
                    &mut vec![0.0; n],
                    &dyr,
                    &xr,
                    &wr,
                    (m, k, n),
                );
                close(&fresh, &want, &what("dx, not accumulated"));
            }
        }
    }

    #[test]
    fn activation_and_residual_posts() {
        let (m, k, n) = (5, 6, 7);
        let (x, w, b, r) = (
            test_data(m * k, 1, 0.5),
            test_data(n * k, 2, 0.5),
            test_data(n, 3, 0.5),
            test_data(m * n, 4, 0.5),
        );
        let mut y = vec![0.0; m * n];
        let mut z = vec![0.0; m * n];
        linear_forward(
            &mut y,
            &x,
            &w,
            &b,
            (m, k, n),
            Post::Activation(Activation::Gelu, &mut z),
            Precision::F32,
        );
        let pre = reference::linear(&x, &w, &b, m, k, n);
        close(&z, &pre, "pre-activation");
        let act: Vec<f32> = pre
            .iter()
            .map(|&v| reference::activation(Activation::Gelu, v))
            .collect();
        close(&y, &act, "activation");
        linear_forward(
            &mut y,
            &x,
            &w,
            &b,
            (m, k, n),
            Post::Residual(&r),
            Precision::F32,
        );
        let res: Vec<f32> = pre.iter().zip(&r).map(|(a, b)| a + b).collect();
        close(&y, &res, "residual");
    }

    fn close(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            // Relative beyond 1: K = 1537 sums reach 100.
            assert!(
                (x - y).abs() < 1e-4 * y.abs().max(1.0),
                "{what}[{i}]: {x} vs {y}"
            );
        }
    }
}
