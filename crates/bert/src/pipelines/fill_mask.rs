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
        Ok(self.fill_batch(&[text], opts)?.remove(0))
    }

    /// [`fill`](Self::fill) for each text, with one forward pass (the decoder at the masks only).
    pub fn fill_batch(
        &self,
        texts: &[&str],
        opts: &FillMaskOptions,
    ) -> Result<Vec<Vec<Vec<MaskPrediction>>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let mask = self.tokenizer.mask_token();
        let mask_id = self.tokenizer.token_to_id(mask).ok_or_else(|| {
            Error::Tokenizer(format!("the mask token `{mask}` is not in the vocabulary"))
        })?;
        let targets = match &opts.targets {
            Some(t) => Some(self.target_ids(t)?),
            None => None,
        };
        let inputs = self.tokenizer.encode_batch(texts)?;
        let positions = BertForMaskedLM::positions_of(&inputs, mask_id);
        if let Some((i, text)) = texts
            .iter()
            .enumerate()
            .find(|&(i, _)| !positions.iter().any(|&(b, _)| b == i))
        {
            return Err(Error::Input(format!(
                "no mask token {mask} in {}the text (after truncation to {} tokens): {}",
                if texts.len() > 1 {
                    format!("input {i}, ")
                } else {
                    String::new()
                },
                self.tokenizer.max_length(),
                short(text)
            )));
        }
        let logits = self
            .model
            .forward_at(&inputs, &positions, &ForwardOptions::default())?
            .logits;
        let mut out: Vec<Vec<Vec<MaskPrediction>>> = vec![Vec::new(); texts.len()];
        for (i, &(b, t)) in positions.iter().enumerate() {
            let ids: Vec<i64> = inputs.input_ids.row(b).to_vec();
            let single = positions.iter().filter(|p| p.0 == b).count() == 1;
            let probs = softmax(logits.row(i).as_slice().expect("standard-layout logits"));
            out[b].push(self.candidates(&probs, targets.as_deref(), &ids, t, single, opts)?);
        }
        Ok(out)
    }

    /// The best `top_k` tokens of `probs` (among `targets`) at position `t` of `ids`, each with
    /// the text it makes.
    fn candidates(
        &self,
        probs: &[f32],
        targets: Option<&[i64]>,
        ids: &[i64],
        t: usize,
        single: bool,
        opts: &FillMaskOptions,
    ) -> Result<Vec<MaskPrediction>> {
        let mut cands: Vec<(i64, f32)> = match targets {
            Some(ids) => ids.iter().map(|&id| (id, probs[id as usize])).collect(),
            None => probs
                .iter()
                .enumerate()
                .map(|(id, &p)| (id as i64, p))
                .collect(),
        };
        cands.sort_by(|a, b| b.1.total_cmp(&a.1));
        cands.truncate(opts.top_k);
        cands
            .into_iter()
            .map(|(token, score)| {
                let mut filled = ids.to_vec();
                filled[t] = token;
                filled.retain(|&id| id != self.tokenizer.pad_id());
                Ok(MaskPrediction {
                    score,
                    token,
                    token_str: self.tokenizer.decode(&[token], false)?,
                    sequence: self.tokenizer.decode(&filled, single)?,
                })
            })
            .collect()
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
