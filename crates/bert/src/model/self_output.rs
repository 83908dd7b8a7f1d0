//! `BertSelfOutput`: output projection of the attention, residual add and LayerNorm
//! (<https://github.com/huggingface/transformers/blob/v4.57.1/src/transformers/models/bert/modeling_bert.py#L282>).

use bert_kernels::Epilogue;

use super::layer_norm::LayerNorm;
use super::{linear, ModelLinear, WeightSource};
use crate::profile::{self, Phase};
use crate::{BertConfig, Result};

pub(crate) struct BertSelfOutput {
    dense: ModelLinear,
    layer_norm: LayerNorm,
}

impl BertSelfOutput {
    pub fn load(w: &dyn WeightSource, prefix: &str, c: &BertConfig) -> Result<Self> {
        let h = c.hidden_size;
        Ok(BertSelfOutput {
            dense: linear(w, &format!("{prefix}.dense"), h, h)?,
            layer_norm: LayerNorm::load(w, &format!("{prefix}.LayerNorm"), h, c.layer_norm_eps)?,
        })
    }

    /// `out (N, H) = LayerNorm(ctx W^T + b + input)`.
    pub fn forward(&self, ctx: &[f32], input: &[f32], out: &mut [f32]) {
        profile::timed(Phase::Gemm, || {
            self.dense.forward(ctx, out, Epilogue::BiasResidual(input))
        });
        self.layer_norm.forward(out);
    }
}
