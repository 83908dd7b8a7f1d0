//! `BertLayer`: attention block then feed-forward block
//! (<https://github.com/huggingface/transformers/blob/v4.57.1/src/transformers/models/bert/modeling_bert.py#L375>).

use super::attention::BertAttention;
use super::intermediate::BertIntermediate;
use super::output::BertOutput;
use super::{WeightSource, Workspace};
use crate::{BertConfig, Result};

pub(crate) struct BertLayer {
    attention: BertAttention,
    intermediate: BertIntermediate,
    output: BertOutput,
}

impl BertLayer {
    pub fn load(w: &dyn WeightSource, prefix: &str, c: &BertConfig) -> Result<Self> {
        Ok(BertLayer {
            attention: BertAttention::load(w, &format!("{prefix}.attention"), c)?,
            intermediate: BertIntermediate::load(w, &format!("{prefix}.intermediate"), c)?,
            output: BertOutput::load(w, &format!("{prefix}.output"), c)?,
        })
    }

    /// Replaces `hidden (N, H)` with this layer's output.
    pub fn forward(
        &self,
        hidden: &mut [f32],
        cu_seqlens: &[usize],
        head_mask: Option<&[f32]>,
        ws: &mut Workspace,
        probs: Option<&mut [f32]>,
    ) {
        self.attention
            .forward(hidden, cu_seqlens, head_mask, ws, probs);
        self.intermediate.forward(&ws.attn_out, &mut ws.inter);
        // The layer input is dead once the attention block has used it as its residual.
        self.output.forward(&ws.inter, &ws.attn_out, hidden);
    }
}
