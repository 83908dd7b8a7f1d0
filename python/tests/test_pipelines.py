"""pipeline() against transformers 4.57's pipelines (fixtures/golden/pipe-*.json, made by
scripts/make_fixtures.py): the same dicts and lists, scores within the Rust tests' tolerance."""

from __future__ import annotations

import numpy as np
import pytest

import bert_rs
from conftest import TOL_SCORE, golden_json, model_dir


def assert_same(ours, want, where: str) -> None:
    """Same structure, keys, strings and ints; floats within TOL_SCORE."""
    if isinstance(want, dict):
        assert isinstance(ours, dict) and sorted(ours) == sorted(want), f"{where}: {ours} != {want}"
        for k in want:
            assert_same(ours[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(ours, list) and len(ours) == len(want), f"{where}: {ours} != {want}"
        for i, (o, w) in enumerate(zip(ours, want)):
            assert_same(o, w, f"{where}[{i}]")
    elif isinstance(want, float):
        assert isinstance(ours, float) and abs(ours - want) <= TOL_SCORE, f"{where}: {ours} != {want}"
    else:
        assert ours == want and type(ours) is type(want), f"{where}: {ours!r} != {want!r}"


@pytest.mark.parametrize(
    "name", ["pipe-seqcls", "pipe-seqcls-multilabel", "pipe-seqcls-regression", "pipe-tokcls", "pipe-mlm"]
)
def test_text_pipelines_match_transformers(name):
    g = golden_json(name)
    pipe = bert_rs.pipeline(g["task"], model=model_dir(name))
    for i, case in enumerate(g["cases"]):
        x = case["text"]
        if "text_pair" in case:
            x = {"text": x, "text_pair": case["text_pair"]}
        assert_same(pipe(x, **case["kwargs"]), case["output"], f"{name} case {i}")


def test_question_answering_matches_transformers():
    g = golden_json("pipe-qa")
    qa = bert_rs.pipeline("question-answering", model=model_dir("pipe-qa"))
    for i, case in enumerate(g["cases"]):
        out = qa(question=case["question"], context=case["context"], **case["kwargs"])
        assert_same(out, case["output"], f"pipe-qa case {i}")
    c = g["cases"][0]
    assert_same(qa({"question": c["question"], "context": c["context"]}), c["output"], "dict form")
    both = qa([{"question": c["question"], "context": c["context"]}] * 2)
    assert_same(both, [c["output"]] * 2, "list form")


def test_pairs_and_cross_encoder_match_transformers():
    g = golden_json("pipe-rerank")
    clf = bert_rs.pipeline("text-classification", model=model_dir("pipe-rerank"))
    ce = bert_rs.CrossEncoder(model_dir("pipe-rerank"))
    pairs = [(c["text"], c["text_pair"]) for c in g["cases"]]
    scores = ce.predict(pairs)
    for i, c in enumerate(g["cases"]):
        assert_same(clf({"text": c["text"], "text_pair": c["text_pair"]}), c["output"], f"case {i}")
        assert abs(float(scores[i]) - c["cross_encoder"]) <= TOL_SCORE
    ranked = ce.rank(g["cases"][0]["text"], [p for _, p in pairs])
    assert [r["corpus_id"] for r in ranked] == list(np.argsort(-scores, kind="stable"))


def test_batched_calls_shape_as_transformers():
    g = golden_json("pipe-seqcls")
    pipe = bert_rs.pipeline("sentiment-analysis", model=model_dir("pipe-seqcls"))
    plain = [c for c in g["cases"] if not c["kwargs"] and "text_pair" not in c]
    texts = [c["text"] for c in plain]
    singles = [c["output"][0] for c in plain]
    assert_same(pipe(texts), singles, "list, default top_k")
    assert_same(pipe(texts, top_k=1), [[s] for s in singles], "list, top_k=1")
    ner = bert_rs.pipeline("ner", model=model_dir("pipe-tokcls"), aggregation_strategy="simple")
    tg = golden_json("pipe-tokcls")
    simple = [c for c in tg["cases"] if c["kwargs"] == {"aggregation_strategy": "simple"}]
    assert_same(ner([c["text"] for c in simple]), [c["output"] for c in simple], "ner defaults")


def test_feature_extraction_is_last_hidden_state(minilm_dir):
    fe = bert_rs.pipeline("feature-extraction", model=minilm_dir)
    model = bert_rs.BertModel.from_pretrained(minilm_dir)
    tok = bert_rs.BertTokenizer.from_pretrained(minilm_dir)
    want = model(**tok("Hello, my dog is cute", return_tensors="np")).last_hidden_state
    out = fe("Hello, my dog is cute")
    assert np.array(out).shape == want.shape and np.array_equal(np.array(out, np.float32), want)


def test_unknown_task_and_options_are_errors():
    with pytest.raises(KeyError, match="Unknown task"):
        bert_rs.pipeline("summarization", model=model_dir("pipe-seqcls"))
    pipe = bert_rs.pipeline("text-classification", model=model_dir("pipe-seqcls"))
    with pytest.raises(TypeError, match="does not take"):
        pipe("hello", aggregation_strategy="simple")
    with pytest.raises(ValueError, match="unknown function"):
        pipe("hello", function_to_apply="tanh")
