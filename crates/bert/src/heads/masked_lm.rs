//! `BertForMaskedLM`: `cls.predictions` over every token's `last_hidden_state`, or only at chosen
//! positions ([`BertForMaskedLM::forward_at`])
//! (<https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/models/bert/modeling_bert.py#L1230>).

use std::path::Path;

use ndarray::{Array2, Array3, Array4};

use super::params::Rng;
use super::predictions::{self, BertLMPredictionHead};
use super::{real_rows, require, scatter, NewHead, Opened};
use crate::{BertConfig, BertInputs, BertModel, Error, ForwardOptions, LoadOptions, Result};

const NAME: &str = "BertForMaskedLM";

/// transformers' `MaskedLMOutput` (without the loss).
#[derive(Clone, Debug)]
pub struct MaskedLMOutput {
    /// (B, T, V); zeros where `attention_mask` is 0.
    pub logits: Array3<f32>,
    pub hidden_states: Option<Vec<Array3<f32>>>,
    pub attentions: Option<Vec<Array4<f32>>>,
}

/// [`BertForMaskedLM::forward_at`]'s output: logits only at the asked positions.
#[derive(Clone, Debug)]
pub struct MaskedLMPositionsOutput {
    /// (P, V): row `i` is `logits[b, t]` of the `i`-th asked position `(b, t)`.
    pub logits: Array2<f32>,
    pub hidden_states: Option<Vec<Array3<f32>>>,
    pub attentions: Option<Vec<Array4<f32>>>,
}

/// `logits = cls.predictions(last_hidden_state)`.
pub struct BertForMaskedLM {
    bert: BertModel,
    /// `cls.predictions`.
    pub predictions: BertLMPredictionHead,
}

impl BertForMaskedLM {
    pub fn from_pretrained(model: &str) -> Result<Self> {
        Self::from_pretrained_with(model, &LoadOptions::default())
    }

    /// As `from_pretrained`, with options: `dtype` applies to the encoder (the head stays f32).
    pub fn from_pretrained_with(model: &str, opts: &LoadOptions) -> Result<Self> {
        Self::from_opened(super::open(model, opts)?)
    }

    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        Self::from_opened(super::open_dir(dir.as_ref(), &LoadOptions::default())?)
    }

    pub(crate) fn from_opened(o: Opened) -> Result<Self> {
        let c = o.bert.config();
        require(
            &o.checkpoint,
            NAME,
            c,
            &predictions::tensor_names(&o.checkpoint, c),
        )?;
        let predictions = BertLMPredictionHead::load(&o.checkpoint, &o.bert)?;
        Ok(BertForMaskedLM {
            bert: o.bert,
            predictions,
        })
    }

    /// A fresh, untrained prediction head on `bert` (decoder tied to its word embeddings).
    pub fn with_new_head(bert: BertModel, init: &NewHead) -> Result<Self> {
        let predictions = BertLMPredictionHead::init(&bert, &mut Rng::new(init.seed))?;
        Ok(BertForMaskedLM { bert, predictions })
    }

    pub fn bert(&self) -> &BertModel {
        &self.bert
    }

    pub fn config(&self) -> &BertConfig {
        self.bert.config()
    }

    /// Runs the model and the decoder on every real token: (B, T, V) logits. When only a few
    /// positions matter (the `[MASK]`s), [`BertForMaskedLM::forward_at`] avoids the (N, V) product.
    pub fn forward(&self, inputs: &BertInputs, opts: &ForwardOptions) -> Result<MaskedLMOutput> {
        let out = self.bert.forward(inputs, opts)?;
        let (rows, positions) = real_rows(&out.last_hidden_state, inputs);
        let v = self.predictions.vocab_size();
        let mut logits = vec![0.0f32; positions.len() * v];
        self.predictions.forward(&rows, &mut logits);
        Ok(MaskedLMOutput {
            logits: scatter(&logits, &positions, inputs.input_ids.dim(), v),
            hidden_states: out.hidden_states,
            attentions: out.attentions,
        })
    }

    /// Runs the model, and the prediction head only at `positions` (`(b, t)` pairs, real tokens):
    /// (P, V) logits, the same values as [`BertForMaskedLM::forward`] at those positions.
    pub fn forward_at(
        &self,
        inputs: &BertInputs,
        positions: &[(usize, usize)],
        opts: &ForwardOptions,
    ) -> Result<MaskedLMPositionsOutput> {
        let (b, t) = inputs.input_ids.dim();
        for &(i, j) in positions {
            if i >= b || j >= t {
                return Err(Error::Input(format!(
                    "{NAME}: position ({i}, {j}) is outside the (B, T) = ({b}, {t}) inputs"
                )));
            }
            if inputs.attention_mask[[i, j]] == 0 {
                return Err(Error::Input(format!(
                    "{NAME}: position ({i}, {j}) is padding (attention_mask 0)"
                )));
            }
        }
        let out = self.bert.forward(inputs, opts)?;
        let h = self.config().hidden_size;
        let mut rows = Vec::with_capacity(positions.len() * h);
        for &(i, j) in positions {
            rows.extend(out.last_hidden_state.slice(ndarray::s![i, j, ..]).iter());
        }
        let v = self.predictions.vocab_size();
        let mut logits = vec![0.0f32; positions.len() * v];
        self.predictions.forward(&rows, &mut logits);
        Ok(MaskedLMPositionsOutput {
            logits: Array2::from_shape_vec((positions.len(), v), logits).expect("(P, V) values"),
            hidden_states: out.hidden_states,
            attentions: out.attentions,
        })
    }

    /// The `(b, t)` positions of the real tokens equal to `token_id` (e.g. the tokenizer's `[MASK]`
    /// id), in row-major order: what [`BertForMaskedLM::forward_at`] takes.
    pub fn positions_of(inputs: &BertInputs, token_id: i64) -> Vec<(usize, usize)> {
        inputs
            .input_ids
            .indexed_iter()
            .filter(|&((b, t), &id)| id == token_id && inputs.attention_mask[[b, t]] != 0)
            .map(|(bt, _)| bt)
            .collect()
    }
}
