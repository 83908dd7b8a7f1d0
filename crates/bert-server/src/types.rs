//! Request and response bodies, with text-embeddings-inference's field names and defaults
//! (<https://github.com/huggingface/text-embeddings-inference/blob/main/router/src/http/types.rs>)
//! and OpenAI's for `/v1/embeddings`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ApiError, ErrorKind};

/// `"text"` or `["text", ...]`.
#[derive(Deserialize, Debug)]
#[serde(untagged)]
pub enum Input {
    Single(String),
    Batch(Vec<String>),
}

impl Input {
    /// The texts, and whether the request sent a single one (answered without the outer list).
    pub fn into_texts(self) -> (Vec<String>, bool) {
        match self {
            Input::Single(s) => (vec![s], true),
            Input::Batch(v) => (v, false),
        }
    }
}

fn yes() -> bool {
    true
}

/// `POST /embed` and `POST /embed_all` (which ignores `normalize`).
#[derive(Deserialize, Debug)]
pub struct EmbedRequest {
    pub inputs: Input,
    /// `None`: `--auto-truncate`.
    #[serde(default)]
    pub truncate: Option<bool>,
    #[serde(default = "yes")]
    pub normalize: bool,
}

/// `POST /v1/embeddings` (OpenAI).
#[derive(Deserialize, Debug)]
pub struct OpenAiRequest {
    pub input: Input,
    #[serde(default)]
    pub model: Option<String>,
    /// `float` (default) or `base64` (little-endian f32 bytes, as OpenAI returns them).
    #[serde(default)]
    pub encoding_format: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    /// Accepted when it equals the model's dimension (this server does not shorten vectors).
    #[serde(default)]
    pub dimensions: Option<usize>,
}

#[derive(Serialize)]
pub struct OpenAiEmbedding {
    pub object: &'static str,
    pub embedding: Value,
    pub index: usize,
}

#[derive(Serialize)]
pub struct OpenAiUsage {
    pub prompt_tokens: usize,
    pub total_tokens: usize,
}

#[derive(Serialize)]
pub struct OpenAiResponse {
    pub object: &'static str,
    pub data: Vec<OpenAiEmbedding>,
    pub model: String,
    pub usage: OpenAiUsage,
}

/// One input of `/predict`: a text or a pair.
pub type Sequence = (String, Option<String>);

/// `POST /predict`.
#[derive(Deserialize, Debug)]
pub struct PredictRequest {
    /// `"text"`, `["text", "pair"]`, or a list of `["text"]` / `["text", "pair"]` (TEI's forms;
    /// a list of plain strings is taken as a batch of texts too).
    pub inputs: Value,
    #[serde(default)]
    pub truncate: Option<bool>,
    #[serde(default)]
    pub raw_scores: bool,
}

impl PredictRequest {
    /// The inputs, and whether the request sent a single one. Errors name the expected forms.
    pub fn sequences(&self) -> Result<(Vec<Sequence>, bool), ApiError> {
        let bad = || {
            ApiError::new(
                ErrorKind::Unprocessable,
                "`inputs` must be a string, a pair of strings [string, string], or a batch of \
                 strings and pairs [[string], [string, string], ...]",
            )
        };
        let strings = |v: &[Value]| -> Option<Vec<String>> {
            v.iter().map(|x| x.as_str().map(str::to_string)).collect()
        };
        match &self.inputs {
            Value::String(s) => Ok((vec![(s.clone(), None)], true)),
            Value::Array(items) if items.is_empty() => {
                Err(ApiError::new(ErrorKind::Empty, "`inputs` cannot be empty"))
            }
            Value::Array(items) if items.iter().all(Value::is_string) => {
                let s = strings(items).ok_or_else(bad)?;
                match s.len() {
                    // TEI: a list of one or two strings is one text or one pair.
                    1 => Ok((vec![(s[0].clone(), None)], true)),
                    2 => Ok((vec![(s[0].clone(), Some(s[1].clone()))], true)),
                    _ => Ok((s.into_iter().map(|t| (t, None)).collect(), false)),
                }
            }
            Value::Array(items) => {
                let batch = items
                    .iter()
                    .map(|item| match item {
                        Value::String(s) => Some((s.clone(), None)),
                        Value::Array(v) => match strings(v)?.as_slice() {
                            [a] => Some((a.clone(), None)),
                            [a, b] => Some((a.clone(), Some(b.clone()))),
                            _ => None,
                        },
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(bad)?;
                Ok((batch, false))
            }
            _ => Err(bad()),
        }
    }
}

/// TEI's `Prediction`.
#[derive(Serialize, Debug, Clone)]
pub struct Prediction {
    pub score: f32,
    pub label: String,
}

/// `POST /rerank`.
#[derive(Deserialize, Debug)]
pub struct RerankRequest {
    pub query: String,
    pub texts: Vec<String>,
    #[serde(default)]
    pub truncate: Option<bool>,
    #[serde(default)]
    pub raw_scores: bool,
    #[serde(default)]
    pub return_text: bool,
}

/// TEI's `Rank`.
#[derive(Serialize, Debug)]
pub struct Rank {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    pub score: f32,
}

fn simple() -> String {
    "simple".to_string()
}

/// `POST /ner`.
#[derive(Deserialize, Debug)]
pub struct NerRequest {
    pub inputs: Input,
    /// none, simple (default), first, average, max.
    #[serde(default = "simple")]
    pub aggregation_strategy: String,
}

/// `POST /qa`.
#[derive(Deserialize, Debug)]
pub struct QaRequest {
    pub question: String,
    pub context: String,
    #[serde(default)]
    pub top_k: Option<usize>,
}

/// `POST /tokenize`.
#[derive(Deserialize, Debug)]
pub struct TokenizeRequest {
    pub inputs: Input,
    #[serde(default = "yes")]
    pub add_special_tokens: bool,
}

/// TEI's `SimpleToken`: `start`/`stop` are byte offsets into the input (none for special tokens).
#[derive(Serialize, Debug)]
pub struct SimpleToken {
    pub id: u32,
    pub text: String,
    pub special: bool,
    pub start: Option<usize>,
    pub stop: Option<usize>,
}

/// `ids` of `/decode`: one sequence or several.
#[derive(Deserialize, Debug)]
#[serde(untagged)]
pub enum Ids {
    Single(Vec<u32>),
    Batch(Vec<Vec<u32>>),
}

/// `POST /decode`.
#[derive(Deserialize, Debug)]
pub struct DecodeRequest {
    pub ids: Ids,
    #[serde(default = "yes")]
    pub skip_special_tokens: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn predict(v: &str) -> Result<(Vec<Sequence>, bool), ApiError> {
        let r: PredictRequest = serde_json::from_str(&format!("{{\"inputs\": {v}}}")).unwrap();
        r.sequences()
    }

    #[test]
    fn predict_inputs_take_tei_forms() {
        let one = |a: &str| (a.to_string(), None);
        let pair = |a: &str, b: &str| (a.to_string(), Some(b.to_string()));
        assert_eq!(predict(r#""a""#).unwrap(), (vec![one("a")], true));
        assert_eq!(
            predict(r#"["a", "b"]"#).unwrap(),
            (vec![pair("a", "b")], true)
        );
        assert_eq!(
            predict(r#"[["a"], ["b", "c"]]"#).unwrap(),
            (vec![one("a"), pair("b", "c")], false)
        );
        assert_eq!(
            predict(r#"["a", "b", "c"]"#).unwrap(),
            (vec![one("a"), one("b"), one("c")], false)
        );
        assert_eq!(predict("[]").unwrap_err().kind, ErrorKind::Empty);
        assert_eq!(
            predict("[[\"a\", \"b\", \"c\"]]").unwrap_err().kind,
            ErrorKind::Unprocessable
        );
        assert_eq!(predict("3").unwrap_err().kind, ErrorKind::Unprocessable);
    }
}
