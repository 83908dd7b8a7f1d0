//! Fine-tuning: the encoder's training forward and backward ([`Encoder`]), transformers' task heads
//! with their losses ([`TaskModel`]), AdamW and the learning-rate schedules `transformers.Trainer`
//! uses ([`optim`]).
//!
//! Parameters, gradients and optimizer moments share one layout ([`ParamSet`]): tensors under
//! transformers' names in one flat buffer. A user's own layers on top of BERT take the encoder's
//! outputs from [`Encoder::forward`] and hand their gradients to [`Encoder::backward`]
//! (`examples/custom_head.rs`).

mod encoder;
mod heads;
mod loss;
pub mod optim;
mod params;

pub use encoder::{Encoder, Mode, Tape};
pub use heads::{HeadInit, Labels, Logits, Task, TaskModel};
pub use loss::{bce_with_logits, cross_entropy, mse, IGNORE_INDEX};
pub use params::{ParamSet, ParamTensor};
