//! BERT in Rust: Hugging Face `transformers`' `BertModel`, its tokenizer and checkpoints.
pub use ndarray;

mod config;
mod error;
mod weights;

pub use config::{BertConfig, HiddenAct};
pub use error::{Error, Result};
