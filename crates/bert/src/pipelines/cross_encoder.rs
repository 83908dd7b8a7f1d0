//! Cross-encoder scoring for reranking, as sentence-transformers' `CrossEncoder.predict` does with a
//! one-label `BertForSequenceClassification`: the (query, passage) pair through the classifier,
//! then a sigmoid
//! (<https://github.com/UKPLab/sentence-transformers/blob/main/sentence_transformers/cross_encoder/CrossEncoder.py>).

use super::{sigmoid, DEFAULT_BATCH_SIZE};
use crate::{
    BertForSequenceClassification, BertTokenizer, Encoding, Error, ForwardOptions, Result,
};

/// A one-label sequence classifier over (query, passage) pairs.
pub struct CrossEncoder {
    model: BertForSequenceClassification,
    tokenizer: BertTokenizer,
}

impl CrossEncoder {
    /// Loads the model and tokenizer of a directory or hub id.
    pub fn from_pretrained(model: &str) -> Result<Self> {
        Self::new(
            BertForSequenceClassification::from_pretrained(model)?,
            BertTokenizer::from_pretrained(model)?,
        )
    }

    /// A cross-encoder from a classifier with exactly one label.
    pub fn new(model: BertForSequenceClassification, tokenizer: BertTokenizer) -> Result<Self> {
        let n = model.config().num_labels();
        if n != 1 {
            return Err(Error::Config(format!(
                "a cross-encoder scores with one label, but this classifier has {n} ({}); \
                 use TextClassification for it",
                model
                    .config()
                    .id2label
                    .values()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(CrossEncoder { model, tokenizer })
    }

    /// The tokenizer (its `max_length` truncates each pair, longest first).
    pub fn tokenizer(&self) -> &BertTokenizer {
        &self.tokenizer
    }

    /// Replaces the tokenizer, e.g. with another `max_length`.
    pub fn with_tokenizer(mut self, tokenizer: BertTokenizer) -> Self {
        self.tokenizer = tokenizer;
        self
    }

    /// `sigmoid(logit)` of each `(query, passage)` pair, in order.
    pub fn score(&self, pairs: &[(&str, &str)]) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(pairs.len());
        for chunk in pairs.chunks(DEFAULT_BATCH_SIZE) {
            out.extend(self.score_encodings(&self.tokenizer.tokenize_pairs(chunk)?)?);
        }
        Ok(out)
    }

    /// As [`score`](Self::score), on pairs already tokenized with [`Self::tokenizer`], in one
    /// forward pass.
    pub fn score_encodings(&self, encodings: &[Encoding]) -> Result<Vec<f32>> {
        let batch = self.tokenizer.pad(encodings)?;
        let logits = self
            .model
            .forward(&batch, &ForwardOptions::default())?
            .logits;
        Ok(logits.column(0).iter().map(|&x| sigmoid(x)).collect())
    }

    /// The passages' indices and scores for `query`, best first (stable for equal scores).
    pub fn rerank(&self, query: &str, passages: &[&str]) -> Result<Vec<(usize, f32)>> {
        let pairs: Vec<(&str, &str)> = passages.iter().map(|&p| (query, p)).collect();
        let mut ranked: Vec<(usize, f32)> = self.score(&pairs)?.into_iter().enumerate().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(ranked)
    }
}
