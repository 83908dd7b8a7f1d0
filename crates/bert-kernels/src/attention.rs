//! Multi-head self-attention over a ragged batch of packed sequences: no work on padding.
//!
//! Tokens of all sequences are packed into one (N, 3H) matrix of fused Q|K|V projections; sequence
//! `s` owns rows `cu_seqlens[s]..cu_seqlens[s + 1]`. Every (sequence, head) pair is an independent
//! task, computed as transformers' eager `BertSelfAttention` does for an unpadded sequence:
//! `P = softmax(Q K^T / sqrt(D)) * head_mask`, `context = P V`.
//!
//! Each task gathers its head into contiguous, zero-padded tiles and runs two small GEMMs
//! (`S = Q K^T`, then `O = P V`) through a register-tiled microkernel (8x16 on AVX-512F, 4x16 on
//! AVX2 + FMA and in portable Rust), with a vectorized softmax in between. The path follows
//! [`Isa`]; every path computes the same thing, and [`crate::reference::attention`] is the spec
//! they are tested against.

use std::cell::RefCell;

use crate::softmax::softmax_row;
use crate::team::SendPtr;
use crate::Isa;

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
    /// Lets a sequence's two products run in bf16 where that is faster ([`uses_bf16`]): on AMX
    /// tiles (`tdpbf16ps`) when the CPU has AMX-BF16, the AVX-512 path is selected and the
    /// sequence has more than [`AMX_MIN_TOKENS`] tokens; with `vdpbf16ps` when the CPU has
    /// AVX512-BF16 without AMX (AMD Zen 4 and 5) and the sequence has more than
    /// [`DP_MIN_TOKENS`]. There, as
    /// `torch.autocast("cpu", dtype=torch.bfloat16)` runs them: Q, K and V rounded to bf16 before
    /// `Q K^T`, the probabilities (after `head_mask`) before `P V`, f32 sums; the scores, the
    /// softmax and the returned probabilities stay f32 ([`crate::reference::attention_bf16`]).
    /// Elsewhere the products stay f32 (more exact, and there no slower than rounding would be).
    pub allow_bf16: bool,
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

/// Per-task scratch tiles, reused across the tasks one thread runs (and across calls).
#[derive(Default)]
struct Scratch {
    /// (T4, D) queries, rows >= T zero.
    q: Vec<f32>,
    /// (D, T16) keys transposed, columns >= T zero.
    kt: Vec<f32>,
    /// (T, D16) values, columns >= D zero.
    v: Vec<f32>,
    /// (T4, T16) scores, then probabilities.
    s: Vec<f32>,
    /// (T4, D16) context.
    o: Vec<f32>,
    /// AMX bf16 (T32, D32: T and D rounded up to 32): (T32, D32/2) query pairs, columns >= D/2
    /// zero.
    qb: Vec<u32>,
    /// AMX bf16: (D32/2, T32) key pairs transposed, rows >= D/2 zero.
    ktb: Vec<u32>,
    /// AMX bf16: (T32/2, D32) value pair rows (tokens 2r and 2r + 1), rows past the last token
    /// zero.
    vb: Vec<u32>,
    /// AMX bf16: (T32, T32/2) probability pairs, columns >= T/2 zero.
    pb: Vec<u32>,
    /// AMX bf16: (T32, D32/2) key pairs, as gathered (columns >= D/2 zero).
    kp: Vec<u32>,
    /// AVX-512 f32: (16, D) keys of a sequence's last partial block of 16 tokens, rows past its
    /// last token zero, for the 16 x 16 transposes into `kt`.
    kr: Vec<f32>,
}

/// Computes the attention context `ctx` (N, H) and, when `probs` is given, stores every sequence's
/// probabilities (NH, T_s, T_s) at the offsets of [`probs_offsets`].
pub fn attention(args: AttentionArgs<'_>, ctx: &mut [f32], probs: Option<&mut [f32]>) {
    attention_with(Isa::selected(), args, ctx, probs)
}

/// The code paths of the attention kernels: AVX-512F or AVX2 + FMA intrinsics, or portable Rust.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Path {
    Portable,
    Avx2,
    Avx512,
}

impl Path {
    /// Rows of the microkernel's register tile; `Q` and `P` are padded to a multiple of it.
    pub(crate) fn mr(self) -> usize {
        match self {
            Path::Avx512 => 8,
            _ => 4,
        }
    }

    /// The path [`attention_with`] takes for `isa` (which must be supported by this CPU).
    pub(crate) fn for_isa(isa: Isa) -> Path {
        match isa {
            Isa::Avx512 if Isa::Avx512.is_supported() && Isa::Avx2.is_supported() => Path::Avx512,
            Isa::Avx2 | Isa::Avx512 if Isa::Avx2.is_supported() => Path::Avx2,
            _ => Path::Portable,
        }
    }

    /// `row = softmax(row * scale)` as [`head`] computes it on this path.
    pub(crate) fn scaled_softmax(self, row: &mut [f32], scale: f32) {
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Path::for_isa` / `attention_with` pick this path only with AVX2 + FMA.
            Path::Avx2 => unsafe { avx2::scaled_softmax(row, scale) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Path::for_isa` / `attention_with` pick this path only with AVX-512F.
            Path::Avx512 => unsafe { avx512::scaled_softmax(row, scale) },
            _ => {
                row.iter_mut().for_each(|x| *x *= scale);
                softmax_row(row);
            }
        }
    }
}

/// Columns of every microkernel's register tile; `K^T` and `V` are padded to a multiple of it.
pub(crate) const NR: usize = 16;

/// [`attention`] on a given instruction set (which must be supported by this CPU).
pub fn attention_with(
    isa: Isa,
    args: AttentionArgs<'_>,
    ctx: &mut [f32],
    probs: Option<&mut [f32]>,
) {
    let AttentionArgs {
        qkv,
        cu_seqlens,
        num_heads: nh,
        head_dim: d,
        head_mask,
        allow_bf16,
    } = args;
    assert!(d > 0, "attention: head_dim must be positive");
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
    assert!(
        isa.is_supported(),
        "attention: {isa:?} is not supported by this CPU"
    );
    let path = Path::for_isa(isa);
    let bf16 = if allow_bf16 {
        Bf16Products::on(isa)
    } else {
        None
    };
    let poff = probs_offsets(cu_seqlens, nh);
    let probs_ptr = probs.map(|p| {
        assert_eq!(p.len(), *poff.last().unwrap(), "attention: probs size");
        SendPtr(p.as_mut_ptr())
    });
    let ctx_ptr = SendPtr(ctx.as_mut_ptr());
    let nseq = cu_seqlens.len() - 1;
    let one = |sc: &mut Scratch, task: usize| {
        let (s, hd) = (task / nh, task % nh);
        let (start, t) = (cu_seqlens[s], cu_seqlens[s + 1] - cu_seqlens[s]);
        if t == 0 {
            return;
        }
        let hm = head_mask.map_or(1.0, |m| m[hd]);
        let rows = &qkv[start * 3 * h..(start + t) * 3 * h];
        let products = bf16.filter(|p| t > p.min_tokens());
        if let Some(products) = products {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Bf16Products::on` returns a kind only where its instructions and AVX-512
            // (with BW and AVX512-BF16) are usable; columns hd*D..(hd+1)*D of token rows
            // start..start+t belong to this task alone and are inside ctx (asserted n * h above).
            unsafe {
                head_bf16(
                    products,
                    sc,
                    rows,
                    (t, h, hd, d),
                    hm,
                    probs_ptr.is_some(),
                    ctx_ptr.get().add(start * h + hd * d),
                )
            };
            #[cfg(not(target_arch = "x86_64"))]
            let _ = products;
        } else {
            // SAFETY: as head_bf16's above: this head's columns of token rows start..start + t.
            unsafe {
                let ctx = ctx_ptr.get().add(start * h + hd * d);
                head(path, sc, rows, (t, h, hd, d), hm, ctx)
            };
        }
        if let Some(pp) = probs_ptr {
            // The probabilities' row stride in `sc.s`: T padded to a block (bf16) or a tile.
            let stride = t.next_multiple_of(if products.is_some() { 32 } else { NR });
            for i in 0..t {
                let off = poff[s] + (hd * t + i) * t;
                // SAFETY: rows of head hd of sequence s are written by this task only, inside the
                // probs buffer whose size was asserted above.
                unsafe {
                    std::ptr::copy_nonoverlapping(sc.s[i * stride..].as_ptr(), pp.get().add(off), t)
                };
            }
        }
    };
    crate::team::for_each(nseq * nh, |task| {
        // A thread's scratch is kept across calls (fresh ones per call were a malloc and free of
        // five buffers per thread and layer); a re-entered thread gets fresh ones.
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut sc) => one(&mut sc, task),
            Err(_) => one(&mut Scratch::default(), task),
        })
    });
}

thread_local! {
    /// Each thread's [`Scratch`], reused across calls.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// One (sequence, head): fills `sc.s` (rows < T: probabilities, columns < T) and writes the context
/// (T, D) to `ctx`, rows `h` apart. `rows` is the sequence's (T, 3H) slice of qkv.
///
/// # Safety
/// `ctx` is valid for writes of T rows of D floats, H apart, that no one else reads or writes
/// meanwhile.
unsafe fn head(
    path: Path,
    sc: &mut Scratch,
    rows: &[f32],
    (t, h, hd, d): (usize, usize, usize, usize),
    head_mask: f32,
    ctx: *mut f32,
) {
    // t4: rows padded to the tile height (4 or 8), t16 / d16: columns padded to NR.
    let (t4, t16, d16) = (
        t.next_multiple_of(path.mr()),
        t.next_multiple_of(NR),
        d.next_multiple_of(NR),
    );
    let scale = 1.0 / (d as f32).sqrt();
    let (q, kt, v, kr) = (&mut sc.q, &mut sc.kt, &mut sc.v, &mut sc.kr);
    q.clear();
    q.resize(t4 * d, 0.0);
    v.clear();
    v.resize(t * d16, 0.0);
    // K^T: AVX-512 transposes 16 x 16 blocks straight from the rows (the last partial block
    // through `kr`, zero-padded), where the other paths store each key element on its own (D
    // stores a row, T16 floats apart).
    let blocked = path == Path::Avx512 && d.is_multiple_of(16);
    // The transposes write every element; the scalar stores only the real columns.
    if !blocked {
        kt.clear();
    }
    kt.resize(d * t16, 0.0);
    for (j, row) in rows.chunks_exact(3 * h).enumerate() {
        prefetch_head_row(rows, j + PREFETCH_ROWS, h, hd, d);
        crate::copy::copy_floats(&mut q[j * d..(j + 1) * d], &row[hd * d..(hd + 1) * d]);
        if !blocked {
            for (k, &x) in row[h + hd * d..h + (hd + 1) * d].iter().enumerate() {
                kt[k * t16 + j] = x;
            }
        }
        crate::copy::copy_floats(
            &mut v[j * d16..j * d16 + d],
            &row[2 * h + hd * d..2 * h + (hd + 1) * d],
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (blocked, kr);
    #[cfg(target_arch = "x86_64")]
    if blocked {
        let whole = t - t % 16;
        if whole < t {
            kr.resize(16 * d, 0.0);
            for (j, dst) in kr.chunks_exact_mut(d).enumerate() {
                match rows.get((whole + j) * 3 * h..(whole + j + 1) * 3 * h) {
                    Some(row) => dst.copy_from_slice(&row[h + hd * d..h + (hd + 1) * d]),
                    None => dst.fill(0.0),
                }
            }
        }
        for jb in (0..t16).step_by(16) {
            let (src, lds) = match jb < whole {
                true => (rows[jb * 3 * h + h + hd * d..].as_ptr(), 3 * h),
                false => (kr.as_ptr(), d),
            };
            for c in (0..d).step_by(16) {
                // SAFETY: the AVX-512 path runs only where the CPU has AVX-512F; the 16 rows of
                // 16 floats read are keys of rows jb..jb + 16 <= T (lds = 3H apart) or of kr
                // ((16, D)), columns c..c + 16 <= D; those written are in kt ((D, T16)) at
                // (c, jb): T16 and D are multiples of 16.
                unsafe {
                    avx512::transpose16(
                        src.add(c).cast(),
                        lds,
                        kt.as_mut_ptr().add(c * t16 + jb).cast(),
                        t16,
                    )
                };
            }
        }
    }
    sc.s.resize(t4 * t16, 0.0);
    sc.o.resize(t4 * d16, 0.0);
    // S (T4, T16) = Q (T4, D) K^T (D, T16)
    matmul(path, q, d, kt, t16, &mut sc.s, t16, t4, t16, d);
    for i in 0..t {
        let row = &mut sc.s[i * t16..i * t16 + t];
        match path {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `attention_with` takes this path only when the CPU supports AVX2 + FMA.
            Path::Avx2 => unsafe { avx2::scaled_softmax(row, scale) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `attention_with` takes this path only when the CPU supports AVX-512F.
            Path::Avx512 => unsafe { avx512::scaled_softmax(row, scale) },
            _ => {
                row.iter_mut().for_each(|x| *x *= scale);
                softmax_row(row);
            }
        }
        if head_mask != 1.0 {
            row.iter_mut().for_each(|p| *p *= head_mask);
        }
    }
    // O (T4, D16) = P (T4, T) V (T, D16); rows >= T of P hold scores of zero queries, never read.
    // The whole row tiles go straight into ctx when D is a multiple of 16, the rest through `sc.o`
    // (all of O was stored there, then copied row by row: 3% of MiniLM's int8 W2F on the VNNI
    // path).
    let whole = if d == d16 {
        t / path.mr() * path.mr()
    } else {
        0
    };
    // SAFETY: rows 0..whole < T of ctx, D = D16 columns each (the caller's contract).
    matmul_into(path, &sc.s, t16, v, d16, ctx, h, whole, d16, t);
    let o = &mut sc.o;
    matmul(
        path,
        &sc.s[whole * t16..],
        t16,
        v,
        d16,
        o,
        d16,
        t4 - whole,
        d16,
        t,
    );
    for i in whole..t {
        // SAFETY: row i < T of ctx, D floats (the caller's contract).
        let dst = std::slice::from_raw_parts_mut(ctx.add(i * h), d);
        crate::copy::copy_floats(dst, &o[(i - whole) * d16..][..d]);
    }
}

/// Sequences up to this many tokens keep f32 attention under [`AttentionArgs::allow_bf16`] on AMX:
/// there the AMX path's padding to 32 and tile set-up cost more than its products save (MiniLM and
/// bert-base heads, `cargo bench --bench attention`, Intel Xeon with AMX, both softmaxes masked:
/// 0.80-0.94x f32's speed at 8 tokens, 0.74-1.07x at 16, 1.24-1.75x at 20 and 24).
pub const AMX_MIN_TOKENS: usize = 16;

/// As [`AMX_MIN_TOKENS`] for the `vdpbf16ps` products (AVX512-BF16 without AMX): up to here the
/// conversions to pairs cost what the products save (Zen 4, `cargo bench --bench attention`,
/// MiniLM / bert-base heads: 0.91x / 0.87x f32's speed at 8 tokens, 0.99x at 16, 1.18-1.27x at
/// 24-48; docs/quantization.md, "Attention in bf16").
pub const DP_MIN_TOKENS: usize = 16;

/// Which instructions run attention's bf16 products where [`AttentionArgs::allow_bf16`] is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bf16Products {
    /// AMX tiles, `tdpbf16ps` ([`crate::linear::amx::bf16_block`]).
    Amx,
    /// AVX-512 register tiles, `vdpbf16ps` ([`avx512::dp_rows`]).
    Dp,
}

impl Bf16Products {
    /// The kind `isa` runs on this CPU: on the AVX-512 path, AMX-BF16 (with `BERT_KERNELS_AMX`
    /// not `0`), else AVX512-BF16 (with AVX-512 BW, which the pair conversions use); `None`
    /// elsewhere (f32 products).
    fn on(isa: Isa) -> Option<Bf16Products> {
        #[cfg(target_arch = "x86_64")]
        if Path::for_isa(isa) == Path::Avx512 {
            if crate::linear::amx::bf16_available() {
                return Some(Bf16Products::Amx);
            }
            if crate::isa::has_avx512_bf16() && is_x86_feature_detected!("avx512bw") {
                return Some(Bf16Products::Dp);
            }
        }
        let _ = isa;
        None
    }

    /// Sequences of up to this many tokens keep f32 products.
    fn min_tokens(self) -> usize {
        match self {
            Bf16Products::Amx => AMX_MIN_TOKENS,
            Bf16Products::Dp => DP_MIN_TOKENS,
        }
    }
}

/// Whether [`attention_with`] on `isa` runs a sequence of `t` tokens with bf16 products when
/// [`AttentionArgs::allow_bf16`] is set: the AVX-512 path on a CPU with AMX-BF16 (and
/// `BERT_KERNELS_AMX` not `0`) and `t > AMX_MIN_TOKENS`, or with AVX512-BF16 and no AMX and
/// `t > DP_MIN_TOKENS`.
pub fn uses_bf16(isa: Isa, t: usize) -> bool {
    Bf16Products::on(isa).is_some_and(|p| t > p.min_tokens())
}

/// [`head`] with bf16 products, on AMX tiles (`tdpbf16ps`, [`crate::linear::amx::bf16_block`])
/// or AVX-512 registers (`vdpbf16ps`, [`avx512::dp_rows`]: the same sums of the same buffers),
/// writing the context straight into `ctx` (token rows `h` floats apart, this head's D columns)
/// and, when `keep_probs`, the probabilities into `sc.s` (T32 rows) as [`head`] does. Q, K and V
/// are gathered as bf16 pairs in the tiles' layouts (K through 16 x 16 transposes), the scores
/// come back f32 for an f32 softmax that writes its probabilities as pairs for `P V`. Rows and
/// columns are padded to the 32 of a block. Scratch values left from earlier tasks stay only where
/// they reach rows or columns that are dropped (query rows >= T, key columns >= T of the scores,
/// context columns >= D); every padding that enters a sum is zeroed.
///
/// # Safety
/// [`Bf16Products::on`] returned `products` (so the CPU has AVX-512F/BW, AVX512-BF16, and AMX-BF16
/// for `Amx`); `ctx` is writable at `i * h + 0..d` for `i < t`, by this call alone.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn head_bf16(
    products: Bf16Products,
    sc: &mut Scratch,
    rows: &[f32],
    (t, h, hd, d): (usize, usize, usize, usize),
    head_mask: f32,
    keep_probs: bool,
    ctx: *mut f32,
) {
    use crate::bf16::{interleave_into, pairs_row_into};
    // t32 / d32: rows and columns padded to a block's 32, which also pads the K dimensions (keys,
    // head dim) to a tile's 32 bf16; tp / dp: those in pairs; th / dh: the pairs holding T / D.
    let (t32, d32) = (t.next_multiple_of(32), d.next_multiple_of(32));
    let (tp, dp) = (t32 / 2, d32 / 2);
    let (th, dh) = (t.div_ceil(2), d.div_ceil(2));
    let scale = 1.0 / (d as f32).sqrt();
    sc.qb.resize(t32 * dp, 0);
    sc.kp.resize(t32 * dp, 0);
    sc.ktb.resize(dp * t32, 0);
    sc.vb.resize(tp * d32, 0);
    sc.pb.resize(t32 * tp, 0);
    sc.s.resize(t32 * t32, 0.0);
    sc.o.resize(32 * d32, 0.0);
    let (q, k, v) = (hd * d, h + hd * d, 2 * h + hd * d);
    let row = |j: usize| &rows[j * 3 * h..(j + 1) * 3 * h];
    for j in 0..t {
        prefetch_head_row(rows, j + PREFETCH_ROWS, h, hd, d);
        let r = row(j);
        for (buf, col) in [(&mut sc.qb, q), (&mut sc.kp, k)] {
            let dst = &mut buf[j * dp..(j + 1) * dp];
            pairs_row_into(&r[col..col + d], &mut dst[..dh]);
            dst[dh..].fill(0);
        }
        if j % 2 == 1 || j + 1 == t {
            let lo = &row(j - j % 2)[v..v + d];
            let hi = (j % 2 == 1).then(|| &r[v..v + d]);
            let jp = j / 2;
            interleave_into(lo, hi, &mut sc.vb[jp * d32..jp * d32 + d]);
        }
    }
    sc.vb[th * d32..].fill(0);
    // K^T in pairs: (T32, dp) -> (dp, T32), 16 x 16 lanes at a time.
    for jb in (0..t32).step_by(16) {
        for c in (0..dp).step_by(16) {
            // SAFETY: 16 rows of 16 lanes at (jb, c) of kp ((T32, dp)) and at (c, jb) of ktb
            // ((dp, T32)): both in bounds, as t32 and dp are multiples of 16.
            avx512::transpose16(
                sc.kp.as_ptr().add(jb * dp + c),
                dp,
                sc.ktb.as_mut_ptr().add(c * t32 + jb),
                t32,
            );
        }
    }
    if products == Bf16Products::Amx {
        crate::linear::amx::configure();
    }
    // The products by blocks of `rb` query rows: AMX's 32 x 32 blocks over the 32-padded
    // buffers; `vdpbf16ps`'s 8-row register tiles over only the rows, columns (to 16) and pairs
    // that hold values (padding T to 32 made 33 to 48 tokens slower than f32; the pairs past
    // the values are zero, so leaving them out changes no sum).
    let rb = match products {
        Bf16Products::Amx => 32,
        Bf16Products::Dp => avx512::DP_ROWS,
    };
    // C (rb, cols) = A (rb, pairs) B (pairs, cols): A rows `lda` pairs apart, B pair rows `ldb`
    // apart, C rows `ldc` floats apart; `cols` a multiple of 32 (AMX) or 16.
    let product = |a: *const u32, lda, b: *const u32, ldb, pairs: usize, c: *mut f32, ldc, cols| {
        match products {
            Bf16Products::Amx => {
                for cb in (0..cols).step_by(32) {
                    crate::linear::amx::bf16_block(
                        a.cast(),
                        lda * 4,
                        b.add(cb).cast(),
                        ldb * 4,
                        pairs / 16,
                        c.add(cb).cast(),
                        ldc * 4,
                    );
                }
            }
            Bf16Products::Dp => avx512::dp_rows(a, lda, b, ldb, pairs, c, ldc, cols),
        }
    };
    let tb = t.next_multiple_of(rb);
    // S (TB, T32) = Q K^T; AMX: all T32 columns and dp pairs, vdpbf16ps: T16 and dh.
    let (s_cols, q_pairs) = match products {
        Bf16Products::Amx => (t32, dp),
        Bf16Products::Dp => (t.next_multiple_of(16), dh),
    };
    for ib in (0..tb).step_by(rb) {
        // SAFETY: A is rows ib..ib + rb <= T32 of qb (dp pairs each, q_pairs <= dp read), B pair
        // rows 0..q_pairs of ktb ((dp, T32)), columns < s_cols <= T32; C rows ib..ib + rb of s
        // ((T32, T32)): all inside the buffers sized above; the caller vouches for the
        // instructions.
        product(
            sc.qb.as_ptr().add(ib * dp),
            dp,
            sc.ktb.as_ptr(),
            t32,
            q_pairs,
            sc.s.as_mut_ptr().add(ib * t32),
            t32,
            s_cols,
        );
    }
    for i in 0..t {
        avx512::softmax_pairs(
            &mut sc.s[i * t32..(i + 1) * t32],
            t,
            scale,
            head_mask,
            keep_probs,
            &mut sc.pb[i * tp..(i + 1) * tp],
        );
    }
    // O (TB, D32) = P V, rb query rows at a time: whole blocks stored into ctx when D is their
    // width, others through `sc.o` (rows >= T of P are stale and dropped there).
    let (o_cols, p_pairs) = match products {
        Bf16Products::Amx => (d32, tp),
        Bf16Products::Dp => (d.next_multiple_of(16), th),
    };
    for ib in (0..tb).step_by(rb) {
        let direct = ib + rb <= t && d == o_cols;
        let (out, ldo) = if direct {
            (ctx.add(ib * h), h)
        } else {
            (sc.o.as_mut_ptr(), d32)
        };
        // SAFETY: A is rows ib..ib + rb of pb (tp pairs each, p_pairs <= tp read), B pair rows
        // 0..p_pairs and columns < o_cols <= D32 of vb; C rb rows of o_cols floats of `out`:
        // rows ib..ib + rb <= t of ctx, columns < d (direct), or of o ((32, d32)).
        product(
            sc.pb.as_ptr().add(ib * tp),
            tp,
            sc.vb.as_ptr(),
            d32,
            p_pairs,
            out,
            ldo,
            o_cols,
        );
        if !direct {
            for i in 0..rb.min(t - ib) {
                // SAFETY: row ib + i < T of this head's columns of ctx, D floats (the contract).
                let dst = std::slice::from_raw_parts_mut(ctx.add((ib + i) * h), d);
                crate::copy::copy_floats(dst, &sc.o[i * d32..][..d]);
            }
        }
    }
}

/// Rows ahead of a head's gather that it prefetches (here and in training's attention).
pub(crate) const PREFETCH_ROWS: usize = 8;

/// Prefetches columns `col..col + d` of row `j` of `rows` (rows `stride` floats apart), if there
/// is one. A head's gather reads 4 x D bytes of each row with a stride of 12 H bytes (4.6 KB for
/// MiniLM), which the hardware prefetchers do not follow, so each row was a cache miss waited for
/// (the gather's copies were 11% of a MiniLM int8 W2F forward on an Intel Xeon).
#[inline(always)]
pub(crate) fn prefetch_row(rows: &[f32], stride: usize, j: usize, col: usize, d: usize) {
    if let Some(row) = rows.get(j * stride + col..j * stride + col + d) {
        crate::isa::prefetch(row);
    }
}

/// [`prefetch_row`] of head `hd`'s Q, K and V columns of token row `j` of `rows` ((T, 3H)).
#[inline(always)]
fn prefetch_head_row(rows: &[f32], j: usize, h: usize, hd: usize, d: usize) {
    for part in 0..3 {
        prefetch_row(rows, 3 * h, j, part * h + hd * d, d);
    }
}

/// `c (m, n) = a (m, k) b (k, n)`, all row-major with leading dimensions `lda`, `ldb`, `ldc`;
/// `m` a multiple of `path.mr()` and `n` of `NR`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    path: Path,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
    m: usize,
    n: usize,
    k: usize,
) {
    assert!(
        m == 0 || (m - 1) * ldc + n <= c.len(),
        "matmul: c too short"
    );
    // SAFETY: c holds the (m, n) block, rows ldc apart (asserted), and is borrowed mutably.
    unsafe { matmul_into(path, a, lda, b, ldb, c.as_mut_ptr(), ldc, m, n, k) }
}

/// [`matmul`] into `c` by pointer: a head's context straight into its columns of the shared
/// output, whose other columns other tasks write.
///
/// # Safety
/// `c` is valid for writes of `m` rows of `n` floats, `ldc` apart, that no one else reads or
/// writes meanwhile.
#[allow(clippy::too_many_arguments)]
unsafe fn matmul_into(
    path: Path,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    m: usize,
    n: usize,
    k: usize,
) {
    let mr = path.mr();
    assert!(
        m.is_multiple_of(mr) && n.is_multiple_of(NR),
        "matmul: {m} x {n} is not a whole number of {mr} x {NR} tiles"
    );
    assert!(
        m == 0 || (m - 1) * lda + k <= a.len(),
        "matmul: a too short"
    );
    assert!(
        k == 0 || (k - 1) * ldb + n <= b.len(),
        "matmul: b too short"
    );
    for i in (0..m).step_by(mr) {
        let mut j = 0;
        #[cfg(target_arch = "x86_64")]
        if path == Path::Avx512 {
            // Two column tiles at once: 10 loads feed 16 FMAs (8x16 tiles: 9 loads, 8 FMAs, which
            // left the load ports, not the FMA units, the bound).
            while j + 2 * NR <= n {
                // SAFETY: AVX-512F checked by `attention_with`; the asserts above keep the 8x32
                // tile of c, its 8 rows of a (k wide) and its k rows of b (32 wide) in bounds.
                unsafe {
                    avx512::tile_8x32(
                        a.as_ptr().add(i * lda),
                        lda,
                        b.as_ptr().add(j),
                        ldb,
                        c.add(i * ldc + j),
                        ldc,
                        k,
                    )
                };
                j += 2 * NR;
            }
        }
        for j in (j..n).step_by(NR) {
            match path {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX-512F checked by `attention_with`; the asserts above keep every
                // 8x16 tile of c, its 8 rows of a (k wide) and its k rows of b (16 wide) in bounds.
                Path::Avx512 => unsafe {
                    avx512::tile_8x16(
                        a.as_ptr().add(i * lda),
                        lda,
                        b.as_ptr().add(j),
                        ldb,
                        c.add(i * ldc + j),
                        ldc,
                        k,
                    )
                },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX2/FMA checked by `attention_with`; the asserts above keep every
                // 4x16 tile of c, its 4 rows of a (k wide) and its k rows of b (16 wide) in bounds.
                Path::Avx2 => unsafe {
                    avx2::tile_4x16(
                        a.as_ptr().add(i * lda),
                        lda,
                        b.as_ptr().add(j),
                        ldb,
                        c.add(i * ldc + j),
                        ldc,
                        k,
                    )
                },
                // SAFETY: the caller's contract for c; a and b asserted above.
                _ => tile_4x16(&a[i * lda..], lda, &b[j..], ldb, c.add(i * ldc + j), ldc, k),
            }
        }
    }
}

/// Portable 4x16 tile: `c[r][x] = sum_p a[r][p] * b[p][x]`.
///
/// # Safety
/// `c` is valid for writes of 4 rows of 16 floats, `ldc` apart.
unsafe fn tile_4x16(
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    k: usize,
) {
    let mut acc = [[0.0f32; 16]; 4];
    for p in 0..k {
        let brow = &b[p * ldb..p * ldb + 16];
        for (r, acc_r) in acc.iter_mut().enumerate() {
            let av = a[r * lda + p];
            for (x, &bv) in acc_r.iter_mut().zip(brow) {
                *x += av * bv;
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        std::ptr::copy_nonoverlapping(acc_r.as_ptr(), c.add(r * ldc), 16);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use crate::vexp::avx2::exp2;

    /// AVX2 4x16 tile of `c = a b` (see `super::tile_4x16`).
    ///
    /// # Safety
    /// AVX2 and FMA must be available; `a` must be readable at `r * lda + p`, `b` at
    /// `p * ldb + 0..16` and `c` writable at `r * ldc + 0..16` for r < 4, p < k.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn tile_4x16(
        a: *const f32,
        lda: usize,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
        k: usize,
    ) {
        let mut c00 = _mm256_setzero_ps();
        let mut c01 = _mm256_setzero_ps();
        let mut c10 = _mm256_setzero_ps();
        let mut c11 = _mm256_setzero_ps();
        let mut c20 = _mm256_setzero_ps();
        let mut c21 = _mm256_setzero_ps();
        let mut c30 = _mm256_setzero_ps();
        let mut c31 = _mm256_setzero_ps();
        for p in 0..k {
            let b0 = _mm256_loadu_ps(b.add(p * ldb));
            let b1 = _mm256_loadu_ps(b.add(p * ldb + 8));
            let a0 = _mm256_broadcast_ss(&*a.add(p));
            c00 = _mm256_fmadd_ps(a0, b0, c00);
            c01 = _mm256_fmadd_ps(a0, b1, c01);
            let a1 = _mm256_broadcast_ss(&*a.add(lda + p));
            c10 = _mm256_fmadd_ps(a1, b0, c10);
            c11 = _mm256_fmadd_ps(a1, b1, c11);
            let a2 = _mm256_broadcast_ss(&*a.add(2 * lda + p));
            c20 = _mm256_fmadd_ps(a2, b0, c20);
            c21 = _mm256_fmadd_ps(a2, b1, c21);
            let a3 = _mm256_broadcast_ss(&*a.add(3 * lda + p));
            c30 = _mm256_fmadd_ps(a3, b0, c30);
            c31 = _mm256_fmadd_ps(a3, b1, c31);
        }
        _mm256_storeu_ps(c, c00);
        _mm256_storeu_ps(c.add(8), c01);
        _mm256_storeu_ps(c.add(ldc), c10);
        _mm256_storeu_ps(c.add(ldc + 8), c11);
        _mm256_storeu_ps(c.add(2 * ldc), c20);
        _mm256_storeu_ps(c.add(2 * ldc + 8), c21);
        _mm256_storeu_ps(c.add(3 * ldc), c30);
        _mm256_storeu_ps(c.add(3 * ldc + 8), c31);
    }

    /// `row = softmax(row * scale)`, 8 lanes at a time, as the AVX-512 one: the maximum taken
    /// before scaling, `e^(x scale - max scale)` as `2^(x c - max c)` ([`exp2`]). The last partial
    /// vector is loaded once, masked, kept in a register through the passes and stored once (a
    /// scalar `exp` per leftover score made lengths short of a multiple of 8 slower than the next
    /// multiple; `vmaskmovps` stores are microcoded on AMD before Zen 4, hence one per row).
    ///
    /// # Safety
    /// AVX2 and FMA must be available.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn scaled_softmax(row: &mut [f32], scale: f32) {
        let n = row.len();
        let whole = n - n % 8;
        let p = row.as_mut_ptr();
        // All ones in the lanes of the partial vector that are in the row.
        let in_row = _mm256_cmpgt_epi32(
            _mm256_set1_epi32((n - whole) as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        );
        let in_row_ps = _mm256_castsi256_ps(in_row);
        let neg_inf = _mm256_set1_ps(f32::NEG_INFINITY);
        let mut vmax = neg_inf;
        for i in (0..whole).step_by(8) {
            vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(p.add(i)));
        }
        // The partial vector's scores, -inf past the row.
        let mut tail = neg_inf;
        if whole < n {
            tail = _mm256_blendv_ps(neg_inf, _mm256_maskload_ps(p.add(whole), in_row), in_row_ps);
            vmax = _mm256_max_ps(vmax, tail);
        }
        let c = scale * std::f32::consts::LOG2_E;
        let (vc, vmc) = (_mm256_set1_ps(c), _mm256_set1_ps(hmax(vmax) * c));
        let mut vsum = _mm256_setzero_ps();
        for i in (0..whole).step_by(8) {
            let e = exp2(_mm256_fmsub_ps(_mm256_loadu_ps(p.add(i)), vc, vmc));
            _mm256_storeu_ps(p.add(i), e);
            vsum = _mm256_add_ps(vsum, e);
        }
        if whole < n {
            // `exp2` clamps -inf to 2^-126: zeroed past the row.
            tail = _mm256_and_ps(exp2(_mm256_fmsub_ps(tail, vc, vmc)), in_row_ps);
            vsum = _mm256_add_ps(vsum, tail);
        }
        let vinv = _mm256_set1_ps(1.0 / hsum(vsum));
        for i in (0..whole).step_by(8) {
            _mm256_storeu_ps(p.add(i), _mm256_mul_ps(_mm256_loadu_ps(p.add(i)), vinv));
        }
        if whole < n {
            _mm256_maskstore_ps(p.add(whole), in_row, _mm256_mul_ps(tail, vinv));
        }
    }

    #[target_feature(enable = "avx2,fma")]
    fn hmax(v: __m256) -> f32 {
        let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
        _mm_cvtss_f32(m)
    }

    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }
}

/// The 16 x 16 register transpose of the K^T gather, for training's attention too.
#[cfg(target_arch = "x86_64")]
pub(crate) use avx512::transpose16;

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use crate::vexp::avx512::exp2;

    /// AVX-512 8x16 tile of `c = a b` (see `super::tile_4x16`): 8 independent accumulators.
    ///
    /// # Safety
    /// AVX-512F must be available; `a` must be readable at `r * lda + p`, `b` at
    /// `p * ldb + 0..16` and `c` writable at `r * ldc + 0..16` for r < 8, p < k.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn tile_8x16(
        a: *const f32,
        lda: usize,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
        k: usize,
    ) {
        let mut acc = [_mm512_setzero_ps(); 8];
        for p in 0..k {
            let bv = _mm512_loadu_ps(b.add(p * ldb));
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*a.add(r * lda + p));
                *acc_r = _mm512_fmadd_ps(av, bv, *acc_r);
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            _mm512_storeu_ps(c.add(r * ldc), *acc_r);
        }
    }

    /// Rows of [`dp_rows`]' register tiles.
    pub const DP_ROWS: usize = 8;

    /// `c (8, cols) = a (8, pairs) b (pairs, cols)` in bf16 pairs with f32 sums (`vdpbf16ps`,
    /// two of an f32 FMA's multiply-adds per lane): A's rows `lda` pairs apart, B's pair rows
    /// `ldb` apart, C's rows `ldc` floats apart; `cols` a multiple of 16, in register tiles of 8
    /// rows x 32 columns ([`dp_tile`]), then 16.
    ///
    /// # Safety
    /// AVX-512F and AVX512-BF16 must be available; `a` readable at `r * lda + p`, `b` at
    /// `p * ldb + 0..cols` and `c` writable at `r * ldc + 0..cols`, r < 8, p < pairs.
    #[target_feature(enable = "avx512f,avx512bf16")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn dp_rows(
        a: *const u32,
        lda: usize,
        b: *const u32,
        ldb: usize,
        pairs: usize,
        c: *mut f32,
        ldc: usize,
        cols: usize,
    ) {
        debug_assert!(cols.is_multiple_of(16));
        let whole = cols / 32 * 32;
        for cb in (0..whole).step_by(32) {
            dp_tile::<2>(a, lda, b.add(cb), ldb, pairs, c.add(cb), ldc);
        }
        if whole < cols {
            dp_tile::<1>(a, lda, b.add(whole), ldb, pairs, c.add(whole), ldc);
        }
    }

    /// One register tile of [`dp_rows`]: 8 rows x NV vectors of 16 sums, each pair of A
    /// broadcast once for the NV vectors.
    ///
    /// # Safety
    /// As [`dp_rows`], for NV x 16 columns.
    #[target_feature(enable = "avx512f,avx512bf16")]
    #[inline]
    pub unsafe fn dp_tile<const NV: usize>(
        a: *const u32,
        lda: usize,
        b: *const u32,
        ldb: usize,
        pairs: usize,
        c: *mut f32,
        ldc: usize,
    ) {
        let mut acc = [[_mm512_setzero_ps(); NV]; DP_ROWS];
        for p in 0..pairs {
            // SAFETY (transmutes): __m512i and __m512bh are both 64 bytes of lanes.
            let bv: [__m512bh; NV] = std::array::from_fn(|v| {
                std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
                    b.add(p * ldb + 16 * v).cast(),
                ))
            });
            for (r, acc) in acc.iter_mut().enumerate() {
                let av = std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(
                    *a.add(r * lda + p) as i32,
                ));
                for (acc, &bv) in acc.iter_mut().zip(&bv) {
                    *acc = _mm512_dpbf16_ps(*acc, av, bv);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (v, &acc) in acc.iter().enumerate() {
                _mm512_storeu_ps(c.add(r * ldc + 16 * v), acc);
            }
        }
    }

    /// AVX-512 8x32 tile of `c = a b`: [`tile_8x16`] over two adjacent column tiles, each `a`
    /// element broadcast once for both (16 accumulators).
    ///
    /// # Safety
    /// AVX-512F must be available; `a` must be readable at `r * lda + p`, `b` at
    /// `p * ldb + 0..32` and `c` writable at `r * ldc + 0..32` for r < 8, p < k.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn tile_8x32(
        a: *const f32,
        lda: usize,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
        k: usize,
    ) {
        let mut lo = [_mm512_setzero_ps(); 8];
        let mut hi = [_mm512_setzero_ps(); 8];
        for p in 0..k {
            let b0 = _mm512_loadu_ps(b.add(p * ldb));
            let b1 = _mm512_loadu_ps(b.add(p * ldb + 16));
            for r in 0..8 {
                let av = _mm512_set1_ps(*a.add(r * lda + p));
                lo[r] = _mm512_fmadd_ps(av, b0, lo[r]);
                hi[r] = _mm512_fmadd_ps(av, b1, hi[r]);
            }
        }
        for r in 0..8 {
            _mm512_storeu_ps(c.add(r * ldc), lo[r]);
            _mm512_storeu_ps(c.add(r * ldc + 16), hi[r]);
        }
    }

    /// The probabilities of AMX attention: `row[..n] = softmax(row[..n] * scale) * mult`, kept in
    /// `row` only if `keep` (they are returned), and written as bf16 pairs to `pairs` (lanes past
    /// `n / 2` zero). `row` is the whole padded row (a multiple of 32 floats; values past `n` are
    /// ignored); the last partial vectors are masked, not scalar (a scalar `exp2` per leftover
    /// score made most sequence lengths slower than multiples of 32). The scores' maximum is taken
    /// before scaling (`scale > 0` keeps it the maximum), the exponent `(x - max) scale log2(e)` is
    /// one `vfmsub` into [`exp2`], and the normalization, `mult` and the rounding to pairs are one
    /// pass.
    ///
    /// # Safety
    /// AVX-512F and AVX512-BF16 must be available; `row.len()` is a multiple of 32, at least `n`,
    /// and `pairs` holds `row.len() / 2` lanes.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn softmax_pairs(
        row: &mut [f32],
        n: usize,
        scale: f32,
        mult: f32,
        keep: bool,
        pairs: &mut [u32],
    ) {
        assert!(row.len().is_multiple_of(32) && n <= row.len() && pairs.len() == row.len() / 2);
        let p = row.as_mut_ptr();
        // The lanes of the 16 at `i` that hold scores.
        let lanes = |i: usize| ((1u32 << n.saturating_sub(i).min(16)) - 1) as __mmask16;
        let mut vmax = _mm512_set1_ps(f32::NEG_INFINITY);
        for i in (0..n).step_by(16) {
            let m = lanes(i);
            vmax = _mm512_mask_max_ps(vmax, m, vmax, _mm512_maskz_loadu_ps(m, p.add(i)));
        }
        let max = _mm512_reduce_max_ps(vmax);
        // e^(x scale - max scale) = 2^(x c - max c), c = scale log2(e).
        let c = scale * std::f32::consts::LOG2_E;
        let (vc, vmc) = (_mm512_set1_ps(c), _mm512_set1_ps(max * c));
        let mut vsum = _mm512_setzero_ps();
        for i in (0..n).step_by(16) {
            let m = lanes(i);
            let e = exp2(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(m, p.add(i)), vc, vmc));
            _mm512_mask_storeu_ps(p.add(i), m, e);
            vsum = _mm512_mask_add_ps(vsum, m, vsum, e);
        }
        let vf = _mm512_set1_ps(1.0 / _mm512_reduce_add_ps(vsum) * mult);
        for i in (0..n).step_by(32) {
            let (ma, mb) = (lanes(i), lanes(i + 16));
            // Lanes past n load as zero, so their pairs are zero.
            let a = _mm512_mul_ps(_mm512_maskz_loadu_ps(ma, p.add(i)), vf);
            let b = _mm512_mul_ps(_mm512_maskz_loadu_ps(mb, p.add(i + 16)), vf);
            if keep {
                _mm512_mask_storeu_ps(p.add(i), ma, a);
                _mm512_mask_storeu_ps(p.add(i + 16), mb, b);
            }
            let h = _mm512_cvtne2ps_pbh(b, a);
            _mm512_storeu_si512(
                pairs.as_mut_ptr().add(i / 2).cast(),
                std::mem::transmute::<__m512bh, __m512i>(h),
            );
        }
        pairs[n.next_multiple_of(32) / 2..].fill(0);
    }

    /// `dst[c][r] = src[r][c]` for a 16 x 16 block of 32-bit lanes (rows `lds` / `ldd` lanes
    /// apart): 32-bit, then 64-bit unpacks within 128-bit lanes, then two 128-bit lane shuffles.
    ///
    /// # Safety
    /// AVX-512F must be available; the 16 rows of 16 lanes at `src` and at `dst` are in bounds.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn transpose16(src: *const u32, lds: usize, dst: *mut u32, ldd: usize) {
        let r: [__m512i; 16] = std::array::from_fn(|i| _mm512_loadu_si512(src.add(i * lds).cast()));
        // t[2k] lane l: (r2k[4l], r2k+1[4l], r2k[4l+1], r2k+1[4l+1]); t[2k+1] the same at 4l+2.
        let t: [__m512i; 16] = std::array::from_fn(|i| {
            let (a, b) = (r[i & !1], r[i | 1]);
            if i % 2 == 0 {
                _mm512_unpacklo_epi32(a, b)
            } else {
                _mm512_unpackhi_epi32(a, b)
            }
        });
        // u[4k + m] lane l: column 4l + m of rows 4k..4k + 4.
        let u: [__m512i; 16] = std::array::from_fn(|i| {
            let (k, m) = (i / 4, i % 4);
            let (a, b) = (t[4 * k + m / 2], t[4 * k + 2 + m / 2]);
            if m % 2 == 0 {
                _mm512_unpacklo_epi64(a, b)
            } else {
                _mm512_unpackhi_epi64(a, b)
            }
        });
        for m in 0..4 {
            let x0 = _mm512_shuffle_i32x4::<0x44>(u[m], u[4 + m]);
            let x1 = _mm512_shuffle_i32x4::<0x44>(u[8 + m], u[12 + m]);
            let x2 = _mm512_shuffle_i32x4::<0xee>(u[m], u[4 + m]);
            let x3 = _mm512_shuffle_i32x4::<0xee>(u[8 + m], u[12 + m]);
            let out = [
                _mm512_shuffle_i32x4::<0x88>(x0, x1),
                _mm512_shuffle_i32x4::<0xdd>(x0, x1),
                _mm512_shuffle_i32x4::<0x88>(x2, x3),
                _mm512_shuffle_i32x4::<0xdd>(x2, x3),
            ];
            for (l, o) in out.into_iter().enumerate() {
                _mm512_storeu_si512(dst.add((4 * l + m) * ldd).cast(), o);
            }
        }
    }

    /// `row = softmax(row * scale)`, 16 lanes at a time; the last partial vector masked (a scalar
    /// `exp` per leftover score made lengths short of a multiple of 16 slower than the next
    /// multiple: f32 attention at 56 tokens took 1.15-1.25x the time of 64). As AMX's
    /// [`softmax_pairs`]: the maximum is taken before scaling (`scale > 0` keeps it the maximum),
    /// and `e^(x scale - max scale)` is `2^(x c - max c)`, `c = scale log2(e)`, one `vfmsub` into
    /// [`exp2`].
    ///
    /// # Safety
    /// AVX-512F must be available.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn scaled_softmax(row: &mut [f32], scale: f32) {
        let n = row.len();
        let p = row.as_mut_ptr();
        // The lanes of the 16 at `i < n` that are in the row.
        let lanes = |i: usize| ((1u32 << (n - i).min(16)) - 1) as __mmask16;
        let mut vmax = _mm512_set1_ps(f32::NEG_INFINITY);
        for i in (0..n).step_by(16) {
            let m = lanes(i);
            vmax = _mm512_mask_max_ps(vmax, m, vmax, _mm512_maskz_loadu_ps(m, p.add(i)));
        }
        let c = scale * std::f32::consts::LOG2_E;
        let (vc, vmc) = (
            _mm512_set1_ps(c),
            _mm512_set1_ps(_mm512_reduce_max_ps(vmax) * c),
        );
        let mut vsum = _mm512_setzero_ps();
        for i in (0..n).step_by(16) {
            let m = lanes(i);
            let e = exp2(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(m, p.add(i)), vc, vmc));
            _mm512_mask_storeu_ps(p.add(i), m, e);
            vsum = _mm512_mask_add_ps(vsum, m, vsum, e);
        }
        let vinv = _mm512_set1_ps(1.0 / _mm512_reduce_add_ps(vsum));
        for i in (0..n).step_by(16) {
            let m = lanes(i);
            let x = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, p.add(i)), vinv);
            _mm512_mask_storeu_ps(p.add(i), m, x);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference;

    fn paths() -> Vec<Isa> {
        Isa::supported()
    }

    /// The packed batch of sequences `lens`: cu_seqlens, qkv (N, 3H) of deterministic values in
    /// [-1.5, 1.5], and a head mask of 1, 0 and 0.5 in turn.
    fn ragged_inputs(lens: &[usize], nh: usize, d: usize) -> (Vec<usize>, Vec<f32>, Vec<f32>) {
        let mut cu = vec![0];
        for &l in lens {
            cu.push(cu.last().unwrap() + l);
        }
        let n = *cu.last().unwrap();
        let qkv = (0..n * 3 * nh * d)
            .map(|i| ((i * 7919 % 997) as f32 / 498.0 - 1.0) * 1.5)
            .collect();
        let mask = (0..nh).map(|i| [1.0, 0.0, 0.5][i % 3]).collect();
        (cu, qkv, mask)
    }

    /// [`attention_with`] into a NaN-filled context and probabilities, both returned.
    fn run(path: Isa, args: AttentionArgs<'_>) -> (Vec<f32>, Vec<f32>) {
        let n = *args.cu_seqlens.last().unwrap();
        let poff = probs_offsets(args.cu_seqlens, args.num_heads);
        let mut ctx = vec![f32::NAN; n * args.num_heads * args.head_dim];
        let mut probs = vec![f32::NAN; *poff.last().unwrap()];
        attention_with(path, args, &mut ctx, Some(&mut probs));
        (ctx, probs)
    }

    /// `allow_bf16`: a sequence with bf16 products ([`uses_bf16`]: AMX or `vdpbf16ps`) has the
    /// probabilities of [`reference::attention_bf16`], and a context that is the product of
    /// exactly those probabilities and V, each rounded to bf16 (against the reference's own
    /// context a probability an f32 ulp from a bf16 rounding boundary may round the other way, a
    /// 2^-8 change); every other sequence is f32 attention. The context is the same, bit for bit,
    /// whether or not the probabilities are returned.
    #[test]
    fn allow_bf16_matches_reference() {
        let cases: &[(&[usize], usize, usize)] = &[
            (&[1], 1, 1),
            (&[1, 3, 0, 5], 2, 3),
            (&[16, 2, 9], 3, 64),
            (&[24, 25], 2, 16),
            (&[33], 12, 32),
            (&[130, 17], 2, 20),
            (&[128, 31], 2, 64),
            (&[48, 1], 3, 48),
            (&[37, 41], 2, 5),
        ];
        let round = crate::bf16::round;
        let mut on_bf16 = 0;
        for path in paths() {
            for &(lens, nh, d) in cases {
                let h = nh * d;
                let (cu, qkv, mask) = ragged_inputs(lens, nh, d);
                for head_mask in [None, Some(mask.as_slice())] {
                    let poff = probs_offsets(&cu, nh);
                    let args = AttentionArgs {
                        qkv: &qkv,
                        cu_seqlens: &cu,
                        num_heads: nh,
                        head_dim: d,
                        head_mask,
                        allow_bf16: true,
                    };
                    let (ctx, probs) = run(path, args);
                    let mut ctx_only = vec![f32::NAN; ctx.len()];
                    attention_with(path, args, &mut ctx_only, None);
                    assert!(
                        ctx.iter()
                            .zip(&ctx_only)
                            .all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{path:?} {lens:?}: context changed without probs"
                    );
                    for s in 0..lens.len() {
                        let t = lens[s];
                        let rows = &qkv[cu[s] * 3 * h..cu[s + 1] * 3 * h];
                        let got_p = &probs[poff[s]..poff[s + 1]];
                        let got_c = &ctx[cu[s] * h..cu[s + 1] * h];
                        if !uses_bf16(path, t) {
                            let (c, p) = reference::attention(rows, t, nh, d, head_mask);
                            for (a, w) in got_c.iter().zip(&c) {
                                assert!((a - w).abs() < 1e-5, "{path:?} {lens:?}: ctx {a} vs {w}");
                            }
                            for (a, w) in got_p.iter().zip(&p) {
                                assert!(
                                    (a - w).abs() < 1e-6,
                                    "{path:?} {lens:?}: probs {a} vs {w}"
                                );
                            }
                            continue;
                        }
                        on_bf16 += 1;
                        let (_, p) = reference::attention_bf16(rows, t, nh, d, head_mask);
                        for (a, w) in got_p.iter().zip(&p) {
                            assert!((a - w).abs() < 2e-6, "{path:?} {lens:?}: probs {a} vs {w}");
                        }
                        for hd in 0..nh {
                            for i in 0..t {
                                for c in 0..d {
                                    let want: f64 = (0..t)
                                        .map(|j| {
                                            round(got_p[(hd * t + i) * t + j]) as f64
                                                * round(rows[j * 3 * h + 2 * h + hd * d + c]) as f64
                                        })
                                        .sum();
                                    let a = got_c[i * h + hd * d + c];
                                    assert!(
                                        (a as f64 - want).abs() < 1e-5,
                                        "{path:?} {lens:?} nh {nh} d {d}: ctx {a} vs {want}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
        if uses_bf16(Isa::Avx512, DP_MIN_TOKENS + 1) {
            assert!(on_bf16 >= 8, "only {on_bf16} sequences ran bf16 products");
        }
    }

    #[test]
    fn matches_reference_on_ragged_batches() {
        // (sequence lengths, heads, head dim): T = 1, empty sequences, odd head dims, long rows;
        // whole and partial 16-token blocks of the AVX-512 K transpose (D a multiple of 16).
        let cases: &[(&[usize], usize, usize)] = &[
            (&[1], 1, 1),
            (&[1, 3, 0, 5], 2, 3),
            (&[7], 4, 8),
            (&[16, 2, 9], 3, 64),
            (&[33], 12, 32),
            (&[130, 47, 0, 16], 2, 32),
            (&[130, 17], 2, 20),
        ];
        for path in paths() {
            for &(lens, nh, d) in cases {
                let h = nh * d;
                let (cu, qkv, mask) = ragged_inputs(lens, nh, d);
                for head_mask in [None, Some(mask.as_slice())] {
                    let poff = probs_offsets(&cu, nh);
                    let args = AttentionArgs {
                        qkv: &qkv,
                        cu_seqlens: &cu,
                        num_heads: nh,
                        head_dim: d,
                        head_mask,
                        allow_bf16: false,
                    };
                    let (ctx, probs) = run(path, args);
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
                                "{path:?} {lens:?} nh {nh} d {d}: ctx {a} vs {w}"
                            );
                        }
                        for (a, w) in probs[poff[s]..poff[s + 1]].iter().zip(&p) {
                            assert!((a - w).abs() < 1e-6, "{path:?} {lens:?}: probs {a} vs {w}");
                        }
                    }
                }
            }
        }
    }
}
