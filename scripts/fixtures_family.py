"""Section 7 of make_fixtures.py: the BERT family (RoBERTa, XLM-RoBERTa, DistilBERT, ELECTRA).

For each family: a tokenizer trained by the `tokenizers` library on fixtures/family/corpus.txt
(byte-level BPE for RoBERTa, Unigram for XLM-R, WordPiece for DistilBERT and ELECTRA) and saved
through transformers' fast tokenizer class; tiny random models of each class the crate loads,
saved with `save_pretrained`; and goldens: the tokenizer's ids / type ids / byte offsets on
singles, pairs and truncation, the base model's four outputs, every head's logits, the
gradients of a sequence-classification and a token-classification loss, transformers' pipelines
on the heads, and sentence-transformers' encode() on each base model (sentence/).

Run through make_fixtures.py (`--only family` regenerates this section alone).
"""

import json
import os
import shutil

import torch
import transformers
from tokenizers import (ByteLevelBPETokenizer, BertWordPieceTokenizer,
                        SentencePieceUnigramTokenizer)
from tokenizers.processors import TemplateProcessing
from transformers import (DistilBertConfig, DistilBertForMaskedLM, DistilBertForQuestionAnswering,
                          DistilBertForSequenceClassification, DistilBertForTokenClassification,
                          DistilBertModel, DistilBertTokenizerFast, ElectraConfig,
                          ElectraForPreTraining, ElectraForQuestionAnswering,
                          ElectraForSequenceClassification, ElectraForTokenClassification,
                          ElectraModel, ElectraTokenizerFast, RobertaConfig, RobertaForMaskedLM,
                          RobertaForQuestionAnswering, RobertaForSequenceClassification,
                          RobertaForTokenClassification, RobertaModel, RobertaTokenizerFast,
                          XLMRobertaConfig, XLMRobertaForMaskedLM, XLMRobertaForQuestionAnswering,
                          XLMRobertaForSequenceClassification, XLMRobertaForTokenClassification,
                          XLMRobertaModel, XLMRobertaTokenizerFast)

TINY = dict(hidden_size=32, num_attention_heads=4, num_hidden_layers=2, intermediate_size=37,
            hidden_act="gelu", initializer_range=0.02)

FAMILIES = {
    "roberta": dict(
        config=lambda v: RobertaConfig(vocab_size=v, max_position_embeddings=66, type_vocab_size=1,
                                       pad_token_id=1, bos_token_id=0, eos_token_id=2,
                                       layer_norm_eps=1e-5, **TINY),
        classes={"model": RobertaModel, "seqcls": RobertaForSequenceClassification,
                 "tokcls": RobertaForTokenClassification, "qa": RobertaForQuestionAnswering,
                 "mlm": RobertaForMaskedLM}),
    "xlm-roberta": dict(
        config=lambda v: XLMRobertaConfig(vocab_size=v, max_position_embeddings=66,
                                          type_vocab_size=1, pad_token_id=1, bos_token_id=0,
                                          eos_token_id=2, layer_norm_eps=1e-5,
                                          **dict(TINY, hidden_act="gelu_new")),
        classes={"model": XLMRobertaModel, "seqcls": XLMRobertaForSequenceClassification,
                 "tokcls": XLMRobertaForTokenClassification, "qa": XLMRobertaForQuestionAnswering,
                 "mlm": XLMRobertaForMaskedLM}),
    "distilbert": dict(
        config=lambda v: DistilBertConfig(vocab_size=v, max_position_embeddings=64, dim=32,
                                          n_heads=4, n_layers=2, hidden_dim=37,
                                          activation="gelu", pad_token_id=0),
        classes={"model": DistilBertModel, "seqcls": DistilBertForSequenceClassification,
                 "tokcls": DistilBertForTokenClassification, "qa": DistilBertForQuestionAnswering,
                 "mlm": DistilBertForMaskedLM}),
    "electra": dict(
        config=lambda v: ElectraConfig(vocab_size=v, max_position_embeddings=64, type_vocab_size=2,
                                       embedding_size=16, pad_token_id=0, layer_norm_eps=1e-12,
                                       **TINY),
        classes={"model": ElectraModel, "seqcls": ElectraForSequenceClassification,
                 "tokcls": ElectraForTokenClassification, "qa": ElectraForQuestionAnswering,
                 "discriminator": ElectraForPreTraining}),
}

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello world",
    "Paris is the capital of France.",
    "",
    "  leading and trailing spaces  ",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "東京は日本の首都です。",
    "unseen words: zyxwvut qqq!",
    "Numbers: 3.14159, 2,718 and 10:30.",
]
PAIRS = [
    ("Where is Paris?", "Paris is the capital of France."),
    ("Hello", "world"),
    ("A much longer first segment that will need truncation to fit the limit", "short"),
]
LABELS = {"seqcls": ["negative", "neutral", "positive"],
          "tokcls": ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]}


FAST_CLASSES = {"roberta": RobertaTokenizerFast, "xlm-roberta": XLMRobertaTokenizerFast,
                "distilbert": DistilBertTokenizerFast, "electra": ElectraTokenizerFast}


def family_tokenizer(family, corpus, tdir):
    """The family's tokenizer from its committed directory; trained (and saved there) when the
    directory is absent. The `tokenizers` trainers of WordPiece and Unigram are not deterministic
    from run to run, so the trained files are inputs kept in the repository, as the corpus is;
    delete fixtures/family/*/tokenizer to train new ones."""
    if os.path.exists(os.path.join(tdir, "tokenizer.json")):
        return FAST_CLASSES[family].from_pretrained(tdir)
    return train_tokenizer(family, corpus, tdir)


def train_tokenizer(family, corpus, tdir):
    """Trains the family's tokenizer model and saves it through transformers' fast class."""
    os.makedirs(tdir, exist_ok=True)
    if family == "roberta":
        bpe = ByteLevelBPETokenizer()
        bpe.train([corpus], vocab_size=400, min_frequency=1, show_progress=False,
                  special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
        bpe.save_model(tdir)
        tok = RobertaTokenizerFast(vocab_file=os.path.join(tdir, "vocab.json"),
                                   merges_file=os.path.join(tdir, "merges.txt"), model_max_length=64)
        os.remove(os.path.join(tdir, "vocab.json"))
        os.remove(os.path.join(tdir, "merges.txt"))
    elif family == "xlm-roberta":
        uni = SentencePieceUnigramTokenizer()
        uni.train([corpus], vocab_size=300, show_progress=False,
                  special_tokens=["<s>", "<pad>", "</s>", "<unk>"], unk_token="<unk>")
        uni.add_special_tokens(["<mask>"])
        uni.post_processor = TemplateProcessing(
            single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
            special_tokens=[("<s>", 0), ("</s>", 2)])
        tok = XLMRobertaTokenizerFast(tokenizer_object=uni._tokenizer, bos_token="<s>",
                                      eos_token="</s>", sep_token="</s>", cls_token="<s>",
                                      unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
                                      model_max_length=64)
    else:
        wp = BertWordPieceTokenizer(lowercase=True)
        wp.train([corpus], vocab_size=300, min_frequency=1, show_progress=False,
                 special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
        wp.save_model(tdir)
        cls = DistilBertTokenizerFast if family == "distilbert" else ElectraTokenizerFast
        tok = cls(vocab_file=os.path.join(tdir, "vocab.txt"), model_max_length=64)
    tok.save_pretrained(tdir)
    return tok


@torch.no_grad()
def reinit(model, g):
    """Seeded values of meaningful size for every parameter, in named_parameters order."""
    for name, p in model.named_parameters():
        if p.dim() == 1 and "norm" in name.lower() and name.endswith("weight"):
            v = 1.0 + 0.2 * torch.randn(p.shape, generator=g)
        elif p.dim() == 1:
            v = 0.2 * torch.randn(p.shape, generator=g)
        elif "embeddings" in name:
            v = torch.randn(p.shape, generator=g)
        else:
            v = torch.randn(p.shape, generator=g) / (p.shape[1] ** 0.5)
        p.copy_(v)


def encode_cases(tok, family):
    """Padded batches the model goldens run on, from the family's own tokenizer."""
    cases = {
        "singles": tok(TEXTS[:3] + TEXTS[5:7], padding=True, return_tensors="pt"),
        "pairs": tok([a for a, _ in PAIRS[:2]], [b for _, b in PAIRS[:2]], padding=True,
                     return_tensors="pt"),
    }
    out = {}
    for name, enc in cases.items():
        ids = enc["input_ids"]
        out[name] = dict(input_ids=ids, attention_mask=enc["attention_mask"],
                         token_type_ids=enc.get("token_type_ids", torch.zeros_like(ids)))
    return out


def model_kwargs(family, inp):
    kw = dict(input_ids=inp["input_ids"], attention_mask=inp["attention_mask"])
    if family != "distilbert":
        kw["token_type_ids"] = inp["token_type_ids"]
    if "head_mask" in inp:
        kw["head_mask"] = inp["head_mask"]
    return kw


@torch.no_grad()
def outputs(family, kind, model, inp):
    out = model(**model_kwargs(family, inp), output_hidden_states=True, output_attentions=True,
                return_dict=True)
    res = {}
    if kind == "model":
        res["last_hidden_state"] = out.last_hidden_state
        if getattr(out, "pooler_output", None) is not None:
            res["pooler_output"] = out.pooler_output
    elif kind == "qa":
        res["start_logits"], res["end_logits"] = out.start_logits, out.end_logits
    else:
        res["logits"] = out.logits
    if kind == "model":  # the heads' goldens keep only their logits (the files stay small)
        for i, h in enumerate(out.hidden_states):
            res[f"hidden_states.{i}"] = h
        for i, a in enumerate(out.attentions):
            res[f"attentions.{i}"] = a
    return res


def grads(family, model, inp, labels):
    """Loss and every parameter's gradient; `labels` a tensor, or a dict of QA span positions."""
    model.zero_grad(set_to_none=True)
    targets = labels if isinstance(labels, dict) else {"labels": labels}
    out = model(**model_kwargs(family, inp), **targets, return_dict=True)
    out.loss.backward()
    res = {"loss": out.loss.detach().reshape(1)}
    for name, p in model.named_parameters():
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        res[f"grad.{name}"] = g.detach().clone()
    return res


def byte_offsets(text, offsets):
    return [[len(text[:s].encode()), len(text[:e].encode())] for s, e in offsets]


def tokenizer_golden(tok):
    rows = []
    for text in TEXTS:
        for max_length in (None, 6):
            kw = dict(truncation=True, max_length=max_length) if max_length else {}
            e = tok(text, return_offsets_mapping=True, **kw)
            rows.append(dict(text=text, max_length=max_length, ids=e["input_ids"],
                             type_ids=e.get("token_type_ids"),
                             offsets=byte_offsets(text, e["offset_mapping"]),
                             decoded=tok.decode(e["input_ids"], skip_special_tokens=True)))
    for a, b in PAIRS:
        for max_length in (None, 12):
            kw = dict(truncation=True, max_length=max_length) if max_length else {}
            e = tok(a, b, **kw)
            rows.append(dict(text=a, pair=b, max_length=max_length, ids=e["input_ids"],
                             type_ids=e.get("token_type_ids")))
    return rows


PIPE_TEXTS = [
    "Paris is the capital of France.",
    "She sells sea shells by the sea shore in New York.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "unseen words: zyxwvut qqq!",
]
PIPE_QA = [
    ("Where is Paris?", "Paris is the capital of France and has many museums."),
    ("What does she sell?", "She sells sea shells by the sea shore."),
]


def build_pipelines(out, root, family, tok, fx):
    """transformers' pipelines on the family's head models, in the format of fixtures/golden/pipe-*.json."""
    from transformers import pipeline
    eager = dict(model_kwargs={"attn_implementation": "eager"}, device="cpu")

    def save(task, kind, cases):
        d = os.path.join(root, kind)
        with open(os.path.join(root, f"pipe-{kind}.json"), "w", encoding="utf-8") as f:
            json.dump({"task": task, "model": os.path.relpath(d, out),
                       "transformers": transformers.__version__, "cases": cases}, f,
                      ensure_ascii=False, indent=0)
            f.write("\n")

    def load(task, kind):
        d = os.path.join(root, kind)
        return pipeline(task, model=d, tokenizer=d, **eager)

    p = load("text-classification", "seqcls")
    cases = []
    for t in PIPE_TEXTS:
        for kw in ({}, {"top_k": None}):
            cases.append({"text": t, "kwargs": kw, "output": fx.plain(p(t, **kw))})
    for q, c in PIPE_QA:
        cases.append({"text": q, "text_pair": c, "kwargs": {"top_k": None},
                      "output": fx.plain(p({"text": q, "text_pair": c}, top_k=None))})
    save("text-classification", "seqcls", cases)

    p = load("token-classification", "tokcls")
    cases = []
    for t in PIPE_TEXTS:
        for agg in ("none", "simple", "first", "average", "max"):
            cases.append({"text": t, "kwargs": {"aggregation_strategy": agg},
                          "output": fx.plain(p(t, aggregation_strategy=agg))})
    assert any(c["output"] for c in cases)
    save("token-classification", "tokcls", cases)

    p = load("question-answering", "qa")
    cases = []
    for q, c in PIPE_QA:
        for kw in ({}, {"top_k": 3}):
            cases.append({"question": q, "context": c, "kwargs": kw,
                          "output": fx.plain(p(question=q, context=c, **kw))})
    save("question-answering", "qa", cases)

    if "mlm" in FAMILIES[family]["classes"]:
        p = load("fill-mask", "mlm")
        m = tok.mask_token
        cases = []
        for t in (f"Paris is the {m} of France.", f"The quick brown {m} jumps over the lazy dog.",
                  f"{m} is the capital of {m}."):
            for kw in ({}, {"top_k": 2}):
                cases.append({"text": t, "kwargs": kw, "output": fx.plain(p(t, **kw))})
        save("fill-mask", "mlm", cases)


ST_TEXTS = PIPE_TEXTS + ["", "a", "Die Katze schläft auf dem Sofa.", "北京是中国的首都。",
                         "The library opens at nine and closes at five on weekends. " * 6]
# (family, pooling modes, normalize): sentence-transformers models on the family's base model.
ST_MODELS = [("roberta", "mean", True), ("xlm-roberta", "mean", False), ("distilbert", "cls", True),
             ("electra", "max", False)]


def build_sentence(out, family, root, fx):
    """sentence-transformers' encode() with the family's base model as its Transformer module."""
    import sentence_transformers
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling
    for fam, modes, norm in ST_MODELS:
        if fam != family:
            continue
        d = os.path.join(root, "sentence")
        mods = [Transformer(os.path.join(root, "model"), max_seq_length=24), Pooling(32, pooling_mode=modes)]
        if norm:
            mods.append(Normalize())
        SentenceTransformer(modules=mods, device="cpu").save(d)
        os.remove(os.path.join(d, "README.md"))  # a generated model card, not needed to load
        st = SentenceTransformer(d, device="cpu")
        e = st.encode(ST_TEXTS, convert_to_numpy=True, batch_size=4)
        fx.write_golden(os.path.join(d, "golden.safetensors"), {"embeddings": torch.from_numpy(e).contiguous()},
                     {}, {"sentence_transformers": sentence_transformers.__version__,
                          "texts": json.dumps(ST_TEXTS, ensure_ascii=False), "pooling": modes})


RERANK_QUERY = "where is the capital of France"
RERANK_PASSAGES = ["Paris is the capital of France.", "She sells sea shells by the sea shore.",
                   "Der schnelle braune Fuchs springt über den faulen Hund.", "Paris"]


def build_rerank(out, root, family, fi, tok, fx):
    """A one-label sequence classifier (a cross-encoder): transformers' text-classification pipeline
    on (query, passage) pairs and sentence-transformers' CrossEncoder.predict, which must agree."""
    if family not in ("roberta", "distilbert"):
        return
    from sentence_transformers import CrossEncoder
    from transformers import pipeline
    cls = FAMILIES[family]["classes"]["seqcls"]
    config = FAMILIES[family]["config"](len(tok))
    config.num_labels = 1
    torch.manual_seed(fx.SEED)
    model = cls(config)
    reinit(model, fx.gen(980 + fi))
    d = os.path.join(root, "rerank")
    model.eval().save_pretrained(d)
    tok.save_pretrained(d)
    p = pipeline("text-classification", model=d, tokenizer=d, device="cpu",
                 model_kwargs={"attn_implementation": "eager"})
    ce = CrossEncoder(d, device="cpu", max_length=64)
    scores = ce.predict([(RERANK_QUERY, x) for x in RERANK_PASSAGES], convert_to_numpy=True)
    cases = []
    for x, sc in zip(RERANK_PASSAGES, scores):
        o = fx.plain(p({"text": RERANK_QUERY, "text_pair": x}))
        assert abs(o["score"] - float(sc)) < 1e-6, (o, sc)
        cases.append({"text": RERANK_QUERY, "text_pair": x, "kwargs": {}, "output": o,
                      "cross_encoder": float(sc)})
    with open(os.path.join(root, "pipe-rerank.json"), "w", encoding="utf-8") as f:
        json.dump({"task": "text-classification", "model": os.path.relpath(d, out),
                   "transformers": transformers.__version__, "cases": cases}, f, ensure_ascii=False, indent=0)
        f.write("\n")


def build_family(out, fx):
    """`fx`: make_fixtures.py itself, whose seed (`SEED`, `gen`) and writers (`write_golden`,
    `plain`) every section shares."""
    corpus = os.path.join(out, "family", "corpus.txt")
    for fi, (family, spec) in enumerate(FAMILIES.items()):
        root = os.path.join(out, "family", family)
        tdir = os.path.join(root, "tokenizer")
        tok = family_tokenizer(family, corpus, tdir)
        for entry in os.listdir(root):  # everything else is regenerated
            if entry != "tokenizer":
                path = os.path.join(root, entry)
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        with open(os.path.join(root, "tokenizer-golden.json"), "w", encoding="utf-8") as f:
            json.dump(tokenizer_golden(tok), f, ensure_ascii=False, indent=0)
            f.write("\n")
        cases = encode_cases(tok, family)
        for ci, (kind, cls) in enumerate(spec["classes"].items()):
            config = spec["config"](len(tok))
            if kind in LABELS:
                config.id2label = dict(enumerate(LABELS[kind]))
                config.label2id = {l: i for i, l in config.id2label.items()}
            torch.manual_seed(fx.SEED)
            model = cls(config)
            reinit(model, fx.gen(900 + 10 * fi + ci))
            model.eval()
            mdir = os.path.join(root, kind)
            model.save_pretrained(mdir)
            tok.save_pretrained(mdir)
            model = cls.from_pretrained(mdir, attn_implementation="eager", dtype=torch.float32)
            model.eval()
            tensors = {}
            kcases = dict(cases)
            if kind == "model":
                L, NH = config.num_hidden_layers, config.num_attention_heads
                hm = torch.tensor([[1.0, 0.0, 0.5, 1.0], [0.25, 1.0, 1.0, 0.0]])[:L, :NH]
                kcases["head_mask"] = dict(cases["singles"], head_mask=hm)
            for cname, inp in kcases.items():
                for k, v in inp.items():
                    want = torch.float32 if k == "head_mask" else torch.int64
                    tensors[f"{cname}.{k}"] = v.to(want).clone().contiguous()
                for k, v in outputs(family, kind, model, inp).items():
                    tensors[f"{cname}.{k}"] = v.detach().clone().contiguous()
            if kind in ("seqcls", "tokcls"):
                inp = cases["singles"]
                g = fx.gen(950 + fi)
                B, T = inp["input_ids"].shape
                if kind == "seqcls":
                    labels = torch.randint(0, 3, (B,), generator=g)
                else:
                    labels = torch.randint(0, 5, (B, T), generator=g)
                    labels[inp["attention_mask"] == 0] = -100
                    labels[:, 0] = -100
                tensors["grads.labels"] = labels
                for k, v in grads(family, model, inp, labels).items():
                    tensors[f"grads.{k}"] = v.contiguous()
            if kind == "qa":
                # An unpadded batch: transformers' QA loss also softmaxes padded positions, which
                # the packed engine never computes (docs/training.md).
                q, c = PIPE_QA[0]
                enc = tok([q, q], [c, c], return_tensors="pt")
                inp = dict(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                           token_type_ids=enc.get("token_type_ids", torch.zeros_like(enc["input_ids"])))
                span = dict(start_positions=torch.tensor([5, 7]), end_positions=torch.tensor([6, 9]))
                for k, v in {**inp, **span}.items():
                    tensors[f"grads.{k}"] = v.clone().contiguous()
                for k, v in grads(family, model, inp, span).items():
                    tensors[f"grads.{k}"] = v.contiguous()
            fx.write_golden(os.path.join(mdir, "golden.safetensors"), tensors, kcases,
                         {"class": cls.__name__, "transformers": transformers.__version__})
        build_pipelines(out, root, family, tok, fx)
        build_sentence(out, family, root, fx)
        build_rerank(out, root, family, fi, tok, fx)
