//! LayerNorm over the last dimension, in place, rows in parallel.

/// `x[r] = (x[r] - mean) / sqrt(var + eps) * gamma + beta` for every row `r` of `x` (rows of width
/// `gamma.len()`). Mean and variance are the biased (population) statistics, as `torch.nn.LayerNorm`.
pub fn layer_norm(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let h = gamma.len();
    assert_eq!(beta.len(), h, "layer_norm: gamma and beta differ in length");
    assert_eq!(x.len() % h.max(1), 0, "layer_norm: x is not whole rows");
    if h == 0 {
        return;
    }
    let rows = x.len() / h;
    crate::team::for_each_chunk_mut(x, h * crate::rows_per_task(rows, h), |_, chunk| {
        for row in chunk.chunks_exact_mut(h) {
            layer_norm_row(row, gamma, beta, eps);
        }
    });
}

/// One row of [`layer_norm`].
#[inline]
fn layer_norm_row(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let (mean, rstd) = row_stats(row, eps);
    for ((x, &g), &b) in row.iter_mut().zip(gamma).zip(beta) {
        *x = (*x - mean) * rstd * g + b;
    }
}

/// A row's mean and 1 / sqrt(variance + eps), in two passes (mean, then centred squares) for
/// accuracy; also the statistics the training forward keeps.
#[inline]
pub(crate) fn row_stats(row: &[f32], eps: f32) -> (f32, f32) {
    let h = row.len() as f32;
    let mean = sum8(row) / h;
    let mut var = [0.0f32; 8];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for k in 0..8 {
            let d = c[k] - mean;
            var[k] += d * d;
        }
    }
    let mut v: f32 = var.iter().sum();
    for &x in chunks.remainder() {
        let d = x - mean;
        v += d * d;
    }
    (mean, 1.0 / (v / h + eps).sqrt())
}

/// Sum with 8 independent accumulators (vectorizes, and is more accurate than one running sum).
#[inline]
pub(crate) fn sum8(xs: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut chunks = xs.chunks_exact(8);
    for c in &mut chunks {
        for k in 0..8 {
            acc[k] += c[k];
        }
    }
    acc.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

/// Dot product with 8 independent accumulators (a fixed order: reproducible; vectorizes).
#[inline]
pub(crate) fn dot8(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        s += x * y;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference;

    #[test]
    fn matches_reference_on_edge_shapes() {
        for &(rows, h) in &[(1, 1), (1, 7), (3, 8), (5, 33), (17, 384), (2, 1000)] {
            let x: Vec<f32> = (0..rows * h)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.07 + 3.0)
                .collect();
            let g: Vec<f32> = (0..h).map(|i| 1.0 + (i % 5) as f32 * 0.1).collect();
            let b: Vec<f32> = (0..h).map(|i| (i % 3) as f32 * 0.2 - 0.2).collect();
            let mut fast = x.clone();
            layer_norm(&mut fast, &g, &b, 1e-12);
            let want = reference::layer_norm(&x, &g, &b, 1e-12);
            for (a, w) in fast.iter().zip(&want) {
                assert!((a - w).abs() < 1e-5, "rows {rows} h {h}: {a} vs {w}");
            }
        }
    }
}
