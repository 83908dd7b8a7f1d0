//! IEEE 754 binary16 (`f16`) as `u16` bits: the scalar conversions behind the f16 weights of
//! [`crate::linear::F16Linear`]. f32 -> f16 rounds to nearest, ties to even (what `vcvtps2ph` with
//! `_MM_FROUND_TO_NEAREST_INT` and `torch.Tensor.half()` do); f16 -> f32 is exact (what `vcvtph2ps`
//! does), NaN made quiet.

/// `x` rounded to the nearest f16, ties to even; overflow gives +-inf, NaN a quiet NaN keeping the
/// top of its payload.
pub fn f32_to_f16(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let man = bits & 0x7f_ffff;
    if exp == 0xff {
        let nan = if man != 0 {
            0x200 | (man >> 13) as u16
        } else {
            0
        };
        return sign | 0x7c00 | nan;
    }
    // The f16 biased exponent.
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        // Subnormal f16 (or zero): the 24-bit significand shifted to units of 2^-24. Below half the
        // smallest subnormal (e < -10) everything rounds to zero.
        if e < -10 {
            return sign;
        }
        let m = man | 0x80_0000;
        let shift = (14 - e) as u32;
        return sign | round_shift(m, shift) as u16;
    }
    // Normal: a carry out of the significand bumps the exponent, up to inf, as it should.
    let r = ((e as u32) << 10) | (man >> 13);
    sign | round_ties_even(r, man & 0x1fff, 0x1000) as u16
}

/// `m >> shift`, rounded to nearest, ties to even.
fn round_shift(m: u32, shift: u32) -> u32 {
    round_ties_even(m >> shift, m & ((1 << shift) - 1), 1 << (shift - 1))
}

/// `r` plus one if the dropped bits `rem` exceed `half`, or equal it and `r` is odd.
fn round_ties_even(r: u32, rem: u32, half: u32) -> u32 {
    r + u32::from(rem > half || (rem == half && r & 1 == 1))
}

/// The f32 equal to the f16 `h` (every f16 is exactly an f32); a NaN comes back quiet.
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let bits = match (exp, man) {
        (0, 0) => sign,
        // Subnormal: man x 2^-24, exact in f32.
        (0, _) => sign | (man as f32 * f32::from_bits(0x3380_0000)).to_bits(),
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, _) => sign | 0x7fc0_0000 | (man << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every f16 against the `half` crate; NaNs only as NaNs.
    #[test]
    fn f16_to_f32_is_exact_for_every_f16() {
        for h in 0..=u16::MAX {
            let (ours, want) = (f16_to_f32(h), half::f16::from_bits(h).to_f32());
            if want.is_nan() {
                assert!(ours.is_nan(), "{h:#06x}");
            } else {
                assert_eq!(ours.to_bits(), want.to_bits(), "{h:#06x}");
            }
            // Round trip: every non-NaN f16 is an f32 that converts back to itself.
            if !want.is_nan() {
                assert_eq!(f32_to_f16(ours), h, "{h:#06x}");
            }
        }
    }

    #[test]
    fn f32_to_f16_matches_half_on_a_sweep_of_bit_patterns() {
        // Every 251st f32 bit pattern (17 M values: all exponents, both signs, assorted low bits).
        for bits in (0..=u32::MAX).step_by(251) {
            let x = f32::from_bits(bits);
            let want = half::f16::from_f32(x);
            let ours = f32_to_f16(x);
            if x.is_nan() {
                assert!(half::f16::from_bits(ours).is_nan(), "{bits:#010x}");
            } else {
                assert_eq!(ours, want.to_bits(), "{x:e} ({bits:#010x})");
            }
        }
    }

    #[test]
    fn f32_to_f16_edge_cases() {
        let tiny = f32::from_bits(0x3380_0000); // 2^-24, the smallest f16 subnormal
        let cases: [(f32, u16); 18] = [
            (0.0, 0x0000),
            (-0.0, 0x8000),
            (1.0, 0x3c00),
            (-2.0, 0xc000),
            (65504.0, 0x7bff),  // largest finite
            (65519.99, 0x7bff), // just under the halfway point to 65536
            (65520.0, 0x7c00),  // halfway: ties to even = inf
            (1e10, 0x7c00),     // overflow
            (f32::INFINITY, 0x7c00),
            (f32::NEG_INFINITY, 0xfc00),
            (tiny, 0x0001),
            (tiny * 0.5, 0x0000), // halfway to the smallest subnormal: ties to even (0)
            (tiny * 0.500_001, 0x0001),
            (tiny * 1.5, 0x0002),   // halfway between 1 and 2 units: to even (2)
            (tiny * 2.5, 0x0002),   // halfway between 2 and 3 units: to even (2)
            (6.097_555e-5, 0x03ff), // largest subnormal
            (1.0 + 1.0 / 2048.0, 0x3c00), // halfway between 1 and its successor: to even
            (1.0 + 3.0 / 2048.0, 0x3c02), // halfway between 0x3c01 and 0x3c02: to even
        ];
        for (x, want) in cases {
            assert_eq!(f32_to_f16(x), want, "{x:e}");
        }
        let nan = f32_to_f16(f32::NAN);
        assert_eq!(nan & 0x7c00, 0x7c00);
        assert_ne!(nan & 0x3ff, 0);
        // A signalling NaN whose payload is only in the low bits stays a NaN.
        assert_ne!(f32_to_f16(f32::from_bits(0x7f80_0001)) & 0x3ff, 0);
        assert!(f16_to_f32(0x7c01).is_nan());
        assert_eq!(f16_to_f32(0x0001), tiny);
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
    }
}
