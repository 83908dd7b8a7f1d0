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
}
