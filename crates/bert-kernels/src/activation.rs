//! Feed-forward activations. `Gelu` is the exact erf form that transformers' `gelu` uses; its erf is a
//! rational approximation accurate to a few f32 ulps, not the tanh shortcut.

use rayon::prelude::*;

/// An element-wise activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `x * 0.5 * (1 + erf(x / sqrt(2)))`.
    Gelu,
    /// `0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x^3)))` (`gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
    /// `max(x, 0)`.
    Relu,
    /// `x * sigmoid(x)`.
    Silu,
}

impl Activation {
    /// Applies the activation to one value.
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Gelu => 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2)),
            Activation::GeluTanh => {
                const SQRT_2_OVER_PI: f32 = 0.797_884_6;
                0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)).tanh())
            }
            Activation::Relu => x.max(0.0),
            Activation::Silu => x / (1.0 + (-x).exp()),
        }
    }

    /// Applies the activation in place, in parallel over chunks.
    pub fn apply_slice(self, xs: &mut [f32]) {
        xs.par_chunks_mut(16 * 1024).for_each(|c| {
            for x in c {
                *x = self.apply(*x);
            }
        });
    }
}

/// Abramowitz & Stegun 7.1.26: erf(a) = 1 - t (a1 + a2 t + ... + a5 t^4) e^(-a^2), t = 1 / (1 + p a),
/// for a >= 0; the SIMD GELU epilogues use the same constants.
pub(crate) const ERF_P: f32 = 0.327_591_1;
pub(crate) const ERF_A: [f32; 5] = [
    0.254_829_6,
    -0.284_496_74,
    1.421_413_7,
    -1.453_152,
    1.061_405_4,
];

/// erf(x) for f32 by Abramowitz & Stegun 7.1.26, max abs error 1.5e-7 (about 2 f32 ulps near 1):
/// the form ATen's vectorized CPU `erf` uses, so GELU stays within 1e-6 of PyTorch's.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let [a1, a2, a3, a4, a5] = ERF_A;
    let a = x.abs();
    let t = 1.0 / (1.0 + ERF_P * a);
    let poly = ((((a5 * t + a4) * t + a3) * t + a2) * t + a1) * t;
    let r = 1.0 - poly * (-a * a).exp();
    r.copysign(x)
}
