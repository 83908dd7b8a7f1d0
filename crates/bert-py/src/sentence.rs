//! sentence-transformers' `SentenceTransformer.encode` and `CrossEncoder.predict` over the engine's
//! `SentenceEmbeddings` and `CrossEncoder`.
//!
//! `encode` runs as `bert embed` does: one thread tokenizes the next batch while the model's pool
//! runs the current one, and between batches the calling thread takes the GIL for a moment to
//! check for Ctrl-C (KeyboardInterrupt), so a long call can be interrupted.

use std::sync::mpsc::sync_channel;

use bert::ndarray::{s, Array2};
use bert::{BertForSequenceClassification, BertTokenizer, SentenceEmbeddings};
use numpy::{IntoPyArray, PyArray1, PyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::errors::{check_memory, guarded, IntoPy};
use crate::model::load_on_pool;
use crate::pool::Pool;

/// Embeddings (N, dim) and, per text, whether it was truncated.
type Encoded<'py> = (Bound<'py, PyArray2<f32>>, Bound<'py, PyArray1<bool>>);

#[pyclass(module = "bert_rs._native", frozen)]
pub struct Embedder {
    st: SentenceEmbeddings,
    pool: Pool,
    dir: String,
}

/// Raises a pending KeyboardInterrupt (or whatever a signal handler raised), from a thread that
/// released the GIL. Signals are only seen by the main thread; elsewhere this is free.
fn check_signals() -> PyResult<()> {
    Python::attach(|py| py.check_signals())
}

#[pymethods]
impl Embedder {
    #[new]
    #[pyo3(signature = (model, dtype="float32", num_threads=None))]
    fn new(
        py: Python<'_>,
        model: String,
        dtype: &str,
        num_threads: Option<usize>,
    ) -> PyResult<Self> {
        let (st, pool, dir) = load_on_pool(py, &model, dtype, num_threads, |dir, opts| {
            SentenceEmbeddings::from_dir_with(dir, opts)
        })?;
        Ok(Embedder { st, pool, dir })
    }

    #[getter]
    fn directory(&self) -> String {
        self.dir.clone()
    }

    /// Length of one embedding.
    #[getter]
    fn dimension(&self) -> usize {
        self.st.dimension()
    }

    /// Tokens per text at most (`max_seq_length`).
    #[getter]
    fn max_seq_length(&self) -> usize {
        self.st.max_seq_length()
    }

    /// Whether the model ends in a `Normalize` module.
    #[getter]
    fn normalizes(&self) -> bool {
        self.st.normalizes()
    }

    #[getter]
    fn num_threads(&self) -> usize {
        self.pool.threads()
    }

    /// Set when the directory is not a sentence-transformers model and defaults were used.
    #[getter]
    fn notice(&self) -> Option<String> {
        self.st.notice().map(str::to_string)
    }

    /// Embeds `texts` in batches of `batch_size`, truncating each to `max_length` tokens
    /// (default `max_seq_length`). Returns (len(texts), dim) float32 and, per text, whether it was
    /// truncated.
    #[pyo3(signature = (texts, batch_size=32, max_length=None))]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<String>,
        batch_size: usize,
        max_length: Option<usize>,
    ) -> PyResult<Encoded<'py>> {
        if batch_size == 0 {
            return Err(PyValueError::new_err("batch_size must be at least 1"));
        }
        let dim = self.st.dimension();
        check_memory((texts.len() * dim * 4) as u64, "the embeddings")?;
        // The model's tokenizer as is; a copy (its vocabulary with it) only for another length.
        let other_length;
        let tok = match max_length {
            Some(0) => return Err(PyValueError::new_err("max_length must be at least 1")),
            Some(n) if n != self.st.max_seq_length() => {
                other_length = self.st.tokenizer().clone().with_max_length(n);
                &other_length
            }
            _ => self.st.tokenizer(),
        };
        let (emb, truncated) =
            py.detach(|| guarded("encode", || self.encode_pipelined(tok, &texts, batch_size)))?;
        Ok((emb.into_pyarray(py), truncated.into_pyarray(py)))
    }
}

impl Embedder {
    fn encode_pipelined(
        &self,
        tok: &BertTokenizer,
        texts: &[String],
        batch_size: usize,
    ) -> PyResult<(Array2<f32>, Vec<bool>)> {
        let mut out = Array2::<f32>::zeros((texts.len(), self.st.dimension()));
        let mut truncated = Vec::with_capacity(texts.len());
        let lowercase = self.st.lowercases();
        std::thread::scope(|scope| {
            let (tx, rx) = sync_channel(1);
            scope.spawn(move || {
                for chunk in texts.chunks(batch_size) {
                    // Text by text on this thread, as `bert embed`'s reader does: the cores belong
                    // to the forward pass.
                    let batch: bert::Result<Vec<bert::Encoding>> = chunk
                        .iter()
                        .map(|t| {
                            if lowercase {
                                tok.tokenize(&t.to_lowercase())
                            } else {
                                tok.tokenize(t)
                            }
                        })
                        .collect();
                    if tx.send(batch).is_err() {
                        return; // the consumer stopped (an error or Ctrl-C)
                    }
                }
            });
            let mut start = 0;
            for batch in rx {
                let encodings = batch.py()?;
                let inputs = tok.pad(&encodings).py()?;
                let emb = self.pool.install(|| self.st.embed(&inputs))?.py()?;
                let n = encodings.len();
                out.slice_mut(s![start..start + n, ..]).assign(&emb);
                truncated.extend(encodings.iter().map(|e| e.truncated));
                start += n;
                check_signals()?;
            }
            Ok::<_, PyErr>(())
        })?;
        Ok((out, truncated))
    }
}

#[pyclass(module = "bert_rs._native", frozen)]
pub struct Reranker {
    ce: bert::CrossEncoder,
    pool: Pool,
}

#[pymethods]
impl Reranker {
    #[new]
    #[pyo3(signature = (model, dtype="float32", num_threads=None, max_length=None))]
    fn new(
        py: Python<'_>,
        model: String,
        dtype: &str,
        num_threads: Option<usize>,
        max_length: Option<usize>,
    ) -> PyResult<Self> {
        let (ce, pool, _) = load_on_pool(py, &model, dtype, num_threads, |dir, opts| {
            let clf = BertForSequenceClassification::from_pretrained_with(dir, opts)?;
            let mut tok = BertTokenizer::from_dir(dir)?;
            if let Some(n) = max_length {
                tok = tok.with_max_length(n);
            }
            bert::CrossEncoder::new(clf, tok)
        })?;
        Ok(Reranker { ce, pool })
    }

    /// `sigmoid(logit)` of each (query, passage) pair, in batches of `batch_size`.
    #[pyo3(signature = (pairs, batch_size=32))]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        pairs: Vec<(String, String)>,
        batch_size: usize,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        if batch_size == 0 {
            return Err(PyValueError::new_err("batch_size must be at least 1"));
        }
        let scores = py.detach(|| {
            guarded("predict", || {
                let mut scores = Vec::with_capacity(pairs.len());
                for chunk in pairs.chunks(batch_size) {
                    let refs: Vec<(&str, &str)> = chunk
                        .iter()
                        .map(|(a, b)| (a.as_str(), b.as_str()))
                        .collect();
                    // Tokenization runs in parallel: on the model's pool too, never rayon's global one.
                    let batch = self.pool.install(|| {
                        self.ce
                            .score_encodings(&self.ce.tokenizer().tokenize_pairs(&refs)?)
                    })?;
                    scores.extend(batch.py()?);
                    check_signals()?;
                }
                Ok(scores)
            })
        })?;
        Ok(scores.into_pyarray(py))
    }
}
