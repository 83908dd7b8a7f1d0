//! The element-wise AdamW update of `torch.optim.AdamW` (single-tensor path), over one tensor's
//! parameters, gradients and moments. Memory-bound (7 streams of f32); the portable body is compiled
//! again under AVX2 / AVX-512 so LLVM vectorizes its square roots and divisions.

use rayon::prelude::*;

use crate::Isa;

/// One step's scalars: the learning rate, decay and bias corrections of step `t`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWStep {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// Decoupled weight decay of this tensor (0 for biases and LayerNorm weights).
    pub weight_decay: f32,
    /// `1 - beta1^t`.
    pub bc1: f32,
    /// `sqrt(1 - beta2^t)`.
    pub bc2_sqrt: f32,
}

/// Elements per task.
const CHUNK: usize = 1 << 14;

/// `p *= 1 - lr wd; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
/// p -= lr / bc1 * m / (sqrt(v) / bc2_sqrt + eps)`, element-wise, in parallel chunks.
pub fn adamw_update(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: AdamWStep) {
    adamw_update_with(Isa::selected(), p, g, m, v, s)
}

/// [`adamw_update`] compiled for `isa` (which must be supported by this CPU).
pub fn adamw_update_with(
    isa: Isa,
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    s: AdamWStep,
) {
    let n = p.len();
    assert!(
        g.len() == n && m.len() == n && v.len() == n,
        "adamw_update: sizes"
    );
    assert!(isa.is_supported(), "adamw_update: {isa:?} not supported");
    p.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK))
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .for_each(|(((p, g), m), v)| match isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU supports AVX-512F (asserted above).
            Isa::Avx512 => unsafe { chunk_avx512(p, g, m, v, s) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU supports AVX2 + FMA (asserted above).
            Isa::Avx2 => unsafe { chunk_avx2(p, g, m, v, s) },
            _ => chunk(p, g, m, v, s),
        });
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn chunk_avx512(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: AdamWStep) {
    chunk(p, g, m, v, s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn chunk_avx2(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: AdamWStep) {
    chunk(p, g, m, v, s)
}

/// The update of one chunk; inlined into each ISA's copy. Same operations, in the same order, as
/// torch's `_single_tensor_adamw` (no FMA contraction: Rust does not fuse `a * b + c`).
#[inline(always)]
fn chunk(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: AdamWStep) {
    let step_size = s.lr / s.bc1;
    let keep = 1.0 - s.lr * s.weight_decay;
    let decay = s.weight_decay != 0.0;
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        if decay {
            *p *= keep;
        }
        *m = s.beta1 * *m + (1.0 - s.beta1) * g;
        *v = s.beta2 * *v + (1.0 - s.beta2) * g * g;
        let denom = v.sqrt() / s.bc2_sqrt + s.eps;
        *p -= step_size * *m / denom;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference;

    #[test]
    fn every_isa_matches_the_reference() {
        let n = 3 * CHUNK + 37;
        let data = |seed: usize| -> Vec<f32> {
            (0..n)
                .map(|i| (((i + seed) * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.1)
                .collect()
        };
        let s = AdamWStep {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            bc1: 1.0 - 0.9f32.powi(3),
            bc2_sqrt: (1.0 - 0.999f32.powi(3)).sqrt(),
        };
        let v0: Vec<f32> = data(4).iter().map(|x| x * x).collect();
        for wd in [0.0, 0.01] {
            let s = AdamWStep {
                weight_decay: wd,
                ..s
            };
            let (mut wp, mut wm, mut wv) = (data(1), data(3), v0.clone());
            reference::adamw_update(&mut wp, &data(2), &mut wm, &mut wv, s);
            for isa in [Isa::Scalar, Isa::Avx2, Isa::Avx512] {
                if !isa.is_supported() {
                    continue;
                }
                let (mut p, mut m, mut v) = (data(1), data(3), v0.clone());
                adamw_update_with(isa, &mut p, &data(2), &mut m, &mut v, s);
                for (what, got, want) in [("p", &p, &wp), ("m", &m, &wm), ("v", &v, &wv)] {
                    for i in 0..n {
                        let tol = 1e-6 * want[i].abs().max(1e-3);
                        assert!(
                            (got[i] - want[i]).abs() <= tol,
                            "{isa:?} wd {wd} {what}[{i}]: {} vs {}",
                            got[i],
                            want[i]
                        );
                    }
                }
            }
        }
    }
}
