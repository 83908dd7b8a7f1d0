//! `bert bench --workload T1,T2`: training throughput (forward + backward + AdamW step) of
//! `BertForSequenceClassification` (2 labels, dropout on), as scripts/peers/common.py defines it:
//!
//! * T1: SST-2 (`sentence\tlabel` TSV with a header, passed as `--corpus`) in file order, batches
//!   of 32, truncation 128, each batch padded to its own longest; `--warmup` batches untimed, then
//!   `--iters` timed steps on the batches that follow.
//! * T2: the 16 W2F lines (16 x 128 real tokens), labels `row % 2`; the same batch every step.
//!
//! Each timed step is split into forward, backward and optimizer from outside the library: the
//! step (`TaskModel::train_step`, forward + loss + backward) and the optimizer (`AdamW::update`
//! plus zeroing the gradients) are timed directly; the forward is timed once more per step on its
//! own (`Encoder::forward`, same inputs and dropout seed, outside the step's time) and the backward
//! is the step minus that forward.

use std::time::Instant;

use bert::train::optim::{AdamW, AdamWConfig};
use bert::train::{HeadInit, Labels, Mode, Precision, Task, TaskModel};
use bert::{BertInputs, BertTokenizer, ForwardOptions};

use crate::CliResult;

pub const WORKLOADS: [&str; 2] = ["T1", "T2"];
const T1_BATCH: usize = 32;
const T1_MAXLEN: usize = 128;
/// Learning rate and weight decay of both peers (constant; the schedule costs nothing).
const LR: f32 = 2e-5;
const WEIGHT_DECAY: f32 = 0.01;

/// What one training workload measured.
pub struct Trained {
    /// Per timed step.
    pub times_ms: Vec<f64>,
    pub n_seqs: usize,
    /// Over all timed steps.
    pub real_tokens: usize,
    pub padded_tokens: usize,
    /// Summed over the timed steps: forward, backward, optimizer.
    pub phases_ms: [f64; 3],
    pub peak_rss_mb: Option<f64>,
}

/// Runs T1 or T2 on `model` (directory or hub id) with the encoder's products in `prec`.
/// `corpus` holds the lines of the workload's text file (T1: the SST-2 TSV, header included; T2:
/// the benchmark corpus), `w2f` picks T2's lines.
pub fn run(
    model: &str,
    w: &str,
    corpus: &[String],
    w2f: impl Fn(&BertTokenizer, &[String]) -> CliResult<Vec<String>>,
    (warmup, iters): (Option<usize>, Option<usize>),
    prec: Precision,
) -> CliResult<Trained> {
    let init = HeadInit {
        labels: Some(vec!["LABEL_0".into(), "LABEL_1".into()]),
        problem_type: None,
        seed: 0,
    };
    let tok = BertTokenizer::from_pretrained(model)?.with_max_length(T1_MAXLEN);
    let (mut model, mut params) =
        TaskModel::from_pretrained(model, Task::SequenceClassification, &init)?;
    model.set_precision(prec);
    let mut grads = params.zeros_like();
    let mut opt = AdamW::new(
        &params,
        AdamWConfig {
            weight_decay: WEIGHT_DECAY,
            ..AdamWConfig::default()
        },
    );
    let (warmup, iters) = match w {
        "T1" => (warmup.unwrap_or(2), iters.unwrap_or(30)),
        _ => (warmup.unwrap_or(1), iters.unwrap_or(5)),
    };
    let batches: Vec<(BertInputs, Vec<i64>)> = match w {
        "T1" => sst2_batches(&tok, corpus, warmup + iters)?,
        _ => {
            let lines = w2f(&tok, corpus)?;
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            let inputs = tok.pad(&tok.tokenize_batch(&lines)?)?;
            let labels = (0..lines.len() as i64).map(|r| r % 2).collect();
            vec![(inputs, labels)]
        }
    };
    let opts = ForwardOptions::default();
    let mut m = Trained {
        times_ms: Vec::with_capacity(iters),
        n_seqs: 0,
        real_tokens: 0,
        padded_tokens: 0,
        phases_ms: [0.0; 3],
        peak_rss_mb: None,
    };
    for step in 0..warmup + iters {
        let (inputs, labels) = &batches[step % batches.len()];
        let labels = Labels::Classes(labels.clone());
        let mode = Mode::Train { seed: step as u64 };
        let t0 = Instant::now();
        model.train_step(&params, &mut grads, inputs, &labels, &opts, mode, 1.0)?;
        let t1 = Instant::now();
        opt.update(&mut params, &grads, LR);
        grads.zero();
        let t2 = Instant::now();
        if step < warmup {
            continue;
        }
        let fwd = Instant::now();
        model.encoder().forward(&params, inputs, &opts, mode)?;
        let fwd_ms = ms(fwd, Instant::now());
        let (step_ms, opt_ms) = (ms(t0, t1), ms(t1, t2));
        m.times_ms.push(step_ms + opt_ms);
        m.phases_ms[0] += fwd_ms.min(step_ms);
        m.phases_ms[1] += (step_ms - fwd_ms).max(0.0);
        m.phases_ms[2] += opt_ms;
        m.n_seqs += inputs.batch_size();
        m.real_tokens += inputs.real_tokens();
        m.padded_tokens += inputs.batch_size() * inputs.seq_len();
    }
    m.peak_rss_mb = peak_rss_mb();
    Ok(m)
}

fn ms(a: Instant, b: Instant) -> f64 {
    (b - a).as_secs_f64() * 1e3
}

/// The first `steps` batches of 32 of an SST-2 TSV (`sentence\tlabel`, header first), in file order.
fn sst2_batches(
    tok: &BertTokenizer,
    lines: &[String],
    steps: usize,
) -> CliResult<Vec<(BertInputs, Vec<i64>)>> {
    let rows: Vec<(&str, i64)> = lines
        .iter()
        .skip(1)
        .take(steps * T1_BATCH)
        .enumerate()
        .map(|(k, l)| {
            let (s, y) = l.rsplit_once('\t').ok_or_else(|| {
                format!(
                    "T1 corpus line {}: expected `sentence<TAB>label` (pass the SST-2 train.tsv as --corpus)",
                    k + 2
                )
            })?;
            let y: i64 = y
                .trim()
                .parse()
                .map_err(|_| format!("T1 corpus line {}: label `{y}` is not 0 or 1", k + 2))?;
            Ok((s, y))
        })
        .collect::<Result<_, String>>()?;
    if rows.len() < steps * T1_BATCH {
        return Err(format!(
            "T1 needs {} labelled lines ({steps} batches of {T1_BATCH}), the corpus has {}",
            steps * T1_BATCH,
            rows.len()
        )
        .into());
    }
    rows.chunks(T1_BATCH)
        .map(|b| {
            let texts: Vec<&str> = b.iter().map(|r| r.0).collect();
            let inputs = tok.pad(&tok.tokenize_batch(&texts)?)?;
            Ok((inputs, b.iter().map(|r| r.1).collect()))
        })
        .collect()
}

/// Peak resident set (`VmHWM` of /proc/self/status), what Python's `ru_maxrss` reports.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}
