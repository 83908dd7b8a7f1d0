"""`BertTokenizer` (and `BertTokenizerFast`, the same class): transformers' tokenizer call on the
engine's tokenizer. Ids are exactly transformers' (the Rust tokenizer is tested against it)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from . import _native
from ._tensors import is_torch

_TENSOR_TYPES = (None, "np", "pt")


class BatchEncoding(dict):
    """transformers' `BatchEncoding`: a dict (`model(**inputs)`) whose keys are also attributes."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def to(self, device: Any) -> "BatchEncoding":
        """Moves torch tensors to `device` (numpy arrays and lists stay as they are)."""
        return BatchEncoding({k: v.to(device) if is_torch(v) else v for k, v in self.items()})

    def __getstate__(self) -> dict[str, Any]:
        return dict(self)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.update(state)


def _as_text_list(x: Any, name: str) -> tuple[list[str], bool]:
    """(texts, was_batched)."""
    if isinstance(x, str):
        return [x], False
    if isinstance(x, (list, tuple)) and all(isinstance(t, str) for t in x):
        return list(x), True
    raise ValueError(
        f"{name} must be a str or a list of str (pre-split words are not supported), got "
        f"{type(x).__name__}"
    )


class BertTokenizer:
    """Load with `from_pretrained(directory or hub id)`; call it as transformers' tokenizer."""

    padding_side = "right"
    truncation_side = "right"
    model_input_names = ["input_ids", "token_type_ids", "attention_mask"]

    def __init__(self, native: "_native.Tokenizer") -> None:
        self._tok = native
        self.name_or_path = native.directory
        self.model_max_length = native.model_max_length
        self.pad_token_id = native.pad_token_id
        self.mask_token = native.mask_token
        self.unk_token, self.sep_token, self.pad_token, self.cls_token = native.special_tokens
        if not native.returns_token_type_ids:
            # RoBERTa's, XLM-R's and DistilBERT's tokenizers return no token_type_ids.
            self.model_input_names = ["input_ids", "attention_mask"]

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str, **kwargs: Any) -> "BertTokenizer":
        """Loads tokenizer.json or vocab.txt (with tokenizer_config.json) from a directory, or from
        the Hugging Face hub. Keyword arguments transformers accepts here are not used."""
        return cls(_native.Tokenizer(str(pretrained_model_name_or_path)))

    # -- vocabulary ---------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return self._tok.vocab_size

    def __len__(self) -> int:
        return self._tok.vocab_size

    def _id(self, token: str) -> int | None:
        return self._tok.token_to_id(token)

    @property
    def cls_token_id(self) -> int | None:
        return self._id(self.cls_token)

    @property
    def sep_token_id(self) -> int | None:
        return self._id(self.sep_token)

    @property
    def mask_token_id(self) -> int | None:
        return self._id(self.mask_token)

    @property
    def unk_token_id(self) -> int | None:
        return self._id(self.unk_token)

    def convert_tokens_to_ids(self, tokens: str | Sequence[str]) -> int | list[int]:
        if isinstance(tokens, str):
            return self._convert_token(tokens)
        return [self._convert_token(t) for t in tokens]

    def _convert_token(self, token: str) -> int:
        i = self._tok.token_to_id(token)
        if i is None:
            i = self.unk_token_id
        if i is None:
            raise KeyError(f"token {token!r} is not in the vocabulary, which has no unknown token")
        return i

    def convert_ids_to_tokens(
        self, ids: Any, skip_special_tokens: bool = False
    ) -> str | list[str]:
        if isinstance(ids, (int, np.integer)):
            return self._token(int(ids))
        ids = _ids_list(ids)
        special = set(self._special_ids()) if skip_special_tokens else set()
        return [self._token(i) for i in ids if i not in special]

    def _token(self, i: int) -> str:
        t = self._tok.id_to_token(i)
        if t is None:
            raise ValueError(f"id {i} is out of range for a vocabulary of {self.vocab_size}")
        return t

    def _special_ids(self) -> list[int]:
        names = (self.cls_token, self.sep_token, self.pad_token, self.unk_token, self.mask_token)
        return [i for i in (self._tok.token_to_id(t) for t in names) if i is not None]

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return self._tok.convert_tokens_to_string(list(tokens))

    # -- text to ids --------------------------------------------------------------------------

    def tokenize(self, text: str, **kwargs: Any) -> list[str]:
        """The word pieces of `text`, without special tokens."""
        return self._tok.tokenize(text)

    def encode(
        self,
        text: str,
        text_pair: str | None = None,
        add_special_tokens: bool = True,
        **kwargs: Any,
    ) -> list[int]:
        """The ids of one text (or pair), special tokens included."""
        if not add_special_tokens:
            raise ValueError("add_special_tokens=False is not supported")
        return self(text, text_pair=text_pair, **kwargs)["input_ids"]

    def __call__(
        self,
        text: str | Sequence[str],
        text_pair: str | Sequence[str] | None = None,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        return_tensors: str | None = None,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool | None = None,
        return_special_tokens_mask: bool = False,
        return_length: bool = False,
        verbose: bool = True,
        **kwargs: Any,
    ) -> BatchEncoding:
        """transformers' `tokenizer(text, text_pair, padding=..., truncation=..., max_length=...,
        return_tensors=...)`: a `BatchEncoding` of input_ids, token_type_ids, attention_mask."""
        if kwargs:
            raise TypeError(f"unsupported tokenizer argument(s): {', '.join(sorted(kwargs))}")
        if not add_special_tokens:
            raise ValueError("add_special_tokens=False is not supported")
        if return_tensors not in _TENSOR_TYPES:
            raise ValueError(f"return_tensors must be one of None, 'np', 'pt', got {return_tensors!r}")
        texts, batched = _as_text_list(text, "text")
        pairs = None
        if text_pair is not None:
            pairs, pair_batched = _as_text_list(text_pair, "text_pair")
            if pair_batched != batched or len(pairs) != len(texts):
                raise ValueError(
                    f"text and text_pair must both be a str or lists of the same length "
                    f"({len(texts)} texts, {len(pairs)} pairs)"
                )
            if not batched and pairs[0] == "":
                pairs = None  # transformers' single call: an empty text_pair is no pair at all
        pad_mode, trunc_len = self._strategies(padding, truncation, max_length)
        ids, types, special, _ = self._tok.encode(texts, pairs, trunc_len)
        if pad_mode != "none":
            target = max((len(r) for r in ids), default=0)
            if pad_mode == "max_length":
                target = max_length if max_length is not None else self.model_max_length
            if pad_to_multiple_of:
                target = -(-target // pad_to_multiple_of) * pad_to_multiple_of
        out: dict[str, Any] = {"input_ids": ids}
        if return_token_type_ids is None:
            return_token_type_ids = "token_type_ids" in self.model_input_names
        if return_token_type_ids:
            out["token_type_ids"] = types
        if return_attention_mask is not False:
            out["attention_mask"] = [[1] * len(r) for r in ids]
        if return_special_tokens_mask:
            out["special_tokens_mask"] = [list(s) for s in special]
        if return_length:
            out["length"] = [len(r) for r in ids]
        if pad_mode != "none":
            pads = {"input_ids": self.pad_token_id, "special_tokens_mask": 1}
            for k in ("input_ids", "token_type_ids", "attention_mask", "special_tokens_mask"):
                if k in out:
                    out[k] = [r + [pads.get(k, 0)] * (target - len(r)) for r in out[k]]
        if return_tensors is None:
            if not batched:
                out = {k: v[0] for k, v in out.items()}
            return BatchEncoding(out)
        lengths = {len(r) for r in out["input_ids"]}
        if len(lengths) > 1:
            raise ValueError(
                "Unable to create tensor, you should probably activate truncation and/or padding "
                "with 'padding=True' 'truncation=True' to have batched tensors with the same length."
            )
        arrays = {k: np.asarray(v, dtype=np.int64) for k, v in out.items()}
        if return_tensors == "pt":
            import torch

            return BatchEncoding({k: torch.from_numpy(v) for k, v in arrays.items()})
        return BatchEncoding(arrays)

    def _strategies(
        self, padding: bool | str, truncation: bool | str | None, max_length: int | None
    ) -> tuple[str, int | None]:
        """(padding mode, truncation length or None) as transformers'
        `_get_padding_truncation_strategies` decides them."""
        if padding is True or padding == "longest":
            pad = "longest"
        elif padding is False or padding == "do_not_pad":
            pad = "none"
        elif padding == "max_length":
            pad = "max_length"
        else:
            raise ValueError(f"padding must be True, False, 'longest', 'max_length' or 'do_not_pad', got {padding!r}")
        if truncation is None and max_length is not None and pad == "none":
            truncation = True  # transformers' legacy default, with a warning there
        if truncation is True or truncation == "longest_first":
            return pad, max_length if max_length is not None else self.model_max_length
        if truncation in (None, False, "do_not_truncate"):
            return pad, None
        raise ValueError(
            f"truncation={truncation!r} is not supported (True, 'longest_first', False, "
            f"'do_not_truncate')"
        )

    # -- ids to text --------------------------------------------------------------------------

    def decode(
        self,
        token_ids: Any,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
        **kwargs: Any,
    ) -> str:
        """The text of `token_ids` (`clean_up_tokenization_spaces` as tokenizer_config.json says)."""
        if isinstance(token_ids, (int, np.integer)):
            token_ids = [int(token_ids)]
        return self._tok.decode(_ids_list(token_ids), skip_special_tokens)

    def batch_decode(self, sequences: Any, skip_special_tokens: bool = False, **kwargs: Any) -> list[str]:
        return [self.decode(s, skip_special_tokens=skip_special_tokens) for s in sequences]

    def __repr__(self) -> str:
        return (
            f"BertTokenizer(name_or_path={self.name_or_path!r}, vocab_size={self.vocab_size}, "
            f"model_max_length={self.model_max_length})"
        )


def _ids_list(ids: Any) -> list[int]:
    if is_torch(ids):
        ids = ids.detach().cpu().numpy()
    a = np.asarray(ids)
    if a.ndim != 1:
        raise ValueError(f"expected one sequence of ids, got shape {a.shape}")
    return [int(i) for i in a.tolist()]


BertTokenizerFast = BertTokenizer
AutoTokenizer = BertTokenizer
# One class reads every family's tokenizer files (tokenizer.json, or vocab.txt for WordPiece).
RobertaTokenizer = RobertaTokenizerFast = BertTokenizer
XLMRobertaTokenizer = XLMRobertaTokenizerFast = BertTokenizer
DistilBertTokenizer = DistilBertTokenizerFast = BertTokenizer
ElectraTokenizer = ElectraTokenizerFast = BertTokenizer
