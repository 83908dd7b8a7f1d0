"""transformers' `FillMaskPipeline` ("fill-mask")."""

from __future__ import annotations

from typing import Any

from .base import Pipeline


class FillMaskPipeline(Pipeline):
    _params = ("top_k", "targets")

    def __call__(self, inputs: str | list[str], **kwargs: Any) -> Any:
        """For a text with one mask, its `top_k` candidates `{"score", "token", "token_str",
        "sequence"}`; with several masks, a list per mask; for a list of texts, a list of those."""
        opts = self._options(kwargs)
        targets = opts.get("targets")
        if isinstance(targets, str):
            targets = [targets]
        batched = isinstance(inputs, (list, tuple))
        texts = list(inputs) if batched else [inputs]
        out = self._native.fill_mask(texts, top_k=opts.get("top_k", 5), targets=targets)
        shaped = [per_mask[0] if len(per_mask) == 1 else per_mask for per_mask in out]
        if batched and len(shaped) == 1:
            return shaped[0]
        return shaped if batched else shaped[0]

    @property
    def mask_token(self) -> str:
        return self._native.mask_token
