//! `Pipeline`: the engine's transformers pipelines; results as transformers' dicts and lists
//! (python/bert_rs/pipelines/ shapes them as transformers' `__call__` does).

use bert::pipelines::{
    AggregationStrategy, ClassificationFunction, FillMask, FillMaskOptions, QuestionAnswering,
    QuestionAnsweringOptions, TextClassification, TextClassificationOptions, TokenClassification,
    TokenClassificationOptions,
};
use bert::{
    BertForMaskedLM, BertForQuestionAnswering, BertForSequenceClassification,
    BertForTokenClassification, BertTokenizer, LoadOptions,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pythonize::pythonize;
use serde::Serialize;

use crate::errors::{guarded, IntoPy};
use crate::model::load_on_pool;
use crate::pool::Pool;

// A pipeline is loaded once and matched on, never moved in bulk (as bert's AutoModel).
#[allow(clippy::large_enum_variant)]
enum Task {
    TextClassification(TextClassification),
    TokenClassification(TokenClassification),
    QuestionAnswering(QuestionAnswering),
    FillMask(FillMask),
}

/// The task names `Pipeline` accepts, with transformers' aliases.
const TASKS: &str = "text-classification (sentiment-analysis), token-classification (ner), \
                     question-answering, fill-mask";

#[pyclass(module = "bert_rs._native", frozen)]
pub struct Pipeline {
    task: Task,
    pool: Pool,
}

fn load(task: &str, path: &str, opts: &LoadOptions) -> bert::Result<Task> {
    let tokenizer = || BertTokenizer::from_pretrained(path);
    Ok(match task {
        "text-classification" | "sentiment-analysis" => {
            Task::TextClassification(TextClassification {
                model: BertForSequenceClassification::from_pretrained_with(path, opts)?,
                tokenizer: tokenizer()?,
            })
        }
        "token-classification" | "ner" => Task::TokenClassification(TokenClassification {
            model: BertForTokenClassification::from_pretrained_with(path, opts)?,
            tokenizer: tokenizer()?,
        }),
        "question-answering" => Task::QuestionAnswering(QuestionAnswering {
            model: BertForQuestionAnswering::from_pretrained_with(path, opts)?,
            tokenizer: tokenizer()?,
        }),
        "fill-mask" => Task::FillMask(FillMask {
            model: BertForMaskedLM::from_pretrained_with(path, opts)?,
            tokenizer: tokenizer()?,
        }),
        other => {
            return Err(bert::Error::Input(format!(
                "unknown task `{other}`; this package runs {TASKS}"
            )))
        }
    })
}

fn wrong_task(method: &str) -> PyErr {
    PyValueError::new_err(format!("{method} is not this pipeline's task"))
}

#[pymethods]
impl Pipeline {
    #[new]
    #[pyo3(signature = (task, model, dtype="float32", num_threads=None))]
    fn new(
        py: Python<'_>,
        task: String,
        model: String,
        dtype: &str,
        num_threads: Option<usize>,
    ) -> PyResult<Self> {
        let (task, pool, _) = load_on_pool(py, &model, dtype, num_threads, |dir, opts| {
            load(&task, dir, opts)
        })?;
        Ok(Pipeline { task, pool })
    }

    /// For each (text, text_pair or None): its labels with scores, best first, at most `top_k`
    /// (None: all).
    #[pyo3(signature = (inputs, top_k=Some(1), function_to_apply=None, batch_size=32))]
    fn text_classification<'py>(
        &self,
        py: Python<'py>,
        inputs: Vec<(String, Option<String>)>,
        top_k: Option<usize>,
        function_to_apply: Option<String>,
        batch_size: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let Task::TextClassification(p) = &self.task else {
            return Err(wrong_task("text_classification"));
        };
        let function_to_apply = function_to_apply
            .map(|f| f.parse::<ClassificationFunction>())
            .transpose()
            .map_err(PyValueError::new_err)?;
        let opts = TextClassificationOptions {
            function_to_apply,
            top_k,
            batch_size: batch_size.max(1),
        };
        let refs: Vec<(&str, Option<&str>)> = inputs
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_deref()))
            .collect();
        self.run(py, || p.classify(&refs, &opts))
    }

    /// The entities of each text.
    #[pyo3(signature = (texts, aggregation_strategy="none", ignore_labels=None, stride=None))]
    fn token_classification<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<String>,
        aggregation_strategy: &str,
        ignore_labels: Option<Vec<String>>,
        stride: Option<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let Task::TokenClassification(p) = &self.task else {
            return Err(wrong_task("token_classification"));
        };
        let mut opts = TokenClassificationOptions {
            aggregation_strategy: aggregation_strategy
                .parse::<AggregationStrategy>()
                .map_err(PyValueError::new_err)?,
            stride,
            ..Default::default()
        };
        if let Some(l) = ignore_labels {
            opts.ignore_labels = l;
        }
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        self.run(py, || p.entities_batch(&refs, &opts))
    }

    /// The answers of each (question, context), best first.
    #[pyo3(signature = (pairs, top_k=1, max_seq_len=None, doc_stride=None, max_answer_len=15,
                        handle_impossible_answer=false))]
    #[allow(clippy::too_many_arguments)]
    fn question_answering<'py>(
        &self,
        py: Python<'py>,
        pairs: Vec<(String, String)>,
        top_k: usize,
        max_seq_len: Option<usize>,
        doc_stride: Option<usize>,
        max_answer_len: usize,
        handle_impossible_answer: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let Task::QuestionAnswering(p) = &self.task else {
            return Err(wrong_task("question_answering"));
        };
        let opts = QuestionAnsweringOptions {
            top_k,
            max_seq_len,
            doc_stride,
            max_answer_len,
            handle_impossible_answer,
        };
        let refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(q, c)| (q.as_str(), c.as_str()))
            .collect();
        self.run(py, || p.answer_batch(&refs, &opts))
    }

    /// For each text, for each mask: the `top_k` best tokens.
    #[pyo3(signature = (texts, top_k=5, targets=None))]
    fn fill_mask<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<String>,
        top_k: usize,
        targets: Option<Vec<String>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let Task::FillMask(p) = &self.task else {
            return Err(wrong_task("fill_mask"));
        };
        let opts = FillMaskOptions { top_k, targets };
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        self.run(py, || p.fill_batch(&refs, &opts))
    }

    /// The mask token of the fill-mask tokenizer.
    #[getter]
    fn mask_token(&self) -> Option<String> {
        match &self.task {
            Task::FillMask(p) => Some(p.tokenizer.mask_token().to_string()),
            _ => None,
        }
    }
}

impl Pipeline {
    /// Runs `f` on the pool with the GIL released; its result as Python lists and dicts.
    fn run<'py, T: Serialize + Send>(
        &self,
        py: Python<'py>,
        f: impl FnOnce() -> bert::Result<T> + Send,
    ) -> PyResult<Bound<'py, PyAny>> {
        let out = py.detach(|| guarded("the pipeline", || self.pool.install(f)?.py()))?;
        pythonize(py, &out).map_err(|e| PyValueError::new_err(e.to_string()))
    }
}
