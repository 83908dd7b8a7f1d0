"""Fine-tuning from Python: `bert train` and `bert evaluate` as functions, with the CLI's options
(as keyword arguments) and defaults, transformers' Trainer semantics (AdamW without decay on
biases and LayerNorm weights, warmup, linear/cosine/constant schedules, clipping, accumulation,
dropout, seeded and resumable), and a transformers checkpoint written to `output_dir`.

    import bert_rs
    metrics = bert_rs.train("sst2/train.tsv", "sst2-model", eval_file="sst2/dev.tsv",
                            model="sentence-transformers/all-MiniLM-L6-v2", epochs=1)
    print(metrics["final"])      # {"accuracy": ..., "macro_f1": ..., "loss": ...}

The GIL is released while the job runs; Ctrl-C stops it at the next step (KeyboardInterrupt).
"""

from __future__ import annotations

import os
from typing import Any

from . import _native


def train(
    train_file: str | os.PathLike,
    output_dir: str | os.PathLike,
    task: str = "sequence-classification",
    model: str | None = None,
    eval_file: str | os.PathLike | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Fine-tunes `model` (default all-MiniLM-L6-v2) for `task` ("sequence-classification" or
    "token-classification") on `train_file` (JSON lines, TSV/CSV with a header, or CoNLL for
    tokens), evaluating on `eval_file` after every epoch, and writes the model, its tokenizer,
    trainer_state.json and eval_results.json to `output_dir`. Returns eval_results.json:
    `{"final": metrics of the last evaluation, "epochs": [...], "train_runtime_s", ...}`.

    Options (the `bert train` flags): epochs=3, learning_rate=5e-5, batch_size=32,
    max_length=128, warmup_ratio=0.0, warmup_steps=None, weight_decay=0.0, grad_accum=1,
    max_grad_norm=1.0, lr_scheduler="linear", seed=42, save_steps=None, resume=None,
    problem_type=None, text_column=None, text_pair_column=None, label_column=None, log=None,
    num_threads=None, logging_steps=50 (a progress line on stderr every N steps), quiet=False,
    bf16=False (mixed precision: bf16 products, f32 weights and optimizer, as TrainingArguments'
    bf16).
    """
    return _native.train(
        os.fspath(train_file),
        os.fspath(output_dir),
        task_name=task,
        model=model,
        eval_file=None if eval_file is None else os.fspath(eval_file),
        **options,
    )


def evaluate(model: str, data_file: str | os.PathLike, **options: Any) -> dict[str, Any]:
    """`bert evaluate`: the metrics of a fine-tuned classifier on a labelled file (options:
    batch_size=32, max_length=128, dtype="float32", text_column, text_pair_column, label_column,
    num_threads)."""
    return _native.evaluate(model, os.fspath(data_file), **options)
