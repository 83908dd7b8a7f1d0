//! bfloat16 (`bf16`: f32's sign and exponent, 7 fraction bits) as `u16` bits: the scalar conversions
//! behind [`crate::linear::Bf16Linear`], written to give exactly what AVX512-BF16's
//! `vcvtneps2bf16` gives, so the emulated product (CPUs without the instruction) rounds as the native
//! one does: round to nearest, ties to even; subnormal inputs read as zero (the instruction's DAZ);
//! NaN made quiet, keeping the top of its payload. bf16 -> f32 is exact (a shift).

/// `x` rounded to the nearest bf16, ties to even, as `vcvtneps2bf16` rounds it (subnormals to
/// signed zero; overflow to +-inf; NaN quiet).
pub fn f32_to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return (bits >> 16) as u16 | 0x40;
    }
    if bits & 0x7f80_0000 == 0 {
        // Zero or subnormal: the sign alone.
        return (bits >> 16) as u16 & 0x8000;
    }
    // The largest finite f32 plus the bias is still below 2^32, and rounds up to inf as it should.
    let rounded = bits + 0x7fff + ((bits >> 16) & 1);
    (rounded >> 16) as u16
}

/// The f32 equal to the bf16 `h`.
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// `x` rounded to bf16 and back: the value a bf16 product reads.
pub fn round(x: f32) -> f32 {
    bf16_to_f32(f32_to_bf16(x))
}

/// Two consecutive K values of one GEMM operand row as bf16, the lower K in the low half: one
/// 32-bit lane of `vdpbf16ps`, which adds `a.lo * b.lo + a.hi * b.hi` to an f32.
pub fn pair(lo: f32, hi: f32) -> u32 {
    u32::from(f32_to_bf16(lo)) | u32::from(f32_to_bf16(hi)) << 16
}

/// `vals` as bf16 pairs into `dst` (`ceil(len / 2)` lanes; an odd last value pairs with zero):
/// [`pair`] of each two, 32 values per `vcvtne2ps2bf16` where the CPU has AVX512-BF16, a whole row
/// in one call; [`pair`] itself for the last `len % 32`.
#[inline]
pub(crate) fn pairs_row_into(vals: &[f32], dst: &mut [u32]) {
    assert_eq!(dst.len(), vals.len().div_ceil(2));
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if crate::isa::has_avx512_bf16() {
        done = vals.len() / 32 * 32;
        // SAFETY: the CPU has AVX-512F and AVX512-BF16; `vals` holds `done` values, `dst` half.
        unsafe { x86::pairs32s(&vals[..done], &mut dst[..done / 2]) };
    }
    for (d, v) in dst[done / 2..].iter_mut().zip(vals[done..].chunks(2)) {
        *d = pair(v[0], v.get(1).copied().unwrap_or(0.0));
    }
}

/// `lo[i]` and `hi[i]` (zero where `hi` is `None`) as bf16 pairs into `dst[i]`: two rows of K
/// interleaved into one row of pair lanes (the transposed operands of training's products).
/// `vcvtneps2bf16` 16 at a time where the CPU has AVX512-BF16 (one call for the whole row: these
/// rows are packed every training step), [`pair`] otherwise and for the last `len % 16`.
#[inline]
pub(crate) fn interleave_into(lo: &[f32], hi: Option<&[f32]>, dst: &mut [u32]) {
    assert!(dst.len() == lo.len() && hi.is_none_or(|h| h.len() == lo.len()));
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if crate::isa::has_avx512_bf16() {
        done = lo.len() / 16 * 16;
        // SAFETY: the CPU has AVX-512F and AVX512-BF16; `lo`, `hi` and `dst` hold `done` values.
        unsafe { x86::interleave16s(&lo[..done], hi.map(|h| &h[..done]), &mut dst[..done]) };
    }
    for i in done..lo.len() {
        dst[i] = pair(lo[i], hi.map_or(0.0, |h| h[i]));
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU has AVX-512F and AVX512-BF16; `vals` holds a multiple of 32 floats, `dst` half as
    /// many lanes.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn pairs32s(vals: &[f32], dst: &mut [u32]) {
        debug_assert!(vals.len().is_multiple_of(32) && dst.len() * 2 == vals.len());
        for (j, d) in (0..vals.len()).step_by(32).zip((0..dst.len()).step_by(16)) {
            let lo = _mm512_loadu_ps(vals.as_ptr().add(j));
            let hi = _mm512_loadu_ps(vals.as_ptr().add(j + 16));
            // The second operand gives the low 16 bf16: vals[j..j + 16], then vals[j + 16..j + 32],
            // in order, so 32-bit lane i holds (vals[j + 2i], vals[j + 2i + 1]).
            let h = _mm512_cvtne2ps_pbh(hi, lo);
            _mm512_storeu_si512(
                dst.as_mut_ptr().add(d).cast(),
                std::mem::transmute::<__m512bh, __m512i>(h),
            );
        }
    }

    /// # Safety
    /// The CPU has AVX-512F and AVX512-BF16; `lo` (and `hi`) and `dst` hold the same multiple of 16.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn interleave16s(lo: &[f32], hi: Option<&[f32]>, dst: &mut [u32]) {
        debug_assert!(lo.len().is_multiple_of(16) && dst.len() == lo.len());
        // 16 bf16 zero-extended to 32-bit lanes: the low half of each pair.
        let widen =
            |v: __m256bh| _mm512_cvtepu16_epi32(std::mem::transmute::<__m256bh, __m256i>(v));
        for j in (0..lo.len()).step_by(16) {
            let l = widen(_mm512_cvtneps_pbh(_mm512_loadu_ps(lo.as_ptr().add(j))));
            let lanes = match hi {
                Some(hi) => {
                    let h = widen(_mm512_cvtneps_pbh(_mm512_loadu_ps(hi.as_ptr().add(j))));
                    _mm512_or_si512(l, _mm512_slli_epi32::<16>(h))
                }
                None => l,
            };
            _mm512_storeu_si512(dst.as_mut_ptr().add(j).cast(), lanes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bf16_round_trips_except_nan_and_subnormals() {
        for h in 0..=u16::MAX {
            let x = bf16_to_f32(h);
            if x.is_nan() {
                assert!(bf16_to_f32(f32_to_bf16(x)).is_nan(), "{h:#06x}");
            } else if h & 0x7f80 == 0 {
                assert_eq!(f32_to_bf16(x), h & 0x8000, "{h:#06x}");
            } else {
                assert_eq!(f32_to_bf16(x), h, "{h:#06x}");
            }
        }
    }

    /// Normal values round as the `half` crate rounds them (it keeps subnormals, we do not).
    #[test]
    fn f32_to_bf16_matches_half_on_normal_values() {
        for bits in (0..=u32::MAX).step_by(251) {
            let x = f32::from_bits(bits);
            if x.is_nan() || bits & 0x7f80_0000 == 0 {
                continue;
            }
            assert_eq!(
                f32_to_bf16(x),
                half::bf16::from_f32(x).to_bits(),
                "{x:e} ({bits:#010x})"
            );
        }
    }

    #[test]
    fn f32_to_bf16_edge_cases() {
        let cases: [(u32, u16); 14] = [
            (0x0000_0000, 0x0000),
            (0x8000_0000, 0x8000),
            (0x0000_0001, 0x0000), // subnormal: zero (DAZ)
            (0x807f_ffff, 0x8000),
            (0x3f80_0000, 0x3f80),
            (0x3f80_8000, 0x3f80), // 1 + 2^-8: halfway, ties to even (down)
            (0x3f81_8000, 0x3f82), // halfway above an odd bf16: up
            (0x3f80_8001, 0x3f81), // just above halfway
            (0x7f7f_ffff, 0x7f80), // the largest f32 rounds to inf
            (0xff7f_ffff, 0xff80),
            (0x7f80_0000, 0x7f80),
            (0x7fc0_0000, 0x7fc0),
            (0x7f80_0001, 0x7fc0), // signalling NaN made quiet
            (0xff80_0001, 0xffc0),
        ];
        for (bits, want) in cases {
            assert_eq!(f32_to_bf16(f32::from_bits(bits)), want, "{bits:#010x}");
        }
        assert_eq!(pair(1.0, -2.0), 0xc000_3f80);
    }

    /// The vector conversions (where the CPU has them) give the scalar rounding's bits on the edge
    /// cases and a sweep of bit patterns.
    #[test]
    fn vector_pair_conversions_match_pair() {
        let mut vals: Vec<f32> = [
            0x0000_0000u32,
            0x8000_0000,
            0x0000_0001,
            0x807f_ffff,
            0x3f80_8000,
            0x3f81_8000,
            0x3f80_8001,
            0x7f7f_ffff,
            0xff7f_ffff,
            0x7f80_0000,
            0x7fc0_0000,
            0x7f80_0001,
            0xff80_0001,
        ]
        .map(f32::from_bits)
        .to_vec();
        vals.extend((0..=u32::MAX).step_by(65_537).map(f32::from_bits));
        // Rows of 32 (one vector conversion each) and of 75 (two whole 32s and a tail of 11, odd:
        // the last pair's high half zero).
        for (c, row) in vals.chunks(32).chain(vals.chunks(75)).enumerate() {
            let mut got = vec![0u32; row.len().div_ceil(2)];
            pairs_row_into(row, &mut got);
            for (j, g) in got.iter().enumerate() {
                let hi = row.get(2 * j + 1).copied().unwrap_or(0.0);
                assert_eq!(*g, pair(row[2 * j], hi), "row {c} lane {j}");
            }
        }
        // The same values as pairs of rows of 37 (two whole 16s and a tail; the last shorter), with
        // and without a high row.
        for (c, chunk) in vals.chunks(74).enumerate() {
            let (lo, hi) = chunk.split_at(chunk.len() / 2);
            let hi = &hi[..lo.len()];
            for high in [Some(hi), None] {
                let mut got = vec![0u32; lo.len()];
                interleave_into(lo, high, &mut got);
                for (j, g) in got.iter().enumerate() {
                    let want = pair(lo[j], high.map_or(0.0, |h| h[j]));
                    assert_eq!(*g, want, "chunk {c} lane {j} high {}", high.is_some());
                }
            }
        }
    }
}
