//! transformers' task heads in training: `BertForSequenceClassification`,
//! `BertForTokenClassification` and `BertForQuestionAnswering`, each a Linear on the encoder with
//! the loss its `forward(labels=...)` computes
//! (<https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/models/bert/modeling_bert.py#L1444>).
//!
//! One difference, by design: the engine never computes padding, so the question-answering loss is a
//! softmax over each sequence's real tokens, where transformers' also includes the logits of padded
//! positions (equal when the batch needs no padding).

use std::ops::Range;
use std::path::Path;

use ndarray::{Array2, Array3};

use bert_kernels::train::gemm::{
    linear_backward_input, linear_backward_params, linear_forward, Post, Precision,
};
use bert_kernels::train::Dropout;

use super::encoder::{split_pair, Encoder, Mode, PoolerSpec, Tape};
use super::loss::{bce_with_logits, cross_entropy, mse, IGNORE_INDEX};
use super::params::ParamSet;
use crate::architecture::{Architecture, Class, HeadAct};
use crate::heads::params::Rng;
use crate::model::WeightSource;
use crate::weights::Checkpoint;
use crate::{BertConfig, BertInputs, Error, ForwardOptions, ProblemType, Result};

/// Which `BertFor*` class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// A Linear on `pooler_output`: one label (or score) per sequence or pair.
    SequenceClassification,
    /// A Linear on every token's last hidden state.
    TokenClassification,
    /// Start and end logits per token.
    QuestionAnswering,
}

impl Task {
    /// transformers' BERT class name (see [`Task::class_name`] for other families).
    pub fn architecture(self) -> &'static str {
        self.class_name(&crate::architecture::ARCHITECTURES[0])
    }

    /// The class of the task.
    pub fn class(self) -> Class {
        match self {
            Task::SequenceClassification => Class::SequenceClassification,
            Task::TokenClassification => Class::TokenClassification,
            Task::QuestionAnswering => Class::QuestionAnswering,
        }
    }

    /// transformers' class name in family `arch` (`architectures` in config.json).
    pub fn class_name(self, arch: &Architecture) -> &'static str {
        arch.class_name(self.class())
            .expect("every family has the three fine-tuning classes")
    }

    /// The output Linear of the head (canonical name).
    fn head_prefix(self, arch: &Architecture) -> &'static str {
        match self {
            Task::QuestionAnswering => "qa_outputs",
            Task::TokenClassification => "classifier",
            Task::SequenceClassification => arch.classifier.out,
        }
    }
}

/// What a training batch is labelled with.
#[derive(Clone, Debug, PartialEq)]
pub enum Labels {
    /// (B) class ids (single-label classification); -100 ignores a row.
    Classes(Vec<i64>),
    /// (B, num_labels) targets: regression values, or 0/1 per class for multi-label.
    Scores(Array2<f32>),
    /// (B, T) class id per token; -100 on sub-words, special tokens and padding.
    Tokens(Array2<i64>),
    /// (B) start and end token positions of each answer.
    Spans { start: Vec<i64>, end: Vec<i64> },
}

/// How to start the head when the checkpoint has none (or a different label set).
#[derive(Clone, Debug, Default)]
pub struct HeadInit {
    /// Class names; `None` keeps the checkpoint config's.
    pub labels: Option<Vec<String>>,
    /// Overrides the config's `problem_type`.
    pub problem_type: Option<ProblemType>,
    /// Seeds a fresh head (weights ~ N(0, initializer_range²), biases 0).
    pub seed: u64,
}

/// Logits of an evaluation forward, padded as transformers returns them.
#[derive(Clone, Debug)]
pub enum Logits {
    /// (B, num_labels)
    Sequence(Array2<f32>),
    /// (B, T, num_labels), zeros at padding.
    Tokens(Array3<f32>),
    /// (B, T) start and end logits, zeros at padding.
    Spans {
        start: Array2<f32>,
        end: Array2<f32>,
    },
}

/// A `BertFor*` model in training: the encoder and its head, both in one [`ParamSet`].
#[derive(Clone, Debug)]
pub struct TaskModel {
    encoder: Encoder,
    task: Task,
    config: BertConfig,
    head_w: Range<usize>,
    head_b: Range<usize>,
    outputs: usize,
}

/// Dropout stream of the head (the encoder's are below it).
const HEAD_STREAM: u64 = 7;

impl TaskModel {
    /// Loads a directory or hub id for `task`: the checkpoint's head when it has one for the same
    /// labels, else a fresh head from `init` (the usual start of fine-tuning).
    pub fn from_pretrained(model: &str, task: Task, init: &HeadInit) -> Result<(Self, ParamSet)> {
        let dir = crate::hub::resolve(model, crate::hub::Need::Model)?;
        Self::from_dir(&dir, task, init)
    }

    /// As [`TaskModel::from_pretrained`], from a local directory.
    pub fn from_dir(dir: &Path, task: Task, init: &HeadInit) -> Result<(Self, ParamSet)> {
        let (mut config, checkpoint) = crate::model::open_dir(dir)?;
        let same_labels = init.labels.as_ref().is_none_or(|l| {
            l.len() == config.num_labels()
                && l.iter()
                    .enumerate()
                    .all(|(i, l)| config.id2label.get(&i) == Some(l))
        });
        if let Some(labels) = &init.labels {
            if labels.is_empty() {
                return Err(Error::Input(
                    "a classification head needs at least one label".into(),
                ));
            }
            config.set_labels(labels);
        }
        if let Some(pt) = init.problem_type {
            config.problem_type = Some(pt);
        }
        if task == Task::QuestionAnswering {
            config.set_labels(&["LABEL_0", "LABEL_1"]);
        }
        let arch = Architecture::of(&config);
        config.architectures = Some(vec![task.class_name(arch).to_string()]);
        let mut params = ParamSet::new();
        let base = format!("{}.", arch.base);
        // What pools a sequence: BERT's pooler, or the family head's own dense layer.
        let pooler = (task == Task::SequenceClassification).then(|| {
            let head = arch.classifier;
            let (source, act) = head.dense.unwrap_or(("pooler.dense", HeadAct::Tanh));
            PoolerSpec {
                name: match head.dense {
                    Some(_) => source.to_string(),
                    None => format!("{base}{source}"),
                },
                source: source.to_string(),
                act,
                dropout_before: head.dropout_before_dense,
            }
        });
        let source = FreshPooler {
            checkpoint: &checkpoint,
            config: &config,
            seed: init.seed,
            fresh: pooler.as_ref().map(|p| format!("{}.", p.source)),
        };
        let encoder = Encoder::load(&config, &source, &mut params, &base, pooler)?;
        let outputs = match task {
            Task::QuestionAnswering => 2,
            _ => config.num_labels(),
        };
        let h = config.hidden_size;
        let prefix = task.head_prefix(arch);
        let (wn, bn) = (format!("{prefix}.weight"), format!("{prefix}.bias"));
        let reuse = same_labels
            && checkpoint.shape(&wn) == Some(&[outputs, h][..])
            && checkpoint.shape(&bn) == Some(&[outputs][..]);
        let (w, b) = if reuse {
            (
                checkpoint.get(&wn, &[outputs, h])?,
                checkpoint.get(&bn, &[outputs])?,
            )
        } else {
            let mut rng = Rng::new(init.seed);
            let std = config.initializer_range as f32;
            (
                (0..outputs * h).map(|_| std * rng.normal()).collect(),
                vec![0.0; outputs],
            )
        };
        let head_w = params.push(&wn, &[outputs, h], w)?;
        let head_b = params.push(&bn, &[outputs], b)?;
        Ok((
            TaskModel {
                encoder,
                task,
                config,
                head_w,
                head_b,
                outputs,
            },
            params,
        ))
    }

    pub fn task(&self) -> Task {
        self.task
    }

    /// The configuration with this head's labels (what `config.json` of a saved model holds).
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// The arithmetic of the encoder's Linear products ([`Encoder::set_precision`]); the head's
    /// own small products stay f32.
    pub fn set_precision(&mut self, prec: Precision) {
        self.encoder.set_precision(prec);
    }

    /// The name transformers' class keeps parameter `name` of this model's [`ParamSet`] under
    /// (the set holds canonical names under the family's base prefix:
    /// `distilbert.encoder.layer.0.attention.self.query.weight` is saved as
    /// `distilbert.transformer.layer.0.attention.q_lin.weight`).
    pub fn checkpoint_name(&self, name: &str) -> String {
        let arch = Architecture::of(&self.config);
        match name
            .strip_prefix(arch.base)
            .and_then(|r| r.strip_prefix('.'))
        {
            Some(key) => arch.checkpoint_name(key, true),
            None => arch.checkpoint_name(name, false),
        }
    }

    /// The loss transformers would use for these labels.
    fn problem_type(&self, labels: &Labels) -> ProblemType {
        problem_type(&self.config, self.outputs, labels)
    }

    fn head_dropout(&self, mode: Mode) -> Option<Dropout> {
        let p = self
            .config
            .classifier_dropout
            .unwrap_or(self.config.hidden_dropout_prob);
        match (mode, self.task) {
            (_, Task::QuestionAnswering) => None,
            (Mode::Train { seed }, _) if p > 0.0 => Some(Dropout { p: p as f32, seed }),
            _ => None,
        }
    }

    /// Forward, loss and backward of one batch: adds `loss_scale` x d(loss) to `g` (use
    /// 1 / gradient-accumulation steps) and returns the (unscaled) mean loss.
    #[allow(clippy::too_many_arguments)]
    pub fn train_step(
        &self,
        p: &ParamSet,
        g: &mut ParamSet,
        inputs: &BertInputs,
        labels: &Labels,
        opts: &ForwardOptions,
        mode: Mode,
        loss_scale: f32,
    ) -> Result<f32> {
        let tape = self.encoder.forward_tape(p, inputs, opts, mode)?;
        let (x, rows) = self.head_input(&tape)?;
        let h = self.config.hidden_size;
        let mut xd = x.to_vec();
        let drop = self.head_dropout(mode);
        if let Some(d) = drop {
            d.apply(&mut xd, HEAD_STREAM);
        }
        let c = self.outputs;
        let w = p.data();
        let logits = self.linear(p, &xd, rows);
        let (loss, mut dlogits) = self.loss(&tape, &logits, labels)?;
        dlogits.iter_mut().for_each(|v| *v *= loss_scale);
        {
            let (gw, gb) = split_pair(g.data_mut(), &self.head_w, &self.head_b);
            linear_backward_params(gw, Some(gb), &dlogits, &xd, (rows, h, c), Precision::F32);
        }
        let mut dx = vec![0.0f32; rows * h];
        linear_backward_input(
            &mut dx,
            &dlogits,
            &w[self.head_w.clone()],
            (rows, h, c),
            false,
            Precision::F32,
        );
        if let Some(d) = drop {
            d.apply(&mut dx, HEAD_STREAM);
        }
        let n = tape.packing.len();
        match self.task {
            Task::SequenceClassification => self.encoder.backward_packed(
                p,
                &tape,
                g,
                self.encoder.pool().take_zeroed(n * h),
                Some(&dx),
            ),
            _ => self.encoder.backward_packed(p, &tape, g, dx, None),
        }
        Ok(loss)
    }

    /// The head's input rows: pooled outputs (one per sequence) or every token's hidden state.
    fn head_input<'t>(&self, tape: &'t Tape) -> Result<(&'t [f32], usize)> {
        let h = self.config.hidden_size;
        match self.task {
            Task::SequenceClassification => {
                let (rows, _, pooled) = tape.pooled.as_ref().expect("loaded with a pooler");
                if rows.len() != tape.packing.batch {
                    let empty = (0..tape.packing.batch)
                        .find(|s| !rows.contains(s))
                        .unwrap_or(0);
                    return Err(Error::Input(format!(
                        "sequence {empty} has no tokens (attention_mask all 0)"
                    )));
                }
                Ok((pooled, rows.len()))
            }
            _ => Ok((&tape.hidden, tape.hidden.len() / h.max(1))),
        }
    }

    /// The mean loss and its gradient with respect to the head's logits (rows as `head_input`).
    fn loss(&self, tape: &Tape, logits: &[f32], labels: &Labels) -> Result<(f32, Vec<f32>)> {
        let b = tape.packing.batch;
        let c = self.outputs;
        let check_rows = |n: usize, what: &str| {
            if n == b {
                Ok(())
            } else {
                Err(Error::Input(format!(
                    "{what}: {n} labels for a batch of {b}"
                )))
            }
        };
        match (self.task, labels) {
            (Task::SequenceClassification, labels) => {
                sequence_loss(self.problem_type(labels), logits, labels, b, c)
            }
            (Task::TokenClassification, Labels::Tokens(l)) => {
                if l.dim() != tape.packing_dim() {
                    return Err(Error::Input(format!(
                        "token labels have shape {:?}, input_ids {:?}",
                        l.dim(),
                        tape.packing_dim()
                    )));
                }
                let mask = tape.mask();
                if let Some(((s, t), _)) = l
                    .indexed_iter()
                    .find(|((s, t), &v)| v != IGNORE_INDEX && !mask[*s][*t])
                {
                    return Err(Error::Input(format!(
                        "token label at padding position ({s}, {t}) must be {IGNORE_INDEX}"
                    )));
                }
                let packed: Vec<i64> = tape.packing.positions().map(|(s, t)| l[[s, t]]).collect();
                cross_entropy(logits, &packed, c)
            }
            (Task::QuestionAnswering, Labels::Spans { start, end }) => {
                check_rows(start.len(), "start positions")?;
                check_rows(end.len(), "end positions")?;
                self.span_loss(tape, logits, start, end)
            }
            (task, l) => Err(Error::Input(format!(
                "{} cannot take labels {}",
                task.class_name(Architecture::of(&self.config)),
                describe(l)
            ))),
        }
    }

    /// transformers' QA loss: positions clamped to [0, T], T ignored, cross-entropy of start and
    /// end over each sequence's tokens, averaged.
    fn span_loss(
        &self,
        tape: &Tape,
        logits: &[f32],
        start: &[i64],
        end: &[i64],
    ) -> Result<(f32, Vec<f32>)> {
        let pk = &tape.packing;
        let t_max = pk.seq_len as i64;
        let mut grad = vec![0.0f32; logits.len()];
        let mut total = 0.0f32;
        for (which, pos) in [start, end].into_iter().enumerate() {
            let mut losses = Vec::new();
            let mut grads = Vec::new();
            for (s, &p) in pos.iter().enumerate() {
                let p = p.clamp(0, t_max);
                if p == t_max {
                    continue;
                }
                let (r0, r1) = (pk.cu_seqlens[s], pk.cu_seqlens[s + 1]);
                let Some(k) = pk.cols[r0..r1].iter().position(|&c| c as i64 == p) else {
                    return Err(Error::Input(format!(
                        "answer position {p} of sequence {s} is a padding position"
                    )));
                };
                let row: Vec<f32> = (r0..r1).map(|r| logits[r * 2 + which]).collect();
                let (l, g) = cross_entropy(&row, &[k as i64], r1 - r0)?;
                losses.push(l);
                grads.push((r0, g));
            }
            let count = losses.len().max(1) as f32;
            total += losses.iter().sum::<f32>() / count / 2.0;
            for (r0, g) in grads {
                for (i, v) in g.iter().enumerate() {
                    grad[(r0 + i) * 2 + which] += v / count / 2.0;
                }
            }
        }
        Ok((total, grad))
    }

    /// Evaluation forward (dropout off): the head's logits.
    pub fn predict(
        &self,
        p: &ParamSet,
        inputs: &BertInputs,
        opts: &ForwardOptions,
    ) -> Result<Logits> {
        let tape = self.encoder.forward_tape(p, inputs, opts, Mode::Eval)?;
        let logits = self.head_logits(p, &tape)?;
        Ok(self.shape_logits(&tape, logits))
    }

    /// Evaluation forward (dropout off) with the loss of `labels`; no backward.
    pub fn predict_with_loss(
        &self,
        p: &ParamSet,
        inputs: &BertInputs,
        labels: &Labels,
        opts: &ForwardOptions,
    ) -> Result<(f32, Logits)> {
        let tape = self.encoder.forward_tape(p, inputs, opts, Mode::Eval)?;
        let logits = self.head_logits(p, &tape)?;
        let (loss, _) = self.loss(&tape, &logits, labels)?;
        Ok((loss, self.shape_logits(&tape, logits)))
    }

    /// The head's packed logits (rows as `head_input`, dropout off).
    fn head_logits(&self, p: &ParamSet, tape: &Tape) -> Result<Vec<f32>> {
        let (x, rows) = self.head_input(tape)?;
        Ok(self.linear(p, x, rows))
    }

    /// The head's Linear on `rows` input rows of `x`.
    fn linear(&self, p: &ParamSet, x: &[f32], rows: usize) -> Vec<f32> {
        let (h, c) = (self.config.hidden_size, self.outputs);
        let mut logits = vec![0.0f32; rows * c];
        let w = p.data();
        linear_forward(
            &mut logits,
            x,
            &w[self.head_w.clone()],
            &w[self.head_b.clone()],
            (rows, h, c),
            Post::None,
            Precision::F32,
        );
        logits
    }

    /// Packed logits re-padded as transformers returns them.
    fn shape_logits(&self, tape: &Tape, logits: Vec<f32>) -> Logits {
        let c = self.outputs;
        match self.task {
            Task::SequenceClassification => Logits::Sequence(
                Array2::from_shape_vec((logits.len() / c, c), logits).expect("rows x outputs"),
            ),
            Task::TokenClassification => Logits::Tokens(tape.packing.unpack_rows(&logits, c)),
            Task::QuestionAnswering => {
                let both = tape.packing.unpack_rows(&logits, 2);
                Logits::Spans {
                    start: both.index_axis(ndarray::Axis(2), 0).to_owned(),
                    end: both.index_axis(ndarray::Axis(2), 1).to_owned(),
                }
            }
        }
    }
}

/// The loss transformers would use for these labels: `config.problem_type`, else guessed as
/// `BertForSequenceClassification.forward` does.
fn problem_type(config: &BertConfig, outputs: usize, labels: &Labels) -> ProblemType {
    config.problem_type.unwrap_or(match labels {
        _ if outputs == 1 => ProblemType::Regression,
        Labels::Scores(_) => ProblemType::MultiLabelClassification,
        _ => ProblemType::SingleLabelClassification,
    })
}

/// The sequence head's mean loss and its gradient: `logits` (B, C), one row per sequence.
fn sequence_loss(
    pt: ProblemType,
    logits: &[f32],
    labels: &Labels,
    b: usize,
    c: usize,
) -> Result<(f32, Vec<f32>)> {
    let check_rows = |n: usize| {
        if n == b {
            Ok(())
        } else {
            Err(Error::Input(format!(
                "labels: {n} labels for a batch of {b}"
            )))
        }
    };
    match (pt, labels) {
        (ProblemType::SingleLabelClassification, Labels::Classes(l)) => {
            check_rows(l.len())?;
            cross_entropy(logits, l, c)
        }
        (ProblemType::Regression | ProblemType::MultiLabelClassification, Labels::Scores(t))
            if t.dim() == (b, c) =>
        {
            let t: Vec<f32> = t.iter().copied().collect();
            Ok(if pt == ProblemType::Regression {
                mse(logits, &t)
            } else {
                bce_with_logits(logits, &t)
            })
        }
        (ProblemType::Regression, Labels::Classes(l)) if c == 1 => {
            check_rows(l.len())?;
            let t: Vec<f32> = l.iter().map(|&v| v as f32).collect();
            Ok(mse(logits, &t))
        }
        (pt, l) => Err(Error::Input(format!(
            "{pt:?} with {c} outputs cannot take labels {}",
            describe(l)
        ))),
    }
}

/// The mean loss of `labels` on logits padded as transformers returns them, as
/// [`TaskModel::predict_with_loss`] computes it: for evaluating a model run outside training (an
/// inference head, e.g. loaded in int8). Padded positions must be labelled -100.
pub fn logits_loss(config: &BertConfig, logits: &Logits, labels: &Labels) -> Result<f32> {
    match (logits, labels) {
        (Logits::Sequence(l), labels) => {
            let (b, c) = l.dim();
            let x: Vec<f32> = l.iter().copied().collect();
            Ok(sequence_loss(problem_type(config, c, labels), &x, labels, b, c)?.0)
        }
        (Logits::Tokens(l), Labels::Tokens(t)) => {
            let (b, t_len, c) = l.dim();
            if t.dim() != (b, t_len) {
                return Err(Error::Input(format!(
                    "token labels have shape {:?}, logits ({b}, {t_len}, {c})",
                    t.dim()
                )));
            }
            // Row-major over (B, T) with padding ignored: the packed order of the training head.
            let x: Vec<f32> = l.iter().copied().collect();
            let t: Vec<i64> = t.iter().copied().collect();
            Ok(cross_entropy(&x, &t, c)?.0)
        }
        (_, l) => Err(Error::Input(format!(
            "these logits cannot take labels {}",
            describe(l)
        ))),
    }
}

fn describe(l: &Labels) -> &'static str {
    match l {
        Labels::Classes(_) => "class ids per sequence",
        Labels::Scores(_) => "scores per sequence",
        Labels::Tokens(_) => "class ids per token",
        Labels::Spans { .. } => "answer spans",
    }
}

impl Tape {
    fn packing_dim(&self) -> (usize, usize) {
        (self.packing.batch, self.packing.seq_len)
    }

    /// (B, T) whether each position is a real token.
    fn mask(&self) -> Vec<Vec<bool>> {
        let mut m = vec![vec![false; self.packing.seq_len]; self.packing.batch];
        for (s, t) in self.packing.positions() {
            m[s][t] = true;
        }
        m
    }
}

/// The checkpoint's tensors, with a seeded fresh pooler (BERT's, or the family head's dense layer)
/// when the checkpoint has none (transformers initializes a missing one the same way:
/// N(0, initializer_range²), bias 0).
struct FreshPooler<'a> {
    checkpoint: &'a Checkpoint,
    config: &'a BertConfig,
    seed: u64,
    /// The pooler's name prefix (`pooler.dense.`, `classifier.dense.`), when there is one.
    fresh: Option<String>,
}

impl FreshPooler<'_> {
    fn is_pooler(&self, name: &str) -> bool {
        self.fresh.as_ref().is_some_and(|p| name.starts_with(p))
    }
}

impl WeightSource for FreshPooler<'_> {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        if self.is_pooler(name) && !self.checkpoint.contains(name) {
            let n: usize = shape.iter().product();
            if name.ends_with(".bias") {
                return Ok(vec![0.0; n]);
            }
            let mut rng = Rng::new(self.seed ^ 0x9001);
            let std = self.config.initializer_range as f32;
            return Ok((0..n).map(|_| std * rng.normal()).collect());
        }
        self.checkpoint.get(name, shape)
    }
    fn contains(&self, name: &str) -> bool {
        self.is_pooler(name) || self.checkpoint.contains(name)
    }
}
