//! Backward of the feed-forward activations: `dz = dy * act'(z)`.

use rayon::prelude::*;

use crate::Activation;

/// `act'(z)`, in f32 (the forward is [`Activation::apply`]).
#[inline]
pub fn derivative(act: Activation, z: f32) -> f32 {
    match act {
        Activation::Gelu => {
            // d/dz [z Phi(z)] = Phi(z) + z phi(z)
            const INV_SQRT_2PI: f32 = 0.398_942_3;
            let cdf = 0.5 * (1.0 + crate::activation::erf(z * std::f32::consts::FRAC_1_SQRT_2));
            cdf + z * INV_SQRT_2PI * (-0.5 * z * z).exp()
        }
        Activation::GeluTanh => {
            const C: f32 = 0.797_884_6;
            let u = C * (z + 0.044_715 * z * z * z);
            let t = u.tanh();
            0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * C * (1.0 + 3.0 * 0.044_715 * z * z)
        }
        Activation::Relu => {
            if z > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Activation::Silu => {
            let s = 1.0 / (1.0 + (-z).exp());
            s * (1.0 + z * (1.0 - s))
        }
    }
}

/// `dz = dy * act'(z)` element-wise (`dz` may hold anything on entry).
pub fn activation_backward(dz: &mut [f32], dy: &[f32], z: &[f32], act: Activation) {
    assert_eq!(dz.len(), dy.len(), "activation_backward: dz size");
    assert_eq!(z.len(), dy.len(), "activation_backward: z size");
    activation_backward_with(crate::Isa::selected(), dz, dy, z, act);
}

/// [`activation_backward`] with an explicit ISA (its SIMD GELU derivative sits beside the forward's
/// in `linear/avx512.rs` and `linear/avx2.rs`).
pub fn activation_backward_with(
    isa: crate::Isa,
    dz: &mut [f32],
    dy: &[f32],
    z: &[f32],
    act: Activation,
) {
    assert_eq!(dz.len(), dy.len(), "activation_backward: dz size");
    assert_eq!(z.len(), dy.len(), "activation_backward: z size");
    dz.par_chunks_mut(16 * 1024)
        .zip(dy.par_chunks(16 * 1024).zip(z.par_chunks(16 * 1024)))
        .for_each(|(d, (g, z))| crate::linear::activation_backward_slice(isa, act, d, g, z));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference;

    #[test]
    fn derivatives_match_finite_differences_of_the_reference() {
        for act in [
            Activation::Gelu,
            Activation::GeluTanh,
            Activation::Relu,
            Activation::Silu,
        ] {
            for i in -40..=40 {
                let z = i as f32 * 0.15 + 0.013;
                let h = 1e-3f64;
                let f = |v: f64| reference::activation(act, v as f32) as f64;
                let fd = (f(z as f64 + h) - f(z as f64 - h)) / (2.0 * h);
                let want = reference::activation_derivative(act, z);
                assert!((derivative(act, z) - want).abs() < 1e-5, "{act:?} at {z}");
                assert!(
                    (fd as f32 - want).abs() < 2e-3,
                    "{act:?} at {z}: fd {fd} vs {want}"
                );
            }
        }
    }

    #[test]
    fn every_isa_matches_the_reference_derivative() {
        // 1,000 + 7 values: whole vectors and a scalar tail, |z| up to 7.5.
        let z: Vec<f32> = (0..1007)
            .map(|i| (i as f32 - 503.0) * 0.015 + 0.0013)
            .collect();
        let dy: Vec<f32> = (0..1007).map(|i| 1.0 + (i % 7) as f32 * 0.25).collect();
        for isa in [crate::Isa::Scalar, crate::Isa::Avx2, crate::Isa::Avx512] {
            if !isa.is_supported() {
                continue;
            }
            for act in [
                Activation::Gelu,
                Activation::GeluTanh,
                Activation::Relu,
                Activation::Silu,
            ] {
                let mut dz = vec![f32::NAN; z.len()];
                activation_backward_with(isa, &mut dz, &dy, &z, act);
                for i in 0..z.len() {
                    let want = dy[i] * reference::activation_derivative(act, z[i]);
                    assert!(
                        (dz[i] - want).abs() < 1e-5 * dy[i].abs().max(1.0),
                        "{isa:?} {act:?} at {}: {} vs {want}",
                        z[i],
                        dz[i]
                    );
                }
            }
        }
    }
}
