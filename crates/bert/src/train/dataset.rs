//! Training and evaluation files, as `bert train` / `bert evaluate` and [`run_train`](super::run_train)
//! read them: read whole (a training set is shuffled every epoch), every line checked before any
//! training starts, errors ([`Error::Data`]) naming the file and line.
//!
//! Sequence tasks: JSON lines `{"text", "text_pair"?, "label"}` or a TSV / CSV file with a header.
//! Token tasks: CoNLL (token in the first column, tag in the last, blank line between sentences,
//! `-DOCSTART-` skipped) or JSON lines `{"tokens": [...], "tags": [...]}`.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use super::data::{align_word_labels, Example, Target};
use crate::{BertTokenizer, Error, ProblemType, Result};

/// A label as the file gives it.
#[derive(Clone, Debug, PartialEq)]
pub enum RawLabel {
    /// A class name (also every TSV / CSV label, parsed later when the task is regression).
    Name(String),
    /// A JSON number: a regression target, or a class named by the number.
    Number(f64),
    /// A JSON list of class names: multi-label.
    Names(Vec<String>),
}

/// One sequence example before tokenization.
#[derive(Clone, Debug)]
pub struct TextRecord {
    /// 1-based line in the file, for errors.
    pub line: usize,
    /// The text (the first of a pair).
    pub text: String,
    /// The second text of a pair.
    pub text_pair: Option<String>,
    /// The label as written.
    pub label: RawLabel,
}

/// One sentence of a token task.
#[derive(Clone, Debug)]
pub struct TokenRecord {
    /// 1-based line of the sentence's first token (of its JSON line), for errors.
    pub line: usize,
    /// The words.
    pub tokens: Vec<String>,
    /// One tag per word.
    pub tags: Vec<String>,
}

/// Which columns of a TSV / CSV file hold what; `None` looks for the usual names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Columns {
    /// The text (default: `text`, `sentence` or `sentence1`).
    pub text: Option<String>,
    /// The second text of a pair (default: `text_pair` or `sentence2`, if any).
    pub text_pair: Option<String>,
    /// The label (default: `label`).
    pub label: Option<String>,
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    String::from_utf8(bytes).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        Error::data(path, Some(line), "not valid UTF-8")
    })
}

fn is_jsonl(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("jsonl" | "json")
    )
}

/// Reads a sequence-task file: JSON lines when it ends in `.jsonl` or `.json`, CSV when it ends
/// in `.csv`, TSV otherwise.
pub fn read_texts(path: &Path, cols: &Columns) -> Result<Vec<TextRecord>> {
    let text = read_text(path)?;
    let records = if is_jsonl(path) {
        read_text_jsonl(path, &text)?
    } else {
        read_delimited(path, &text, cols)?
    };
    if records.is_empty() {
        return Err(Error::data(path, None, "no examples"));
    }
    Ok(records)
}

fn read_text_jsonl(path: &Path, text: &str) -> Result<Vec<TextRecord>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let at = |msg: String| Error::data(path, Some(i + 1), msg);
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).map_err(|e| at(e.to_string()))?;
        let field = |k: &str| -> Result<Option<String>> {
            match v.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(at(format!("\"{k}\" must be a string, found {other}"))),
            }
        };
        let text = field("text")?.ok_or_else(|| at("no \"text\"".into()))?;
        let label = match v.get("label") {
            Some(Value::String(s)) => RawLabel::Name(s.clone()),
            Some(Value::Number(n)) => RawLabel::Number(
                n.as_f64()
                    .ok_or_else(|| at(format!("label {n} is not a number")))?,
            ),
            Some(Value::Array(a)) => RawLabel::Names(
                a.iter()
                    .map(|x| match x {
                        Value::String(s) => Ok(s.clone()),
                        other => Err(at(format!("list labels must be strings, found {other}"))),
                    })
                    .collect::<Result<_>>()?,
            ),
            None | Some(Value::Null) => return Err(at("no \"label\"".into())),
            Some(other) => {
                return Err(at(format!(
                    "\"label\" must be a string, a number or a list of strings, found {other}"
                )))
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

fn read_delimited(path: &Path, text: &str, cols: &Columns) -> Result<Vec<TextRecord>> {
    let tsv = path.extension().and_then(|e| e.to_str()) != Some("csv");
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(if tsv { b'\t' } else { b',' })
        // GLUE's TSV files hold raw text with stray quotes.
        .quoting(!tsv)
        .flexible(false)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| Error::data(path, Some(1), e.to_string()))?
        .iter()
        .map(String::from)
        .collect();
    let find = |name: &Option<String>, defaults: &[&str], what: &str| -> Result<Option<usize>> {
        match name {
            Some(n) => header.iter().position(|h| h == n).map(Some).ok_or_else(|| {
                Error::data(
                    path,
                    None,
                    format!("no column `{n}` ({what}) in the header {header:?}"),
                )
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
        Error::data(
            path,
            None,
            format!("no text column in the header {header:?}; name it with --text-column"),
        )
    })?;
    let pair_col = find(
        &cols.text_pair,
        &["text_pair", "sentence2"],
        "--text-pair-column",
    )?;
    let label_col = find(&cols.label, &["label"], "--label-column")?.ok_or_else(|| {
        Error::data(
            path,
            None,
            format!("no label column in the header {header:?}; name it with --label-column"),
        )
    })?;
    let mut out = Vec::new();
    for (i, row) in reader.records().enumerate() {
        let line = i + 2;
        let row = row.map_err(|e| Error::data(path, Some(line), e.to_string()))?;
        let get = |c: usize| row.get(c).unwrap_or("").to_string();
        let label = get(label_col);
        if label.is_empty() {
            return Err(Error::data(path, Some(line), "empty label"));
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

/// Reads a token-task file: JSON lines when it ends in `.jsonl` or `.json`, CoNLL otherwise.
pub fn read_tokens(path: &Path) -> Result<Vec<TokenRecord>> {
    let text = read_text(path)?;
    let out = if is_jsonl(path) {
        read_tokens_jsonl(path, &text)?
    } else {
        read_conll(path, &text)?
    };
    if out.is_empty() {
        return Err(Error::data(path, None, "no sentences"));
    }
    Ok(out)
}

fn read_tokens_jsonl(path: &Path, text: &str) -> Result<Vec<TokenRecord>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let at = |msg: String| Error::data(path, Some(i + 1), msg);
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).map_err(|e| at(e.to_string()))?;
        let list = |k: &str| -> Result<Vec<String>> {
            match v.get(k) {
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| match x {
                        Value::String(s) => Ok(s.clone()),
                        Value::Number(n) => Ok(n.to_string()),
                        other => Err(at(format!("\"{k}\" holds {other}"))),
                    })
                    .collect(),
                _ => Err(at(format!("\"{k}\" must be a list"))),
            }
        };
        let (tokens, tags) = (list("tokens")?, list("tags")?);
        if tokens.len() != tags.len() {
            return Err(at(format!(
                "{} tokens but {} tags",
                tokens.len(),
                tags.len()
            )));
        }
        out.push(TokenRecord {
            line: i + 1,
            tokens,
            tags,
        });
    }
    Ok(out)
}

fn read_conll(path: &Path, text: &str) -> Result<Vec<TokenRecord>> {
    let mut out = Vec::new();
    let empty = |line| TokenRecord {
        line,
        tokens: vec![],
        tags: vec![],
    };
    let mut cur = empty(1);
    for (i, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            if !cur.tokens.is_empty() {
                out.push(std::mem::replace(&mut cur, empty(i + 2)));
            } else {
                cur.line = i + 2;
            }
            continue;
        }
        if fields[0] == "-DOCSTART-" {
            continue;
        }
        if fields.len() < 2 {
            return Err(Error::data(
                path,
                Some(i + 1),
                format!("a CoNLL line needs a token and a tag, found `{line}`"),
            ));
        }
        cur.tokens.push(fields[0].to_string());
        cur.tags.push(fields[fields.len() - 1].to_string());
    }
    if !cur.tokens.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

/// The problem type a training file implies: numbers are regression, lists multi-label, names
/// single-label; a file must not mix them. `records` must not be empty (as [`read_texts`]
/// returns them).
pub fn guess_problem_type(path: &Path, records: &[TextRecord]) -> Result<ProblemType> {
    let kind = |l: &RawLabel| match l {
        RawLabel::Name(_) => ProblemType::SingleLabelClassification,
        RawLabel::Number(_) => ProblemType::Regression,
        RawLabel::Names(_) => ProblemType::MultiLabelClassification,
    };
    let Some(first_record) = records.first() else {
        return Err(Error::data(path, None, "no examples"));
    };
    let first = kind(&first_record.label);
    if let Some(r) = records.iter().find(|r| kind(&r.label) != first) {
        return Err(Error::data(
            path,
            Some(r.line),
            format!(
                "label of another kind than line {}'s ({first:?}); use one kind of label per file",
                first_record.line
            ),
        ));
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

/// A number label's class name: `1` for 1.0, as Python's `str(int(v))` where it is whole.
fn number_name(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        v.to_string()
    }
}

/// The tag set of a token-task file, sorted.
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
) -> Result<(Vec<Example>, usize)> {
    let inputs: Vec<(&str, Option<&str>)> = records
        .iter()
        .map(|r| (r.text.as_str(), r.text_pair.as_deref()))
        .collect();
    let encodings = tok.tokenize_mixed(&inputs)?;
    let index = |name: &str, line: usize| -> Result<usize> {
        labels.iter().position(|l| l == name).ok_or_else(|| {
            Error::data(
                path,
                Some(line),
                format!("label `{name}` is not in the training set's labels {labels:?}"),
            )
        })
    };
    let mut truncated = 0;
    let mut out = Vec::with_capacity(records.len());
    for (r, e) in records.iter().zip(encodings) {
        truncated += usize::from(e.truncated);
        let at = |msg: String| Error::data(path, Some(r.line), msg);
        let target = match (pt, &r.label) {
            (ProblemType::Regression, RawLabel::Number(v)) if num_labels == 1 => {
                Target::Scores(vec![*v as f32])
            }
            (ProblemType::Regression, RawLabel::Name(n)) if num_labels == 1 => {
                Target::Scores(vec![n.trim().parse::<f32>().map_err(|_| {
                    at(format!("regression needs a number label, found `{n}`"))
                })?])
            }
            (ProblemType::Regression, other) => {
                return Err(at(format!(
                    "regression needs a number label, found {other:?}"
                )))
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
                return Err(at(format!(
                    "label {other:?} does not fit problem type {pt:?}"
                )))
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
) -> Result<(Vec<Example>, usize)> {
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
                        Error::data(
                            path,
                            Some(r.line),
                            format!("tag `{t}` is not in the training set's tags {labels:?}"),
                        )
                    })
            })
            .collect::<Result<_>>()?;
        out.push(Example {
            ids: e.ids,
            type_ids: e.type_ids,
            target: Target::Tokens(align_word_labels(&word_ids, &tags)),
        });
    }
    Ok((out, truncated))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(err: Error) -> (Option<usize>, String) {
        match err {
            Error::Data { line, msg, .. } => (line, msg),
            other => panic!("expected Error::Data, got {other:?}"),
        }
    }

    #[test]
    fn jsonl_texts_and_their_label_kinds() {
        let p = Path::new("t.jsonl");
        let text = "{\"text\": \"a\", \"label\": \"x\"}\n\n{\"text\": \"b\", \"text_pair\": \"c\", \"label\": 2}\n\
                    {\"text\": \"d\", \"label\": [\"x\", \"y\"]}\n";
        let r = read_text_jsonl(p, text).unwrap();
        assert_eq!(r.iter().map(|r| r.line).collect::<Vec<_>>(), [1, 3, 4]);
        assert_eq!(r[1].text_pair.as_deref(), Some("c"));
        assert_eq!(r[1].label, RawLabel::Number(2.0));
        assert_eq!(r[2].label, RawLabel::Names(vec!["x".into(), "y".into()]));
        let (line, msg) = at(guess_problem_type(p, &r).unwrap_err());
        assert_eq!(line, Some(3));
        assert!(msg.contains("another kind than line 1's"), "{msg}");
        // Number labels name classes outside regression: `2`, not `2.0`.
        assert_eq!(
            label_set_texts(&r, ProblemType::SingleLabelClassification),
            ["2", "x", "y"]
        );
        assert_eq!(
            label_set_texts(&r[1..2], ProblemType::Regression),
            [] as [String; 0]
        );
    }

    #[test]
    fn jsonl_errors_name_the_line() {
        let p = Path::new("t.jsonl");
        let cases = [
            ("{\"label\": \"x\"}", "no \"text\""),
            (
                "{\"text\": 1, \"label\": \"x\"}",
                "\"text\" must be a string, found 1",
            ),
            ("{\"text\": \"a\"}", "no \"label\""),
            (
                "{\"text\": \"a\", \"label\": [1]}",
                "list labels must be strings",
            ),
            (
                "{\"text\": \"a\", \"label\": true}",
                "\"label\" must be a string, a number",
            ),
            ("not json", "expected"),
        ];
        for (line, needle) in cases {
            let text = format!("{{\"text\": \"a\", \"label\": \"x\"}}\n{line}\n");
            let (at_line, msg) = at(read_text_jsonl(p, &text).unwrap_err());
            assert_eq!(at_line, Some(2), "{line}");
            assert!(msg.contains(needle), "{line}: {msg}");
        }
    }

    #[test]
    fn delimited_columns_default_and_named() {
        let p = Path::new("t.tsv");
        let r = read_delimited(
            p,
            "sentence1\tsentence2\tlabel\na \"b\tc\tx\n",
            &Columns::default(),
        )
        .unwrap();
        assert_eq!((r[0].line, r[0].text.as_str()), (2, "a \"b"));
        assert_eq!(r[0].text_pair.as_deref(), Some("c"));
        let cols = Columns {
            text: Some("body".into()),
            label: Some("y".into()),
            ..Default::default()
        };
        let r = read_delimited(Path::new("t.csv"), "y,body\nx,\"a, b\"\n", &cols).unwrap();
        assert_eq!(
            (r[0].text.as_str(), &r[0].label),
            ("a, b", &RawLabel::Name("x".into()))
        );
        let (line, msg) =
            at(read_delimited(p, "text\tlabel\na\t\n", &Columns::default()).unwrap_err());
        assert_eq!((line, msg.as_str()), (Some(2), "empty label"));
        let (line, msg) = at(read_delimited(p, "body\tlabel\n", &Columns::default()).unwrap_err());
        assert_eq!(line, None);
        assert!(msg.contains("name it with --text-column"), "{msg}");
        let err = read_delimited(p, "text\tlabel\na\tx\nb\n", &Columns::default()).unwrap_err();
        assert!(err.to_string().starts_with("t.tsv:3: "), "{err}");
    }

    #[test]
    fn conll_sentences_and_their_first_lines() {
        let p = Path::new("t.conll");
        let text = "-DOCSTART- -X- O\n\nthe DT O\ndog NN B-ANI\n\n\ncat NN B-ANI\n";
        let r = read_conll(p, text).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].line, r[0].tokens.clone()),
            (3, vec!["the".into(), "dog".into()])
        );
        assert_eq!(r[0].tags, ["O", "B-ANI"]);
        assert_eq!(r[1].line, 7);
        assert_eq!(label_set_tokens(&r), ["B-ANI", "O"]);
        let (line, msg) = at(read_conll(p, "the O\ndog\n").unwrap_err());
        assert_eq!(line, Some(2));
        assert!(msg.contains("needs a token and a tag"), "{msg}");
        let (line, msg) =
            at(read_tokens_jsonl(p, "{\"tokens\": [\"a\"], \"tags\": []}\n").unwrap_err());
        assert_eq!((line, msg.as_str()), (Some(1), "1 tokens but 0 tags"));
    }

    #[test]
    fn data_errors_read_path_line_message() {
        let e = Error::data("d/t.tsv", Some(4), "empty label");
        assert_eq!(e.to_string(), "d/t.tsv:4: empty label");
        assert_eq!(
            Error::data("t.tsv", None, "no labels").to_string(),
            "t.tsv: no labels"
        );
    }
}
