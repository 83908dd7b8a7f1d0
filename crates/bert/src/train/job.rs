//! The whole fine-tuning job of `bert train` and the scoring job of `bert evaluate`, callable from
//! Rust and the Python bindings: read and check the data files ([`dataset`](super::dataset)),
//! pick the labels, build the [`TaskModel`] and [`Trainer`], run the epochs with an evaluation
//! after each, write a transformers checkpoint (`save_pretrained`, `trainer_state.json`,
//! `eval_results.json`) and the optional JSON-lines log.
//!
//! The CLI is a thin layer over [`run_train`] and [`run_evaluate`]: it turns its flags into a
//! [`TrainJob`] / [`EvalJob`] and draws its progress bar from the [`JobEvent`]s.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bert_kernels::train::gemm::Precision;
use serde_json::{json, Value};

use super::data::Example;
use super::dataset::{self, Columns, TextRecord, TokenRecord};
use super::heads::{logits_loss, HeadInit, Labels, Logits, Task, TaskModel};
use super::optim::ScheduleKind;
use super::params::ParamSet;
use super::trainer::{
    evaluate, evaluate_with, metrics, save_pretrained, StepLog, Trainer, TrainingArgs,
};
use crate::architecture::Class;
use crate::hub::{self, Need};
use crate::{
    BertConfig, BertForSequenceClassification, BertForTokenClassification, BertInputs,
    BertTokenizer, Dtype, Error, ForwardOptions, LoadOptions, ProblemType, Result,
};

/// What a [`TrainJob`] fine-tunes for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JobTask {
    /// One label (or score, or set of labels) per text or pair: `BertForSequenceClassification`.
    #[default]
    SequenceClassification,
    /// One tag per word: `BertForTokenClassification`.
    TokenClassification,
}

impl JobTask {
    fn task(self) -> Task {
        match self {
            JobTask::SequenceClassification => Task::SequenceClassification,
            JobTask::TokenClassification => Task::TokenClassification,
        }
    }
}

/// Every option of `bert train`, under the same names and with the same defaults
/// ([`Default`]); `train` and `output` have none and must be set.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainJob {
    /// What to fine-tune for.
    pub task: JobTask,
    /// Checkpoint to start from: a directory or hub id (its head is reused when it has the
    /// training file's labels; otherwise a fresh, seeded head).
    pub model: String,
    /// Training data, in a format of [`dataset`](super::dataset).
    pub train: PathBuf,
    /// Evaluation data, same format; scored after every epoch.
    pub eval: Option<PathBuf>,
    /// Where the fine-tuned model, its checkpoints and results go.
    pub output: PathBuf,
    /// Passes over the training data.
    pub epochs: usize,
    /// Peak learning rate of AdamW (reached after the warmup).
    pub learning_rate: f32,
    /// Examples per forward/backward pass.
    pub batch_size: usize,
    /// Tokens per example at most, special tokens included (run_glue.py's default 128; at most
    /// the model's `longest input (`BertConfig::max_input_length`)`).
    pub max_length: usize,
    /// Warmup steps as a fraction of all optimizer steps.
    pub warmup_ratio: f64,
    /// Warmup steps (wins over `warmup_ratio`).
    pub warmup_steps: Option<u64>,
    /// AdamW's decoupled weight decay (not on biases and LayerNorm weights).
    pub weight_decay: f32,
    /// Batches whose gradients are summed before each optimizer step.
    pub grad_accum: usize,
    /// Clip the global gradient norm to this.
    pub max_grad_norm: f32,
    /// Learning rate after the warmup.
    pub lr_scheduler: ScheduleKind,
    /// Seeds the head's initialization, the shuffling and dropout: the same seed, data and
    /// thread count give the same weights.
    pub seed: u64,
    /// Write a resumable checkpoint to `output/checkpoint-STEP` every this many optimizer steps
    /// (`Some(0)` is none).
    pub save_steps: Option<u64>,
    /// Mixed precision ([`TrainingArgs::bf16`]): bf16 products with f32 sums, f32 weights and
    /// optimizer; native on AVX512-BF16, emulated (same numbers, about f32's speed) elsewhere.
    pub bf16: bool,
    /// Continue from a checkpoint directory written by `save_steps` (same data and options).
    pub resume: Option<PathBuf>,
    /// Overrides the problem type guessed from the labels (sequence tasks).
    pub problem_type: Option<ProblemType>,
    /// Where the columns of a TSV / CSV file are.
    pub columns: Columns,
    /// Also write every step and evaluation as JSON lines to this file.
    pub log: Option<PathBuf>,
}

impl Default for TrainJob {
    fn default() -> Self {
        TrainJob {
            task: JobTask::SequenceClassification,
            model: hub::DEFAULT_MODEL.to_string(),
            train: PathBuf::new(),
            eval: None,
            output: PathBuf::new(),
            epochs: 3,
            learning_rate: 5e-5,
            batch_size: 32,
            max_length: 128,
            warmup_ratio: 0.0,
            warmup_steps: None,
            weight_decay: 0.0,
            grad_accum: 1,
            max_grad_norm: 1.0,
            lr_scheduler: ScheduleKind::Linear,
            seed: 42,
            save_steps: None,
            bf16: false,
            resume: None,
            problem_type: None,
            columns: Columns::default(),
            log: None,
        }
    }
}

/// What [`run_train`] reports as it goes.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum JobEvent<'a> {
    /// The data is read and checked, the model loaded; training starts now.
    Started {
        /// Training examples.
        train_examples: usize,
        /// Training examples cut to `max_length` tokens.
        truncated: usize,
        /// Evaluation examples, when there is an evaluation file.
        eval_examples: Option<usize>,
        /// The class (or tag) names, in the order of the head's outputs.
        labels: &'a [String],
        /// Tokens per example at most (the job's, at most the model's positions).
        max_length: usize,
        /// Optimizer steps of the whole run.
        max_steps: u64,
        /// Steps already done: 0, or where a resumed run starts.
        global_step: u64,
    },
    /// One optimizer step done.
    Step {
        /// The step, as `trainer_state.json`'s `log_history` holds it.
        log: &'a StepLog,
        /// Real tokens trained per second since the start (evaluations included in the time).
        tokens_per_second: f64,
    },
    /// An evaluation after an epoch.
    Eval {
        /// Epochs completed.
        epoch: usize,
        /// Optimizer steps done.
        step: u64,
        /// The metrics: an object of numbers (`loss`, `accuracy`, `macro_f1`, ...).
        metrics: &'a Value,
    },
}

/// The tokenizer's files, copied next to the trained weights.
const TOKENIZER_FILES: [&str; 4] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
];

/// A data file's records, read and checked, not yet tokenized.
enum Records {
    Texts(Vec<TextRecord>),
    Tokens(Vec<TokenRecord>),
}

/// The examples of one file, labelled.
struct Data {
    examples: Vec<Example>,
    truncated: usize,
}

impl Records {
    fn read(task: Task, path: &Path, cols: &Columns) -> Result<Self> {
        Ok(match task {
            Task::TokenClassification => Records::Tokens(dataset::read_tokens(path)?),
            _ => Records::Texts(dataset::read_texts(path, cols)?),
        })
    }

    /// The label set and problem type a training file implies (`problem_type` overriding the
    /// guess); no problem type for tags.
    fn labels(
        &self,
        path: &Path,
        problem_type: Option<ProblemType>,
    ) -> Result<(Vec<String>, Option<ProblemType>)> {
        let (labels, pt) = match self {
            Records::Tokens(r) => (dataset::label_set_tokens(r), None),
            Records::Texts(r) => {
                let pt = match problem_type {
                    Some(p) => p,
                    None => dataset::guess_problem_type(path, r)?,
                };
                let labels = if pt == ProblemType::Regression {
                    vec!["LABEL_0".to_string()]
                } else {
                    dataset::label_set_texts(r, pt)
                };
                (labels, Some(pt))
            }
        };
        if labels.is_empty() {
            return Err(Error::data(path, None, "no labels"));
        }
        Ok((labels, pt))
    }

    /// Tokenized and labelled with `labels` (an unknown label is an error naming its line).
    fn examples(
        &self,
        path: &Path,
        tok: &BertTokenizer,
        labels: &[String],
        pt: Option<ProblemType>,
        num_labels: usize,
    ) -> Result<Data> {
        let (examples, truncated) = match self {
            Records::Tokens(r) => dataset::token_examples(path, r, tok, labels)?,
            Records::Texts(r) => {
                let pt = pt.unwrap_or(ProblemType::SingleLabelClassification);
                dataset::text_examples(path, r, tok, labels, pt, num_labels)?
            }
        };
        Ok(Data {
            examples,
            truncated,
        })
    }
}

fn training_args(job: &TrainJob) -> TrainingArgs {
    TrainingArgs {
        epochs: job.epochs,
        learning_rate: job.learning_rate,
        batch_size: job.batch_size,
        grad_accum: job.grad_accum,
        warmup_ratio: job.warmup_ratio,
        warmup_steps: job.warmup_steps,
        weight_decay: job.weight_decay,
        max_grad_norm: job.max_grad_norm,
        schedule: job.lr_scheduler,
        seed: job.seed,
        save_steps: job.save_steps.filter(|&n| n > 0),
        bf16: job.bf16,
    }
}

/// The `log` file's JSON lines.
struct JobLog {
    path: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
}

impl JobLog {
    fn create(path: &Path) -> Result<Self> {
        let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
        Ok(JobLog {
            path: path.to_path_buf(),
            out: std::io::BufWriter::new(file),
        })
    }

    fn line(&mut self, v: &Value) -> Result<()> {
        writeln!(self.out, "{v}").map_err(|e| Error::io(&self.path, e))
    }

    fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(|e| Error::io(&self.path, e))
    }
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("plain values") + "\n";
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// Runs the whole job of `bert train`: reads and checks both data files (every line, before
/// anything is loaded), trains `job.epochs` epochs with an evaluation after each, and writes the
/// model, `trainer_state.json` and `eval_results.json` to `job.output`.
///
/// `events` sees each [`JobEvent`]; an error it returns stops the job (a progress display's
/// interrupt, Ctrl-C from Python) and is returned as is. Returns the `eval_results.json` object:
/// `final` (the last evaluation's metrics, `null` without an evaluation file), `epochs` (each
/// evaluation with its `epoch` and `step`), `train_runtime_s`, `eval_runtime_s` and
/// `train_tokens`.
pub fn run_train(
    job: &TrainJob,
    events: &mut dyn FnMut(JobEvent<'_>) -> Result<()>,
) -> Result<Value> {
    let task = job.task.task();
    let train_records = Records::read(task, &job.train, &job.columns)?;
    let (labels, pt) = train_records.labels(&job.train, job.problem_type)?;
    let eval_records = match &job.eval {
        Some(p) => Some((p, Records::read(task, p, &job.columns)?)),
        None => None,
    };
    let model_dir = hub::resolve(&job.model, Need::Model)?;
    let init = HeadInit {
        labels: Some(labels.clone()),
        problem_type: pt,
        seed: job.seed,
    };
    let (mut model, params) = TaskModel::from_dir(&model_dir, task, &init)?;
    if job.bf16 {
        model.set_precision(Precision::Bf16);
    }
    let max_length = job.max_length.min(model.config().max_input_length());
    let tok = BertTokenizer::from_dir(&model_dir)?.with_max_length(max_length);
    let num_labels = model.config().num_labels();
    let train = train_records.examples(&job.train, &tok, &labels, pt, num_labels)?;
    let eval = match &eval_records {
        Some((p, r)) => Some(r.examples(p, &tok, &labels, pt, num_labels)?),
        None => None,
    };
    let (train_examples, truncated) = (train.examples.len(), train.truncated);
    let targs = training_args(job);
    let pad = tok.pad_id();
    let mut trainer = match &job.resume {
        Some(dir) => Trainer::resume(&model, dir, params, train.examples, targs, pad)?,
        None => Trainer::new(&model, params, train.examples, targs, pad)?,
    };
    std::fs::create_dir_all(&job.output).map_err(|e| Error::io(&job.output, e))?;
    let extra: Vec<PathBuf> = TOKENIZER_FILES
        .iter()
        .map(|f| model_dir.join(f))
        .filter(|p| p.is_file())
        .collect();
    let mut log = job.log.as_deref().map(JobLog::create).transpose()?;
    events(JobEvent::Started {
        train_examples,
        truncated,
        eval_examples: eval.as_ref().map(|e| e.examples.len()),
        labels: &labels,
        max_length,
        max_steps: trainer.state.max_steps,
        global_step: trainer.state.global_step,
    })?;
    let mut evals = Vec::new();
    let start = Instant::now();
    let mut eval_secs = 0.0f64;
    let mut tokens_seen = 0usize;
    while !trainer.finished() {
        let mut on_step = |t: &Trainer<'_>, s: &StepLog| -> Result<()> {
            tokens_seen += s.tokens;
            let rate = tokens_seen as f64 / start.elapsed().as_secs_f64().max(1e-9);
            events(JobEvent::Step {
                log: s,
                tokens_per_second: rate,
            })?;
            if let Some(l) = log.as_mut() {
                let mut v = serde_json::to_value(s).expect("plain struct");
                v["tokens_per_second"] = rate.into();
                l.line(&v)?;
            }
            if let Some(n) = t.state.args.save_steps {
                if s.step.is_multiple_of(n) {
                    let dir = job.output.join(format!("checkpoint-{}", s.step));
                    t.save_checkpoint(&dir, &extra)?;
                }
            }
            Ok(())
        };
        trainer.train_epoch(&mut on_step)?;
        if let Some(e) = &eval {
            let eval_start = Instant::now();
            let out = evaluate(&model, &trainer.params, &e.examples, job.batch_size, pad)?;
            let m = json!(metrics(model.config(), &e.examples, &out));
            let (epoch, step) = (trainer.state.epoch, trainer.state.global_step);
            let entry = json!({"epoch": epoch, "step": step, "eval": m});
            if let Some(l) = log.as_mut() {
                l.line(&entry)?;
            }
            trainer.state.log_history.push(entry.clone());
            evals.push(entry);
            eval_secs += eval_start.elapsed().as_secs_f64();
            events(JobEvent::Eval {
                epoch,
                step,
                metrics: &m,
            })?;
        }
    }
    save_pretrained(&model, &trainer.params, &job.output, &extra)?;
    write_json(&job.output.join("trainer_state.json"), &trainer.state)?;
    let results = json!({
        "final": evals.last().map(|e| e["eval"].clone()),
        "epochs": evals,
        // Training alone, as Trainer's train_runtime; evaluations apart.
        "train_runtime_s": start.elapsed().as_secs_f64() - eval_secs,
        "eval_runtime_s": eval_secs,
        "train_tokens": tokens_seen,
    });
    write_json(&job.output.join("eval_results.json"), &results)?;
    if let Some(l) = log.as_mut() {
        l.flush()?;
    }
    Ok(results)
}

/// The options of `bert evaluate`, with its defaults ([`Default`]); `model` and `data` have none
/// and must be set.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalJob {
    /// A fine-tuned directory or hub id (written by [`run_train`], or any transformers sequence /
    /// token classification checkpoint).
    pub model: String,
    /// Labelled data, in the formats [`run_train`] reads.
    pub data: PathBuf,
    /// Examples per forward pass.
    pub batch_size: usize,
    /// Tokens per example at most, special tokens included.
    pub max_length: usize,
    /// Where the columns of a TSV / CSV file are.
    pub columns: Columns,
    /// `F32` scores the training forward (the numbers of [`run_train`]'s evaluation); another
    /// dtype the inference head loaded in it (what the pipelines run).
    pub dtype: Dtype,
}

impl Default for EvalJob {
    fn default() -> Self {
        EvalJob {
            model: String::new(),
            data: PathBuf::new(),
            batch_size: 32,
            max_length: 128,
            columns: Columns::default(),
            dtype: Dtype::F32,
        }
    }
}

/// What [`run_evaluate`] runs: in f32 the training forward, exactly as [`run_train`] evaluates; in
/// another dtype the inference head loaded with it (the pipelines' model). Built once per job and
/// never moved: boxing the variants would only add indirection.
#[allow(clippy::large_enum_variant)]
enum Scorer {
    Train(TaskModel, ParamSet),
    Sequence(BertForSequenceClassification),
    Tokens(BertForTokenClassification),
}

impl Scorer {
    fn load(model: &str, dir: &Path, task: Task, dtype: Dtype) -> Result<Self> {
        let opts = LoadOptions::dtype(dtype);
        Ok(match (dtype, task) {
            (Dtype::F32, _) => {
                let (m, p) = TaskModel::from_dir(dir, task, &HeadInit::default())?;
                Scorer::Train(m, p)
            }
            (_, Task::TokenClassification) => Scorer::Tokens(
                BertForTokenClassification::from_pretrained_with(model, &opts)?,
            ),
            _ => Scorer::Sequence(BertForSequenceClassification::from_pretrained_with(
                model, &opts,
            )?),
        })
    }

    fn config(&self) -> &BertConfig {
        match self {
            Scorer::Train(m, _) => m.config(),
            Scorer::Sequence(m) => m.config(),
            Scorer::Tokens(m) => m.config(),
        }
    }

    /// A batch's mean loss and logits.
    fn forward(&self, inputs: &BertInputs, labels: &Labels) -> Result<(f32, Logits)> {
        let opts = ForwardOptions::default();
        let logits = match self {
            Scorer::Train(m, p) => return m.predict_with_loss(p, inputs, labels, &opts),
            Scorer::Sequence(m) => Logits::Sequence(m.forward(inputs, &opts)?.logits),
            Scorer::Tokens(m) => Logits::Tokens(m.forward(inputs, &opts)?.logits),
        };
        Ok((logits_loss(self.config(), &logits, labels)?, logits))
    }
}

/// The task of a checkpoint's `architectures`: sequence or token classification.
fn checkpoint_task(model: &str, config: &BertConfig) -> Result<Task> {
    let arch = config
        .architectures
        .as_ref()
        .and_then(|a| a.first())
        .map(String::as_str)
        .unwrap_or_default();
    match crate::architecture::find_class(arch) {
        Some((_, Class::SequenceClassification)) => Ok(Task::SequenceClassification),
        Some((_, Class::TokenClassification)) => Ok(Task::TokenClassification),
        _ => Err(Error::Config(format!(
            "{model}: evaluation needs a sequence or token classification checkpoint \
             (BertForSequenceClassification, RobertaForTokenClassification, ...; config.json \
             architectures: `{arch}`)"
        ))),
    }
}

/// Scores a fine-tuned checkpoint on a labelled file, as `bert evaluate`: returns the metrics
/// object it prints (`loss` and accuracy / macro-F1, MSE, or entity precision / recall / F1).
pub fn run_evaluate(job: &EvalJob) -> Result<Value> {
    let dir = hub::resolve(&job.model, Need::Model)?;
    let config = BertConfig::from_file(dir.join("config.json"))?;
    let task = checkpoint_task(&job.model, &config)?;
    let records = Records::read(task, &job.data, &job.columns)?;
    let scorer = Scorer::load(&job.model, &dir, task, job.dtype)?;
    let c = scorer.config();
    let labels: Vec<String> = (0..c.num_labels())
        .map(|i| c.id2label.get(&i).cloned().unwrap_or(format!("LABEL_{i}")))
        .collect();
    let max_length = job.max_length.min(c.max_input_length());
    let tok = BertTokenizer::from_dir(&dir)?.with_max_length(max_length);
    let pt = match task {
        Task::TokenClassification => None,
        _ => Some(c.problem_type.unwrap_or(if c.num_labels() == 1 {
            ProblemType::Regression
        } else {
            ProblemType::SingleLabelClassification
        })),
    };
    let data = records.examples(&job.data, &tok, &labels, pt, c.num_labels())?;
    let out = evaluate_with(
        &data.examples,
        job.batch_size,
        tok.pad_id(),
        |inputs, labels| scorer.forward(inputs, labels),
    )?;
    Ok(json!(metrics(c, &data.examples, &out)))
}
