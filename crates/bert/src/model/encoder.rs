//! `BertEncoder`: the stack of layers, collecting every hidden state and attention map on request
//! (<https://github.com/huggingface/transformers/blob/v4.57.1/src/transformers/models/bert/modeling_bert.py#L445>).

use super::layer::BertLayer;
use super::{WeightSource, Workspace};
use crate::{BertConfig, Result};

pub(crate) struct BertEncoder {
    layers: Vec<BertLayer>,
    num_heads: usize,
}

/// Packed per-layer outputs, kept only when asked for.
#[derive(Default)]
pub(crate) struct EncoderTrace {
    /// L + 1 packed (N, H) states, embeddings output first.
    pub hidden_states: Option<Vec<Vec<f32>>>,
    /// L packed probability buffers (per sequence (NH, T_s, T_s)).
    pub attentions: Option<Vec<Vec<f32>>>,
}

impl BertEncoder {
    pub fn load(w: &dyn WeightSource, c: &BertConfig) -> Result<Self> {
        let layers = (0..c.num_hidden_layers)
            .map(|i| BertLayer::load(w, &format!("encoder.layer.{i}"), c))
            .collect::<Result<_>>()?;
        Ok(BertEncoder {
            layers,
            num_heads: c.num_attention_heads,
        })
    }

    /// Runs every layer over the packed `hidden (N, H)` in place. `head_mask` is (L, NH) row-major.
    pub fn forward(
        &self,
        hidden: &mut [f32],
        cu_seqlens: &[usize],
        head_mask: Option<&[f32]>,
        ws: &mut Workspace,
        trace: &mut EncoderTrace,
    ) {
        let nh = self.num_heads;
        let probs_len = *bert_kernels::attention::probs_offsets(cu_seqlens, nh)
            .last()
            .unwrap_or(&0);
        if let Some(hs) = trace.hidden_states.as_mut() {
            hs.push(hidden.to_vec());
        }
        for (i, layer) in self.layers.iter().enumerate() {
            let hm = head_mask.map(|m| &m[i * nh..(i + 1) * nh]);
            let mut probs = trace.attentions.as_ref().map(|_| vec![0.0f32; probs_len]);
            layer.forward(hidden, cu_seqlens, hm, ws, probs.as_deref_mut());
            if let (Some(all), Some(p)) = (trace.attentions.as_mut(), probs) {
                all.push(p);
            }
            if let Some(hs) = trace.hidden_states.as_mut() {
                hs.push(hidden.to_vec());
            }
        }
    }
}
