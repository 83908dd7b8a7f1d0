//! `BertForMultipleChoice`: the (B, C, T) choices run as B·C sequences, a one-output Linear over each
//! `pooler_output`, reshaped to (B, C)
//! (<https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/models/bert/modeling_bert.py#L1534>).

use std::path::Path;

use ndarray::{Array2, Array3, Array4};

use super::params::Rng;
use super::{apply, pooled, require, require_pooler, Dense, NewHead, Opened, POOLER};
use crate::{BertConfig, BertInputs, BertModel, Error, ForwardOptions, LoadOptions, Result};

const NAME: &str = "BertForMultipleChoice";

/// transformers' `MultipleChoiceModelOutput` (without the loss).
#[derive(Clone, Debug)]
pub struct MultipleChoiceModelOutput {
    /// (B, C)
    pub logits: Array2<f32>,
    /// (B·C, T, H) tensors, as transformers returns them for the flattened batch.
    pub hidden_states: Option<Vec<Array3<f32>>>,
    /// (B·C, NH, T, T) tensors.
    pub attentions: Option<Vec<Array4<f32>>>,
}

/// `logits = classifier(pooler_output).view(-1, num_choices)`.
pub struct BertForMultipleChoice {
    bert: BertModel,
    /// (1, H)
    pub classifier: Dense,
}

impl BertForMultipleChoice {
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
            &[POOLER[0], POOLER[1], "classifier.weight", "classifier.bias"],
        )?;
        // One score per choice whatever num_labels says (transformers hard-codes Linear(H, 1)).
        let classifier = Dense::load_classifier(
            &o.checkpoint,
            "classifier",
            1,
            "the one score per choice of BertForMultipleChoice",
            c.hidden_size,
        )?;
        Ok(BertForMultipleChoice {
            bert: o.bert,
            classifier,
        })
    }

    /// A fresh, untrained scorer on `bert` (which must have a pooler); `init.labels` is ignored.
    pub fn with_new_head(bert: BertModel, init: &NewHead) -> Result<Self> {
        require_pooler(NAME, &bert)?;
        let c = bert.config();
        let classifier = Dense::init(1, c.hidden_size, c, &mut Rng::new(init.seed))?;
        Ok(BertForMultipleChoice { bert, classifier })
    }

    pub fn bert(&self) -> &BertModel {
        &self.bert
    }

    pub fn config(&self) -> &BertConfig {
        self.bert.config()
    }

    /// Runs the model on `inputs` of B·C rows: the C choices of example 0, then of example 1, ...
    /// (transformers' `input_ids.view(-1, T)` of a (B, C, T) tensor).
    pub fn forward(
        &self,
        inputs: &BertInputs,
        num_choices: usize,
        opts: &ForwardOptions,
    ) -> Result<MultipleChoiceModelOutput> {
        let rows = inputs.batch_size();
        if num_choices == 0 || !rows.is_multiple_of(num_choices) {
            return Err(Error::Input(format!(
                "{NAME}: {rows} input rows are not a whole number of examples of {num_choices} choices"
            )));
        }
        let out = self.bert.forward(inputs, opts)?;
        let pooled = pooled(NAME, &out)?;
        let scores = apply(
            &self.classifier,
            pooled
                .as_slice()
                .expect("model outputs are standard-layout"),
        );
        Ok(MultipleChoiceModelOutput {
            logits: Array2::from_shape_vec((rows / num_choices, num_choices), scores)
                .expect("B·C scores"),
            hidden_states: out.hidden_states,
            attentions: out.attentions,
        })
    }
}
