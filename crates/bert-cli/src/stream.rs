//! Inputs to tokenized batches on a reader thread, so that reading and tokenizing batch k + 1
//! overlaps the work on batch k, and at most two batches are ever held.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

use bert::profile::{self, Phase};
use bert::{BertTokenizer, Encoding};

use crate::input::{self, Item, Origin};

/// Consecutive inputs, tokenized (and truncated to the tokenizer's max_length).
pub struct Batch {
    /// Position of the first input of the batch among all inputs.
    pub start: usize,
    pub origins: Vec<Origin>,
    pub encodings: Vec<Encoding>,
    /// Bytes of the input file read up to the end of this batch, and the file's length.
    pub file_progress: Option<(u64, u64)>,
}

impl Batch {
    /// The longest encoding, in tokens.
    pub fn max_len(&self) -> usize {
        self.encodings
            .iter()
            .map(|e| e.ids.len())
            .max()
            .unwrap_or(0)
    }

    /// Real tokens of the batch.
    pub fn tokens(&self) -> usize {
        self.encodings.iter().map(|e| e.ids.len()).sum()
    }

    /// `argument 1`, or `data.txt:3-34`, for messages.
    pub fn span(&self) -> String {
        match (self.origins.first(), self.origins.last()) {
            (Some(Origin::Line { file, line: a }), Some(Origin::Line { line: b, .. }))
                if a != b =>
            {
                format!("{file}:{a}-{b}")
            }
            (Some(a), Some(b)) if a != b => format!("{a} to {b}"),
            (Some(a), _) => a.to_string(),
            _ => "no input".into(),
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct BatchOptions {
    /// Inputs per batch.
    pub batch_size: usize,
    /// Fail on an input that does not fit `max_length` instead of truncating it.
    pub no_truncation: bool,
    /// Lowercase texts before tokenizing them (sentence-transformers' `do_lower_case`).
    pub lowercase: bool,
    /// Tokenize each batch on all cores (when nothing else runs beside the reader) instead of
    /// sequentially on the reader thread (when the model's forward uses the cores).
    pub parallel: bool,
}

/// Reads `items` and sends batches of tokenized inputs, one ahead of the consumer. The reader
/// thread is detached: when the consumer stops early (an error, a closed stdout) it does not
/// wait for a reader blocked on standard input.
pub fn batches(
    tok: &Arc<BertTokenizer>,
    items: impl Iterator<Item = Result<Item, String>> + Send + 'static,
    opts: BatchOptions,
) -> Receiver<Result<Batch, String>> {
    let (tx, rx) = sync_channel(1);
    let tok = Arc::clone(tok);
    let bs = opts.batch_size.max(1);
    std::thread::spawn(move || {
        let mut items = items;
        let mut start = 0;
        loop {
            let chunk: Result<Vec<Item>, String> = items.by_ref().take(bs).collect();
            let batch = chunk.and_then(|chunk| {
                if chunk.is_empty() {
                    return Ok(None);
                }
                profile::timed(Phase::Tokenization, || tokenize(&tok, chunk, start, opts)).map(Some)
            });
            match batch {
                Ok(None) => break,
                Ok(Some(b)) => {
                    start += b.encodings.len();
                    if tx.send(Ok(b)).is_err() {
                        break; // the consumer stopped
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    break;
                }
            }
        }
    });
    rx
}

fn tokenize(
    tok: &BertTokenizer,
    mut chunk: Vec<Item>,
    start: usize,
    opts: BatchOptions,
) -> Result<Batch, String> {
    if opts.lowercase {
        for item in &mut chunk {
            item.text = item.text.to_lowercase();
            item.text_pair = item.text_pair.as_ref().map(|t| t.to_lowercase());
        }
    }
    let encodings = if opts.parallel {
        input::tokenize_all(tok, &chunk).map_err(|e| e.to_string())?
    } else {
        chunk
            .iter()
            .map(|i| input::tokenize(tok, i).map_err(|e| format!("{}: {e}", i.origin)))
            .collect::<Result<Vec<_>, String>>()?
    };
    if opts.no_truncation {
        if let Some((item, _)) = chunk.iter().zip(&encodings).find(|(_, e)| e.truncated) {
            return Err(format!(
                "{}: longer than {} tokens, the maximum length (--no-truncation is set); \
                 shorten it, or leave out --no-truncation to truncate it",
                item.origin,
                tok.max_length()
            ));
        }
    }
    Ok(Batch {
        start,
        file_progress: chunk.last().and_then(|i| i.progress),
        origins: chunk.into_iter().map(|i| i.origin).collect(),
        encodings,
    })
}

/// What a job saw of its inputs, for the closing note.
#[derive(Default, Debug)]
pub struct Tally {
    pub inputs: usize,
    pub truncated: usize,
    pub max_len: usize,
}

impl Tally {
    pub fn add(&mut self, b: &Batch) {
        self.inputs += b.encodings.len();
        self.truncated += b.encodings.iter().filter(|e| e.truncated).count();
        self.max_len = self.max_len.max(b.max_len());
    }

    /// Says on stderr how many inputs were truncated, if any (nothing when `quiet`).
    pub fn report_truncation(&self, max_length: usize, quiet: bool) {
        if self.truncated > 0 && !quiet {
            eprintln!(
                "note: {} of {} inputs were longer than {max_length} tokens and were truncated \
                 to {max_length} (--no-truncation makes this an error)",
                self.truncated, self.inputs
            );
        }
    }
}
