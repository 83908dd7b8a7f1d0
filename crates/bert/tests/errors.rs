//! Bad input of every kind gets an error that names the problem: never a panic, never a hang.

mod common;

use std::path::{Path, PathBuf};

use bert::ndarray::{array, Array2};
use bert::{BertInputs, BertModel, ForwardOptions};
use common::fixtures;

/// A scratch copy of a fixture model directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn copy_of(model: &str, tag: &str) -> Scratch {
        let src = fixtures().join("models").join(model);
        let dst = std::env::temp_dir().join(format!("bert-err-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dst);
        std::fs::create_dir_all(&dst).unwrap();
        for e in std::fs::read_dir(src).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
        Scratch(dst)
    }
    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn load_err(dir: &Path) -> String {
    match BertModel::from_dir(dir) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

/// Rewrites `model.safetensors` of `dir` through `edit(name, shape, data) -> Option<(shape, data)>`.
fn rewrite_safetensors(
    dir: &Scratch,
    edit: impl Fn(&str, Vec<usize>, Vec<u8>) -> Option<(Vec<usize>, Vec<u8>)>,
) {
    let path = dir.path("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .filter_map(|(n, v)| {
            edit(&n, v.shape().to_vec(), v.data().to_vec()).map(|(s, d)| (n, v.dtype(), s, d))
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = kept
        .iter()
        .map(|(n, dt, s, d)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*dt, s.clone(), d).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &path).unwrap();
}

#[test]
fn missing_files() {
    let err = load_err(Path::new("/nonexistent/model/dir"));
    assert!(err.contains("/nonexistent/model/dir"), "{err}");
    let d = Scratch::copy_of("tiny-gelu", "noconfig");
    std::fs::remove_file(d.path("config.json")).unwrap();
    let err = load_err(&d.0);
    assert!(err.contains("config.json"), "{err}");
    let d = Scratch::copy_of("tiny-gelu", "noweights");
    std::fs::remove_file(d.path("model.safetensors")).unwrap();
    let err = load_err(&d.0);
    assert!(err.contains("no weights found"), "{err}");
    assert!(err.contains("pytorch_model.bin"), "{err}");
    let d = Scratch::copy_of("tiny-gelu-sharded", "noshard");
    std::fs::remove_file(d.path("model-00002-of-00003.safetensors")).unwrap();
    let err = load_err(&d.0);
    assert!(err.contains("model-00002-of-00003.safetensors"), "{err}");
}

#[test]
fn bad_config() {
    let d = Scratch::copy_of("tiny-gelu", "badconfig");
    std::fs::write(d.path("config.json"), "{\"hidden_size\": ").unwrap();
    let err = load_err(&d.0);
    assert!(
        err.contains("config.json") && err.contains("invalid JSON"),
        "{err}"
    );
    std::fs::write(d.path("config.json"), r#"{"hidden_act": "mish"}"#).unwrap();
    let err = load_err(&d.0);
    assert!(err.contains("unsupported hidden_act `mish`"), "{err}");
    assert!(
        !err.contains("invalid JSON"),
        "valid JSON, unsupported value: {err}"
    );
    std::fs::write(
        d.path("config.json"),
        r#"{"position_embedding_type": "relative_key_query"}"#,
    )
    .unwrap();
    let err = load_err(&d.0);
    assert!(err.contains("relative_key_query"), "{err}");
}

#[test]
fn truncated_and_garbage_checkpoints() {
    let d = Scratch::copy_of("tiny-gelu", "trunc");
    let p = d.path("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_err(&d.0);
    assert!(err.contains("model.safetensors"), "{err}");
    std::fs::write(&p, b"").unwrap();
    let err = load_err(&d.0);
    assert!(err.contains("model.safetensors"), "{err}");
    std::fs::write(&p, vec![0xffu8; 64]).unwrap();
    let err = load_err(&d.0);
    assert!(err.contains("model.safetensors"), "{err}");

    let d = Scratch::copy_of("tiny-gelu-pytorch", "truncbin");
    let p = d.path("pytorch_model.bin");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_err(&d.0);
    assert!(err.contains("pytorch_model.bin"), "{err}");
}

#[test]
fn missing_tensor_and_wrong_shape_name_the_tensor_and_file() {
    let d = Scratch::copy_of("tiny-gelu", "missing");
    rewrite_safetensors(&d, |n, s, data| {
        (n != "encoder.layer.1.attention.self.key.bias").then_some((s, data))
    });
    let err = load_err(&d.0);
    assert!(
        err.contains("encoder.layer.1.attention.self.key.bias"),
        "{err}"
    );
    assert!(err.contains("model.safetensors"), "{err}");

    let d = Scratch::copy_of("tiny-gelu", "shape");
    rewrite_safetensors(&d, |n, s, data| {
        if n == "encoder.layer.0.intermediate.dense.weight" {
            // (37, 32) stored as (32, 37): same bytes, wrong shape.
            Some((vec![s[1], s[0]], data))
        } else {
            Some((s, data))
        }
    });
    let err = load_err(&d.0);
    assert!(
        err.contains("encoder.layer.0.intermediate.dense.weight"),
        "{err}"
    );
    assert!(
        err.contains("[37, 32]") && err.contains("[32, 37]"),
        "{err}"
    );
}

fn tiny() -> BertModel {
    BertModel::from_dir(fixtures().join("models").join("tiny-gelu")).unwrap()
}

fn forward_err(m: &BertModel, inputs: &BertInputs, opts: &ForwardOptions) -> String {
    match m.forward(inputs, opts) {
        Ok(_) => panic!("forward accepted bad input"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_forward_inputs() {
    let m = tiny();
    let ok = BertInputs::from_ids(array![[1, 2, 3]]);
    let none = ForwardOptions::default();
    assert!(m.forward(&ok, &none).is_ok());

    let err = forward_err(&m, &BertInputs::from_ids(array![[1, 99, 3]]), &none);
    assert!(
        err.contains("input_ids[0, 1] = 99") && err.contains("vocab_size is 99"),
        "{err}"
    );
    let err = forward_err(&m, &BertInputs::from_ids(array![[1, -5]]), &none);
    assert!(err.contains("input_ids[0, 1] = -5"), "{err}");

    let mut bad = ok.clone();
    bad.token_type_ids = array![[0, 2, 0]];
    let err = forward_err(&m, &bad, &none);
    assert!(err.contains("token_type_ids[0, 1] = 2"), "{err}");

    let mut bad = ok.clone();
    bad.attention_mask = array![[1, 1]];
    let err = forward_err(&m, &bad, &none);
    assert!(err.contains("attention_mask has shape (1, 2)"), "{err}");

    let mut bad = ok.clone();
    bad.attention_mask = array![[1, 2, 1]];
    let err = forward_err(&m, &bad, &none);
    assert!(err.contains("attention_mask[0, 1] = 2"), "{err}");

    let long = BertInputs::from_ids(Array2::ones((1, 65)));
    let err = forward_err(&m, &long, &none);
    assert!(
        err.contains("65") && err.contains("max_position_embeddings 64"),
        "{err}"
    );

    let opts = ForwardOptions {
        position_ids: Some(array![[0, 1, 64]]),
        ..Default::default()
    };
    let err = forward_err(&m, &ok, &opts);
    assert!(err.contains("position_ids[0, 2] = 64"), "{err}");
    let opts = ForwardOptions {
        position_ids: Some(array![[0, 1]]),
        ..Default::default()
    };
    let err = forward_err(&m, &ok, &opts);
    assert!(err.contains("position_ids has shape"), "{err}");

    let opts = ForwardOptions {
        head_mask: Some(Array2::ones((2, 3))),
        ..Default::default()
    };
    let err = forward_err(&m, &ok, &opts);
    assert!(
        err.contains("head_mask has shape (2, 3)") && err.contains("(2, 4)"),
        "{err}"
    );
    let opts = ForwardOptions {
        head_mask: Some(Array2::from_elem((2, 4), f32::NAN)),
        ..Default::default()
    };
    let err = forward_err(&m, &ok, &opts);
    assert!(err.contains("head_mask"), "{err}");

    let empty = BertInputs::from_ids(Array2::zeros((0, 3)));
    let err = forward_err(&m, &empty, &none);
    assert!(err.contains("empty batch"), "{err}");
}

#[test]
fn fully_masked_rows_give_zeros() {
    let m = tiny();
    let mut inputs = BertInputs::from_ids(array![[1, 2, 3], [4, 5, 6]]);
    inputs.attention_mask = array![[1, 1, 1], [0, 0, 0]];
    let opts = ForwardOptions {
        output_hidden_states: true,
        output_attentions: true,
        ..Default::default()
    };
    let out = m.forward(&inputs, &opts).unwrap();
    let row = |a: &bert::ndarray::Array3<f32>| {
        a.index_axis(bert::ndarray::Axis(0), 1)
            .iter()
            .all(|&v| v == 0.0)
    };
    assert!(row(&out.last_hidden_state));
    assert!(out.hidden_states.unwrap().iter().all(row));
    let pooled = out.pooler_output.unwrap();
    assert!(pooled.row(1).iter().all(|&v| v == 0.0));
    assert!(pooled.row(0).iter().any(|&v| v != 0.0));
    for a in out.attentions.unwrap() {
        assert!(a
            .index_axis(bert::ndarray::Axis(0), 1)
            .iter()
            .all(|&v| v == 0.0));
    }
}

#[test]
fn hub_resolution_errors() {
    let err = bert::hub::resolve("", bert::hub::Need::Model)
        .unwrap_err()
        .to_string();
    assert!(err.contains("empty model name"), "{err}");
    let err = bert::hub::resolve("./no/such/dir", bert::hub::Need::Model)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no such directory"), "{err}");
    let file = fixtures().join("models/tiny-gelu/config.json");
    let err = bert::hub::resolve(file.to_str().unwrap(), bert::hub::Need::Model)
        .unwrap_err()
        .to_string();
    assert!(err.contains("is a file"), "{err}");
}

#[test]
fn a_weight_stored_twice_is_an_error() {
    // `bert.pooler.dense.bias` and `pooler.dense.bias` are the same weight once the `bert.` prefix
    // is dropped: loading must not pick one silently.
    let d = Scratch::copy_of("tiny-gelu", "twice");
    let path = d.path("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut views: Vec<(String, safetensors::tensor::TensorView)> = st.tensors();
    let bias = st.tensor("pooler.dense.bias").unwrap();
    views.push(("bert.pooler.dense.bias".into(), bias));
    safetensors::serialize_to_file(views, None, &path).unwrap();
    let err = load_err(&d.0);
    assert!(
        err.contains("bert.pooler.dense.bias") && err.contains("`pooler.dense.bias`"),
        "{err}"
    );
    assert!(err.contains("model.safetensors"), "{err}");
}
