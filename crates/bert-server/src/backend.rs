//! The model behind the server: one checkpoint, loaded as the pipeline its `config.json`
//! `architectures` name, and run synchronously on the model thread ([`crate::queue`]) over a
//! batch of several requests' inputs at once.

use std::path::Path;
use std::sync::Arc;

use bert::architecture::{self, Architecture, Class};
use bert::pipelines::{
    normalize, pool, Answer, Entity, QuestionAnswering, QuestionAnsweringOptions,
    SentenceEmbeddings, TokenClassification, TokenClassificationOptions,
};
use bert::{
    BertConfig, BertForQuestionAnswering, BertForSequenceClassification,
    BertForTokenClassification, BertTokenizer, Encoding, ForwardOptions,
};
use ndarray::{s, Array2};

use crate::error::{ApiError, ErrorKind};

/// The pipeline the server runs, chosen from the checkpoint's head.
pub enum Backend {
    /// A `BertModel` (or a head the server has no route for): sentence-transformers embeddings.
    Embedding(SentenceEmbeddings),
    /// `BertForSequenceClassification`: `/predict`, and `/rerank` when it has one label.
    Classifier {
        model: BertForSequenceClassification,
        tokenizer: BertTokenizer,
    },
    /// `BertForTokenClassification`: `/ner`.
    TokenClassifier(TokenClassification),
    /// `BertForQuestionAnswering`: `/qa`.
    QuestionAnswering(QuestionAnswering),
}

/// What the HTTP side needs to know about the loaded model.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    /// `architectures[0]` of config.json (`BertModel` when absent).
    pub architecture: String,
    /// Which routes it serves: `embedding`, `classifier`, `token-classifier`, `question-answering`.
    pub head: &'static str,
    pub config: BertConfig,
    /// Tokens per input, special tokens included.
    pub max_input_length: usize,
    /// Texts are lowercased before tokenization (sentence-transformers' `do_lower_case`).
    pub lowercase: bool,
    /// Embedding models: the pooling modes, as sentence-transformers names them.
    pub pooling: Option<String>,
    /// The tokenizer the handlers tokenize with (truncating at `max_input_length`).
    pub tokenizer: Arc<BertTokenizer>,
}

impl Backend {
    /// Loads the checkpoint in `dir` as the pipeline of its head.
    pub fn load(dir: &Path) -> bert::Result<(Backend, ModelInfo)> {
        let config = BertConfig::from_file(dir.join("config.json"))?;
        let architecture = config
            .architectures
            .as_ref()
            .and_then(|a| a.first().cloned())
            .unwrap_or_else(|| "BertModel".to_string());
        let class = architecture::find_class(&architecture).map(|(_, c)| c);
        let positions = Architecture::of(&config).max_len(&config);
        let tokenizer = || -> bert::Result<BertTokenizer> {
            let tok = BertTokenizer::from_dir(dir)?;
            let n = tok.max_length().min(positions);
            Ok(tok.with_max_length(n))
        };
        let (backend, head, tokenizer, lowercase, pooling) = match class {
            Some(Class::SequenceClassification) => {
                let tokenizer = tokenizer()?;
                let model = BertForSequenceClassification::from_dir(dir)?;
                let t = tokenizer.clone();
                (
                    Backend::Classifier { model, tokenizer },
                    "classifier",
                    t,
                    false,
                    None,
                )
            }
            Some(Class::TokenClassification) => {
                let tokenizer = tokenizer()?;
                let model = BertForTokenClassification::from_dir(dir)?;
                let t = tokenizer.clone();
                let pipe = TokenClassification { model, tokenizer };
                (
                    Backend::TokenClassifier(pipe),
                    "token-classifier",
                    t,
                    false,
                    None,
                )
            }
            Some(Class::QuestionAnswering) => {
                let tokenizer = tokenizer()?;
                let model = BertForQuestionAnswering::from_dir(dir)?;
                let t = tokenizer.clone();
                let pipe = QuestionAnswering { model, tokenizer };
                (
                    Backend::QuestionAnswering(pipe),
                    "question-answering",
                    t,
                    false,
                    None,
                )
            }
            _ => {
                let st = SentenceEmbeddings::from_dir(dir)?;
                let t = st.tokenizer().clone();
                let lower = st.lowercases();
                let modes = st
                    .pooling()
                    .modes
                    .iter()
                    .map(|m| format!("{m:?}").to_lowercase())
                    .collect::<Vec<_>>()
                    .join("+");
                (Backend::Embedding(st), "embedding", t, lower, Some(modes))
            }
        };
        let info = ModelInfo {
            architecture,
            head,
            max_input_length: tokenizer.max_length(),
            config,
            lowercase,
            pooling,
            tokenizer: Arc::new(tokenizer),
        };
        Ok((backend, info))
    }

    /// Sentence vectors (`Pooled`) or token vectors (`Tokens`) of tokenized inputs, in one forward
    /// pass. Vectors are normalized where `normalize[i]` says so.
    pub fn embed(
        &self,
        encodings: &[Encoding],
        want: &[EmbedWant],
    ) -> Result<Vec<Embedded>, ApiError> {
        let Backend::Embedding(st) = self else {
            return Err(self.wrong_head("embeddings"));
        };
        let batch = st.tokenizer().pad(encodings)?;
        // (B, T, H)
        let hidden = st
            .model()
            .forward(&batch, &ForwardOptions::default())?
            .last_hidden_state;
        let needs_pool = want.iter().any(|w| !matches!(w, EmbedWant::Tokens));
        // (B, M·H)
        let pooled: Array2<f32> = if needs_pool {
            pool(&hidden, &batch.attention_mask, &st.pooling().modes)
        } else {
            Array2::zeros((0, 0))
        };
        Ok(want
            .iter()
            .enumerate()
            .map(|(i, w)| match w {
                EmbedWant::Pooled { normalize: norm } => {
                    let mut row = pooled.slice(s![i..i + 1, ..]).to_owned();
                    if *norm {
                        normalize(&mut row);
                    }
                    Embedded::Pooled(row.into_raw_vec_and_offset().0)
                }
                EmbedWant::Tokens => {
                    let n = encodings[i].ids.len();
                    Embedded::Tokens(
                        (0..n)
                            .map(|t| hidden.slice(s![i, t, ..]).to_vec())
                            .collect(),
                    )
                }
            })
            .collect())
    }

    /// The classifier's logits of tokenized inputs (texts or pairs), one row each, in one forward
    /// pass.
    pub fn logits(&self, encodings: &[Encoding]) -> Result<Vec<Vec<f32>>, ApiError> {
        let Backend::Classifier { model, tokenizer } = self else {
            return Err(self.wrong_head("a sequence classifier"));
        };
        let batch = tokenizer.pad(encodings)?;
        let logits = model.forward(&batch, &ForwardOptions::default())?.logits;
        Ok(logits.rows().into_iter().map(|r| r.to_vec()).collect())
    }

    /// The entities of each text (one forward pass over all their windows).
    pub fn entities(
        &self,
        texts: &[&str],
        opts: &TokenClassificationOptions,
    ) -> Result<Vec<Vec<Entity>>, ApiError> {
        let Backend::TokenClassifier(pipe) = self else {
            return Err(self.wrong_head("a token classifier"));
        };
        Ok(pipe.entities_batch(texts, opts)?)
    }

    /// The answers of each (question, context) (one forward pass over all their windows).
    pub fn answers(
        &self,
        pairs: &[(&str, &str)],
        opts: &QuestionAnsweringOptions,
    ) -> Result<Vec<Vec<Answer>>, ApiError> {
        let Backend::QuestionAnswering(pipe) = self else {
            return Err(self.wrong_head("a question-answering model"));
        };
        Ok(pipe.answer_batch(pairs, opts)?)
    }

    /// A one-token forward pass: proves the model answers.
    pub fn health(&self) -> Result<(), ApiError> {
        let (model, tok) = match self {
            Backend::Embedding(st) => (st.model(), st.tokenizer()),
            Backend::Classifier { model, tokenizer } => (model.bert(), tokenizer),
            Backend::TokenClassifier(p) => (p.model.bert(), &p.tokenizer),
            Backend::QuestionAnswering(p) => (p.model.bert(), &p.tokenizer),
        };
        model.forward(&tok.encode("")?, &ForwardOptions::default())?;
        Ok(())
    }

    fn wrong_head(&self, needed: &str) -> ApiError {
        ApiError::new(
            ErrorKind::WrongHead,
            format!("the model thread was asked for {needed}, but it runs another head"),
        )
    }
}

/// What one input of an embedding batch asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmbedWant {
    Pooled { normalize: bool },
    Tokens,
}

/// One input's embedding: a sentence vector (M·H), or a vector per real token (T × H).
#[derive(Clone, Debug)]
pub enum Embedded {
    Pooled(Vec<f32>),
    Tokens(Vec<Vec<f32>>),
}
