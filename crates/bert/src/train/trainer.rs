//! The training loop of `transformers.Trainer`, for the heads of [`TaskModel`]: seeded shuffling
//! each epoch, gradient accumulation, `max_grad_norm` clipping, AdamW at the schedule's rate,
//! dropout in `train()` mode, checkpoints that resume bit for bit, and evaluation.
//!
//! Reproducibility: every random choice is a pure function of (seed, epoch, step) — the order of
//! each epoch, each step's dropout masks — and reductions run in a fixed order, so a run and its
//! resumed twin end with the same weights on the same machine and thread count.

use bert_kernels::rng::SplitMix64;
use bert_kernels::train::gemm::Precision;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::data::{collate, Example, Target};
use super::encoder::Mode;
use super::heads::{Labels, Logits, TaskModel};
use super::loss::IGNORE_INDEX;
use super::optim::{clip_grad_norm, AdamW, AdamWConfig, Schedule, ScheduleKind};
use super::params::ParamSet;
use crate::{BertConfig, BertInputs, Error, ForwardOptions, Result};

/// Hyper-parameters, with `TrainingArguments`' names and (where the CLI does not say otherwise)
/// defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingArgs {
    pub epochs: usize,
    pub learning_rate: f32,
    /// Examples per forward/backward (`per_device_train_batch_size`).
    pub batch_size: usize,
    /// Batches whose gradients are summed (each scaled by 1 / batches) before one optimizer step.
    pub grad_accum: usize,
    /// Warmup as a fraction of all optimizer steps (`ceil(total * ratio)` steps).
    pub warmup_ratio: f64,
    /// Warmup steps; wins over `warmup_ratio` when set.
    pub warmup_steps: Option<u64>,
    pub weight_decay: f32,
    pub max_grad_norm: f32,
    pub schedule: ScheduleKind,
    pub seed: u64,
    /// Write a checkpoint every this many optimizer steps.
    pub save_steps: Option<u64>,
    /// Mixed precision (`TrainingArguments.bf16`): the encoder's Linear products, forward and
    /// backward, in bf16 with f32 sums; weights, gradients and AdamW stay f32. The model must
    /// have been set to it ([`TaskModel::set_precision`]; `bert train --bf16` does both).
    #[serde(default)]
    pub bf16: bool,
}

impl Default for TrainingArgs {
    fn default() -> Self {
        TrainingArgs {
            epochs: 3,
            learning_rate: 5e-5,
            batch_size: 8,
            grad_accum: 1,
            warmup_ratio: 0.0,
            warmup_steps: None,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
            schedule: ScheduleKind::Linear,
            seed: 42,
            save_steps: None,
            bf16: false,
        }
    }
}

/// One optimizer step, as Trainer logs it (`log_history` in `trainer_state.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepLog {
    pub step: u64,
    /// Fractional epoch at the end of the step.
    pub epoch: f64,
    pub loss: f32,
    pub learning_rate: f32,
    pub grad_norm: f32,
    /// Real (unpadded) tokens the step computed.
    pub tokens: usize,
}

/// Where a run is: what `trainer_state.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    pub global_step: u64,
    pub max_steps: u64,
    /// Completed epochs.
    pub epoch: usize,
    /// Batches of the current epoch already consumed.
    pub batches_done: usize,
    pub num_examples: usize,
    pub args: TrainingArgs,
    pub log_history: Vec<serde_json::Value>,
}

/// A run over a fixed training set.
pub struct Trainer<'m> {
    model: &'m TaskModel,
    pub params: ParamSet,
    grads: ParamSet,
    opt: AdamW,
    schedule: Schedule,
    pub state: TrainerState,
    train: Vec<Example>,
    pad_id: i64,
}

/// One splitmix64 step from state `z`: a hash of `z`.
fn mix(z: u64) -> u64 {
    SplitMix64(z).next_u64()
}

/// A seeded permutation of `0..n` (Fisher-Yates).
pub fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut state = mix(seed);
    for i in (1..n).rev() {
        state = mix(state);
        let j = (state % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

impl<'m> Trainer<'m> {
    /// A fresh run of `args` over `train` from `params`.
    pub fn new(
        model: &'m TaskModel,
        params: ParamSet,
        train: Vec<Example>,
        args: TrainingArgs,
        pad_id: i64,
    ) -> Result<Self> {
        if train.is_empty() {
            return Err(Error::Input("the training set is empty".into()));
        }
        if args.bf16 != (model.encoder().precision() == Precision::Bf16) {
            return Err(Error::Input(format!(
                "TrainingArgs.bf16 is {} but the model computes in {:?}: set both \
                 (TaskModel::set_precision)",
                args.bf16,
                model.encoder().precision()
            )));
        }
        if args.batch_size == 0 || args.grad_accum == 0 || args.epochs == 0 {
            return Err(Error::Input(
                "batch size, gradient accumulation and epochs must be at least 1".into(),
            ));
        }
        let per_epoch = Self::steps_per_epoch(train.len(), &args);
        let max_steps = per_epoch * args.epochs as u64;
        let schedule = Schedule {
            kind: args.schedule,
            base_lr: args.learning_rate,
            warmup_steps: args
                .warmup_steps
                .unwrap_or_else(|| Schedule::warmup_from_ratio(max_steps, args.warmup_ratio)),
            total_steps: max_steps,
        };
        let opt = AdamW::new(
            &params,
            AdamWConfig {
                weight_decay: args.weight_decay,
                ..Default::default()
            },
        );
        Ok(Trainer {
            model,
            grads: params.zeros_like(),
            params,
            opt,
            schedule,
            state: TrainerState {
                global_step: 0,
                max_steps,
                epoch: 0,
                batches_done: 0,
                num_examples: train.len(),
                args,
                log_history: Vec::new(),
            },
            train,
            pad_id,
        })
    }

    /// Optimizer steps per epoch: one per `grad_accum` batches, the last group possibly shorter.
    pub fn steps_per_epoch(examples: usize, args: &TrainingArgs) -> u64 {
        (examples.div_ceil(args.batch_size)).div_ceil(args.grad_accum) as u64
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// Whether every epoch is done.
    pub fn finished(&self) -> bool {
        self.state.epoch >= self.state.args.epochs
    }

    /// Runs the rest of the current epoch; `on_step` sees every optimizer step and may stop the
    /// run by returning an error (a checkpoint write, an interrupt).
    pub fn train_epoch(
        &mut self,
        on_step: &mut dyn FnMut(&Self, &StepLog) -> Result<()>,
    ) -> Result<()> {
        let args = self.state.args.clone();
        let epoch = self.state.epoch;
        let order = shuffled(self.train.len(), args.seed ^ mix(epoch as u64 + 1));
        let batches: Vec<&[usize]> = order.chunks(args.batch_size).collect();
        let per_epoch = batches.len();
        while self.state.batches_done < per_epoch {
            let start = self.state.batches_done;
            let group = &batches[start..(start + args.grad_accum).min(per_epoch)];
            self.grads.zero();
            let mut loss = 0.0f32;
            let mut tokens = 0;
            for (k, idx) in group.iter().enumerate() {
                let examples: Vec<&Example> = idx.iter().map(|&i| &self.train[i]).collect();
                tokens += examples.iter().map(|e| e.len()).sum::<usize>();
                let (inputs, labels) = collate(&examples, self.pad_id)?;
                let seed = mix(args.seed ^ mix(self.state.global_step.wrapping_mul(64) + k as u64));
                let scale = 1.0 / group.len() as f32;
                loss += scale
                    * self.model.train_step(
                        &self.params,
                        &mut self.grads,
                        &inputs,
                        &labels,
                        &ForwardOptions::default(),
                        Mode::Train { seed },
                        scale,
                    )?;
            }
            let grad_norm = clip_grad_norm(&mut self.grads, args.max_grad_norm);
            let lr = self.schedule.lr(self.state.global_step);
            self.opt.update(&mut self.params, &self.grads, lr);
            self.state.global_step += 1;
            self.state.batches_done += group.len();
            let log = StepLog {
                step: self.state.global_step,
                epoch: epoch as f64 + self.state.batches_done as f64 / per_epoch as f64,
                loss,
                learning_rate: lr,
                grad_norm,
                tokens,
            };
            self.state
                .log_history
                .push(serde_json::to_value(&log).expect("plain struct"));
            on_step(self, &log)?;
        }
        self.state.epoch += 1;
        self.state.batches_done = 0;
        Ok(())
    }

    /// Writes a resumable checkpoint to `dir` (created through a temporary name, then renamed):
    /// the model as [`save_pretrained`] does, AdamW's moments and `trainer_state.json`.
    pub fn save_checkpoint(&self, dir: &Path, extra_files: &[PathBuf]) -> Result<()> {
        let tmp = temp_sibling(dir);
        save_pretrained(self.model, &self.params, &tmp, extra_files)?;
        self.opt
            .m
            .save_safetensors(&tmp.join("optimizer.exp_avg.safetensors"), None)?;
        self.opt
            .v
            .save_safetensors(&tmp.join("optimizer.exp_avg_sq.safetensors"), None)?;
        let mut state = serde_json::to_value(&self.state).expect("plain struct");
        state["optimizer_step"] = self.opt.step.into();
        write_json(&tmp.join("trainer_state.json"), &state)?;
        replace_dir(&tmp, dir)
    }

    /// Continues the run saved in checkpoint `dir` (written by [`Trainer::save_checkpoint`]) over
    /// the same training set and arguments.
    pub fn resume(
        model: &'m TaskModel,
        dir: &Path,
        params: ParamSet,
        train: Vec<Example>,
        args: TrainingArgs,
        pad_id: i64,
    ) -> Result<Self> {
        let mut t = Self::new(model, params, train, args.clone(), pad_id)?;
        let path = dir.join("trainer_state.json");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|source| Error::Json {
                path: path.clone(),
                source,
            })?;
        let state: TrainerState =
            serde_json::from_value(value.clone()).map_err(|source| Error::Json {
                path: path.clone(),
                source,
            })?;
        // How often checkpoints are written may change; what shapes the weights may not.
        let same = TrainingArgs {
            save_steps: args.save_steps,
            ..state.args.clone()
        } == args;
        if !same || state.num_examples != t.train.len() {
            return Err(Error::Input(format!(
                "{}: the checkpoint was written by a run with other arguments or another training \
                 set ({} examples, {:?}); resume with the same ones",
                dir.display(),
                state.num_examples,
                state.args
            )));
        }
        t.params.load_values(&dir.join("model.safetensors"))?;
        t.opt
            .m
            .load_values(&dir.join("optimizer.exp_avg.safetensors"))?;
        t.opt
            .v
            .load_values(&dir.join("optimizer.exp_avg_sq.safetensors"))?;
        t.opt.step = value["optimizer_step"]
            .as_u64()
            .unwrap_or(state.global_step);
        t.state = TrainerState { args, ..state };
        Ok(t)
    }
}

/// Writes `model.safetensors` (transformers' tensor names), `config.json` and copies of
/// `extra_files` (the tokenizer's) into `dir`: what `from_pretrained(dir)` loads.
pub fn save_pretrained(
    model: &TaskModel,
    params: &ParamSet,
    dir: &Path,
    extra_files: &[PathBuf],
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut meta = std::collections::HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    // The family's own names (`distilbert.transformer.layer.0.attention.q_lin.weight`, ...), so
    // that transformers' class loads the directory with no missing keys.
    params.save_safetensors_as(&dir.join("model.safetensors"), Some(meta), |name| {
        model.checkpoint_name(name)
    })?;
    write_json(&dir.join("config.json"), &model.config().to_json_value())?;
    for f in extra_files {
        if let Some(name) = f.file_name() {
            std::fs::copy(f, dir.join(name)).map_err(|e| Error::io(f, e))?;
        }
    }
    Ok(())
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("serializable") + "\n";
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// `dir` with a temporary, process-unique name beside it.
fn temp_sibling(dir: &Path) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "checkpoint".into());
    dir.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Moves the finished `tmp` to `dir`, replacing an older `dir` only once `tmp` is complete.
fn replace_dir(tmp: &Path, dir: &Path) -> Result<()> {
    if dir.exists() {
        let old = temp_sibling(dir).with_extension("old");
        std::fs::rename(dir, &old).map_err(|e| Error::io(dir, e))?;
        std::fs::rename(tmp, dir).map_err(|e| Error::io(dir, e))?;
        std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))
    } else {
        std::fs::rename(tmp, dir).map_err(|e| Error::io(dir, e))
    }
}

/// Predictions of [`evaluate`], one per example.
#[derive(Clone, Debug, PartialEq)]
pub enum Prediction {
    /// Argmax class.
    Class(i64),
    /// Raw outputs (regression, multi-label logits).
    Scores(Vec<f32>),
    /// Argmax class per token.
    Tokens(Vec<i64>),
}

/// Mean loss and predictions over `examples` (dropout off), in order.
pub struct EvalOutput {
    pub loss: f64,
    pub predictions: Vec<Prediction>,
}

/// Runs the model over `examples` in batches, dropout off.
pub fn evaluate(
    model: &TaskModel,
    params: &ParamSet,
    examples: &[Example],
    batch_size: usize,
    pad_id: i64,
) -> Result<EvalOutput> {
    evaluate_with(examples, batch_size, pad_id, |inputs, labels| {
        model.predict_with_loss(params, inputs, labels, &ForwardOptions::default())
    })
}

/// As [`evaluate`], with another model's forward: `forward` returns a batch's mean loss and its
/// logits, padded as transformers returns them (an inference head, e.g. loaded in int8, and
/// [`logits_loss`](super::logits_loss)).
pub fn evaluate_with(
    examples: &[Example],
    batch_size: usize,
    pad_id: i64,
    mut forward: impl FnMut(&BertInputs, &Labels) -> Result<(f32, Logits)>,
) -> Result<EvalOutput> {
    let mut total = 0.0f64;
    let mut predictions = Vec::with_capacity(examples.len());
    for chunk in examples.chunks(batch_size.max(1)) {
        let refs: Vec<&Example> = chunk.iter().collect();
        let (inputs, labels) = collate(&refs, pad_id)?;
        let (loss, logits) = forward(&inputs, &labels)?;
        total += loss as f64 * chunk.len() as f64;
        match logits {
            Logits::Sequence(l) => {
                for (row, e) in l.rows().into_iter().zip(chunk) {
                    predictions.push(match e.target {
                        Target::Class(_) => Prediction::Class(argmax(row.iter().copied())),
                        _ => Prediction::Scores(row.to_vec()),
                    });
                }
            }
            Logits::Tokens(l) => {
                for (b, e) in chunk.iter().enumerate() {
                    predictions.push(Prediction::Tokens(
                        (0..e.len())
                            .map(|t| argmax(l.slice(ndarray::s![b, t, ..]).iter().copied()))
                            .collect(),
                    ));
                }
            }
            Logits::Spans { .. } => {
                return Err(Error::Input(
                    "evaluate: question answering has no metric here".into(),
                ))
            }
        }
    }
    Ok(EvalOutput {
        loss: total / examples.len().max(1) as f64,
        predictions,
    })
}

fn argmax(values: impl Iterator<Item = f32>) -> i64 {
    let mut best = (0usize, f32::NEG_INFINITY);
    for (i, v) in values.enumerate() {
        if v > best.1 {
            best = (i, v);
        }
    }
    best.0 as i64
}

/// The metrics of a finished [`evaluate`] for the model's task: accuracy and macro-F1 (single-label),
/// MSE (regression), subset accuracy and macro-F1 at 0.5 (multi-label), entity precision / recall /
/// F1 as `seqeval` (tokens, tags from `id2label`). `config` is the model's ([`TaskModel::config`]
/// or an inference head's): its labels and `problem_type`.
pub fn metrics(
    config: &BertConfig,
    examples: &[Example],
    out: &EvalOutput,
) -> BTreeMap<String, f64> {
    use super::metrics::{accuracy, entity_scores, macro_f1};
    let mut m = BTreeMap::new();
    m.insert("loss".to_string(), out.loss);
    let labels = &config.id2label;
    let classes = config.num_labels();
    let (mut pred, mut gold) = (Vec::new(), Vec::new());
    let (mut pred_tags, mut gold_tags) = (Vec::new(), Vec::new());
    let (mut sq, mut count) = (0.0f64, 0usize);
    let (mut exact, mut multi_p, mut multi_g) = (0usize, Vec::new(), Vec::new());
    for (e, p) in examples.iter().zip(&out.predictions) {
        match (&e.target, p) {
            (Target::Class(g), Prediction::Class(p)) => {
                gold.push(*g);
                pred.push(*p);
            }
            (Target::Scores(g), Prediction::Scores(p))
                if config.problem_type == Some(crate::ProblemType::MultiLabelClassification) =>
            {
                let bits: Vec<i64> = p.iter().map(|&v| i64::from(v > 0.0)).collect();
                let gb: Vec<i64> = g.iter().map(|&v| i64::from(v > 0.5)).collect();
                exact += usize::from(bits == gb);
                for (k, (b, t)) in bits.iter().zip(&gb).enumerate() {
                    multi_p.push(if *b == 1 { k as i64 } else { -1 });
                    multi_g.push(if *t == 1 { k as i64 } else { -1 });
                }
            }
            (Target::Scores(g), Prediction::Scores(p)) => {
                for (a, b) in p.iter().zip(g) {
                    sq += ((a - b) as f64).powi(2);
                    count += 1;
                }
            }
            (Target::Tokens(g), Prediction::Tokens(p)) => {
                let name = |i: i64| {
                    labels
                        .get(&(i as usize))
                        .cloned()
                        .unwrap_or_else(|| "O".into())
                };
                let (ps, gs): (Vec<String>, Vec<String>) = g
                    .iter()
                    .zip(p)
                    .filter(|(g, _)| **g != IGNORE_INDEX)
                    .map(|(g, p)| (name(*p), name(*g)))
                    .unzip();
                pred_tags.push(ps);
                gold_tags.push(gs);
            }
            _ => {}
        }
    }
    if !gold.is_empty() {
        m.insert("accuracy".into(), accuracy(&pred, &gold));
        m.insert("macro_f1".into(), macro_f1(&pred, &gold, classes));
    }
    if count > 0 {
        m.insert("mse".into(), sq / count as f64);
    }
    if !multi_g.is_empty() {
        m.insert(
            "subset_accuracy".into(),
            exact as f64 / examples.len() as f64,
        );
        m.insert("macro_f1".into(), macro_f1(&multi_p, &multi_g, classes));
    }
    if !gold_tags.is_empty() {
        let s = entity_scores(&pred_tags, &gold_tags);
        m.insert("precision".into(), s.precision);
        m.insert("recall".into(), s.recall);
        m.insert("f1".into(), s.f1);
        m.insert("accuracy".into(), {
            let flat_p: Vec<&String> = pred_tags.iter().flatten().collect();
            let flat_g: Vec<&String> = gold_tags.iter().flatten().collect();
            flat_p.iter().zip(&flat_g).filter(|(a, b)| a == b).count() as f64
                / flat_g.len().max(1) as f64
        });
    }
    m
}
