//! `BertSelfAttention`: Q, K, V projections (fused into one (3H, H) GEMM) and scaled dot-product
//! attention per (sequence, head) over packed tokens
//! (<https://github.com/huggingface/transformers/blob/v4.57.1/src/transformers/models/bert/modeling_bert.py#L123>).

use bert_kernels::{attention, AttentionArgs, Epilogue};

use super::{ModelLinear, WeightSource};
use crate::profile::{self, Phase};
use crate::{BertConfig, Result};

pub(crate) struct BertSelfAttention {
    /// `query`, `key` and `value` stacked: weight (3H, H), bias (3H).
    qkv: ModelLinear,
    num_heads: usize,
    head_dim: usize,
    /// The two attention products in bf16 ([`crate::Dtype::attention_in_bf16`]).
    bf16: bool,
}

impl BertSelfAttention {
    pub fn load(w: &dyn WeightSource, prefix: &str, c: &BertConfig) -> Result<Self> {
        let h = c.hidden_size;
        let mut weight = Vec::with_capacity(3 * h * h);
        let mut bias = Vec::with_capacity(3 * h);
        for part in ["query", "key", "value"] {
            weight.extend(w.get(&format!("{prefix}.{part}.weight"), &[h, h])?);
            bias.extend(w.get(&format!("{prefix}.{part}.bias"), &[h])?);
        }
        Ok(BertSelfAttention {
            qkv: w.linear(weight, bias, 3 * h, h),
            num_heads: c.num_attention_heads,
            head_dim: c.head_dim(),
            bf16: w.dtype().attention_in_bf16(),
        })
    }

    /// `ctx (N, H)` = attention of the packed `hidden (N, H)`; `qkv` is (N, 3H) scratch.
    /// When `probs` is given it receives each sequence's (NH, T_s, T_s) probabilities.
    pub fn forward(
        &self,
        hidden: &[f32],
        cu_seqlens: &[usize],
        head_mask: Option<&[f32]>,
        qkv: &mut [f32],
        ctx: &mut [f32],
        probs: Option<&mut [f32]>,
    ) {
        profile::timed(Phase::Gemm, || {
            self.qkv.forward(hidden, qkv, Epilogue::Bias)
        });
        let args = AttentionArgs {
            qkv,
            cu_seqlens,
            num_heads: self.num_heads,
            head_dim: self.head_dim,
            head_mask,
            allow_bf16: self.bf16,
        };
        profile::timed(Phase::Attention, || attention(args, ctx, probs));
    }
}
