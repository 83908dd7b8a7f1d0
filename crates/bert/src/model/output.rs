//! `BertOutput`: the feed-forward down-projection, residual add and LayerNorm
//! (<https://github.com/huggingface/transformers/blob/v4.57.1/src/transformers/models/bert/modeling_bert.py#L360>).

use bert_kernels::Epilogue;

use super::layer_norm::LayerNorm;
use super::{linear, ModelLinear, WeightSource};
use crate::profile::{self, Phase};
use crate::{BertConfig, Result};

pub(crate) struct BertOutput {
    dense: ModelLinear,
    layer_norm: LayerNorm,
}

impl BertOutput {
    pub fn load(w: &dyn WeightSource, prefix: &str, c: &BertConfig) -> Result<Self> {
        Ok(BertOutput {
            dense: linear(
                w,
                &format!("{prefix}.dense"),
                c.hidden_size,
                c.intermediate_size,
            )?,
            layer_norm: LayerNorm::load(
                w,
                &format!("{prefix}.LayerNorm"),
                c.hidden_size,
                c.layer_norm_eps,
            )?,
        })
    }

    /// `out (N, H) = LayerNorm(inter W^T + b + input)`.
    pub fn forward(&self, inter: &[f32], input: &[f32], out: &mut [f32]) {
        profile::timed(Phase::Gemm, || {
            self.dense
                .forward(inter, out, Epilogue::BiasResidual(input))
        });
        self.layer_norm.forward(out);
    }
}
