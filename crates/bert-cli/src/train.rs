//! `bert train`: fine-tunes a checkpoint for sequence or token classification as
//! `transformers.Trainer` does, and writes a transformers checkpoint (model.safetensors with
//! transformers' names, config.json with the labels, the tokenizer files, trainer_state.json,
//! eval_results.json). `bert evaluate` scores a fine-tuned directory on a labelled file, in f32 or
//! int8.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bert::train::optim::ScheduleKind;
use bert::train::{
    evaluate, evaluate_with, logits_loss, save_pretrained, task_metrics, Example, HeadInit, Labels,
    Logits, ParamSet, StepLog, Task, TaskModel, Trainer, TrainingArgs,
};
use bert::{
    BertConfig, BertForSequenceClassification, BertForTokenClassification, BertInputs,
    BertTokenizer, Dtype, ForwardOptions, LoadOptions, ProblemType,
};
use clap::ValueEnum;
use serde_json::json;

use crate::dataset::{self, Columns};
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
    // inference head `bert classify` / `bert ner` load with `--dtype int8` (see `Scorer`).
    #[command(flatten)]
    pub dtype: crate::DtypeArgs,
}

/// The tokenizer's files, copied next to the trained weights.
const TOKENIZER_FILES: [&str; 4] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
];

fn problem(p: ProblemArg) -> ProblemType {
    match p {
        ProblemArg::Regression => ProblemType::Regression,
        ProblemArg::SingleLabelClassification => ProblemType::SingleLabelClassification,
        ProblemArg::MultiLabelClassification => ProblemType::MultiLabelClassification,
    }
}

/// The examples of one file, labelled with `labels`.
struct Data {
    examples: Vec<Example>,
    truncated: usize,
}

fn load_data(
    task: Task,
    path: &Path,
    cols: &Columns,
    tok: &BertTokenizer,
    labels: &[String],
    pt: Option<ProblemType>,
    num_labels: usize,
) -> CliResult<Data> {
    let (examples, truncated) = match task {
        Task::TokenClassification => {
            dataset::token_examples(path, &dataset::read_tokens(path)?, tok, labels)?
        }
        _ => {
            let records = dataset::read_texts(path, cols)?;
            let pt = pt.unwrap_or(ProblemType::SingleLabelClassification);
            dataset::text_examples(path, &records, tok, labels, pt, num_labels)?
        }
    };
    Ok(Data {
        examples,
        truncated,
    })
}

pub fn run(args: TrainArgs) -> CliResult {
    let task = match args.task {
        TaskArg::SequenceClassification => Task::SequenceClassification,
        TaskArg::TokenClassification => Task::TokenClassification,
    };
    let cols = args.columns.columns();
    // Every line of both files is read and checked before anything is loaded or trained.
    let (labels, pt) = match task {
        Task::TokenClassification => {
            let records = dataset::read_tokens(&args.train)?;
            (dataset::label_set_tokens(&records), None)
        }
        _ => {
            let records = dataset::read_texts(&args.train, &cols)?;
            let pt = match args.problem_type {
                Some(p) => problem(p),
                None => dataset::guess_problem_type(&args.train, &records)?,
            };
            let labels = if pt == ProblemType::Regression {
                vec!["LABEL_0".to_string()]
            } else {
                dataset::label_set_texts(&records, pt)
            };
            (labels, Some(pt))
        }
    };
    if labels.is_empty() {
        return Err(format!("{}: no labels", args.train.display()).into());
    }
    let model_dir = bert::hub::resolve(&args.model, bert::hub::Need::Model)?;
    let init = HeadInit {
        labels: Some(labels.clone()),
        problem_type: pt,
        seed: args.seed,
    };
    let (model, params) = TaskModel::from_dir(&model_dir, task, &init)?;
    let max_len = args.max_length.min(model.config().max_position_embeddings);
    let tok = BertTokenizer::from_dir(&model_dir)?.with_max_length(max_len);
    let num_labels = model.config().num_labels();
    let train = load_data(task, &args.train, &cols, &tok, &labels, pt, num_labels)?;
    let eval = match &args.eval {
        Some(p) => Some(load_data(task, p, &cols, &tok, &labels, pt, num_labels)?),
        None => None,
    };
    if !args.quiet {
        eprintln!(
            "{} training examples ({} truncated to {max_len} tokens){}; labels {:?}",
            train.examples.len(),
            train.truncated,
            eval.as_ref()
                .map(|e| format!(", {} evaluation examples", e.examples.len()))
                .unwrap_or_default(),
            labels
        );
    }
    let targs = TrainingArgs {
        epochs: args.epochs,
        learning_rate: args.learning_rate,
        batch_size: args.batch_size,
        grad_accum: args.grad_accum,
        warmup_ratio: args.warmup_ratio,
        warmup_steps: args.warmup_steps,
        weight_decay: args.weight_decay,
        max_grad_norm: args.max_grad_norm,
        schedule: match args.lr_scheduler {
            SchedulerArg::Linear => ScheduleKind::Linear,
            SchedulerArg::Cosine => ScheduleKind::Cosine,
            SchedulerArg::Constant => ScheduleKind::Constant,
        },
        seed: args.seed,
        save_steps: args.save_steps.filter(|&n| n > 0),
    };
    let pad = tok.pad_id();
    let mut trainer = match &args.resume {
        Some(dir) => Trainer::resume(&model, dir, params, train.examples, targs, pad)?,
        None => Trainer::new(&model, params, train.examples, targs, pad)?,
    };
    std::fs::create_dir_all(&args.output).map_err(|e| format!("{}: {e}", args.output.display()))?;
    let extra: Vec<PathBuf> = TOKENIZER_FILES
        .iter()
        .map(|f| model_dir.join(f))
        .filter(|p| p.is_file())
        .collect();
    let mut log = match &args.log {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?,
        )),
        None => None,
    };
    let pb = crate::progress::bar(trainer.state.max_steps, "steps", args.quiet);
    pb.set_position(trainer.state.global_step);
    let mut evals = Vec::new();
    let start = Instant::now();
    let mut eval_secs = 0.0f64;
    let mut tokens_seen = 0usize;
    while !trainer.finished() {
        let output = args.output.clone();
        let extra_ref = &extra;
        let mut on_step = |t: &Trainer<'_>, s: &StepLog| -> bert::Result<()> {
            tokens_seen += s.tokens;
            let rate = tokens_seen as f64 / start.elapsed().as_secs_f64().max(1e-9);
            pb.set_position(s.step);
            pb.set_message(format!(
                "loss {:.4} lr {:.2e} {:.0} tok/s",
                s.loss, s.learning_rate, rate
            ));
            pb.set_prefix(format!("epoch {:.2}", s.epoch));
            if let Some(l) = log.as_mut() {
                let mut v = serde_json::to_value(s).expect("plain struct");
                v["tokens_per_second"] = rate.into();
                writeln!(l, "{v}").map_err(|e| bert::Error::Input(format!("--log: {e}")))?;
            }
            if let Some(n) = t.state.args.save_steps {
                if s.step.is_multiple_of(n) {
                    t.save_checkpoint(&output.join(format!("checkpoint-{}", s.step)), extra_ref)?;
                }
            }
            Ok(())
        };
        trainer.train_epoch(&mut on_step)?;
        if let Some(e) = &eval {
            let eval_start = Instant::now();
            let out = evaluate(&model, &trainer.params, &e.examples, args.batch_size, pad)?;
            let m = task_metrics(model.config(), &e.examples, &out);
            let entry =
                json!({"epoch": trainer.state.epoch, "step": trainer.state.global_step, "eval": m});
            if !args.quiet {
                pb.suspend(|| eprintln!("eval after epoch {}: {}", trainer.state.epoch, json!(m)));
            }
            if let Some(l) = log.as_mut() {
                writeln!(l, "{entry}")?;
            }
            trainer.state.log_history.push(entry.clone());
            evals.push(entry);
            eval_secs += eval_start.elapsed().as_secs_f64();
        }
    }
    pb.finish_and_clear();
    save_pretrained(&model, &trainer.params, &args.output, &extra)?;
    let state = serde_json::to_string_pretty(&trainer.state)? + "\n";
    std::fs::write(args.output.join("trainer_state.json"), state)?;
    let results = json!({
        "final": evals.last().map(|e| e["eval"].clone()),
        "epochs": evals,
        // Training alone, as Trainer's train_runtime; evaluations apart.
        "train_runtime_s": start.elapsed().as_secs_f64() - eval_secs,
        "eval_runtime_s": eval_secs,
        "train_tokens": tokens_seen,
    });
    std::fs::write(
        args.output.join("eval_results.json"),
        serde_json::to_string_pretty(&results)? + "\n",
    )?;
    if let Some(l) = log.as_mut() {
        l.flush()?;
    }
    if !args.quiet {
        eprintln!(
            "trained {} steps in {:.1} s ({:.0} tokens/s; evaluation {:.1} s more); model written to {}",
            trainer.state.global_step,
            start.elapsed().as_secs_f64() - eval_secs,
            tokens_seen as f64 / (start.elapsed().as_secs_f64() - eval_secs).max(1e-9),
            eval_secs,
            args.output.display()
        );
    }
    if let Some(last) = evals.last() {
        println!("{}", last["eval"]);
    }
    Ok(())
}

/// What `bert evaluate` runs: in f32 the training forward, exactly as `bert train` evaluates; in
/// another dtype the inference head loaded with it (`bert classify` / `bert ner`'s model).
enum Scorer {
    Train(TaskModel, ParamSet),
    Sequence(BertForSequenceClassification),
    Tokens(BertForTokenClassification),
}

impl Scorer {
    fn load(model: &str, dir: &Path, task: Task, dtype: Dtype) -> CliResult<Self> {
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
    fn forward(&self, inputs: &BertInputs, labels: &Labels) -> bert::Result<(f32, Logits)> {
        let opts = ForwardOptions::default();
        let logits = match self {
            Scorer::Train(m, p) => return m.predict_with_loss(p, inputs, labels, &opts),
            Scorer::Sequence(m) => Logits::Sequence(m.forward(inputs, &opts)?.logits),
            Scorer::Tokens(m) => Logits::Tokens(m.forward(inputs, &opts)?.logits),
        };
        Ok((logits_loss(self.config(), &logits, labels)?, logits))
    }
}

pub fn run_evaluate(args: EvaluateArgs) -> CliResult {
    let dir = bert::hub::resolve(&args.model, bert::hub::Need::Model)?;
    let config = BertConfig::from_file(dir.join("config.json"))?;
    let arch = config
        .architectures
        .as_ref()
        .and_then(|a| a.first())
        .cloned()
        .unwrap_or_default();
    let task = match arch.as_str() {
        "BertForSequenceClassification" => Task::SequenceClassification,
        "BertForTokenClassification" => Task::TokenClassification,
        other => {
            return Err(format!(
                "{}: `bert evaluate` needs a BertForSequenceClassification or \
                 BertForTokenClassification checkpoint (config.json architectures: `{other}`)",
                args.model
            )
            .into())
        }
    };
    let scorer = Scorer::load(&args.model, &dir, task, args.dtype.dtype)?;
    let c = scorer.config();
    let labels: Vec<String> = (0..c.num_labels())
        .map(|i| c.id2label[&i].clone())
        .collect();
    let max_len = args.max_length.min(c.max_position_embeddings);
    let tok = BertTokenizer::from_dir(&dir)?.with_max_length(max_len);
    let pt = match task {
        Task::TokenClassification => None,
        _ => Some(c.problem_type.unwrap_or(if c.num_labels() == 1 {
            ProblemType::Regression
        } else {
            ProblemType::SingleLabelClassification
        })),
    };
    let data = load_data(
        task,
        &args.data,
        &args.columns.columns(),
        &tok,
        &labels,
        pt,
        c.num_labels(),
    )?;
    let out = evaluate_with(
        &data.examples,
        args.batch_size,
        tok.pad_id(),
        |inputs, labels| scorer.forward(inputs, labels),
    )?;
    let m = task_metrics(c, &data.examples, &out);
    println!("{}", json!(m));
    Ok(())
}
