//! Reading the texts to process from arguments, a text file, a JSONL file or standard input.

use std::io::Read;
use std::path::Path;

use crate::{CliResult, InputArgs};

/// One input: a text, or a pair of texts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub text: String,
    pub text_pair: Option<String>,
}

/// All inputs: positional texts first, then the lines of `--input`.
pub fn read_items(args: &InputArgs) -> CliResult<Vec<Item>> {
    let mut items: Vec<Item> = args
        .texts
        .iter()
        .map(|t| Item {
            text: t.clone(),
            text_pair: None,
        })
        .collect();
    if let Some(path) = &args.input {
        items.extend(read_file(path)?);
    }
    if items.is_empty() {
        return Err("no input: give TEXT arguments or --input FILE".into());
    }
    Ok(items)
}

fn read_file(path: &Path) -> CliResult<Vec<Item>> {
    let name = path.display().to_string();
    let mut bytes = Vec::new();
    if name == "-" {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| format!("standard input: {e}"))?;
    } else {
        bytes = std::fs::read(path).map_err(|e| format!("{name}: {e}"))?;
    }
    let jsonl = path.extension().is_some_and(|e| e == "jsonl");
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop(); // the newline that ends the last line
    }
    let mut items = Vec::with_capacity(lines.len());
    for (i, raw) in lines.into_iter().enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = std::str::from_utf8(raw).map_err(|e| {
            format!(
                "{name}:{}: not valid UTF-8 (at byte {} of the line)",
                i + 1,
                e.valid_up_to()
            )
        })?;
        if jsonl {
            if line.trim().is_empty() {
                continue;
            }
            items.push(parse_jsonl(line).map_err(|e| format!("{name}:{}: {e}", i + 1))?);
        } else {
            items.push(Item {
                text: line.to_string(),
                text_pair: None,
            });
        }
    }
    Ok(items)
}

fn parse_jsonl(line: &str) -> Result<Item, String> {
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let obj = v.as_object().ok_or("expected a JSON object")?;
    let text = match obj.get("text") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(_) => return Err("\"text\" must be a string".into()),
        None => return Err("missing \"text\"".into()),
    };
    let text_pair = match obj.get("text_pair") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("\"text_pair\" must be a string".into()),
    };
    Ok(Item { text, text_pair })
}

/// Loads the tokenizer named by `args`, truncating at `--max-length` when given.
pub fn tokenizer(args: &InputArgs) -> CliResult<bert::BertTokenizer> {
    let mut tok = bert::BertTokenizer::from_pretrained(&args.model)?;
    if let Some(n) = args.max_length {
        tok = tok.with_max_length(n);
    }
    Ok(tok)
}

/// Tokenizes every item (texts and pairs alike) in parallel.
pub fn tokenize(tok: &bert::BertTokenizer, items: &[Item]) -> CliResult<Vec<bert::Encoding>> {
    let refs: Vec<(&str, Option<&str>)> = items
        .iter()
        .map(|i| (i.text.as_str(), i.text_pair.as_deref()))
        .collect();
    Ok(tok.tokenize_mixed(&refs)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_lines() {
        assert_eq!(
            parse_jsonl(r#"{"text": "a", "text_pair": "b"}"#).unwrap(),
            Item {
                text: "a".into(),
                text_pair: Some("b".into())
            }
        );
        assert!(parse_jsonl(r#"{"text_pair": "b"}"#)
            .unwrap_err()
            .contains("missing"));
        assert!(parse_jsonl(r#"["a"]"#).is_err());
        assert!(parse_jsonl(r#"{"text": 3}"#).is_err());
    }
}
