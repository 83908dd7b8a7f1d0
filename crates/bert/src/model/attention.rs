//! `BertAttention`: self-attention followed by its output block
//! (<https://github.com/huggingface/transformers/blob/v4.57.1/src/transformers/models/bert/modeling_bert.py#L297>).

use super::self_attention::BertSelfAttention;
use super::self_output::BertSelfOutput;
use super::{WeightSource, Workspace};
use crate::{BertConfig, Result};

pub(crate) struct BertAttention {
    self_attention: BertSelfAttention,
    output: BertSelfOutput,
}

impl BertAttention {
    pub fn load(w: &dyn WeightSource, prefix: &str, c: &BertConfig) -> Result<Self> {
        Ok(BertAttention {
            self_attention: BertSelfAttention::load(w, &format!("{prefix}.self"), c)?,
            output: BertSelfOutput::load(w, &format!("{prefix}.output"), c)?,
        })
    }

    /// `ws.attn_out (N, H)` = the attention block applied to `hidden (N, H)`.
    pub fn forward(
        &self,
        hidden: &[f32],
        cu_seqlens: &[usize],
        head_mask: Option<&[f32]>,
        ws: &mut Workspace,
        probs: Option<&mut [f32]>,
    ) {
        self.self_attention.forward(
            hidden,
            cu_seqlens,
            head_mask,
            &mut ws.qkv,
            &mut ws.ctx,
            probs,
        );
        self.output.forward(&ws.ctx, hidden, &mut ws.attn_out);
    }
}
