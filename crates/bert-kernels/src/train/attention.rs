//! Multi-head self-attention over packed sequences for training, and its backward.
//!
//! Per (sequence, head), as transformers' eager `BertSelfAttention` in `train()` mode:
//! `P = softmax(Q K^T / sqrt(D))` (saved), `Pm = dropout(P) * head_mask`, `ctx = Pm V`.
//! The backward regenerates the dropout mask from its seed, so only `P` is stored.
//! Sequences are independent rayon tasks (each owns its rows of every output).

use rayon::prelude::*;

use super::Dropout;
use crate::attention::probs_offsets;
use crate::softmax::softmax_row;

/// The packing and head layout shared by [`attention_forward`] and [`attention_backward`].
#[derive(Clone, Copy, Debug)]
pub struct Heads<'a> {
    /// B + 1 offsets into the N packed tokens.
    pub cu_seqlens: &'a [usize],
    pub num_heads: usize,
    pub head_dim: usize,
    /// (NH) multipliers of each head's probabilities (transformers 4.x `head_mask`).
    pub head_mask: Option<&'a [f32]>,
    /// Attention-probability dropout and its stream (distinct per layer and step).
    pub dropout: Option<(Dropout, u64)>,
}

impl Heads<'_> {
    fn hidden(&self) -> usize {
        self.num_heads * self.head_dim
    }

    fn mask(&self, h: usize) -> f32 {
        self.head_mask.map_or(1.0, |m| m[h])
    }

    /// Dropout multiplier of probability element `index` (its place in the packed buffer).
    fn keep(&self, index: usize) -> f32 {
        self.dropout
            .map_or(1.0, |(d, stream)| d.scale(stream, index as u64))
    }
}

/// Cuts `buf` into consecutive pieces of the given lengths.
fn split_lengths(mut buf: &mut [f32], lens: impl Iterator<Item = usize>) -> Vec<&mut [f32]> {
    let mut out = Vec::new();
    for len in lens {
        let (a, b) = std::mem::take(&mut buf).split_at_mut(len);
        out.push(a);
        buf = b;
    }
    out
}

#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
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

#[inline]
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// `ctx (N, H)` from `qkv (N, 3H)`; `probs` receives every sequence's (NH, T_s, T_s) softmax output
/// (before dropout and head mask) at the offsets of [`probs_offsets`].
pub fn attention_forward(ctx: &mut [f32], probs: &mut [f32], qkv: &[f32], a: Heads<'_>) {
    let h = a.hidden();
    let (nh, d) = (a.num_heads, a.head_dim);
    let cu = a.cu_seqlens;
    let n = *cu.last().unwrap_or(&0);
    assert_eq!(qkv.len(), n * 3 * h, "attention_forward: qkv size");
    assert_eq!(ctx.len(), n * h, "attention_forward: ctx size");
    let offs = probs_offsets(cu, nh);
    assert_eq!(
        probs.len(),
        *offs.last().unwrap_or(&0),
        "attention_forward: probs size"
    );
    let scale = 1.0 / (d as f32).sqrt();
    let ctxs = split_lengths(ctx, cu.windows(2).map(|w| (w[1] - w[0]) * h));
    let ps = split_lengths(probs, offs.windows(2).map(|w| w[1] - w[0]));
    ctxs.into_par_iter()
        .zip(ps)
        .enumerate()
        .for_each(|(s, (ctx, p))| {
            let (r0, t) = (cu[s], cu[s + 1] - cu[s]);
            let row = |i: usize| &qkv[(r0 + i) * 3 * h..(r0 + i + 1) * 3 * h];
            ctx.fill(0.0);
            let mut pm = vec![0.0f32; t];
            for hd in 0..nh {
                let (qo, ko, vo) = (hd * d, h + hd * d, 2 * h + hd * d);
                let hm = a.mask(hd);
                for i in 0..t {
                    let prow = &mut p[(hd * t + i) * t..(hd * t + i + 1) * t];
                    let q = &row(i)[qo..qo + d];
                    for (j, s) in prow.iter_mut().enumerate() {
                        *s = dot(q, &row(j)[ko..ko + d]) * scale;
                    }
                    softmax_row(prow);
                    let base = offs[s] + (hd * t + i) * t;
                    for j in 0..t {
                        pm[j] = prow[j] * a.keep(base + j) * hm;
                    }
                    let out = &mut ctx[i * h + qo..i * h + qo + d];
                    for (j, &w) in pm.iter().enumerate() {
                        axpy(out, w, &row(j)[vo..vo + d]);
                    }
                }
            }
        });
}

/// Gradient of [`attention_forward`]: `dqkv (N, 3H)` (overwritten) from `dctx (N, H)`, the saved
/// `probs` and the forward's `qkv`.
pub fn attention_backward(
    dqkv: &mut [f32],
    dctx: &[f32],
    qkv: &[f32],
    probs: &[f32],
    a: Heads<'_>,
) {
    let h = a.hidden();
    let (nh, d) = (a.num_heads, a.head_dim);
    let cu = a.cu_seqlens;
    let n = *cu.last().unwrap_or(&0);
    assert_eq!(dqkv.len(), n * 3 * h, "attention_backward: dqkv size");
    assert_eq!(dctx.len(), n * h, "attention_backward: dctx size");
    assert_eq!(qkv.len(), n * 3 * h, "attention_backward: qkv size");
    let offs = probs_offsets(cu, nh);
    assert_eq!(
        probs.len(),
        *offs.last().unwrap_or(&0),
        "attention_backward: probs size"
    );
    let scale = 1.0 / (d as f32).sqrt();
    let dqkvs = split_lengths(dqkv, cu.windows(2).map(|w| (w[1] - w[0]) * 3 * h));
    dqkvs.into_par_iter().enumerate().for_each(|(s, g)| {
        let (r0, t) = (cu[s], cu[s + 1] - cu[s]);
        let row = |i: usize| &qkv[(r0 + i) * 3 * h..(r0 + i + 1) * 3 * h];
        let drow = |i: usize| &dctx[(r0 + i) * h..(r0 + i + 1) * h];
        g.fill(0.0);
        let mut dp = vec![0.0f32; t];
        for hd in 0..nh {
            let (qo, ko, vo) = (hd * d, h + hd * d, 2 * h + hd * d);
            let hm = a.mask(hd);
            for i in 0..t {
                let base = offs[s] + (hd * t + i) * t;
                let prow = &probs[base..base + t];
                let dc = &drow(i)[qo..qo + d];
                // dPm = dctx V^T; dV += Pm^T dctx; dP = dPm * mask * hm.
                for j in 0..t {
                    let m = a.keep(base + j) * hm;
                    let dpm = dot(dc, &row(j)[vo..vo + d]);
                    let pm = prow[j] * m;
                    if pm != 0.0 {
                        axpy(&mut g[j * 3 * h + vo..j * 3 * h + vo + d], pm, dc);
                    }
                    dp[j] = dpm * m;
                }
                // dS = P (dP - sum_j dP P) / sqrt(D)
                let rowdot = dot(&dp, prow);
                for j in 0..t {
                    let ds = prow[j] * (dp[j] - rowdot) * scale;
                    if ds != 0.0 {
                        let (qi, kj) = (i * 3 * h + qo, j * 3 * h + ko);
                        // dQ_i += dS_ij K_j ; dK_j += dS_ij Q_i
                        axpy(&mut g[qi..qi + d], ds, &row(j)[ko..ko + d]);
                        axpy(&mut g[kj..kj + d], ds, &row(i)[qo..qo + d]);
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference;

    fn data(len: usize, seed: usize, scale: f32) -> Vec<f32> {
        (0..len)
            .map(|i| (((i * 31 + seed * 17) * 7919 % 1000) as f32 / 500.0 - 1.0) * scale)
            .collect()
    }

    fn heads<'a>(cu: &'a [usize], nh: usize, d: usize, hm: Option<&'a [f32]>) -> Heads<'a> {
        Heads {
            cu_seqlens: cu,
            num_heads: nh,
            head_dim: d,
            head_mask: hm,
            dropout: None,
        }
    }

    #[test]
    fn forward_matches_inference_and_backward_matches_reference() {
        for (cu, nh, d, hm) in [
            (vec![0usize, 1], 1usize, 1usize, None),
            (vec![0, 5, 5, 8], 2, 3, Some(vec![1.0f32, 0.5])),
            (vec![0, 7, 20], 3, 9, Some(vec![0.0, 1.0, 0.25])),
        ] {
            let n = *cu.last().unwrap();
            let h = nh * d;
            let qkv = data(n * 3 * h, 1, 1.5);
            let a = heads(&cu, nh, d, hm.as_deref());
            let plen = *probs_offsets(&cu, nh).last().unwrap();
            let (mut ctx, mut p) = (vec![0.0; n * h], vec![0.0; plen]);
            attention_forward(&mut ctx, &mut p, &qkv, a);
            let dctx = data(n * h, 2, 1.0);
            let mut g = vec![f32::NAN; n * 3 * h];
            attention_backward(&mut g, &dctx, &qkv, &p, a);
            for w in cu.windows(2) {
                let (r0, r1) = (w[0], w[1]);
                let t = r1 - r0;
                let sq = &qkv[r0 * 3 * h..r1 * 3 * h];
                let (want, _) = reference::attention(sq, t, nh, d, hm.as_deref());
                for (x, y) in ctx[r0 * h..r1 * h].iter().zip(&want) {
                    assert!((x - y).abs() < 1e-5, "ctx {x} vs {y}");
                }
                let sd = &dctx[r0 * h..r1 * h];
                let wg = reference::attention_backward(sd, sq, t, nh, d, hm.as_deref());
                for (i, (x, y)) in g[r0 * 3 * h..r1 * 3 * h].iter().zip(&wg).enumerate() {
                    assert!((x - y).abs() < 1e-4, "dqkv[{i}] {x} vs {y}");
                }
            }
        }
    }

    #[test]
    fn backward_with_dropout_matches_finite_differences() {
        let cu = [0usize, 4, 9];
        let (nh, d) = (2, 4);
        let h = nh * d;
        let n = 9;
        let hm = [0.5f32, 1.0];
        let mut a = heads(&cu, nh, d, Some(&hm));
        a.dropout = Some((Dropout { p: 0.3, seed: 9 }, 3));
        let qkv = data(n * 3 * h, 5, 1.0);
        let dctx = data(n * h, 6, 1.0);
        let plen = *probs_offsets(&cu, nh).last().unwrap();
        let loss = |qkv: &[f32]| -> f64 {
            let (mut ctx, mut p) = (vec![0.0; n * h], vec![0.0; plen]);
            attention_forward(&mut ctx, &mut p, qkv, a);
            ctx.iter()
                .zip(&dctx)
                .map(|(c, g)| *c as f64 * *g as f64)
                .sum()
        };
        let (mut ctx, mut p) = (vec![0.0; n * h], vec![0.0; plen]);
        attention_forward(&mut ctx, &mut p, &qkv, a);
        assert!(p.iter().any(|&v| v > 0.0));
        let mut g = vec![0.0; n * 3 * h];
        attention_backward(&mut g, &dctx, &qkv, &p, a);
        let eps = 1e-2f32;
        for i in 0..qkv.len() {
            let (mut hi, mut lo) = (qkv.clone(), qkv.clone());
            hi[i] += eps;
            lo[i] -= eps;
            let fd = (loss(&hi) - loss(&lo)) / (2.0 * eps as f64);
            assert!(
                (fd as f32 - g[i]).abs() < 5e-3,
                "dqkv[{i}]: fd {fd} vs {}",
                g[i]
            );
        }
    }
}
