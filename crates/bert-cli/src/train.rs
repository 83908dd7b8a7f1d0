//! `bert train`: fine-tunes a checkpoint for sequence or token classification as
//! `transformers.Trainer` does, and writes a transformers checkpoint (model.safetensors with
//! transformers' names, config.json with the labels, the tokenizer files, trainer_state.json,
//! eval_results.json). `bert evaluate` scores a fine-tuned directory on a labelled file, in f32 or
//! int8. Both jobs are the library's (`bert::train::run_train`, `run_evaluate`); this is their
//! flags, progress bar and printing.

use std::path::PathBuf;

use bert::train::optim::ScheduleKind;
use bert::train::{Columns, EvalJob, JobEvent, JobTask, TrainJob};
use bert::ProblemType;
use clap::ValueEnum;

use crate::CliResult;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum TaskArg {
    SequenceClassification,
    TokenClassification,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ProblemArg {
    Regression,
    SingleLabelClassification,
    MultiLabelClassification,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SchedulerArg {
    Linear,
    Cosine,
    Constant,
}

/// Where the columns of a TSV / CSV file are.
#[derive(clap::Args, Clone, Debug)]
pub struct ColumnArgs {
    /// TSV/CSV column of the text (default: `text`, `sentence` or `sentence1`).
    #[arg(long, value_name = "NAME")]
    pub text_column: Option<String>,
    /// TSV/CSV column of the second text of a pair (default: `text_pair` or `sentence2`, if any).
    #[arg(long, value_name = "NAME")]
    pub text_pair_column: Option<String>,
    /// TSV/CSV column of the label (default: `label`).
    #[arg(long, value_name = "NAME")]
    pub label_column: Option<String>,
}

impl ColumnArgs {
    fn columns(&self) -> Columns {
        Columns {
            text: self.text_column.clone(),
            text_pair: self.text_pair_column.clone(),
            label: self.label_column.clone(),
        }
    }
}

#[derive(clap::Args)]
pub struct TrainArgs {
    /// What to fine-tune for.
    #[arg(long, value_enum)]
    pub task: TaskArg,
    /// Checkpoint to start from: a directory or hub id (its head is reused when it has the
    /// training file's labels; otherwise a fresh, seeded head).
    #[arg(long, short = 'm', default_value = bert::hub::DEFAULT_MODEL)]
    pub model: String,
    /// Training data. Sequence tasks: JSON lines {"text", "text_pair"?, "label"} (label a string,
    /// a number for regression, or a list of strings for multi-label) or TSV/CSV with a header.
    /// Token tasks: CoNLL (token first, tag last, blank line between sentences) or JSON lines
    /// {"tokens": [...], "tags": [...]}.
    #[arg(long, value_name = "FILE", verbatim_doc_comment)]
    pub train: PathBuf,
    /// Evaluation data, same format; scored after every epoch.
    #[arg(long, value_name = "FILE")]
    pub eval: Option<PathBuf>,
    /// Where the fine-tuned model, its checkpoints and results go.
    #[arg(long, short = 'o', value_name = "DIR")]
    pub output: PathBuf,
    /// Passes over the training data.
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Peak learning rate of AdamW (reached after the warmup).
    #[arg(long, default_value_t = 5e-5)]
    pub learning_rate: f32,
    /// Examples per forward/backward pass.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Tokens per example at most, special tokens included (run_glue.py's default 128).
    #[arg(long, value_name = "N", default_value_t = 128)]
    pub max_length: usize,
    /// Warmup steps as a fraction of all optimizer steps.
    #[arg(long, default_value_t = 0.0)]
    pub warmup_ratio: f64,
    /// Warmup steps (wins over --warmup-ratio).
    #[arg(long, value_name = "N")]
    pub warmup_steps: Option<u64>,
    /// AdamW's decoupled weight decay (not on biases and LayerNorm weights).
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f32,
    /// Batches whose gradients are summed before each optimizer step.
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    /// Clip the global gradient norm to this.
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f32,
    /// Learning rate after the warmup: down to 0 linearly, down along half a cosine, or constant.
    #[arg(long, value_enum, default_value = "linear")]
    pub lr_scheduler: SchedulerArg,
    /// Seeds the head's initialization, the shuffling and dropout: the same seed, data and
    /// thread count give the same weights.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Write a resumable checkpoint to DIR/checkpoint-STEP every N optimizer steps.
    #[arg(long, value_name = "N")]
    pub save_steps: Option<u64>,
    /// Mixed precision, as transformers' `--bf16`: the encoder's Linear products forward and
    /// backward in bf16 with f32 sums; weights, gradients and AdamW stay f32. Native on
    /// AVX512-BF16 CPUs, emulated (same numbers, about f32's speed) elsewhere.
    #[arg(long)]
    pub bf16: bool,
    /// Continue from a checkpoint directory written by --save-steps (same data and arguments).
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Override the problem type guessed from the labels.
    #[arg(long, value_enum)]
    pub problem_type: Option<ProblemArg>,
    #[command(flatten)]
    pub columns: ColumnArgs,
    /// Also write every step and evaluation as JSON lines to FILE.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// No progress bar and no notes on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

#[derive(clap::Args)]
pub struct EvaluateArgs {
    /// A fine-tuned directory (written by `bert train`, or any transformers sequence / token
    /// classification checkpoint).
    #[arg(long, short = 'm')]
    pub model: String,
    /// Labelled data, in the formats `bert train` reads.
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// Examples per forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Tokens per example at most, special tokens included.
    #[arg(long, value_name = "N", default_value_t = 128)]
    pub max_length: usize,
    #[command(flatten)]
    pub columns: ColumnArgs,
    // f32 scores the training forward (the numbers of `bert train`'s evaluation); int8 the
    // inference head `bert classify` / `bert ner` load with `--dtype int8` (`EvalJob::dtype`).
    #[command(flatten)]
    pub dtype: crate::DtypeArgs,
}

impl TrainArgs {
    fn job(&self) -> TrainJob {
        TrainJob {
            task: match self.task {
                TaskArg::SequenceClassification => JobTask::SequenceClassification,
                TaskArg::TokenClassification => JobTask::TokenClassification,
            },
            model: self.model.clone(),
            train: self.train.clone(),
            eval: self.eval.clone(),
            output: self.output.clone(),
            epochs: self.epochs,
            learning_rate: self.learning_rate,
            batch_size: self.batch_size,
            max_length: self.max_length,
            warmup_ratio: self.warmup_ratio,
            warmup_steps: self.warmup_steps,
            weight_decay: self.weight_decay,
            grad_accum: self.grad_accum,
            max_grad_norm: self.max_grad_norm,
            lr_scheduler: match self.lr_scheduler {
                SchedulerArg::Linear => ScheduleKind::Linear,
                SchedulerArg::Cosine => ScheduleKind::Cosine,
                SchedulerArg::Constant => ScheduleKind::Constant,
            },
            seed: self.seed,
            save_steps: self.save_steps,
            bf16: self.bf16,
            resume: self.resume.clone(),
            problem_type: self.problem_type.map(|p| match p {
                ProblemArg::Regression => ProblemType::Regression,
                ProblemArg::SingleLabelClassification => ProblemType::SingleLabelClassification,
                ProblemArg::MultiLabelClassification => ProblemType::MultiLabelClassification,
            }),
            columns: self.columns.columns(),
            log: self.log.clone(),
        }
    }
}

pub fn run(args: TrainArgs) -> CliResult {
    let quiet = args.quiet;
    let mut pb = indicatif::ProgressBar::hidden();
    let mut steps = 0u64;
    let mut on_event = |event: JobEvent<'_>| -> bert::Result<()> {
        match event {
            JobEvent::Started {
                train_examples,
                truncated,
                eval_examples,
                labels,
                max_length,
                max_steps,
                global_step,
            } => {
                if !quiet {
                    eprintln!(
                        "{train_examples} training examples ({truncated} truncated to \
                         {max_length} tokens){}; labels {labels:?}",
                        eval_examples
                            .map(|n| format!(", {n} evaluation examples"))
                            .unwrap_or_default(),
                    );
                }
                pb = crate::progress::bar(max_steps, "steps", quiet);
                pb.set_position(global_step);
                steps = global_step;
            }
            JobEvent::Step {
                log: s,
                tokens_per_second,
            } => {
                pb.set_position(s.step);
                pb.set_message(format!(
                    "loss {:.4} lr {:.2e} {tokens_per_second:.0} tok/s",
                    s.loss, s.learning_rate
                ));
                pb.set_prefix(format!("epoch {:.2}", s.epoch));
                steps = s.step;
            }
            JobEvent::Eval { epoch, metrics, .. } if !quiet => {
                pb.suspend(|| eprintln!("eval after epoch {epoch}: {metrics}"));
            }
            _ => {}
        }
        Ok(())
    };
    let job = args.job();
    let results = bert::train::run_train(&job, &mut on_event);
    pb.finish_and_clear();
    let results = results?;
    if !quiet {
        let train_s = results["train_runtime_s"].as_f64().unwrap_or_default();
        let tokens = results["train_tokens"].as_f64().unwrap_or_default();
        eprintln!(
            "trained {steps} steps in {train_s:.1} s ({:.0} tokens/s; evaluation {:.1} s more); \
             model written to {}",
            tokens / train_s.max(1e-9),
            results["eval_runtime_s"].as_f64().unwrap_or_default(),
            job.output.display()
        );
    }
    if !results["final"].is_null() {
        println!("{}", results["final"]);
    }
    Ok(())
}

impl EvaluateArgs {
    fn job(&self) -> EvalJob {
        EvalJob {
            model: self.model.clone(),
            data: self.data.clone(),
            batch_size: self.batch_size,
            max_length: self.max_length,
            columns: self.columns.columns(),
            dtype: self.dtype.dtype,
        }
    }
}

pub fn run_evaluate(args: EvaluateArgs) -> CliResult {
    println!("{}", bert::train::run_evaluate(&args.job())?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Train {
        #[command(flatten)]
        args: TrainArgs,
    }

    #[derive(Parser)]
    struct Evaluate {
        #[command(flatten)]
        args: EvaluateArgs,
    }

    /// The library's defaults are the flags' defaults: Rust and Python callers run what `bert
    /// train` runs.
    #[test]
    fn flag_defaults_are_the_jobs_defaults() {
        let t = Train::parse_from(
            ["train", "--task", "sequence-classification"]
                .into_iter()
                .chain(["--train", "t.jsonl", "--output", "out"]),
        );
        let want = TrainJob {
            train: "t.jsonl".into(),
            output: "out".into(),
            ..Default::default()
        };
        assert_eq!(t.args.job(), want);
        let e = Evaluate::parse_from(["evaluate", "-m", "dir", "--data", "d.jsonl"]);
        let want = EvalJob {
            model: "dir".into(),
            data: "d.jsonl".into(),
            ..Default::default()
        };
        assert_eq!(e.args.job(), want);
    }
}
