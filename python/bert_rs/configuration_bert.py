"""`BertConfig`: config.json as attributes, with transformers' label conventions."""

from __future__ import annotations

import json
import os
from typing import Any


class BertConfig:
    """The fields of a model's config.json as attributes (`config.hidden_size`), with `id2label`
    keyed by int and `label2id` by name, as transformers gives them."""

    def __init__(self, **kwargs: Any) -> None:
        id2label = kwargs.pop("id2label", None)
        label2id = kwargs.pop("label2id", None)
        num_labels = kwargs.pop("num_labels", None)
        for k, v in kwargs.items():
            setattr(self, k, v)
        if kwargs.get("model_type") == "distilbert":
            # DistilBertConfig's attribute_map: BERT's names for its keys.
            for ours, theirs in (("hidden_size", "dim"), ("num_attention_heads", "n_heads"),
                                 ("num_hidden_layers", "n_layers")):
                if theirs in kwargs:
                    setattr(self, ours, kwargs[theirs])
        if id2label is None:
            id2label = {i: f"LABEL_{i}" for i in range(num_labels or 2)}
        self.id2label = {int(k): v for k, v in id2label.items()}
        self.label2id = (
            {k: int(v) for k, v in label2id.items()}
            if label2id
            else {v: k for k, v in self.id2label.items()}
        )

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @classmethod
    def from_pretrained(cls, directory: str) -> "BertConfig":
        """The config.json of a resolved model directory."""
        path = os.path.join(directory, "config.json")
        with open(path, encoding="utf-8") as f:
            return cls(**json.load(f))

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in vars(self).items()}
        d["id2label"] = {str(k): v for k, v in self.id2label.items()}
        return d

    def __repr__(self) -> str:
        return f"BertConfig {json.dumps(self.to_dict(), indent=2, sort_keys=True)}"
