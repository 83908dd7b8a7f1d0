"""Batch inference on a Ray cluster: `Dataset.map_batches` with this package's engine.

    import ray, bert_rs.ray
    ds = ray.data.read_parquet("corpus/")                      # a "text" column (and ids)
    ds = bert_rs.ray.embed_dataset(ds, column="text", model="sentence-transformers/all-MiniLM-L6-v2",
                                   concurrency=2, num_cpus_per_worker=1)
    ds.write_parquet("embedded/")                              # + "embedding", "truncated", "error"

Each worker (a Ray actor) loads the model once and sizes its thread pool from the CPUs Ray gave
it. Every input row comes out once, with all its columns, in a batch with three columns added:

- `embedding` (or the name given): float32 (dim,) per row (`TextClassifier`: `label` and
  `score`; `EntityTagger`: `entities`, the NER pipeline's list per row);
- `truncated`: whether the text was longer than the model's max_seq_length and was cut, as
  `bert embed` counts it;
- `error`: null, or why the row could not be embedded (a null text, bytes that are not UTF-8);
  such a row's embedding is NaN. An empty string is embedded, as `bert embed` does.

A block goes to one worker: a corpus in one parquet file is one block, so give several files or
`ds.repartition(n)` first. On a cluster whose CPUs would all go to the workers, pass
`concurrency=(1, n)`: Ray 2.60 lists a read's files in a task that needs a CPU of its own, and a
full pool started first leaves it none (the job then waits forever).

A worker that dies is restarted by Ray Data and its batch retried (actors default to unlimited
restarts and task retries there), so no row is lost or written twice.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import default_num_threads
from .sentence_transformers import SentenceTransformer, _normalize


def _worker_threads() -> int:
    """The CPUs Ray assigned to this worker (else the environment's default)."""
    try:
        import ray

        if ray.is_initialized():
            cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
            if cpus:
                return max(1, int(cpus))
    except Exception:  # noqa: BLE001 - outside a Ray worker: fall back to the environment
        pass
    return default_num_threads()


def _decode(values: list[Any]) -> tuple[list[str], list[str | None]]:
    """Texts (bad rows as "") and per row an error message or None, as `bert embed` words it."""
    texts: list[str] = []
    errors: list[str | None] = []
    for v in values:
        if isinstance(v, str):
            texts.append(v)
            errors.append(None)
        elif isinstance(v, (bytes, bytearray, memoryview)):
            b = bytes(v)
            try:
                texts.append(b.decode("utf-8"))
                errors.append(None)
            except UnicodeDecodeError as e:
                texts.append("")
                errors.append(f"not valid UTF-8 (at byte {e.start} of the text)")
        elif v is None:
            texts.append("")
            errors.append("the text is null")
        else:
            texts.append("")
            errors.append(f"the text is a {type(v).__name__}, not a string")
    return texts, errors


def _column_values(batch: Any, column: str) -> list[Any]:
    """The raw values of `column`, without decoding strings (so bad UTF-8 reaches `_decode`)."""
    try:
        import pyarrow as pa
    except ImportError:  # pragma: no cover - ray[data] brings pyarrow
        pa = None
    if pa is not None and isinstance(batch, pa.Table):
        if column not in batch.column_names:
            raise KeyError(f"the batch has no column {column!r} (it has {batch.column_names})")
        col = batch.column(column)
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            # Arrow does not check parquet strings for UTF-8; read them as bytes and check here.
            col = col.cast(pa.large_binary() if pa.types.is_large_string(col.type) else pa.binary())
        return col.to_pylist()
    if column not in batch:
        raise KeyError(f"the batch has no column {column!r} (it has {list(batch.keys())})")
    return list(batch[column])


class SentenceEmbedder:
    """A callable class for `Dataset.map_batches` (batch_format "pyarrow", "numpy" or "pandas"):
    adds `output_column` (the embedding), `truncated` and `error` to each batch."""

    def __init__(
        self,
        model: str,
        column: str = "text",
        output_column: str = "embedding",
        batch_size: int = 32,
        dtype: str = "float32",
        num_threads: int | None = None,
        normalize_embeddings: bool = False,
        max_seq_length: int | None = None,
    ) -> None:
        self.column = column
        self.output_column = output_column
        self.batch_size = batch_size
        self.normalize = normalize_embeddings
        self.model = SentenceTransformer(
            model, dtype=dtype, num_threads=num_threads or _worker_threads()
        )
        if max_seq_length is not None:
            self.model.max_seq_length = max_seq_length

    def __call__(self, batch: Any) -> Any:
        texts, errors = _decode(_column_values(batch, self.column))
        emb, truncated = self.model._encode(texts, self.batch_size, show_progress_bar=False)
        if self.normalize and not self.model._st.normalizes:
            _normalize(emb)
        bad = np.array([e is not None for e in errors], dtype=bool)
        if bad.any():
            emb[bad] = np.nan
            truncated[bad] = False
        return _add_columns(
            batch, {self.output_column: emb, "truncated": truncated, "error": errors}
        )


class _PipelineUDF:
    """What the pipeline UDFs share: the worker's pipeline, the column, good rows apart from bad."""

    task = ""

    def __init__(
        self,
        model: str,
        column: str = "text",
        dtype: str = "float32",
        num_threads: int | None = None,
        **options: Any,
    ) -> None:
        from .pipelines import pipeline

        self.column = column
        self.pipe = pipeline(
            self.task, model=model, dtype=dtype, num_threads=num_threads or _worker_threads()
        )
        self.options = options

    def _run(self, batch: Any) -> tuple[list[Any], list[str | None]]:
        """The pipeline's result for each row (None for a bad row) and the rows' errors."""
        texts, errors = _decode(_column_values(batch, self.column))
        good = [i for i, e in enumerate(errors) if e is None]
        results: list[Any] = [None] * len(texts)
        if good:
            for i, r in zip(good, self._call([texts[i] for i in good])):
                results[i] = r
        return results, errors

    def _call(self, texts: list[str]) -> list[Any]:
        raise NotImplementedError


class TextClassifier(_PipelineUDF):
    """A callable class for `Dataset.map_batches`: the text-classification pipeline's best label
    of each row as columns `label` and `score` (NaN for a bad row), and `error`. Options:
    `function_to_apply`, `batch_size`."""

    task = "text-classification"

    def _call(self, texts: list[str]) -> list[Any]:
        out = self.pipe._native.text_classification(
            [(t, None) for t in texts], top_k=1, **self.options
        )
        return [r[0] for r in out]

    def __call__(self, batch: Any) -> Any:
        results, errors = self._run(batch)
        labels = [r["label"] if r else None for r in results]
        scores = np.array([r["score"] if r else np.nan for r in results], dtype=np.float32)
        return _add_columns(batch, {"label": labels, "score": scores, "error": errors})


class EntityTagger(_PipelineUDF):
    """A callable class for `Dataset.map_batches`: the token-classification pipeline's entities
    of each row as column `entities` (a list of `{entity_group | entity, score, word, start,
    end}`; null for a bad row), and `error`. Options: `aggregation_strategy` ("simple" here),
    `ignore_labels`, `stride`."""

    task = "token-classification"

    def _call(self, texts: list[str]) -> list[Any]:
        opts = {"aggregation_strategy": "simple", **self.options}
        return self.pipe._native.token_classification(texts, **opts)

    def __call__(self, batch: Any) -> Any:
        results, errors = self._run(batch)
        return _add_columns(batch, {"entities": results, "error": errors})


_STRING_COLUMNS = ("error", "label")


def _add_columns(batch: Any, columns: dict[str, Any]) -> Any:
    """`batch` with `columns` added, in the batch's own format."""
    import pyarrow as pa

    if isinstance(batch, pa.Table):
        for name, values in columns.items():
            if isinstance(values, np.ndarray) and values.ndim == 2:
                arr = pa.FixedSizeListArray.from_arrays(
                    pa.array(values.reshape(-1), type=pa.float32()), values.shape[1]
                )
            elif isinstance(values, np.ndarray):
                arr = pa.array(values)
            elif name in _STRING_COLUMNS:
                arr = pa.array(values, type=pa.string())
            else:
                arr = pa.array(values)
            if name in batch.column_names:
                batch = batch.drop_columns([name])
            batch = batch.append_column(name, arr)
        return batch
    out = batch.copy() if hasattr(batch, "copy") else dict(batch)
    for name, values in columns.items():
        if isinstance(values, np.ndarray) and values.ndim == 2 and _is_pandas(out):
            out[name] = list(values)
        else:
            out[name] = values if isinstance(values, np.ndarray) else np.array(values, dtype=object)
    return out


def _is_pandas(x: Any) -> bool:
    return type(x).__module__.startswith("pandas")


def embed_dataset(
    ds: Any,
    column: str = "text",
    model: str = "sentence-transformers/all-MiniLM-L6-v2",
    concurrency: int | tuple[int, int] = 1,
    num_cpus_per_worker: float = 1,
    batch_size: int = 256,
    **options: Any,
) -> Any:
    """`ds` with an embedding column added (see the module's text): `concurrency` workers (or a
    `(min, max)` autoscaling range, as Ray Data takes it) of `num_cpus_per_worker` CPUs each, each running `batch_size` rows per call (`options` go to
    `SentenceEmbedder`: output_column, dtype, normalize_embeddings, max_seq_length, and
    batch_size of the forward passes as `encode_batch_size`)."""
    kwargs = dict(options)
    if "encode_batch_size" in kwargs:
        kwargs["batch_size"] = kwargs.pop("encode_batch_size")
    kwargs.setdefault("num_threads", max(1, int(num_cpus_per_worker)))
    return ds.map_batches(
        SentenceEmbedder,
        fn_constructor_kwargs={"model": model, "column": column, **kwargs},
        batch_format="pyarrow",
        batch_size=batch_size,
        concurrency=concurrency,
        num_cpus=num_cpus_per_worker,
    )
