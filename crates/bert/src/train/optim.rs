//! AdamW, learning-rate schedules and gradient clipping as `transformers.Trainer` sets them up:
//! `torch.optim.AdamW` (decoupled weight decay, bias correction), no decay on biases and LayerNorm
//! weights, `get_scheduler` (linear warmup then linear, cosine or constant), `clip_grad_norm_`.

use bert_kernels::train::adamw::{adamw_update, AdamWStep};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::params::ParamSet;

/// `torch.optim.AdamW`'s hyper-parameters (transformers' `TrainingArguments` defaults).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// Applied to the tensors whose [`super::ParamTensor::decays`] is true.
    pub weight_decay: f32,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// AdamW's state: the step count and the two moments, laid out as the parameters.
#[derive(Clone, Debug)]
pub struct AdamW {
    pub config: AdamWConfig,
    pub step: u64,
    pub m: ParamSet,
    pub v: ParamSet,
}

impl AdamW {
    pub fn new(params: &ParamSet, config: AdamWConfig) -> Self {
        AdamW {
            config,
            step: 0,
            m: params.zeros_like(),
            v: params.zeros_like(),
        }
    }

    /// One update of `params` from `grads` at learning rate `lr`, as `torch.optim.AdamW.step`
    /// (single-tensor path): `p *= 1 - lr wd`; `m, v` updated; `p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)`.
    pub fn update(&mut self, params: &mut ParamSet, grads: &ParamSet, lr: f32) {
        self.step += 1;
        let AdamWConfig {
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.config;
        let t = self.step as i32;
        let step = AdamWStep {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay: 0.0,
            bc1: 1.0 - beta1.powi(t),
            bc2_sqrt: (1.0 - beta2.powi(t)).sqrt(),
        };
        let tensors = params.tensors().to_vec();
        let (m, v) = (self.m.data_mut(), self.v.data_mut());
        let (p, g) = (params.data_mut(), grads.data());
        for t in &tensors {
            let r = t.range.clone();
            let step = AdamWStep {
                weight_decay: if t.decays() { weight_decay } else { 0.0 },
                ..step
            };
            // Element-wise, so splitting it over threads changes no result.
            adamw_update(
                &mut p[r.clone()],
                &g[r.clone()],
                &mut m[r.clone()],
                &mut v[r],
                step,
            );
        }
    }
}

/// `torch.nn.utils.clip_grad_norm_`: scales `grads` so their global L2 norm is at most `max_norm`;
/// returns the norm before clipping (what Trainer logs as `grad_norm`).
pub fn clip_grad_norm(grads: &mut ParamSet, max_norm: f32) -> f32 {
    // The norm of the per-tensor norms, as torch computes it.
    let norms: Vec<f32> = grads
        .tensors()
        .iter()
        .map(|t| {
            // Fixed chunks, summed in order: the same result on any thread count.
            let partials: Vec<f64> = grads.data()[t.range.clone()]
                .par_chunks(1 << 16)
                .map(|c| c.iter().map(|&v| v as f64 * v as f64).sum::<f64>())
                .collect();
            partials.iter().sum::<f64>().sqrt() as f32
        })
        .collect();
    let total = norms
        .iter()
        .map(|&n| n as f64 * n as f64)
        .sum::<f64>()
        .sqrt() as f32;
    let coef = (max_norm / (total + 1e-6)).min(1.0);
    if coef < 1.0 {
        grads.data_mut().par_iter_mut().for_each(|g| *g *= coef);
    }
    total
}

/// The learning-rate schedules of transformers' `get_scheduler`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// Linear warmup from 0, then linear decay to 0 at the last step (Trainer's default).
    Linear,
    /// Linear warmup, then half a cosine down to 0.
    Cosine,
    /// Linear warmup, then constant.
    Constant,
}

/// A learning rate per optimizer step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub kind: ScheduleKind,
    pub base_lr: f32,
    pub warmup_steps: u64,
    pub total_steps: u64,
}

impl Schedule {
    /// Warmup steps from `warmup_ratio` as Trainer computes them: `ceil(total * ratio)`.
    pub fn warmup_from_ratio(total_steps: u64, ratio: f64) -> u64 {
        (total_steps as f64 * ratio).ceil() as u64
    }

    /// The learning rate of optimizer step `step` (0-based), `LambdaLR`'s `base_lr * lambda(step)`.
    pub fn lr(&self, step: u64) -> f32 {
        let (s, w, t) = (
            step as f64,
            self.warmup_steps as f64,
            self.total_steps as f64,
        );
        let factor = if step < self.warmup_steps {
            s / w.max(1.0)
        } else {
            match self.kind {
                ScheduleKind::Constant => 1.0,
                ScheduleKind::Linear => ((t - s) / (t - w).max(1.0)).max(0.0),
                ScheduleKind::Cosine => {
                    let progress = (s - w) / (t - w).max(1.0);
                    (0.5 * (1.0 + (std::f64::consts::PI * 0.5 * 2.0 * progress).cos())).max(0.0)
                }
            }
        };
        (self.base_lr as f64 * factor) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_match_transformers_formulas() {
        let s = Schedule {
            kind: ScheduleKind::Linear,
            base_lr: 1.0,
            warmup_steps: 2,
            total_steps: 10,
        };
        let lrs: Vec<f32> = (0..10).map(|i| s.lr(i)).collect();
        assert_eq!(lrs[..3], [0.0, 0.5, 1.0]);
        assert!((lrs[6] - 0.5).abs() < 1e-6);
        let c = Schedule {
            kind: ScheduleKind::Cosine,
            ..s
        };
        assert!((c.lr(6) - 0.5).abs() < 1e-6);
        assert!(c.lr(10).abs() < 1e-6);
        assert_eq!(Schedule::warmup_from_ratio(101, 0.1), 11);
    }

    #[test]
    fn adamw_first_step_moves_by_lr_and_decay_skips_biases() {
        let mut p = ParamSet::new();
        p.push("w", &[2], vec![1.0, -1.0]).unwrap();
        p.push("w.bias", &[1], vec![1.0]).unwrap();
        let mut g = p.zeros_like();
        g.data_mut().copy_from_slice(&[0.5, -2.0, 3.0]);
        let mut opt = AdamW::new(
            &p,
            AdamWConfig {
                weight_decay: 0.1,
                ..Default::default()
            },
        );
        opt.update(&mut p, &g, 0.01);
        // Step 1: m / (sqrt(v) + eps) with bias correction is sign(g).
        let d = p.data();
        assert!((d[0] - (1.0 * (1.0 - 0.001) - 0.01)).abs() < 1e-6);
        assert!((d[1] - (-(1.0 - 0.001) + 0.01)).abs() < 1e-6);
        assert!((d[2] - (1.0 - 0.01)).abs() < 1e-6);
    }

    #[test]
    fn clipping_scales_to_max_norm() {
        let mut g = ParamSet::new();
        g.push("a", &[2], vec![3.0, 4.0]).unwrap();
        let n = clip_grad_norm(&mut g, 1.0);
        assert!((n - 5.0).abs() < 1e-6);
        assert!((g.data()[0] - 0.6).abs() < 1e-5);
        let n2 = clip_grad_norm(&mut g, 10.0);
        assert!((n2 - 1.0).abs() < 1e-4);
        assert!((g.data()[0] - 0.6).abs() < 1e-5);
    }
}
