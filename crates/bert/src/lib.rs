//! BERT in Rust: Hugging Face `transformers`' `BertModel`, its tokenizer and its checkpoints.
//!
//! ```no_run
//! let tokenizer = bert::BertTokenizer::from_pretrained("sentence-transformers/all-MiniLM-L6-v2")?;
//! let model = bert::BertModel::from_pretrained("sentence-transformers/all-MiniLM-L6-v2")?;
//! let inputs = tokenizer.encode_batch(&["Hello, my dog is cute", "How are you?"])?;
//! let out = model.forward(
//!     &inputs,
//!     &bert::ForwardOptions { output_hidden_states: true, output_attentions: true, ..Default::default() },
//! )?;
//! println!("{:?}", out.last_hidden_state.dim()); // (2, 8, 384)
//! # Ok::<(), bert::Error>(())
//! ```
//!
//! Data flows one way: text -> [`BertTokenizer`] -> [`BertInputs`] (padded (B, T)) -> packed real
//! tokens (no work on padding) -> embeddings -> layers -> [`BertModelOutput`] re-padded to (B, T, ...).

pub use ndarray;

pub mod architecture;
mod config;
mod dtype;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod heads;
pub mod hub;
mod inputs;
mod model;
mod packing;
pub mod pipelines;
pub mod profile;
mod tokenizer;
pub mod train;
mod weights;

pub use config::{BertConfig, HiddenAct, ProblemType};
pub use dtype::{Dtype, LoadOptions};
pub use error::{Error, Result};
pub use heads::{
    AutoModel, BertForMaskedLM, BertForMultipleChoice, BertForNextSentencePrediction,
    BertForPreTraining, BertForQuestionAnswering, BertForSequenceClassification,
    BertForTokenClassification,
};
pub use inputs::BertInputs;
pub use model::{BertModel, BertModelOutput, ForwardOptions};
pub use pipelines::{
    CrossEncoder, FillMask, QuestionAnswering, SentenceEmbeddings, TextClassification,
    TokenClassification,
};
pub use tokenizer::{BertTokenizer, Encoding, DEFAULT_MAX_LENGTH};
