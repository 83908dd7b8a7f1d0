//! `bert embed` against sentence-transformers' `encode(texts)` (the golden of
//! crates/bert/tests/sentence_embeddings.rs), in every output format.

mod common;

use common::*;

/// Normalized embeddings: the issue's bound.
const TOL: f32 = 1e-5;

/// The texts and embeddings sentence-transformers gave for all-MiniLM-L6-v2.
fn golden() -> (Vec<String>, Vec<Vec<f32>>) {
    let bytes =
        std::fs::read(root().join("fixtures/golden/st-all-MiniLM-L6-v2.safetensors")).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let texts = meta.metadata().as_ref().unwrap()["texts"].clone();
    let texts: Vec<String> = serde_json::from_str(&texts).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    (texts, rows(&st, "embeddings"))
}

fn rows(st: &safetensors::SafeTensors, name: &str) -> Vec<Vec<f32>> {
    let t = st.tensor(name).unwrap();
    let dim = t.shape()[1];
    let flat: Vec<f32> = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    flat.chunks(dim).map(<[f32]>::to_vec).collect()
}

fn assert_close(label: &str, ours: &[Vec<f32>], want: &[Vec<f32>]) {
    assert_eq!(ours.len(), want.len(), "{label}: rows");
    for (i, (a, b)) in ours.iter().zip(want).enumerate() {
        assert_eq!(a.len(), b.len(), "{label}: width");
        for (j, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= TOL,
                "{label}: text {i} dim {j}: {x} vs {y}"
            );
        }
    }
}

fn json_embeddings(text: &str) -> Vec<Vec<f32>> {
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

#[test]
fn every_output_format_matches_sentence_transformers() {
    let (texts, want) = golden();
    let input: String = texts
        .iter()
        .map(|t| format!("{}\n", serde_json::json!({ "text": t })))
        .collect();
    let input = scratch("embed-texts.jsonl", input.as_bytes());
    let input = input.to_str().unwrap();

    let o = bert(&["embed", "--input", input, "--batch-size", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("embedded {} inputs", texts.len())),
        "{}",
        stderr(&o)
    );
    assert_close(
        "stdout",
        &json_embeddings(&String::from_utf8(o.stdout).unwrap()),
        &want,
    );

    let out =
        |ext: &str| std::env::temp_dir().join(format!("bert-embed-{}.{ext}", std::process::id()));
    for ext in ["jsonl", "npy", "safetensors"] {
        let path = out(ext);
        let o = bert(&[
            "embed",
            "--input",
            input,
            "--output",
            path.to_str().unwrap(),
            "--quiet",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stderr(&o), "");
        let bytes = std::fs::read(&path).unwrap();
        let ours = match ext {
            "jsonl" => json_embeddings(&String::from_utf8(bytes).unwrap()),
            "npy" => {
                let header = String::from_utf8_lossy(&bytes[10..128]).into_owned();
                let shape = format!("'shape': ({}, 384)", texts.len());
                assert!(
                    bytes.starts_with(b"\x93NUMPY\x01\x00") && header.contains(&shape),
                    "{header}"
                );
                assert!(header.contains("'descr': '<f4'") && header.ends_with('\n'));
                let flat: Vec<f32> = bytes[128..]
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                    .collect();
                flat.chunks(384).map(<[f32]>::to_vec).collect()
            }
            _ => rows(
                &safetensors::SafeTensors::deserialize(&bytes).unwrap(),
                "embeddings",
            ),
        };
        assert_close(ext, &ours, &want);
        std::fs::remove_file(path).unwrap();
    }
    std::fs::remove_file(input).unwrap();
}

#[test]
fn bad_embed_jobs_fail_cleanly() {
    fails_with(
        bert(&["embed", "hi", "--output", "/tmp/x.csv"]),
        &["/tmp/x.csv", "unknown output format `.csv`", ".npy"],
    );
    let pairs = scratch("embed-pairs.jsonl", br#"{"text": "a", "text_pair": "b"}"#);
    fails_with(
        bert(&["embed", "--input", pairs.to_str().unwrap()]),
        &["embed-pairs.jsonl:1", "single texts"],
    );
    std::fs::remove_file(pairs).unwrap();
    fails_with(
        bert(&["embed", "--max-length", "513", "hi"]),
        &["use --max-length 512 or less"],
    );
}
