//! Packed operand layouts of the microkernels.
//!
//! B (= W^T, (K, N)) is packed once at load: cut into K blocks of `kc` rows, each cut into panels of
//! `nr` columns (the last zero-padded), each panel stored (kc, nr) row-major. Within one K block the
//! panels are contiguous, so a thread walking its panels streams memory in order. A (the input rows) is
//! packed per task and K block into row tiles of `mr` rows stored (kc, mr): column-major, so the kernel
//! reads its `mr` broadcasts from one cache line.

use rayon::prelude::*;

/// Packings of at least this many floats split their panels over rayon's pool (training packs
/// weights and activations every step; a 384 x 1536 weight takes about 1 ms on one core).
const PAR_PACK: usize = 1 << 16;

/// Cache-line alignment of the packed weights, in bytes.
const ALIGN_BYTES: usize = 64;

/// An element of packed B: f32, 16-bit bits (`u16`: f16 converted at packing, [`crate::f16`], or
/// bf16 through [`PackedB::to_bf16_bits`]), or a [`Bf16Pair`] holding two consecutive K values.
pub(super) trait Elem: Copy + Default + Send + Sync + crate::hugepages::Zeroable {
    /// Consecutive K values (rows of W^T) one element holds: a panel row of `nr` elements covers
    /// `K_PER` rows of K.
    const K_PER: usize = 1;
    fn from_f32(v: f32) -> Self;
    /// `dst[i] = from_f32(src[i])`: a plain copy for f32.
    #[inline]
    fn from_f32_row(dst: &mut [Self], src: &[f32]) {
        for (d, &v) in dst.iter_mut().zip(src) {
            *d = Self::from_f32(v);
        }
    }
    /// The element whose bits are `lane`, a bf16 pair of [`crate::bf16`]'s vector conversions:
    /// only for `K_PER == 2`.
    fn from_lane(_lane: u32) -> Self {
        unreachable!("only pair elements are built from pair lanes")
    }
    /// The elements as their pair lanes' bits, to be written by [`crate::bf16`]'s row conversions:
    /// only for `K_PER == 2`.
    fn lanes_mut(_s: &mut [Self]) -> &mut [u32] {
        unreachable!("only pair elements are pair lanes")
    }
    /// The 16-bit bits (f16 or bf16), if the elements are those.
    fn as_half(s: &[Self]) -> Option<&[u16]>;
}

impl Elem for f32 {
    #[inline]
    fn from_f32(v: f32) -> Self {
        v
    }
    #[inline]
    fn from_f32_row(dst: &mut [Self], src: &[f32]) {
        crate::copy::copy_floats(dst, src);
    }
    fn as_half(_: &[Self]) -> Option<&[u16]> {
        None
    }
}

impl Elem for u16 {
    #[inline]
    fn from_f32(v: f32) -> Self {
        crate::f16::f32_to_f16(v)
    }
    fn as_half(s: &[Self]) -> Option<&[u16]> {
        Some(s)
    }
}

/// Two consecutive K values of one column as bf16 ([`crate::bf16::pair`]): one 32-bit lane of
/// `vdpbf16ps`. A bf16 panel row holds two rows of K, so a (kc, nr) micro-panel is
/// (ceil(kc / 2), nr) pairs, the same bytes per K row as f16.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(transparent)]
pub(super) struct Bf16Pair(pub u32);

impl Elem for Bf16Pair {
    const K_PER: usize = 2;
    fn from_f32(v: f32) -> Self {
        Bf16Pair(crate::bf16::pair(v, 0.0))
    }
    #[inline]
    fn from_lane(lane: u32) -> Self {
        Bf16Pair(lane)
    }
    #[inline]
    fn lanes_mut(s: &mut [Self]) -> &mut [u32] {
        // SAFETY: Bf16Pair is a repr(transparent) u32: same size, alignment and valid bit patterns.
        unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<u32>(), s.len()) }
    }
    fn as_half(_: &[Self]) -> Option<&[u16]> {
        None
    }
}

// SAFETY: a repr(transparent) u32: the all-zero bits are a value.
unsafe impl crate::hugepages::Zeroable for Bf16Pair {}

/// How long a packing lives, which decides where it is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Lifetime {
    /// Packed once at load and read on every call for the model's life: on huge pages
    /// ([`crate::hugepages`]; a batch-1 forward streams these from memory).
    Model,
    /// Packed for one training step or one call, then dropped: on the heap.
    Step,
}

/// Where a packing's elements are.
enum Store<T> {
    /// A heap buffer and the offset of its first 64-byte-aligned element.
    Heap(Vec<T>, usize),
    /// A huge-page weight region, aligned.
    Huge(crate::hugepages::HugeBuf<T>),
}

impl<T: Elem> Store<T> {
    /// `len` zeroed elements, 64-byte aligned.
    fn zeroed(len: usize, life: Lifetime) -> Self {
        match life {
            Lifetime::Model => Store::Huge(crate::hugepages::HugeBuf::zeroed(len)),
            Lifetime::Step => Store::heap(Vec::new(), len),
        }
    }

    /// `len` elements of `buf` from its first 64-byte-aligned one, `buf` grown (with zeros) as
    /// needed and otherwise left as it was.
    fn heap(mut buf: Vec<T>, len: usize) -> Self {
        let slack = ALIGN_BYTES / std::mem::size_of::<T>();
        if buf.len() < len + slack {
            buf.resize(len + slack, T::default());
        }
        let start = buf.as_ptr().align_offset(ALIGN_BYTES).min(slack);
        Store::Heap(buf, start)
    }
}

impl<T> Store<T> {
    /// The `len` elements from the aligned start.
    fn get(&self, len: usize) -> &[T] {
        match self {
            Store::Heap(buf, start) => &buf[*start..*start + len],
            Store::Huge(buf) => &buf[..len],
        }
    }

    fn get_mut(&mut self, len: usize) -> &mut [T] {
        match self {
            Store::Heap(buf, start) => &mut buf[*start..*start + len],
            Store::Huge(buf) => &mut buf[..len],
        }
    }

    /// Elements allocated.
    fn capacity(&self) -> usize {
        match self {
            Store::Heap(buf, _) => buf.capacity(),
            Store::Huge(buf) => buf.len(),
        }
    }
}

/// W^T (K, N) in the microkernel's panel layout, 64-byte aligned, elements `T`.
pub(super) struct PackedB<T = f32> {
    store: Store<T>,
    nr: usize,
    panels: usize,
    /// K block boundaries: block q is rows `kb[q]..kb[q + 1]`.
    kb: Vec<usize>,
}

impl<T: Elem> PackedB<T> {
    /// Packs `w` (N, K) row-major (PyTorch layout) into panels of `nr` columns and K blocks of at most
    /// `kc` rows, the blocks as even as possible (K = 385, kc = 256: 193 + 192, not 256 + 129), each
    /// value converted to `T` (`T::K_PER` K rows to an element: every block but the last then starts
    /// and ends on a multiple of `K_PER`), stored as `life` asks.
    pub(super) fn new(
        w: &[f32],
        (n, k): (usize, usize),
        nr: usize,
        kc: usize,
        life: Lifetime,
    ) -> Self {
        debug_assert_eq!(w.len(), n * k);
        let mut packed = Self::zeroed(n, k, nr, kc, life);
        let (panels, len) = (packed.panels, packed.len());
        let kb = std::mem::take(&mut packed.kb);
        let dst = packed.store.get_mut(len);
        for q in kb.windows(2) {
            let (k0, kcq) = (q[0], q[1] - q[0]);
            let rows = kcq.div_ceil(T::K_PER);
            let block = &mut dst[k0 / T::K_PER * panels * nr..][..rows * panels * nr];
            let fill = |(p, panel): (usize, &mut [T])| {
                // One row of W's pairs, converted in one call, then written down its panel column.
                let mut lanes = vec![0u32; if T::K_PER == 1 { 0 } else { rows }];
                for (c, j) in (p * nr..((p + 1) * nr).min(n)).enumerate() {
                    let row = &w[j * k + k0..][..kcq];
                    if T::K_PER == 1 {
                        for (kk, &v) in row.iter().enumerate() {
                            panel[kk * nr + c] = T::from_f32(v);
                        }
                    } else {
                        crate::bf16::pairs_row_into(row, &mut lanes);
                        for (kk, &lane) in lanes.iter().enumerate() {
                            panel[kk * nr + c] = T::from_lane(lane);
                        }
                    }
                }
            };
            if len >= PAR_PACK {
                block.par_chunks_mut(rows * nr).enumerate().for_each(fill);
            } else {
                block.chunks_mut(rows * nr).enumerate().for_each(fill);
            }
        }
        packed.kb = kb;
        packed
    }

    /// Zero buffer and K blocks for (N, K) in panels of `nr` and blocks of at most `kc` rows, the
    /// blocks as even as possible.
    fn zeroed(n: usize, k: usize, nr: usize, kc: usize, life: Lifetime) -> Self {
        let panels = n.div_ceil(nr);
        let blocks = k.div_ceil(kc.max(1));
        let mut kb: Vec<usize> = (0..=blocks)
            .map(|q| match q * k / blocks.max(1) {
                end if q == blocks => end,
                start => start / T::K_PER * T::K_PER,
            })
            .collect();
        // Rounding down to K_PER can only empty a block when kc < K_PER: drop it.
        kb.dedup();
        let len = panels * nr * k.div_ceil(T::K_PER);
        PackedB {
            store: Store::zeroed(len, life),
            nr,
            panels,
            kb,
        }
    }

    /// Elements of the packed panels (without the alignment slack).
    fn len(&self) -> usize {
        self.panels * self.nr * self.kb.last().copied().unwrap_or(0).div_ceil(T::K_PER)
    }

    /// The packed panels (without the alignment slack), for tests.
    #[cfg(test)]
    pub(super) fn panel_data(&self) -> &[T] {
        self.store.get(self.len())
    }

    /// Elements allocated.
    pub(super) fn capacity(&self) -> usize {
        self.store.capacity()
    }

    pub(super) fn panels(&self) -> usize {
        self.panels
    }

    /// The K blocks, (first row, rows).
    pub(super) fn k_blocks(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.kb.windows(2).map(|q| (q[0], q[1] - q[0]))
    }

    /// K block `q`, (first row, rows).
    pub(super) fn k_block(&self, q: usize) -> (usize, usize) {
        (self.kb[q], self.kb[q + 1] - self.kb[q])
    }

    pub(super) fn k_block_count(&self) -> usize {
        self.kb.len().saturating_sub(1)
    }

    /// The (kc, nr) micro-panel of panel `p` in the K block (`k0`, `kc`): (ceil(kc / K_PER), nr)
    /// elements.
    pub(super) fn panel(&self, (k0, kc): (usize, usize), p: usize) -> &[T] {
        let rows = kc.div_ceil(T::K_PER);
        let off = k0 / T::K_PER * self.panels * self.nr + p * rows * self.nr;
        &self.store.get(self.len())[off..off + rows * self.nr]
    }
}

impl PackedB<u16> {
    /// The same panels widened to f32 into `buf` (grown as needed, its old contents overwritten, so
    /// a caller can reuse one buffer across products; [`PackedB::into_buf`] gives it back), by
    /// `widen(src, dst)` over equal-length chunks, in parallel for large B.
    pub(super) fn widened(
        &self,
        buf: Vec<f32>,
        widen: impl Fn(&[u16], &mut [f32]) + Sync,
    ) -> PackedB<f32> {
        let len = self.len();
        let mut store = Store::heap(buf, len);
        let (src, dst) = (self.store.get(len), store.get_mut(len));
        const CHUNK: usize = 1 << 14;
        if len >= PAR_PACK {
            crate::team::for_each_chunk_mut(dst, CHUNK, |i, d| {
                widen(&src[i * CHUNK..][..d.len()], d)
            });
        } else {
            widen(src, dst);
        }
        PackedB {
            store,
            nr: self.nr,
            panels: self.panels,
            kb: self.kb.clone(),
        }
    }
}

impl<T> PackedB<T> {
    /// The buffer, to be reused (see [`PackedB::widened`]; empty if on huge pages).
    pub(super) fn into_buf(self) -> Vec<T> {
        match self.store {
            Store::Heap(buf, _) => buf,
            Store::Huge(_) => Vec::new(),
        }
    }
}

impl<T: Elem> PackedB<T> {
    /// The same packing from `wt` (K, N) row-major, i.e. W^T itself (an activation matrix whose
    /// rows are the GEMM's K, or the transpose of a PyTorch weight): each panel row is a contiguous
    /// copy (f32) or conversion of `K_PER` rows, no transpose needed.
    /// `PackedB::from_kn(&transpose(w), ..)` equals `PackedB::new(w, ..)`.
    pub(super) fn from_kn(
        wt: &[f32],
        (n, k): (usize, usize),
        nr: usize,
        kc: usize,
        life: Lifetime,
    ) -> Self {
        debug_assert_eq!(wt.len(), n * k);
        let mut packed = Self::zeroed(n, k, nr, kc, life);
        let (panels, len) = (packed.panels, packed.len());
        // Each task fills a group of adjacent panels, K row by K row: it reads one contiguous
        // segment of each row of `wt`. Panel by panel, it read nr columns of each row, rows
        // 4n or 8n bytes apart, a stride the hardware prefetchers do not follow (bf16 packing of
        // training's activations took twice the time).
        let group = if len >= PAR_PACK {
            panels.div_ceil(rayon::current_num_threads()).max(1)
        } else {
            panels.max(1)
        };
        let dst = packed.store.get_mut(len);
        for q in packed.kb.windows(2) {
            let (k0, kcq) = (q[0], q[1] - q[0]);
            let rows = kcq.div_ceil(T::K_PER);
            let block = &mut dst[k0 / T::K_PER * panels * nr..][..rows * panels * nr];
            let fill = |(g, chunk): (usize, &mut [T])| {
                let p0 = g * group;
                for kk in 0..rows {
                    let kr = k0 + kk * T::K_PER;
                    for (i, panel) in chunk.chunks_exact_mut(rows * nr).enumerate() {
                        let (c0, w) = ((p0 + i) * nr, nr.min(n - (p0 + i) * nr));
                        let prow = &mut panel[kk * nr..][..w];
                        let lo = &wt[kr * n + c0..][..w];
                        if T::K_PER == 1 {
                            T::from_f32_row(prow, lo);
                        } else {
                            // Rows kr and kr + 1 (if in the block) interleaved.
                            let hi = (kr + 1 < k0 + kcq).then(|| &wt[(kr + 1) * n + c0..][..w]);
                            crate::bf16::interleave_into(lo, hi, T::lanes_mut(prow));
                        }
                    }
                }
            };
            if group < panels {
                block
                    .par_chunks_mut(group * rows * nr)
                    .enumerate()
                    .for_each(fill);
            } else {
                fill((0, block));
            }
        }
        packed
    }
}

impl PackedB<f32> {
    /// The same panels with each value as its bf16 bits ([`crate::bf16::f32_to_bf16`]), stored as
    /// `life` asks: the bf16 weights of an emulated bf16 layer ([`super::F16Linear`]'s bf16 form),
    /// half the bytes of f32.
    pub(super) fn to_bf16_bits(&self, life: Lifetime) -> PackedB<u16> {
        let len = self.len();
        let mut store = Store::<u16>::zeroed(len, life);
        let dst = store.get_mut(len);
        for (d, &v) in dst.iter_mut().zip(self.store.get(len)) {
            *d = crate::bf16::f32_to_bf16(v);
        }
        PackedB {
            store,
            nr: self.nr,
            panels: self.panels,
            kb: self.kb.clone(),
        }
    }
}

/// Packs rows `tiles` of `x` (M, K) row-major, columns `k0..k0 + kc`, into `dst`: tile after tile,
/// each (kc, mr) row-major; with `BF16` each value rounded to bf16 (the emulated bf16 product).
/// `tiles` are (first row, rows) pairs. The scalar reference of [`pack_a_avx2`], which x86-64
/// runs where it has AVX2.
pub(super) fn pack_a<const BF16: bool>(
    x: &[f32],
    k: usize,
    tiles: &[(usize, usize)],
    k0: usize,
    kc: usize,
    dst: &mut Vec<f32>,
) {
    let total = tiles.iter().map(|t| t.1).sum::<usize>() * kc;
    dst.resize(total, 0.0);
    let mut off = 0;
    for &(r0, mr) in tiles {
        let tile = &mut dst[off..off + kc * mr];
        for i in 0..mr {
            let row = &x[(r0 + i) * k + k0..][..kc];
            for (d, &v) in tile.chunks_exact_mut(mr).zip(row) {
                d[i] = if BF16 { crate::bf16::round(v) } else { v };
            }
        }
        off += kc * mr;
    }
}

/// [`pack_a`] by transposes in registers: 8 rows of a tile at a time (8 x 8), then the rest 4 at a
/// time (two 4 x 4 per 8 K steps, the first 1-3 lanes stored where fewer than 4 rows are left),
/// each K step's values stored as one vector where the scalar loop stores them one by one, `mr`
/// floats apart (5.4% of MiniLM's f32 W2F samples on an Intel Xeon, AVX-512). The K steps past
/// the last group of 8 take the scalar loop; bf16 rounds as [`crate::bf16::round`], 8 lanes at a
/// time. The same floats as [`pack_a`].
///
/// # Safety
/// The CPU supports AVX2; the tiles' rows lie in `x` (rows of `k` floats) with `k0 + kc <= k`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn pack_a_avx2<const BF16: bool>(
    x: &[f32],
    k: usize,
    tiles: &[(usize, usize)],
    k0: usize,
    kc: usize,
    dst: &mut Vec<f32>,
) {
    let total = tiles.iter().map(|t| t.1).sum::<usize>() * kc;
    dst.resize(total, 0.0);
    let mut off = 0;
    for &(r0, mr) in tiles {
        assert!(
            x.len() >= (r0 + mr) * k && k0 + kc <= k,
            "pack_a_avx2: rows out of x"
        );
        let tile = dst[off..off + kc * mr].as_mut_ptr();
        pack_tile_avx2::<BF16>(|i| x.as_ptr().add((r0 + i) * k + k0), mr, kc, tile);
        off += kc * mr;
    }
}

/// One tile of [`pack_a_avx2`]: rows `row(0..mr)`, `kc` floats each, into `tile` as (kc, mr).
/// Without `BF16` it only moves bits (loads, shuffles, stores), so it transposes any 32-bit
/// values: [`pack_a_bf16`]'s pairs too.
///
/// # Safety
/// The CPU supports AVX2; `row(i)` is valid for `kc` floats for each `i < mr`, `tile` for
/// `kc * mr`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn pack_tile_avx2<const BF16: bool>(
    row: impl Fn(usize) -> *const f32,
    mr: usize,
    kc: usize,
    tile: *mut f32,
) {
    use std::arch::x86_64::*;
    let round8 = |v: __m256| if BF16 { round_bf16_8(v) } else { v };
    let k8 = kc / 8 * 8;
    let mut i0 = 0;
    while mr - i0 >= 8 {
        for kk in (0..k8).step_by(8) {
            let r: [__m256; 8] =
                std::array::from_fn(|j| round8(_mm256_loadu_ps(row(i0 + j).add(kk))));
            let t: [__m256; 8] = std::array::from_fn(|j| {
                let (a, b) = (r[j / 2 * 2], r[j / 2 * 2 + 1]);
                if j % 2 == 0 {
                    _mm256_unpacklo_ps(a, b)
                } else {
                    _mm256_unpackhi_ps(a, b)
                }
            });
            let u = [
                _mm256_shuffle_ps::<0x44>(t[0], t[2]),
                _mm256_shuffle_ps::<0xee>(t[0], t[2]),
                _mm256_shuffle_ps::<0x44>(t[1], t[3]),
                _mm256_shuffle_ps::<0xee>(t[1], t[3]),
                _mm256_shuffle_ps::<0x44>(t[4], t[6]),
                _mm256_shuffle_ps::<0xee>(t[4], t[6]),
                _mm256_shuffle_ps::<0x44>(t[5], t[7]),
                _mm256_shuffle_ps::<0xee>(t[5], t[7]),
            ];
            for j in 0..4 {
                let d = tile.add((kk + j) * mr + i0);
                _mm256_storeu_ps(d, _mm256_permute2f128_ps::<0x20>(u[j], u[j + 4]));
                let d = tile.add((kk + j + 4) * mr + i0);
                _mm256_storeu_ps(d, _mm256_permute2f128_ps::<0x31>(u[j], u[j + 4]));
            }
        }
        i0 += 8;
    }
    // The rest, 4 rows at a time (the last 1-3 as zero rows whose lanes are not stored), 8 K
    // steps: column kk + j in a vector's low half, kk + 4 + j in its high. AVX2's 6-row tiles
    // are 4 + 2 rows: the 2 took the scalar loop, a third of all values, each rounded alone
    // with bf16 (emulated bf16 W2F 1.03x f32's time on an Intel Xeon, AVX2 forced).
    while i0 < mr {
        let n = (mr - i0).min(4);
        for kk in (0..k8).step_by(8) {
            let r: [__m256; 4] = std::array::from_fn(|j| {
                if j < n {
                    round8(_mm256_loadu_ps(row(i0 + j).add(kk)))
                } else {
                    _mm256_setzero_ps()
                }
            });
            let (t0, t1) = (
                _mm256_unpacklo_ps(r[0], r[1]),
                _mm256_unpacklo_ps(r[2], r[3]),
            );
            let (t2, t3) = (
                _mm256_unpackhi_ps(r[0], r[1]),
                _mm256_unpackhi_ps(r[2], r[3]),
            );
            let cols = [
                _mm256_shuffle_ps::<0x44>(t0, t1),
                _mm256_shuffle_ps::<0xee>(t0, t1),
                _mm256_shuffle_ps::<0x44>(t2, t3),
                _mm256_shuffle_ps::<0xee>(t2, t3),
            ];
            for (j, c) in cols.into_iter().enumerate() {
                store_first(tile.add((kk + j) * mr + i0), _mm256_castps256_ps128(c), n);
                store_first(
                    tile.add((kk + j + 4) * mr + i0),
                    _mm256_extractf128_ps::<1>(c),
                    n,
                );
            }
        }
        i0 += n;
    }
    // The K steps past k8, every row.
    let value = |v: f32| if BF16 { crate::bf16::round(v) } else { v };
    for i in 0..mr {
        for kk in k8..kc {
            *tile.add(kk * mr + i) = value(*row(i).add(kk));
        }
    }
}

/// Stores the first `n` (1 to 4) lanes of `v` at `d`: plain stores, not `vmaskmovps` (microcoded
/// on AMD Zen).
///
/// # Safety
/// The CPU supports AVX2; `d` is valid for `n` floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn store_first(d: *mut f32, v: std::arch::x86_64::__m128, n: usize) {
    use std::arch::x86_64::*;
    match n {
        4 => _mm_storeu_ps(d, v),
        3 => {
            _mm_storel_epi64(d.cast(), _mm_castps_si128(v));
            _mm_store_ss(d.add(2), _mm_movehl_ps(v, v));
        }
        2 => _mm_storel_epi64(d.cast(), _mm_castps_si128(v)),
        _ => _mm_store_ss(d, v),
    }
}

/// `x` rounded to bf16 into `dst` (resized to `x.len()`): [`crate::bf16::round`] of each (an
/// emulated bf16 product's A, read in place by the direct kernels), 8 at a time where the CPU has
/// AVX2.
pub(super) fn round_bf16_into(x: &[f32], dst: &mut Vec<f32>) {
    #[cfg(target_arch = "x86_64")]
    if crate::Isa::Avx2.is_supported() {
        // SAFETY: AVX2 checked.
        unsafe { round_bf16_avx2(x, dst) };
        return;
    }
    dst.clear();
    dst.extend(x.iter().map(|&v| crate::bf16::round(v)));
}

/// [`round_bf16_into`] by [`round_bf16_8`].
///
/// # Safety
/// The CPU supports AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn round_bf16_avx2(x: &[f32], dst: &mut Vec<f32>) {
    use std::arch::x86_64::*;
    dst.resize(x.len(), 0.0);
    let body = x.len() / 8 * 8;
    for i in (0..body).step_by(8) {
        let v = round_bf16_8(_mm256_loadu_ps(x.as_ptr().add(i)));
        _mm256_storeu_ps(dst.as_mut_ptr().add(i), v);
    }
    for i in body..x.len() {
        dst[i] = crate::bf16::round(x[i]);
    }
}

/// [`crate::bf16::round`] of 8 lanes: to the nearest bf16, ties to even, subnormals to signed
/// zero, NaN made quiet; as f32. Lanes of exponent 0 or 255 (zero, subnormal, infinite, NaN) are
/// rare: without them the rounding is 4 integer operations.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn round_bf16_8(v: std::arch::x86_64::__m256) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let bits = _mm256_castps_si256(v);
    let hi = _mm256_set1_epi32(0xffff_0000u32 as i32);
    let lsb = _mm256_and_si256(_mm256_srli_epi32::<16>(bits), _mm256_set1_epi32(1));
    let bias = _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb);
    let rounded = _mm256_and_si256(_mm256_add_epi32(bits, bias), hi);
    let exp_bits = _mm256_set1_epi32(0x7f80_0000);
    let exp = _mm256_and_si256(bits, exp_bits);
    let exp_zero = _mm256_cmpeq_epi32(exp, _mm256_setzero_si256());
    let special = _mm256_or_si256(exp_zero, _mm256_cmpeq_epi32(exp, exp_bits));
    if _mm256_testz_si256(special, special) == 1 {
        return _mm256_castsi256_ps(rounded);
    }
    let sign = _mm256_and_si256(bits, _mm256_set1_epi32(i32::MIN));
    let quiet = _mm256_or_si256(_mm256_and_si256(bits, hi), _mm256_set1_epi32(0x0040_0000));
    let nan = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
    let r = _mm256_blendv_epi8(rounded, sign, exp_zero);
    _mm256_castsi256_ps(_mm256_blendv_epi8(r, quiet, nan))
}

/// As [`pack_a`] from `xt` (K, M) row-major, i.e. A^T (training's `dy` in `dW = dy^T x`): each
/// packed (kc, mr) tile row is a contiguous copy of `mr` floats of one row of `xt`.
pub(super) fn pack_a_transposed<const BF16: bool>(
    xt: &[f32],
    m: usize,
    tiles: &[(usize, usize)],
    k0: usize,
    kc: usize,
    dst: &mut Vec<f32>,
) {
    let total = tiles.iter().map(|t| t.1).sum::<usize>() * kc;
    dst.resize(total, 0.0);
    let mut off = 0;
    for &(r0, mr) in tiles {
        let tile = &mut dst[off..off + kc * mr];
        for (kk, d) in tile.chunks_exact_mut(mr).enumerate() {
            let src = &xt[(k0 + kk) * m + r0..][..mr];
            if BF16 {
                for (d, &v) in d.iter_mut().zip(src) {
                    *d = crate::bf16::round(v);
                }
            } else {
                crate::copy::copy_floats(d, src);
            }
        }
        off += kc * mr;
    }
}

/// Elements (u32 pairs) of a packed bf16 A row tile of `mr` rows and a K block of `kc`: the
/// `vdpbf16ps` kernels' (ceil(kc / 2), mr) pairs, or with `ROWS` the AMX kernel's row-major tile
/// of [`bf16_rows_pad`]`(mr)` rows of [`bf16_pairs_pad`]`(kc)` pairs.
pub(super) fn bf16_tile_len<const ROWS: bool>(kc: usize, mr: usize) -> usize {
    if ROWS {
        bf16_rows_pad(mr) * bf16_pairs_pad(kc)
    } else {
        kc.div_ceil(2) * mr
    }
}

/// Where pair `p` of row `i` goes in such a tile.
#[inline(always)]
fn bf16_at<const ROWS: bool>(kc: usize, mr: usize, i: usize, p: usize) -> usize {
    if ROWS {
        i * bf16_pairs_pad(kc) + p
    } else {
        p * mr + i
    }
}

/// Rows of an AMX bf16 A tile of `rows` rows: what the kernel's tile loads read (16 or 32).
pub(super) fn bf16_rows_pad(rows: usize) -> usize {
    if rows <= 16 {
        16
    } else {
        32
    }
}

/// Pairs per row of an AMX bf16 A tile of a K block of `kc`: ceil(kc / 2) pairs (4 bytes each)
/// padded to [`amx_row_bytes`] (the padding is never read).
pub(super) fn bf16_pairs_pad(kc: usize) -> usize {
    amx_row_bytes(4 * kc.div_ceil(2)) / 4
}

/// Bytes from one row of an AMX A tile to the next, for rows of `bytes`: rounded up to whole
/// 64-byte lines (a tile row's width), then to an odd count of them. A tile load reads 16 rows
/// this far apart, and with an even count of lines they share fewer of L1's 64 sets: at 4 KB
/// (bf16, K = 2,048: training's `dW` over 2,048 tokens) all 16 fell in one set and A missed L1 in
/// every load (`dW` took 1.5x the time of the forward product of the same size); int8 at K =
/// 3,072 put them in 4 sets.
pub(super) fn amx_row_bytes(bytes: usize) -> usize {
    (bytes.div_ceil(64) | 1) * 64
}

/// As [`pack_a`] for the bf16 kernels: each (kc, mr) tile becomes bf16 pairs
/// ([`crate::bf16::pair`]; an odd K block's last pair has a zero high half), rounded to nearest
/// even here, once per task and K block, laid out as [`bf16_tile_len`] says (with `ROWS`, an AMX
/// A tile is 16 rows of 32 consecutive bf16). A tile's padding (AMX's) is left as it was, not
/// cleared: its pairs are never read, its rows only reach sums the kernel does not store. The
/// pairs' bits are stored in the f32 scratch.
pub(super) fn pack_a_bf16<const ROWS: bool>(
    x: &[f32],
    k: usize,
    tiles: &[(usize, usize)],
    k0: usize,
    kc: usize,
    dst: &mut Vec<f32>,
) {
    let total = tiles.iter().map(|t| bf16_tile_len::<ROWS>(kc, t.1)).sum();
    dst.resize(total, 0.0);
    #[cfg(target_arch = "x86_64")]
    if !ROWS && crate::Isa::Avx2.is_supported() {
        let pairs = kc.div_ceil(2);
        // The column layout is f32's (pairs, mr) with 32-bit pairs for floats: each tile's rows
        // are converted into a scratch, then transposed into the tile 8 x 8 in registers, where
        // the loop below stores each pair on its own, mr lanes apart (3% of MiniLM's bf16 W2F
        // samples on Zen 4). The same bits.
        let rows = tiles.iter().map(|t| t.1).max().unwrap_or(0);
        let mut scratch = vec![0u32; rows * pairs];
        let mut off = 0;
        for &(r0, mr) in tiles {
            for (i, out) in scratch.chunks_exact_mut(pairs).take(mr).enumerate() {
                crate::bf16::pairs_row_into(&x[(r0 + i) * k + k0..][..kc], out);
            }
            let tile = dst[off..off + pairs * mr].as_mut_ptr();
            let lanes = scratch.as_ptr().cast::<f32>();
            // SAFETY: AVX2 checked; row i < mr of the scratch holds `pairs` lanes, the tile
            // `pairs * mr` (bf16_tile_len without ROWS).
            unsafe { pack_tile_avx2::<false>(|i| lanes.add(i * pairs), mr, pairs, tile) };
            off += pairs * mr;
        }
        return;
    }
    pack_a_bf16_scalar::<ROWS>(x, k, tiles, k0, kc, dst);
}

/// [`pack_a_bf16`]'s reference twin (and its path for the AMX row layout and CPUs without AVX2),
/// `dst` already sized: each row converted to pairs, then each pair stored where it goes.
fn pack_a_bf16_scalar<const ROWS: bool>(
    x: &[f32],
    k: usize,
    tiles: &[(usize, usize)],
    k0: usize,
    kc: usize,
    dst: &mut [f32],
) {
    let (pairs, stride) = (kc.div_ceil(2), bf16_pairs_pad(kc));
    // The column layout's row of pairs, before it is written down its tile column.
    let mut lanes = vec![0u32; if ROWS { 0 } else { pairs }];
    let mut off = 0;
    for &(r0, mr) in tiles {
        let len = bf16_tile_len::<ROWS>(kc, mr);
        let tile = &mut dst[off..off + len];
        for i in 0..mr {
            let row = &x[(r0 + i) * k + k0..][..kc];
            if ROWS {
                // A row's pairs are contiguous: converted straight into the tile.
                let out = &mut tile[i * stride..][..pairs];
                // SAFETY: f32 and u32 have the same size and alignment, and every bit pattern is a
                // valid f32 (the scratch holds the pairs' bits).
                let out = unsafe {
                    std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<u32>(), out.len())
                };
                crate::bf16::pairs_row_into(row, out);
            } else {
                crate::bf16::pairs_row_into(row, &mut lanes);
                for (p, &lane) in lanes.iter().enumerate() {
                    tile[bf16_at::<false>(kc, mr, i, p)] = f32::from_bits(lane);
                }
            }
        }
        off += len;
    }
}

/// Row pairs ahead of [`pack_a_transposed_bf16`]'s reads that it prefetches.
const TRANSPOSED_PREFETCH: usize = 4;

/// As [`pack_a_transposed`] for the bf16 kernels (the pairs and layouts of [`pack_a_bf16`]) from
/// `xt` (K, M): each pair of K rows is interleaved once for all the tiles' rows, then copied into
/// each tile.
pub(super) fn pack_a_transposed_bf16<const ROWS: bool>(
    xt: &[f32],
    m: usize,
    tiles: &[(usize, usize)],
    k0: usize,
    kc: usize,
    dst: &mut Vec<f32>,
) {
    let pairs = kc.div_ceil(2);
    let total = tiles.iter().map(|t| bf16_tile_len::<ROWS>(kc, t.1)).sum();
    dst.resize(total, 0.0);
    let Some(&(first, _)) = tiles.first() else {
        return;
    };
    // The tiles cover rows first..first + rows, in order: one span of each K row.
    let rows: usize = tiles.iter().map(|t| t.1).sum();
    let mut span = vec![0u32; rows];
    let row = |r: usize| (r < kc).then(|| &xt[(k0 + r) * m + first..][..rows]);
    for kk in 0..pairs {
        // The rows are 4M bytes apart: a stride the hardware prefetchers do not follow.
        for r in 2 * (kk + TRANSPOSED_PREFETCH)..2 * (kk + TRANSPOSED_PREFETCH + 1) {
            if let Some(ahead) = row(r) {
                crate::isa::prefetch(ahead);
            }
        }
        let lo = row(2 * kk).expect("kk < ceil(kc / 2)");
        crate::bf16::interleave_into(lo, row(2 * kk + 1), &mut span);
        let mut off = 0;
        for &(r0, mr) in tiles {
            let len = bf16_tile_len::<ROWS>(kc, mr);
            let tile = &mut dst[off..off + len];
            for (i, &lane) in span[r0 - first..][..mr].iter().enumerate() {
                tile[bf16_at::<ROWS>(kc, mr, i, kk)] = f32::from_bits(lane);
            }
            off += len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn pack_a_avx2_and_bf16_rounding_equal_their_scalar_twins() {
        if !crate::Isa::Avx2.is_supported() {
            return;
        }
        let (m, k) = (40, 45);
        // Ordinary values, and for bf16 the cases its rounding treats apart: ties, subnormals,
        // infinities, NaN.
        let mut x: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7919) % 1000) as f32 / 37.0 - 13.0)
            .collect();
        let special = [
            f32::from_bits(0x3f80_8000), // a tie, to even (down)
            f32::from_bits(0x3f81_8000), // a tie, to even (up)
            f32::from_bits(0x0000_1234), // subnormal
            -f32::from_bits(0x0000_0001),
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::from_bits(0xff80_0001), // a signalling NaN
            f32::MAX,
            -0.0,
        ];
        for (i, &v) in special.iter().enumerate() {
            x[i * 97 % (m * k)] = v;
        }
        for mr in 1..=14 {
            for (k0, kc) in [(0, 45), (0, 8), (3, 17), (5, 40), (44, 1)] {
                let tiles: Vec<(usize, usize)> = (0..m / mr)
                    .map(|t| (t * mr, mr))
                    .chain([(m - mr.min(3), mr.min(3))])
                    .collect();
                let (mut want, mut got) = (Vec::new(), Vec::new());
                pack_a::<false>(&x, k, &tiles, k0, kc, &mut want);
                // SAFETY: AVX2 checked above; the tiles are rows of x and k0 + kc <= k.
                unsafe { pack_a_avx2::<false>(&x, k, &tiles, k0, kc, &mut got) };
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "f32 mr {mr} k0 {k0} kc {kc}");
                pack_a::<true>(&x, k, &tiles, k0, kc, &mut want);
                // SAFETY: as above.
                unsafe { pack_a_avx2::<true>(&x, k, &tiles, k0, kc, &mut got) };
                assert_eq!(bits(&got), bits(&want), "bf16 mr {mr} k0 {k0} kc {kc}");
            }
        }
        for len in [0, 7, 8, 45, m * k] {
            let want: Vec<u32> = x[..len]
                .iter()
                .map(|&v| crate::bf16::round(v).to_bits())
                .collect();
            let mut got = vec![1.0; 3];
            round_bf16_into(&x[..len], &mut got);
            let got: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
            assert_eq!(got, want, "round_bf16_into, {len} values");
        }
        // pack_a_bf16's column layout (its AVX2 transposes) against its scalar twin: odd and
        // even K blocks, fewer than 8 pairs, tiles of 1-14 rows, the special values above.
        for mr in 1..=14 {
            for (k0, kc) in [(0, 45), (0, 16), (3, 17), (5, 40), (44, 1), (2, 33)] {
                let tiles: Vec<(usize, usize)> = (0..m / mr)
                    .map(|t| (t * mr, mr))
                    .chain([(m - mr.min(3), mr.min(3))])
                    .collect();
                let total = tiles.iter().map(|t| bf16_tile_len::<false>(kc, t.1)).sum();
                let mut want = vec![0.0; total];
                pack_a_bf16_scalar::<false>(&x, k, &tiles, k0, kc, &mut want);
                let mut got = vec![7.0; 5];
                pack_a_bf16::<false>(&x, k, &tiles, k0, kc, &mut got);
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&got),
                    bits(&want),
                    "bf16 pairs mr {mr} k0 {k0} kc {kc}"
                );
            }
        }
    }
}
