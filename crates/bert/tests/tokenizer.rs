//! Token ids against transformers' `BertTokenizerFast` (and `BertTokenizer` where the two agree) on
//! 312 varied texts x 5 tokenizer setups x truncation lengths; decoding; bad inputs.

mod common;

use std::collections::HashMap;

use bert::BertTokenizer;
use common::fixtures;
use serde_json::Value;

fn texts() -> Vec<(String, Option<String>)> {
    let path = fixtures().join("tokenizer").join("texts.jsonl");
    std::fs::read_to_string(path)
        .unwrap()
        .split('\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["text"].as_str().unwrap().to_string(),
                v.get("text_pair").and_then(Value::as_str).map(String::from),
            )
        })
        .collect()
}

fn jsonl(name: &str) -> Vec<Value> {
    let path = fixtures().join("tokenizer").join(name);
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn tokenizer(setup: &str, max_length: Option<usize>) -> BertTokenizer {
    let t = BertTokenizer::from_dir(fixtures().join("tokenizer").join(setup))
        .unwrap_or_else(|e| panic!("{setup}: {e}"));
    match max_length {
        Some(n) => t.with_max_length(n),
        None => t,
    }
}

fn ids(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

#[test]
fn ids_match_transformers_on_every_text_and_setup() {
    let texts = texts();
    let expected = jsonl("expected.jsonl");
    assert!(expected.len() > 2000, "fixture too small");
    let mut cache: HashMap<(String, Option<usize>), BertTokenizer> = HashMap::new();
    let mut checked = 0;
    for e in &expected {
        let setup = e["setup"].as_str().unwrap().to_string();
        let max_length = e["max_length"].as_u64().map(|n| n as usize);
        let tok = cache
            .entry((setup.clone(), max_length))
            .or_insert_with(|| tokenizer(&setup, max_length));
        let index = e["index"].as_u64().unwrap() as usize;
        let (text, pair) = &texts[index];
        let enc = match pair {
            Some(p) => tok.tokenize_pair(text, p),
            None => tok.tokenize(text),
        }
        .unwrap_or_else(|err| panic!("{setup} #{index}: {err}"));
        let label = format!("{setup} #{index} max_length {max_length:?} text {text:?}");
        assert_eq!(enc.ids, ids(&e["input_ids"]), "ids: {label}");
        assert_eq!(enc.type_ids, ids(&e["token_type_ids"]), "type ids: {label}");
        let tokens: Vec<String> = e["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        assert_eq!(enc.tokens, tokens, "tokens: {label}");
        assert_eq!(enc.offsets.len(), enc.ids.len());
        checked += 1;
    }
    // Lines without `slow_input_ids` are ones where the slow `BertTokenizer` agrees, so there we
    // match both; fixtures/tokenizer/README.md lists where the two transformers tokenizers differ
    // (pair truncation rounding, an empty text_pair, U+FFFE/U+FFFF) and we follow the fast one.
    assert_eq!(checked, expected.len());
}

#[test]
fn pair_batches_match_transformers_batch_call() {
    // transformers' batch call `tok(texts, text_pairs)` keeps an empty text_pair as a segment
    // (`[CLS] a [SEP] [SEP]`), unlike its single call; `tokenize_pairs` is the batch call.
    let texts = texts();
    let expected = jsonl("batch_pairs.jsonl");
    for max_length in [None, Some(8)] {
        let rows: Vec<&Value> = expected
            .iter()
            .filter(|e| e["max_length"].as_u64().map(|n| n as usize) == max_length)
            .collect();
        assert!(rows.len() > 50, "fixture too small");
        let setup = rows[0]["setup"].as_str().unwrap();
        let tok = tokenizer(setup, max_length);
        let pairs: Vec<(&str, &str)> = rows
            .iter()
            .map(|e| {
                let (a, b) = &texts[e["index"].as_u64().unwrap() as usize];
                (a.as_str(), b.as_deref().unwrap())
            })
            .collect();
        assert!(pairs.iter().any(|(_, b)| b.is_empty()));
        let encs = tok.tokenize_pairs(&pairs).unwrap();
        let padded = tok.encode_pairs(&pairs).unwrap();
        for (k, (e, enc)) in rows.iter().zip(&encs).enumerate() {
            let label = format!("#{} max_length {max_length:?} {:?}", e["index"], pairs[k]);
            assert_eq!(enc.ids, ids(&e["input_ids"]), "ids: {label}");
            assert_eq!(enc.type_ids, ids(&e["token_type_ids"]), "type ids: {label}");
            let n = enc.ids.len();
            assert_eq!(
                padded
                    .input_ids
                    .row(k)
                    .slice(bert::ndarray::s![..n])
                    .to_vec(),
                enc.ids
            );
        }
    }
}

#[test]
fn batches_pad_to_the_longest() {
    let tok = tokenizer("minilm-json", None);
    let inputs = tok.encode_batch(&["a b c d", "", "hello"]).unwrap();
    assert_eq!(inputs.input_ids.dim(), (3, 6));
    assert_eq!(
        inputs.attention_mask.row(1).to_vec(),
        vec![1, 1, 0, 0, 0, 0]
    );
    assert_eq!(inputs.input_ids.row(1).to_vec(), vec![101, 102, 0, 0, 0, 0]);
    let pairs = tok.encode_pairs(&[("a b", "c"), ("d", "e f g")]).unwrap();
    assert_eq!(
        pairs.token_type_ids.row(0).to_vec(),
        vec![0, 0, 0, 0, 1, 1, 0]
    );
    assert_eq!(
        pairs.token_type_ids.row(1).to_vec(),
        vec![0, 0, 0, 1, 1, 1, 1]
    );
}

#[test]
fn decode_matches_transformers() {
    let decodes = jsonl("decode.jsonl");
    assert!(decodes.len() >= 30);
    for d in decodes {
        let setup = d["setup"].as_str().unwrap();
        let tok = tokenizer(setup, None);
        let got = tok.decode(&ids(&d["input_ids"]), true).unwrap();
        assert_eq!(
            got,
            d["decoded"].as_str().unwrap(),
            "{setup} #{}",
            d["index"]
        );
    }
}

#[test]
fn default_max_length_is_model_max_length_and_truncates() {
    let tok = tokenizer("minilm-json", None);
    assert_eq!(tok.max_length(), 512);
    let long = "word ".repeat(1000);
    assert_eq!(tok.tokenize(&long).unwrap().ids.len(), 512);
    let short = tok.clone().with_max_length(5);
    let e = short.tokenize(&long).unwrap();
    assert_eq!(e.ids.len(), 5);
    assert_eq!(e.ids[4], 102);
}

#[test]
fn encodings_say_whether_they_were_truncated() {
    let tok = tokenizer("minilm-json", None).with_max_length(6);
    let cases: [(&str, Option<&str>, bool); 6] = [
        ("one two three four", None, false), // exactly 6 with [CLS] and [SEP]
        ("one two three four five", None, true),
        ("one two", Some("three"), false),
        ("one two three four", Some("five"), true), // the first text is cut
        ("one", Some("two three four five"), true), // the second text is cut
        ("", None, false),
    ];
    for (a, b, truncated) in cases {
        let e = match b {
            Some(b) => tok.tokenize_pair(a, b).unwrap(),
            None => tok.tokenize(a).unwrap(),
        };
        assert_eq!(e.truncated, truncated, "{a:?} {b:?}: {:?}", e.tokens);
        assert!(e.ids.len() <= 6);
    }
    let batch = tok.tokenize_batch(&["a b c d e f g", "a"]).unwrap();
    assert_eq!((batch[0].truncated, batch[1].truncated), (true, false));
}

#[test]
fn bad_inputs_are_errors() {
    let tok = tokenizer("minilm-json", None);
    let err = tok
        .clone()
        .with_max_length(1)
        .tokenize("hello")
        .unwrap_err();
    assert!(err.to_string().contains("max_length 1"), "{err}");
    let err = tok
        .clone()
        .with_max_length(2)
        .tokenize_pair("a", "b")
        .unwrap_err();
    assert!(err.to_string().contains("max_length 2"), "{err}");
    assert!(tok.encode_batch(&[]).is_err());
    assert!(tok.decode(&[-1], false).is_err());
    assert!(tok.decode(&[1 << 40], false).is_err());
    let dir = std::env::temp_dir().join(format!("bert-tok-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let err = BertTokenizer::from_dir(&dir).unwrap_err();
    assert!(
        err.to_string()
            .contains("tokenizer.json, vocab.json + merges.txt, vocab.txt"),
        "{err}"
    );
    std::fs::write(dir.join("vocab.txt"), b"[PAD]\n\xff\xfe\n").unwrap();
    let err = BertTokenizer::from_dir(&dir).unwrap_err();
    assert!(err.to_string().contains("UTF-8"), "{err}");
    std::fs::write(dir.join("vocab.txt"), "[PAD]\nhello\n").unwrap();
    let err = BertTokenizer::from_dir(&dir).unwrap_err();
    assert!(err.to_string().contains("[CLS]"), "{err}");
    std::fs::write(dir.join("tokenizer.json"), "{not json").unwrap();
    let err = BertTokenizer::from_dir(&dir).unwrap_err();
    assert!(err.to_string().contains("tokenizer.json"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
