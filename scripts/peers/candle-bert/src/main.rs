//! candle BERT peer for the side-by-side CPU benchmark (see ../README.md).
//!
//! Protocol shared by every peer:
//!   candle-bert-bench --model DIR --workload W1|W2|W2F|W3[|W3S|W3U] --corpus FILE \
//!                     [--iters N] [--warmup N] [--peer LABEL]
//! prints ONE JSON line on stdout:
//!   {"peer","model","workload","times_ms":[..],"n_seqs","real_tokens","padded_tokens",...}
//! Extra mode for the correctness check:
//!   candle-bert-bench --model DIR --workload dump --corpus FILE --n 8 --out FILE.safetensors
//!
//! Threads: candle's CPU matmul (gemm crate) and tokenizers both honour RAYON_NUM_THREADS.

use anyhow::{anyhow, bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{Linear, Module, VarBuilder};
use candle_transformers::models::bert::{BertModel, Config};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tokenizers::{
    Encoding, PaddingParams, PaddingStrategy, Tokenizer, TruncationParams,
};

const W1_TEXT: &str = "Hello, my dog is cute";

struct Args {
    model: PathBuf,
    workload: String,
    corpus: PathBuf,
    iters: Option<usize>,
    warmup: Option<usize>,
    peer: String,
    out: Option<PathBuf>,
    n: usize,
}

fn parse_args() -> Result<Args> {
    let mut m: HashMap<String, String> = HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        if !k.starts_with("--") {
            bail!("unexpected argument {k}");
        }
        let v = it.next().ok_or_else(|| anyhow!("missing value for {k}"))?;
        m.insert(k.trim_start_matches("--").to_string(), v);
    }
    let get = |k: &str| m.get(k).cloned();
    Ok(Args {
        model: PathBuf::from(get("model").context("--model DIR required")?),
        workload: get("workload").context("--workload required")?.to_uppercase(),
        corpus: PathBuf::from(get("corpus").context("--corpus FILE required")?),
        iters: get("iters").map(|s| s.parse()).transpose()?,
        warmup: get("warmup").map(|s| s.parse()).transpose()?,
        peer: get("peer").unwrap_or_else(|| "candle".to_string()),
        out: get("out").map(PathBuf::from),
        n: get("n").map(|s| s.parse()).transpose()?.unwrap_or(8),
    })
}

/// candle's `BertModel` has no pooler, so we add HF's BertPooler
/// (dense + tanh on the [CLS] vector) on top to produce `pooler_output`.
struct Bert {
    model: BertModel,
    pooler: Linear,
    device: Device,
}

impl Bert {
    fn load(dir: &Path) -> Result<Self> {
        let device = Device::Cpu;
        let config: Config = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json"))?)?;
        let vb = unsafe {
            VarBuilder::from_mmaped_safetensors(&[dir.join("model.safetensors")], DType::F32, &device)?
        };
        let model = BertModel::load(vb.clone(), &config)?;
        let vbp = if vb.contains_tensor("bert.pooler.dense.weight") { vb.pp("bert") } else { vb };
        let pooler = candle_nn::linear(config.hidden_size, config.hidden_size, vbp.pp("pooler.dense"))?;
        Ok(Self { model, pooler, device })
    }

    /// Returns (last_hidden_state [B,L,H], pooler_output [B,H]).
    fn forward(&self, b: &Batch) -> Result<(Tensor, Tensor)> {
        let ids = Tensor::from_slice(&b.ids, (b.bsz, b.len), &self.device)?;
        let tt = Tensor::from_slice(&b.type_ids, (b.bsz, b.len), &self.device)?;
        let mask = Tensor::from_slice(&b.mask, (b.bsz, b.len), &self.device)?;
        let seq = self.model.forward(&ids, &tt, Some(&mask))?;
        let cls = seq.narrow(1, 0, 1)?.squeeze(1)?;
        let pooled = self.pooler.forward(&cls)?.tanh()?;
        Ok((seq, pooled))
    }
}

struct Batch {
    ids: Vec<u32>,
    type_ids: Vec<u32>,
    mask: Vec<u32>,
    bsz: usize,
    len: usize,
    real: usize,
}

fn to_batch(encs: &[Encoding]) -> Batch {
    let bsz = encs.len();
    let len = encs.first().map(|e| e.len()).unwrap_or(0);
    let mut b = Batch {
        ids: Vec::with_capacity(bsz * len),
        type_ids: Vec::with_capacity(bsz * len),
        mask: Vec::with_capacity(bsz * len),
        bsz,
        len,
        real: 0,
    };
    for e in encs {
        assert_eq!(e.len(), len, "ragged batch");
        b.ids.extend_from_slice(e.get_ids());
        b.type_ids.extend_from_slice(e.get_type_ids());
        b.mask.extend_from_slice(e.get_attention_mask());
        b.real += e.get_attention_mask().iter().map(|&x| x as usize).sum::<usize>();
    }
    b
}

/// tokenizer.json of sentence-transformers models carries its own padding/truncation
/// (fixed 128); always override explicitly. `pad_to = None` means dynamic padding
/// to the longest sequence of the batch (HF default `padding=True`).
fn make_tokenizer(dir: &Path, max_len: usize, pad_to: Option<usize>) -> Result<Tokenizer> {
    let mut tok = Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| anyhow!("{e}"))?;
    tok.with_truncation(Some(TruncationParams { max_length: max_len, ..Default::default() }))
        .map_err(|e| anyhow!("{e}"))?;
    let strategy = match pad_to {
        Some(n) => PaddingStrategy::Fixed(n),
        None => PaddingStrategy::BatchLongest,
    };
    tok.with_padding(Some(PaddingParams { strategy, pad_id: 0, pad_type_id: 0, pad_token: "[PAD]".into(), ..Default::default() }));
    Ok(tok)
}

fn encode(tok: &Tokenizer, texts: &[&str]) -> Result<Batch> {
    let encs = tok.encode_batch(texts.to_vec(), true).map_err(|e| anyhow!("{e}"))?;
    Ok(to_batch(&encs))
}

fn read_corpus(p: &Path, n: usize) -> Result<Vec<String>> {
    let s = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    let lines: Vec<String> = s.lines().filter(|l| !l.is_empty()).take(n).map(String::from).collect();
    if lines.len() < n {
        bail!("corpus has {} lines, need {n}", lines.len());
    }
    Ok(lines)
}

/// W2F input: the first 16 corpus lines (file order) whose tokenization with [CLS]/[SEP] and
/// without truncation has at least 128 tokens (they are then tokenized with truncation 128,
/// so the batch is 16 x 128 real tokens with no padding). Same rule as common.w2f_lines.
fn w2f_lines(dir: &Path, corpus: &Path) -> Result<Vec<String>> {
    const N: usize = 16;
    const LEN: usize = 128;
    let mut tok = make_tokenizer(dir, LEN, None)?;
    tok.with_truncation(None).map_err(|e| anyhow!("{e}"))?;
    tok.with_padding(None);
    let s = std::fs::read_to_string(corpus).with_context(|| format!("reading {}", corpus.display()))?;
    let mut out = Vec::with_capacity(N);
    for l in s.lines().filter(|l| !l.is_empty()) {
        if tok.encode(l, true).map_err(|e| anyhow!("{e}"))?.len() >= LEN {
            out.push(l.to_string());
            if out.len() == N {
                return Ok(out);
            }
        }
    }
    bail!("corpus has only {} lines of >= {LEN} tokens, need {N}", out.len())
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn main() -> Result<()> {
    let a = parse_args()?;
    let t_load = Instant::now();
    let bert = Bert::load(&a.model)?;
    let load_ms = ms(t_load);
    let model_name = a.model.file_name().unwrap().to_string_lossy().to_string();
    let threads = candle_core::utils::get_num_threads();

    let mut times: Vec<f64> = Vec::new();
    let (n_seqs, real, padded);
    match a.workload.as_str() {
        "W1" | "W2" | "W2F" => {
            let (tok, texts): (Tokenizer, Vec<String>) = match a.workload.as_str() {
                "W1" => (make_tokenizer(&a.model, 512, None)?, vec![W1_TEXT.to_string()]),
                "W2" => (make_tokenizer(&a.model, 128, Some(128))?, read_corpus(&a.corpus, 16)?),
                _ => (make_tokenizer(&a.model, 128, Some(128))?, w2f_lines(&a.model, &a.corpus)?),
            };
            let refs: Vec<&str> = texts.iter().map(|s| s.as_str()).collect();
            let b = encode(&tok, &refs)?;
            if a.workload == "W2F" && (b.real != 16 * 128 || b.bsz * b.len != 16 * 128) {
                bail!("W2F batch is {}x{} with {} real tokens, expected 16x128 all real", b.bsz, b.len, b.real);
            }
            let (warm, iters) = if a.workload == "W1" { (10, 50) } else { (2, 10) };
            for _ in 0..a.warmup.unwrap_or(warm) {
                bert.forward(&b)?;
            }
            for _ in 0..a.iters.unwrap_or(iters) {
                let t = Instant::now();
                let out = bert.forward(&b)?;
                times.push(ms(t));
                drop(out);
            }
            n_seqs = b.bsz;
            real = b.real;
            padded = b.bsz * b.len;
        }
        "W3" | "W3U" => {
            // W3: file order, batches of 32, dynamic padding; W3U: batch 1 (no padding at all)
            let bs = if a.workload == "W3U" { 1 } else { 32 };
            let tok = make_tokenizer(&a.model, 256, None)?;
            let lines = read_corpus(&a.corpus, 1024)?;
            let refs: Vec<&str> = lines.iter().map(|s| s.as_str()).collect();
            // warm-up: first batches, untimed
            for chunk in refs.chunks(bs).take(a.warmup.unwrap_or(2)) {
                bert.forward(&encode(&tok, chunk)?)?;
            }
            let (mut r, mut p) = (0usize, 0usize);
            for _ in 0..a.iters.unwrap_or(1) {
                let (mut rr, mut pp) = (0usize, 0usize);
                let t = Instant::now();
                for chunk in refs.chunks(bs) {
                    let b = encode(&tok, chunk)?;
                    let out = bert.forward(&b)?;
                    drop(out);
                    rr += b.real;
                    pp += b.bsz * b.len;
                }
                times.push(ms(t));
                r = rr;
                p = pp;
            }
            n_seqs = refs.len();
            real = r;
            padded = p;
        }
        "W3S" => {
            // tokenize all (no padding), stable-sort by length, batches of 32 padded to their longest
            let tok_pad = make_tokenizer(&a.model, 256, None)?;
            let mut tok = make_tokenizer(&a.model, 256, None)?;
            tok.with_padding(None);
            let lines = read_corpus(&a.corpus, 1024)?;
            let refs: Vec<&str> = lines.iter().map(|s| s.as_str()).collect();
            for chunk in refs.chunks(32).take(a.warmup.unwrap_or(2)) {
                bert.forward(&encode(&tok_pad, chunk)?)?;
            }
            let (mut r, mut p) = (0usize, 0usize);
            for _ in 0..a.iters.unwrap_or(1) {
                let (mut rr, mut pp) = (0usize, 0usize);
                let t = Instant::now();
                let encs = tok.encode_batch(refs.clone(), true).map_err(|e| anyhow!("{e}"))?;
                let mut order: Vec<usize> = (0..encs.len()).collect();
                order.sort_by_key(|&j| encs[j].len()); // stable
                for grp in order.chunks(32) {
                    let len = grp.iter().map(|&j| encs[j].len()).max().unwrap();
                    let mut b = Batch {
                        ids: vec![0; grp.len() * len],
                        type_ids: vec![0; grp.len() * len],
                        mask: vec![0; grp.len() * len],
                        bsz: grp.len(),
                        len,
                        real: 0,
                    };
                    for (row, &j) in grp.iter().enumerate() {
                        let e = &encs[j];
                        b.ids[row * len..row * len + e.len()].copy_from_slice(e.get_ids());
                        b.mask[row * len..row * len + e.len()].fill(1);
                        b.real += e.len();
                    }
                    let out = bert.forward(&b)?;
                    drop(out);
                    rr += b.real;
                    pp += b.bsz * b.len;
                }
                times.push(ms(t));
                r = rr;
                p = pp;
            }
            n_seqs = refs.len();
            real = r;
            padded = p;
        }
        "DUMP" => {
            let tok = make_tokenizer(&a.model, 256, None)?;
            let lines = read_corpus(&a.corpus, a.n)?;
            let refs: Vec<&str> = lines.iter().map(|s| s.as_str()).collect();
            let b = encode(&tok, &refs)?;
            let (seq, pooled) = bert.forward(&b)?;
            let out = a.out.clone().context("--out required for dump")?;
            let mut m = HashMap::new();
            m.insert("last_hidden_state".to_string(), seq);
            m.insert("pooler_output".to_string(), pooled);
            m.insert(
                "input_ids".to_string(),
                Tensor::from_slice(&b.ids, (b.bsz, b.len), &Device::Cpu)?.to_dtype(DType::I64)?,
            );
            m.insert(
                "attention_mask".to_string(),
                Tensor::from_slice(&b.mask, (b.bsz, b.len), &Device::Cpu)?.to_dtype(DType::I64)?,
            );
            candle_core::safetensors::save(&m, &out)?;
            eprintln!("wrote {}", out.display());
            return Ok(());
        }
        w => bail!("unknown workload {w}"),
    }
    let j = serde_json::json!({
        "peer": a.peer,
        "model": model_name,
        "workload": a.workload,
        "times_ms": times,
        "n_seqs": n_seqs,
        "real_tokens": real,
        "padded_tokens": padded,
        "threads": threads,
        "load_ms": load_ms,
        "impl": format!(
            "candle-transformers 0.11.1 BertModel (+manual pooler); runtime avx2={}; compiled with avx2={} fma={}",
            candle_core::utils::with_avx(), cfg!(target_feature = "avx2"), cfg!(target_feature = "fma")),
    });
    println!("{j}");
    Ok(())
}
