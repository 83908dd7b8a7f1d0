"""transformers' `TokenClassificationPipeline` ("token-classification", "ner")."""

from __future__ import annotations

from typing import Any

from .base import Pipeline


class TokenClassificationPipeline(Pipeline):
    _params = ("aggregation_strategy", "ignore_labels", "stride")

    def __call__(self, inputs: str | list[str], **kwargs: Any) -> Any:
        """The entities of a text (a list of dicts), or of each text of a list."""
        opts = self._options(kwargs)
        strategy = opts.get("aggregation_strategy") or "none"
        strategy = getattr(strategy, "value", strategy)  # transformers' AggregationStrategy enum
        batched = isinstance(inputs, (list, tuple))
        texts = list(inputs) if batched else [inputs]
        out = self._native.token_classification(
            texts,
            aggregation_strategy=str(strategy),
            ignore_labels=opts.get("ignore_labels"),
            stride=opts.get("stride"),
        )
        return out if batched else out[0]
