//! `BertForSequenceClassification`: a Linear over `pooler_output`
//! (<https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/models/bert/modeling_bert.py#L1444>).

use std::path::Path;

use ndarray::{Array2, Array3, Array4};

use super::params::Rng;
use super::{
    apply, apply_labels, check_labels, pooled, require, require_pooler, Dense, NewHead, Opened,
    POOLER,
};
use crate::{BertConfig, BertInputs, BertModel, ForwardOptions, LoadOptions, Result};

const NAME: &str = "BertForSequenceClassification";

/// transformers' `SequenceClassifierOutput` (without the loss).
#[derive(Clone, Debug)]
pub struct SequenceClassifierOutput {
    /// (B, num_labels)
    pub logits: Array2<f32>,
    /// As [`crate::BertModelOutput::hidden_states`], when asked for.
    pub hidden_states: Option<Vec<Array3<f32>>>,
    /// As [`crate::BertModelOutput::attentions`], when asked for.
    pub attentions: Option<Vec<Array4<f32>>>,
}

/// `logits = classifier(dropout(pooler_output))`; the labels are `config().id2label`.
pub struct BertForSequenceClassification {
    bert: BertModel,
    /// (num_labels, H)
    pub classifier: Dense,
}

impl BertForSequenceClassification {
    /// Loads a fine-tuned checkpoint from a directory or a hub id.
    pub fn from_pretrained(model: &str) -> Result<Self> {
        Self::from_pretrained_with(model, &LoadOptions::default())
    }

    /// As `from_pretrained`, with options: `dtype` applies to the encoder (the head stays f32).
    pub fn from_pretrained_with(model: &str, opts: &LoadOptions) -> Result<Self> {
        Self::from_opened(super::open(model, opts)?)
    }

    /// Loads a fine-tuned checkpoint from a directory.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        Self::from_opened(super::open_dir(dir.as_ref(), &LoadOptions::default())?)
    }

    pub(crate) fn from_opened(o: Opened) -> Result<Self> {
        let c = o.bert.config();
        check_labels(c)?;
        require(
            &o.checkpoint,
            NAME,
            c,
            &[POOLER[0], POOLER[1], "classifier.weight", "classifier.bias"],
        )?;
        let classifier = Dense::load_classifier(
            &o.checkpoint,
            "classifier",
            c.num_labels(),
            "num_labels",
            c.hidden_size,
        )?;
        Ok(BertForSequenceClassification {
            bert: o.bert,
            classifier,
        })
    }

    /// A fresh, untrained classifier on `bert` (which must have a pooler), for fine-tuning.
    pub fn with_new_head(mut bert: BertModel, init: &NewHead) -> Result<Self> {
        apply_labels(&mut bert, init)?;
        require_pooler(NAME, &bert)?;
        let c = bert.config();
        let classifier = Dense::init(c.num_labels(), c.hidden_size, c, &mut Rng::new(init.seed))?;
        Ok(BertForSequenceClassification { bert, classifier })
    }

    /// The encoder.
    pub fn bert(&self) -> &BertModel {
        &self.bert
    }

    /// The configuration (labels in `id2label`, `problem_type`).
    pub fn config(&self) -> &BertConfig {
        self.bert.config()
    }

    /// Runs the model. `opts` asks for hidden states / attentions as for [`BertModel::forward`].
    pub fn forward(
        &self,
        inputs: &BertInputs,
        opts: &ForwardOptions,
    ) -> Result<SequenceClassifierOutput> {
        let out = self.bert.forward(inputs, opts)?;
        let pooled = pooled(NAME, &out)?;
        let b = pooled.nrows();
        let logits = apply(
            &self.classifier,
            pooled
                .as_slice()
                .expect("model outputs are standard-layout"),
        );
        Ok(SequenceClassifierOutput {
            logits: Array2::from_shape_vec((b, self.classifier.out_features()), logits)
                .expect("(B, num_labels) values"),
            hidden_states: out.hidden_states,
            attentions: out.attentions,
        })
    }
}
