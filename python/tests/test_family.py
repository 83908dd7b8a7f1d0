"""RoBERTa, XLM-RoBERTa, DistilBERT and ELECTRA through transformers' class names, against the
goldens of fixtures/family (scripts/fixtures_family.py, transformers 4.57)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors import safe_open

import bert_rs
from conftest import FIXTURES, TOL_LOGITS, assert_close
from test_model import check_encoder_outputs
from test_pipelines import assert_same

FAMILIES = {"roberta": "Roberta", "xlm-roberta": "XLMRoberta", "distilbert": "DistilBert", "electra": "Electra"}
HEADS = {"seqcls": "ForSequenceClassification", "tokcls": "ForTokenClassification",
         "qa": "ForQuestionAnswering", "mlm": "ForMaskedLM"}


def family_golden(family: str, kind: str):
    with safe_open(str(FIXTURES / "family" / family / kind / "golden.safetensors"), "np") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata() or {}


def inputs(g: dict, case: str, family: str) -> dict:
    kw = {k: g[f"{case}.{k}"] for k in ("input_ids", "attention_mask", "head_mask") if f"{case}.{k}" in g}
    if family != "distilbert":
        kw["token_type_ids"] = g[f"{case}.token_type_ids"]
    return kw


@pytest.mark.parametrize("family", FAMILIES)
def test_base_model_outputs(family: str) -> None:
    d = str(FIXTURES / "family" / family / "model")
    g, meta = family_golden(family, "model")
    cls = getattr(bert_rs, f"{FAMILIES[family]}Model")
    for model in (cls.from_pretrained(d), bert_rs.AutoModel.from_pretrained(d)):
        assert model._loaded == meta["class"]
        for case in ("singles", "pairs", "head_mask"):
            out = model(**inputs(g, case, family), output_hidden_states=True, output_attentions=True)
            check_encoder_outputs(family, out, g, case)
            assert ("pooler_output" in out) == (f"{case}.pooler_output" in g)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("kind", HEADS)
def test_heads(family: str, kind: str) -> None:
    d = FIXTURES / "family" / family / kind
    if not d.exists():
        assert (family, kind) == ("electra", "mlm")
        return
    g, meta = family_golden(family, kind)
    cls = getattr(bert_rs, FAMILIES[family] + HEADS[kind])
    auto = getattr(bert_rs, "AutoModel" + HEADS[kind])
    for model in (cls.from_pretrained(str(d)), auto.from_pretrained(str(d))):
        assert model._loaded == meta["class"] == cls.__name__
        for case in ("singles", "pairs"):
            out = model(**inputs(g, case, family))
            mask = g[f"{case}.attention_mask"].astype(bool)
            names = ("start_logits", "end_logits") if kind == "qa" else ("logits",)
            for name in names:
                want = g[f"{case}.{name}"]
                keep = None if kind == "seqcls" else mask.reshape(mask.shape + (1,) * (want.ndim - 2))
                assert_close(getattr(out, name), want, TOL_LOGITS, f"{family}/{kind} {case}.{name}", keep)


def test_electra_discriminator() -> None:
    d = str(FIXTURES / "family" / "electra" / "discriminator")
    g, _ = family_golden("electra", "discriminator")
    for model in (bert_rs.ElectraForPreTraining.from_pretrained(d),
                  bert_rs.AutoModelForPreTraining.from_pretrained(d)):
        out = model(**inputs(g, "singles", "electra"))
        mask = g["singles.attention_mask"].astype(bool)
        assert_close(out.logits, g["singles.logits"], TOL_LOGITS, "discriminator", mask)


@pytest.mark.parametrize("family", FAMILIES)
def test_tokenizer_ids_and_input_names(family: str) -> None:
    tok = bert_rs.AutoTokenizer.from_pretrained(str(FIXTURES / "family" / family / "model"))
    rows = json.loads((FIXTURES / "family" / family / "tokenizer-golden.json").read_text())
    for row in rows:
        kw = {"truncation": True, "max_length": row["max_length"]} if row["max_length"] else {}
        enc = tok(row["text"], row.get("pair"), **kw)
        assert enc["input_ids"] == row["ids"], row
        # transformers' RoBERTa, XLM-R and DistilBERT tokenizers return no token_type_ids.
        assert ("token_type_ids" in enc) == (row["type_ids"] is not None), row
        if row["type_ids"] is not None:
            assert enc["token_type_ids"] == row["type_ids"], row
        if "decoded" in row:
            assert tok.decode(enc["input_ids"], skip_special_tokens=True) == row["decoded"]


def test_distilbert_refuses_token_type_ids() -> None:
    d = str(FIXTURES / "family" / "distilbert" / "model")
    model = bert_rs.DistilBertModel.from_pretrained(d)
    ids = np.array([[2, 10, 11, 3]])
    # As transformers: BaseModelOutput, no pooler_output field (the Rust API says None).
    assert "pooler_output" not in model(input_ids=ids)
    with pytest.raises(TypeError, match="token_type_ids"):
        model(input_ids=ids, token_type_ids=np.zeros_like(ids))
    tok = bert_rs.DistilBertTokenizerFast.from_pretrained(d)
    out = model(**tok(["where is paris?"], ["paris is in france."], return_tensors="np"))
    assert out.last_hidden_state.shape[0] == 1


def test_wrong_family_class_names_the_right_one() -> None:
    d = str(FIXTURES / "family" / "roberta" / "seqcls")
    with pytest.raises(ValueError, match="RobertaForSequenceClassification"):
        bert_rs.BertForSequenceClassification.from_pretrained(d)


@pytest.mark.parametrize("family", FAMILIES)
def test_pipelines(family: str) -> None:
    for kind, task in (("seqcls", "text-classification"), ("tokcls", "token-classification"),
                       ("qa", "question-answering"), ("mlm", "fill-mask")):
        path = FIXTURES / "family" / family / f"pipe-{kind}.json"
        if not path.exists():
            continue
        g = json.loads(path.read_text())
        p = bert_rs.pipeline(task, model=str(FIXTURES / g["model"]))
        for c in g["cases"]:
            if task == "question-answering":
                ours = p(question=c["question"], context=c["context"], **c["kwargs"])
            elif "text_pair" in c:
                ours = p({"text": c["text"], "text_pair": c["text_pair"]}, **c["kwargs"])
            else:
                ours = p(c["text"], **c["kwargs"])
            assert_same(ours, c["output"], f"{family}/{kind} {c}")


@pytest.mark.parametrize("family,cls", [("xlm-roberta", "XLMRobertaForSequenceClassification"),
                                        ("electra", "ElectraForSequenceClassification")])
def test_train_writes_the_family_class(tmp_path, family: str, cls: str) -> None:
    rows = [{"text": t, "label": l} for t, l in (("a great movie", "pos"), ("awful", "neg"),
                                                   ("loved it", "pos"), ("boring and long", "neg"))]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    bert_rs.train(tmp_path / "train.jsonl", out, model=str(FIXTURES / "family" / family / "model"),
                  epochs=1, batch_size=2, quiet=True)
    assert json.loads((out / "config.json").read_text())["architectures"] == [cls]
    model = bert_rs.AutoModelForSequenceClassification.from_pretrained(str(out))
    assert type(model).__name__ == cls
    tok = bert_rs.AutoTokenizer.from_pretrained(str(out))
    assert model(**tok(["great"], return_tensors="np")).logits.shape == (1, 2)
