//! `BertIntermediate`: the feed-forward up-projection with its activation, fused into one pass
//! (<https://github.com/huggingface/transformers/blob/v4.57.1/src/transformers/models/bert/modeling_bert.py#L345>).

use bert_kernels::{Activation, Epilogue};

use super::{linear, ModelLinear, WeightSource};
use crate::profile::{self, Phase};
use crate::{BertConfig, Result};

pub(crate) struct BertIntermediate {
    dense: ModelLinear,
    act: Activation,
}

impl BertIntermediate {
    pub fn load(w: &dyn WeightSource, prefix: &str, c: &BertConfig) -> Result<Self> {
        Ok(BertIntermediate {
            dense: linear(
                w,
                &format!("{prefix}.dense"),
                c.intermediate_size,
                c.hidden_size,
            )?,
            act: c.hidden_act.kernel(),
        })
    }

    /// `out (N, I) = act(x W^T + b)`.
    pub fn forward(&self, x: &[f32], out: &mut [f32]) {
        profile::timed(Phase::Gemm, || {
            self.dense
                .forward(x, out, Epilogue::BiasActivation(self.act))
        });
    }
}
