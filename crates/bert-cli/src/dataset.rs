//! Training and evaluation files for `bert train` / `bert evaluate`: read whole (a training set is
//! shuffled every epoch), every line checked before any training starts, errors naming the file
//! and line.
//!
//! Sequence tasks: JSON lines `{"text", "text_pair"?, "label"}` or a TSV / CSV file with a header.
//! Token tasks: CoNLL (token in the first column, tag in the last, blank line between sentences,
//! `-DOCSTART-` skipped) or JSON lines `{"tokens": [...], "tags": [...]}`.

use std::collections::BTreeSet;
use std::path::Path;

use bert::train::{align_word_labels, Example, Target};
use bert::{BertTokenizer, ProblemType};
use serde_json::Value;

use crate::CliResult;

/// A label as the file gives it.
#[derive(Clone, Debug, PartialEq)]
pub enum RawLabel {
    Name(String),
    Number(f64),
    Names(Vec<String>),
}

/// One sequence example before tokenization.
#[derive(Clone, Debug)]
pub struct TextRecord {
    pub line: usize,
    pub text: String,
    pub text_pair: Option<String>,
    pub label: RawLabel,
}

/// One sentence of a token task.
#[derive(Clone, Debug)]
pub struct TokenRecord {
    pub line: usize,
    pub tokens: Vec<String>,
    pub tags: Vec<String>,
}

/// Which columns of a TSV / CSV file hold what.
#[derive(Clone, Debug, Default)]
pub struct Columns {
    pub text: Option<String>,
    pub text_pair: Option<String>,
    pub label: Option<String>,
}

fn read_text(path: &Path) -> CliResult<String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        format!("{}:{line}: not valid UTF-8", path.display()).into()
    })
}

fn is_jsonl(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("jsonl" | "json")
    )
}

/// Reads a sequence-task file.
pub fn read_texts(path: &Path, cols: &Columns) -> CliResult<Vec<TextRecord>> {
    let text = read_text(path)?;
    let records = if is_jsonl(path) {
        read_text_jsonl(path, &text)?
    } else {
        read_delimited(path, &text, cols)?
    };
    if records.is_empty() {
        return Err(format!("{}: no examples", path.display()).into());
    }
    Ok(records)
}

fn read_text_jsonl(path: &Path, text: &str) -> CliResult<Vec<TextRecord>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let at = format!("{}:{}", path.display(), i + 1);
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).map_err(|e| format!("{at}: {e}"))?;
        let field = |k: &str| -> CliResult<Option<String>> {
            match v.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(format!("{at}: \"{k}\" must be a string, found {other}").into()),
            }
        };
        let text = field("text")?.ok_or_else(|| format!("{at}: no \"text\""))?;
        let label = match v.get("label") {
            Some(Value::String(s)) => RawLabel::Name(s.clone()),
            Some(Value::Number(n)) => RawLabel::Number(
                n.as_f64()
                    .ok_or_else(|| format!("{at}: label {n} is not a number"))?,
            ),
            Some(Value::Array(a)) => RawLabel::Names(
                a.iter()
                    .map(|x| match x {
                        Value::String(s) => Ok(s.clone()),
                        other => Err(format!("{at}: list labels must be strings, found {other}")),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            None | Some(Value::Null) => return Err(format!("{at}: no \"label\"").into()),
            Some(other) => {
                return Err(format!(
                    "{at}: \"label\" must be a string, a number or a list of strings, found {other}"
                )
                .into())
            }
        };
        out.push(TextRecord {
            line: i + 1,
            text,
            text_pair: field("text_pair")?,
            label,
        });
    }
    Ok(out)
}

fn read_delimited(path: &Path, text: &str, cols: &Columns) -> CliResult<Vec<TextRecord>> {
    let tsv = path.extension().and_then(|e| e.to_str()) != Some("csv");
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(if tsv { b'\t' } else { b',' })
        // GLUE's TSV files hold raw text with stray quotes.
        .quoting(!tsv)
        .flexible(false)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| format!("{}:1: {e}", path.display()))?
        .iter()
        .map(String::from)
        .collect();
    let find = |name: &Option<String>, defaults: &[&str], what: &str| -> CliResult<Option<usize>> {
        match name {
            Some(n) => header.iter().position(|h| h == n).map(Some).ok_or_else(|| {
                format!(
                    "{}: no column `{n}` ({what}) in the header {header:?}",
                    path.display()
                )
                .into()
            }),
            None => Ok(defaults
                .iter()
                .find_map(|d| header.iter().position(|h| h == d))),
        }
    };
    let text_col = find(
        &cols.text,
        &["text", "sentence", "sentence1"],
        "--text-column",
    )?
    .ok_or_else(|| {
        format!(
            "{}: no text column in the header {header:?}; name it with --text-column",
            path.display()
        )
    })?;
    let pair_col = find(
        &cols.text_pair,
        &["text_pair", "sentence2"],
        "--text-pair-column",
    )?;
    let label_col = find(&cols.label, &["label"], "--label-column")?.ok_or_else(|| {
        format!(
            "{}: no label column in the header {header:?}; name it with --label-column",
            path.display()
        )
    })?;
    let mut out = Vec::new();
    for (i, row) in reader.records().enumerate() {
        let line = i + 2;
        let row = row.map_err(|e| format!("{}:{line}: {e}", path.display()))?;
        let get = |c: usize| row.get(c).unwrap_or("").to_string();
        let label = get(label_col);
        if label.is_empty() {
            return Err(format!("{}:{line}: empty label", path.display()).into());
        }
        out.push(TextRecord {
            line,
            text: get(text_col),
            text_pair: pair_col.map(get),
            label: RawLabel::Name(label),
        });
    }
    Ok(out)
}

/// Reads a token-task file.
pub fn read_tokens(path: &Path) -> CliResult<Vec<TokenRecord>> {
    let text = read_text(path)?;
    let mut out = Vec::new();
    if is_jsonl(path) {
        for (i, line) in text.lines().enumerate() {
            let at = format!("{}:{}", path.display(), i + 1);
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(line).map_err(|e| format!("{at}: {e}"))?;
            let list = |k: &str| -> CliResult<Vec<String>> {
                match v.get(k) {
                    Some(Value::Array(a)) => a
                        .iter()
                        .map(|x| match x {
                            Value::String(s) => Ok(s.clone()),
                            Value::Number(n) => Ok(n.to_string()),
                            other => Err(format!("{at}: \"{k}\" holds {other}").into()),
                        })
                        .collect(),
                    _ => Err(format!("{at}: \"{k}\" must be a list").into()),
                }
            };
            let (tokens, tags) = (list("tokens")?, list("tags")?);
            if tokens.len() != tags.len() {
                return Err(
                    format!("{at}: {} tokens but {} tags", tokens.len(), tags.len()).into(),
                );
            }
            out.push(TokenRecord {
                line: i + 1,
                tokens,
                tags,
            });
        }
    } else {
        let mut cur = TokenRecord {
            line: 1,
            tokens: vec![],
            tags: vec![],
        };
        for (i, line) in text.lines().enumerate() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.is_empty() {
                if !cur.tokens.is_empty() {
                    out.push(std::mem::replace(
                        &mut cur,
                        TokenRecord {
                            line: i + 2,
                            tokens: vec![],
                            tags: vec![],
                        },
                    ));
                } else {
                    cur.line = i + 2;
                }
                continue;
            }
            if fields[0] == "-DOCSTART-" {
                continue;
            }
            if fields.len() < 2 {
                return Err(format!(
                    "{}:{}: a CoNLL line needs a token and a tag, found `{line}`",
                    path.display(),
                    i + 1
                )
                .into());
            }
            cur.tokens.push(fields[0].to_string());
            cur.tags.push(fields[fields.len() - 1].to_string());
        }
        if !cur.tokens.is_empty() {
            out.push(cur);
        }
    }
    if out.is_empty() {
        return Err(format!("{}: no sentences", path.display()).into());
    }
    Ok(out)
}

/// The problem type a training file implies: numbers are regression, lists multi-label, names
/// single-label; a file must not mix them.
pub fn guess_problem_type(path: &Path, records: &[TextRecord]) -> CliResult<ProblemType> {
    let kind = |l: &RawLabel| match l {
        RawLabel::Name(_) => ProblemType::SingleLabelClassification,
        RawLabel::Number(_) => ProblemType::Regression,
        RawLabel::Names(_) => ProblemType::MultiLabelClassification,
    };
    let first = kind(&records[0].label);
    if let Some(r) = records.iter().find(|r| kind(&r.label) != first) {
        return Err(format!(
            "{}:{}: label of another kind than line {}'s ({first:?}); use one kind of label per file",
            path.display(),
            r.line,
            records[0].line
        )
        .into());
    }
    Ok(first)
}

/// The label set of a training file, sorted (a stable order, as run_glue.py's `sorted(set(...))`).
pub fn label_set_texts(records: &[TextRecord], pt: ProblemType) -> Vec<String> {
    let mut set = BTreeSet::new();
    for r in records {
        match &r.label {
            RawLabel::Name(n) => {
                set.insert(n.clone());
            }
            RawLabel::Names(ns) => set.extend(ns.iter().cloned()),
            RawLabel::Number(v) if pt != ProblemType::Regression => {
                set.insert(number_name(*v));
            }
            RawLabel::Number(_) => {}
        }
    }
    set.into_iter().collect()
}

fn number_name(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        v.to_string()
    }
}

pub fn label_set_tokens(records: &[TokenRecord]) -> Vec<String> {
    let set: BTreeSet<String> = records
        .iter()
        .flat_map(|r| r.tags.iter().cloned())
        .collect();
    set.into_iter().collect()
}

/// Tokenizes sequence records into examples; labels are looked up in `labels` (an unknown one is
/// an error naming the line). Returns the examples and how many were truncated.
pub fn text_examples(
    path: &Path,
    records: &[TextRecord],
    tok: &BertTokenizer,
    labels: &[String],
    pt: ProblemType,
    num_labels: usize,
) -> CliResult<(Vec<Example>, usize)> {
    let inputs: Vec<(&str, Option<&str>)> = records
        .iter()
        .map(|r| (r.text.as_str(), r.text_pair.as_deref()))
        .collect();
    let encodings = tok.tokenize_mixed(&inputs)?;
    let index = |name: &str, line: usize| -> CliResult<usize> {
        labels.iter().position(|l| l == name).ok_or_else(|| {
            format!(
                "{}:{line}: label `{name}` is not in the training set's labels {labels:?}",
                path.display()
            )
            .into()
        })
    };
    let mut truncated = 0;
    let mut out = Vec::with_capacity(records.len());
    for (r, e) in records.iter().zip(encodings) {
        truncated += usize::from(e.truncated);
        let target = match (pt, &r.label) {
            (ProblemType::Regression, RawLabel::Number(v)) if num_labels == 1 => {
                Target::Scores(vec![*v as f32])
            }
            (ProblemType::Regression, RawLabel::Name(n)) if num_labels == 1 => {
                Target::Scores(vec![n.trim().parse::<f32>().map_err(|_| {
                    format!(
                        "{}:{}: regression needs a number label, found `{n}`",
                        path.display(),
                        r.line
                    )
                })?])
            }
            (ProblemType::Regression, other) => {
                return Err(format!(
                    "{}:{}: regression needs a number label, found {other:?}",
                    path.display(),
                    r.line
                )
                .into())
            }
            (ProblemType::SingleLabelClassification, RawLabel::Name(n)) => {
                Target::Class(index(n, r.line)? as i64)
            }
            (ProblemType::SingleLabelClassification, RawLabel::Number(v)) => {
                Target::Class(index(&number_name(*v), r.line)? as i64)
            }
            (ProblemType::MultiLabelClassification, RawLabel::Names(ns)) => {
                let mut v = vec![0.0f32; labels.len()];
                for n in ns {
                    v[index(n, r.line)?] = 1.0;
                }
                Target::Scores(v)
            }
            (ProblemType::MultiLabelClassification, RawLabel::Name(n)) => {
                let mut v = vec![0.0f32; labels.len()];
                v[index(n, r.line)?] = 1.0;
                Target::Scores(v)
            }
            (pt, other) => {
                return Err(format!(
                    "{}:{}: label {other:?} does not fit problem type {pt:?}",
                    path.display(),
                    r.line
                )
                .into())
            }
        };
        out.push(Example {
            ids: e.ids,
            type_ids: e.type_ids,
            target,
        });
    }
    Ok((out, truncated))
}

/// Tokenizes sentences word by word (labels on each word's first token, -100 elsewhere, as
/// run_ner.py). Returns the examples and how many were truncated.
pub fn token_examples(
    path: &Path,
    records: &[TokenRecord],
    tok: &BertTokenizer,
    labels: &[String],
) -> CliResult<(Vec<Example>, usize)> {
    let mut out = Vec::with_capacity(records.len());
    let mut truncated = 0;
    for r in records {
        let words: Vec<&str> = r.tokens.iter().map(String::as_str).collect();
        let (e, word_ids) = tok.tokenize_words(&words)?;
        truncated += usize::from(e.truncated);
        let tags: Vec<i64> = r
            .tags
            .iter()
            .map(|t| {
                labels
                    .iter()
                    .position(|l| l == t)
                    .map(|i| i as i64)
                    .ok_or_else(|| {
                        format!(
                            "{}:{}: tag `{t}` is not in the training set's tags {labels:?}",
                            path.display(),
                            r.line
                        )
                    })
            })
            .collect::<Result<_, _>>()?;
        out.push(Example {
            ids: e.ids,
            type_ids: e.type_ids,
            target: Target::Tokens(align_word_labels(&word_ids, &tags)),
        });
    }
    Ok((out, truncated))
}
