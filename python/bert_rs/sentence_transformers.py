"""sentence-transformers' `SentenceTransformer` and `CrossEncoder` on the engine: the same
embeddings (modules.json, the Pooling config, Normalize, max_seq_length) and the same scores."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from . import _native
from .modeling_bert import _dtype_name
from .tokenization_bert import BertTokenizer


def _progress(total: int, show: bool | None) -> Any:
    """A tqdm bar when asked for and tqdm is installed, else None."""
    if not show:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc="Batches", unit="batch")


def _normalize(emb: np.ndarray) -> None:
    """L2-normalizes the rows of `emb` in place (sentence-transformers' `normalize_embeddings`)."""
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    np.divide(emb, np.maximum(norms, 1e-12), out=emb)


class SentenceTransformer:
    """`SentenceTransformer(directory or hub id)`; `encode(sentences)` -> (N, dim) float32."""

    def __init__(
        self,
        model_name_or_path: str,
        device: str | None = None,
        dtype: Any = "float32",
        num_threads: int | None = None,
        **kwargs: Any,
    ) -> None:
        self._st = _native.Embedder(
            str(model_name_or_path), dtype=_dtype_name(dtype), num_threads=num_threads
        )
        self.max_seq_length: int = self._st.max_seq_length
        self._tokenizer: BertTokenizer | None = None
        #: inputs longer than max_seq_length in the last `encode` call (they were truncated)
        self.last_truncated: int = 0

    @property
    def tokenizer(self) -> BertTokenizer:
        if self._tokenizer is None:
            self._tokenizer = BertTokenizer.from_pretrained(self._st.directory)
        return self._tokenizer

    @property
    def num_threads(self) -> int:
        return self._st.num_threads

    @property
    def device(self) -> str:
        return "cpu"

    def get_sentence_embedding_dimension(self) -> int:
        return self._st.dimension

    def get_max_seq_length(self) -> int:
        return self.max_seq_length

    def encode(
        self,
        sentences: str | Sequence[str],
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        output_value: str = "sentence_embedding",
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        normalize_embeddings: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Embeds `sentences` as sentence-transformers does: (N, dim) float32, one row per input in
        order (a single str gives (dim,)). The GIL is released while the engine runs, and Ctrl-C
        interrupts between batches."""
        if output_value != "sentence_embedding":
            raise ValueError("only output_value='sentence_embedding' is supported")
        for k in ("prompt", "prompt_name"):
            if kwargs.pop(k, None) is not None:
                raise ValueError(f"{k} is not supported")
        kwargs.pop("device", None)
        if kwargs.pop("precision", "float32") != "float32":
            raise ValueError("only precision='float32' is supported (load with dtype= instead)")
        if kwargs:
            raise TypeError(f"unexpected argument(s): {', '.join(sorted(kwargs))}")
        single = isinstance(sentences, str)
        texts = [sentences] if single else list(sentences)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"sentences[{i}] is {type(t).__name__}, not str")
        emb, truncated = self._encode(texts, batch_size, show_progress_bar)
        self.last_truncated = int(truncated.sum())
        if normalize_embeddings and not self._st.normalizes:
            _normalize(emb)
        if single:
            emb = emb[0]
        if convert_to_tensor:
            import torch

            return torch.from_numpy(emb)
        if not convert_to_numpy:
            try:
                import torch
            except ImportError:
                return list(emb)
            return list(torch.from_numpy(emb)) if not single else torch.from_numpy(emb)
        return emb

    def _encode(
        self, texts: list[str], batch_size: int, show_progress_bar: bool | None
    ) -> tuple[np.ndarray, np.ndarray]:
        bar = _progress(-(-len(texts) // max(batch_size, 1)), show_progress_bar)
        max_length = None if self.max_seq_length == self._st.max_seq_length else self.max_seq_length
        if bar is None:
            return self._st.encode(texts, batch_size=batch_size, max_length=max_length)
        # With a progress bar: 16 batches per engine call.
        parts, flags = [], []
        step = batch_size * 16
        for start in range(0, len(texts), step):
            e, t = self._st.encode(texts[start : start + step], batch_size=batch_size, max_length=max_length)
            parts.append(e)
            flags.append(t)
            bar.update(-(-len(t) // batch_size))
        bar.close()
        if not parts:
            return np.zeros((0, self._st.dimension), np.float32), np.zeros(0, bool)
        return np.concatenate(parts), np.concatenate(flags)

    def similarity(self, a: Any, b: Any) -> np.ndarray:
        """Cosine similarity of every row of `a` with every row of `b`."""
        a = np.atleast_2d(np.asarray(a, dtype=np.float32))
        b = np.atleast_2d(np.asarray(b, dtype=np.float32))
        a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
        return a @ b.T

    def __repr__(self) -> str:
        return (
            f"SentenceTransformer({self._st.directory!r}, dim={self._st.dimension}, "
            f"max_seq_length={self.max_seq_length}, normalize={self._st.normalizes})"
        )


class CrossEncoder:
    """sentence-transformers' `CrossEncoder` for a one-label classifier: `predict(pairs)` gives
    sigmoid(logit) per (query, passage) pair."""

    def __init__(
        self,
        model_name_or_path: str,
        max_length: int | None = None,
        device: str | None = None,
        dtype: Any = "float32",
        num_threads: int | None = None,
        **kwargs: Any,
    ) -> None:
        self._ce = _native.Reranker(
            str(model_name_or_path),
            dtype=_dtype_name(dtype),
            num_threads=num_threads,
            max_length=max_length,
        )

    def predict(
        self,
        sentences: Sequence[str] | Sequence[Sequence[str]],
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        **kwargs: Any,
    ) -> Any:
        single = len(sentences) == 2 and all(isinstance(s, str) for s in sentences)
        pairs = [tuple(sentences)] if single else [tuple(p) for p in sentences]
        for i, p in enumerate(pairs):
            if len(p) != 2 or not all(isinstance(s, str) for s in p):
                raise ValueError(f"sentences[{i}] must be a (query, passage) pair of str")
        scores = self._ce.predict(pairs, batch_size=batch_size)
        if convert_to_tensor:
            import torch

            scores = torch.from_numpy(scores)
        return scores[0] if single else scores

    def rank(
        self,
        query: str,
        documents: Sequence[str],
        top_k: int | None = None,
        return_documents: bool = False,
        batch_size: int = 32,
        **kwargs: Any,
    ) -> list[dict[str, Any]]:
        """The documents by score, best first: `{"corpus_id", "score"(, "text")}`."""
        scores = self.predict([(query, d) for d in documents], batch_size=batch_size)
        order = sorted(range(len(documents)), key=lambda i: -float(scores[i]))
        out = []
        for i in order[:top_k]:
            r: dict[str, Any] = {"corpus_id": i, "score": scores[i]}
            if return_documents:
                r["text"] = documents[i]
            out.append(r)
        return out
