//! `BertForNextSentencePrediction`: `cls.seq_relationship`, a (2, H) Linear over `pooler_output`
//! (<https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/models/bert/modeling_bert.py#L1343>).

use std::path::Path;

use ndarray::{Array2, Array3, Array4};

use super::params::Rng;
use super::{apply, pooled, require, require_pooler, Dense, NewHead, Opened, POOLER};
use crate::{BertConfig, BertInputs, BertModel, ForwardOptions, LoadOptions, Result};

const NAME: &str = "BertForNextSentencePrediction";

/// transformers' `NextSentencePredictorOutput` (without the loss).
#[derive(Clone, Debug)]
pub struct NextSentencePredictorOutput {
    /// (B, 2): index 0 = "B follows A", 1 = "B is random".
    pub logits: Array2<f32>,
    pub hidden_states: Option<Vec<Array3<f32>>>,
    pub attentions: Option<Vec<Array4<f32>>>,
}

/// `logits = cls.seq_relationship(pooler_output)`.
pub struct BertForNextSentencePrediction {
    bert: BertModel,
    /// (2, H) `cls.seq_relationship`.
    pub seq_relationship: Dense,
}

impl BertForNextSentencePrediction {
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
            &[
                POOLER[0],
                POOLER[1],
                "cls.seq_relationship.weight",
                "cls.seq_relationship.bias",
            ],
        )?;
        let seq_relationship =
            Dense::load(&o.checkpoint, "cls.seq_relationship", 2, c.hidden_size)?;
        Ok(BertForNextSentencePrediction {
            bert: o.bert,
            seq_relationship,
        })
    }

    /// A fresh, untrained head on `bert` (which must have a pooler); `init.labels` is ignored.
    pub fn with_new_head(bert: BertModel, init: &NewHead) -> Result<Self> {
        require_pooler(NAME, &bert)?;
        let c = bert.config();
        let seq_relationship = Dense::init(2, c.hidden_size, c, &mut Rng::new(init.seed))?;
        Ok(BertForNextSentencePrediction {
            bert,
            seq_relationship,
        })
    }

    pub fn bert(&self) -> &BertModel {
        &self.bert
    }

    pub fn config(&self) -> &BertConfig {
        self.bert.config()
    }

    /// Runs the model on sentence pairs (token_type_ids 0 / 1).
    pub fn forward(
        &self,
        inputs: &BertInputs,
        opts: &ForwardOptions,
    ) -> Result<NextSentencePredictorOutput> {
        let out = self.bert.forward(inputs, opts)?;
        let logits = nsp_logits(NAME, &self.seq_relationship, &out)?;
        Ok(NextSentencePredictorOutput {
            logits,
            hidden_states: out.hidden_states,
            attentions: out.attentions,
        })
    }
}

/// (B, 2) `seq_relationship(pooler_output)`; shared with [`super::BertForPreTraining`].
pub(crate) fn nsp_logits(
    head: &str,
    seq_relationship: &Dense,
    out: &crate::BertModelOutput,
) -> Result<Array2<f32>> {
    let pooled = pooled(head, out)?;
    let b = pooled.nrows();
    let logits = apply(
        seq_relationship,
        pooled
            .as_slice()
            .expect("model outputs are standard-layout"),
    );
    Ok(Array2::from_shape_vec((b, 2), logits).expect("(B, 2) values"))
}
