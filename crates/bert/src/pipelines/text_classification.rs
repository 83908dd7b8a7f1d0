//! transformers' `TextClassificationPipeline` (`pipeline("text-classification")`): a sequence
//! classifier's logits through sigmoid, softmax or nothing, as labels with scores
//! (<https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/pipelines/text_classification.py#L203>).

use serde::Serialize;

use super::{label, sigmoid, softmax, DEFAULT_BATCH_SIZE};
use crate::{
    BertConfig, BertForSequenceClassification, BertTokenizer, Encoding, ForwardOptions,
    ProblemType, Result,
};

/// What turns logits into scores (transformers' `ClassificationFunction`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassificationFunction {
    Sigmoid,
    Softmax,
    /// The raw logits (regression).
    None,
}

impl ClassificationFunction {
    /// transformers' choice when `function_to_apply` is not given: none for `regression`, sigmoid
    /// for `multi_label_classification` or a single label, softmax otherwise
    /// (<https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/pipelines/text_classification.py#L206>).
    pub fn for_config(config: &BertConfig) -> Self {
        match (config.problem_type, config.num_labels()) {
            (Some(ProblemType::Regression), _) => ClassificationFunction::None,
            (Some(ProblemType::MultiLabelClassification), _) | (_, 1) => {
                ClassificationFunction::Sigmoid
            }
            _ => ClassificationFunction::Softmax,
        }
    }

    /// Scores of one row of logits.
    pub fn apply(self, logits: &[f32]) -> Vec<f32> {
        match self {
            ClassificationFunction::Sigmoid => logits.iter().map(|&x| sigmoid(x)).collect(),
            ClassificationFunction::Softmax => softmax(logits),
            ClassificationFunction::None => logits.to_vec(),
        }
    }
}

impl std::str::FromStr for ClassificationFunction {
    type Err = String;
    /// transformers' names: `sigmoid`, `softmax`, `none`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "sigmoid" => Ok(ClassificationFunction::Sigmoid),
            "softmax" => Ok(ClassificationFunction::Softmax),
            "none" => Ok(ClassificationFunction::None),
            _ => Err(format!("unknown function `{s}` (sigmoid, softmax, none)")),
        }
    }
}

/// Options of [`TextClassification::classify`], transformers' defaults.
#[derive(Clone, Debug)]
pub struct TextClassificationOptions {
    /// `None`: chosen from the config ([`ClassificationFunction::for_config`]).
    pub function_to_apply: Option<ClassificationFunction>,
    /// How many labels to return, best first; `None`: all of them. Default 1 (the best label).
    pub top_k: Option<usize>,
    /// Inputs per forward pass.
    pub batch_size: usize,
}

impl Default for TextClassificationOptions {
    fn default() -> Self {
        TextClassificationOptions {
            function_to_apply: None,
            top_k: Some(1),
            batch_size: DEFAULT_BATCH_SIZE,
        }
    }
}

/// One label and its score: transformers' `{"label": ..., "score": ...}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LabelScore {
    pub label: String,
    pub score: f32,
}

/// A sequence classifier and its tokenizer.
pub struct TextClassification {
    pub model: BertForSequenceClassification,
    pub tokenizer: BertTokenizer,
}

impl TextClassification {
    /// Loads the model and tokenizer of a directory or hub id.
    pub fn from_pretrained(model: &str) -> Result<Self> {
        Ok(TextClassification {
            model: BertForSequenceClassification::from_pretrained(model)?,
            tokenizer: BertTokenizer::from_pretrained(model)?,
        })
    }

    /// Classifies texts or pairs (`(text, Some(text_pair))`): for each, its labels sorted by score
    /// (stable: equal scores keep the label order), at most `top_k`.
    pub fn classify(
        &self,
        inputs: &[(&str, Option<&str>)],
        opts: &TextClassificationOptions,
    ) -> Result<Vec<Vec<LabelScore>>> {
        let mut out = Vec::with_capacity(inputs.len());
        for chunk in inputs.chunks(opts.batch_size.max(1)) {
            let encodings = self.tokenizer.tokenize_mixed(chunk)?;
            out.extend(self.classify_encodings(&encodings, opts)?);
        }
        Ok(out)
    }

    /// As [`classify`](Self::classify), on inputs already tokenized with [`Self::tokenizer`], in
    /// one forward pass.
    pub fn classify_encodings(
        &self,
        encodings: &[Encoding],
        opts: &TextClassificationOptions,
    ) -> Result<Vec<Vec<LabelScore>>> {
        let config = self.model.config();
        let f = opts
            .function_to_apply
            .unwrap_or_else(|| ClassificationFunction::for_config(config));
        let batch = self.tokenizer.pad(encodings)?;
        let logits = self
            .model
            .forward(&batch, &ForwardOptions::default())?
            .logits;
        logits
            .rows()
            .into_iter()
            .map(|row| {
                let scores = f.apply(row.as_slice().expect("standard-layout logits"));
                let mut labels = scores
                    .iter()
                    .enumerate()
                    .map(|(i, &score)| {
                        Ok(LabelScore {
                            label: label(config, i)?,
                            score,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                labels.sort_by(|a, b| b.score.total_cmp(&a.score));
                labels.truncate(opts.top_k.unwrap_or(usize::MAX));
                Ok(labels)
            })
            .collect()
    }
}
