"""transformers' `QuestionAnsweringPipeline` ("question-answering")."""

from __future__ import annotations

from typing import Any

from .base import Pipeline


class QuestionAnsweringPipeline(Pipeline):
    _params = ("top_k", "max_seq_len", "doc_stride", "max_answer_len", "handle_impossible_answer")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """`qa(question=..., context=...)`, `qa({"question", "context"})` or a list of such dicts
        (or question and context lists). Each example gives its best `{"score", "start", "end",
        "answer"}`, or a list of `top_k` of them."""
        question = kwargs.pop("question", None)
        context = kwargs.pop("context", None)
        opts = self._options(kwargs)
        if question is not None or context is not None:
            if args:
                raise ValueError("pass either question= and context=, or examples")
            if isinstance(question, str) and isinstance(context, str):
                examples, batched = [(question, context)], False
            elif isinstance(question, (list, tuple)) and isinstance(context, (list, tuple)):
                if len(question) != len(context):
                    raise ValueError("question and context lists differ in length")
                examples, batched = list(zip(question, context)), True
            elif isinstance(question, (list, tuple)) and isinstance(context, str):
                examples, batched = [(q, context) for q in question], True
            else:
                raise ValueError("question and context must be str (or lists of str)")
        elif len(args) == 1:
            x = args[0]
            batched = isinstance(x, (list, tuple)) and len(x) != 1
            items = list(x) if isinstance(x, (list, tuple)) else [x]
            examples = [_example(e) for e in items]
        else:
            raise ValueError("question-answering needs question= and context=")
        out = self._native.question_answering(
            examples,
            top_k=opts.get("top_k", 1),
            max_seq_len=opts.get("max_seq_len"),
            doc_stride=opts.get("doc_stride"),
            max_answer_len=opts.get("max_answer_len", 15),
            handle_impossible_answer=opts.get("handle_impossible_answer", False),
        )
        shaped = [a[0] if len(a) == 1 else a for a in out]
        return shaped if batched else shaped[0]


def _example(e: Any) -> tuple[str, str]:
    if isinstance(e, dict) and "question" in e and "context" in e:
        return (e["question"], e["context"])
    raise ValueError("an example must be a dict with 'question' and 'context'")
