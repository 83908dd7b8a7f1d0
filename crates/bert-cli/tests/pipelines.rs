//! The pipeline commands (`classify`, `ner`, `qa`, `fill-mask`, `rerank`) end to end on the tiny
//! fixtures: their JSON lines equal transformers' `pipeline(...)` outputs
//! (`fixtures/golden/pipe-*.json`) up to score rounding, and bad inputs fail with clear messages.

mod common;

use common::*;
use serde_json::Value;

const TOL: f64 = 2e-5;

fn model(name: &str) -> String {
    root()
        .join("fixtures/models")
        .join(name)
        .display()
        .to_string()
}

fn golden_cases(name: &str) -> Vec<Value> {
    let path = root().join("fixtures/golden").join(format!("{name}.json"));
    let g: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    g["cases"].as_array().unwrap().clone()
}

/// The first golden case whose kwargs are `kwargs` (and text `text`, when given).
fn case(cases: &[Value], kwargs: Value, text: Option<&str>) -> Value {
    cases
        .iter()
        .find(|c| c["kwargs"] == kwargs && text.is_none_or(|t| c["text"] == t))
        .unwrap_or_else(|| panic!("no golden case {kwargs}"))
        .clone()
}

/// A pipeline's JSON output against transformers': see [`same_scores`], within [`TOL`].
fn same(ours: &Value, theirs: &Value) {
    same_scores(ours, theirs, TOL)
}

#[test]
fn classify_prints_transformers_labels_for_texts_and_pairs() {
    let cases = golden_cases("pipe-seqcls");
    let text = cases[0]["text"].as_str().unwrap();
    let pair = case(
        &cases,
        serde_json::json!({"top_k": null}),
        Some("how old are you"),
    );
    let jsonl = scratch(
        "classify.jsonl",
        format!(
            "{}\n",
            serde_json::json!({"text": pair["text"], "text_pair": pair["text_pair"]})
        )
        .as_bytes(),
    );
    let lines = json_lines(bert(&[
        "classify",
        "-m",
        &model("pipe-seqcls"),
        text,
        "--input",
        jsonl.to_str().unwrap(),
        "--top-k",
        "all",
    ]));
    std::fs::remove_file(jsonl).unwrap();
    assert_eq!(lines.len(), 2);
    same(
        &lines[0],
        &case(&cases, serde_json::json!({"top_k": null}), Some(text))["output"],
    );
    same(&lines[1], &pair["output"]);
    let sig = case(
        &cases,
        serde_json::json!({"function_to_apply": "sigmoid", "top_k": null}),
        Some(text),
    );
    let lines = json_lines(bert(&[
        "classify",
        "-m",
        &model("pipe-seqcls"),
        text,
        "--function-to-apply",
        "sigmoid",
        "--top-k",
        "all",
    ]));
    same(&lines[0], &sig["output"]);
    // Default: the best label only, as a one-element list (transformers' `pipe(text)`).
    let lines = json_lines(bert(&["classify", "-m", &model("pipe-seqcls"), text]));
    same(
        &lines[0],
        &case(&cases, serde_json::json!({}), Some(text))["output"],
    );
}

#[test]
fn ner_prints_transformers_entities() {
    let cases = golden_cases("pipe-tokcls");
    for agg in ["none", "simple", "first", "average", "max"] {
        let c = case(
            &cases,
            serde_json::json!({"aggregation_strategy": agg}),
            None,
        );
        let lines = json_lines(bert(&[
            "ner",
            "-m",
            &model("pipe-tokcls"),
            "--aggregation",
            agg,
            c["text"].as_str().unwrap(),
        ]));
        same(&lines[0], &c["output"]);
    }
    // A text longer than the 64 positions, in windows with a stride.
    let c = case(
        &cases,
        serde_json::json!({"aggregation_strategy": "max", "stride": 16}),
        None,
    );
    let lines = json_lines(bert(&[
        "ner",
        "-m",
        &model("pipe-tokcls"),
        "--aggregation",
        "max",
        "--stride",
        "16",
        c["text"].as_str().unwrap(),
    ]));
    same(&lines[0], &c["output"]);
}

#[test]
fn qa_answers_from_arguments_and_from_jsonl() {
    let cases = golden_cases("pipe-qa");
    let c = case(&cases, serde_json::json!({}), None);
    let (q, ctx) = (
        c["question"].as_str().unwrap(),
        c["context"].as_str().unwrap(),
    );
    let lines = json_lines(bert(&[
        "qa",
        "-m",
        &model("pipe-qa"),
        "--question",
        q,
        "--context",
        ctx,
    ]));
    same(&lines[0], &c["output"]);
    // A context longer than a window, several answers, from a JSONL file.
    let long = case(
        &cases,
        serde_json::json!({"max_seq_len": 32, "doc_stride": 8, "top_k": 4}),
        None,
    );
    let jsonl = scratch(
        "qa.jsonl",
        format!(
            "{}\n{}\n",
            serde_json::json!({"question": long["question"], "context": long["context"]}),
            serde_json::json!({"question": q, "context": ctx}),
        )
        .as_bytes(),
    );
    let lines = json_lines(bert(&[
        "qa",
        "-m",
        &model("pipe-qa"),
        "--input",
        jsonl.to_str().unwrap(),
        "--max-length",
        "32",
        "--doc-stride",
        "8",
        "--top-k",
        "4",
    ]));
    std::fs::remove_file(jsonl).unwrap();
    assert_eq!(lines.len(), 2);
    same(&lines[0], &long["output"]);
}

#[test]
fn fill_mask_prints_transformers_candidates() {
    let cases = golden_cases("pipe-mlm");
    let c = case(
        &cases,
        serde_json::json!({"targets": ["dog", "cat", "fox"]}),
        Some("hello my [MASK] is cute."),
    );
    let two = case(
        &cases,
        serde_json::json!({"top_k": 2}),
        Some("the quick [MASK] fox jumps over the [MASK] dog"),
    );
    let lines = json_lines(bert(&[
        "fill-mask",
        "-m",
        &model("pipe-mlm"),
        c["text"].as_str().unwrap(),
        "--targets",
        "dog,cat,fox",
    ]));
    same(&lines[0], &c["output"]);
    let lines = json_lines(bert(&[
        "fill-mask",
        "-m",
        &model("pipe-mlm"),
        two["text"].as_str().unwrap(),
        "--top-k",
        "2",
    ]));
    same(&lines[0], &two["output"]);
}

#[test]
fn rerank_scores_each_passage_in_input_order() {
    let cases = golden_cases("pipe-rerank");
    let query = cases[0]["text"].as_str().unwrap();
    let passages: Vec<&str> = cases
        .iter()
        .map(|c| c["text_pair"].as_str().unwrap())
        .collect();
    let m = model("pipe-rerank");
    let mut args = vec!["rerank", "-m", &m, "--query", query];
    args.extend(&passages);
    let lines = json_lines(bert(&args));
    assert_eq!(lines.len(), passages.len());
    for (i, (line, c)) in lines.iter().zip(&cases).enumerate() {
        assert_eq!(line["corpus_id"], i);
        let d = (line["score"].as_f64().unwrap() - c["cross_encoder"].as_f64().unwrap()).abs();
        assert!(d <= TOL, "{line} vs {}", c["cross_encoder"]);
    }
}

#[test]
fn pipeline_commands_fail_clearly_on_bad_inputs() {
    // The wrong head: the message names the head the checkpoint has and the command for it.
    fails_with(
        bert(&["ner", "-m", &model("pipe-qa"), "hello"]),
        &[
            "BertForTokenClassification",
            "BertForQuestionAnswering",
            "bert qa",
        ],
    );
    fails_with(
        bert(&["classify", "-m", &model("pipe-tokcls"), "hello"]),
        &[
            "BertForSequenceClassification",
            "BertForTokenClassification",
            "bert ner",
        ],
    );
    fails_with(
        bert(&["fill-mask", "-m", &model("tiny-gelu"), "a [MASK]"]),
        &["BertForMaskedLM", "BertModel"],
    );
    fails_with(
        bert(&["rerank", "-m", &model("pipe-seqcls"), "-Q", "q", "p"]),
        &["one label", "3 labels"],
    );
    // A question alone longer than the window.
    let question = "where is the cat ".repeat(20);
    fails_with(
        bert(&[
            "qa",
            "-m",
            &model("pipe-qa"),
            "--question",
            &question,
            "--context",
            "the mat",
        ]),
        &["--question", "the question is 80 tokens", "max_seq_len 64"],
    );
    fails_with(bert(&["qa", "-m", &model("pipe-qa")]), &["--question"]);
    fails_with(
        bert(&[
            "qa",
            "-m",
            &model("pipe-qa"),
            "--question",
            "q",
            "--context",
            "c",
            "--max-length",
            "65",
        ]),
        &["--max-length 65", "64 positions"],
    );
    // fill-mask without [MASK].
    fails_with(
        bert(&["fill-mask", "-m", &model("pipe-mlm"), "hello", "my dog"]),
        &["argument 1", "no mask token [MASK]"],
    );
    // In a file, the inputs before the bad one are answered, and the error names its line.
    let masks = scratch("masks.txt", b"a [MASK]\nb [MASK]\nno mask\nc [MASK]\n");
    let o = bert(&[
        "fill-mask",
        "-m",
        &model("pipe-mlm"),
        "-i",
        masks.to_str().unwrap(),
    ]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 2);
    fails_with(o, &["masks.txt:3", "no mask token"]);
    std::fs::remove_file(masks).unwrap();
    // An empty input file.
    let empty = scratch("empty.txt", b"");
    for cmd in ["classify", "ner", "fill-mask"] {
        fails_with(
            bert(&[
                cmd,
                "-m",
                &model("pipe-tokcls"),
                "-i",
                empty.to_str().unwrap(),
            ]),
            &["no input", "empty"],
        );
    }
    std::fs::remove_file(empty).unwrap();
    // ner on a long text without aggregation: windows cannot be merged.
    fails_with(
        bert(&["ner", "-m", &model("pipe-tokcls"), &"the fox ".repeat(40)]),
        &["longer than 64 tokens", "aggregation"],
    );
    fails_with(
        bert(&["classify", "-m", &model("pipe-seqcls"), "--top-k", "0", "x"]),
        &["--top-k"],
    );
}

#[test]
fn every_model_command_runs_in_f16_bf16_and_int8_and_rejects_unknown_dtypes() {
    let m = |name: &str| root().join("fixtures/models").join(name);
    let (seqcls, tokcls, qa, mlm, rerank, tiny) = (
        m("pipe-seqcls"),
        m("pipe-tokcls"),
        m("pipe-qa"),
        m("pipe-mlm"),
        m("pipe-rerank"),
        m("st-tiny-cls"),
    );
    let runs: Vec<Vec<&str>> = vec![
        vec!["classify", "-m", seqcls.to_str().unwrap(), "great movie"],
        vec!["ner", "-m", tokcls.to_str().unwrap(), "John lives in Paris"],
        vec![
            "qa",
            "-m",
            qa.to_str().unwrap(),
            "--question",
            "Who?",
            "--context",
            "John",
        ],
        vec![
            "fill-mask",
            "-m",
            mlm.to_str().unwrap(),
            "Paris is the [MASK].",
        ],
        vec![
            "rerank",
            "-m",
            rerank.to_str().unwrap(),
            "--query",
            "q",
            "a passage",
        ],
        vec!["encode", "-m", seqcls.to_str().unwrap(), "hello"],
        vec!["embed", "-m", tiny.to_str().unwrap(), "hello"],
    ];
    for args in runs {
        for dtype in ["f16", "bf16", "int8"] {
            let mut run = args.clone();
            run.extend(["--dtype", dtype]);
            let o = bert(&run);
            assert!(o.status.success(), "{run:?}: {}", stderr(&o));
            assert!(!o.stdout.is_empty(), "{run:?}: no output");
            // bf16 says so where it is emulated, and only there.
            let noted = stderr(&o).contains("runs emulated");
            assert_eq!(
                noted,
                dtype == "bf16" && !bert::Dtype::Bf16.is_native(),
                "{run:?}"
            );
        }
        let mut bad = args.clone();
        bad.extend(["--dtype", "int4"]);
        fails_with(bert(&bad), &["int4", "f32, f16, bf16, int8"]);
    }
}
