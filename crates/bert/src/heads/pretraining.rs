//! `BertForPreTraining`: the masked-LM head over every token and the next-sentence head over
//! `pooler_output`
//! (<https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/models/bert/modeling_bert.py#L1035>).

use std::path::Path;

use ndarray::{Array2, Array3, Array4};

use super::next_sentence::nsp_logits;
use super::params::{Dense, Rng};
use super::predictions::{self, BertLMPredictionHead};
use super::{real_rows, require, require_pooler, scatter, NewHead, Opened, POOLER};
use crate::{BertConfig, BertInputs, BertModel, ForwardOptions, LoadOptions, Result};

const NAME: &str = "BertForPreTraining";

/// transformers' `BertForPreTrainingOutput` (without the loss).
#[derive(Clone, Debug)]
pub struct BertForPreTrainingOutput {
    /// (B, T, V); zeros where `attention_mask` is 0.
    pub prediction_logits: Array3<f32>,
    /// (B, 2)
    pub seq_relationship_logits: Array2<f32>,
    pub hidden_states: Option<Vec<Array3<f32>>>,
    pub attentions: Option<Vec<Array4<f32>>>,
}

/// `cls.predictions(last_hidden_state)` and `cls.seq_relationship(pooler_output)`.
pub struct BertForPreTraining {
    bert: BertModel,
    /// `cls.predictions`.
    pub predictions: BertLMPredictionHead,
    /// (2, H) `cls.seq_relationship`.
    pub seq_relationship: Dense,
}

impl BertForPreTraining {
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
        let mut names = predictions::tensor_names(&o.checkpoint, c);
        names.extend([
            "cls.seq_relationship.weight",
            "cls.seq_relationship.bias",
            POOLER[0],
            POOLER[1],
        ]);
        require(&o.checkpoint, NAME, c, &names)?;
        let predictions = BertLMPredictionHead::load(&o.checkpoint, &o.bert)?;
        let seq_relationship =
            Dense::load(&o.checkpoint, "cls.seq_relationship", 2, c.hidden_size)?;
        Ok(BertForPreTraining {
            bert: o.bert,
            predictions,
            seq_relationship,
        })
    }

    /// Fresh, untrained heads on `bert` (which must have a pooler); `init.labels` is ignored.
    pub fn with_new_head(bert: BertModel, init: &NewHead) -> Result<Self> {
        require_pooler(NAME, &bert)?;
        let mut rng = Rng::new(init.seed);
        let predictions = BertLMPredictionHead::init(&bert, &mut rng)?;
        let c = bert.config();
        let seq_relationship = Dense::init(2, c.hidden_size, c, &mut rng)?;
        Ok(BertForPreTraining {
            bert,
            predictions,
            seq_relationship,
        })
    }

    pub fn bert(&self) -> &BertModel {
        &self.bert
    }

    pub fn config(&self) -> &BertConfig {
        self.bert.config()
    }

    /// Runs the model and both heads.
    pub fn forward(
        &self,
        inputs: &BertInputs,
        opts: &ForwardOptions,
    ) -> Result<BertForPreTrainingOutput> {
        let out = self.bert.forward(inputs, opts)?;
        let seq_relationship_logits = nsp_logits(NAME, &self.seq_relationship, &out)?;
        let (rows, positions) = real_rows(&out.last_hidden_state, inputs);
        let v = self.predictions.vocab_size();
        let mut logits = vec![0.0f32; positions.len() * v];
        self.predictions.forward(&rows, &mut logits);
        Ok(BertForPreTrainingOutput {
            prediction_logits: scatter(&logits, &positions, inputs.input_ids.dim(), v),
            seq_relationship_logits,
            hidden_states: out.hidden_states,
            attentions: out.attentions,
        })
    }
}
