#!/usr/bin/env python3
"""Check a directory written by `bert train` against transformers (4.57.x):

1. `AutoModelFor{Sequence,Token}Classification.from_pretrained(DIR)` loads it with no missing,
   unexpected or mismatched keys (output_loading_info);
2. its logits equal ours within 1e-4: sequence classifiers through
   `bert classify --function-to-apply none --top-k all` (raw logits), token classifiers through
   `bert ner --aggregation none --ignore-labels ''`, compared with transformers' own
   token-classification pipeline (per-token scores and labels).

Usage:
    /tmp/fx/bin/python scripts/check_trained_checkpoint.py DIR [--bert target/release/bert] [--texts FILE]
"""

import argparse
import json
import subprocess
import sys

import torch
import transformers
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoModelForTokenClassification
from transformers import AutoTokenizer, pipeline

TOL = 1e-4
TEXTS = [
    "a gripping, beautifully acted film",
    "dull, lifeless and far too long",
    "EU rejects German call to boycott British lamb .",
    "Peter Blackburn visited Brussels on Monday with Acme Corp .",
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--bert", default="target/release/bert")
    ap.add_argument("--texts", help="one text per line (default: a few built-in ones)")
    args = ap.parse_args()
    texts = TEXTS
    if args.texts:
        with open(args.texts, encoding="utf-8") as f:
            texts = [l.rstrip("\n") for l in f if l.strip()]
    torch.set_num_threads(2)
    arch = AutoConfig.from_pretrained(args.dir).architectures[0]
    cls = {"BertForSequenceClassification": AutoModelForSequenceClassification,
           "BertForTokenClassification": AutoModelForTokenClassification}[arch]
    model, info = cls.from_pretrained(args.dir, output_loading_info=True, attn_implementation="eager")
    model.eval()
    bad = {k: v for k, v in info.items() if v}
    assert not bad, f"loading {args.dir} in transformers {transformers.__version__}: {bad}"
    print(f"{arch}: transformers {transformers.__version__} loads it with no missing/unexpected/mismatched keys")
    tok = AutoTokenizer.from_pretrained(args.dir)
    worst = 0.0
    if arch == "BertForSequenceClassification":
        out = subprocess.run([args.bert, "classify", "-m", args.dir, "--function-to-apply", "none",
                              "--top-k", "all", "-q", *texts], check=True, capture_output=True, text=True)
        ours = [json.loads(l) for l in out.stdout.splitlines()]
        with torch.no_grad():
            logits = model(**tok(texts, padding=True, return_tensors="pt")).logits
        for row, mine in zip(logits, ours):
            by_label = {d["label"]: d["score"] for d in mine}
            for i, v in enumerate(row.tolist()):
                d = abs(by_label[model.config.id2label[i]] - v)
                worst = max(worst, d)
    else:
        p = pipeline("token-classification", model=model, tokenizer=tok, aggregation_strategy="none",
                     ignore_labels=[])
        out = subprocess.run([args.bert, "ner", "-m", args.dir, "--aggregation", "none",
                              "--ignore-labels", "", "-q", *texts], check=True, capture_output=True, text=True)
        ours = [json.loads(l) for l in out.stdout.splitlines()]
        for text, mine in zip(texts, ours):
            theirs = p(text)
            assert [t["entity"] for t in theirs] == [m["entity"] for m in mine], (text, theirs, mine)
            for t, m in zip(theirs, mine):
                worst = max(worst, abs(float(t["score"]) - m["score"]))
    assert worst <= TOL, f"largest difference {worst:.3g} > {TOL}"
    print(f"{len(texts)} texts: largest difference from transformers {worst:.3g} (tolerance {TOL})")


if __name__ == "__main__":
    sys.exit(main())
