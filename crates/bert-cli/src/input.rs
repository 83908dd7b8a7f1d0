//! Reading the inputs, one at a time: the TEXT arguments, then the lines of `--input` (a text file,
//! a JSONL file or standard input). Nothing holds the whole file: a job's memory does not grow with
//! its input.

use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::{CliResult, InputArgs};

/// One input: a text, or a pair of texts, and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub text: String,
    pub text_pair: Option<String>,
    pub origin: Origin,
    /// Bytes of the input file read up to this input, and the file's length, when it is known
    /// (for progress).
    pub progress: Option<(u64, u64)>,
}

/// Where an input came from, for messages: `argument 2`, `corpus.txt:17`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Argument(usize),
    Line { file: String, line: usize },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Argument(i) => write!(f, "argument {i}"),
            Origin::Line { file, line } => write!(f, "{file}:{line}"),
        }
    }
}

/// The inputs of a job, readable more than once (a job that must size its output first reads
/// them twice; standard input is then first copied to a temporary file).
pub struct Source {
    texts: Vec<String>,
    file: Option<FileSource>,
}

enum FileSource {
    Path(PathBuf),
    Stdin,
    /// Standard input copied to a temporary file, removed with the `Source`.
    Spooled(crate::output::TempFile),
}

impl Source {
    pub fn new(args: &InputArgs) -> Self {
        let file = args.input.as_ref().map(|p| {
            if p.as_os_str() == "-" {
                FileSource::Stdin
            } else {
                FileSource::Path(p.clone())
            }
        });
        Source {
            texts: args.texts.clone(),
            file,
        }
    }

    /// Only these texts (no file).
    pub fn from_texts(texts: Vec<String>) -> Self {
        Source { texts, file: None }
    }

    /// Makes the source readable a second time: standard input is copied to a temporary file.
    pub fn make_rereadable(&mut self) -> CliResult {
        if let Some(FileSource::Stdin) = self.file {
            let mut spool = crate::output::TempFile::create_in(&std::env::temp_dir(), "stdin")?;
            std::io::copy(&mut std::io::stdin().lock(), spool.writer()).map_err(|e| {
                format!("copying standard input to {}: {e}", spool.path().display())
            })?;
            spool.flush()?;
            self.file = Some(FileSource::Spooled(spool));
        }
        Ok(())
    }

    /// The inputs in order; an error if there are none.
    pub fn items(&self) -> CliResult<Items> {
        let (name, lines, file_len) = match &self.file {
            None => (String::new(), None, None),
            Some(FileSource::Stdin) => (
                "standard input".into(),
                Some(Box::new(BufReader::new(std::io::stdin())) as Box<dyn BufRead + Send>),
                None,
            ),
            Some(FileSource::Path(p)) => {
                let (r, len) = open(p)?;
                (p.display().to_string(), Some(r), len)
            }
            Some(FileSource::Spooled(t)) => {
                let (r, len) = open(t.path())?;
                ("standard input".into(), Some(r), len)
            }
        };
        let jsonl = match &self.file {
            Some(FileSource::Path(p)) => p.extension().is_some_and(|e| e == "jsonl"),
            _ => false,
        };
        let mut items = Items {
            texts: self.texts.clone().into_iter().enumerate(),
            lines,
            name,
            jsonl,
            line_no: 0,
            bytes_read: 0,
            file_len,
            buf: Vec::new(),
            peeked: None,
        };
        // Fail before any work when there is nothing to do, saying why.
        items.peeked = items.next();
        if items.peeked.is_none() {
            return Err(match &self.file {
                None => "no input: give TEXT arguments or --input FILE".into(),
                Some(_) if items.jsonl => {
                    format!("{}: no input (the file has no JSON lines)", items.name).into()
                }
                Some(_) => format!("{}: no input (the file is empty)", items.name).into(),
            });
        }
        Ok(items)
    }
}

/// A reader of `path`, and its length when it is a regular file (for progress).
fn open(path: &Path) -> CliResult<(Box<dyn BufRead + Send>, Option<u64>)> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let meta = f.metadata().ok();
    if meta.as_ref().is_some_and(|m| m.is_dir()) {
        return Err(format!(
            "{}: is a directory, expected a file of inputs",
            path.display()
        )
        .into());
    }
    let len = meta.filter(|m| m.is_file()).map(|m| m.len());
    Ok((Box::new(BufReader::with_capacity(1 << 16, f)), len))
}

/// The longest line read, in bytes (a BERT input is a few KB; `tokenizers` reads a text whole
/// before truncating it).
const MAX_LINE: u64 = 8 << 20;

/// The inputs of a [`Source`], one at a time.
pub struct Items {
    texts: std::iter::Enumerate<std::vec::IntoIter<String>>,
    lines: Option<Box<dyn BufRead + Send>>,
    name: String,
    jsonl: bool,
    line_no: usize,
    /// Bytes of the file consumed so far, and its length when known (for progress).
    bytes_read: u64,
    file_len: Option<u64>,
    buf: Vec<u8>,
    peeked: Option<Result<Item, String>>,
}

/// Errors are plain strings so that a reader thread can hand them over (`Box<dyn Error>` is not
/// `Send`).
impl Iterator for Items {
    type Item = Result<Item, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(p) = self.peeked.take() {
            return Some(p);
        }
        if let Some((i, text)) = self.texts.next() {
            return Some(Ok(Item {
                text,
                text_pair: None,
                origin: Origin::Argument(i + 1),
                progress: None,
            }));
        }
        loop {
            let reader = self.lines.as_mut()?;
            self.buf.clear();
            // A file without newlines (a binary, a minified JSON) must not be read whole.
            match reader.take(MAX_LINE + 1).read_until(b'\n', &mut self.buf) {
                Ok(0) => {
                    self.lines = None;
                    return None;
                }
                Ok(n) => self.bytes_read += n as u64,
                Err(e) => {
                    self.lines = None;
                    return Some(Err(format!("{}: {e}", self.name)));
                }
            }
            self.line_no += 1;
            let origin = Origin::Line {
                file: self.name.clone(),
                line: self.line_no,
            };
            if self.buf.len() as u64 > MAX_LINE {
                self.lines = None;
                return Some(Err(format!(
                    "{origin}: a line longer than {} MiB; is this a text file with one input per \
                     line?",
                    MAX_LINE >> 20
                )));
            }
            let raw = self.buf.strip_suffix(b"\n").unwrap_or(&self.buf);
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            let line = match std::str::from_utf8(raw) {
                Ok(l) => l,
                Err(e) => {
                    self.lines = None;
                    return Some(Err(format!(
                        "{origin}: not valid UTF-8 (at byte {} of the line)",
                        e.valid_up_to()
                    )));
                }
            };
            let progress = self.file_len.map(|len| (self.bytes_read, len));
            if !self.jsonl {
                return Some(Ok(Item {
                    text: line.to_string(),
                    text_pair: None,
                    origin,
                    progress,
                }));
            }
            if line.trim().is_empty() {
                continue;
            }
            return Some(match parse_jsonl(line) {
                Ok((text, text_pair)) => Ok(Item {
                    text,
                    text_pair,
                    origin,
                    progress,
                }),
                Err(e) => {
                    self.lines = None;
                    Err(format!("{origin}: {e}"))
                }
            });
        }
    }
}

fn parse_jsonl(line: &str) -> Result<(String, Option<String>), String> {
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let obj = v.as_object().ok_or("expected a JSON object")?;
    // `bert qa` reads {"question", "context"} lines: the question is the text, the context its pair.
    let (text_key, pair_key) = if obj.contains_key("question") && !obj.contains_key("text") {
        ("question", "context")
    } else {
        ("text", "text_pair")
    };
    let text = match obj.get(text_key) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(_) => return Err(format!("\"{text_key}\" must be a string")),
        None => return Err("missing \"text\"".into()),
    };
    let text_pair = match obj.get(pair_key) {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(format!("\"{pair_key}\" must be a string")),
    };
    Ok((text, text_pair))
}

/// Loads the tokenizer named by `args`. `positions` is the model's longest input (`max_input_length`) when
/// a model will read the tokens: `--max-length` may not exceed it, and the tokenizer's own
/// default is capped by it.
pub fn tokenizer(args: &InputArgs, positions: Option<usize>) -> CliResult<bert::BertTokenizer> {
    let tok = bert::BertTokenizer::from_pretrained(&args.model)?;
    let default = match positions {
        Some(p) => tok.max_length().min(p),
        None => tok.max_length(),
    };
    with_max_length(tok, args, default, positions)
}

/// `tok` truncating at `--max-length`, else at `default`; `--max-length` beyond the model's
/// `positions` is an error naming the flag.
pub fn with_max_length(
    tok: bert::BertTokenizer,
    args: &InputArgs,
    default: usize,
    positions: Option<usize>,
) -> CliResult<bert::BertTokenizer> {
    let max_length = match (args.max_length, positions) {
        (Some(n), Some(p)) if n > p => {
            return Err(format!(
                "--max-length {n} is more than the {p} positions of this model \
                 (its position table); use --max-length {p} or less"
            )
            .into())
        }
        (Some(n), _) => n,
        (None, _) => default,
    };
    Ok(tok.with_max_length(max_length))
}

/// Tokenizes one input as transformers' single call `tokenizer(text, text_pair)` does (an empty
/// `text_pair` is no pair).
pub fn tokenize(tok: &bert::BertTokenizer, item: &Item) -> bert::Result<bert::Encoding> {
    match &item.text_pair {
        Some(b) => tok.tokenize_pair(&item.text, b),
        None => tok.tokenize(&item.text),
    }
}

/// Tokenizes inputs in parallel, each as [`tokenize`] does.
pub fn tokenize_all(
    tok: &bert::BertTokenizer,
    items: &[Item],
) -> bert::Result<Vec<bert::Encoding>> {
    let refs: Vec<(&str, Option<&str>)> = items
        .iter()
        .map(|i| (i.text.as_str(), i.text_pair.as_deref()))
        .collect();
    tok.tokenize_mixed(&refs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_lines() {
        assert_eq!(
            parse_jsonl(r#"{"text": "a", "text_pair": "b"}"#).unwrap(),
            ("a".into(), Some("b".into()))
        );
        assert!(parse_jsonl(r#"{"text_pair": "b"}"#)
            .unwrap_err()
            .contains("missing"));
        assert!(parse_jsonl(r#"["a"]"#).is_err());
        assert!(parse_jsonl(r#"{"text": 3}"#).is_err());
        assert_eq!(
            parse_jsonl(r#"{"question": "q", "context": "c"}"#).unwrap(),
            ("q".into(), Some("c".into()))
        );
    }
}
