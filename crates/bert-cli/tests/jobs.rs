//! `bert encode` and `bert tokenize` on real jobs: many inputs in batches, memory and disk limits,
//! summaries, truncation, output files and standard output, interruptions, error wording and
//! progress.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

/// Runs a shell script with `$BERT` set to the binary under test.
fn sh(script: &str) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .env("BERT", env!("CARGO_BIN_EXE_bert"))
        .output()
        .expect("run sh")
}

/// A fresh empty directory.
fn scratch_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bert-jobs-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn words(n: usize) -> String {
    vec!["word"; n].join(" ")
}

fn f32s(st: &safetensors::SafeTensors, name: &str) -> Vec<f32> {
    st.tensor(name)
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

#[test]
fn batches_write_the_file_one_padded_batch_would() {
    let dir = scratch_dir("batches");
    let input = dir.join("in.txt");
    std::fs::write(
        &input,
        "Hello, my dog is cute\n\nHow are you?\na much longer line of text than the others here\nx\nshort one\nlast\n",
    )
    .unwrap();
    let run = |bs: &str, out: &str| {
        let out = dir.join(out);
        let o = bert(&[
            "encode",
            "--input",
            input.to_str().unwrap(),
            "--hidden-states",
            "--attentions",
            "--batch-size",
            bs,
            "--output",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        std::fs::read(out).unwrap()
    };
    let (small, whole) = (
        run("3", "small.safetensors"),
        run("100", "whole.safetensors"),
    );
    let (a, b) = (
        safetensors::SafeTensors::deserialize(&small).unwrap(),
        safetensors::SafeTensors::deserialize(&whole).unwrap(),
    );
    let mut names = a.names();
    names.sort();
    let mut names_b = b.names();
    names_b.sort();
    assert_eq!(names, names_b);
    assert_eq!(a.tensor("input_ids").unwrap().shape(), &[7, 12]);
    assert_eq!(a.tensor("attentions.5").unwrap().shape(), &[7, 12, 12, 12]);
    for name in names {
        let (x, y) = (a.tensor(name).unwrap(), b.tensor(name).unwrap());
        assert_eq!(x.shape(), y.shape(), "{name}");
        if x.dtype() == safetensors::Dtype::I64 {
            assert_eq!(x.data(), y.data(), "{name}");
        } else {
            let diff = f32s(&a, name)
                .iter()
                .zip(f32s(&b, name))
                .map(|(p, q)| (p - q).abs())
                .fold(0.0f32, f32::max);
            assert!(diff <= 1e-5, "{name}: {diff}"); // tolerance: a batch's GEMM shape only
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_batch_too_big_for_memory_is_an_error_not_an_abort() {
    let dir = scratch_dir("memory");
    let input = dir.join("long.txt");
    std::fs::write(&input, format!("{}\n", words(400)).repeat(16)).unwrap();
    // 16 inputs of 402 tokens: attentions alone are 16 x 12 x 402 x 402 x 4 B x 6 layers = 745 MB.
    let limited = |args: &str| {
        sh(&format!(
            "ulimit -v 1400000; exec \"$BERT\" encode --input {} --attentions --hidden-states {args}",
            input.display()
        ))
    };
    let o = limited("--batch-size 16");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    fails_with(
        o,
        &[
            "long.txt:1-16",
            "a batch of 16 inputs of up to 402 tokens needs about",
            "attentions",
            "a smaller --batch-size",
            "no --attentions",
        ],
    );
    // The same job in small batches fits in the same memory.
    let o = limited("--batch-size 2");
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(
        out.contains("attentions.5: shape [16, 12, 402, 402]"),
        "{out}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_output_too_big_for_the_disk_is_refused_before_any_work() {
    let dir = scratch_dir("disk");
    let input = dir.join("many.txt");
    // 5,000 inputs truncated to 512 tokens: their attentions would take 5,000 x 12 x 512 x 512 x
    // 4 B x 6 layers = 377.5 GB, more than the whole disk of any machine this runs on.
    std::fs::write(&input, format!("{}\n", words(600)).repeat(5_000)).unwrap();
    let out = dir.join("out.safetensors");
    fails_with(
        bert(&[
            "encode",
            "--input",
            input.to_str().unwrap(),
            "--attentions",
            "--output",
            out.to_str().unwrap(),
        ]),
        &[
            "out.safetensors: the output would take 381.5 GB (attentions 377.5 GB) but ",
            "free; use fewer inputs, no --attentions, or a smaller --max-length",
        ],
    );
    assert_eq!(entries(&dir), vec!["many.txt"]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_summary_shows_a_few_rows_and_counts_the_rest() {
    let input = scratch("fifty.txt", "some text\n".repeat(50).as_bytes());
    let o = bert(&["encode", "--input", input.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.lines().count() <= 30, "{out}");
    assert!(
        out.contains("input_ids: shape [50, 4]\n  [0, :4] = [101, 2070, 3793, 102]\n"),
        "{out}"
    );
    assert!(out.contains("(47 more rows)"), "{out}");
    std::fs::remove_file(input).unwrap();
}

#[test]
fn the_summary_slices_by_the_real_extent() {
    let o = bert(&["encode", "hi there", "--attentions"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.contains("attentions.0: shape [1, 12, 4, 4]\n"), "{out}");
    let row = out
        .lines()
        .find(|l| l.starts_with("  [0, 0, 0, :4] = ["))
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(row.matches(',').count(), 3 + 3, "{row}"); // three in the index, three between values
    assert!(row.ends_with(']') && !row.contains("..."), "{row}");
}

#[test]
fn truncation_is_reported_and_can_be_refused() {
    let long = words(600);
    for cmd in ["encode", "tokenize"] {
        let o = bert(&[cmd, &long, "short"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("1 of 2 inputs were longer than 512 tokens and were truncated to 512"),
            "{cmd}: {err}"
        );
        let o = bert(&[cmd, &long, "short", "--quiet"]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stderr(&o), "", "{cmd}");
        fails_with(
            bert(&[cmd, "short", &long, "--no-truncation"]),
            &["argument 2: longer than 512 tokens", "--no-truncation"],
        );
    }
}

#[test]
fn a_max_length_beyond_the_model_names_the_flag() {
    fails_with(
        bert(&["encode", "--max-length", "600", "hi"]),
        &["--max-length 600", "use --max-length 512 or less"],
    );
    let o = bert(&["encode", "--max-length", "600", "hi"]);
    assert!(!stderr(&o).contains("BertTokenizer::"), "{}", stderr(&o));
}

#[test]
fn output_dash_is_standard_output() {
    let dir = scratch_dir("stdout");
    let o = Command::new(env!("CARGO_BIN_EXE_bert"))
        .args(["encode", "Hello, my dog is cute", "--output", "-"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let st = safetensors::SafeTensors::deserialize(&o.stdout).unwrap();
    assert_eq!(
        st.tensor("last_hidden_state").unwrap().shape(),
        &[1, 8, 384]
    );
    // transformers: last_hidden_state[0, 0, :3] = [0.0230, -0.0103, 0.2201]
    assert!((f32s(&st, "last_hidden_state")[0] - 0.0230).abs() < 1e-3);
    assert!(entries(&dir).is_empty(), "{:?}", entries(&dir));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn output_files_get_the_default_mode_and_no_half_file_survives() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch_dir("mode");
    let o = sh(&format!(
        "cd {} && umask 022 && exec \"$BERT\" encode hi --output out.safetensors",
        dir.display()
    ));
    assert!(o.status.success(), "{}", stderr(&o));
    let mode = std::fs::metadata(dir.join("out.safetensors"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
    assert_eq!(entries(&dir), vec!["out.safetensors"]);

    // Interrupted while writing: neither the output nor its temporary file is left.
    std::fs::write(
        dir.join("in.txt"),
        format!("{}\n", words(100)).repeat(3_000),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bert"))
        .args([
            "encode",
            "--input",
            "in.txt",
            "--hidden-states",
            "--output",
            "big.safetensors",
        ])
        .current_dir(&dir)
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !entries(&dir).iter().any(|e| e.ends_with(".partial")) {
        assert!(start.elapsed().as_secs() < 60, "no temporary file appeared");
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before it could be interrupted"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert_eq!(entries(&dir), vec!["in.txt", "out.safetensors"]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn errors_say_what_is_wrong_once() {
    let dir = scratch_dir("errors");
    // An activation transformers has but this crate does not: not a JSON problem.
    let model = dir.join("quick-gelu");
    std::fs::create_dir(&model).unwrap();
    let tiny = root().join("fixtures/models/tiny-gelu");
    std::fs::copy(
        tiny.join("model.safetensors"),
        model.join("model.safetensors"),
    )
    .unwrap();
    let config = std::fs::read_to_string(tiny.join("config.json")).unwrap();
    let config = config.replace("\"hidden_act\": \"gelu\"", "\"hidden_act\": \"quick_gelu\"");
    assert!(config.contains("quick_gelu"));
    std::fs::write(model.join("config.json"), &config).unwrap();
    let o = bert(&["encode", "--model", model.to_str().unwrap(), "hi"]);
    assert!(!stderr(&o).contains("invalid JSON"), "{}", stderr(&o));
    fails_with(o, &["unsupported hidden_act `quick_gelu`"]);

    // A malformed and a missing config.json: the cause is not repeated.
    std::fs::write(model.join("config.json"), "{").unwrap();
    let o = bert(&["encode", "--model", model.to_str().unwrap(), "hi"]);
    assert!(!stderr(&o).contains("caused by"), "{}", stderr(&o));
    fails_with(o, &["config.json: invalid JSON: EOF"]);
    std::fs::remove_file(model.join("config.json")).unwrap();
    let o = bert(&["encode", "--model", model.to_str().unwrap(), "hi"]);
    assert!(!stderr(&o).contains("caused by"), "{}", stderr(&o));
    fails_with(o, &["config.json"]);

    // A mistyped local directory, with the hub out of reach.
    let o = Command::new(env!("CARGO_BIN_EXE_bert"))
        .args(["encode", "--model", "nomodel", "hi"])
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .env("HF_HUB_CACHE", &dir)
        .env_remove("HF_HUB_OFFLINE")
        .output()
        .unwrap();
    fails_with(
        o,
        &[
            "`nomodel`",
            "no local directory of that name",
            "could not be reached",
        ],
    );

    // An empty --input file is not "no --input".
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let o = bert(&[
        "tokenize",
        "--model",
        &tok_dir(),
        "--input",
        empty.to_str().unwrap(),
    ]);
    assert!(!stderr(&o).contains("give TEXT"), "{}", stderr(&o));
    fails_with(o, &["empty.txt: no input (the file is empty)"]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_file_without_newlines_is_not_read_whole() {
    let huge = scratch("one-line.txt", &vec![b'x'; (8 << 20) + 2]);
    fails_with(
        bert(&[
            "tokenize",
            "--model",
            &tok_dir(),
            "--input",
            huge.to_str().unwrap(),
        ]),
        &["one-line.txt:1: a line longer than 8 MiB"],
    );
    for bad in ["0", "70000"] {
        fails_with(
            bert(&["encode", "hi", "--batch-size", bad]),
            &[&format!("invalid value '{bad}' for '--batch-size <N>'")],
        );
    }
    std::fs::remove_file(huge).unwrap();
}

#[test]
fn blank_lines_follow_the_documented_rule() {
    let jsonl = scratch(
        "blank.jsonl",
        b"{\"text\": \"a\"}\n\n   \n{\"text\": \"b\"}\n",
    );
    let lines = json_lines(bert(&[
        "tokenize",
        "--model",
        &tok_dir(),
        "--input",
        jsonl.to_str().unwrap(),
    ]));
    assert_eq!(lines.len(), 2, "blank JSONL lines are skipped");
    let txt = scratch("blank.txt", b"a\n\nb\n");
    let lines = json_lines(bert(&[
        "tokenize",
        "--model",
        &tok_dir(),
        "--input",
        txt.to_str().unwrap(),
    ]));
    assert_eq!(lines.len(), 3, "an empty text line is an empty text");
    assert_eq!(lines[1]["input_ids"], serde_json::json!([101, 102]));
    let help = bert(&["tokenize", "--help"]);
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(help.contains("an empty line is an empty text"), "{help}");
    assert!(help.contains("blank lines are skipped"), "{help}");
    std::fs::remove_file(jsonl).unwrap();
    std::fs::remove_file(txt).unwrap();
}

#[test]
fn progress_shows_on_a_terminal_only() {
    let bench = "\"$BERT\" bench --config minilm-l6 --workload W2F --iters 3 --warmup 0";
    // `script` gives the command a terminal and copies what it draws to stdout.
    let o = sh(&format!("script -qec '{bench}' /dev/null"));
    assert!(o.status.success(), "{}", stderr(&o));
    let tty = String::from_utf8_lossy(&o.stdout);
    assert!(tty.contains("W2F") && tty.contains("/3 forwards"), "{tty}");
    let o = sh(bench);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("forwards"), "{}", stderr(&o));
}
