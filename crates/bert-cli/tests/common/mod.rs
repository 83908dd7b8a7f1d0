//! Running the `bert` binary from the tests.
#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn tok_dir() -> String {
    root()
        .join("fixtures/tokenizer/minilm-json")
        .display()
        .to_string()
}

pub fn bert(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bert"))
        .args(args)
        .output()
        .expect("run bert")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and parses stdout as one JSON value per line.
pub fn json_lines(o: Output) -> Vec<serde_json::Value> {
    assert!(o.status.success(), "{}", stderr(&o));
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Asserts failure with a message containing every `needle`, and no panic.
pub fn fails_with(o: Output, needles: &[&str]) {
    let err = stderr(&o);
    assert!(!o.status.success(), "expected failure, stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}: {err}");
    }
}

pub fn scratch(name: &str, content: &[u8]) -> PathBuf {
    let p = std::env::temp_dir().join(format!("bert-cli-{}-{name}", std::process::id()));
    std::fs::write(&p, content).unwrap();
    p
}

/// Field-by-field equality of a pipeline's JSON output with transformers': every value exactly,
/// but `score` fields within `tol`.
pub fn same_scores(ours: &serde_json::Value, theirs: &serde_json::Value, tol: f64) {
    use serde_json::Value;
    match (ours, theirs) {
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "ours {ours}\ntheirs {theirs}");
            a.iter().zip(b).for_each(|(x, y)| same_scores(x, y, tol));
        }
        (Value::Object(a), Value::Object(b)) => {
            assert_eq!(a.len(), b.len(), "ours {ours}\ntheirs {theirs}");
            for (k, v) in a {
                if k == "score" {
                    let d = (v.as_f64().unwrap() - b[k].as_f64().unwrap()).abs();
                    assert!(d <= tol, "score {v} vs {}", b[k]);
                } else {
                    same_scores(v, &b[k], tol);
                }
            }
        }
        _ => assert_eq!(ours, theirs),
    }
}
