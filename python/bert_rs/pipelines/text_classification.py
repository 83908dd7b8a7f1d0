"""transformers' `TextClassificationPipeline` ("text-classification", "sentiment-analysis")."""

from __future__ import annotations

from typing import Any

from .base import Pipeline


class TextClassificationPipeline(Pipeline):
    _params = ("top_k", "function_to_apply", "batch_size")

    def __call__(self, inputs: Any, **kwargs: Any) -> Any:
        """A text, a `{"text", "text_pair"}` dict, or a list of either. Without `top_k` each input
        gives its best `{"label", "score"}` (a lone str a list of one, as transformers does);
        with `top_k` (None: every label) a list of them, best first."""
        opts = self._options(kwargs)
        legacy = "top_k" not in opts
        top_k = opts.get("top_k", 1)
        batched = isinstance(inputs, (list, tuple))
        items = [_pair(x) for x in (inputs if batched else [inputs])]
        results = self._native.text_classification(
            items,
            top_k=top_k,
            function_to_apply=opts.get("function_to_apply"),
            batch_size=opts.get("batch_size", 32),
        )
        shaped = [r[0] if (legacy and top_k == 1) else r for r in results]
        if batched:
            return shaped
        return [shaped[0]] if isinstance(inputs, str) and legacy else shaped[0]


def _pair(x: Any) -> tuple[str, str | None]:
    if isinstance(x, str):
        return (x, None)
    if isinstance(x, dict) and "text" in x:
        return (x["text"], x.get("text_pair"))
    raise ValueError(
        f"an input must be a str or a dict with 'text' (and 'text_pair'), got {type(x).__name__}"
    )
