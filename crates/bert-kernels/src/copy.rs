//! Copies of short float rows (a head's 32 or 64 values, a packed tile's 12, a panel's 32) in
//! place: `copy_from_slice` of a length known only at run time is a call to `memcpy`, whose
//! set-up costs more than a row this short (MiniLM's VNNI int8 W2F spent 2.8% of its samples in
//! attention's 128-byte row copies, training's T2 9% in `memcpy` calls from packings and
//! gathers; Intel Xeon).

/// `dst = src` (equal lengths), 16, then 4, then 1 float at a time, as fixed-size moves the
/// compiler keeps inline. The same values as [`slice::copy_from_slice`].
///
/// # Panics
/// If the lengths differ.
#[inline(always)]
pub(crate) fn copy_floats(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len(), "copy_floats: lengths differ");
    let (d16, dst) = dst.as_chunks_mut::<16>();
    let (s16, src) = src.as_chunks::<16>();
    for (d, s) in d16.iter_mut().zip(s16) {
        *d = *s;
    }
    let (d4, dst) = dst.as_chunks_mut::<4>();
    let (s4, src) = src.as_chunks::<4>();
    for (d, s) in d4.iter_mut().zip(s4) {
        *d = *s;
    }
    for (d, s) in dst.iter_mut().zip(src) {
        *d = *s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_every_length_as_copy_from_slice() {
        let src: Vec<f32> = (0..100).map(|i| i as f32 * 0.5 - 7.0).collect();
        for len in 0..=70 {
            for off in [0, 1, 3] {
                let mut want = vec![f32::NAN; len + 2];
                want[1..=len].copy_from_slice(&src[off..off + len]);
                let mut got = vec![f32::NAN; len + 2];
                copy_floats(&mut got[1..=len], &src[off..off + len]);
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "len {len} offset {off}");
            }
        }
    }
}
