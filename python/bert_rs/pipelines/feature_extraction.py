"""transformers' `FeatureExtractionPipeline` ("feature-extraction"): `last_hidden_state` per text."""

from __future__ import annotations

from typing import Any

from ..modeling_bert import BertModel
from ..tokenization_bert import BertTokenizer
from .base import Pipeline


class FeatureExtractionPipeline(Pipeline):
    _params = ("return_tensors", "tokenize_kwargs", "truncation")

    def _load(self, model: str, dtype: str, num_threads: int | None) -> Any:
        self.model = BertModel.from_pretrained(model, dtype=dtype, num_threads=num_threads)
        self.tokenizer = BertTokenizer.from_pretrained(model)
        return None

    def __call__(self, inputs: str | list[str], **kwargs: Any) -> Any:
        """(1, T, H) of each text as nested lists (numpy arrays with `return_tensors=True`); a list
        of texts gives a list of those."""
        opts = self._options(kwargs)
        tok_kwargs = dict(opts.get("tokenize_kwargs") or {})
        if opts.get("truncation") is not None:
            tok_kwargs["truncation"] = opts["truncation"]
        batched = isinstance(inputs, (list, tuple))
        out = []
        for text in list(inputs) if batched else [inputs]:
            enc = self.tokenizer(text, return_tensors="np", **tok_kwargs)
            h = self.model(**enc).last_hidden_state
            out.append(h if opts.get("return_tensors") else h.tolist())
        return out if batched else out[0]
