//! `run_train` / `run_evaluate`, the jobs of `bert train` / `bert evaluate` as a library call, on
//! the tiny `pipe-seqcls` fixture: the results it returns and writes, its events, an event that
//! stops it, and a bad data line found before anything is written.

mod common;

use std::path::{Path, PathBuf};

use bert::train::{run_evaluate, run_train, EvalJob, JobEvent, TrainJob};
use common::fixtures;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bert-train-job-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const WORDS: [&str; 8] = ["the", "dog", "cat", "is", "cute", "quick", "lazy", "mat"];

/// `n` JSON lines of the tiny vocabulary, labelled by whether they mention the dog.
fn jsonl(path: &Path, n: usize, seed: usize) {
    let mut s = String::new();
    for i in 0..n {
        let words: Vec<&str> = (0..3 + (i + seed) % 4)
            .map(|k| WORDS[(i * 5 + k * 3 + seed) % WORDS.len()])
            .collect();
        let label = if words.contains(&"dog") { "pos" } else { "neg" };
        let text = words.join(" ");
        s += &format!("{{\"text\": \"{text}\", \"label\": \"{label}\"}}\n");
    }
    std::fs::write(path, s).unwrap();
}

fn job(d: &Path) -> TrainJob {
    jsonl(&d.join("train.jsonl"), 12, 1);
    jsonl(&d.join("dev.jsonl"), 6, 4);
    TrainJob {
        model: fixtures().join("models/pipe-seqcls").display().to_string(),
        train: d.join("train.jsonl"),
        eval: Some(d.join("dev.jsonl")),
        output: d.join("out"),
        epochs: 2,
        batch_size: 4,
        learning_rate: 1e-3,
        log: Some(d.join("log.jsonl")),
        ..Default::default()
    }
}

#[test]
fn run_train_returns_and_writes_the_eval_results() {
    let d = dir("ok");
    let job = job(&d);
    let (mut started, mut steps, mut evals) = (None, Vec::new(), Vec::new());
    let results = run_train(&job, &mut |e| {
        match e {
            JobEvent::Started {
                train_examples,
                eval_examples,
                labels,
                max_steps,
                global_step,
                ..
            } => {
                started = Some((train_examples, eval_examples, labels.to_vec(), max_steps));
                assert_eq!(global_step, 0);
            }
            JobEvent::Step { log, .. } => steps.push(log.step),
            JobEvent::Eval { epoch, metrics, .. } => evals.push((epoch, metrics.clone())),
            _ => {}
        }
        Ok(())
    })
    .unwrap();
    // 12 examples in batches of 4: 3 steps an epoch.
    let labels = vec!["neg".to_string(), "pos".to_string()];
    assert_eq!(started, Some((12, Some(6), labels, 6)));
    assert_eq!(steps, (1..=6).collect::<Vec<u64>>());
    assert_eq!(evals.len(), 2);
    assert_eq!(evals[1].0, 2);

    let last = &results["final"];
    for k in ["loss", "accuracy", "macro_f1"] {
        assert!(last[k].is_f64(), "final lacks {k}: {results}");
    }
    assert_eq!(*last, evals[1].1);
    assert_eq!(results["epochs"].as_array().unwrap().len(), 2);
    assert!(results["train_tokens"].as_u64().unwrap() > 0);
    let out = &job.output;
    // The text written, not a parse of it: serde_json's default float parsing is not correctly
    // rounded, so a value read back can differ in its last digit from the one returned.
    let written = std::fs::read_to_string(out.join("eval_results.json")).unwrap();
    assert_eq!(
        written,
        serde_json::to_string_pretty(&results).unwrap() + "\n"
    );
    for f in [
        "model.safetensors",
        "config.json",
        "vocab.txt",
        "trainer_state.json",
    ] {
        assert!(out.join(f).is_file(), "{f} not written");
    }
    let log = std::fs::read_to_string(d.join("log.jsonl")).unwrap();
    assert_eq!(
        log.lines().count(),
        6 + 2,
        "a line per step and per evaluation"
    );

    // `bert evaluate`'s job on the written checkpoint scores what training's last evaluation did.
    let m = run_evaluate(&EvalJob {
        model: out.display().to_string(),
        data: d.join("dev.jsonl"),
        batch_size: job.batch_size,
        ..Default::default()
    })
    .unwrap();
    for k in ["loss", "accuracy", "macro_f1"] {
        let (a, b) = (m[k].as_f64().unwrap(), last[k].as_f64().unwrap());
        assert!((a - b).abs() <= 1e-6, "{k}: evaluate {a}, train {b}");
    }
}

#[test]
fn an_event_error_stops_the_job_and_is_returned() {
    let d = dir("stop");
    let job = job(&d);
    let mut steps = 0;
    let err = run_train(&job, &mut |e| match e {
        JobEvent::Step { log, .. } if log.step == 2 => {
            Err(bert::Error::Input("interrupted".into()))
        }
        JobEvent::Step { .. } => {
            steps += 1;
            Ok(())
        }
        _ => Ok(()),
    })
    .unwrap_err();
    assert!(
        matches!(&err, bert::Error::Input(m) if m == "interrupted"),
        "{err}"
    );
    assert_eq!(steps, 1, "no step after the error");
    assert!(!job.output.join("eval_results.json").exists());
    assert!(!job.output.join("model.safetensors").exists());
}

#[test]
fn a_bad_line_is_an_error_naming_it_before_anything_is_written() {
    let d = dir("bad");
    let job = job(&d);
    let good = "{\"text\": \"the dog\", \"label\": \"pos\"}\n";
    std::fs::write(&job.train, format!("{good}{good}{{\"text\": 3}}\n")).unwrap();
    let err = run_train(&job, &mut |_| panic!("no event before the data is checked")).unwrap_err();
    match &err {
        bert::Error::Data { path, line, .. } => {
            assert_eq!((path, *line), (&job.train, Some(3)));
        }
        other => panic!("expected Error::Data, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("{}:3: ", job.train.display())),
        "{text}"
    );
    assert!(text.contains("\"text\" must be a string"), "{text}");
    assert!(!job.output.exists());
}
