"""Every engine error reaches Python as an exception of the fitting class with the engine's
message; bad inputs never crash the interpreter."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import bert_rs
from conftest import model_dir


def test_missing_model_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        bert_rs.BertModel.from_pretrained(str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="config.json"):
        bert_rs.BertModel.from_pretrained(str(tmp_path))


def test_truncated_checkpoint_is_value_error(tmp_path):
    d = tmp_path / "m"
    shutil.copytree(model_dir("tiny-gelu"), d)
    w = d / "model.safetensors"
    w.write_bytes(w.read_bytes()[:1000])
    with pytest.raises(ValueError, match="model.safetensors"):
        bert_rs.BertModel.from_pretrained(str(d))


def test_missing_head_is_key_error():
    with pytest.raises(KeyError, match="classifier"):
        bert_rs.BertForSequenceClassification.from_pretrained(model_dir("tiny-gelu"))


def test_bad_inputs_are_value_errors():
    m = bert_rs.BertModel.from_pretrained(model_dir("tiny-gelu"))
    with pytest.raises(ValueError, match="out of range"):
        m(np.array([[2, 5000]]))
    with pytest.raises(ValueError, match="attention_mask has shape"):
        m(np.array([[2, 5]]), attention_mask=np.array([[1, 1, 1]]))
    with pytest.raises(ValueError, match="max_position_embeddings"):
        m(np.ones((1, 100), dtype=np.int64))
    with pytest.raises(ValueError, match="integers"):
        m(np.array([[2.5, 5.0]]))
    with pytest.raises(ValueError, match="head_mask has shape"):
        m(np.array([[2, 5]]), head_mask=np.ones((3, 3)))
    with pytest.raises(ValueError, match="empty batch"):
        m(np.zeros((0, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="ragged"):
        m([[1, 2], [3]])
    with pytest.raises(TypeError, match="unexpected"):
        m(np.array([[2, 5]]), past_key_values=None)


def test_bad_tokenizer_calls():
    tok = bert_rs.BertTokenizer.from_pretrained(model_dir("tiny-gelu") + "/../../tokenizer/minilm-json")
    with pytest.raises(ValueError, match="out of range"):
        tok.decode([10**9])
    with pytest.raises(ValueError, match="special tokens"):
        tok("hello world", truncation=True, max_length=1)
    with pytest.raises(ValueError, match="str or a list of str"):
        tok(123)
    with pytest.raises(ValueError, match="return_tensors"):
        tok("a", return_tensors="tf")


def test_oversized_output_is_memory_error():
    m = bert_rs.BertModel.from_pretrained(model_dir("tiny-gelu"))
    ids = np.full((200_000, 64), 5, dtype=np.int64)
    with pytest.raises(MemoryError, match="output_attentions"):
        m(ids, output_attentions=True, output_hidden_states=True)


def test_bad_options():
    with pytest.raises(ValueError, match="dtype"):
        bert_rs.BertModel.from_pretrained(model_dir("tiny-gelu"), dtype="int4")
    with pytest.raises(ValueError, match="num_threads"):
        bert_rs.BertModel.from_pretrained(model_dir("tiny-gelu"), num_threads=0)
