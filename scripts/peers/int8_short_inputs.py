#!/usr/bin/env python3
"""Cosine of int8 to fp32 mean-pooled embeddings on the shortest inputs, for ONNX Runtime's dynamic
int8 (model-opt-int8.onnx, the ort-int8 peer) and, given --bert, for bert-rs's `--dtype int8`.

The shortest inputs are the hardest for int8: a mean over two or three tokens averages no error away.
The Rust test `all_minilm_l6_v2_int8_shortest_inputs_cosine` (crates/bert/tests/quantized.rs) holds
bert-rs to its bound; this script gives the peer's figure beside it (docs/quantization.md).

  /tmp/ref/bin/python scripts/peers/int8_short_inputs.py \\
      --model /tmp/peerbench/models/minilm-l6 --onnx /tmp/peerbench/onnx/minilm-l6 \\
      --bert target/release/bert
"""
import argparse
import json
import os
import subprocess
import tempfile

import numpy as np
import onnxruntime as ort
from transformers import AutoTokenizer

TEXTS = ["", ".", "a", "hi", "[SEP]"]


def unit(v):
    return v / np.linalg.norm(v)


def ort_embeddings(tok, path):
    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [i.name for i in s.get_inputs()]
    out = []
    for t in TEXTS:
        enc = tok([t], return_tensors="np")
        h = s.run(None, {k: enc[k].astype(np.int64) for k in names if k in enc})[0][0]  # (T, H)
        out.append(unit(h.mean(0)))
    return out


def bert_embeddings(binary, model, dtype):
    with tempfile.TemporaryDirectory() as d:
        inp, outp = os.path.join(d, "in.txt"), os.path.join(d, "out.jsonl")
        with open(inp, "w") as f:
            f.write("\n".join(TEXTS) + "\n")
        subprocess.run([binary, "embed", "--model", model, "--dtype", dtype, "--input", inp,
                        "--output", outp], check=True, capture_output=True)
        with open(outp) as f:
            return [unit(np.array(json.loads(line)["embedding"])) for line in f]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="HF model directory (tokenizer)")
    ap.add_argument("--onnx", required=True, help="directory with model-opt.onnx and model-opt-int8.onnx")
    ap.add_argument("--bert", help="a bert-rs `bert` binary: also report its int8")
    args = ap.parse_args()
    tok = AutoTokenizer.from_pretrained(args.model)
    f32 = ort_embeddings(tok, os.path.join(args.onnx, "model-opt.onnx"))
    q = ort_embeddings(tok, os.path.join(args.onnx, "model-opt-int8.onnx"))
    rows = {"ort-int8": [float(a @ b) for a, b in zip(f32, q)]}
    if args.bert:
        ours = bert_embeddings(args.bert, args.model, "f32")
        ours_q = bert_embeddings(args.bert, args.model, "int8")
        rows["bert-rs-int8"] = [float(a @ b) for a, b in zip(ours, ours_q)]
    print("| peer | " + " | ".join(repr(t) for t in TEXTS) + " |")
    print("|---|" + "---:|" * len(TEXTS))
    for name, cos in rows.items():
        print(f"| {name} | " + " | ".join(f"{c:.4f}" for c in cos) + " |")


if __name__ == "__main__":
    main()
