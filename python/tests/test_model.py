"""BertModel and every BertFor* head against transformers 4.57's outputs (the Rust goldens of
fixtures/golden, made by scripts/make_fixtures.py), and the article's script on the real model."""

from __future__ import annotations

import json

import numpy as np
import pytest

import bert_rs
from conftest import TOL_ATTN, TOL_HIDDEN, TOL_LOGITS, assert_close, cases, golden, model_dir


def run_case(model, g: dict, case: str, extra: dict | None = None):
    kw = {
        k: g[f"{case}.{k}"]
        for k in ("input_ids", "attention_mask", "token_type_ids", "position_ids", "head_mask")
        if f"{case}.{k}" in g
    }
    return model(**kw, **(extra or {}), output_hidden_states=True, output_attentions=True)


def check_encoder_outputs(label: str, out, g: dict, case: str) -> None:
    mask = g[f"{case}.attention_mask"].astype(bool)
    real = mask[:, :, None]
    p = f"{label} {case}"
    if f"{case}.last_hidden_state" in g:
        assert_close(out.last_hidden_state, g[f"{case}.last_hidden_state"], TOL_HIDDEN, f"{p} last_hidden_state", real)
        assert not np.asarray(out.last_hidden_state)[~mask].any(), f"{p}: padding not zero"
    if f"{case}.pooler_output" in g:
        # transformers pools position 0 even when it is padding; we pool the first real token.
        assert_close(out.pooler_output, g[f"{case}.pooler_output"], TOL_HIDDEN, f"{p} pooler", mask[:, :1])
    layers = sum(1 for k in g if k.startswith(f"{case}.attentions."))
    assert len(out.attentions) == layers
    assert len(out.hidden_states) == layers + 1
    for i in range(layers + 1):
        key = f"{case}.hidden_states.{i}"
        if key in g:
            assert_close(out.hidden_states[i], g[key], TOL_HIDDEN, f"{p} hidden_states.{i}", real)
    for i in range(layers):
        key = f"{case}.attentions.{i}"
        if key in g:
            assert_close(out.attentions[i], g[key], TOL_ATTN, f"{p} attentions.{i}", mask[:, None, :, None])


@pytest.mark.parametrize(
    "directory,name",
    [
        ("tiny-gelu", "tiny-gelu"),
        ("tiny-gelu-pytorch", "tiny-gelu"),
        ("tiny-gelu-prefixed", "tiny-gelu"),
        ("tiny-gelu-fp16", "tiny-gelu-fp16"),
        ("tiny-gelu-new", "tiny-gelu-new"),
        ("tiny-relu", "tiny-relu"),
        ("tiny-gelu-pytorch-tanh", "tiny-gelu-pytorch-tanh"),
        ("tiny-nopooler", "tiny-nopooler"),
    ],
)
def test_bert_model_matches_transformers(directory, name):
    model = bert_rs.BertModel.from_pretrained(model_dir(directory))
    g, _ = golden(name)
    for case in cases(g):
        out = run_case(model, g, case)
        check_encoder_outputs(directory, out, g, case)
        if name == "tiny-nopooler":
            assert out.pooler_output is None and "pooler_output" not in out


HEADS = {
    "heads-seqcls": (bert_rs.BertForSequenceClassification, ["logits"]),
    "heads-seqcls-regression": (bert_rs.BertForSequenceClassification, ["logits"]),
    "heads-tokcls": (bert_rs.BertForTokenClassification, ["logits"]),
    "heads-qa": (bert_rs.BertForQuestionAnswering, ["start_logits", "end_logits"]),
    "heads-mlm": (bert_rs.BertForMaskedLM, ["logits"]),
    "heads-nsp": (bert_rs.BertForNextSentencePrediction, ["logits"]),
    "heads-pretraining": (bert_rs.BertForPreTraining, ["prediction_logits", "seq_relationship_logits"]),
    "heads-multiple-choice": (bert_rs.BertForMultipleChoice, ["logits"]),
}


@pytest.mark.parametrize("name", sorted(HEADS))
def test_heads_match_transformers(name):
    cls, outputs = HEADS[name]
    model = cls.from_pretrained(model_dir(name))
    g, _ = golden(name)
    assert model.config.num_labels >= 1 and isinstance(model.config.id2label, dict)
    for case in cases(g):
        if cls is bert_rs.BertForMultipleChoice:
            # The golden keeps the (B·C, T) rows transformers flattens (B, C, T) into.
            b, c = g[f"{case}.logits"].shape
            g = {k: (v.reshape(b, c, -1) if k.startswith(f"{case}.") and k.split(".")[1] in
                     ("input_ids", "attention_mask", "token_type_ids") else v) for k, v in g.items()}
        out = run_case(model, g, case)
        mask = g[f"{case}.attention_mask"].astype(bool)
        for o in outputs:
            want = g[f"{case}.{o}"]
            keep = None
            if want.ndim >= 2 and want.shape[:2] == mask.shape:  # per-token outputs: real tokens
                keep = mask.reshape(mask.shape + (1,) * (want.ndim - 2))
            assert_close(getattr(out, o), want, TOL_LOGITS, f"{name} {case}.{o}", keep)
            assert out[o] is getattr(out, o)
        assert out.to_tuple()[0] is getattr(out, outputs[0])


def test_auto_classes_and_return_dict():
    m = bert_rs.AutoModelForSequenceClassification.from_pretrained(model_dir("heads-seqcls"))
    assert isinstance(m, bert_rs.BertForSequenceClassification)
    ids = np.array([[2, 5, 7, 3]])
    logits = m(ids).logits
    assert m(ids, return_dict=False)[0].tolist() == logits.tolist()
    assert m(input_ids=ids.tolist()).logits.tolist() == logits.tolist()
    base = bert_rs.AutoModel.from_pretrained(model_dir("heads-seqcls"))
    assert isinstance(base, bert_rs.BertModel)


def test_article_script_on_the_real_model(minilm_dir):
    """The seed's transformers script with bert_rs in place of transformers: the same four
    outputs as transformers 4.57 on all-MiniLM-L6-v2 (golden all-MiniLM-L6-v2, case sentences)."""
    g, meta = golden("all-MiniLM-L6-v2")
    sentences = json.loads(meta["texts"])["sentences"]
    tokenizer = bert_rs.BertTokenizer.from_pretrained("sentence-transformers/all-MiniLM-L6-v2")
    model = bert_rs.BertModel.from_pretrained("sentence-transformers/all-MiniLM-L6-v2")
    inputs = tokenizer(sentences, padding=True, return_tensors="np")
    for k in ("input_ids", "token_type_ids", "attention_mask"):
        assert inputs[k].tolist() == g[f"sentences.{k}"].tolist(), k
    outputs = model(**inputs, output_hidden_states=True, output_attentions=True)
    check_encoder_outputs("all-MiniLM-L6-v2", outputs, g, "sentences")
    assert outputs.last_hidden_state.shape == (4, g["sentences.input_ids"].shape[1], 384)
    # No copy: the array's memory belongs to the engine's buffer, not to a numpy copy.
    assert not outputs.last_hidden_state.flags["OWNDATA"]
    assert outputs.last_hidden_state.dtype == np.float32


def test_head_mask_forms_agree():
    model = bert_rs.BertModel.from_pretrained(model_dir("tiny-gelu"))
    ids = np.array([[2, 5, 7, 3]])
    per_layer = model(ids, head_mask=np.array([[1, 0, 1, 1], [1, 0, 1, 1]], np.float32))
    per_head = model(ids, head_mask=[1, 0, 1, 1])
    assert per_layer.last_hidden_state.tolist() == per_head.last_hidden_state.tolist()


def test_dtypes_load_and_stay_close(minilm_dir):
    tok = bert_rs.BertTokenizer.from_pretrained(minilm_dir)
    enc = tok(["Hello, my dog is cute"], return_tensors="np")
    ref = bert_rs.BertModel.from_pretrained(minilm_dir)(**enc).last_hidden_state
    for dtype, tol in (("float16", 2e-2), ("bfloat16", 0.1), ("int8", 0.5)):
        m = bert_rs.BertModel.from_pretrained(minilm_dir, dtype=dtype)
        assert m.dtype == dtype
        assert np.abs(m(**enc).last_hidden_state - ref).max() < tol
    # transformers' spelling: torch_dtype=torch.bfloat16 arrives as its name.
    m = bert_rs.BertModel.from_pretrained(minilm_dir, torch_dtype="torch.bfloat16")
    assert m.dtype == "bfloat16"
