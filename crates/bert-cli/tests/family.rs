//! Every command on RoBERTa, XLM-R, DistilBERT and ELECTRA checkpoints (the tiny models of
//! `fixtures/family`, by `scripts/fixtures_family.py`): `encode`, `embed`, `classify`, `ner`,
//! `qa`, `fill-mask`, `rerank` against transformers' and sentence-transformers' outputs, `bench`,
//! and `train` + `evaluate` writing a checkpoint of the family that `classify` reads back.

mod common;

use common::*;
use serde_json::Value;

const TOL: f64 = 2e-5;

fn family(f: &str) -> std::path::PathBuf {
    root().join("fixtures/family").join(f)
}

fn dir(f: &str, kind: &str) -> String {
    family(f).join(kind).display().to_string()
}

fn golden_cases(f: &str, kind: &str) -> Vec<Value> {
    let path = family(f).join(format!("pipe-{kind}.json"));
    let g: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    g["cases"].as_array().unwrap().clone()
}

/// A pipeline's JSON output against transformers': see [`same_scores`], within [`TOL`].
fn same(ours: &Value, theirs: &Value) {
    same_scores(ours, theirs, TOL)
}

#[test]
fn pipeline_commands_give_transformers_outputs_on_every_family() {
    for f in ["roberta", "xlm-roberta", "distilbert", "electra"] {
        // classify: a text (top_k all) and a pair
        let cases = golden_cases(f, "seqcls");
        let c = cases
            .iter()
            .find(|c| {
                c["kwargs"] == serde_json::json!({"top_k": null}) && c.get("text_pair").is_none()
            })
            .unwrap();
        let lines = json_lines(bert(&[
            "classify",
            "-m",
            &dir(f, "seqcls"),
            c["text"].as_str().unwrap(),
            "--top-k",
            "all",
        ]));
        same(&lines[0], &c["output"]);
        // ner, every aggregation
        for c in golden_cases(f, "tokcls") {
            let agg = c["kwargs"]["aggregation_strategy"].as_str().unwrap();
            let lines = json_lines(bert(&[
                "ner",
                "-m",
                &dir(f, "tokcls"),
                "--aggregation",
                agg,
                c["text"].as_str().unwrap(),
            ]));
            same(&lines[0], &c["output"]);
        }
        // qa, the default answer
        let c = golden_cases(f, "qa")
            .into_iter()
            .find(|c| c["kwargs"] == serde_json::json!({}))
            .unwrap();
        let lines = json_lines(bert(&[
            "qa",
            "-m",
            &dir(f, "qa"),
            "--question",
            c["question"].as_str().unwrap(),
            "--context",
            c["context"].as_str().unwrap(),
        ]));
        same(&lines[0], &c["output"]);
        // fill-mask (not ELECTRA's discriminator), one mask, top 5
        if f != "electra" {
            let c = golden_cases(f, "mlm")
                .into_iter()
                .find(|c| c["kwargs"] == serde_json::json!({}))
                .unwrap();
            let lines = json_lines(bert(&[
                "fill-mask",
                "-m",
                &dir(f, "mlm"),
                c["text"].as_str().unwrap(),
            ]));
            same(&lines[0], &c["output"]);
        }
    }
}

#[test]
fn rerank_matches_sentence_transformers_cross_encoder() {
    for f in ["roberta", "distilbert"] {
        let cases = golden_cases(f, "rerank");
        let query = cases[0]["text"].as_str().unwrap();
        let m = dir(f, "rerank");
        let mut args = vec!["rerank", "-m", &m, "--query", query];
        args.extend(cases.iter().map(|c| c["text_pair"].as_str().unwrap()));
        let lines = json_lines(bert(&args));
        assert_eq!(lines.len(), cases.len());
        for (line, c) in lines.iter().zip(&cases) {
            let d = (line["score"].as_f64().unwrap() - c["cross_encoder"].as_f64().unwrap()).abs();
            assert!(d <= TOL, "{f}: {line} vs {}", c["cross_encoder"]);
        }
    }
}

#[test]
fn encode_and_embed_match_the_goldens() {
    // encode: the golden's batch of five texts, last_hidden_state at real tokens.
    let out = std::env::temp_dir().join(format!(
        "bert-family-encode-{}.safetensors",
        std::process::id()
    ));
    let texts = [
        "The quick brown fox jumps over the lazy dog.",
        "Hello world",
        "Paris is the capital of France.",
        "Der schnelle braune Fuchs springt über den faulen Hund.",
        "東京は日本の首都です。",
    ];
    for f in ["roberta", "distilbert", "electra"] {
        let m = dir(f, "model");
        let mut args = vec!["encode", "-m", &m, "-o", out.to_str().unwrap()];
        args.extend(texts);
        let o = bert(&args);
        assert!(o.status.success(), "{f}: {}", stderr(&o));
        let bytes = std::fs::read(&out).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let g = std::fs::read(family(f).join("model/golden.safetensors")).unwrap();
        let g = safetensors::SafeTensors::deserialize(&g).unwrap();
        let floats = |v: safetensors::tensor::TensorView<'_>| -> Vec<f32> {
            v.data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect()
        };
        let ours = floats(st.tensor("last_hidden_state").unwrap());
        let want = floats(g.tensor("singles.last_hidden_state").unwrap());
        let mask: Vec<i64> = g
            .tensor("singles.attention_mask")
            .unwrap()
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(ours.len(), want.len(), "{f}: shape");
        let h = 32;
        for (i, (a, b)) in ours.iter().zip(&want).enumerate() {
            if mask[i / h] == 1 {
                assert!((a - b).abs() <= 1e-4, "{f}: value {i}: {a} vs {b}");
            }
        }
        let names = st.names();
        assert_eq!(
            names.contains(&"pooler_output"),
            f == "roberta",
            "{f}: {names:?}"
        );
    }
    std::fs::remove_file(&out).unwrap();
    // embed: sentence-transformers on the XLM-R base (mean pooling), as JSON lines.
    let d = family("xlm-roberta").join("sentence");
    let g = std::fs::read(d.join("golden.safetensors")).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&g).unwrap();
    let texts: Vec<String> =
        serde_json::from_str(&header.metadata().as_ref().unwrap()["texts"]).unwrap();
    let g = safetensors::SafeTensors::deserialize(&g).unwrap();
    let want: Vec<f32> = g
        .tensor("embeddings")
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let input = scratch(
        "family-embed.txt",
        (texts[..4].join("\n") + "\n").as_bytes(),
    );
    let lines = json_lines(bert(&[
        "embed",
        "-m",
        d.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
    ]));
    std::fs::remove_file(input).unwrap();
    assert_eq!(lines.len(), 4);
    for (i, line) in lines.iter().enumerate() {
        let e: Vec<f32> = serde_json::from_value(line["embedding"].clone()).unwrap();
        for (j, v) in e.iter().enumerate() {
            assert!((v - want[i * 32 + j]).abs() <= 1e-4, "text {i} dim {j}");
        }
    }
}

#[test]
fn train_and_evaluate_a_distilbert_classifier() {
    let data = scratch(
        "family-train.jsonl",
        b"{\"text\": \"a great movie\", \"label\": \"pos\"}\n{\"text\": \"awful\", \"label\": \"neg\"}\n\
          {\"text\": \"loved it\", \"label\": \"pos\"}\n{\"text\": \"boring and long\", \"label\": \"neg\"}\n",
    );
    let out = std::env::temp_dir().join(format!("bert-family-train-{}", std::process::id()));
    let o = bert(&[
        "train",
        "-q",
        "--task",
        "sequence-classification",
        "-m",
        &dir("distilbert", "model"),
        "--train",
        data.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--epochs",
        "2",
        "--batch-size",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model_type"], "distilbert");
    assert_eq!(
        config["architectures"][0],
        "DistilBertForSequenceClassification"
    );
    assert_eq!(config["dim"], 32);
    let o = bert(&[
        "evaluate",
        "-m",
        out.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let metrics: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(metrics["accuracy"].as_f64().is_some(), "{metrics}");
    let lines = json_lines(bert(&["classify", "-m", out.to_str().unwrap(), "great"]));
    let label = lines[0][0]["label"].as_str().unwrap();
    assert!(label == "pos" || label == "neg", "{label}");
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::remove_file(data).unwrap();
}

#[test]
fn bench_runs_a_family_checkpoint() {
    let o = bert(&[
        "bench",
        "--peer-protocol",
        "--peer",
        "bert-rs",
        "--model",
        &dir("roberta", "model"),
        "--workload",
        "W1",
        "--corpus",
        root()
            .join("scripts/peers/data/fortunes-en.txt")
            .to_str()
            .unwrap(),
        "--iters",
        "2",
        "--warmup",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let line: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(line["times_ms"].as_array().unwrap().len(), 2);
}

#[test]
fn wrong_heads_name_the_family_class() {
    fails_with(
        bert(&["classify", "-m", &dir("electra", "discriminator"), "x"]),
        &["ElectraForSequenceClassification", "ElectraForPreTraining"],
    );
    fails_with(
        bert(&["fill-mask", "-m", &dir("roberta", "seqcls"), "a <mask>"]),
        &[
            "RobertaForMaskedLM",
            "RobertaForSequenceClassification",
            "bert classify",
        ],
    );
}
