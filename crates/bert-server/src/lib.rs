//! `bert serve`: an HTTP server that speaks text-embeddings-inference's API (`/embed`,
//! `/embed_all`, `/predict`, `/rerank`, `/tokenize`, `/decode`, `/health`, `/info`, `/metrics`),
//! OpenAI's `/v1/embeddings`, and the NER (`/ner`) and question-answering (`/qa`) pipelines, over
//! one checkpoint.
//!
//! Shape (text-embeddings-inference's): the HTTP handlers ([`http`]) validate and tokenize each
//! request and queue it; one model thread ([`queue`]) owns the model ([`backend`]) and runs
//! whatever is queued, up to `max_batch_tokens` real tokens, as one batch; errors map to HTTP
//! status codes in one place ([`error::ErrorKind::status`]). SIGTERM or SIGINT stops accepting
//! connections, answers every request already received, and returns.
//!
//! ```no_run
//! let opts = bert_server::ServeOptions {
//!     model: "sentence-transformers/all-MiniLM-L6-v2".into(),
//!     ..Default::default()
//! };
//! bert_server::run(opts)?; // until SIGTERM / SIGINT
//! # Ok::<(), bert_server::Error>(())
//! ```

pub mod backend;
pub mod error;
pub mod http;
pub mod metrics;
pub mod queue;
pub mod types;

use std::sync::Arc;

pub use error::Error;

/// The server's options, with text-embeddings-inference's defaults.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Model directory or Hugging Face hub id.
    pub model: String,
    pub host: String,
    /// 0 picks a free port (the log line `listening on http://...` says which).
    pub port: u16,
    /// Real tokens per batch of the model thread.
    pub max_batch_tokens: usize,
    /// Requests handled at once; more are answered 429.
    pub max_concurrent_requests: usize,
    /// Inputs per request; more are answered 413.
    pub max_client_batch_size: usize,
    /// Bytes per request body; more are answered 413.
    pub payload_limit: usize,
    /// Truncate inputs longer than the model takes unless a request says `"truncate": false`.
    pub auto_truncate: bool,
    /// Require `Authorization: Bearer <key>` on every route.
    pub api_key: Option<String>,
    /// Logs as JSON lines instead of text.
    pub json_logs: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            model: bert::hub::DEFAULT_MODEL.to_string(),
            host: "0.0.0.0".to_string(),
            port: 3000,
            max_batch_tokens: 16384,
            max_concurrent_requests: 512,
            max_client_batch_size: 32,
            payload_limit: 2_000_000,
            auto_truncate: false,
            api_key: None,
            json_logs: false,
        }
    }
}

/// Loads the model, then serves until SIGTERM or SIGINT, and returns once every request received
/// has been answered.
pub fn run(opts: ServeOptions) -> Result<(), Error> {
    init_logs(opts.json_logs);
    for (name, v) in [
        ("--max-batch-tokens", opts.max_batch_tokens),
        ("--max-concurrent-requests", opts.max_concurrent_requests),
        ("--max-client-batch-size", opts.max_client_batch_size),
        ("--payload-limit", opts.payload_limit),
    ] {
        if v == 0 {
            return Err(Error::Options(format!("{name} must be at least 1")));
        }
    }
    tracing::info!(model = %opts.model, "loading the model");
    let load = |e| Error::Load {
        model: opts.model.clone(),
        source: e,
    };
    let dir = bert::hub::resolve(&opts.model, bert::hub::Need::Model).map_err(load)?;
    let (backend, info) = backend::Backend::load(&dir).map_err(load)?;
    tracing::info!(
        architecture = %info.architecture,
        head = info.head,
        max_input_length = info.max_input_length,
        "model loaded"
    );
    let metrics = Arc::new(metrics::Metrics::default());
    let limits = queue::BatchLimits {
        max_batch_tokens: opts.max_batch_tokens,
    };
    let (queue, model_thread) = queue::Queue::start(backend, limits, metrics.clone())?;
    let state = Arc::new(http::AppState {
        model_id: opts.model.clone(),
        info,
        limits: http::Limits {
            max_concurrent_requests: opts.max_concurrent_requests,
            max_client_batch_size: opts.max_client_batch_size,
            max_batch_tokens: opts.max_batch_tokens,
            payload_limit: opts.payload_limit,
            auto_truncate: opts.auto_truncate,
        },
        api_key: opts.api_key.clone(),
        queue,
        metrics,
        permits: Arc::new(tokio::sync::Semaphore::new(opts.max_concurrent_requests)),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bert-http")
        .build()?;
    runtime.block_on(serve(state, &opts.host, opts.port))?;
    // The router (and with it the queue's sender) is gone: the model thread ends.
    drop(runtime);
    if model_thread.join().is_err() {
        tracing::error!("the model thread panicked");
    }
    tracing::info!("stopped");
    Ok(())
}

async fn serve(state: Arc<http::AppState>, host: &str, port: u16) -> Result<(), Error> {
    let addr = format!("{host}:{port}");
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|source| Error::Bind {
            addr: addr.clone(),
            source,
        })?;
    let local = listener.local_addr()?;
    tracing::info!("listening on http://{local}");
    axum::serve(listener, http::router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("signal received: no new connections; answering the requests in flight");
}

fn init_logs(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // Already set (a second server in one process): keep the first.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
