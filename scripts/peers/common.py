"""Shared definitions for the BERT peer benchmark (workloads, tokenization, FLOP model).

Every peer (Python or not) must implement exactly these workloads:
  W1  latency : batch 1, text W1_TEXT, no padding; forward only (tokenized once, untimed);
                warm-up 10, then >=50 timed forwards; report per-forward ms.
  W2  fixed   : first 16 corpus lines, truncation 128, padded to 128 (attention_mask marks real
                tokens); forward only; warm-up 2, then N timed forwards; per-batch ms.
  W2F full    : batch 16 x 128 REAL tokens: the first 16 corpus lines (file order) whose tokenization
                (with [CLS]/[SEP], no truncation) has >= 128 tokens, tokenized with truncation 128
                -> every row is 128 real tokens, attention_mask all ones, no padding at all;
                forward only; warm-up/iters as W2. Measures pure kernel efficiency.
  W3  corpus  : first 1024 corpus lines in file order, batches of 32, each batch tokenized with
                truncation 256 and padded to its own longest (dynamic padding); ONE timed pass =
                tokenization + tensor building + forward for all 32 batches; warm-up = first 2
                batches untimed; report the pass wall time (-> real tokens/s, sequences/s).
All: fp32, 2 threads, token_type_ids all 0, outputs last_hidden_state [B,L,H] and pooler_output [B,H].

Training (forward + backward + optimizer step; BertForSequenceClassification, 2 labels, model.train()
i.e. dropout on, AdamW lr 2e-5 weight decay 0.01, constant lr, no clipping; tokenization untimed):
  T1  SST-2   : the SST-2 train.tsv (`sentence\tlabel`, header; passed as --corpus) in file order,
                batches of 32, truncation 128, each batch padded to its own longest (dynamic padding);
                warm-up = first N batches (untimed steps), then `iters` timed steps on the batches that
                follow; per-step ms; real tokens/s = timed real tokens / summed step time.
  T2  dense   : the W2F batch (16 x 128 real tokens), labels row % 2, the same batch every step.
  Both report phases_ms {forward, backward, optimizer} summed over timed steps and peak_rss_mb.

Optional extras (not part of the headline table; they quantify the cost of padding in W3):
  W3S sorted  : same 1024 lines, tokenized once without padding (timed), sorted by token length,
                then batches of 32 padded to their own longest (timed) -> near-minimal padding.
  W3U unpadded: same 1024 lines, one sequence per forward (batch 1, no padding at all), file order.
"""
import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
# The corpus is committed next to the scripts (scripts/peers/data/ in the bert-rs repo).
DEFAULT_CORPUS = os.path.join(HERE, "data", "fortunes-en.txt")

W1_TEXT = "Hello, my dog is cute"
W2_BATCH, W2_LEN = 16, 128
W2F_BATCH, W2F_LEN = 16, 128
W3_N, W3_BATCH, W3_MAXLEN = 1024, 32, 256
DEFAULTS = {  # (warmup, iters)
    "W1": (10, 50),
    "W2": (2, 10),
    "W2F": (2, 10),
    "W3": (2, 1),  # warm-up counted in batches for W3*
    "W3S": (2, 1),
    "W3U": (2, 1),
    "T1": (2, 30),  # warm-up and timed counted in steps (batches) for T*
    "T2": (1, 5),
    "E3": (1, 3),  # the Python package (python_pkg.py): encode of the W3 corpus, one call per iter
    "R3": (0, 1),  # ... and a Ray Data job over it x4
}
WORKLOADS = list(DEFAULTS)


T_BATCH, T_MAXLEN = 32, 128
T_LR, T_WEIGHT_DECAY = 2e-5, 0.01


def sst2_batches(path, steps):
    """T1: the first `steps` batches of 32 (sentence, label) rows of an SST-2 TSV, file order."""
    rows = []
    with open(path, encoding="utf-8") as f:
        next(f)  # header `sentence\tlabel`
        for line in f:
            if not line.strip():
                continue
            s, y = line.rstrip("\n").rsplit("\t", 1)
            rows.append((s, int(y)))
            if len(rows) == steps * T_BATCH:
                break
    if len(rows) < steps * T_BATCH:
        raise SystemExit(f"T1 needs {steps * T_BATCH} rows of {path}, it has {len(rows)}")
    return [rows[k:k + T_BATCH] for k in range(0, len(rows), T_BATCH)]


def load_corpus(path=DEFAULT_CORPUS, n=None):
    with open(path, encoding="utf-8") as f:
        lines = [l.rstrip("\n") for l in f if l.strip()]
    if n is not None:
        if len(lines) < n:
            raise SystemExit(f"corpus {path} has {len(lines)} lines, need {n}")
        lines = lines[:n]
    return lines


def make_tokenizer(model_dir, max_len, pad_to=None):
    """HF fast tokenizer backend (the `tokenizers` library, same Rust code the candle peer uses).
    tokenizer.json of sentence-transformers models carries its own fixed-128 padding and
    truncation, so both are always overridden explicitly. pad_to=None => pad to batch longest."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tok.enable_truncation(max_length=max_len)
    if pad_to is None:
        tok.enable_padding(pad_id=0, pad_type_id=0, pad_token="[PAD]")
    else:
        tok.enable_padding(pad_id=0, pad_type_id=0, pad_token="[PAD]", length=pad_to)
    return tok


def w2f_lines(model_dir, corpus=DEFAULT_CORPUS):
    """W2F input: the first W2F_BATCH corpus lines (file order) whose full tokenization, [CLS]/[SEP]
    included and without truncation, has at least W2F_LEN tokens. Tokenize the result with
    make_tokenizer(model_dir, W2F_LEN, W2F_LEN) -> W2F_BATCH x W2F_LEN real tokens, no padding."""
    tok = make_tokenizer(model_dir, W2F_LEN)
    tok.no_truncation()
    tok.no_padding()
    lines = load_corpus(corpus)
    picked = [l for l, e in zip(lines, tok.encode_batch(lines)) if len(e.ids) >= W2F_LEN][:W2F_BATCH]
    if len(picked) < W2F_BATCH:
        raise SystemExit(f"corpus {corpus} has only {len(picked)} lines of >= {W2F_LEN} tokens, need {W2F_BATCH}")
    return picked


def encode(tok, texts):
    """-> (feed dict of int64 [B,L] numpy arrays, real_tokens)"""
    encs = tok.encode_batch(texts)
    ids = np.array([e.ids for e in encs], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
    tt = np.array([e.type_ids for e in encs], dtype=np.int64)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": tt}, int(mask.sum())


def model_dims(model_dir):
    c = json.load(open(os.path.join(model_dir, "config.json")))
    if c.get("model_type") == "distilbert":  # DistilBertConfig's own key names
        return dict(layers=c["n_layers"], h=c["dim"], i=c["hidden_dim"], heads=c["n_heads"])
    return dict(layers=c["num_hidden_layers"], h=c["hidden_size"], i=c["intermediate_size"],
                heads=c["num_attention_heads"])


def takes_token_types(model_dir):
    """DistilBERT's forward has no token_type_ids argument."""
    c = json.load(open(os.path.join(model_dir, "config.json")))
    return c.get("model_type") != "distilbert"


def flops_per_token(d, L):
    """FLOPs of one token through the encoder when attending over L positions:
    layers * (2*(4*h*h + 2*h*i) + 4*h*L). Embeddings, softmax, layernorm and pooler ignored."""
    h, i = d["h"], d["i"]
    return d["layers"] * (2 * (4 * h * h + 2 * h * i) + 4 * h * L)


def workload_shapes(model_dir, workload, corpus=DEFAULT_CORPUS):
    """Exact batch geometry every peer must see: list of per-batch lists of real lengths, plus padded L."""
    if workload == "W1":
        tok = make_tokenizer(model_dir, 512)
        return [([len(tok.encode(W1_TEXT).ids)], None)]
    if workload == "W2":
        tok = make_tokenizer(model_dir, W2_LEN, W2_LEN)
        encs = tok.encode_batch(load_corpus(corpus, W2_BATCH))
        return [([sum(e.attention_mask) for e in encs], W2_LEN)]
    if workload == "W2F":
        tok = make_tokenizer(model_dir, W2F_LEN, W2F_LEN)
        encs = tok.encode_batch(w2f_lines(model_dir, corpus))
        return [([sum(e.attention_mask) for e in encs], W2F_LEN)]
    if workload in ("W3", "W3S", "W3U"):
        tok = make_tokenizer(model_dir, W3_MAXLEN)
        tok.no_padding()
        lines = load_corpus(corpus, W3_N)
        lens = [len(e.ids) for e in tok.encode_batch(lines)]
        bs = 1 if workload == "W3U" else W3_BATCH
        if workload == "W3S":
            lens = sorted(lens)  # stable sort by length, as the peers do
        out = []
        for k in range(0, len(lens), bs):
            b = lens[k:k + bs]
            out.append((b, max(b)))
        return out
    raise ValueError(workload)


def workload_flops(model_dir, workload, corpus=DEFAULT_CORPUS):
    """Returns dict with
       counted : FLOPs used for 'effective GFLOP/s' (W1/W2/W2F: all B*L positions at L=padded len;
                 W3: real tokens only, attention term at the batch's padded L)
       padded  : FLOPs actually executed by a padded peer (all B*L positions)
       unpadded: FLOPs of a perfectly unpadded computation (each sequence alone, L=its own length)
       real_tokens, padded_tokens, n_seqs"""
    d = model_dims(model_dir)
    counted = padded = unpadded = 0
    real = ptok = nseq = 0
    for lens, L in workload_shapes(model_dir, workload, corpus):
        L = L if L is not None else max(lens)
        B = len(lens)
        padded += B * L * flops_per_token(d, L)
        unpadded += sum(n * flops_per_token(d, n) for n in lens)
        if workload.startswith("W3"):
            counted += sum(lens) * flops_per_token(d, L)
        else:
            counted += B * L * flops_per_token(d, L)
        real += sum(lens)
        ptok += B * L
        nseq += B
    return dict(counted=counted, padded=padded, unpadded=unpadded, real_tokens=real, padded_tokens=ptok, n_seqs=nseq)


def read_results(paths):
    """(path, record) for every JSON line of run_peers.sh's results.jsonl files, in order."""
    for path in paths:
        for line in open(path):
            line = line.strip()
            if line.startswith("{"):
                yield path, json.loads(line)


def set_thread_env(threads):
    """Must run before importing torch / onnxruntime / tokenizers to take full effect."""
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS"):
        os.environ.setdefault(k, str(threads))
