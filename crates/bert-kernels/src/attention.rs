//! Multi-head self-attention over a ragged batch of packed sequences: no work on padding.
//!
//! Tokens of all sequences are packed into one (N, 3H) matrix of fused Q|K|V projections; sequence
//! `s` owns rows `cu_seqlens[s]..cu_seqlens[s + 1]`. Every (sequence, head) pair is an independent
//! task, computed as transformers' eager `BertSelfAttention` does for an unpadded sequence:
//! `P = softmax(Q K^T / sqrt(D)) * head_mask`, `context = P V`.

use rayon::prelude::*;

use crate::softmax::softmax_row;

/// Inputs of [`attention`].
#[derive(Clone, Copy, Debug)]
pub struct AttentionArgs<'a> {
    /// (N, 3H): per token, Q then K then V, each H = NH * D wide, head `h` at columns `h*D..(h+1)*D`.
    pub qkv: &'a [f32],
    /// B + 1 offsets into the N packed tokens, starting at 0, non-decreasing, ending at N.
    pub cu_seqlens: &'a [usize],
    pub num_heads: usize,
    pub head_dim: usize,
    /// (NH): multiplies each head's attention probabilities (transformers 4.x `head_mask`).
    pub head_mask: Option<&'a [f32]>,
}

/// Offsets of each sequence's (NH, T_s, T_s) block in the packed probabilities buffer; the last entry
/// is the buffer's length.
pub fn probs_offsets(cu_seqlens: &[usize], num_heads: usize) -> Vec<usize> {
    let mut off = Vec::with_capacity(cu_seqlens.len());
    let mut acc = 0;
    off.push(0);
    for w in cu_seqlens.windows(2) {
        let t = w[1] - w[0];
        acc += num_heads * t * t;
        off.push(acc);
    }
    off
}

/// Raw pointer that may cross threads; every task writes a disjoint region through it.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: used only to write disjoint (sequence, head) regions from different rayon tasks.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    // A method, so closures capture the whole `SendPtr` rather than its raw-pointer field.
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Computes the attention context `ctx` (N, H) and, when `probs` is given, stores every sequence's
/// probabilities (NH, T_s, T_s) at the offsets of [`probs_offsets`].
pub fn attention(args: AttentionArgs<'_>, ctx: &mut [f32], probs: Option<&mut [f32]>) {
    let AttentionArgs {
        qkv,
        cu_seqlens,
        num_heads: nh,
        head_dim: d,
        head_mask,
    } = args;
    let h = nh * d;
    let n = *cu_seqlens.last().expect("cu_seqlens is never empty");
    assert_eq!(qkv.len(), n * 3 * h, "attention: qkv size");
    assert_eq!(ctx.len(), n * h, "attention: ctx size");
    assert!(
        cu_seqlens.windows(2).all(|w| w[0] <= w[1]),
        "attention: cu_seqlens order"
    );
    if let Some(m) = head_mask {
        assert_eq!(m.len(), nh, "attention: head_mask size");
    }
    let poff = probs_offsets(cu_seqlens, nh);
    let probs_ptr = probs.map(|p| {
        assert_eq!(p.len(), *poff.last().unwrap(), "attention: probs size");
        SendPtr(p.as_mut_ptr())
    });
    let ctx_ptr = SendPtr(ctx.as_mut_ptr());
    let scale = 1.0 / (d as f32).sqrt();
    let nseq = cu_seqlens.len() - 1;
    (0..nseq * nh).into_par_iter().for_each_init(
        || (Vec::<f32>::new(), Vec::<f32>::new()),
        |(kbuf, scores), task| {
            let (s, hd) = (task / nh, task % nh);
            let (start, t) = (cu_seqlens[s], cu_seqlens[s + 1] - cu_seqlens[s]);
            if t == 0 {
                return;
            }
            // K of this head, contiguous (t, D), so the score loop streams it.
            kbuf.clear();
            for j in 0..t {
                let row = &qkv[(start + j) * 3 * h + h + hd * d..][..d];
                kbuf.extend_from_slice(row);
            }
            scores.resize(t, 0.0);
            let hm = head_mask.map_or(1.0, |m| m[hd]);
            let mut acc = vec![0.0f32; d];
            for i in 0..t {
                let q = &qkv[(start + i) * 3 * h + hd * d..][..d];
                for (j, sc) in scores.iter_mut().enumerate() {
                    *sc = dot(q, &kbuf[j * d..(j + 1) * d]) * scale;
                }
                softmax_row(scores);
                if hm != 1.0 {
                    scores.iter_mut().for_each(|p| *p *= hm);
                }
                if let Some(pp) = probs_ptr {
                    let off = poff[s] + (hd * t + i) * t;
                    // SAFETY: row i of head hd of sequence s is written by this task only, and lies
                    // inside the probs buffer whose size was asserted above.
                    unsafe { std::ptr::copy_nonoverlapping(scores.as_ptr(), pp.get().add(off), t) };
                }
                acc.fill(0.0);
                for (j, &p) in scores.iter().enumerate() {
                    let v = &qkv[(start + j) * 3 * h + 2 * h + hd * d..][..d];
                    for (a, &vv) in acc.iter_mut().zip(v) {
                        *a += p * vv;
                    }
                }
                // SAFETY: columns hd*D..(hd+1)*D of token row start+i belong to this task alone;
                // the row is inside ctx (asserted n * h above).
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        acc.as_ptr(),
                        ctx_ptr.get().add((start + i) * h + hd * d),
                        d,
                    )
                };
            }
        },
    );
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
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference;

    #[test]
    fn matches_reference_on_ragged_batches() {
        // (sequence lengths, heads, head dim): T = 1, empty sequences, odd head dims.
        let cases: &[(&[usize], usize, usize)] = &[
            (&[1], 1, 1),
            (&[1, 3, 0, 5], 2, 3),
            (&[7], 4, 8),
            (&[16, 2, 9], 3, 64),
            (&[33], 12, 32),
        ];
        for &(lens, nh, d) in cases {
            let h = nh * d;
            let mut cu = vec![0];
            for &l in lens {
                cu.push(cu.last().unwrap() + l);
            }
            let n = *cu.last().unwrap();
            let qkv: Vec<f32> = (0..n * 3 * h)
                .map(|i| ((i * 7919 % 997) as f32 / 498.0 - 1.0) * 1.5)
                .collect();
            let mask: Vec<f32> = (0..nh).map(|i| [1.0, 0.0, 0.5][i % 3]).collect();
            for head_mask in [None, Some(mask.as_slice())] {
                let poff = probs_offsets(&cu, nh);
                let mut ctx = vec![f32::NAN; n * h];
                let mut probs = vec![f32::NAN; *poff.last().unwrap()];
                let args = AttentionArgs {
                    qkv: &qkv,
                    cu_seqlens: &cu,
                    num_heads: nh,
                    head_dim: d,
                    head_mask,
                };
                attention(args, &mut ctx, Some(&mut probs));
                for s in 0..lens.len() {
                    let t = lens[s];
                    let (c, p) = reference::attention(
                        &qkv[cu[s] * 3 * h..cu[s + 1] * 3 * h],
                        t,
                        nh,
                        d,
                        head_mask,
                    );
                    for (a, w) in ctx[cu[s] * h..cu[s + 1] * h].iter().zip(&c) {
                        assert!(
                            (a - w).abs() < 1e-5,
                            "{lens:?} nh {nh} d {d}: ctx {a} vs {w}"
                        );
                    }
                    for (a, w) in probs[poff[s]..poff[s + 1]].iter().zip(&p) {
                        assert!((a - w).abs() < 1e-6, "{lens:?}: probs {a} vs {w}");
                    }
                }
            }
        }
    }
}
