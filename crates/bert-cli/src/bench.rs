//! `bert bench`: the peer benchmark's workloads (scripts/peers/common.py), timed with a per-phase
//! breakdown, or, with `--peer-protocol`, one JSON line in the protocol of scripts/peers/README.md
//! so `scripts/bench_peers.sh` runs this project interleaved with PyTorch, ONNX Runtime and candle.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bert::profile::{self, Phase};
use bert::train::Precision;
use bert::{BertConfig, BertInputs, BertModel, BertTokenizer, Encoding, ForwardOptions};
use indicatif::ProgressBar;

use crate::input::Source;
use crate::stream::{self, BatchOptions};
use crate::CliResult;

mod train;

const W1_TEXT: &str = "Hello, my dog is cute";
const W2_BATCH: usize = 16;
const W2_LEN: usize = 128;
const W3_N: usize = 1024;
const W3_BATCH: usize = 32;
const W3_MAXLEN: usize = 256;
const WORKLOADS: [&str; 6] = ["W1", "W2", "W2F", "W3", "W3S", "W3U"];

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Checkpoint directory or hub id (default: sentence-transformers/all-MiniLM-L6-v2).
    #[arg(long, short = 'm', conflicts_with = "config")]
    pub model: Option<String>,
    #[command(flatten)]
    pub dtype: crate::DtypeArgs,
    /// Seeded random weights instead of a checkpoint: bert-base, bert-large, minilm-l6,
    /// roberta-base, distilbert-base, or a config.json path (of any family). The tokenizer is
    /// then --tokenizer's.
    #[arg(long)]
    pub config: Option<String>,
    /// Tokenizer for --config (directory or hub id; default: the default model's).
    #[arg(long)]
    pub tokenizer: Option<String>,
    /// Comma-separated workloads: W1 (latency, 1 x 8 tokens), W2 (16 lines padded to 128), W2F
    /// (16 x 128 real tokens), W3 (1024 lines, batches of 32 in file order, tokenization
    /// included), W3S (the same sorted by length), W3U (one line at a time), or `all`; training
    /// (forward + backward + AdamW, needs --model): T1 (SST-2 batches of 32, --sst2), T2 (16 x 128).
    #[arg(long, short = 'w', default_value = "W1,W2,W2F,W3")]
    pub workload: String,
    /// Corpus for W2/W2F/W3*: one text per line (default: scripts/peers/data/fortunes-en.txt).
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Timed iterations (default: W1 50, W2/W2F 10, W3* 1 pass).
    #[arg(long)]
    pub iters: Option<usize>,
    /// Untimed warm-up forwards (W3*: batches) (default: W1 10, W2/W2F 2, W3* 2).
    #[arg(long)]
    pub warmup: Option<usize>,
    /// SST-2 train.tsv (`sentence<TAB>label`) for T1 (default: --corpus).
    #[arg(long)]
    pub sst2: Option<PathBuf>,
    /// Seed of the --config random weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Peer name reported in --peer-protocol mode.
    #[arg(long, default_value = "bert-rs")]
    pub peer: String,
    /// Print only one JSON line per workload, as the peer driver (scripts/peers) expects.
    #[arg(long)]
    pub peer_protocol: bool,
}

/// What one workload run measured.
struct Measured {
    times_ms: Vec<f64>,
    n_seqs: usize,
    real_tokens: usize,
    padded_tokens: usize,
    /// FLOPs of a perfectly unpadded computation per timed unit (forward or pass).
    useful_flops: f64,
    /// Seconds per phase over all timed units.
    phases: [(Phase, f64); 4],
}

pub fn run(args: BenchArgs) -> CliResult {
    let workloads: Vec<String> = if args.workload.eq_ignore_ascii_case("all") {
        WORKLOADS.iter().map(|w| w.to_string()).collect()
    } else {
        args.workload
            .split(',')
            .map(|w| w.trim().to_ascii_uppercase())
            .collect()
    };
    for w in &workloads {
        if !WORKLOADS.contains(&w.as_str()) && !train::WORKLOADS.contains(&w.as_str()) {
            return Err(format!(
                "unknown workload `{w}` (expected one of {WORKLOADS:?}, {:?} or all)",
                train::WORKLOADS
            )
            .into());
        }
    }
    let (training, workloads): (Vec<String>, Vec<String>) = workloads
        .into_iter()
        .partition(|w| train::WORKLOADS.contains(&w.as_str()));
    if !training.is_empty() {
        run_training(&args, &training)?;
        if workloads.is_empty() {
            return Ok(());
        }
    }
    let (model, model_name) = load_model(&args)?;
    let tok_source = match (&args.model, &args.tokenizer) {
        (_, Some(t)) => t.clone(),
        (Some(m), None) => m.clone(),
        (None, None) => bert::hub::DEFAULT_MODEL.to_string(),
    };
    let tok = BertTokenizer::from_pretrained(&tok_source)?;
    let corpus_path = args.corpus.clone().unwrap_or_else(default_corpus);
    let needs_corpus = workloads.iter().any(|w| w != "W1");
    let corpus = if needs_corpus {
        load_corpus(&corpus_path)?
    } else {
        Vec::new()
    };
    profile::enable(!args.peer_protocol);
    let mut out = std::io::stdout().lock();
    if !args.peer_protocol {
        print_header(&mut out, &model, &model_name)?;
    }
    // One bar for the whole run (a bert-base `--workload all` takes minutes), counting forwards.
    let pb = crate::progress::bar(0, "forwards", false);
    for w in &workloads {
        pb.set_prefix(w.clone());
        let m = run_workload(&model, &tok, w, &corpus, &args, &pb)?;
        if args.peer_protocol {
            let line = serde_json::json!({
                "peer": args.peer,
                "model": model_name,
                "workload": w,
                "times_ms": m.times_ms,
                "n_seqs": m.n_seqs,
                "real_tokens": m.real_tokens,
                "padded_tokens": m.padded_tokens,
                "threads": rayon::current_num_threads(),
                "impl": format!(
                    "bert-rs {} (packed tokens, {})",
                    env!("CARGO_PKG_VERSION"),
                    match model.dtype() {
                        bert::Dtype::F32 => "fp32",
                        bert::Dtype::F16 => "fp16 weights",
                        bert::Dtype::Bf16 if bert::Dtype::Bf16.is_native() => "bf16",
                        bert::Dtype::Bf16 => "bf16 emulated",
                        bert::Dtype::Int8 => "int8 dynamic",
                    }
                ),
            });
            writeln!(out, "{line}")?;
        } else {
            print_row(&mut out, w, &m)?;
        }
        out.flush()?;
    }
    pb.finish_and_clear();
    Ok(())
}

/// The training workloads (`train` module): one JSON line each with `--peer-protocol`, else a table.
fn run_training(args: &BenchArgs, workloads: &[String]) -> CliResult {
    let Some(model) = &args.model else {
        return Err("training workloads (T1, T2) need --model DIR".into());
    };
    let name = Path::new(model)
        .file_name()
        .map_or(model.clone(), |n| n.to_string_lossy().into_owned());
    // Training's dtypes: f32, or mixed precision (`bert train --bf16`).
    let prec = match args.dtype.dtype {
        bert::Dtype::F32 => Precision::F32,
        bert::Dtype::Bf16 => {
            // Only for its note where bf16 is emulated: training loads its own model.
            args.dtype.load_options();
            Precision::Bf16
        }
        other => {
            return Err(
                format!("training workloads (T1, T2) run in f32 or bf16, not {other}").into(),
            )
        }
    };
    let mut out = std::io::stdout().lock();
    if !args.peer_protocol {
        writeln!(
            out,
            "| workload | steps | seqs | real tokens | padded tokens | median step ms | real tokens/s | forward | backward | optimizer | peak RSS MB |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        )?;
    }
    for w in workloads {
        let path = match (w.as_str(), &args.sst2) {
            ("T1", Some(p)) => p.clone(),
            _ => args.corpus.clone().unwrap_or_else(default_corpus),
        };
        let corpus = load_corpus(&path)?;
        let w2f = |tok: &BertTokenizer, c: &[String]| -> CliResult<Vec<String>> {
            Ok(w2f_lines(tok, c)?.into_iter().map(String::from).collect())
        };
        let m = train::run(model, w, &corpus, w2f, (args.warmup, args.iters), prec)?;
        let total_ms: f64 = m.times_ms.iter().sum();
        let tps = m.real_tokens as f64 / (total_ms / 1e3);
        let [f, b, o] = m.phases_ms;
        if args.peer_protocol {
            let line = serde_json::json!({
                "peer": args.peer,
                "model": name,
                "workload": w,
                "times_ms": m.times_ms,
                "n_seqs": m.n_seqs,
                "real_tokens": m.real_tokens,
                "padded_tokens": m.padded_tokens,
                "threads": rayon::current_num_threads(),
                "phases_ms": {"forward": f, "backward": b, "optimizer": o},
                "peak_rss_mb": m.peak_rss_mb,
                "impl": format!("bert-rs {} TaskModel::train_step + AdamW (packed tokens, {})", env!("CARGO_PKG_VERSION"), match prec {
                    Precision::F32 => "fp32",
                    Precision::Bf16 => "bf16 products, fp32 weights and AdamW",
                }),
            });
            writeln!(out, "{line}")?;
        } else {
            let pct = |x: f64| format!("{:.0}%", 100.0 * x / total_ms.max(1e-12));
            writeln!(
                out,
                "| {w} | {} | {} | {} | {} | {:.1} | {tps:.0} | {} | {} | {} | {} |",
                m.times_ms.len(),
                m.n_seqs,
                m.real_tokens,
                m.padded_tokens,
                median(&m.times_ms),
                pct(f),
                pct(b),
                pct(o),
                m.peak_rss_mb.map_or("-".into(), |r| format!("{r:.0}")),
            )?;
        }
        out.flush()?;
    }
    Ok(())
}

fn load_model(args: &BenchArgs) -> CliResult<(BertModel, String)> {
    if let Some(c) = &args.config {
        let config = match BertConfig::preset(c) {
            Some(config) => config,
            None if Path::new(c).is_file() => BertConfig::from_file(c)?,
            None => {
                return Err(format!(
                    "--config `{c}` is neither bert-base, bert-large, minilm-l6, roberta-base, \
                 distilbert-base nor a config.json file"
                )
                .into())
            }
        };
        let name = format!(
            "{}-random",
            Path::new(c)
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
        );
        let opts = args.dtype.load_options();
        return Ok((BertModel::random_with(config, args.seed, &opts)?, name));
    }
    let m = args
        .model
        .clone()
        .unwrap_or_else(|| bert::hub::DEFAULT_MODEL.to_string());
    let t = Instant::now();
    let model = BertModel::from_pretrained_with(&m, &args.dtype.load_options())?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    if !args.peer_protocol {
        eprintln!("loaded {m} in {load_ms:.0} ms");
    }
    let name = Path::new(&m)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or(m);
    Ok((model, name))
}

/// The benchmark corpus of the repository this binary was built from.
fn default_corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/peers/data/fortunes-en.txt")
}

/// Lines of the corpus, as `common.load_corpus` reads them: newline-split, whitespace-only lines
/// dropped.
fn load_corpus(path: &Path) -> CliResult<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("corpus {}: {e} (pass --corpus FILE)", path.display()))?;
    Ok(text
        .split('\n')
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect())
}

fn first(corpus: &[String], n: usize) -> CliResult<Vec<&str>> {
    if corpus.len() < n {
        return Err(format!(
            "the corpus has {} lines, the workload needs {n}",
            corpus.len()
        )
        .into());
    }
    Ok(corpus[..n].iter().map(String::as_str).collect())
}

/// FLOPs of one token through the encoder attending over `len` positions (common.py's model).
fn flops_per_token(c: &BertConfig, len: usize) -> f64 {
    let (h, i) = (c.hidden_size as f64, c.intermediate_size as f64);
    c.num_hidden_layers as f64 * (2.0 * (4.0 * h * h + 2.0 * h * i) + 4.0 * h * len as f64)
}

/// FLOPs of a perfectly unpadded forward of `inputs`: each row attends over its real tokens only.
fn useful_flops(c: &BertConfig, inputs: &BertInputs) -> f64 {
    inputs
        .attention_mask
        .rows()
        .into_iter()
        .map(|r| r.iter().filter(|&&m| m != 0).count())
        .map(|n| n as f64 * flops_per_token(c, n))
        .sum()
}

fn forward(model: &BertModel, inputs: &BertInputs, pb: &ProgressBar) -> CliResult {
    model.forward(inputs, &ForwardOptions::default())?;
    pb.inc(1);
    Ok(())
}

fn tokenize(tok: &BertTokenizer, texts: &[&str]) -> CliResult<Vec<Encoding>> {
    Ok(profile::timed(Phase::Tokenization, || {
        tok.tokenize_batch(texts)
    })?)
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn run_workload(
    model: &BertModel,
    tok: &BertTokenizer,
    w: &str,
    corpus: &[String],
    args: &BenchArgs,
    pb: &ProgressBar,
) -> CliResult<Measured> {
    let c = model.config();
    let (warmup, iters) = match w {
        "W1" => (args.warmup.unwrap_or(10), args.iters.unwrap_or(50)),
        "W2" | "W2F" => (args.warmup.unwrap_or(2), args.iters.unwrap_or(10)),
        _ => (args.warmup.unwrap_or(2), args.iters.unwrap_or(1)),
    };
    let iters = iters.max(1);
    let forwards = match w {
        "W1" | "W2" | "W2F" => warmup + iters,
        "W3U" => warmup.min(W3_N) + iters * W3_N,
        _ => warmup.min(W3_N.div_ceil(W3_BATCH)) + iters * W3_N.div_ceil(W3_BATCH),
    };
    pb.set_position(0);
    pb.set_length(forwards as u64);
    match w {
        "W1" | "W2" | "W2F" => {
            let inputs = match w {
                "W1" => tok.pad(&tok.tokenize_batch(&[W1_TEXT])?)?,
                "W2" => {
                    let t = tok.clone().with_max_length(W2_LEN);
                    t.pad_to(&t.tokenize_batch(&first(corpus, W2_BATCH)?)?, W2_LEN)?
                }
                _ => {
                    let t = tok.clone().with_max_length(W2_LEN);
                    t.pad(&t.tokenize_batch(&w2f_lines(tok, corpus)?)?)?
                }
            };
            for _ in 0..warmup {
                forward(model, &inputs, pb)?;
            }
            profile::reset();
            let mut times_ms = Vec::with_capacity(iters);
            for _ in 0..iters {
                let t = Instant::now();
                forward(model, &inputs, pb)?;
                times_ms.push(ms_since(t));
            }
            Ok(Measured {
                times_ms,
                n_seqs: inputs.batch_size(),
                real_tokens: inputs.real_tokens(),
                padded_tokens: inputs.batch_size() * inputs.seq_len(),
                useful_flops: useful_flops(c, &inputs),
                phases: profile::totals(),
            })
        }
        _ => {
            let tok = Arc::new(tok.clone().with_max_length(W3_MAXLEN));
            let lines = first(corpus, W3_N)?;
            let bs = if w == "W3U" { 1 } else { W3_BATCH };
            for chunk in lines.chunks(bs).take(warmup) {
                forward(model, &tok.pad(&tokenize(&tok, chunk)?)?, pb)?;
            }
            profile::reset();
            let mut times_ms = Vec::with_capacity(iters);
            let (mut real, mut padded, mut flops) = (0, 0, 0.0);
            for _ in 0..iters {
                (real, padded, flops) = (0, 0, 0.0);
                let t = Instant::now();
                let batches: Vec<BertInputs> = if w == "W3S" {
                    let mut encs = tokenize(&tok, &lines)?;
                    encs.sort_by_key(|e| e.ids.len()); // stable, as the peers sort
                    encs.chunks(bs)
                        .map(|b| tok.pad(b))
                        .collect::<Result<_, _>>()?
                } else {
                    Vec::new()
                };
                let mut run_one = |inputs: &BertInputs| -> CliResult {
                    forward(model, inputs, pb)?;
                    real += inputs.real_tokens();
                    padded += inputs.batch_size() * inputs.seq_len();
                    flops += useful_flops(c, inputs);
                    Ok(())
                };
                if w == "W3S" {
                    for b in &batches {
                        run_one(b)?;
                    }
                } else {
                    pipelined(&tok, &lines, bs, &mut run_one)?;
                }
                times_ms.push(ms_since(t));
            }
            Ok(Measured {
                times_ms,
                n_seqs: lines.len(),
                real_tokens: real,
                padded_tokens: padded,
                useful_flops: flops,
                phases: profile::totals(),
            })
        }
    }
}

/// Runs `run` on the padded batches of `lines` in order, tokenizing batch k + 1 on the reader
/// thread of [`stream::batches`] while batch k goes through the model (it tokenizes sequentially,
/// so it takes one core's slack instead of queueing behind the model's parallel work).
fn pipelined(
    tok: &Arc<BertTokenizer>,
    lines: &[&str],
    bs: usize,
    run: &mut dyn FnMut(&BertInputs) -> CliResult,
) -> CliResult {
    let items = Source::from_texts(lines.iter().map(|l| l.to_string()).collect()).items()?;
    let opts = BatchOptions {
        batch_size: bs,
        no_truncation: false,
        lowercase: false,
        parallel: false,
    };
    for batch in stream::batches(tok, items, opts) {
        let batch = batch?;
        run(&profile::timed(Phase::Tokenization, || {
            tok.pad(&batch.encodings)
        })?)?;
    }
    Ok(())
}

/// W2F's lines: the first 16 corpus lines whose untruncated tokenization has at least 128 tokens.
fn w2f_lines<'c>(tok: &BertTokenizer, corpus: &'c [String]) -> CliResult<Vec<&'c str>> {
    let full = tok.clone().with_max_length(usize::MAX);
    let all: Vec<&str> = corpus.iter().map(String::as_str).collect();
    let picked: Vec<&str> = all
        .iter()
        .zip(full.tokenize_batch(&all)?)
        .filter(|(_, e)| e.ids.len() >= W2_LEN)
        .map(|(l, _)| *l)
        .take(W2_BATCH)
        .collect();
    if picked.len() < W2_BATCH {
        return Err(format!(
            "the corpus has only {} lines of at least {W2_LEN} tokens, W2F needs {W2_BATCH}",
            picked.len()
        )
        .into());
    }
    Ok(picked)
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn print_header(out: &mut impl Write, model: &BertModel, name: &str) -> std::io::Result<()> {
    let c = model.config();
    writeln!(
        out,
        "model {name}: {} layers, hidden {}, heads {}, intermediate {}; {} threads; dtype {}, \
         {:.1} MB of weights held ({:.1} MB of embedding tables mapped)",
        c.num_hidden_layers,
        c.hidden_size,
        c.num_attention_heads,
        c.intermediate_size,
        rayon::current_num_threads(),
        model.dtype(),
        model.memory_bytes() as f64 / 1e6,
        model.mapped_bytes() as f64 / 1e6,
    )?;
    writeln!(
        out,
        "| workload | seqs | real tokens | padded tokens | median ms | real tokens/s | useful GFLOP/s | {} |",
        Phase::ALL.map(|p| p.name()).join(" | ")
    )?;
    writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|{}",
        "---:|".repeat(Phase::ALL.len())
    )
}

fn print_row(out: &mut impl Write, w: &str, m: &Measured) -> std::io::Result<()> {
    let med = median(&m.times_ms);
    let total: f64 = m.times_ms.iter().sum::<f64>() / 1e3;
    let phases: Vec<String> = m
        .phases
        .iter()
        .map(|(_, s)| format!("{:.0}%", 100.0 * s / total.max(1e-12)))
        .collect();
    writeln!(
        out,
        "| {w} | {} | {} | {} | {med:.2} | {:.0} | {:.1} | {} |",
        m.n_seqs,
        m.real_tokens,
        m.padded_tokens,
        m.real_tokens as f64 / (med / 1e3),
        m.useful_flops / (med / 1e3) / 1e9,
        phases.join(" | ")
    )
}
