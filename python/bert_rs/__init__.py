"""bert_rs: BERT in Rust with transformers' and sentence-transformers' Python names.

    from bert_rs import BertTokenizer, BertModel
    tokenizer = BertTokenizer.from_pretrained("sentence-transformers/all-MiniLM-L6-v2")
    model = BertModel.from_pretrained("sentence-transformers/all-MiniLM-L6-v2")
    outputs = model(**tokenizer(["Hello, my dog is cute"], return_tensors="np"))

See docs/python.md.
"""

from ._native import __version__, default_num_threads
from .configuration_bert import BertConfig
from .modeling_bert import (
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForMultipleChoice,
    AutoModelForNextSentencePrediction,
    AutoModelForPreTraining,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    BertForMaskedLM,
    BertForMultipleChoice,
    BertForNextSentencePrediction,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    BertPreTrainedModel,
)
from .modeling_outputs import ModelOutput
from .pipelines import pipeline
from .sentence_transformers import CrossEncoder, SentenceTransformer
from .training import evaluate, train
from .tokenization_bert import AutoTokenizer, BatchEncoding, BertTokenizer, BertTokenizerFast

__all__ = [
    "AutoModel",
    "AutoModelForMaskedLM",
    "AutoModelForMultipleChoice",
    "AutoModelForNextSentencePrediction",
    "AutoModelForPreTraining",
    "AutoModelForQuestionAnswering",
    "AutoModelForSequenceClassification",
    "AutoModelForTokenClassification",
    "AutoTokenizer",
    "BatchEncoding",
    "BertConfig",
    "BertForMaskedLM",
    "BertForMultipleChoice",
    "BertForNextSentencePrediction",
    "BertForPreTraining",
    "BertForQuestionAnswering",
    "BertForSequenceClassification",
    "BertForTokenClassification",
    "BertModel",
    "BertPreTrainedModel",
    "BertTokenizer",
    "BertTokenizerFast",
    "CrossEncoder",
    "ModelOutput",
    "SentenceTransformer",
    "__version__",
    "default_num_threads",
    "evaluate",
    "pipeline",
    "train",
]
