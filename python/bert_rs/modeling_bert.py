"""`BertModel` and the `BertFor*` heads, and the same classes of RoBERTa, XLM-RoBERTa, DistilBERT and
ELECTRA: transformers' call on the engine. Outputs are numpy
float32 arrays that own the engine's buffers (no copy), or torch tensors sharing that memory when
the inputs were torch tensors (the tokenizer's `return_tensors="pt"`).

Positions where `attention_mask` is 0 hold zeros in every output (transformers computes values
there that nothing downstream should use)."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _native
from ._tensors import from_numpy, is_torch, to_numpy
from .configuration_bert import BertConfig
from .modeling_outputs import (
    BaseModelOutput,
    BaseModelOutputWithCrossAttentions,
    BaseModelOutputWithPoolingAndCrossAttentions,
    ElectraForPreTrainingOutput,
    BertForPreTrainingOutput,
    MaskedLMOutput,
    MultipleChoiceModelOutput,
    NextSentencePredictorOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)

def _dtype_name(dtype: Any) -> str:
    """The dtype's name for the engine, which checks it (float32, float16, bfloat16, int8 and
    their short names): torch / numpy dtypes by name, transformers' "auto" and None as float32."""
    if dtype is None or dtype == "auto":
        return "float32"
    return str(dtype).replace("torch.", "")


class BertPreTrainedModel:
    """What every class shares: loading, `config`, and the call that converts inputs and outputs."""

    _class_name = "BertModel"
    _output = BaseModelOutputWithPoolingAndCrossAttentions

    def __init__(self, native: "_native.Model") -> None:
        self._model = native
        self.name_or_path = native.directory
        self.config = BertConfig.from_pretrained(native.directory)
        # What was loaded decides the output (an Auto class or AutoModel may load any class).
        self._loaded = native.architecture
        self._output = _OUTPUTS[self._loaded]

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str,
        dtype: Any = "float32",
        num_threads: int | None = None,
        torch_dtype: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Loads a directory or hub id. `dtype` is the encoder's arithmetic: "float32" (exact),
        "float16" (f16 weights), "bfloat16" (bf16 products with f32 sums, as torch's bf16 autocast)
        or "int8" (dynamic int8); `num_threads` sizes this model's own
        thread pool (default: RAYON_NUM_THREADS, else OMP_NUM_THREADS, else the CPUs this process
        may use). transformers' other loading arguments (device_map, revision, ...) are ignored."""
        dtype = _dtype_name(torch_dtype if torch_dtype is not None else dtype)
        native = _native.Model(
            str(pretrained_model_name_or_path),
            class_name=cls._class_name,
            dtype=dtype,
            num_threads=num_threads,
        )
        if getattr(cls, "_is_auto", False):
            # As transformers' Auto classes: an instance of the class that was loaded.
            return _CLASSES[native.architecture](native)
        return cls(native)

    @property
    def num_threads(self) -> int:
        return self._model.num_threads

    @property
    def dtype(self) -> str:
        return self._model.dtype

    @property
    def device(self) -> str:
        return "cpu"

    def eval(self) -> Any:
        return self

    def to(self, *args: Any, **kwargs: Any) -> Any:
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def forward(
        self,
        input_ids: Any = None,
        attention_mask: Any = None,
        token_type_ids: Any = None,
        position_ids: Any = None,
        head_mask: Any = None,
        inputs_embeds: Any = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        if inputs_embeds is not None:
            raise ValueError("inputs_embeds is not supported: pass input_ids")
        if "labels" in kwargs or "start_positions" in kwargs:
            raise ValueError(
                "computing a loss is not supported at inference; fine-tune with bert_rs.train"
            )
        if kwargs:
            raise TypeError(f"unexpected argument(s): {', '.join(sorted(kwargs))}")
        if input_ids is None:
            raise ValueError("input_ids is required")
        if token_type_ids is not None and self._loaded.startswith("DistilBert"):
            # transformers' DistilBERT forward has no such argument.
            raise TypeError(f"{self._loaded}.forward() got an unexpected keyword argument 'token_type_ids'")
        as_torch = is_torch(input_ids)
        num_choices = 1
        ids = to_numpy(input_ids, np.int64, "input_ids")
        if self._loaded.endswith("ForMultipleChoice"):
            if ids.ndim != 3:
                raise ValueError(f"input_ids must be (batch, num_choices, seq), got {ids.shape}")
            num_choices = ids.shape[1]
        batch_shape = ids.shape
        if ids.ndim == 1:  # transformers needs a batch dimension; one sequence is a batch of one
            ids = ids[None, :]
        flat = ids.reshape(-1, ids.shape[-1])

        def opt(x: Any, name: str) -> np.ndarray | None:
            if x is None:
                return None
            a = to_numpy(x, np.int64, name)
            if a.shape != batch_shape:
                raise ValueError(f"{name} has shape {a.shape}, input_ids has shape {batch_shape}")
            return np.ascontiguousarray(a.reshape(flat.shape))

        out = self._model.forward(
            flat,
            attention_mask=opt(attention_mask, "attention_mask"),
            token_type_ids=opt(token_type_ids, "token_type_ids"),
            position_ids=opt(position_ids, "position_ids"),
            head_mask=self._head_mask(head_mask),
            output_hidden_states=bool(output_hidden_states),
            output_attentions=bool(output_attentions),
            num_choices=num_choices,
        )
        values = {k: _convert(v, as_torch) for k, v in out.items()}
        result = self._output(**values)
        return result.to_tuple() if return_dict is False else result

    def _head_mask(self, head_mask: Any) -> np.ndarray | None:
        """(L, NH) float32 from transformers' (NH,) or (L, NH) forms."""
        if head_mask is None:
            return None
        layers, heads, _ = self._model.shape
        m = to_numpy(head_mask, np.float32, "head_mask")
        if m.ndim == 1:
            m = np.broadcast_to(m, (layers, m.shape[0]))
        if m.shape != (layers, heads):
            raise ValueError(
                f"head_mask has shape {m.shape}, expected ({heads},) or ({layers}, {heads})"
            )
        return np.ascontiguousarray(m, dtype=np.float32)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name_or_path={self.name_or_path!r}, dtype={self.dtype}, "
            f"num_threads={self.num_threads})"
        )


def _convert(v: Any, as_torch: bool) -> Any:
    if isinstance(v, tuple):
        return tuple(from_numpy(a, as_torch) for a in v)
    return from_numpy(v, as_torch)


class BertModel(BertPreTrainedModel):
    """transformers' `BertModel`: `last_hidden_state` (B, T, H), `pooler_output` (B, H),
    `hidden_states` (L + 1 of (B, T, H)), `attentions` (L of (B, NH, T, T))."""

    _class_name = "BertModel"
    _output = BaseModelOutputWithPoolingAndCrossAttentions


class BertForSequenceClassification(BertPreTrainedModel):
    """`logits` (B, num_labels)."""

    _class_name = "BertForSequenceClassification"
    _output = SequenceClassifierOutput


class BertForTokenClassification(BertPreTrainedModel):
    """`logits` (B, T, num_labels)."""

    _class_name = "BertForTokenClassification"
    _output = TokenClassifierOutput


class BertForQuestionAnswering(BertPreTrainedModel):
    """`start_logits`, `end_logits` (B, T)."""

    _class_name = "BertForQuestionAnswering"
    _output = QuestionAnsweringModelOutput


class BertForMultipleChoice(BertPreTrainedModel):
    """Inputs (B, C, T); `logits` (B, C)."""

    _class_name = "BertForMultipleChoice"
    _output = MultipleChoiceModelOutput


class BertForMaskedLM(BertPreTrainedModel):
    """`logits` (B, T, V)."""

    _class_name = "BertForMaskedLM"
    _output = MaskedLMOutput


class BertForNextSentencePrediction(BertPreTrainedModel):
    """`logits` (B, 2)."""

    _class_name = "BertForNextSentencePrediction"
    _output = NextSentencePredictorOutput


class BertForPreTraining(BertPreTrainedModel):
    """`prediction_logits` (B, T, V), `seq_relationship_logits` (B, 2)."""

    _class_name = "BertForPreTraining"
    _output = BertForPreTrainingOutput


class ElectraForPreTraining(BertPreTrainedModel):
    """ELECTRA's discriminator: `logits` (B, T), one replaced-token logit per token."""

    _class_name = "ElectraForPreTraining"
    _output = ElectraForPreTrainingOutput


_HEAD_OUTPUTS = {
    "Model": BaseModelOutputWithPoolingAndCrossAttentions,
    "ForSequenceClassification": SequenceClassifierOutput,
    "ForTokenClassification": TokenClassifierOutput,
    "ForQuestionAnswering": QuestionAnsweringModelOutput,
    "ForMultipleChoice": MultipleChoiceModelOutput,
    "ForMaskedLM": MaskedLMOutput,
    "ForNextSentencePrediction": NextSentencePredictorOutput,
}


def _family(prefix: str, heads: tuple[str, ...], base_output: type) -> dict[str, type]:
    """The classes `{prefix}Model`, `{prefix}For...` of one family, as transformers names them."""
    out = {}
    for head in ("Model",) + heads:
        name = prefix + head
        output = base_output if head == "Model" else _HEAD_OUTPUTS[head]
        out[name] = type(name, (BertPreTrainedModel,), {
            "_class_name": name,
            "_output": output,
            "__doc__": f"transformers' `{name}` (same outputs as the BERT class of its head).",
            "__module__": __name__,
        })
    return out


_HEADS = ("ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering", "ForMaskedLM")
_FAMILY_CLASSES = {
    **_family("Roberta", _HEADS, BaseModelOutputWithPoolingAndCrossAttentions),
    **_family("XLMRoberta", _HEADS, BaseModelOutputWithPoolingAndCrossAttentions),
    **_family("DistilBert", _HEADS, BaseModelOutput),
    **_family("Electra", _HEADS[:3], BaseModelOutputWithCrossAttentions),
}
RobertaModel = _FAMILY_CLASSES["RobertaModel"]
RobertaForSequenceClassification = _FAMILY_CLASSES["RobertaForSequenceClassification"]
RobertaForTokenClassification = _FAMILY_CLASSES["RobertaForTokenClassification"]
RobertaForQuestionAnswering = _FAMILY_CLASSES["RobertaForQuestionAnswering"]
RobertaForMaskedLM = _FAMILY_CLASSES["RobertaForMaskedLM"]
XLMRobertaModel = _FAMILY_CLASSES["XLMRobertaModel"]
XLMRobertaForSequenceClassification = _FAMILY_CLASSES["XLMRobertaForSequenceClassification"]
XLMRobertaForTokenClassification = _FAMILY_CLASSES["XLMRobertaForTokenClassification"]
XLMRobertaForQuestionAnswering = _FAMILY_CLASSES["XLMRobertaForQuestionAnswering"]
XLMRobertaForMaskedLM = _FAMILY_CLASSES["XLMRobertaForMaskedLM"]
DistilBertModel = _FAMILY_CLASSES["DistilBertModel"]
DistilBertForSequenceClassification = _FAMILY_CLASSES["DistilBertForSequenceClassification"]
DistilBertForTokenClassification = _FAMILY_CLASSES["DistilBertForTokenClassification"]
DistilBertForQuestionAnswering = _FAMILY_CLASSES["DistilBertForQuestionAnswering"]
DistilBertForMaskedLM = _FAMILY_CLASSES["DistilBertForMaskedLM"]
ElectraModel = _FAMILY_CLASSES["ElectraModel"]
ElectraForSequenceClassification = _FAMILY_CLASSES["ElectraForSequenceClassification"]
ElectraForTokenClassification = _FAMILY_CLASSES["ElectraForTokenClassification"]
ElectraForQuestionAnswering = _FAMILY_CLASSES["ElectraForQuestionAnswering"]

# Every class that can be loaded, by transformers' name (what `_native.Model.architecture` says),
# and so its output.
_CLASSES = {
    c.__name__: c
    for c in (BertModel, BertForSequenceClassification, BertForTokenClassification,
              BertForQuestionAnswering, BertForMultipleChoice, BertForMaskedLM,
              BertForNextSentencePrediction, BertForPreTraining, ElectraForPreTraining)
}
_CLASSES.update(_FAMILY_CLASSES)
_OUTPUTS = {name: cls._output for name, cls in _CLASSES.items()}


def _auto(name: str, native_name: str, doc: str) -> type:
    return type(name, (BertPreTrainedModel,), {
        "_class_name": native_name,
        "_is_auto": True,
        "__doc__": doc,
        "__module__": __name__,
    })


# transformers' Auto classes: the class of the checkpoint's family (`model_type`) for the task;
# `AutoModel` is the family's bare encoder, as there.
AutoModel = _auto("AutoModel", "AutoModelForBase", "The checkpoint family's base model.")
AutoModelForSequenceClassification = _auto(
    "AutoModelForSequenceClassification", "AutoModelForSequenceClassification",
    "The checkpoint family's sequence classifier.")
AutoModelForTokenClassification = _auto(
    "AutoModelForTokenClassification", "AutoModelForTokenClassification",
    "The checkpoint family's token classifier.")
AutoModelForQuestionAnswering = _auto(
    "AutoModelForQuestionAnswering", "AutoModelForQuestionAnswering",
    "The checkpoint family's question-answering head.")
AutoModelForMultipleChoice = _auto(
    "AutoModelForMultipleChoice", "AutoModelForMultipleChoice",
    "The checkpoint family's multiple-choice head.")
AutoModelForMaskedLM = _auto(
    "AutoModelForMaskedLM", "AutoModelForMaskedLM", "The checkpoint family's masked-LM head.")
AutoModelForNextSentencePrediction = _auto(
    "AutoModelForNextSentencePrediction", "AutoModelForNextSentencePrediction",
    "BERT's next-sentence head.")
AutoModelForPreTraining = _auto(
    "AutoModelForPreTraining", "AutoModelForPreTraining",
    "BERT's pre-training heads, or ELECTRA's discriminator (ElectraForPreTraining).")
