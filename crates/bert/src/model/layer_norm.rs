//! `torch.nn.LayerNorm` over the hidden dimension.

use super::WeightSource;
use crate::profile::{self, Phase};
use crate::Result;

/// LayerNorm weights (`weight` = gamma, `bias` = beta) and epsilon.
pub(crate) struct LayerNorm {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

impl LayerNorm {
    pub fn load(w: &dyn WeightSource, prefix: &str, size: usize, eps: f64) -> Result<Self> {
        Ok(LayerNorm {
            weight: w.get(&format!("{prefix}.weight"), &[size])?,
            bias: w.get(&format!("{prefix}.bias"), &[size])?,
            eps: eps as f32,
        })
    }

    /// Normalizes every row of `x` (rows of width H) in place.
    pub fn forward(&self, x: &mut [f32]) {
        profile::timed(Phase::Elementwise, || {
            bert_kernels::layer_norm(x, &self.weight, &self.bias, self.eps)
        });
    }
}
