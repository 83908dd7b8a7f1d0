//! `bert serve`: the HTTP server of `bert-server` (text-embeddings-inference's API, OpenAI's
//! `/v1/embeddings`, `/ner`, `/qa`) over one checkpoint, until SIGTERM or SIGINT.

use crate::CliResult;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Model directory or Hugging Face hub id (loaded before the server listens).
    #[arg(long, short = 'm', default_value = bert::hub::DEFAULT_MODEL)]
    pub model: String,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub host: String,
    /// Port to listen on (0: a free port, named in the log).
    #[arg(long, short = 'p', default_value_t = 3000)]
    pub port: u16,
    /// Real tokens per batch of the model thread.
    #[arg(long, default_value_t = 16384)]
    pub max_batch_tokens: usize,
    /// Requests handled at once; more are answered 429.
    #[arg(long, default_value_t = 512)]
    pub max_concurrent_requests: usize,
    /// Inputs per request; more are answered 413.
    #[arg(long, default_value_t = 32)]
    pub max_client_batch_size: usize,
    /// Bytes per request body; more are answered 413.
    #[arg(long, default_value_t = 2_000_000)]
    pub payload_limit: usize,
    /// Truncate inputs longer than the model takes (else 413) unless a request sends
    /// `"truncate": false`.
    #[arg(long)]
    pub auto_truncate: bool,
    /// Require `Authorization: Bearer <KEY>` on every route (401 without it).
    #[arg(long, value_name = "KEY", env = "API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Logs as JSON lines (RUST_LOG sets the level; default info).
    #[arg(long)]
    pub json_output: bool,
}

pub fn run(args: ServeArgs) -> CliResult {
    bert_server::run(bert_server::ServeOptions {
        model: args.model,
        host: args.host,
        port: args.port,
        max_batch_tokens: args.max_batch_tokens,
        max_concurrent_requests: args.max_concurrent_requests,
        max_client_batch_size: args.max_client_batch_size,
        payload_limit: args.payload_limit,
        auto_truncate: args.auto_truncate,
        api_key: args.api_key,
        json_logs: args.json_output,
    })?;
    Ok(())
}
