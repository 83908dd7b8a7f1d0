"""`pipeline(task, model=...)`: transformers' pipelines on the engine, one file per pipeline,
returning transformers' dicts and lists."""

from __future__ import annotations

from typing import Any

from .base import Pipeline
from .feature_extraction import FeatureExtractionPipeline
from .fill_mask import FillMaskPipeline
from .question_answering import QuestionAnsweringPipeline
from .text_classification import TextClassificationPipeline
from .token_classification import TokenClassificationPipeline

SUPPORTED_TASKS: dict[str, type[Pipeline]] = {
    "text-classification": TextClassificationPipeline,
    "sentiment-analysis": TextClassificationPipeline,
    "token-classification": TokenClassificationPipeline,
    "ner": TokenClassificationPipeline,
    "question-answering": QuestionAnsweringPipeline,
    "fill-mask": FillMaskPipeline,
    "feature-extraction": FeatureExtractionPipeline,
}


def pipeline(
    task: str,
    model: Any = None,
    tokenizer: Any = None,
    dtype: Any = "float32",
    num_threads: int | None = None,
    device: Any = None,
    **kwargs: Any,
) -> Pipeline:
    """transformers' `pipeline(task, model=...)`. `model` is a directory, a hub id or a model this
    package loaded; other keyword arguments are the pipeline's call defaults (`top_k=`,
    `aggregation_strategy=`, ...)."""
    if task not in SUPPORTED_TASKS:
        raise KeyError(f"Unknown task {task}, available tasks are {sorted(SUPPORTED_TASKS)}")
    if model is None:
        raise ValueError(
            "pass model= (a directory or hub id): this package has no default model per task"
        )
    name = getattr(model, "name_or_path", model)
    cls = SUPPORTED_TASKS[task]
    return cls(str(name), task=task, dtype=dtype, num_threads=num_threads, **kwargs)


__all__ = [
    "FeatureExtractionPipeline",
    "FillMaskPipeline",
    "Pipeline",
    "QuestionAnsweringPipeline",
    "SUPPORTED_TASKS",
    "TextClassificationPipeline",
    "TokenClassificationPipeline",
    "pipeline",
]
