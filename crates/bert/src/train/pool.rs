//! Activation buffers reused from one training step to the next.
//!
//! A step allocates a few hundred MB of activations and gradients (bert-base at 16 x 128: ~1.5 GB)
//! and frees them at its end. Through the allocator that means fresh pages every step: page faults,
//! kernel zeroing and TLB shootdowns when they are unmapped, about a tenth of a step. The pool keeps
//! the buffers of the last steps instead; it never holds more buffers than a step had alive at once.

use std::sync::Mutex;

/// A free list of f32 buffers shared by an [`super::Encoder`] and its tapes.
#[derive(Debug, Default)]
pub(crate) struct BufferPool {
    free: Mutex<Vec<Vec<f32>>>,
}

impl BufferPool {
    /// A buffer of `len` floats whose contents are unspecified (an earlier step's values): for
    /// outputs that the caller overwrites entirely.
    pub(crate) fn take(&self, len: usize) -> Vec<f32> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        // The smallest free buffer that holds `len`.
        let fit = free
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= len)
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i);
        if let Some(i) = fit {
            let mut b = free.swap_remove(i);
            drop(free);
            b.resize(len, 0.0);
            return b;
        }
        // None is large enough: replace the largest (so the pool does not grow with varying shapes).
        let largest = free
            .iter()
            .enumerate()
            .max_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i);
        if let Some(i) = largest {
            free.swap_remove(i);
        }
        drop(free);
        vec![0.0; len]
    }

    /// As [`BufferPool::take`], every element 0.
    pub(crate) fn take_zeroed(&self, len: usize) -> Vec<f32> {
        let mut b = self.take(len);
        b.fill(0.0);
        b
    }

    /// A copy of `src` in a pooled buffer.
    pub(crate) fn copy_of(&self, src: &[f32]) -> Vec<f32> {
        let mut b = self.take(src.len());
        b.copy_from_slice(src);
        b
    }

    /// Returns `b` for reuse.
    pub(crate) fn give(&self, b: Vec<f32>) {
        if b.capacity() > 0 {
            self.free.lock().unwrap_or_else(|e| e.into_inner()).push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_the_smallest_fitting_buffer_and_stays_bounded() {
        let pool = BufferPool::default();
        let (a, b) = (pool.take(100), pool.take(1000));
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        pool.give(a);
        pool.give(b);
        let c = pool.take(50);
        assert_eq!((c.len(), c.as_ptr()), (50, pa));
        let d = pool.take(100);
        assert_eq!((d.len(), d.as_ptr()), (100, pb));
        pool.give(c);
        pool.give(d);
        // Larger than any free buffer: a fresh zeroed one, and the largest free buffer is dropped.
        let e = pool.take(5000);
        assert!(e.iter().all(|&v| v == 0.0));
        assert_eq!(pool.free.lock().unwrap().len(), 1);
        let mut f = pool.take_zeroed(80);
        assert!(f.iter().all(|&v| v == 0.0));
        f[0] = 1.0;
        assert_eq!(pool.copy_of(&f)[..2], [1.0, 0.0]);
    }
}
