"""BertTokenizer against transformers' BertTokenizerFast (fixtures/tokenizer, made by
scripts/make_fixtures.py): ids exactly, for single texts, pairs, truncation, batches, decode."""

from __future__ import annotations

import json

import numpy as np
import pytest

import bert_rs
from conftest import FIXTURES

TOK = FIXTURES / "tokenizer"


def lines(name: str) -> list[dict]:
    return [json.loads(l) for l in (TOK / name).read_text(encoding="utf-8").split("\n") if l]


TEXTS = lines("texts.jsonl")


@pytest.fixture(scope="module")
def tokenizers() -> dict[str, bert_rs.BertTokenizer]:
    setups = {e["setup"] for e in lines("expected.jsonl")}
    return {s: bert_rs.BertTokenizer.from_pretrained(str(TOK / s)) for s in setups}


def test_single_calls_match_transformers_ids(tokenizers):
    checked = 0
    for e in lines("expected.jsonl"):
        tok = tokenizers[e["setup"]]
        t = TEXTS[e["index"]]
        kw = {"truncation": False}
        if e["max_length"] is not None:
            kw = {"truncation": "longest_first", "max_length": e["max_length"]}
        got = tok(t["text"], t.get("text_pair"), **kw)
        for k in ("input_ids", "token_type_ids", "attention_mask"):
            assert got[k] == e[k], (e["setup"], e["index"], e["max_length"], k)
        checked += 1
    assert checked > 600


def test_batch_pairs_match_transformers_ids(tokenizers):
    by_len: dict = {}
    for e in lines("batch_pairs.jsonl"):
        by_len.setdefault((e["setup"], e["max_length"]), []).append(e)
    for (setup, max_length), rows in by_len.items():
        texts = [TEXTS[r["index"]]["text"] for r in rows]
        pairs = [TEXTS[r["index"]]["text_pair"] for r in rows]
        kw = {"truncation": True, "max_length": max_length} if max_length else {}
        got = tokenizers[setup](texts, pairs, **kw)
        assert got["input_ids"] == [r["input_ids"] for r in rows]
        assert got["token_type_ids"] == [r["token_type_ids"] for r in rows]


def test_decode_matches_transformers(tokenizers):
    for e in lines("decode.jsonl"):
        assert tokenizers[e["setup"]].decode(e["input_ids"], skip_special_tokens=True) == e["decoded"]


def test_padding_and_tensors(minilm_dir):
    tok = bert_rs.BertTokenizer.from_pretrained(minilm_dir)
    enc = tok(["Hello, my dog is cute", "How are you?"], padding=True, return_tensors="np")
    assert list(enc.keys()) == ["input_ids", "token_type_ids", "attention_mask"]
    assert enc.input_ids.dtype == np.int64 and enc.input_ids.shape == (2, 8)
    assert enc.attention_mask.tolist() == [[1] * 8, [1] * 6 + [0] * 2]
    assert enc.input_ids[1, 6:].tolist() == [tok.pad_token_id] * 2
    enc = tok("Hello", padding="max_length", max_length=6, return_tensors="np")
    assert enc["input_ids"].shape == (1, 6)
    with pytest.raises(ValueError, match="padding=True"):
        tok(["a b c d", "a"], return_tensors="np")
    assert tok("Hello world")["input_ids"] == [101, 7592, 2088, 102]
    assert tok.tokenize("Hello, world!") == ["hello", ",", "world", "!"]
    assert tok.convert_ids_to_tokens([101, 7592]) == ["[CLS]", "hello"]
    assert tok.convert_tokens_to_ids("hello") == 7592
    assert tok.decode(np.array([101, 7592, 102]), skip_special_tokens=True) == "hello"
    assert bert_rs.BertTokenizerFast is bert_rs.BertTokenizer


def test_default_is_no_truncation_as_transformers(minilm_dir):
    tok = bert_rs.BertTokenizer.from_pretrained(minilm_dir)
    long = "word " * 600
    assert len(tok(long)["input_ids"]) == 602
    assert len(tok(long, truncation=True)["input_ids"]) == tok.model_max_length
    assert len(tok(long, max_length=10)["input_ids"]) == 10


def test_pt_tensors_when_torch_is_installed(minilm_dir):
    torch = pytest.importorskip("torch")
    tok = bert_rs.BertTokenizer.from_pretrained(minilm_dir)
    model = bert_rs.BertModel.from_pretrained(minilm_dir)
    inputs = tok(["Hello, my dog is cute"], return_tensors="pt")
    assert inputs["input_ids"].dtype == torch.int64
    out = model(**inputs)
    assert isinstance(out.last_hidden_state, torch.Tensor)
