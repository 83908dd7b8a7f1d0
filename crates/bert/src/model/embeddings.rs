//! `BertEmbeddings`: word + token type + absolute position embeddings, then LayerNorm
//! (<https://github.com/huggingface/transformers/blob/v4.57.1/src/transformers/models/bert/modeling_bert.py#L70>).
//!
//! The family variants ([`crate::architecture`]) change only what goes in: RoBERTa's position
//! ids (made by the caller), DistilBERT's missing token-type table (one all-zero row here, so
//! `x + 0` leaves the sum exact), ELECTRA's narrower tables and `embeddings_project`.

use bert_kernels::Epilogue;

use super::layer_norm::LayerNorm;
use super::{linear, ModelLinear, WeightSource};
use crate::architecture::Architecture;
use crate::profile::{self, Phase};
use crate::weights::F32Tensor;
use crate::{BertConfig, Result};

pub(crate) struct BertEmbeddings {
    /// (V, H), used in place in the checkpoint's memory map when possible: a forward pass reads
    /// only the rows of its tokens.
    word_embeddings: F32Tensor,
    /// (P, H)
    position_embeddings: F32Tensor,
    /// (TV, H)
    token_type_embeddings: F32Tensor,
    layer_norm: LayerNorm,
    /// (H, E) ELECTRA's `embeddings_project` when the tables are narrower than the encoder.
    project: Option<ModelLinear>,
    /// E, the tables' width.
    width: usize,
}

impl BertEmbeddings {
    /// (bytes copied into memory, bytes used in place in the map) of the three tables.
    fn table_bytes(&self) -> (usize, usize) {
        let mut sizes = (0, 0);
        for t in [
            &self.word_embeddings,
            &self.position_embeddings,
            &self.token_type_embeddings,
        ] {
            match t {
                F32Tensor::Owned(v) => sizes.0 += 4 * v.capacity(),
                F32Tensor::Mapped { range, .. } => sizes.1 += range.len(),
            }
        }
        sizes
    }

    pub fn owned_bytes(&self) -> usize {
        self.table_bytes().0
    }

    pub fn mapped_bytes(&self) -> usize {
        self.table_bytes().1
    }

    pub fn load(w: &dyn WeightSource, c: &BertConfig) -> Result<Self> {
        let e = c.embedding_width();
        let token_type_embeddings = if Architecture::of(c).token_types {
            w.get_mapped(
                "embeddings.token_type_embeddings.weight",
                &[c.type_vocab_size, e],
            )?
        } else {
            F32Tensor::Owned(vec![0.0; e])
        };
        let project = match c.embedding_size {
            Some(e) if e != c.hidden_size => {
                Some(linear(w, "embeddings_project", c.hidden_size, e)?)
            }
            _ => None,
        };
        Ok(BertEmbeddings {
            word_embeddings: w
                .get_mapped("embeddings.word_embeddings.weight", &[c.vocab_size, e])?,
            position_embeddings: w.get_mapped(
                "embeddings.position_embeddings.weight",
                &[c.max_position_embeddings, e],
            )?,
            token_type_embeddings,
            layer_norm: LayerNorm::load(w, "embeddings.LayerNorm", e, c.layer_norm_eps)?,
            project,
            width: e,
        })
    }

    /// (V, H) the word-embedding table.
    pub fn word_embeddings(&self) -> &[f32] {
        &self.word_embeddings
    }

    /// `out (N, H) = LayerNorm(word[ids] + token_type[types] + position[positions])` for packed
    /// tokens (then `embeddings_project` when there is one). Ids must already be validated
    /// against the table sizes.
    pub fn forward(&self, ids: &[i64], types: &[i64], positions: &[i64], out: &mut [f32]) {
        let Some(project) = &self.project else {
            profile::timed(Phase::Elementwise, || {
                self.gather(ids, types, positions, out)
            });
            self.layer_norm.forward(out);
            return;
        };
        // (N, E)
        let mut narrow = vec![0.0f32; ids.len() * self.width];
        profile::timed(Phase::Elementwise, || {
            self.gather(ids, types, positions, &mut narrow)
        });
        self.layer_norm.forward(&mut narrow);
        profile::timed(Phase::Gemm, || {
            project.forward(&narrow, out, Epilogue::Bias)
        });
    }

    /// `out (N, E) = word[ids] + token_type[types] + position[positions]`.
    fn gather(&self, ids: &[i64], types: &[i64], positions: &[i64], out: &mut [f32]) {
        let h = self.width;
        bert_kernels::team::for_each_chunk_mut(out, h, |i, row| {
            let word = &self.word_embeddings[ids[i] as usize * h..][..h];
            let ty = &self.token_type_embeddings[types[i] as usize * h..][..h];
            let pos = &self.position_embeddings[positions[i] as usize * h..][..h];
            // Same association order as transformers: (word + token_type) + position.
            for k in 0..h {
                row[k] = (word[k] + ty[k]) + pos[k];
            }
        });
    }
}
