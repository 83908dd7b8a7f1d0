//! The `bert` binary end to end: outputs, files it writes, and errors on bad input (non-zero exit,
//! a message naming the problem, never a panic).

mod common;

use std::process::Command;

use common::*;

#[test]
fn tokenize_prints_one_json_object_per_input() {
    let jsonl = scratch(
        "pairs.jsonl",
        br#"{"text": "How old are you?", "text_pair": "Six."}
{"text": "Hello, world!"}
"#,
    );
    let o = bert(&[
        "tokenize",
        "--model",
        &tok_dir(),
        "Hello, world!",
        "--input",
        jsonl.to_str().unwrap(),
    ]);
    let lines = json_lines(o);
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[0]["input_ids"],
        serde_json::json!([101, 7592, 1010, 2088, 999, 102])
    );
    assert_eq!(
        lines[0]["tokens"],
        serde_json::json!(["[CLS]", "hello", ",", "world", "!", "[SEP]"])
    );
    let types = lines[1]["token_type_ids"].as_array().unwrap();
    assert_eq!(types.first().unwrap(), 0);
    assert_eq!(types.last().unwrap(), 1);
    assert_eq!(lines[2]["input_ids"], lines[0]["input_ids"]);
    std::fs::remove_file(jsonl).unwrap();
}

#[test]
fn encode_writes_every_output_to_safetensors() {
    let out = std::env::temp_dir().join(format!("bert-cli-{}-out.safetensors", std::process::id()));
    let o = bert(&[
        "encode",
        "Hello, my dog is cute",
        "How are you?",
        "--hidden-states",
        "--attentions",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = std::fs::read(&out).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let shape = |n: &str| st.tensor(n).unwrap().shape().to_vec();
    assert_eq!(shape("input_ids"), vec![2, 8]);
    assert_eq!(
        st.tensor("input_ids").unwrap().dtype(),
        safetensors::Dtype::I64
    );
    assert_eq!(shape("attention_mask"), vec![2, 8]);
    assert_eq!(shape("token_type_ids"), vec![2, 8]);
    assert_eq!(shape("last_hidden_state"), vec![2, 8, 384]);
    assert_eq!(shape("pooler_output"), vec![2, 384]);
    for i in 0..=6 {
        assert_eq!(shape(&format!("hidden_states.{i}")), vec![2, 8, 384]);
    }
    for i in 0..6 {
        assert_eq!(shape(&format!("attentions.{i}")), vec![2, 12, 8, 8]);
    }
    assert!(st.tensor("hidden_states.7").is_err());
    assert_eq!(
        st.tensor("hidden_states.6").unwrap().data(),
        st.tensor("last_hidden_state").unwrap().data()
    );
    std::fs::remove_file(out).unwrap();
}

#[test]
fn encode_prints_a_summary() {
    let o = bert(&["encode", "Hello, my dog is cute"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = String::from_utf8(o.stdout).unwrap();
    assert!(s.contains("last_hidden_state: shape [1, 8, 384]"), "{s}");
    assert!(s.contains("pooler_output: shape [1, 384]"), "{s}");
    // transformers: last_hidden_state[0, 0, :3] = [0.0230, -0.0103, 0.2201]
    assert!(s.contains("[0, 0, :6] = [0.0230"), "{s}");
}

#[test]
fn bad_inputs_fail_cleanly() {
    let tok = tok_dir();
    fails_with(bert(&["tokenize", "--model", &tok]), &["no input"]);
    fails_with(
        bert(&["tokenize", "--model", &tok, "--input", "/no/such/file.txt"]),
        &["/no/such/file.txt"],
    );
    let bad_files: [(&str, &[u8], &[&str]); 3] = [
        (
            "bad.txt",
            b"fine line\nbad \xff\xfe line\n",
            &["bad.txt:2", "UTF-8"],
        ),
        (
            "bad.jsonl",
            b"{\"text\": \"ok\"}\n{\"text_pair\": \"x\"}\n",
            &["bad.jsonl:2", "missing \"text\""],
        ),
        (
            "bad2.jsonl",
            b"not json\n",
            &["bad2.jsonl:1", "invalid JSON"],
        ),
    ];
    for (name, bytes, want) in bad_files {
        let path = scratch(name, bytes);
        fails_with(
            bert(&[
                "tokenize",
                "--model",
                &tok,
                "--input",
                path.to_str().unwrap(),
            ]),
            want,
        );
        std::fs::remove_file(path).unwrap();
    }
    fails_with(
        bert(&["tokenize", "--model", &tok, "--max-length", "1", "hi"]),
        &["max_length 1"],
    );
    fails_with(
        bert(&["tokenize", "--model", "/no/such/model", "hi"]),
        &["/no/such/model"],
    );
    let tiny = root().join("fixtures/models/tiny-gelu");
    fails_with(
        bert(&["encode", "--model", tiny.to_str().unwrap(), "hi"]),
        &["tokenizer"],
    );
    fails_with(bert(&["--threads", "0", "tokenize", "hi"]), &["--threads"]);
}

#[test]
fn empty_lines_and_empty_strings_are_valid_texts() {
    let f = scratch("empty.txt", b"\n\nword\n");
    let o = bert(&[
        "tokenize",
        "--model",
        &tok_dir(),
        "",
        "--input",
        f.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4);
    assert!(lines[0].contains("\"input_ids\":[101,102]"), "{}", lines[0]);
    std::fs::remove_file(f).unwrap();
}

#[test]
fn bench_speaks_the_peer_protocol() {
    let o = bert(&[
        "bench",
        "--config",
        "minilm-l6",
        "--workload",
        "W1,W2F",
        "--iters",
        "1",
        "--warmup",
        "0",
        "--peer-protocol",
        "--peer",
        "test-peer",
    ]);
    let lines = json_lines(o);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["peer"], "test-peer");
    assert_eq!(lines[0]["workload"], "W1");
    assert_eq!(lines[0]["real_tokens"], 8);
    assert_eq!(lines[1]["workload"], "W2F");
    assert_eq!(lines[1]["real_tokens"], 2048);
    assert_eq!(lines[1]["padded_tokens"], 2048);
    assert_eq!(lines[1]["times_ms"].as_array().unwrap().len(), 1);
    fails_with(
        bert(&["bench", "--workload", "W9"]),
        &["unknown workload `W9`"],
    );
    fails_with(
        bert(&["bench", "--config", "bert-huge"]),
        &["--config `bert-huge`"],
    );
}

#[test]
fn a_closed_stdout_ends_every_subcommand_quietly() {
    use std::process::Stdio;
    let big = scratch("many.txt", "a line of text\n".repeat(20_000).as_bytes());
    let cases: [&[&str]; 6] = [
        &["encode", "Hello, my dog is cute"],
        &["embed", "--input", big.to_str().unwrap()],
        &["encode", "Hello, my dog is cute", "--output", "-"],
        &["tokenize", "--model", &tok_dir(), "hello"],
        &[
            "tokenize",
            "--model",
            &tok_dir(),
            "--input",
            big.to_str().unwrap(),
        ],
        &[
            "bench",
            "--config",
            "minilm-l6",
            "--workload",
            "W1",
            "--iters",
            "1",
            "--warmup",
            "0",
        ],
    ];
    for args in cases {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bert"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run bert");
        drop(child.stdout.take()); // the reader goes away before bert writes
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o), "", "{args:?}");
    }
    std::fs::remove_file(big).unwrap();
}
