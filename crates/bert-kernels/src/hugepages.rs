//! Memory for the weights packed at load, on 2 MiB transparent huge pages.
//!
//! A batch-1 forward (W1) streams every packed weight once and does little arithmetic on it: its
//! speed is the memory system's. On 4 KiB pages that stream crosses a page every 4 KiB, and
//! MiniLM's 42 MB of f32 layer weights span about 10,000 pages, far more than the second-level
//! TLB holds (2,048-3,072 entries on recent Intel and AMD cores), so every page costs a page
//! walk. On 2 MiB pages the same weights span 21. Linux gives a process huge pages where it asks
//! for them (`madvise(MADV_HUGEPAGE)`; `/sys/kernel/mm/transparent_hugepage/enabled` is `madvise`
//! on most distributions), on ranges that are 2 MiB-aligned and advised before they are first
//! touched.
//!
//! A layer's matrices are mostly smaller than 2 MiB (MiniLM's 384 x 384 is 0.6 MB), so each is not
//! given its own pages: they are carved one after another from regions of [`REGION_BYTES`], each
//! 2 MiB-aligned and advised once. A region is unmapped when its last buffer is dropped (the
//! arena keeps only a weak reference to the region it is filling), so dropping a model gives its
//! memory back; a region shared by two models (the first's last matrices, the second's first)
//! stays mapped until both are dropped, at most one region's worth. Only weights packed once
//! (`Linear::new` and the other load-time constructors) live here: training's per-step packings
//! are freed every step and stay on the heap.
//!
//! `BERT_KERNELS_HUGE_PAGES=0` ([`HUGE_PAGES_ENV`]) keeps the layout and skips the advice (4 KiB
//! pages, for comparison). On other systems the regions come from the global allocator.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// Set to `0` to skip the huge-page advice.
pub const HUGE_PAGES_ENV: &str = "BERT_KERNELS_HUGE_PAGES";

/// A huge page: the alignment of a region.
const HUGE_PAGE: usize = 2 << 20;

/// Bytes of one region; a larger buffer gets a region of its own, rounded up to whole huge pages.
const REGION_BYTES: usize = 64 << 20;

/// Alignment of each buffer within a region: a cache line.
const ALIGN: usize = 64;

/// Whether regions are advised for huge pages (decided once per process).
fn advise() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var(HUGE_PAGES_ENV).map_or(true, |v| v.trim() != "0"))
}

/// Element types whose all-zero bytes are a valid value (a fresh region is zero-filled).
///
/// # Safety
/// Implement only for plain integer and float types (and `repr(transparent)` wrappers of them).
pub(crate) unsafe trait Zeroable: Copy {}
// SAFETY: plain numbers: every bit pattern, zero included, is a value.
unsafe impl Zeroable for f32 {}
// SAFETY: as above.
unsafe impl Zeroable for u16 {}
// SAFETY: as above.
unsafe impl Zeroable for u32 {}
// SAFETY: as above.
unsafe impl Zeroable for i8 {}

/// One zero-filled, 2 MiB-aligned mapping.
struct Region {
    base: NonNull<u8>,
    bytes: usize,
}

// SAFETY: a Region is an owned allocation; buffers carved from it are disjoint, each accessed
// through its own `HugeBuf` (whose Send/Sync follow its element type).
unsafe impl Send for Region {}
// SAFETY: as above; the region itself is never read or written through a shared reference.
unsafe impl Sync for Region {}

impl Region {
    /// Maps `bytes` (a multiple of [`HUGE_PAGE`]) of zeroed memory, aligned to a huge page and
    /// advised for huge pages, none of it touched yet.
    #[cfg(target_os = "linux")]
    fn map(bytes: usize) -> Self {
        let total = bytes + HUGE_PAGE;
        // SAFETY: an anonymous private mapping, no file or address hint; checked for failure below.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            std::alloc::handle_alloc_error(Self::layout(total));
        }
        let raw = raw.cast::<u8>();
        let lead = raw.align_offset(HUGE_PAGE);
        // SAFETY: `lead < HUGE_PAGE`, so `raw + lead .. + bytes` lies within the `total` mapped;
        // the unmapped head and tail are whole pages of that mapping (mmap returns page-aligned
        // memory and both sizes are page multiples).
        let base = unsafe {
            if lead > 0 {
                libc::munmap(raw.cast(), lead);
            }
            // Never empty: lead < HUGE_PAGE.
            libc::munmap(raw.add(lead + bytes).cast(), HUGE_PAGE - lead);
            let base = raw.add(lead);
            if advise() {
                // Advice only: a kernel without THP answers EINVAL, and the pages stay 4 KiB.
                libc::madvise(base.cast(), bytes, libc::MADV_HUGEPAGE);
            }
            base
        };
        Region {
            base: NonNull::new(base).expect("mmap returned a non-null mapping"),
            bytes,
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn map(bytes: usize) -> Self {
        let layout = Self::layout(bytes);
        // SAFETY: `layout` has a non-zero size.
        let base = unsafe { std::alloc::alloc_zeroed(layout) };
        match NonNull::new(base) {
            Some(base) => Region { base, bytes },
            None => std::alloc::handle_alloc_error(layout),
        }
    }

    fn layout(bytes: usize) -> std::alloc::Layout {
        std::alloc::Layout::from_size_align(bytes, HUGE_PAGE).expect("region size fits a layout")
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: `base .. base + bytes` is the mapping (or allocation) `map` made, unused now:
        // every buffer carved from it held an `Arc` of this region.
        unsafe {
            #[cfg(target_os = "linux")]
            libc::munmap(self.base.as_ptr().cast(), self.bytes);
            #[cfg(not(target_os = "linux"))]
            std::alloc::dealloc(self.base.as_ptr(), Self::layout(self.bytes));
        }
    }
}

/// Bytes of all live [`HugeBuf`]s: the weights this process holds packed.
static HELD: AtomicUsize = AtomicUsize::new(0);

/// Bytes of weights packed at load that the process holds now (all models): how much a batch-1
/// forward streams, and whether that fits a last-level cache.
pub(crate) fn held_bytes() -> usize {
    HELD.load(Ordering::Relaxed)
}

/// The region being filled (weakly held: it lives as long as a buffer in it) and its used bytes.
static ARENA: Mutex<(Weak<Region>, usize)> = Mutex::new((Weak::new(), 0));

/// `bytes` at an [`ALIGN`]ed offset of a region with room, mapping a new one if needed.
fn carve(bytes: usize) -> (Arc<Region>, usize) {
    let bytes = bytes.max(1).next_multiple_of(ALIGN);
    let mut arena = ARENA.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(region) = arena.0.upgrade() {
        if arena.1 + bytes <= region.bytes {
            let off = arena.1;
            arena.1 += bytes;
            return (region, off);
        }
    }
    let region = Arc::new(Region::map(
        bytes.max(REGION_BYTES).next_multiple_of(HUGE_PAGE),
    ));
    // A buffer too large for a shared region keeps the current one open for the next.
    if bytes <= REGION_BYTES {
        *arena = (Arc::downgrade(&region), bytes);
    }
    (region, 0)
}

/// `len` zeroed `T`s, 64-byte aligned, in a huge-page region shared with other weights.
pub(crate) struct HugeBuf<T> {
    ptr: NonNull<T>,
    len: usize,
    /// Keeps the region mapped.
    _region: Arc<Region>,
}

// SAFETY: a HugeBuf owns its `len` elements exclusively (no other buffer overlaps them), like a
// `Vec<T>`.
unsafe impl<T: Send> Send for HugeBuf<T> {}
// SAFETY: as above: shared access only reads.
unsafe impl<T: Sync> Sync for HugeBuf<T> {}

impl<T: Zeroable> HugeBuf<T> {
    pub(crate) fn zeroed(len: usize) -> Self {
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .expect("buffer size overflows usize");
        assert!(std::mem::align_of::<T>() <= ALIGN);
        let (region, off) = carve(bytes);
        // SAFETY: `off + bytes <= region.bytes` (carve's check), so the pointer is in bounds; it is
        // ALIGN-aligned (region base aligned to a huge page, offsets to ALIGN).
        let ptr = unsafe { NonNull::new_unchecked(region.base.as_ptr().add(off).cast::<T>()) };
        HELD.fetch_add(bytes, Ordering::Relaxed);
        HugeBuf {
            ptr,
            len,
            _region: region,
        }
    }
}

impl<T> Drop for HugeBuf<T> {
    fn drop(&mut self) {
        HELD.fetch_sub(self.len * std::mem::size_of::<T>(), Ordering::Relaxed);
    }
}

impl<T> std::ops::Deref for HugeBuf<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `len` initialized (zero-filled, `T: Zeroable`) elements owned by this buffer.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> std::ops::DerefMut for HugeBuf<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as `deref`, and `&mut self` is the only access to these elements.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_zeroed_aligned_and_disjoint() {
        let mut a = HugeBuf::<f32>::zeroed(1000);
        let mut b = HugeBuf::<i8>::zeroed(3);
        let mut c = HugeBuf::<u16>::zeroed(0);
        assert_eq!((a.len(), b.len(), c.len()), (1000, 3, 0));
        assert_eq!(a.as_ptr() as usize % ALIGN, 0);
        assert_eq!(b.as_ptr() as usize % ALIGN, 0);
        assert!(a.iter().all(|&v| v == 0.0) && b.iter().all(|&v| v == 0));
        a.fill(1.5);
        b.fill(-7);
        c.fill(9);
        // Writing one buffer leaves the others as they were, and a fresh one is zero.
        let d = HugeBuf::<u32>::zeroed(100);
        assert!(a.iter().all(|&v| v == 1.5));
        assert!(b.iter().all(|&v| v == -7));
        assert!(d.iter().all(|&v| v == 0));
        let (a0, b0) = (a.as_ptr() as usize, b.as_ptr() as usize);
        assert!(b0 >= a0 + 4000 || b0 + 3 <= a0);
    }

    #[test]
    fn a_large_buffer_has_its_own_region_freed_with_it() {
        let mut big = HugeBuf::<u32>::zeroed(REGION_BYTES / 4 + 5);
        assert_eq!(big.as_ptr() as usize % HUGE_PAGE, 0);
        assert!(big.iter().all(|&v| v == 0));
        big.fill(u32::MAX);
        let region = Arc::downgrade(&big._region);
        assert_eq!(
            region.upgrade().map(|r| r.bytes),
            Some(REGION_BYTES + HUGE_PAGE)
        );
        drop(big);
        assert!(
            region.upgrade().is_none(),
            "the region outlived its only buffer"
        );
    }
}
