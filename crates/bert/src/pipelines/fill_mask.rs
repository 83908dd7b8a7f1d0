//! transformers' `FillMaskPipeline` (`pipeline("fill-mask")`): the most likely tokens at each
//! `[MASK]` of a text, with the text they make; the decoder runs only at the mask positions
//! ([`BertForMaskedLM::forward_at`])
//! (<https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/pipelines/fill_mask.py#L130>).

use serde::Serialize;

use super::softmax;
use crate::{BertForMaskedLM, BertTokenizer, Error, ForwardOptions, Result};

/// Options of [`FillMask::fill`], transformers' defaults.
#[derive(Clone, Debug)]
pub struct FillMaskOptions {
    /// Predictions per mask. Default 5 (at most the number of targets).
    pub top_k: usize,
    /// Only score these tokens. A target not in the vocabulary stands for its first token (as
    /// transformers does, with a warning there).
    pub targets: Option<Vec<String>>,
}

impl Default for FillMaskOptions {
    fn default() -> Self {
        FillMaskOptions {
            top_k: 5,
            targets: None,
        }
    }
}

/// One candidate for a mask: transformers' `{"score", "token", "token_str", "sequence"}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MaskPrediction {
    pub score: f32,
    pub token: i64,
    pub token_str: String,
    /// The text with this token in place of the mask (special tokens kept when the text has
    /// several masks, as transformers decodes it).
    pub sequence: String,
}

/// A masked language model and its tokenizer.
pub struct FillMask {
    pub model: BertForMaskedLM,
    pub tokenizer: BertTokenizer,
}

impl FillMask {
    /// Loads the model and tokenizer of a directory or hub id.
    pub fn from_pretrained(model: &str) -> Result<Self> {
        Ok(FillMask {
            model: BertForMaskedLM::from_pretrained(model)?,
            tokenizer: BertTokenizer::from_pretrained(model)?,
        })
    }

    /// For each mask of `text`, in order, its best `top_k` candidates. A text without a mask token
    /// is an error.
    pub fn fill(&self, text: &str, opts: &FillMaskOptions) -> Result<Vec<Vec<MaskPrediction>>> {
        let mask = self.tokenizer.mask_token();
        let mask_id = self.tokenizer.token_to_id(mask).ok_or_else(|| {
            Error::Tokenizer(format!("the mask token `{mask}` is not in the vocabulary"))
        })?;
        let targets = match &opts.targets {
            Some(t) => Some(self.target_ids(t)?),
            None => None,
        };
        let inputs = self.tokenizer.encode(text)?;
        let positions = BertForMaskedLM::positions_of(&inputs, mask_id);
        if positions.is_empty() {
            return Err(Error::Input(format!(
                "no mask token {mask} in the text (after truncation to {} tokens): {}",
                self.tokenizer.max_length(),
                short(text)
            )));
        }
        let logits = self
            .model
            .forward_at(&inputs, &positions, &ForwardOptions::default())?
            .logits;
        let ids: Vec<i64> = inputs.input_ids.row(0).to_vec();
        let single = positions.len() == 1;
        let mut out = Vec::with_capacity(positions.len());
        for (i, &(_, t)) in positions.iter().enumerate() {
            let probs = softmax(logits.row(i).as_slice().expect("standard-layout logits"));
            let mut cands: Vec<(i64, f32)> = match &targets {
                Some(ids) => ids.iter().map(|&id| (id, probs[id as usize])).collect(),
                None => probs
                    .iter()
                    .enumerate()
                    .map(|(id, &p)| (id as i64, p))
                    .collect(),
            };
            cands.sort_by(|a, b| b.1.total_cmp(&a.1));
            cands.truncate(opts.top_k);
            let mut row = Vec::with_capacity(cands.len());
            for (token, score) in cands {
                let mut filled = ids.clone();
                filled[t] = token;
                filled.retain(|&id| id != self.tokenizer.pad_id());
                row.push(MaskPrediction {
                    score,
                    token,
                    token_str: self.tokenizer.decode(&[token], false)?,
                    sequence: self.tokenizer.decode(&filled, single)?,
                });
            }
            out.push(row);
        }
        Ok(out)
    }

    /// `get_target_ids`: each target's vocabulary id, or its first token's; duplicates removed.
    fn target_ids(&self, targets: &[String]) -> Result<Vec<i64>> {
        let mut ids = Vec::new();
        for t in targets {
            let id = match self.tokenizer.token_to_id(t) {
                Some(id) => Some(id),
                None => self.tokenizer.first_id(t)?,
            };
            if let Some(id) = id {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        if ids.is_empty() {
            return Err(Error::Input(format!(
                "none of the targets {targets:?} is or starts with a token of the vocabulary"
            )));
        }
        let v = self.model.predictions.vocab_size() as i64;
        if let Some(&bad) = ids.iter().find(|&&id| id >= v) {
            return Err(Error::Input(format!(
                "target id {bad} is outside the model's vocabulary of {v}"
            )));
        }
        Ok(ids)
    }
}

/// The start of a text, for messages.
fn short(text: &str) -> String {
    let mut s: String = text.chars().take(60).collect();
    if s.len() < text.len() {
        s.push('…');
    }
    format!("{s:?}")
}
