//! `BertPooler`: the first token's final state through Linear + Tanh
//! (<https://github.com/huggingface/transformers/blob/v4.57.1/src/transformers/models/bert/modeling_bert.py#L512>).

use bert_kernels::Epilogue;

use super::{linear, ModelLinear, WeightSource};
use crate::profile::{self, Phase};
use crate::{BertConfig, Result};

pub(crate) struct BertPooler {
    dense: ModelLinear,
}

impl BertPooler {
    pub fn load(w: &dyn WeightSource, c: &BertConfig) -> Result<Self> {
        let h = c.hidden_size;
        Ok(BertPooler {
            dense: linear(w, "pooler.dense", h, h)?,
        })
    }

    /// `out (S, H) = tanh(first (S, H) W^T + b)`, `first` holding each sequence's first token state.
    pub fn forward(&self, first: &[f32], out: &mut [f32]) {
        profile::timed(Phase::Gemm, || {
            self.dense.forward(first, out, Epilogue::Bias)
        });
        out.iter_mut().for_each(|v| *v = v.tanh());
    }
}
