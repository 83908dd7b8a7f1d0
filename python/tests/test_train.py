"""bert_rs.train / evaluate: the `bert train` job from Python (the job itself is tested against
PyTorch in crates/bert/tests/train.rs and train_job.rs); what the Python call returns and writes,
its errors, and that the written model loads in the package."""

from __future__ import annotations

import json

import pytest

import bert_rs
from conftest import model_dir

WORDS = ["the", "dog", "cat", "is", "cute", "quick", "lazy", "mat"]


def jsonl(path, n: int, seed: int) -> None:
    rows = []
    for i in range(n):
        words = [WORDS[(i * 5 + k * 3 + seed) % len(WORDS)] for k in range(3 + (i + seed) % 4)]
        rows.append({"text": " ".join(words), "label": "pos" if "dog" in words else "neg"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_train_returns_the_eval_results_and_writes_a_checkpoint(tmp_path):
    jsonl(tmp_path / "train.jsonl", 24, 1)
    jsonl(tmp_path / "dev.jsonl", 8, 4)
    out = tmp_path / "out"
    results = bert_rs.train(
        tmp_path / "train.jsonl",
        out,
        model=model_dir("pipe-seqcls"),
        eval_file=tmp_path / "dev.jsonl",
        epochs=2,
        batch_size=4,
        learning_rate=1e-3,
        quiet=True,
    )
    assert set(results["final"]) >= {"accuracy", "macro_f1", "loss"}
    assert len(results["epochs"]) == 2
    assert json.loads((out / "eval_results.json").read_text()) == results
    again = bert_rs.evaluate(str(out), tmp_path / "dev.jsonl")
    assert abs(again["accuracy"] - results["final"]["accuracy"]) < 1e-6
    clf = bert_rs.pipeline("text-classification", model=str(out))
    assert clf("the dog is cute")[0]["label"] in ("pos", "neg")


def test_bad_training_data_is_an_error_naming_the_line(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"text": "a", "label": "x"}\n{"text": 3}\n')
    with pytest.raises(ValueError, match="train.jsonl:2"):
        bert_rs.train(tmp_path / "train.jsonl", tmp_path / "out", model=model_dir("pipe-seqcls"), quiet=True)
    with pytest.raises(ValueError, match="task"):
        bert_rs.train(tmp_path / "train.jsonl", tmp_path / "out", task="summarization")


def test_bf16_training_records_it_and_stays_near_f32(tmp_path):
    jsonl(tmp_path / "train.jsonl", 24, 1)
    jsonl(tmp_path / "dev.jsonl", 8, 4)
    common = dict(model=model_dir("pipe-seqcls"), eval_file=tmp_path / "dev.jsonl", epochs=1,
                  batch_size=4, learning_rate=1e-3, quiet=True)
    f32 = bert_rs.train(tmp_path / "train.jsonl", tmp_path / "f32", **common)
    bf16 = bert_rs.train(tmp_path / "train.jsonl", tmp_path / "bf16", bf16=True, **common)
    state = json.loads((tmp_path / "bf16" / "trainer_state.json").read_text())
    assert state["args"]["bf16"] is True
    # Same data, seed and steps; only the products' rounding differs.
    assert abs(bf16["final"]["loss"] - f32["final"]["loss"]) < 0.05 * max(1.0, f32["final"]["loss"])
