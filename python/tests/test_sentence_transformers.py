"""SentenceTransformer.encode against sentence-transformers (fixtures/golden/st-*.safetensors)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import bert_rs
from conftest import TOL_NORMALIZED, TOL_RAW, assert_close, golden, model_dir


def test_minilm_matches_sentence_transformers(minilm_dir):
    g, meta = golden("st-all-MiniLM-L6-v2")
    texts = json.loads(meta["texts"])
    st = bert_rs.SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")
    emb = st.encode(texts)
    assert emb.dtype == np.float32 and emb.shape == (len(texts), 384)
    assert_close(emb, g["embeddings"], TOL_NORMALIZED, "all-MiniLM-L6-v2 embeddings")
    assert st.last_truncated == 1  # the long text is cut at max_seq_length 256
    one = st.encode(texts[0])
    assert one.shape == (384,)
    assert_close(one, g["embeddings"][0], TOL_NORMALIZED, "single text")
    assert_close(st.encode(texts, batch_size=2), emb, 1e-6, "batch_size 2")


@pytest.mark.parametrize("name", ["st-tiny-cls", "st-tiny-max", "st-tiny-mean-lasttoken", "st-tiny-sqrt-weighted"])
def test_tiny_pooling_modes_match_sentence_transformers(name):
    g, meta = golden(name)
    texts = json.loads(meta["texts"])
    st = bert_rs.SentenceTransformer(model_dir(name))
    assert_close(st.encode(texts), g["embeddings"], TOL_RAW, name)


def test_normalize_and_similarity(minilm_dir):
    st = bert_rs.SentenceTransformer(minilm_dir)
    e = st.encode(["a cat", "a dog"], normalize_embeddings=True)
    assert np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-6)
    s = st.similarity(e, e)
    assert s.shape == (2, 2) and abs(s[0, 0] - 1) < 1e-5
    assert st.get_sentence_embedding_dimension() == 384


def test_empty_text_and_empty_list(minilm_dir):
    st = bert_rs.SentenceTransformer(minilm_dir)
    assert st.encode([""]).shape == (1, 384)
    assert st.encode([]).shape == (0, 384)
