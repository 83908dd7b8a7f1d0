//! The HTTP side: routes, the JSON body extractor, authentication, back-pressure and metrics
//! middleware, and the handlers, which validate and tokenize a request, queue it for the model
//! thread ([`crate::queue`]) and shape its answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use bert::pipelines::{AggregationStrategy, ClassificationFunction};
use bert::Encoding;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::backend::{EmbedWant, Embedded, ModelInfo};
use crate::error::{ApiError, ErrorKind};
use crate::metrics::Metrics;
use crate::queue::{Output, Queue, Work};
use crate::types::*;

/// The limits a request is checked against.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_concurrent_requests: usize,
    pub max_client_batch_size: usize,
    pub max_batch_tokens: usize,
    pub payload_limit: usize,
    pub auto_truncate: bool,
}

/// What every handler shares.
pub struct AppState {
    pub model_id: String,
    pub info: ModelInfo,
    pub limits: Limits,
    pub api_key: Option<String>,
    pub queue: Queue,
    pub metrics: Arc<Metrics>,
    pub permits: Arc<Semaphore>,
}

type Shared = State<Arc<AppState>>;
type ApiResult<T> = Result<T, ApiError>;

/// The routes, behind (outermost first) metrics, a task per request, authentication, the body
/// size limit and the concurrency limit of the inference routes.
pub fn router(state: Arc<AppState>) -> Router {
    let inference = Router::new()
        .route("/", post(root))
        .route("/embed", post(embed))
        .route("/embed_all", post(embed_all))
        .route("/v1/embeddings", post(openai_embeddings))
        .route("/predict", post(predict))
        .route("/rerank", post(rerank))
        .route("/ner", post(ner))
        .route("/qa", post(qa))
        .route("/tokenize", post(tokenize))
        .route("/decode", post(decode))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            limit_concurrency,
        ));
    Router::new()
        .route("/health", get(health))
        .route("/info", get(info))
        .route("/metrics", get(metrics))
        .merge(inference)
        .layer(axum::extract::DefaultBodyLimit::max(
            state.limits.payload_limit,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(middleware::from_fn(isolate))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// A JSON body read whatever its content type (curl's `-d` sends a form type): malformed JSON,
/// wrong types and missing fields are 422, a body over the payload limit is 413.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    ErrorKind::Validation,
                    format!("payload too large: {}", r.body_text()),
                )
            } else {
                ApiError::new(ErrorKind::Unprocessable, r.body_text())
            }
        })?;
        serde_json::from_slice(&bytes).map(Body).map_err(|e| {
            ApiError::new(
                ErrorKind::Unprocessable,
                format!("invalid request body: {e}"),
            )
        })
    }
}

/// Counts and times every request, by route and status code; logs errors.
async fn observe(State(s): Shared, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = match req.uri().path() {
        p @ ("/" | "/embed" | "/embed_all" | "/v1/embeddings" | "/predict" | "/rerank" | "/ner"
        | "/qa" | "/tokenize" | "/decode" | "/health" | "/info" | "/metrics") => p.to_string(),
        _ => "other".to_string(),
    };
    s.metrics.in_flight_add(1);
    let response = next.run(req).await;
    s.metrics.in_flight_add(-1);
    let status = response.status();
    let elapsed = start.elapsed();
    s.metrics.request(&route, status.as_u16(), elapsed);
    if status.is_server_error() {
        tracing::warn!(route, status = status.as_u16(), ?elapsed, "request failed");
    } else {
        tracing::debug!(route, status = status.as_u16(), ?elapsed, "request");
    }
    response
}

/// Runs the request in its own task, so that a panic in a handler (a bug: handlers do not panic on
/// input) answers 500 instead of dropping the connection unanswered.
async fn isolate(req: Request, next: Next) -> Response {
    match tokio::spawn(next.run(req)).await {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(error = %e, "a request handler failed");
            ApiError::new(ErrorKind::Backend, "the request handler failed").into_response()
        }
    }
}

/// `--api-key`: every route wants `Authorization: Bearer <key>`.
async fn authenticate(State(s): Shared, req: Request, next: Next) -> Response {
    if let Some(key) = &s.api_key {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(key.as_str()) {
            return ApiError::new(ErrorKind::Unauthorized, "missing or wrong Bearer API key")
                .into_response();
        }
    }
    next.run(req).await
}

/// `--max-concurrent-requests`: past it, 429 at once rather than an unbounded queue.
async fn limit_concurrency(State(s): Shared, req: Request, next: Next) -> Response {
    let Ok(_permit) = s.permits.clone().try_acquire_owned() else {
        return ApiError::new(
            ErrorKind::Overloaded,
            format!(
                "model is overloaded: {} requests in flight (--max-concurrent-requests)",
                s.limits.max_concurrent_requests
            ),
        )
        .into_response();
    };
    next.run(req).await
}

impl AppState {
    /// 424 unless the loaded model has `head`.
    fn require(&self, head: &str, route: &str, needs: &str) -> ApiResult<()> {
        if self.info.head == head {
            return Ok(());
        }
        Err(ApiError::new(
            ErrorKind::WrongHead,
            format!(
                "{route} needs {needs}, but the loaded model {} is a {} ({} head)",
                self.model_id, self.info.architecture, self.info.head
            ),
        ))
    }

    /// 422 for no inputs, 413 for more than `--max-client-batch-size`.
    fn check_count(&self, n: usize, what: &str) -> ApiResult<()> {
        if n == 0 {
            return Err(ApiError::new(
                ErrorKind::Empty,
                format!("`{what}` cannot be empty"),
            ));
        }
        let max = self.limits.max_client_batch_size;
        if n > max {
            return Err(ApiError::new(
                ErrorKind::Validation,
                format!(
                    "batch size {n} > maximum allowed batch size {max} (--max-client-batch-size)"
                ),
            ));
        }
        Ok(())
    }

    /// Tokenizes texts or pairs (truncating at the model's length, lowercasing as the model
    /// wants); 413 for an input that was cut when `truncate` is off.
    async fn tokenize(
        &self,
        inputs: Vec<Sequence>,
        truncate: Option<bool>,
    ) -> ApiResult<Vec<Encoding>> {
        let truncate = truncate.unwrap_or(self.limits.auto_truncate);
        let lower = self.info.lowercase;
        let tok = self.info.tokenizer.clone();
        let chars: usize = inputs
            .iter()
            .map(|(a, b)| a.len() + b.as_ref().map_or(0, String::len))
            .sum();
        let work = move || -> ApiResult<Vec<Encoding>> {
            let inputs: Vec<Sequence> = if lower {
                inputs
                    .into_iter()
                    .map(|(a, b)| (a.to_lowercase(), b.map(|b| b.to_lowercase())))
                    .collect()
            } else {
                inputs
            };
            // One at a time: the batch call would run on rayon's pool, behind the model's work.
            let mut out = Vec::with_capacity(inputs.len());
            for (a, b) in &inputs {
                out.extend(tok.tokenize_mixed(&[(a.as_str(), b.as_deref())])?);
            }
            Ok(out)
        };
        // Short inputs tokenize faster than a hand-off to the blocking pool.
        let encodings = if chars < 2_000 {
            work()?
        } else {
            tokio::task::spawn_blocking(work)
                .await
                .map_err(|e| ApiError::new(ErrorKind::Backend, format!("tokenizer task: {e}")))??
        };
        if !truncate {
            if let Some(i) = encodings.iter().position(|e| e.truncated) {
                return Err(ApiError::new(
                    ErrorKind::Validation,
                    format!(
                        "input {i} is longer than the {} tokens this model takes; send \
                         \"truncate\": true to cut it",
                        self.info.max_input_length
                    ),
                ));
            }
        }
        Ok(encodings)
    }

    async fn embeddings(
        &self,
        texts: Vec<String>,
        truncate: Option<bool>,
        want: EmbedWant,
        route: &str,
    ) -> ApiResult<(Vec<Embedded>, usize)> {
        self.require(
            "embedding",
            route,
            "an embedding model (BertModel, sentence-transformers)",
        )?;
        self.check_count(texts.len(), "inputs")?;
        let encodings = self
            .tokenize(texts.into_iter().map(|t| (t, None)).collect(), truncate)
            .await?;
        let tokens = encodings.iter().map(|e| e.ids.len()).sum();
        match self.queue.run(Work::Embed { encodings, want }).await? {
            Output::Embed(v) => Ok((v, tokens)),
            _ => Err(mixed_up()),
        }
    }
}

fn mixed_up() -> ApiError {
    ApiError::new(
        ErrorKind::Backend,
        "the model thread answered another kind of work",
    )
}

/// TEI's `POST /`: the route of the loaded head (`/embed`, `/predict`, `/rerank` for a one-label
/// classifier whose body has `query`, `/ner`, `/qa`), which is what clients that post to the base
/// URL (huggingface_hub's `InferenceClient`) expect.
async fn root(State(s): Shared, Body(v): Body<Value>) -> Response {
    fn parse<T: DeserializeOwned>(v: Value) -> ApiResult<Body<T>> {
        serde_json::from_value(v).map(Body).map_err(|e| {
            ApiError::new(
                ErrorKind::Unprocessable,
                format!("invalid request body: {e}"),
            )
        })
    }
    let st = State(s.clone());
    let response = match s.info.head {
        "embedding" => match parse(v) {
            Ok(b) => embed(st, b).await.into_response(),
            Err(e) => e.into_response(),
        },
        "classifier" if v.get("query").is_some() => match parse(v) {
            Ok(b) => rerank(st, b).await.into_response(),
            Err(e) => e.into_response(),
        },
        "classifier" => match parse(v) {
            Ok(b) => predict(st, b).await.into_response(),
            Err(e) => e.into_response(),
        },
        "token-classifier" => match parse(v) {
            Ok(b) => ner(st, b).await.into_response(),
            Err(e) => e.into_response(),
        },
        _ => match parse(v) {
            Ok(b) => qa(st, b).await.into_response(),
            Err(e) => e.into_response(),
        },
    };
    response
}

/// `[[f32]]`, or `[f32]`-in-a-list for a single input as TEI does (always a list of vectors).
async fn embed(State(s): Shared, Body(r): Body<EmbedRequest>) -> ApiResult<Json<Vec<Vec<f32>>>> {
    let (texts, _) = r.inputs.into_texts();
    let want = EmbedWant::Pooled {
        normalize: r.normalize,
    };
    let (v, _) = s.embeddings(texts, r.truncate, want, "/embed").await?;
    Ok(Json(v.into_iter().map(pooled).collect()))
}

fn pooled(e: Embedded) -> Vec<f32> {
    match e {
        Embedded::Pooled(v) => v,
        Embedded::Tokens(_) => Vec::new(),
    }
}

/// Token embeddings of the real tokens (special tokens included): `[[[f32]]]`.
async fn embed_all(
    State(s): Shared,
    Body(r): Body<EmbedRequest>,
) -> ApiResult<Json<Vec<Vec<Vec<f32>>>>> {
    let (texts, _) = r.inputs.into_texts();
    let (v, _) = s
        .embeddings(texts, r.truncate, EmbedWant::Tokens, "/embed_all")
        .await?;
    Ok(Json(
        v.into_iter()
            .map(|e| match e {
                Embedded::Tokens(t) => t,
                Embedded::Pooled(_) => Vec::new(),
            })
            .collect(),
    ))
}

/// OpenAI's embeddings API; inputs are truncated as `--auto-truncate` says.
async fn openai_embeddings(
    State(s): Shared,
    Body(r): Body<OpenAiRequest>,
) -> ApiResult<Json<OpenAiResponse>> {
    let base64 = match r.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(f) => {
            return Err(ApiError::new(
                ErrorKind::Unprocessable,
                format!("encoding_format `{f}`: expected `float` or `base64`"),
            ))
        }
    };
    let (texts, _) = r.input.into_texts();
    let want = EmbedWant::Pooled { normalize: true };
    let (v, tokens) = s.embeddings(texts, None, want, "/v1/embeddings").await?;
    if let (Some(d), Some(Embedded::Pooled(first))) = (r.dimensions, v.first()) {
        if d != first.len() {
            return Err(ApiError::new(
                ErrorKind::Unprocessable,
                format!(
                    "dimensions {d}: this model gives {} (vectors are not shortened)",
                    first.len()
                ),
            ));
        }
    }
    let data = v
        .into_iter()
        .enumerate()
        .map(|(index, e)| {
            let vec = pooled(e);
            let embedding = if base64 {
                let bytes: Vec<u8> = vec.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(vec)
            };
            OpenAiEmbedding {
                object: "embedding",
                embedding,
                index,
            }
        })
        .collect();
    Ok(Json(OpenAiResponse {
        object: "list",
        data,
        model: r.model.unwrap_or_else(|| s.model_id.clone()),
        usage: OpenAiUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    }))
}

/// Classifier logits of the inputs, through the queue.
async fn logits(
    s: &AppState,
    inputs: Vec<Sequence>,
    truncate: Option<bool>,
) -> ApiResult<Vec<Vec<f32>>> {
    let encodings = s.tokenize(inputs, truncate).await?;
    match s.queue.run(Work::Logits { encodings }).await? {
        Output::Logits(v) => Ok(v),
        _ => Err(mixed_up()),
    }
}

/// Every label with its score, best first: the text-classification pipeline's scores (softmax or
/// sigmoid as `problem_type` says), or the logits with `raw_scores`.
async fn predict(State(s): Shared, Body(r): Body<PredictRequest>) -> ApiResult<Json<Value>> {
    s.require(
        "classifier",
        "/predict",
        "a sequence classifier (BertForSequenceClassification)",
    )?;
    let (inputs, single) = r.sequences()?;
    s.check_count(inputs.len(), "inputs")?;
    let config = &s.info.config;
    let f = if r.raw_scores {
        ClassificationFunction::None
    } else {
        ClassificationFunction::for_config(config)
    };
    let rows = logits(&s, inputs, r.truncate).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut labels = f
            .apply(&row)
            .into_iter()
            .enumerate()
            .map(|(i, score)| Prediction {
                score,
                label: config
                    .id2label
                    .get(&i)
                    .cloned()
                    .unwrap_or_else(|| format!("LABEL_{i}")),
            })
            .collect::<Vec<_>>();
        labels.sort_by(|a, b| b.score.total_cmp(&a.score));
        out.push(labels);
    }
    Ok(Json(if single { json!(out[0]) } else { json!(out) }))
}

/// The texts' scores against the query, best first: a one-label cross-encoder's sigmoid (as
/// sentence-transformers' `CrossEncoder.predict`), or its logit with `raw_scores`.
async fn rerank(State(s): Shared, Body(r): Body<RerankRequest>) -> ApiResult<Json<Vec<Rank>>> {
    s.require(
        "classifier",
        "/rerank",
        "a cross-encoder (BertForSequenceClassification, one label)",
    )?;
    let labels = s.info.config.num_labels();
    if labels != 1 {
        return Err(ApiError::new(
            ErrorKind::WrongHead,
            format!(
                "/rerank needs a cross-encoder with one label, but {} is a classifier with {labels} \
                 labels; use /predict",
                s.model_id
            ),
        ));
    }
    s.check_count(r.texts.len(), "texts")?;
    let pairs = r
        .texts
        .iter()
        .map(|t| (r.query.clone(), Some(t.clone())))
        .collect();
    let rows = logits(&s, pairs, r.truncate).await?;
    let mut ranks: Vec<Rank> = rows
        .iter()
        .enumerate()
        .map(|(index, row)| {
            let logit = row.first().copied().unwrap_or(f32::NAN);
            Rank {
                index,
                text: r.return_text.then(|| r.texts[index].clone()),
                score: if r.raw_scores {
                    logit
                } else {
                    1.0 / (1.0 + (-logit).exp())
                },
            }
        })
        .collect();
    ranks.sort_by(|a, b| b.score.total_cmp(&a.score));
    Ok(Json(ranks))
}

/// The token-classification pipeline's entities (long texts in overlapping windows).
async fn ner(State(s): Shared, Body(r): Body<NerRequest>) -> ApiResult<Json<Value>> {
    s.require(
        "token-classifier",
        "/ner",
        "a token classifier (BertForTokenClassification)",
    )?;
    let aggregation: AggregationStrategy = r
        .aggregation_strategy
        .parse()
        .map_err(|e: String| ApiError::new(ErrorKind::Unprocessable, e))?;
    let (texts, single) = r.inputs.into_texts();
    s.check_count(texts.len(), "inputs")?;
    match s.queue.run(Work::Ner { texts, aggregation }).await? {
        Output::Ner(v) if single => Ok(Json(json!(v[0]))),
        Output::Ner(v) => Ok(Json(json!(v))),
        _ => Err(mixed_up()),
    }
}

/// The question-answering pipeline's answers: one object, or a list when `top_k` > 1 (as the
/// pipeline returns them).
async fn qa(State(s): Shared, Body(r): Body<QaRequest>) -> ApiResult<Json<Value>> {
    s.require(
        "question-answering",
        "/qa",
        "a question-answering model (BertForQuestionAnswering)",
    )?;
    let top_k = r.top_k.unwrap_or(1);
    if top_k == 0 || top_k > 100 {
        return Err(ApiError::new(
            ErrorKind::Unprocessable,
            format!("top_k {top_k}: expected 1 to 100"),
        ));
    }
    let pairs = vec![(r.question, r.context)];
    match s.queue.run(Work::Qa { pairs, top_k }).await? {
        Output::Qa(mut v) => {
            let answers = v.remove(0);
            Ok(Json(match answers.as_slice() {
                [one] if top_k == 1 => json!(one),
                _ => json!(answers),
            }))
        }
        _ => Err(mixed_up()),
    }
}

/// TEI's `/tokenize`: the tokens of each input with their byte spans (none for special tokens).
async fn tokenize(
    State(s): Shared,
    Body(r): Body<TokenizeRequest>,
) -> ApiResult<Json<Vec<Vec<SimpleToken>>>> {
    let (texts, _) = r.inputs.into_texts();
    s.check_count(texts.len(), "inputs")?;
    let tok = s.info.tokenizer.inner();
    let mut out = Vec::with_capacity(texts.len());
    for text in texts {
        let text = if s.info.lowercase {
            text.to_lowercase()
        } else {
            text
        };
        let enc = tok
            .encode(text.as_str(), r.add_special_tokens)
            .map_err(|e| ApiError::new(ErrorKind::Tokenizer, format!("cannot tokenize: {e}")))?;
        let tokens = (0..enc.len())
            .map(|i| {
                let special = enc.get_special_tokens_mask()[i] == 1;
                let (start, stop) = enc.get_offsets()[i];
                SimpleToken {
                    id: enc.get_ids()[i],
                    text: match text.get(start..stop) {
                        Some(t) if !special => t.to_string(),
                        _ => enc.get_tokens()[i].clone(),
                    },
                    special,
                    start: (!special).then_some(start),
                    stop: (!special).then_some(stop),
                }
            })
            .collect();
        out.push(tokens);
    }
    Ok(Json(out))
}

/// TEI's `/decode`: one text per id sequence.
async fn decode(State(s): Shared, Body(r): Body<DecodeRequest>) -> ApiResult<Json<Vec<String>>> {
    let seqs = match r.ids {
        Ids::Single(v) => vec![v],
        Ids::Batch(v) => v,
    };
    s.check_count(seqs.len(), "ids")?;
    seqs.iter()
        .map(|ids| {
            let ids: Vec<i64> = ids.iter().map(|&i| i64::from(i)).collect();
            Ok(s.info.tokenizer.decode(&ids, r.skip_special_tokens)?)
        })
        .collect::<ApiResult<Vec<_>>>()
        .map(Json)
}

/// 200 once the model thread runs a forward pass; 503 when it does not within 30 s.
async fn health(State(s): Shared) -> ApiResult<StatusCode> {
    match tokio::time::timeout(Duration::from_secs(30), s.queue.run(Work::Health)).await {
        Ok(Ok(_)) => Ok(StatusCode::OK),
        Ok(Err(e)) => Err(ApiError::new(ErrorKind::Unhealthy, e.message)),
        Err(_) => Err(ApiError::new(
            ErrorKind::Unhealthy,
            "the model did not answer in 30 s",
        )),
    }
}

/// TEI's `/info`, plus the head and architecture.
async fn info(State(s): Shared) -> Json<Value> {
    let i = &s.info;
    let model_type = match i.head {
        "embedding" => json!({"embedding": {"pooling": i.pooling}}),
        "classifier" if i.config.num_labels() == 1 => {
            json!({"reranker": {"id2label": i.config.id2label, "label2id": i.config.label2id}})
        }
        "classifier" => {
            json!({"classifier": {"id2label": i.config.id2label, "label2id": i.config.label2id}})
        }
        "token-classifier" => json!({"token_classifier": {"id2label": i.config.id2label}}),
        _ => json!({"question_answering": {}}),
    };
    let l = &s.limits;
    Json(json!({
        "model_id": s.model_id,
        "model_sha": null,
        "model_dtype": "float32",
        "model_type": model_type,
        "architecture": i.architecture,
        "head": i.head,
        "max_concurrent_requests": l.max_concurrent_requests,
        "max_input_length": i.max_input_length,
        "max_batch_tokens": l.max_batch_tokens,
        "max_batch_requests": null,
        "max_client_batch_size": l.max_client_batch_size,
        "payload_limit": l.payload_limit,
        "auto_truncate": l.auto_truncate,
        "tokenization_workers": null,
        "version": env!("CARGO_PKG_VERSION"),
        "sha": null,
        "docker_label": null,
    }))
}

async fn metrics(State(s): Shared) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// `GET path` over a fresh connection (a blocking client, on the blocking pool): the answer's
    /// status line.
    async fn status_line(addr: std::net::SocketAddr, path: &'static str) -> String {
        tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            s.write_all(req.as_bytes()).unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out.lines().next().unwrap_or_default().to_string()
        })
        .await
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_handler_answers_500_and_the_server_goes_on() {
        async fn boom() -> &'static str {
            panic!("a bug")
        }
        let app = Router::new()
            .route("/boom", get(boom))
            .route("/ok", get(|| async { "ok" }))
            .layer(middleware::from_fn(isolate));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        assert!(status_line(addr, "/boom").await.contains(" 500 "));
        assert!(status_line(addr, "/ok").await.contains(" 200 "));
    }
}
