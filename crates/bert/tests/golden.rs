//! Every tiny fixture model, in every checkpoint format, against transformers' outputs.

mod common;

use bert::BertModel;
use common::{check_model, fixtures};

fn run(dir: &str, golden: &str) {
    let path = fixtures().join("models").join(dir);
    let model = BertModel::from_dir(&path).unwrap_or_else(|e| panic!("loading {dir}: {e}"));
    check_model(dir, &model, golden);
}

#[test]
fn tiny_gelu_safetensors() {
    run("tiny-gelu", "tiny-gelu");
}

#[test]
fn tiny_gelu_sharded_safetensors() {
    run("tiny-gelu-sharded", "tiny-gelu");
}

#[test]
fn tiny_gelu_pytorch_bin() {
    run("tiny-gelu-pytorch", "tiny-gelu");
}

#[test]
fn tiny_gelu_pytorch_bin_sharded() {
    run("tiny-gelu-pytorch-sharded", "tiny-gelu");
}

#[test]
fn tiny_gelu_bert_prefix_with_head_tensors() {
    run("tiny-gelu-prefixed", "tiny-gelu");
}

#[test]
fn tiny_gelu_tf_era_gamma_beta_names() {
    run("tiny-gelu-gammabeta", "tiny-gelu");
}

#[test]
fn tiny_gelu_fp16() {
    run("tiny-gelu-fp16", "tiny-gelu-fp16");
}

#[test]
fn tiny_gelu_bf16() {
    run("tiny-gelu-bf16", "tiny-gelu-bf16");
}

#[test]
fn tiny_gelu_new_three_layers_eps_1e5() {
    run("tiny-gelu-new", "tiny-gelu-new");
}

#[test]
fn tiny_relu() {
    run("tiny-relu", "tiny-relu");
}

#[test]
fn tiny_silu() {
    run("tiny-silu", "tiny-silu");
}

#[test]
fn tiny_gelu_pytorch_tanh() {
    run("tiny-gelu-pytorch-tanh", "tiny-gelu-pytorch-tanh");
}

#[test]
fn tiny_without_pooler() {
    let path = fixtures().join("models").join("tiny-nopooler");
    let model = BertModel::from_dir(&path).unwrap();
    assert!(!model.has_pooler());
    check_model("tiny-nopooler", &model, "tiny-nopooler");
}
