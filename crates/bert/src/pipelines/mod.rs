//! Pipelines: what transformers' `pipeline(...)` and sentence-transformers' `encode(...)` do around
//! a model, one file each.

mod sentence_embeddings;

pub use sentence_embeddings::{
    normalize, pool, EncodeOptions, PoolingConfig, PoolingMode, SentenceEmbeddings,
};
