//! Naive scalar twins of the fast kernels: the executable specification the kernel tests compare
//! against. Written for clarity, accumulating in f64 where that makes the spec sharper.

use crate::{Activation, Epilogue};

/// Deterministic inputs for the kernel tests and benches: `len` values in [-scale, scale), a
/// different sequence per `seed` (a multiplicative walk mod 1000: no RNG, the same on every machine).
pub fn test_data(len: usize, seed: usize, scale: f32) -> Vec<f32> {
    (0..len)
        .map(|i| (((i * 7919 + seed * 104_729) % 1000) as f32 / 500.0 - 1.0) * scale)
        .collect()
}

/// The largest `|a[i] - b[i]|`, a NaN on either side counting as infinite (so an output left
/// unwritten in a NaN-filled buffer fails a test instead of vanishing in `f32::max`).
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "max_abs_diff: lengths");
    a.iter()
        .zip(b)
        .map(|(a, b)| (a - b).abs())
        .fold(
            0.0,
            |m, d| if d.is_nan() { f32::INFINITY } else { m.max(d) },
        )
}

/// `v` rounded to f16 and back: the weights an f16 Linear multiplies by.
pub fn f16_round(v: f32) -> f32 {
    crate::f16::f16_to_f32(crate::f16::f32_to_f16(v))
}

/// `y (m, n) = x (m, k) W^T + b`, `W` (n, k) row-major.
pub fn linear(x: &[f32], w: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut y = vec![0.0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut acc = b[j] as f64;
            for p in 0..k {
                acc += x[i * k + p] as f64 * w[j * k + p] as f64;
            }
            y[i * n + j] = acc as f32;
        }
    }
    y
}

/// [`linear`] followed by an [`Epilogue`]: the twin of `Linear::forward`.
pub fn linear_epilogue(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    (m, k, n): (usize, usize, usize),
    epi: Epilogue<'_>,
) -> Vec<f32> {
    let mut y = linear(x, w, b, m, k, n);
    match epi {
        Epilogue::Bias => {}
        Epilogue::BiasActivation(a) => y.iter_mut().for_each(|v| *v = activation(a, *v)),
        Epilogue::BiasResidual(r) => y.iter_mut().zip(r).for_each(|(v, r)| *v += r),
    }
    y
}

/// Symmetric int8 quantization of each row of `x` (rows of width `k`): the row's scale and its
/// values in [-127, 127], by the rule of [`crate::linear::quantize_one`].
pub fn quantize_rows_i8(x: &[f32], k: usize) -> (Vec<f32>, Vec<i8>) {
    let mut scales = Vec::new();
    let mut q = Vec::with_capacity(x.len());
    for row in x.chunks(k) {
        let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let (scale, inv) = crate::linear::int8_scale(max);
        scales.push(scale);
        q.extend(row.iter().map(|&v| crate::linear::quantize_one(v, inv)));
    }
    (scales, q)
}

/// The twin of `Int8Linear::forward`: W (n, k) quantized per output channel; the outlier columns
/// of x (`linear::outlier_columns`) times the dequantized weights in f64, the other columns of x
/// quantized per row and their integer products summed exactly; then the epilogue in f64.
pub fn linear_int8_epilogue(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    (m, k, n): (usize, usize, usize),
    epi: Epilogue<'_>,
) -> Vec<f32> {
    let outliers = crate::linear::outlier_columns(x, k);
    let (sw, qw) = quantize_rows_i8(w, k);
    let mut inliers = x.to_vec();
    for row in inliers.chunks_mut(k) {
        outliers.iter().for_each(|&c| row[c] = 0.0);
    }
    let (sx, qx) = quantize_rows_i8(&inliers, k);
    let mut y = vec![0.0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let dot: i64 = (0..k)
                .map(|p| qx[i * k + p] as i64 * qw[j * k + p] as i64)
                .sum();
            let mut v = dot as f64 * sx[i] as f64 * sw[j] as f64 + b[j] as f64;
            for &c in &outliers {
                v += x[i * k + c] as f64 * (qw[j * k + c] as f32 * sw[j]) as f64;
            }
            match epi {
                Epilogue::Bias => {}
                Epilogue::BiasActivation(a) => v = activation(a, v as f32) as f64,
                Epilogue::BiasResidual(r) => v += r[i * n + j] as f64,
            }
            y[i * n + j] = v as f32;
        }
    }
    y
}

/// The activations in f64.
pub fn activation(act: Activation, x: f32) -> f32 {
    let x = x as f64;
    let y = match act {
        Activation::Gelu => 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)),
        Activation::GeluTanh => {
            let c = (2.0 / std::f64::consts::PI).sqrt();
            0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
        }
        Activation::Relu => x.max(0.0),
        Activation::Silu => x / (1.0 + (-x).exp()),
    };
    y as f32
}

/// Row-wise LayerNorm of `x` (rows of width `gamma.len()`).
pub fn layer_norm(x: &[f32], gamma: &[f32], beta: &[f32], eps: f32) -> Vec<f32> {
    let h = gamma.len();
    let mut out = vec![0.0f32; x.len()];
    for (row, o) in x.chunks(h).zip(out.chunks_mut(h)) {
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / h as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / h as f64;
        let rstd = 1.0 / (var + eps as f64).sqrt();
        for i in 0..h {
            o[i] = ((row[i] as f64 - mean) * rstd * gamma[i] as f64 + beta[i] as f64) as f32;
        }
    }
    out
}

/// Softmax of one row.
pub fn softmax(x: &[f32]) -> Vec<f32> {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let e: Vec<f64> = x.iter().map(|&v| (v as f64 - max).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| (v / s) as f32).collect()
}

/// Multi-head self-attention over one sequence of `t` tokens, as transformers' eager
/// `BertSelfAttention` computes it for one unpadded sequence: `softmax(Q K^T / sqrt(D)) * head_mask`,
/// then `P V`. `qkv` is (t, 3H) with Q, K, V side by side; returns (context (t, H), probs (NH, t, t)).
pub fn attention(
    qkv: &[f32],
    t: usize,
    num_heads: usize,
    head_dim: usize,
    head_mask: Option<&[f32]>,
) -> (Vec<f32>, Vec<f32>) {
    attention_rounding(qkv, t, num_heads, head_dim, head_mask, |x| x)
}

/// [`attention`] with bf16 products (`AttentionArgs::allow_bf16` on AMX): Q, K and V rounded to
/// bf16 before `Q K^T`, the probabilities (after `head_mask`, returned unrounded) rounded to bf16
/// before `P V`; sums in f64.
pub fn attention_bf16(
    qkv: &[f32],
    t: usize,
    num_heads: usize,
    head_dim: usize,
    head_mask: Option<&[f32]>,
) -> (Vec<f32>, Vec<f32>) {
    attention_rounding(qkv, t, num_heads, head_dim, head_mask, crate::bf16::round)
}

/// [`attention`], each product's operands passed through `round` first.
fn attention_rounding(
    qkv: &[f32],
    t: usize,
    num_heads: usize,
    head_dim: usize,
    head_mask: Option<&[f32]>,
    round: fn(f32) -> f32,
) -> (Vec<f32>, Vec<f32>) {
    let qkv: Vec<f32> = qkv.iter().map(|&x| round(x)).collect();
    let qkv = qkv.as_slice();
    let h = num_heads * head_dim;
    let scale = 1.0 / (head_dim as f64).sqrt();
    let mut ctx = vec![0.0f32; t * h];
    let mut probs = vec![0.0f32; num_heads * t * t];
    for hd in 0..num_heads {
        let q = |i: usize, d: usize| qkv[i * 3 * h + hd * head_dim + d] as f64;
        let k = |i: usize, d: usize| qkv[i * 3 * h + h + hd * head_dim + d] as f64;
        let v = |i: usize, d: usize| qkv[i * 3 * h + 2 * h + hd * head_dim + d] as f64;
        for i in 0..t {
            let scores: Vec<f32> = (0..t)
                .map(|j| ((0..head_dim).map(|d| q(i, d) * k(j, d)).sum::<f64>() * scale) as f32)
                .collect();
            let mut p = softmax(&scores);
            if let Some(m) = head_mask {
                p.iter_mut().for_each(|x| *x *= m[hd]);
            }
            probs[(hd * t + i) * t..(hd * t + i + 1) * t].copy_from_slice(&p);
            for d in 0..head_dim {
                let acc: f64 = (0..t).map(|j| round(p[j]) as f64 * v(j, d)).sum();
                ctx[i * h + hd * head_dim + d] = acc as f32;
            }
        }
    }
    (ctx, probs)
}

// ---- training: the backward of each op, written from the formulas, in f64 -------------------------

/// Gradients of `y = x W^T + b` (`x` (m, k), `w` (n, k)): `dx += dy W`, `dw += dy^T x`,
/// `db += colsum(dy)`.
pub fn linear_backward(
    dx: &mut [f32],
    dw: &mut [f32],
    db: &mut [f32],
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    (m, k, n): (usize, usize, usize),
) {
    for i in 0..m {
        for p in 0..k {
            let acc: f64 = (0..n)
                .map(|j| dy[i * n + j] as f64 * w[j * k + p] as f64)
                .sum();
            dx[i * k + p] += acc as f32;
        }
    }
    for j in 0..n {
        for p in 0..k {
            let acc: f64 = (0..m)
                .map(|i| dy[i * n + j] as f64 * x[i * k + p] as f64)
                .sum();
            dw[j * k + p] += acc as f32;
        }
        db[j] += (0..m).map(|i| dy[i * n + j] as f64).sum::<f64>() as f32;
    }
}

/// Gradients of row-wise LayerNorm: `dx += ...`, `dgamma += sum dy * xhat`, `dbeta += sum dy`.
pub fn layer_norm_backward(
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    dy: &[f32],
    x: &[f32],
    gamma: &[f32],
    eps: f32,
) {
    let h = gamma.len();
    for (r, row) in x.chunks(h).enumerate() {
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / h as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / h as f64;
        let rstd = 1.0 / (var + eps as f64).sqrt();
        let xhat: Vec<f64> = row.iter().map(|&v| (v as f64 - mean) * rstd).collect();
        let g = &dy[r * h..(r + 1) * h];
        let dn: Vec<f64> = (0..h).map(|i| g[i] as f64 * gamma[i] as f64).collect();
        let m1 = dn.iter().sum::<f64>() / h as f64;
        let m2 = dn.iter().zip(&xhat).map(|(a, b)| a * b).sum::<f64>() / h as f64;
        for i in 0..h {
            dx[r * h + i] += ((dn[i] - m1 - xhat[i] * m2) * rstd) as f32;
            dgamma[i] += (g[i] as f64 * xhat[i]) as f32;
            dbeta[i] += g[i];
        }
    }
}

/// The derivative of each activation, in f64.
pub fn activation_derivative(act: Activation, x: f32) -> f32 {
    let x = x as f64;
    let y = match act {
        Activation::Gelu => {
            let cdf = 0.5 * (1.0 + libm::erf(x / std::f64::consts::SQRT_2));
            cdf + x * (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
        }
        Activation::GeluTanh => {
            let c = (2.0 / std::f64::consts::PI).sqrt();
            let t = (c * (x + 0.044715 * x * x * x)).tanh();
            0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * c * (1.0 + 3.0 * 0.044715 * x * x)
        }
        Activation::Relu => f64::from(u8::from(x > 0.0)),
        Activation::Silu => {
            let s = 1.0 / (1.0 + (-x).exp());
            s * (1.0 + x * (1.0 - s))
        }
    };
    y as f32
}

/// Gradient of [`attention`] (no dropout) with respect to `qkv` (t, 3H), given `dctx` (t, H):
/// explicit matrices per head, from `P = softmax(S)`, `Pm = P * head_mask`, `ctx = Pm V`.
pub fn attention_backward(
    dctx: &[f32],
    qkv: &[f32],
    t: usize,
    num_heads: usize,
    head_dim: usize,
    head_mask: Option<&[f32]>,
) -> Vec<f32> {
    let h = num_heads * head_dim;
    let d = head_dim;
    let scale = 1.0 / (d as f64).sqrt();
    let mut g = vec![0.0f64; t * 3 * h];
    for hd in 0..num_heads {
        let at = |i: usize, part: usize, e: usize| qkv[i * 3 * h + part * h + hd * d + e] as f64;
        let dc = |i: usize, e: usize| dctx[i * h + hd * d + e] as f64;
        let hm = head_mask.map_or(1.0, |m| m[hd] as f64);
        for i in 0..t {
            let s: Vec<f64> = (0..t)
                .map(|j| (0..d).map(|e| at(i, 0, e) * at(j, 1, e)).sum::<f64>() * scale)
                .collect();
            let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let ex: Vec<f64> = s.iter().map(|v| (v - max).exp()).collect();
            let sum: f64 = ex.iter().sum();
            let p: Vec<f64> = ex.iter().map(|v| v / sum).collect();
            let dpm: Vec<f64> = (0..t)
                .map(|j| (0..d).map(|e| dc(i, e) * at(j, 2, e)).sum::<f64>())
                .collect();
            for j in 0..t {
                for e in 0..d {
                    g[j * 3 * h + 2 * h + hd * d + e] += p[j] * hm * dc(i, e);
                }
            }
            let dp: Vec<f64> = dpm.iter().map(|v| v * hm).collect();
            let rowdot: f64 = dp.iter().zip(&p).map(|(a, b)| a * b).sum();
            for j in 0..t {
                let ds = p[j] * (dp[j] - rowdot) * scale;
                for e in 0..d {
                    g[i * 3 * h + hd * d + e] += ds * at(j, 1, e);
                    g[j * 3 * h + h + hd * d + e] += ds * at(i, 0, e);
                }
            }
        }
    }
    g.into_iter().map(|v| v as f32).collect()
}

/// `torch.optim.AdamW`'s element-wise update (single-tensor path), in f64.
pub fn adamw_update(
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    s: crate::train::adamw::AdamWStep,
) {
    let f = |x: f32| x as f64;
    for i in 0..p.len() {
        let mut pi = f(p[i]) * (1.0 - f(s.lr) * f(s.weight_decay));
        let mi = f(s.beta1) * f(m[i]) + (1.0 - f(s.beta1)) * f(g[i]);
        let vi = f(s.beta2) * f(v[i]) + (1.0 - f(s.beta2)) * f(g[i]) * f(g[i]);
        pi -= f(s.lr) / f(s.bc1) * mi / (vi.sqrt() / f(s.bc2_sqrt) + f(s.eps));
        (p[i], m[i], v[i]) = (pi as f32, mi as f32, vi as f32);
    }
}
