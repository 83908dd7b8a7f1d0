"""transformers' `ModelOutput` classes: a value by attribute, by key (`out["logits"]`) and by
index (`out[0]`); `to_tuple()` and the keys leave out the fields that are None."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any


class ModelOutput(OrderedDict):
    """The base class: subclasses list their fields, in transformers' order, in `_fields`."""

    _fields: tuple[str, ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        if args:
            if len(args) > len(self._fields):
                raise TypeError(f"{type(self).__name__} takes at most {len(self._fields)} values")
            for name, value in zip(self._fields, args):
                if name in kwargs:
                    raise TypeError(f"{type(self).__name__} got two values for {name}")
                kwargs[name] = value
        unknown = set(kwargs) - set(self._fields)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field(s) {sorted(unknown)}")
        for name in self._fields:
            value = kwargs.get(name)
            object.__setattr__(self, name, value)
            if value is not None:
                super().__setitem__(name, value)

    def __getitem__(self, k: Any) -> Any:
        if isinstance(k, str):
            return dict(self.items())[k]
        return self.to_tuple()[k]

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        object.__setattr__(self, key, value)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._fields and value is not None:
            super().__setitem__(name, value)
        object.__setattr__(self, name, value)

    def __delitem__(self, key: str) -> None:
        raise TypeError(f"You cannot use ``__delitem__`` on a {type(self).__name__} instance.")

    def __reduce__(self) -> Any:
        return (type(self), (), None, None, iter(self.items()))

    def to_tuple(self) -> tuple[Any, ...]:
        """The values that are not None, in field order."""
        return tuple(self[k] for k in self.keys())

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={_short(v)}" for k, v in self.items())
        return f"{type(self).__name__}({inner})"


def _short(v: Any) -> str:
    shape = getattr(v, "shape", None)
    if shape is not None:
        return f"<array {tuple(shape)}>"
    if isinstance(v, tuple):
        return f"<tuple of {len(v)}>"
    return repr(v)


class BaseModelOutputWithPoolingAndCrossAttentions(ModelOutput):
    _fields = (
        "last_hidden_state",
        "pooler_output",
        "hidden_states",
        "past_key_values",
        "attentions",
        "cross_attentions",
    )


class SequenceClassifierOutput(ModelOutput):
    _fields = ("loss", "logits", "hidden_states", "attentions")


class TokenClassifierOutput(ModelOutput):
    _fields = ("loss", "logits", "hidden_states", "attentions")


class QuestionAnsweringModelOutput(ModelOutput):
    _fields = ("loss", "start_logits", "end_logits", "hidden_states", "attentions")


class MultipleChoiceModelOutput(ModelOutput):
    _fields = ("loss", "logits", "hidden_states", "attentions")


class MaskedLMOutput(ModelOutput):
    _fields = ("loss", "logits", "hidden_states", "attentions")


class NextSentencePredictorOutput(ModelOutput):
    _fields = ("loss", "logits", "hidden_states", "attentions")


class BertForPreTrainingOutput(ModelOutput):
    _fields = ("loss", "prediction_logits", "seq_relationship_logits", "hidden_states", "attentions")


class BaseModelOutput(ModelOutput):
    """DistilBERT's base model output (no pooler)."""

    _fields = ("last_hidden_state", "hidden_states", "attentions")


class BaseModelOutputWithCrossAttentions(ModelOutput):
    """ELECTRA's base model output (no pooler)."""

    _fields = ("last_hidden_state", "hidden_states", "attentions", "cross_attentions")


class ElectraForPreTrainingOutput(ModelOutput):
    _fields = ("loss", "logits", "hidden_states", "attentions")
