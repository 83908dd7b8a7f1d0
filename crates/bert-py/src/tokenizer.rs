//! `Tokenizer`: `bert::BertTokenizer` for the Python `BertTokenizer` (python/bert_rs/tokenization.py
//! pads, builds the `BatchEncoding` and converts to numpy or torch).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bert::BertTokenizer;
use pyo3::prelude::*;

use crate::errors::{guarded, IntoPy};
use crate::pool::{default_threads, Pool};

/// What `encode` returns: per text, ids, segment ids, special-token mask, and whether truncation
/// cut it.
type Encoded = (Vec<Vec<i64>>, Vec<Vec<i64>>, Vec<Vec<u8>>, Vec<bool>);

/// Length meaning "do not truncate" (transformers' `truncation=False`).
const NO_TRUNCATION: usize = 1 << 40;

#[pyclass(module = "bert_rs._native", frozen)]
pub struct Tokenizer {
    base: BertTokenizer,
    /// The tokenizer truncating at each length asked for so far (cloning one copies its vocab).
    by_length: Mutex<HashMap<usize, Arc<BertTokenizer>>>,
    pool: Pool,
    dir: String,
}

impl Tokenizer {
    pub fn from_bert(base: BertTokenizer, dir: String) -> Self {
        Tokenizer {
            base,
            by_length: Mutex::new(HashMap::new()),
            pool: Pool::new(default_threads()),
            dir,
        }
    }

    fn truncating_at(&self, max_length: Option<usize>) -> Arc<BertTokenizer> {
        let len = max_length.unwrap_or(NO_TRUNCATION);
        let mut map = self.by_length.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(
            map.entry(len)
                .or_insert_with(|| Arc::new(self.base.clone().with_max_length(len))),
        )
    }
}

#[pymethods]
impl Tokenizer {
    /// Loads the tokenizer of a model directory or Hugging Face hub id.
    #[new]
    fn new(py: Python<'_>, model: String) -> PyResult<Self> {
        py.detach(|| {
            guarded("loading the tokenizer", || {
                let dir = bert::hub::resolve(&model, bert::hub::Need::Tokenizer).py()?;
                let base = BertTokenizer::from_dir(&dir).py()?;
                Ok(Tokenizer::from_bert(base, dir.display().to_string()))
            })
        })
    }

    /// The directory the files were read from.
    #[getter]
    fn directory(&self) -> String {
        self.dir.clone()
    }

    /// `model_max_length` of tokenizer_config.json (512 when it sets none).
    #[getter]
    fn model_max_length(&self) -> usize {
        self.base.max_length()
    }

    #[getter]
    fn vocab_size(&self) -> usize {
        self.base.vocab_size()
    }

    #[getter]
    fn pad_token_id(&self) -> i64 {
        self.base.pad_id()
    }

    #[getter]
    fn mask_token(&self) -> String {
        self.base.mask_token().to_string()
    }

    /// (unk, sep, pad, cls) tokens of tokenizer_config.json.
    #[getter]
    fn special_tokens(&self) -> (String, String, String, String) {
        let [u, s, p, c] = self.base.special_token_strings().map(String::from);
        (u, s, p, c)
    }

    /// Whether transformers' tokenizer class returns `token_type_ids` (RoBERTa's, XLM-R's and
    /// DistilBERT's do not).
    #[getter]
    fn returns_token_type_ids(&self) -> bool {
        self.base.returns_token_type_ids()
    }

    /// Tokenizes texts (or pairs, when `pairs` is given: one second text per text), truncating to
    /// `max_length` tokens (longest first for pairs) or not at all when it is None.
    #[pyo3(signature = (texts, pairs=None, max_length=None))]
    fn encode(
        &self,
        py: Python<'_>,
        texts: Vec<String>,
        pairs: Option<Vec<String>>,
        max_length: Option<usize>,
    ) -> PyResult<Encoded> {
        if let Some(p) = &pairs {
            if p.len() != texts.len() {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "{} texts but {} text pairs",
                    texts.len(),
                    p.len()
                )));
            }
        }
        let tok = self.truncating_at(max_length);
        let encodings = py.detach(|| {
            guarded("tokenization", || {
                let run = || match &pairs {
                    Some(p) => {
                        let pairs: Vec<(&str, &str)> = texts
                            .iter()
                            .zip(p)
                            .map(|(a, b)| (a.as_str(), b.as_str()))
                            .collect();
                        tok.tokenize_pairs(&pairs)
                    }
                    None => {
                        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
                        tok.tokenize_batch(&texts)
                    }
                };
                // One text needs no pool (and starts none).
                if texts.len() <= 1 {
                    run().py()
                } else {
                    self.pool.install(run)?.py()
                }
            })
        })?;
        let mut out: Encoded = Default::default();
        for e in encodings {
            out.0.push(e.ids);
            out.1.push(e.type_ids);
            out.2.push(e.special_tokens_mask);
            out.3.push(e.truncated);
        }
        Ok(out)
    }

    /// The tokens of `text` (no special tokens, no truncation), as transformers' `tokenize`.
    fn tokenize(&self, text: &str) -> PyResult<Vec<String>> {
        let tok = self.truncating_at(None);
        let e = guarded("tokenization", || tok.tokenize(text).py())?;
        Ok(e.tokens
            .into_iter()
            .zip(e.special_tokens_mask)
            .filter(|(_, s)| *s == 0)
            .map(|(t, _)| t)
            .collect())
    }

    #[pyo3(signature = (ids, skip_special_tokens=false))]
    fn decode(&self, ids: Vec<i64>, skip_special_tokens: bool) -> PyResult<String> {
        guarded("decode", || {
            self.base.decode(&ids, skip_special_tokens).py()
        })
    }

    fn id_to_token(&self, id: i64) -> Option<String> {
        self.base.id_to_token(id)
    }

    fn token_to_id(&self, token: &str) -> Option<i64> {
        self.base.token_to_id(token)
    }

    fn convert_tokens_to_string(&self, tokens: Vec<String>) -> PyResult<String> {
        guarded("decode", || {
            self.base.convert_tokens_to_string(&tokens).py()
        })
    }
}
