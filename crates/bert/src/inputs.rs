//! `BertInputs`: the padded (B, T) integer tensors a forward pass takes, as transformers'
//! `BatchEncoding` holds them.

use ndarray::Array2;

use crate::{Error, Result};

/// Token ids, attention mask and segment ids of a batch, all (B, T), padded to the longest sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BertInputs {
    /// (B, T) vocabulary ids; padding positions hold the pad id.
    pub input_ids: Array2<i64>,
    /// (B, T) 1 = real token, 0 = padding.
    pub attention_mask: Array2<i64>,
    /// (B, T) segment ids: 0 for the first text, 1 for the second of a pair, 0 at padding.
    pub token_type_ids: Array2<i64>,
}

impl BertInputs {
    /// Inputs from `input_ids` alone: every position real, all segment ids 0.
    pub fn from_ids(input_ids: Array2<i64>) -> Self {
        let dim = input_ids.raw_dim();
        BertInputs {
            input_ids,
            attention_mask: Array2::ones(dim),
            token_type_ids: Array2::zeros(dim),
        }
    }

    /// Pads ragged rows of `(ids, type_ids)` to the longest with `pad_id`, mask 0 and segment 0.
    pub fn from_rows(rows: &[(Vec<i64>, Vec<i64>)], pad_id: i64) -> Result<Self> {
        Self::from_rows_padded(rows, pad_id, 0)
    }

    /// Like [`BertInputs::from_rows`], padded to at least `min_len` positions (fixed-shape batches).
    pub fn from_rows_padded(
        rows: &[(Vec<i64>, Vec<i64>)],
        pad_id: i64,
        min_len: usize,
    ) -> Result<Self> {
        let b = rows.len();
        let t = rows
            .iter()
            .map(|r| r.0.len())
            .max()
            .unwrap_or(0)
            .max(min_len);
        let mut input_ids = Array2::from_elem((b, t), pad_id);
        let mut attention_mask = Array2::zeros((b, t));
        let mut token_type_ids = Array2::zeros((b, t));
        for (i, (ids, types)) in rows.iter().enumerate() {
            if ids.len() != types.len() {
                return Err(Error::Input(format!(
                    "row {i}: {} ids but {} token type ids",
                    ids.len(),
                    types.len()
                )));
            }
            for (j, (&id, &ty)) in ids.iter().zip(types).enumerate() {
                input_ids[[i, j]] = id;
                attention_mask[[i, j]] = 1;
                token_type_ids[[i, j]] = ty;
            }
        }
        Ok(BertInputs {
            input_ids,
            attention_mask,
            token_type_ids,
        })
    }

    /// Batch size B.
    pub fn batch_size(&self) -> usize {
        self.input_ids.nrows()
    }

    /// Padded sequence length T.
    pub fn seq_len(&self) -> usize {
        self.input_ids.ncols()
    }

    /// Number of real (unmasked) tokens.
    pub fn real_tokens(&self) -> usize {
        self.attention_mask.iter().filter(|&&m| m != 0).count()
    }
}
