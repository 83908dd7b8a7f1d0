//! `bert`: encode, embed and tokenize text with a BERT checkpoint, benchmark the forward pass, and
//! run the task pipelines (classify, ner, qa, fill-mask, rerank), and serve them over HTTP (serve).

mod bench;
mod classify;
mod embed;
mod encode;
mod fill_mask;
mod input;
mod memory;
mod ner;
mod output;
mod progress;
mod qa;
mod rerank;
mod serve;
mod stream;
mod summary;
mod task;
mod tokenize;
mod train;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bert",
    version,
    about = "BERT (Hugging Face BertModel) and its family (RoBERTa, XLM-RoBERTa, DistilBERT, ELECTRA) in Rust",
    long_about = None,
    after_help = "A closed standard output (`bert tokenize ... | head`) ends any subcommand quietly \
                  with exit status 0; errors go to stderr with status 1 (2 for usage errors)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Worker threads (default: all cores; RAYON_NUM_THREADS also works).
    #[arg(long, global = true)]
    threads: Option<usize>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the model and print a summary of (or save) last_hidden_state, pooler_output,
    /// hidden_states, attentions.
    Encode(encode::EncodeArgs),
    /// Sentence embeddings (sentence-transformers' pooling and normalization), one per input, as
    /// JSON lines or into a .jsonl, .npy or .safetensors file; streams files of any size.
    Embed(embed::EmbedArgs),
    /// Print the token ids of each input as one JSON object per line.
    Tokenize(tokenize::TokenizeArgs),
    /// Time the peer benchmark's workloads (W1 latency, W2/W2F batches, W3* corpus).
    Bench(bench::BenchArgs),
    /// Classify texts or pairs (text-classification pipeline): one JSON list of
    /// {"label", "score"} per input.
    Classify(classify::ClassifyArgs),
    /// Tag entities (token-classification pipeline): one JSON list of entities per text.
    Ner(ner::NerArgs),
    /// Extract answers from a context (question-answering pipeline).
    Qa(qa::QaArgs),
    /// Predict the mask tokens ([MASK], <mask>) of each text (fill-mask pipeline).
    FillMask(fill_mask::FillMaskArgs),
    /// Score passages against a query with a cross-encoder: one {"corpus_id", "score"} per passage.
    Rerank(rerank::RerankArgs),
    /// Fine-tune for sequence or token classification (as transformers' Trainer) and write a
    /// transformers checkpoint.
    Train(train::TrainArgs),
    /// Score a fine-tuned classifier or tagger on a labelled file (accuracy and macro-F1, or
    /// entity precision/recall/F1): `--dtype f32` runs the training forward (the numbers of
    /// `bert train`'s evaluation), `--dtype int8`, `f16` or `bf16` the inference head of
    /// `classify` / `ner` in that format.
    Evaluate(train::EvaluateArgs),
    /// Serve the model over HTTP: text-embeddings-inference's API (/embed, /predict, /rerank, ...),
    /// OpenAI's /v1/embeddings, /ner and /qa, with dynamic batching; SIGTERM drains and exits 0.
    Serve(serve::ServeArgs),
}

/// Where texts come from, which model reads them and how they are cut; shared by the subcommands
/// that read inputs.
#[derive(Args, Clone, Debug)]
pub struct InputArgs {
    /// Texts to process, each one input.
    pub texts: Vec<String>,
    /// File of inputs, read after the TEXT arguments; `-` reads standard input. A text file holds
    /// one text per line, and an empty line is an empty text (`[CLS] [SEP]`). A `*.jsonl` file
    /// holds one `{"text": ..., "text_pair": ...}` object per line (`text_pair` optional), and
    /// blank lines are skipped, as JSON Lines readers do.
    #[arg(long, short = 'i', value_name = "FILE", verbatim_doc_comment)]
    pub input: Option<std::path::PathBuf>,
    /// Model directory or Hugging Face hub id.
    #[arg(long, short = 'm', default_value = bert::hub::DEFAULT_MODEL)]
    pub model: String,
    /// Truncate each input to this many tokens, special tokens included (default: the tokenizer's
    /// model_max_length, else 512, at most the model's longest input (max_position_embeddings, less RoBERTa's padding offset); for `embed`, the
    /// model's max_seq_length; for `ner` and `qa`, the window length). How many inputs were
    /// truncated is reported on stderr.
    #[arg(long, value_name = "N")]
    pub max_length: Option<usize>,
    /// Fail on an input longer than the maximum length instead of truncating it (transformers'
    /// `truncation=False`).
    #[arg(long)]
    pub no_truncation: bool,
    /// No progress bar and no notes on stderr (errors, and the note that bf16 runs emulated, are
    /// still reported).
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// The number format a command's model computes in; shared by the subcommands that run a model.
#[derive(Args, Clone, Copy, Debug)]
pub struct DtypeArgs {
    /// Number format of the encoder's Linear layers: `f32` (exact), `f16` (weights rounded to f16
    /// at load, half the memory, f32 arithmetic: embeddings cosine to f32 > 0.99999), `bf16`
    /// (weights and each product's input rounded to bf16, f32 sums, as PyTorch's bf16 autocast:
    /// about twice f32's products with AVX512-BF16, more on Intel AMX; elsewhere emulated on the
    /// f32 kernels with bf16 weights, half f32's memory, about f32's speed on large batches and
    /// faster on a few tokens, with a note on stderr) or `int8` (weights quantized per output
    /// channel at load, activations per row at run time: faster, within the accuracy bounds of
    /// docs/quantization.md). Embeddings, LayerNorm, softmax and heads stay f32; attention's
    /// products too, except that bf16 and int8 run them in bf16 for sequences over 16 tokens where
    /// the CPU has Intel AMX-BF16 or AVX512-BF16 (AMD Zen 4 and 5).
    #[arg(long, value_name = "DTYPE", default_value = "f32")]
    pub dtype: bert::Dtype,
}

impl DtypeArgs {
    /// The load options, after a note on stderr (once per process) if this CPU emulates the dtype.
    pub fn load_options(&self) -> bert::LoadOptions {
        static NOTED: std::sync::Once = std::sync::Once::new();
        if !self.dtype.is_native() {
            NOTED.call_once(|| {
                eprintln!(
                    "note: --dtype {} runs emulated on the f32 kernels (this CPU has no \
                     AVX512-BF16, or BERT_KERNELS_ISA chose another path): bf16's numbers and \
                     weight memory, about f32's speed",
                    self.dtype
                )
            });
        }
        bert::LoadOptions::dtype(self.dtype)
    }
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
    // The server handles SIGINT/SIGTERM itself (it drains requests, then exits 0).
    if !matches!(cli.command, Command::Serve(_)) {
        output::remove_partial_files_on_signal();
    }
    let result = match cli.command {
        Command::Encode(a) => encode::run(a),
        Command::Embed(a) => embed::run(a),
        Command::Tokenize(a) => tokenize::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Classify(a) => classify::run(a),
        Command::Ner(a) => ner::run(a),
        Command::Qa(a) => qa::run(a),
        Command::FillMask(a) => fill_mask::run(a),
        Command::Rerank(a) => rerank::run(a),
        Command::Train(a) => train::run(a),
        Command::Evaluate(a) => train::run_evaluate(a),
        Command::Serve(a) => serve::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away (`| head`): like `cat`, stop without complaint.
        Err(e) if is_broken_pipe(&*e) => ExitCode::SUCCESS,
        Err(e) => {
            report(&*e);
            ExitCode::FAILURE
        }
    }
}

/// Prints an error and the causes its message does not already contain (the library's messages
/// include their source's text, so printing the chain as is would repeat it).
fn report(e: &(dyn std::error::Error + 'static)) {
    let message = e.to_string();
    eprintln!("error: {message}");
    let mut said = message;
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !said.contains(&text) {
            eprintln!("  caused by: {text}");
            said.push_str(&text);
        }
        source = s.source();
    }
}

fn is_broken_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        {
            return true;
        }
        cur = e.source();
    }
    false
}

/// Errors of the CLI: the library's, I/O, and usage problems found after parsing.
pub type CliResult<T = ()> = Result<T, Box<dyn std::error::Error>>;
