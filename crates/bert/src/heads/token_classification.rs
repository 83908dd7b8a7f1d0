//! `BertForTokenClassification`: a Linear over every token's `last_hidden_state`
//! (<https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/models/bert/modeling_bert.py#L1641>).

use std::path::Path;

use ndarray::{Array3, Array4};

use super::params::Rng;
use super::{
    apply, apply_labels, check_labels, real_rows, require, scatter, Dense, NewHead, Opened,
};
use crate::{BertConfig, BertInputs, BertModel, ForwardOptions, LoadOptions, Result};

const NAME: &str = "BertForTokenClassification";

/// transformers' `TokenClassifierOutput` (without the loss).
#[derive(Clone, Debug)]
pub struct TokenClassifierOutput {
    /// (B, T, num_labels); zeros where `attention_mask` is 0.
    pub logits: Array3<f32>,
    pub hidden_states: Option<Vec<Array3<f32>>>,
    pub attentions: Option<Vec<Array4<f32>>>,
}

/// `logits = classifier(dropout(last_hidden_state))`, per token; labels in `config().id2label`.
pub struct BertForTokenClassification {
    bert: BertModel,
    /// (num_labels, H)
    pub classifier: Dense,
}

impl BertForTokenClassification {
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
        check_labels(c)?;
        require(
            &o.checkpoint,
            NAME,
            c,
            &["classifier.weight", "classifier.bias"],
        )?;
        let classifier = Dense::load_classifier(
            &o.checkpoint,
            "classifier",
            c.num_labels(),
            "num_labels",
            c.hidden_size,
        )?;
        Ok(BertForTokenClassification {
            bert: o.bert,
            classifier,
        })
    }

    /// A fresh, untrained classifier on `bert`, for fine-tuning.
    pub fn with_new_head(mut bert: BertModel, init: &NewHead) -> Result<Self> {
        apply_labels(&mut bert, init)?;
        let c = bert.config();
        let classifier = Dense::init(c.num_labels(), c.hidden_size, c, &mut Rng::new(init.seed))?;
        Ok(BertForTokenClassification { bert, classifier })
    }

    pub fn bert(&self) -> &BertModel {
        &self.bert
    }

    pub fn config(&self) -> &BertConfig {
        self.bert.config()
    }

    /// Runs the model; the classifier runs on real tokens only.
    pub fn forward(
        &self,
        inputs: &BertInputs,
        opts: &ForwardOptions,
    ) -> Result<TokenClassifierOutput> {
        let out = self.bert.forward(inputs, opts)?;
        let (rows, positions) = real_rows(&out.last_hidden_state, inputs);
        let logits = apply(&self.classifier, &rows);
        Ok(TokenClassifierOutput {
            logits: scatter(
                &logits,
                &positions,
                inputs.input_ids.dim(),
                self.classifier.out_features(),
            ),
            hidden_states: out.hidden_states,
            attentions: out.attentions,
        })
    }
}
