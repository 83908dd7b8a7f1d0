//! `BertForQuestionAnswering`: `qa_outputs`, a (2, H) Linear over every token, split into start and
//! end logits
//! (<https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/models/bert/modeling_bert.py#L1711>).

use std::path::Path;

use ndarray::{Array2, Array3, Array4};

use super::params::Rng;
use super::{apply, real_rows, require, Dense, NewHead, Opened};
use crate::{BertConfig, BertInputs, BertModel, Error, ForwardOptions, LoadOptions, Result};

const NAME: &str = "BertForQuestionAnswering";

/// transformers' `QuestionAnsweringModelOutput` (without the loss).
#[derive(Clone, Debug)]
pub struct QuestionAnsweringModelOutput {
    /// (B, T); 0 where `attention_mask` is 0.
    pub start_logits: Array2<f32>,
    /// (B, T); 0 where `attention_mask` is 0.
    pub end_logits: Array2<f32>,
    pub hidden_states: Option<Vec<Array3<f32>>>,
    pub attentions: Option<Vec<Array4<f32>>>,
}

/// `start, end = qa_outputs(last_hidden_state).split(1, dim=-1)`.
pub struct BertForQuestionAnswering {
    bert: BertModel,
    /// (2, H): row 0 start, row 1 end.
    pub qa_outputs: Dense,
}

impl BertForQuestionAnswering {
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
        check_two_labels(c)?;
        require(
            &o.checkpoint,
            NAME,
            c,
            &["qa_outputs.weight", "qa_outputs.bias"],
        )?;
        let qa_outputs =
            Dense::load_classifier(&o.checkpoint, "qa_outputs", 2, "num_labels", c.hidden_size)?;
        Ok(BertForQuestionAnswering {
            bert: o.bert,
            qa_outputs,
        })
    }

    /// A fresh, untrained span head on `bert`; `init.labels` is ignored.
    pub fn with_new_head(bert: BertModel, init: &NewHead) -> Result<Self> {
        let c = bert.config();
        let qa_outputs = Dense::init(2, c.hidden_size, c, &mut Rng::new(init.seed))?;
        Ok(BertForQuestionAnswering { bert, qa_outputs })
    }

    pub fn bert(&self) -> &BertModel {
        &self.bert
    }

    pub fn config(&self) -> &BertConfig {
        self.bert.config()
    }

    /// Runs the model on (question, context) pairs.
    pub fn forward(
        &self,
        inputs: &BertInputs,
        opts: &ForwardOptions,
    ) -> Result<QuestionAnsweringModelOutput> {
        let out = self.bert.forward(inputs, opts)?;
        let (rows, positions) = real_rows(&out.last_hidden_state, inputs);
        let logits = apply(&self.qa_outputs, &rows);
        let dim = inputs.input_ids.dim();
        let (mut start_logits, mut end_logits) = (Array2::zeros(dim), Array2::zeros(dim));
        for (pair, &(b, t)) in logits.chunks_exact(2).zip(&positions) {
            start_logits[[b, t]] = pair[0];
            end_logits[[b, t]] = pair[1];
        }
        Ok(QuestionAnsweringModelOutput {
            start_logits,
            end_logits,
            hidden_states: out.hidden_states,
            attentions: out.attentions,
        })
    }
}

/// transformers builds `qa_outputs` with `num_labels` outputs and splits them into two: any other
/// count than 2 fails there at run time.
fn check_two_labels(c: &BertConfig) -> Result<()> {
    if c.num_labels() != 2 {
        return Err(Error::Config(format!(
            "{NAME} needs num_labels 2 (start, end), config.json has {}",
            c.num_labels()
        )));
    }
    Ok(())
}
