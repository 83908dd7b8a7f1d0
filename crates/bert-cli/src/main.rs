//! `bert`: encode and tokenize text with a BERT checkpoint, and benchmark the forward pass.

mod bench;
mod encode;
mod input;
mod tokenize;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "bert", version, about = "BERT (Hugging Face BertModel) in Rust", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Worker threads (default: all cores; RAYON_NUM_THREADS also works).
    #[arg(long, global = true)]
    threads: Option<usize>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the model and print (or save) last_hidden_state, pooler_output, hidden_states, attentions.
    Encode(encode::EncodeArgs),
    /// Print the token ids of each input as one JSON object per line.
    Tokenize(tokenize::TokenizeArgs),
    /// Time the peer benchmark's workloads (W1 latency, W2/W2F batches, W3* corpus).
    Bench(bench::BenchArgs),
}

/// Where texts come from and which model reads them; shared by every subcommand.
#[derive(Args, Clone, Debug)]
pub struct InputArgs {
    /// Texts to process (each one sequence of the batch).
    pub texts: Vec<String>,
    /// File with one text per line, or, for `*.jsonl`, one `{"text": ..., "text_pair": ...}` per
    /// line (`text_pair` optional); `-` reads standard input.
    #[arg(long, short = 'i', value_name = "FILE")]
    pub input: Option<std::path::PathBuf>,
    /// Model directory or Hugging Face hub id.
    #[arg(long, short = 'm', default_value = bert::hub::DEFAULT_MODEL)]
    pub model: String,
    /// Truncate each input to this many tokens, special tokens included (default: the tokenizer's
    /// model_max_length, else 512).
    #[arg(long, value_name = "N")]
    pub max_length: Option<usize>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(n) = cli.threads {
        if n == 0 {
            eprintln!("error: --threads must be at least 1");
            return ExitCode::from(2);
        }
        if let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
        {
            eprintln!("error: cannot start {n} threads: {e}");
            return ExitCode::FAILURE;
        }
    }
    let result = match cli.command {
        Command::Encode(a) => encode::run(a),
        Command::Tokenize(a) => tokenize::run(a),
        Command::Bench(a) => bench::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = std::error::Error::source(&*e);
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}

/// Errors of the CLI: the library's, I/O, and usage problems found after parsing.
pub type CliResult<T = ()> = Result<T, Box<dyn std::error::Error>>;
