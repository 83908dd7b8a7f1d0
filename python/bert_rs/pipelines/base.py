"""What every pipeline shares: the native pipeline, its defaults and the call."""

from __future__ import annotations

from typing import Any

from .. import _native
from ..modeling_bert import _dtype_name


class Pipeline:
    """A task's model and tokenizer; call it on inputs. Keyword arguments given when the pipeline
    is made are defaults for every call."""

    #: the call arguments this pipeline takes
    _params: tuple[str, ...] = ()

    def __init__(
        self,
        model: str,
        task: str,
        dtype: Any = "float32",
        num_threads: int | None = None,
        **defaults: Any,
    ) -> None:
        self.task = task
        self._check(defaults)
        self._defaults = defaults
        self._native = self._load(model, _dtype_name(dtype), num_threads)
        self.model_name = model

    def _load(self, model: str, dtype: str, num_threads: int | None) -> Any:
        return _native.Pipeline(self.task, model, dtype=dtype, num_threads=num_threads)

    def _check(self, kwargs: dict[str, Any]) -> None:
        unknown = set(kwargs) - set(self._params)
        if unknown:
            raise TypeError(
                f"{type(self).__name__} does not take {', '.join(sorted(unknown))} "
                f"(it takes {', '.join(self._params) or 'no options'})"
            )

    def _options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        self._check(kwargs)
        return {**self._defaults, **kwargs}
