//! Every error the server answers with, and the one place that maps them to HTTP status codes:
//! text-embeddings-inference's `{"error": ..., "error_type": ...}` body and its codes
//! (<https://github.com/huggingface/text-embeddings-inference/blob/main/router/src/http/server.rs>,
//! `impl From<&ErrorType> for StatusCode`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// What went wrong with a request; each kind has one status code ([`ErrorKind::status`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The body is not valid JSON, a field has the wrong type, a value is out of range (422).
    Unprocessable,
    /// An empty list of inputs (422, as the issue asks; TEI answers 400).
    Empty,
    /// The tokenizer refused an input (422).
    Tokenizer,
    /// An input longer than the model takes, too many inputs, a body too large (413).
    Validation,
    /// `--max-concurrent-requests` requests are already in flight (429).
    Overloaded,
    /// The loaded checkpoint has no head for this route (424, TEI's "backend" error for a model of
    /// another type).
    WrongHead,
    /// No or a wrong `Authorization: Bearer` key (401).
    Unauthorized,
    /// The model thread is gone or does not answer (503).
    Unhealthy,
    /// The model failed on a batch in a way the input does not explain (500).
    Backend,
}

impl ErrorKind {
    /// The one mapping from error kinds to HTTP status codes.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::Unprocessable | ErrorKind::Empty | ErrorKind::Tokenizer => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ErrorKind::Validation => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::Overloaded => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::WrongHead => StatusCode::FAILED_DEPENDENCY,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Unhealthy => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Backend => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// TEI's `error_type` names (snake case of its `ErrorType`), plus ours.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Unprocessable => "validation",
            ErrorKind::Empty => "empty",
            ErrorKind::Tokenizer => "tokenizer",
            ErrorKind::Validation => "validation",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::WrongHead => "backend",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Unhealthy => "unhealthy",
            ErrorKind::Backend => "backend",
        }
    }
}

/// An error answer: its kind and a message for the client.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.kind.status(),
            self.kind.name(),
            self.message
        )
    }
}

impl From<bert::Error> for ApiError {
    /// An error of the library on a request's inputs: the input's fault when the library says so
    /// (`Input`, `Tokenizer`), the backend's otherwise.
    fn from(e: bert::Error) -> Self {
        let kind = match &e {
            bert::Error::Input(_) => ErrorKind::Unprocessable,
            bert::Error::Tokenizer(_) => ErrorKind::Tokenizer,
            _ => ErrorKind::Backend,
        };
        ApiError::new(kind, e.to_string())
    }
}

/// TEI's `ErrorResponse`.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_type: &'static str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: &self.message,
            error_type: self.kind.name(),
        };
        (self.kind.status(), axum::Json(body)).into_response()
    }
}

/// Errors that stop the server from starting or running (not request errors).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot load {model}: {source}")]
    Load {
        model: String,
        #[source]
        source: bert::Error,
    },
    #[error("{0}")]
    Options(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
