//! `bert train` and `bert evaluate` on the tiny fixtures: the checkpoint they write, resuming,
//! reproducibility, and the data files' errors (all before any training).

mod common;

use std::path::{Path, PathBuf};

use common::{bert, fails_with, root, stderr};

fn model(name: &str) -> String {
    root()
        .join("fixtures/models")
        .join(name)
        .display()
        .to_string()
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bert-train-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const WORDS: [&str; 12] = [
    "the", "dog", "cat", "is", "cute", "quick", "brown", "fox", "lazy", "hello", "mat", "old",
];

/// `n` sentences of the tiny vocabulary, labelled by whether they mention the dog.
fn sentences(n: usize, seed: usize) -> Vec<(String, &'static str)> {
    (0..n)
        .map(|i| {
            let len = 3 + (i * 7 + seed) % 5;
            let words: Vec<&str> = (0..len)
                .map(|k| WORDS[(i * 31 + k * 17 + seed) % WORDS.len()])
                .collect();
            let label = if words.contains(&"dog") { "pos" } else { "neg" };
            (words.join(" "), label)
        })
        .collect()
}

fn tsv(path: &Path, rows: &[(String, &str)]) {
    let mut s = String::from("sentence\tlabel\n");
    for (t, l) in rows {
        s += &format!("{t}\t{l}\n");
    }
    std::fs::write(path, s).unwrap();
}

fn run_train(d: &Path, out: &str, extra: &[&str]) -> std::process::Output {
    let path = |p: PathBuf| p.display().to_string();
    let mut args: Vec<String> = [
        "train",
        "--task",
        "sequence-classification",
        "-m",
        &model("pipe-seqcls"),
        "--train",
        &path(d.join("train.tsv")),
        "--eval",
        &path(d.join("dev.tsv")),
        "--output",
        &path(d.join(out)),
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--learning-rate",
        "1e-3",
        "--warmup-ratio",
        "0.1",
        "--weight-decay",
        "0.01",
        "-q",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    bert(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn train_writes_a_transformers_checkpoint_that_our_pipelines_load() {
    let d = dir("seq");
    tsv(&d.join("train.tsv"), &sentences(24, 1));
    tsv(&d.join("dev.tsv"), &sentences(8, 5));
    let o = run_train(&d, "out", &["--save-steps", "4"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = d.join("out");
    for f in [
        "model.safetensors",
        "config.json",
        "vocab.txt",
        "tokenizer_config.json",
        "trainer_state.json",
        "eval_results.json",
        "checkpoint-4/model.safetensors",
        "checkpoint-4/optimizer.exp_avg.safetensors",
        "checkpoint-8/trainer_state.json",
    ] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"][0], "BertForSequenceClassification");
    assert_eq!(config["id2label"]["0"], "neg");
    assert_eq!(config["label2id"]["pos"], 1);
    assert_eq!(config["problem_type"], "single_label_classification");
    // transformers' state-dict names: the encoder under `bert.`, the head as `classifier.*`.
    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let names: Vec<String> = st.names().into_iter().map(String::from).collect();
    assert!(names.contains(&"bert.encoder.layer.1.output.LayerNorm.weight".to_string()));
    assert!(names.contains(&"bert.pooler.dense.weight".to_string()));
    assert!(names.contains(&"classifier.bias".to_string()));
    assert_eq!(names.len(), 2 * 16 + 5 + 2 + 2, "{names:?}");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("eval_results.json")).unwrap())
            .unwrap();
    assert_eq!(results["epochs"].as_array().unwrap().len(), 2);
    assert!(results["final"]["accuracy"].as_f64().is_some());
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("trainer_state.json")).unwrap())
            .unwrap();
    assert_eq!(state["global_step"], 12);
    assert!(state["log_history"].as_array().unwrap().len() >= 12);

    // The result is a checkpoint like any other: classify with it, evaluate it.
    let o = bert(&[
        "classify",
        "-m",
        out.to_str().unwrap(),
        "-q",
        "the dog is cute",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"label\""));
    let m = run_evaluate(out.to_str().unwrap(), &d.join("dev.tsv"), &[]);
    assert_eq!(m["accuracy"], results["final"]["accuracy"]);
    let int8 = run_evaluate(
        out.to_str().unwrap(),
        &d.join("dev.tsv"),
        &["--dtype", "int8"],
    );
    let (a, b) = (
        m["accuracy"].as_f64().unwrap(),
        int8["accuracy"].as_f64().unwrap(),
    );
    assert!((a - b).abs() <= 0.125, "f32 {a}, int8 {b} on 8 examples");
}

#[test]
fn resuming_a_checkpoint_ends_with_the_same_weights() {
    let d = dir("resume");
    tsv(&d.join("train.tsv"), &sentences(20, 2));
    tsv(&d.join("dev.tsv"), &sentences(4, 3));
    let o = run_train(&d, "full", &["--save-steps", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let again = run_train(&d, "again", &[]);
    assert!(again.status.success(), "{}", stderr(&again));
    let ck = d.join("full/checkpoint-3");
    let resumed = run_train(&d, "resumed", &["--resume", ck.to_str().unwrap()]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let read = |p: &str| std::fs::read(d.join(p).join("model.safetensors")).unwrap();
    assert_eq!(read("full"), read("again"), "same seed, same weights");
    assert_eq!(read("full"), read("resumed"), "resumed run, same weights");
    let other = run_train(&d, "other", &["--seed", "7"]);
    assert!(other.status.success());
    assert_ne!(read("full"), read("other"), "another seed");
    // Resuming with other arguments is refused.
    let bad = run_train(
        &d,
        "bad",
        &["--resume", ck.to_str().unwrap(), "--seed", "7"],
    );
    fails_with(bad, &["other arguments"]);
}

#[test]
fn token_classification_from_conll() {
    let d = dir("tok");
    let conll = "-DOCSTART- -X- -X- O\n\nthe DT B-NP O\ndog NN I-NP B-PER\nis VBZ B-VP O\ncute JJ B-ADJP O\n\n\
                 hello UH O O\nfox NN B-NP B-LOC\nbrown JJ I-NP I-LOC\n\nthe DT O O\ncat NN O B-PER\n";
    std::fs::write(d.join("train.conll"), conll.repeat(3)).unwrap();
    std::fs::write(d.join("dev.conll"), conll).unwrap();
    let out = d.join("out");
    let o = bert(&[
        "train",
        "--task",
        "token-classification",
        "-m",
        &model("pipe-tokcls"),
        "--train",
        d.join("train.conll").to_str().unwrap(),
        "--eval",
        d.join("dev.conll").to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--epochs",
        "1",
        "--batch-size",
        "2",
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for k in ["precision", "recall", "f1", "loss"] {
        assert!(m[k].as_f64().is_some(), "{k} in {m}");
    }
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"][0], "BertForTokenClassification");
    // Sorted tag set of the training file.
    assert_eq!(config["id2label"]["0"], "B-LOC");
    assert_eq!(config["id2label"]["3"], "O");
    assert!(config["id2label"]["4"].is_null());
    let o = bert(&["ner", "-m", out.to_str().unwrap(), "-q", "the dog is cute"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// `bert evaluate -m MODEL --data FILE [extra]`: its metrics.
fn run_evaluate(model: &str, data: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["evaluate", "-m", model, "--data", data.to_str().unwrap()];
    args.extend(extra);
    let o = bert(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn evaluate_in_int8_scores_the_quantized_heads_close_to_f32() {
    let d = dir("int8");
    let rows: Vec<(String, &str)> = sentences(24, 5)
        .into_iter()
        .enumerate()
        .map(|(i, (t, _))| (t, ["NEG", "NEU", "POS"][i % 3]))
        .collect();
    tsv(&d.join("dev.tsv"), &rows);
    std::fs::write(
        d.join("dev.conll"),
        "the DT B-NP O\ndog NN I-NP B-PER\nis VBZ B-VP O\n\nhello UH O O\nfox NN B-NP B-LOC\n\
         brown JJ I-NP I-LOC\n\nthe DT O O\ncat NN O B-PER\n",
    )
    .unwrap();
    for (name, data, keys) in [
        (
            "pipe-seqcls",
            "dev.tsv",
            &["accuracy", "macro_f1", "loss"][..],
        ),
        (
            "pipe-tokcls",
            "dev.conll",
            &["precision", "recall", "f1", "accuracy", "loss"][..],
        ),
    ] {
        let (m, data) = (model(name), d.join(data));
        let default = run_evaluate(&m, &data, &[]);
        let f32 = run_evaluate(&m, &data, &["--dtype", "f32"]);
        let int8 = run_evaluate(&m, &data, &["--dtype", "int8"]);
        // f32 is the training forward, as before `--dtype` existed: the same output.
        assert_eq!(default, f32, "{name}");
        assert_eq!(f32.as_object().unwrap().len(), keys.len(), "{name}: {f32}");
        for k in keys {
            let (a, b) = (f32[k].as_f64().unwrap(), int8[k].as_f64().unwrap());
            // The tiny random models' margins are small: a loss within 0.05, the metrics within
            // one example in ten (equal on the AVX-512, AVX2 and portable paths alike today).
            let tol = if *k == "loss" { 0.05 } else { 0.1 };
            assert!((a - b).abs() <= tol, "{name} {k}: f32 {a}, int8 {b}");
        }
    }
}

#[test]
fn bad_data_lines_are_errors_before_training() {
    let d = dir("bad");
    let good = "{\"text\": \"the dog\", \"label\": \"a\"}\n";
    let cases: [(&str, String, &[&str]); 5] = [
        (
            "a.jsonl",
            format!("{good}{good}{{\"text\": 3, \"label\": \"a\"}}\n"),
            &["a.jsonl:3", "\"text\" must be a string"],
        ),
        ("b.jsonl", format!("{good}not json\n"), &["b.jsonl:2"]),
        (
            "c.jsonl",
            format!("{good}{{\"text\": \"x\"}}\n"),
            &["c.jsonl:2", "no \"label\""],
        ),
        (
            "d.jsonl",
            format!("{good}{{\"text\": \"x\", \"label\": 1.5}}\n"),
            &["d.jsonl:2", "another kind"],
        ),
        (
            "e.tsv",
            "text\tlabel\nthe dog\ta\nbroken line without a tab\n".to_string(),
            &["e.tsv:3"],
        ),
    ];
    for (name, content, needles) in cases {
        let p = d.join(name);
        std::fs::write(&p, content).unwrap();
        let out = d.join(format!("out-{name}"));
        let o = bert(&[
            "train",
            "--task",
            "sequence-classification",
            "-m",
            &model("pipe-seqcls"),
            "--train",
            p.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ]);
        fails_with(o, needles);
        assert!(!out.exists(), "{name}: nothing is written");
    }
    // An evaluation label the training set never had.
    std::fs::write(d.join("t.jsonl"), good.repeat(2)).unwrap();
    std::fs::write(
        d.join("v.jsonl"),
        format!("{good}{{\"text\": \"x\", \"label\": \"zzz\"}}\n"),
    )
    .unwrap();
    let o = bert(&[
        "train",
        "--task",
        "sequence-classification",
        "-m",
        &model("pipe-seqcls"),
        "--train",
        d.join("t.jsonl").to_str().unwrap(),
        "--eval",
        d.join("v.jsonl").to_str().unwrap(),
        "--output",
        d.join("out-v").to_str().unwrap(),
    ]);
    fails_with(
        o,
        &[
            "v.jsonl:2",
            "label `zzz` is not in the training set's labels",
        ],
    );
    // A CoNLL line without a tag.
    std::fs::write(d.join("x.conll"), "the O\ndog\n").unwrap();
    let o = bert(&[
        "train",
        "--task",
        "token-classification",
        "-m",
        &model("pipe-tokcls"),
        "--train",
        d.join("x.conll").to_str().unwrap(),
        "--output",
        d.join("out-x").to_str().unwrap(),
    ]);
    fails_with(o, &["x.conll:2", "needs a token and a tag"]);
}
