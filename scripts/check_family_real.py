#!/usr/bin/env python3
"""The BERT family at a real model's scale: all-MiniLM-L6-v2's trained weights re-expressed as a
RobertaModel, an XLMRobertaModel, a DistilBertModel and an ElectraModel, run by transformers 4.57
and by bert_rs on real sentences (SST-2 dev).

No pretrained RoBERTa / XLM-R / DistilBERT / ELECTRA checkpoint is on PyPI and the hub is out of
reach here (docs/family.md), so this is the closest real-data check: real weights (6 layers, 384
wide, trained attention patterns), real text lengths, every family's loader, names, position rule,
token-type handling and head-free base model. The conversion is exact for single texts:
- RoBERTa / XLM-R: `padding_idx` = MiniLM's pad id 0, so token k sits at position 1 + k: the
  position table is BERT's shifted down one row; the one token type is BERT's type 0.
- DistilBERT: no token types: BERT's type-0 row is folded into every position row (the sum is
  (word + type0) + position in BERT and word + (position + type0) here: equal up to rounding).
- ELECTRA: `embedding_size` = `hidden_size`, BERT's tensors under `electra.`, no pooler.
It prints, per family: transformers' family model against transformers' BertModel (the conversion),
and bert_rs against transformers' family model (what this repository claims), as max |diff| of
last_hidden_state over real tokens.

Usage: PYTHONPATH=<transformers 4.57 dir>:<bert_rs> python scripts/check_family_real.py \
           --minilm DIR --sst2 ../shared/data/sst2/dev.tsv [--n 300] [--out /tmp/family-real]
"""

import argparse
import json
import os

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModel, BertModel, BertTokenizerFast


def convert(src, out, family):
    cfg = json.load(open(os.path.join(src, "config.json")))
    w = load_file(os.path.join(src, "model.safetensors"))
    w = {k[len("bert."):] if k.startswith("bert.") else k: v for k, v in w.items()}
    w.pop("embeddings.position_ids", None)
    base = {k: cfg[k] for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                               "intermediate_size", "hidden_act", "layer_norm_eps")}
    pos, type0 = w["embeddings.position_embeddings.weight"], w["embeddings.token_type_embeddings.weight"][:1]
    if family in ("roberta", "xlm-roberta"):
        # padding_idx 0: position 1 + k for the k-th token; row 0 is the padding row.
        new_pos = torch.cat([torch.zeros_like(pos[:1]), pos])
        w["embeddings.position_embeddings.weight"] = new_pos
        w["embeddings.token_type_embeddings.weight"] = type0.clone()
        config = dict(base, model_type=family, max_position_embeddings=new_pos.shape[0], type_vocab_size=1,
                      pad_token_id=0, architectures=["RobertaModel" if family == "roberta" else "XLMRobertaModel"])
        tensors = dict(w)
    elif family == "electra":
        config = dict(base, model_type="electra", embedding_size=cfg["hidden_size"],
                      max_position_embeddings=pos.shape[0], type_vocab_size=cfg["type_vocab_size"],
                      pad_token_id=0, architectures=["ElectraModel"])
        tensors = {k: v for k, v in w.items() if not k.startswith("pooler.")}
    else:
        names = {"attention.self.query": "attention.q_lin", "attention.self.key": "attention.k_lin",
                 "attention.self.value": "attention.v_lin", "attention.output.dense": "attention.out_lin",
                 "attention.output.LayerNorm": "sa_layer_norm", "intermediate.dense": "ffn.lin1",
                 "output.dense": "ffn.lin2", "output.LayerNorm": "output_layer_norm"}
        tensors = {"embeddings.word_embeddings.weight": w["embeddings.word_embeddings.weight"],
                   "embeddings.position_embeddings.weight": pos + type0,
                   "embeddings.LayerNorm.weight": w["embeddings.LayerNorm.weight"],
                   "embeddings.LayerNorm.bias": w["embeddings.LayerNorm.bias"]}
        for k, v in w.items():
            if k.startswith("encoder.layer."):
                i, rest = k[len("encoder.layer."):].split(".", 1)
                for ours, theirs in names.items():
                    if rest.startswith(ours + "."):
                        tensors[f"transformer.layer.{i}.{theirs}{rest[len(ours):]}"] = v
                        break
                else:
                    raise SystemExit(f"unmapped {k}")
        config = dict(model_type="distilbert", vocab_size=cfg["vocab_size"], dim=cfg["hidden_size"],
                      n_layers=cfg["num_hidden_layers"], n_heads=cfg["num_attention_heads"],
                      hidden_dim=cfg["intermediate_size"], activation=cfg["hidden_act"],
                      max_position_embeddings=pos.shape[0], pad_token_id=0, architectures=["DistilBertModel"])
    os.makedirs(out, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out, "model.safetensors"),
              metadata={"format": "pt"})
    json.dump(config, open(os.path.join(out, "config.json"), "w"), indent=1)
    for f in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        if os.path.exists(os.path.join(src, f)):
            with open(os.path.join(src, f), "rb") as a, open(os.path.join(out, f), "wb") as b:
                b.write(a.read())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minilm", required=True)
    ap.add_argument("--sst2", required=True)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--out", default="/tmp/family-real")
    a = ap.parse_args()
    import bert_rs

    torch.set_num_threads(2)
    lines = [l.split("\t")[0] for l in open(a.sst2, encoding="utf-8").read().splitlines()[1:a.n + 1]]
    tok = BertTokenizerFast.from_pretrained(a.minilm)
    ref = BertModel.from_pretrained(a.minilm, attn_implementation="eager").eval()
    print(f"{len(lines)} SST-2 dev sentences, batches of 16; max |diff| of last_hidden_state, real tokens")
    print("| family | transformers family vs transformers BertModel (conversion) | bert_rs vs transformers family |")
    print("|---|---:|---:|")
    for family in ("roberta", "xlm-roberta", "distilbert", "electra"):
        d = os.path.join(a.out, family)
        convert(a.minilm, d, family)
        theirs = AutoModel.from_pretrained(d, attn_implementation="eager").eval()
        ours = bert_rs.AutoModel.from_pretrained(d)
        conv = diff = 0.0
        for i in range(0, len(lines), 16):
            enc = tok(lines[i:i + 16], padding=True, return_tensors="pt")
            kw = {k: enc[k] for k in ("input_ids", "attention_mask")}
            if family != "distilbert":
                kw["token_type_ids"] = enc["token_type_ids"]
            with torch.no_grad():
                want = theirs(**kw).last_hidden_state.numpy()
                bert = ref(**enc).last_hidden_state.numpy()
            got = np.asarray(ours(**{k: v.numpy() for k, v in kw.items()}).last_hidden_state)
            m = enc["attention_mask"].numpy().astype(bool)
            conv = max(conv, float(np.abs(want - bert)[m].max()))
            diff = max(diff, float(np.abs(got - want)[m].max()))
        print(f"| {family} ({type(theirs).__name__}) | {conv:.2e} | {diff:.2e} |")


if __name__ == "__main__":
    main()
