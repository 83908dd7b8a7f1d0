//! The one error type of the `bert` crate.
//!
//! Every variant names what is at fault (a file, a tensor, a config field, an input) and, where it
//! applies, what was expected, so a message read without the code still says what to fix.

use std::path::PathBuf;

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when loading or running a BERT model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be opened, read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A JSON file (config.json, tokenizer_config.json, a shard index) is not valid JSON, or a field
    /// is missing or has a value this crate cannot use (the message then says which).
    #[error("{}: {}{source}", path.display(), json_kind(source))]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// The model configuration asks for something this crate does not implement or is inconsistent.
    #[error("config: {0}")]
    Config(String),

    /// A model directory lacks a file the loader needs.
    #[error("{}: no {what} found (looked for {looked_for})", dir.display())]
    MissingFile {
        dir: PathBuf,
        what: &'static str,
        looked_for: String,
    },

    /// A checkpoint file is malformed or truncated.
    #[error("{}: {msg}", path.display())]
    Checkpoint { path: PathBuf, msg: String },

    /// A tensor the model needs is absent from the checkpoint.
    #[error("tensor `{name}` not found in {}", files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    MissingTensor { name: String, files: Vec<PathBuf> },

    /// A task head's tensors are absent from the checkpoint. transformers would initialize them
    /// randomly (with a warning); this crate refuses, so random logits are never mistaken for a
    /// trained head. `with_new_head` is the explicit way to start a fresh head for fine-tuning.
    #[error(
        "{head}: the checkpoint has no {} (looked in {}); its config.json architectures say {}. \
         Load the class the checkpoint was trained as, or start an untrained head with `{head}::with_new_head`",
        names.join(", "),
        files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        if architectures.is_empty() { "nothing".to_string() } else { architectures.join(", ") }
    )]
    MissingHead {
        head: &'static str,
        names: Vec<String>,
        files: Vec<PathBuf>,
        architectures: Vec<String>,
    },

    /// A tensor has the wrong shape or an unsupported dtype.
    #[error("tensor `{name}` in {}: {msg}", path.display())]
    Tensor {
        name: String,
        path: PathBuf,
        msg: String,
    },

    /// The tokenizer files are unusable, or tokenization failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),

    /// The inputs to a forward pass are inconsistent with each other or with the model.
    #[error("invalid input: {0}")]
    Input(String),

    /// A model could not be found locally nor fetched.
    #[error("cannot get model `{model}`: {msg}")]
    Hub { model: String, msg: String },

    /// A training or evaluation data file (JSON lines, TSV / CSV, CoNLL) is unusable: `line`
    /// (1-based) names the line at fault where there is one.
    #[error("{}{}: {msg}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Data {
        path: PathBuf,
        line: Option<usize>,
        msg: String,
    },
}

/// "invalid JSON: " for text that is not JSON at all; nothing for a well-formed document whose
/// values are wrong, where serde's message already names the field (`unsupported hidden_act ...`).
fn json_kind(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "invalid JSON: ",
        serde_json::error::Category::Data | serde_json::error::Category::Io => "",
    }
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn checkpoint(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Checkpoint {
            path: path.into(),
            msg: msg.into(),
        }
    }

    pub(crate) fn data(
        path: impl Into<PathBuf>,
        line: Option<usize>,
        msg: impl Into<String>,
    ) -> Self {
        Error::Data {
            path: path.into(),
            line,
            msg: msg.into(),
        }
    }

    pub(crate) fn tensor(
        name: impl Into<String>,
        path: impl Into<PathBuf>,
        msg: impl Into<String>,
    ) -> Self {
        Error::Tensor {
            name: name.into(),
            path: path.into(),
            msg: msg.into(),
        }
    }
}
