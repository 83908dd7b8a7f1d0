//! Fine-tuning: the encoder's training forward and backward ([`Encoder`]), transformers' task heads
//! with their losses ([`TaskModel`]), AdamW and the learning-rate schedules of
//! `transformers.Trainer` ([`optim`]), its training loop with checkpoints ([`Trainer`]), and the
//! evaluation metrics ([`metrics`]). [`run_train`] and [`run_evaluate`] run the whole jobs of
//! `bert train` and `bert evaluate` from data files ([`dataset`]) to a written checkpoint.
//!
//! Parameters, gradients and optimizer moments share one layout ([`ParamSet`]): tensors under
//! transformers' names in one flat buffer. A user's own layers on top of BERT take the encoder's
//! outputs from [`Encoder::forward`] and hand their gradients to [`Encoder::backward`]
//! (`crates/bert/examples/custom_head.rs`).

mod data;
pub mod dataset;
mod encoder;
mod heads;
mod job;
mod loss;
pub mod metrics;
pub mod optim;
mod params;
mod pool;
mod trainer;

pub use bert_kernels::train::gemm::Precision;
pub use data::{align_word_labels, collate, Example, Target};
pub use dataset::Columns;
pub use encoder::{Encoder, Mode, Tape};
pub use heads::{logits_loss, HeadInit, Labels, Logits, Task, TaskModel};
pub use job::{run_evaluate, run_train, EvalJob, JobEvent, JobTask, TrainJob};
pub use loss::{bce_with_logits, cross_entropy, mse, IGNORE_INDEX};
pub use params::{ParamSet, ParamTensor};
pub use trainer::{
    evaluate, evaluate_with, metrics as task_metrics, save_pretrained, shuffled, EvalOutput,
    Prediction, StepLog, Trainer, TrainerState, TrainingArgs,
};
