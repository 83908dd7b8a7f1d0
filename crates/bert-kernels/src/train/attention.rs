//! Multi-head self-attention over packed sequences for training, and its backward.
//!
//! Per (sequence, head), as transformers' eager `BertSelfAttention` in `train()` mode:
//! `P = softmax(Q K^T / sqrt(D))` (saved), `Pm = dropout(P) * head_mask`, `ctx = Pm V`.
//! The backward regenerates the dropout mask from its seed, so only `P` is stored.
//!
//! Every (sequence, head) pair is an independent rayon task that writes only its own columns of
//! each output row. Each task gathers its head into zero-padded tiles and runs the small GEMMs
//! through the register-tiled microkernels of the inference attention ([`mod@crate::attention`]):
//! forward `S = Q K^T`, `ctx = Pm V`; backward `dPm = dctx V^T`, `dV = Pm^T dctx`,
//! `dQ = dS K`, `dK = dS^T Q`. The path follows [`Isa`]; [`crate::reference`]'s
//! `attention` / `attention_backward` are the spec.

use rayon::prelude::*;

use super::Dropout;
use crate::attention::{matmul, prefetch_row, probs_offsets, Path, NR, PREFETCH_ROWS};
use crate::layernorm::dot8;
use crate::team::SendPtr;
use crate::Isa;

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

    /// Checks the shapes both passes share (`what` names the caller) and returns each sequence's
    /// offset in the packed probabilities.
    fn check(&self, what: &str, isa: Isa, qkv: &[f32], probs: &[f32]) -> Vec<usize> {
        let (h, nh, cu) = (self.hidden(), self.num_heads, self.cu_seqlens);
        let n = *cu.last().unwrap_or(&0);
        assert_eq!(qkv.len(), n * 3 * h, "{what}: qkv size");
        assert!(
            cu.windows(2).all(|w| w[0] <= w[1]),
            "{what}: cu_seqlens order"
        );
        if let Some(m) = self.head_mask {
            assert_eq!(m.len(), nh, "{what}: head_mask size");
        }
        let offs = probs_offsets(cu, nh);
        assert_eq!(
            probs.len(),
            *offs.last().unwrap_or(&0),
            "{what}: probs size"
        );
        assert!(isa.is_supported(), "{what}: {isa:?} not supported");
        offs
    }

    /// `out[j] = dropout multiplier of probability element base + j (its place in the packed
    /// buffer) x head mask`.
    fn multipliers(&self, isa: Isa, out: &mut [f32], base: usize, hm: f32) {
        match self.dropout {
            Some((d, stream)) => d.multipliers(isa, out, stream, base as u64, hm),
            None => out.fill(hm),
        }
    }
}

/// Per-task tiles, reused across the tasks of one rayon worker. T4 = T rounded up to the
/// microkernel's rows, T16 / D16 = T / D rounded up to its columns; padding is zero.
#[derive(Default)]
struct Scratch {
    /// (T4, D) queries (forward) or context gradient (backward).
    a: Vec<f32>,
    /// (D, T16) keys (forward) or values (backward), transposed.
    bt: Vec<f32>,
    /// (T, D16) values (forward); queries (backward).
    b1: Vec<f32>,
    /// (T, D16) keys (backward).
    b2: Vec<f32>,
    /// (T, D16) context gradient (backward).
    b3: Vec<f32>,
    /// (T4, T16) scores / probabilities (forward), dPm (backward).
    s: Vec<f32>,
    /// (T4, T) Pm^T, then dS^T (backward).
    m1: Vec<f32>,
    /// (T4, T) dS (backward).
    m2: Vec<f32>,
    /// (T, T) Pm (backward).
    m3: Vec<f32>,
    /// (T) multipliers of one row.
    keep: Vec<f32>,
    /// (T4, D16) GEMM outputs.
    o1: Vec<f32>,
    o2: Vec<f32>,
    o3: Vec<f32>,
}

/// `v.clear(); v.resize(len, 0.0)`: a zeroed tile.
fn zeroed(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
    v.clear();
    v.resize(len, 0.0);
    v
}

/// `rows` (T, 3H) columns `col..col + d` -> `dst` rows of width `ld` (row-major, T x ld).
fn gather_rows(dst: &mut [f32], ld: usize, rows: &[f32], stride: usize, col: usize, d: usize) {
    for (j, row) in rows.chunks_exact(stride).enumerate() {
        prefetch_row(rows, stride, j + PREFETCH_ROWS, col, d);
        crate::copy::copy_floats(&mut dst[j * ld..j * ld + d], &row[col..col + d]);
    }
}

/// `rows` (T, 3H) columns `col..col + d` transposed -> `dst` (d, ld). On the AVX-512 path by
/// [`transpose`]'s 16 x 16 blocks straight from the rows (as inference's K^T), else element by
/// element.
fn gather_cols(
    path: Path,
    dst: &mut [f32],
    ld: usize,
    rows: &[f32],
    stride: usize,
    col: usize,
    d: usize,
) {
    let t = rows.len() / stride;
    assert!(
        d == 0 || (d - 1) * ld + t <= dst.len(),
        "gather_cols: dst too short"
    );
    if path == Path::Avx512 {
        for jb in (0..t - t % 16).step_by(16) {
            for j in jb + 16..(jb + 32).min(t) {
                prefetch_row(rows, stride, j, col, d);
            }
            let src = &rows[jb * stride + col..];
            transpose(path, &mut dst[jb..], ld, src, stride, (16, d));
        }
    }
    let done = if path == Path::Avx512 { t - t % 16 } else { 0 };
    for (j, row) in rows.chunks_exact(stride).enumerate().skip(done) {
        prefetch_row(rows, stride, j + PREFETCH_ROWS, col, d);
        for (k, &x) in row[col..col + d].iter().enumerate() {
            dst[k * ld + j] = x;
        }
    }
}

/// `dst[j * ldd + i] = src[i * lds + j]` for `i < rows`, `j < cols`: in 16 x 16 blocks, so that
/// the 16 rows written (or read) at a time stay in L1. Column by column, a (128, 128) transpose's
/// rows are 512 bytes apart and land in 8 of L1's 64 sets: every access missed. On the AVX-512
/// path each whole block is transposed in registers (`attention::transpose16`; element by element
/// it was 1.7% of a MiniLM f32 T2 profile, 3% of bf16's, on an Intel Xeon).
fn transpose(
    path: Path,
    dst: &mut [f32],
    ldd: usize,
    src: &[f32],
    lds: usize,
    (rows, cols): (usize, usize),
) {
    const B: usize = 16;
    assert!(
        rows == 0
            || cols == 0
            || ((rows - 1) * lds + cols <= src.len() && (cols - 1) * ldd + rows <= dst.len()),
        "transpose: out of bounds"
    );
    for i0 in (0..rows).step_by(B) {
        for j0 in (0..cols).step_by(B) {
            #[cfg(target_arch = "x86_64")]
            if path == Path::Avx512 && i0 + B <= rows && j0 + B <= cols {
                // SAFETY: the AVX-512 path runs only where the CPU has AVX-512F; rows
                // i0..i0 + 16 of src, columns j0..j0 + 16, and rows j0..j0 + 16 of dst, columns
                // i0..i0 + 16, are inside the slices (asserted above).
                unsafe {
                    crate::attention::transpose16(
                        src.as_ptr().add(i0 * lds + j0).cast(),
                        lds,
                        dst.as_mut_ptr().add(j0 * ldd + i0).cast(),
                        ldd,
                    )
                };
                continue;
            }
            for i in i0..(i0 + B).min(rows) {
                let row = &src[i * lds..];
                for j in j0..(j0 + B).min(cols) {
                    dst[j * ldd + i] = row[j];
                }
            }
        }
    }
}

/// Writes `src` rows `0..t` (width `ld`), columns `0..d`, to rows `row0..row0 + t` of the buffer
/// behind `dst` (row stride `stride`) at column `col`.
///
/// # Safety
/// The caller's task must own those columns of those rows, and they must lie inside the buffer.
unsafe fn scatter(
    dst: SendPtr<f32>,
    stride: usize,
    row0: usize,
    col: usize,
    src: &[f32],
    ld: usize,
    (t, d): (usize, usize),
) {
    for i in 0..t {
        // SAFETY: forwarded from the caller (the task owns these d floats of the row).
        let row =
            unsafe { std::slice::from_raw_parts_mut(dst.get().add((row0 + i) * stride + col), d) };
        crate::copy::copy_floats(row, &src[i * ld..i * ld + d]);
    }
}

/// `ctx (N, H)` from `qkv (N, 3H)`; `probs` receives every sequence's (NH, T_s, T_s) softmax output
/// (before dropout and head mask) at the offsets of [`probs_offsets`].
pub fn attention_forward(ctx: &mut [f32], probs: &mut [f32], qkv: &[f32], a: Heads<'_>) {
    attention_forward_with(Isa::selected(), ctx, probs, qkv, a)
}

/// [`attention_forward`] on a given instruction set (which must be supported by this CPU).
pub fn attention_forward_with(
    isa: Isa,
    ctx: &mut [f32],
    probs: &mut [f32],
    qkv: &[f32],
    a: Heads<'_>,
) {
    let h = a.hidden();
    let (nh, d) = (a.num_heads, a.head_dim);
    let cu = a.cu_seqlens;
    let offs = a.check("attention_forward", isa, qkv, probs);
    assert_eq!(ctx.len(), qkv.len() / 3, "attention_forward: ctx size");
    if d == 0 {
        ctx.fill(0.0);
        return;
    }
    let path = Path::for_isa(isa);
    let scale = 1.0 / (d as f32).sqrt();
    let (ctx_ptr, probs_ptr) = (SendPtr(ctx.as_mut_ptr()), SendPtr(probs.as_mut_ptr()));
    let nseq = cu.len().saturating_sub(1);
    (0..nseq * nh)
        .into_par_iter()
        .for_each_init(Scratch::default, |sc, task| {
            let (s, hd) = (task / nh, task % nh);
            let (r0, t) = (cu[s], cu[s + 1] - cu[s]);
            if t == 0 {
                return;
            }
            let (t4, t16, d16) = (
                t.next_multiple_of(path.mr()),
                t.next_multiple_of(NR),
                d.next_multiple_of(NR),
            );
            let rows = &qkv[r0 * 3 * h..(r0 + t) * 3 * h];
            let q = zeroed(&mut sc.a, t4 * d);
            gather_rows(q, d, rows, 3 * h, hd * d, d);
            let kt = zeroed(&mut sc.bt, d * t16);
            gather_cols(path, kt, t16, rows, 3 * h, h + hd * d, d);
            let v = zeroed(&mut sc.b1, t * d16);
            gather_rows(v, d16, rows, 3 * h, 2 * h + hd * d, d);
            let sm = zeroed(&mut sc.s, t4 * t16);
            // S (T4, T16) = Q (T4, D) K^T (D, T16)
            matmul(path, &sc.a, d, &sc.bt, t16, sm, t16, t4, t16, d);
            let keep = zeroed(&mut sc.keep, t);
            let hm = a.mask(hd);
            for i in 0..t {
                let row = &mut sm[i * t16..i * t16 + t];
                path.scaled_softmax(row, scale);
                let base = offs[s] + (hd * t + i) * t;
                // SAFETY: row i of head hd of sequence s is written by this task only, inside the
                // probs buffer whose size was asserted above.
                unsafe {
                    std::ptr::copy_nonoverlapping(row.as_ptr(), probs_ptr.get().add(base), t)
                };
                a.multipliers(isa, keep, base, hm);
                row.iter_mut().zip(keep.iter()).for_each(|(p, m)| *p *= m);
            }
            // ctx (T4, D16) = Pm (T4, T) V (T, D16); padded rows of Pm are zero.
            let o = zeroed(&mut sc.o1, t4 * d16);
            matmul(path, sm, t16, &sc.b1, d16, o, d16, t4, d16, t);
            // SAFETY: columns hd*D..(hd+1)*D of rows r0..r0+t belong to this task; ctx holds n*h.
            unsafe { scatter(ctx_ptr, h, r0, hd * d, o, d16, (t, d)) };
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
    attention_backward_with(Isa::selected(), dqkv, dctx, qkv, probs, a)
}

/// [`attention_backward`] on a given instruction set (which must be supported by this CPU).
pub fn attention_backward_with(
    isa: Isa,
    dqkv: &mut [f32],
    dctx: &[f32],
    qkv: &[f32],
    probs: &[f32],
    a: Heads<'_>,
) {
    let h = a.hidden();
    let (nh, d) = (a.num_heads, a.head_dim);
    let cu = a.cu_seqlens;
    let offs = a.check("attention_backward", isa, qkv, probs);
    assert_eq!(dqkv.len(), qkv.len(), "attention_backward: dqkv size");
    assert_eq!(dctx.len(), qkv.len() / 3, "attention_backward: dctx size");
    if d == 0 {
        dqkv.fill(0.0);
        return;
    }
    let path = Path::for_isa(isa);
    let scale = 1.0 / (d as f32).sqrt();
    let g_ptr = SendPtr(dqkv.as_mut_ptr());
    let nseq = cu.len().saturating_sub(1);
    (0..nseq * nh)
        .into_par_iter()
        .for_each_init(Scratch::default, |sc, task| {
            let (s, hd) = (task / nh, task % nh);
            let (r0, t) = (cu[s], cu[s + 1] - cu[s]);
            if t == 0 {
                return;
            }
            let (t4, t16, d16) = (
                t.next_multiple_of(path.mr()),
                t.next_multiple_of(NR),
                d.next_multiple_of(NR),
            );
            let (qo, ko, vo) = (hd * d, h + hd * d, 2 * h + hd * d);
            let rows = &qkv[r0 * 3 * h..(r0 + t) * 3 * h];
            let drows = &dctx[r0 * h..(r0 + t) * h];
            gather_rows(zeroed(&mut sc.a, t4 * d), d, drows, h, qo, d);
            gather_cols(path, zeroed(&mut sc.bt, d * t16), t16, rows, 3 * h, vo, d);
            gather_rows(zeroed(&mut sc.b1, t * d16), d16, rows, 3 * h, qo, d);
            gather_rows(zeroed(&mut sc.b2, t * d16), d16, rows, 3 * h, ko, d);
            gather_rows(zeroed(&mut sc.b3, t * d16), d16, drows, h, qo, d);
            // dPm (T4, T16) = dctx (T4, D) V^T (D, T16)
            let dpm = zeroed(&mut sc.s, t4 * t16);
            matmul(path, &sc.a, d, &sc.bt, t16, dpm, t16, t4, t16, d);
            // Pm (T, T), row by row, then Pm^T (T4, T) for dV.
            let pm = zeroed(&mut sc.m3, t * t);
            let ds = zeroed(&mut sc.m2, t4 * t);
            let keep = zeroed(&mut sc.keep, t);
            let hm = a.mask(hd);
            for i in 0..t {
                let base = offs[s] + (hd * t + i) * t;
                let p = &probs[base..base + t];
                a.multipliers(isa, keep, base, hm);
                let dp = &mut dpm[i * t16..i * t16 + t];
                let pm = &mut pm[i * t..(i + 1) * t];
                for j in 0..t {
                    pm[j] = p[j] * keep[j];
                    dp[j] *= keep[j];
                }
                // dS = P (dP - sum_j dP P) / sqrt(D)
                let rowdot = dot8(dp, p);
                for (j, x) in ds[i * t..(i + 1) * t].iter_mut().enumerate() {
                    *x = p[j] * (dp[j] - rowdot) * scale;
                }
            }
            let pmt = zeroed(&mut sc.m1, t4 * t);
            transpose(path, pmt, t, pm, t, (t, t));
            // dV (T4, D16) = Pm^T (T4, T) dctx (T, D16)
            let dv = zeroed(&mut sc.o1, t4 * d16);
            matmul(path, pmt, t, &sc.b3, d16, dv, d16, t4, d16, t);
            // dQ (T4, D16) = dS (T4, T) K (T, D16)
            let dq = zeroed(&mut sc.o2, t4 * d16);
            matmul(path, ds, t, &sc.b2, d16, dq, d16, t4, d16, t);
            // dK (T4, D16) = dS^T (T4, T) Q (T, D16); dS^T reuses the Pm^T tile.
            transpose(path, pmt, t, ds, t, (t, t));
            let dk = zeroed(&mut sc.o3, t4 * d16);
            matmul(path, pmt, t, &sc.b1, d16, dk, d16, t4, d16, t);
            // SAFETY: columns qo, ko, vo .. + D of rows r0..r0+t belong to this task (head hd of
            // sequence s); dqkv holds n * 3h, asserted above.
            unsafe {
                scatter(g_ptr, 3 * h, r0, qo, dq, d16, (t, d));
                scatter(g_ptr, 3 * h, r0, ko, dk, d16, (t, d));
                scatter(g_ptr, 3 * h, r0, vo, dv, d16, (t, d));
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
            // Longer than a 16 x 16 block of the backward's transposes, not a multiple of it.
            (vec![0, 37], 2, 5, None),
            // Whole 16 x 16 blocks of the K^T and V^T gathers (D a multiple of 16) and a partial
            // one, in two sequences.
            (vec![0, 37, 53], 2, 32, Some(vec![1.0, 0.5])),
        ] {
            let n = *cu.last().unwrap();
            let h = nh * d;
            let qkv = data(n * 3 * h, 1, 1.5);
            let a = heads(&cu, nh, d, hm.as_deref());
            let plen = *probs_offsets(&cu, nh).last().unwrap();
            for isa in Isa::supported() {
                let (mut ctx, mut p) = (vec![f32::NAN; n * h], vec![f32::NAN; plen]);
                attention_forward_with(isa, &mut ctx, &mut p, &qkv, a);
                let dctx = data(n * h, 2, 1.0);
                let mut g = vec![f32::NAN; n * 3 * h];
                attention_backward_with(isa, &mut g, &dctx, &qkv, &p, a);
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
                        assert!((x - y).abs() < 1e-4, "{isa:?} dqkv[{i}] {x} vs {y}");
                    }
                }
            }
        }
    }

    #[test]
    fn dropout_paths_agree_and_repeat_bit_for_bit() {
        let cu = [0usize, 3, 20, 20, 37];
        let (nh, d) = (3, 5);
        let (h, n) = (nh * d, 37);
        let hm = [0.5f32, 1.0, 0.0];
        let mut a = heads(&cu, nh, d, Some(&hm));
        a.dropout = Some((Dropout { p: 0.2, seed: 4 }, 11));
        let qkv = data(n * 3 * h, 7, 1.0);
        let dctx = data(n * h, 8, 1.0);
        let plen = *probs_offsets(&cu, nh).last().unwrap();
        let run = |isa: Isa| {
            let (mut ctx, mut p) = (vec![0.0; n * h], vec![0.0; plen]);
            attention_forward_with(isa, &mut ctx, &mut p, &qkv, a);
            let mut g = vec![0.0; n * 3 * h];
            attention_backward_with(isa, &mut g, &dctx, &qkv, &p, a);
            (ctx, p, g)
        };
        let base = run(Isa::Scalar);
        for isa in Isa::supported() {
            let (ctx, p, g) = run(isa);
            let again = run(isa);
            assert!(
                ctx == again.0 && p == again.1 && g == again.2,
                "{isa:?} not reproducible"
            );
            for (x, y) in ctx
                .iter()
                .chain(&p)
                .chain(&g)
                .zip(base.0.iter().chain(&base.1).chain(&base.2))
            {
                assert!((x - y).abs() < 1e-4, "{isa:?}: {x} vs scalar {y}");
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
