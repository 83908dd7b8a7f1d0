#!/usr/bin/env python3
"""Python peers for the BERT CPU benchmark. One process = one (peer, model, workload) measurement;
prints one JSON line (the protocol every peer follows, see README.md).

Peers:
  torch-sdpa   transformers BertModel, attn_implementation='sdpa', torch.inference_mode()
  torch-eager  same with attn_implementation='eager'
  torch-bf16   torch-sdpa under torch.autocast("cpu", dtype=torch.bfloat16) (bf16 Linear products,
               f32 outputs), the peer of bert-rs --dtype bf16; it trains under autocast too (T1/T2)
  ort-raw      ONNX Runtime CPU EP on the plain torch.onnx.export graph (session opt level ALL)
  ort-opt      ... on the onnxruntime.transformers optimizer output (fused Attention etc.)
  ort-int8     ... on quantize_dynamic(model-opt.onnx) (int8 weights, dynamic u8 activations)
  bert-rs-py   the Python package bert_rs (BertModel.from_pretrained, model(**feed)) on W1/W2/W2F/W3
  st-torch     sentence-transformers (torch), for the package's workloads only
Training workloads T1/T2 (torch-eager, torch-sdpa, torch-bf16 only): train_py.py.
The Python package's workloads E3 / R3 (bert-rs-py, st-torch): python_pkg.py.

Usage: /tmp/ref/bin/python bench_py.py --peer torch-sdpa --model /tmp/peerbench/models/minilm-l6 \
          --workload W2 [--corpus data/fortunes-en.txt] [--iters N] [--warmup N] [--threads 2]
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common  # noqa: E402

PEERS = ["torch-sdpa", "torch-eager", "torch-bf16", "ort-raw", "ort-opt", "ort-int8", "bert-rs-py", "st-torch"]
ONNX_FILES = {"ort-raw": "model.onnx", "ort-opt": "model-opt.onnx", "ort-int8": "model-opt-int8.onnx"}


class TorchPeer:
    def __init__(self, model_dir, attn, threads, bf16=False):
        import contextlib

        import torch
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        torch.set_num_threads(threads)
        self.torch = torch
        self.model = AutoModel.from_pretrained(model_dir, attn_implementation=attn).eval()
        self.types = common.takes_token_types(model_dir)
        self.desc = f"torch {torch.__version__} transformers {type(self.model).__name__} attn={attn}"
        self.autocast = contextlib.nullcontext
        if bf16:
            self.autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16)
            self.desc += " autocast(bf16)"

    def __call__(self, feed):
        t = self.torch
        names = ("input_ids", "attention_mask", "token_type_ids")[: 3 if self.types else 2]
        with t.inference_mode(), self.autocast():
            o = self.model(**{k: t.from_numpy(feed[k]) for k in names})
            pooled = getattr(o, "pooler_output", None)
            # Under autocast the last LayerNorm gives f32 already; the pooler's Linear gives bf16.
            return o.last_hidden_state.float().numpy(), None if pooled is None else pooled.float().numpy()


class OrtPeer:
    def __init__(self, onnx_path, threads):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.sess.get_inputs()]
        self.desc = f"onnxruntime {ort.__version__} {os.path.basename(onnx_path)}"

    def __call__(self, feed):
        return self.sess.run(None, {k: feed[k] for k in self.inputs})


class BertRsPeer:
    """bert_rs.AutoModel (BertModel, RobertaModel, ...): `model(**feed)`, numpy in and out (no copy
    of the outputs)."""

    def __init__(self, model_dir, threads):
        import bert_rs

        self.model = bert_rs.AutoModel.from_pretrained(model_dir, num_threads=threads)
        self.types = common.takes_token_types(model_dir)
        self.desc = f"bert_rs {bert_rs.__version__} (Python package)"

    def __call__(self, feed):
        if not self.types:
            feed = {k: v for k, v in feed.items() if k != "token_type_ids"}
        return self.model(**feed)


def make_peer(peer, model_dir, threads, onnx_dir=None):
    if peer == "bert-rs-py":
        return BertRsPeer(model_dir, threads)
    if peer in ("torch-sdpa", "torch-eager"):
        return TorchPeer(model_dir, peer.split("-")[1], threads)
    if peer == "torch-bf16":
        return TorchPeer(model_dir, "sdpa", threads, bf16=True)
    if peer in ONNX_FILES:
        name = os.path.basename(os.path.normpath(model_dir))
        d = onnx_dir or os.path.join(os.environ.get("PEERBENCH_ONNX", "/tmp/peerbench/onnx"), name)
        p = os.path.join(d, ONNX_FILES[peer])
        if not os.path.exists(p):
            raise SystemExit(f"{p} missing: run export_onnx.py --model {model_dir}")
        return OrtPeer(p, threads)
    raise SystemExit(f"unknown peer {peer}; known: {PEERS}")


def run_workload(fwd, model_dir, workload, corpus, iters=None, warmup=None):
    w0, i0 = common.DEFAULTS[workload]
    warmup = w0 if warmup is None else warmup
    iters = i0 if iters is None else iters
    times = []
    pc = time.perf_counter
    if workload in ("W1", "W2", "W2F"):
        if workload == "W1":
            tok, texts = common.make_tokenizer(model_dir, 512), [common.W1_TEXT]
        elif workload == "W2":
            tok = common.make_tokenizer(model_dir, common.W2_LEN, common.W2_LEN)
            texts = common.load_corpus(corpus, common.W2_BATCH)
        else:  # W2F: 16 lines of >= 128 tokens, truncated to 128 -> no padding at all
            tok = common.make_tokenizer(model_dir, common.W2F_LEN, common.W2F_LEN)
            texts = common.w2f_lines(model_dir, corpus)
        feed, real = common.encode(tok, texts)
        if workload == "W2F":
            assert real == feed["input_ids"].size == common.W2F_BATCH * common.W2F_LEN, (real, feed["input_ids"].shape)
        for _ in range(warmup):
            fwd(feed)
        for _ in range(iters):
            t = pc()
            fwd(feed)
            times.append((pc() - t) * 1e3)
        B, L = feed["input_ids"].shape
        return dict(times_ms=times, n_seqs=B, real_tokens=real, padded_tokens=B * L)
    if workload in ("W3", "W3U"):
        tok = common.make_tokenizer(model_dir, common.W3_MAXLEN)
        lines = common.load_corpus(corpus, common.W3_N)
        bs = 1 if workload == "W3U" else common.W3_BATCH
        chunks = [lines[k:k + bs] for k in range(0, len(lines), bs)]
        for c in chunks[:warmup]:
            fwd(common.encode(tok, c)[0])
        for _ in range(iters):
            real = padded = 0
            t = pc()
            for c in chunks:
                feed, r = common.encode(tok, c)
                fwd(feed)
                real += r
                padded += feed["input_ids"].size
            times.append((pc() - t) * 1e3)
        return dict(times_ms=times, n_seqs=len(lines), real_tokens=real, padded_tokens=padded)
    if workload == "W3S":
        import numpy as np

        tok = common.make_tokenizer(model_dir, common.W3_MAXLEN)
        tok.no_padding()
        lines = common.load_corpus(corpus, common.W3_N)
        for c in [lines[k:k + common.W3_BATCH] for k in range(0, len(lines), common.W3_BATCH)][:warmup]:
            fwd(common.encode(common.make_tokenizer(model_dir, common.W3_MAXLEN), c)[0])
        for _ in range(iters):
            real = padded = 0
            t = pc()
            encs = tok.encode_batch(lines)
            order = sorted(range(len(encs)), key=lambda j: len(encs[j].ids))  # stable
            for k in range(0, len(order), common.W3_BATCH):
                group = [encs[j] for j in order[k:k + common.W3_BATCH]]
                L = max(len(e.ids) for e in group)
                ids = np.zeros((len(group), L), dtype=np.int64)
                mask = np.zeros((len(group), L), dtype=np.int64)
                for r_, e in enumerate(group):
                    ids[r_, :len(e.ids)] = e.ids
                    mask[r_, :len(e.ids)] = 1
                fwd({"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})
                real += int(mask.sum())
                padded += ids.size
            times.append((pc() - t) * 1e3)
        return dict(times_ms=times, n_seqs=len(lines), real_tokens=real, padded_tokens=padded)
    raise SystemExit(f"unknown workload {workload}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peer", required=True, choices=PEERS)
    ap.add_argument("--model", required=True)
    ap.add_argument("--workload", required=True, type=str.upper, choices=common.WORKLOADS)
    ap.add_argument("--corpus", default=common.DEFAULT_CORPUS)
    ap.add_argument("--iters", type=int)
    ap.add_argument("--warmup", type=int)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", 2)))
    ap.add_argument("--onnx-dir")
    a = ap.parse_args()
    common.set_thread_env(a.threads)
    if a.workload in ("E3", "R3"):  # the Python package's workloads (python_pkg.py)
        import python_pkg

        run = python_pkg.run_e3 if a.workload == "E3" else python_pkg.run_r3
        r, desc = run(a.peer, a.model, a.corpus, a.threads, a.iters, a.warmup)
        r = {"peer": a.peer, "model": os.path.basename(os.path.normpath(a.model)), "workload": a.workload, **r,
             "threads": a.threads, "impl": desc}
        print(json.dumps(r))
        return
    if a.workload.startswith("T"):  # training (train_py.py): torch peers only
        if a.peer not in ("torch-sdpa", "torch-eager", "torch-bf16"):
            raise SystemExit(f"{a.peer} does not train; T1/T2 peers: torch-eager, torch-sdpa, torch-bf16")
        import train_py

        attn = "sdpa" if a.peer == "torch-bf16" else a.peer.split("-")[1]
        r, desc = train_py.run_training(a.model, a.workload, a.corpus, attn, a.threads,
                                        a.iters, a.warmup, bf16=a.peer == "torch-bf16")
        r = {"peer": a.peer, "model": os.path.basename(os.path.normpath(a.model)), "workload": a.workload, **r,
             "threads": a.threads, "impl": desc}
        print(json.dumps(r))
        return
    t = time.perf_counter()
    fwd = make_peer(a.peer, a.model, a.threads, a.onnx_dir)
    load_ms = (time.perf_counter() - t) * 1e3
    r = run_workload(fwd, a.model, a.workload, a.corpus, a.iters, a.warmup)
    r = {"peer": a.peer, "model": os.path.basename(os.path.normpath(a.model)), "workload": a.workload, **r,
         "threads": a.threads, "load_ms": round(load_ms, 1), "impl": fwd.desc}
    print(json.dumps(r))


if __name__ == "__main__":
    main()
