//! Every `BertFor*` head against transformers' logits on the tiny head fixtures
//! (`fixtures/models/heads-*`, made by `scripts/make_fixtures.py`). Logits are compared on real
//! positions only; ours are zero at padding.

mod common;

use bert::heads::{AutoModel, NewHead};
use bert::ndarray::{ArrayD, Dimension, IxDyn};
use bert::{
    BertForMaskedLM, BertForMultipleChoice, BertForNextSentencePrediction, BertForPreTraining,
    BertForQuestionAnswering, BertForSequenceClassification, BertForTokenClassification, BertModel,
    ForwardOptions,
};
use common::{fixtures, Golden};

/// Max abs difference allowed for every logit tensor (the bound).
const TOL_LOGITS: f32 = 1e-4;
/// For the carried base outputs: as the encoder's golden tests.
const TOL_HIDDEN: f32 = 1e-4;
const TOL_ATTN: f32 = 1e-5;

fn dir(name: &str) -> std::path::PathBuf {
    fixtures().join("models").join(name)
}

fn opts() -> ForwardOptions {
    ForwardOptions {
        output_hidden_states: true,
        output_attentions: true,
        ..Default::default()
    }
}

/// Compares `ours` with golden `key` where `keep` holds; panics above `tol`. Returns the max diff.
fn check(
    g: &Golden,
    key: &str,
    ours: ArrayD<f32>,
    tol: f32,
    keep: &dyn Fn(&[usize]) -> bool,
) -> f32 {
    let want = g
        .f32s
        .get(key)
        .unwrap_or_else(|| panic!("golden has no {key}"));
    assert_eq!(ours.shape(), want.shape(), "{key}: shape");
    let mut worst = 0.0f32;
    for (idx, &w) in want.indexed_iter() {
        let idx = idx.slice().to_vec();
        if !keep(&idx) {
            continue;
        }
        let d = (ours[IxDyn(&idx)] - w).abs();
        assert!(
            d <= tol,
            "{key}: |{} - {w}| = {d:e} at {idx:?} exceeds {tol:e}",
            ours[IxDyn(&idx)]
        );
        worst = worst.max(d);
    }
    println!("{key}: max abs diff {worst:e} (tol {tol:e})");
    worst
}

fn real(g: &Golden, case: &str) -> impl Fn(usize, usize) -> bool {
    let mask = g.ids(&format!("{case}.attention_mask")).unwrap();
    move |b, t| mask[[b, t]] == 1
}

/// The carried base outputs: the last hidden state and the first layer's attentions.
fn check_base(
    g: &Golden,
    case: &str,
    hs: &Option<Vec<bert::ndarray::Array3<f32>>>,
    att: &Option<Vec<bert::ndarray::Array4<f32>>>,
) {
    let (hs, att) = (hs.as_ref().unwrap(), att.as_ref().unwrap());
    let real = real(g, case);
    let last = hs.len() - 1;
    check(
        g,
        &format!("{case}.hidden_states.{last}"),
        hs[last].clone().into_dyn(),
        TOL_HIDDEN,
        &|i| real(i[0], i[1]),
    );
    check(
        g,
        &format!("{case}.attentions.0"),
        att[0].clone().into_dyn(),
        TOL_ATTN,
        &|i| real(i[0], i[2]),
    );
}

fn check_labels(g: &Golden, config: &bert::BertConfig) {
    let want: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&g.meta["id2label"]).unwrap();
    let ours: std::collections::BTreeMap<String, String> = config
        .id2label
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    assert_eq!(ours, want, "id2label");
    assert_eq!(config.num_labels().to_string(), g.meta["num_labels"]);
    let pt = match config.problem_type {
        None => "None".to_string(),
        Some(p) => serde_json::to_value(p)
            .unwrap()
            .as_str()
            .unwrap()
            .to_string(),
    };
    assert_eq!(pt, g.meta["problem_type"], "problem_type");
}

fn sequence_classification(name: &str) {
    let g = Golden::load(name);
    let m = BertForSequenceClassification::from_dir(dir(name)).unwrap();
    check_labels(&g, m.config());
    for case in g.cases() {
        let out = m.forward(&g.inputs(&case), &opts()).unwrap();
        check(
            &g,
            &format!("{case}.logits"),
            out.logits.into_dyn(),
            TOL_LOGITS,
            &|_| true,
        );
        check_base(&g, &case, &out.hidden_states, &out.attentions);
    }
}

#[test]
fn sequence_classification_three_labels_safetensors() {
    sequence_classification("heads-seqcls");
    let m = BertForSequenceClassification::from_dir(dir("heads-seqcls")).unwrap();
    assert_eq!(m.config().classifier_dropout, Some(0.3));
    assert_eq!(m.config().label2id["POS"], 2);
}

#[test]
fn sequence_classification_multi_label_pytorch_bin() {
    sequence_classification("heads-seqcls-multilabel-pytorch");
}

#[test]
fn sequence_classification_regression_one_label() {
    sequence_classification("heads-seqcls-regression");
}

fn token_classification(name: &str) {
    let g = Golden::load(name);
    let m = BertForTokenClassification::from_dir(dir(name)).unwrap();
    check_labels(&g, m.config());
    for case in g.cases() {
        let out = m.forward(&g.inputs(&case), &opts()).unwrap();
        let real = real(&g, &case);
        check(
            &g,
            &format!("{case}.logits"),
            out.logits.clone().into_dyn(),
            TOL_LOGITS,
            &|i| real(i[0], i[1]),
        );
        for ((b, t, _), &v) in out.logits.indexed_iter() {
            assert!(real(b, t) || v == 0.0, "logits at padding ({b}, {t})");
        }
        check_base(&g, &case, &out.hidden_states, &out.attentions);
    }
}

#[test]
fn token_classification_safetensors() {
    token_classification("heads-tokcls");
}

#[test]
fn token_classification_fp16() {
    token_classification("heads-tokcls-fp16");
}

#[test]
fn question_answering() {
    let name = "heads-qa";
    let g = Golden::load(name);
    let m = BertForQuestionAnswering::from_dir(dir(name)).unwrap();
    for case in g.cases() {
        let out = m.forward(&g.inputs(&case), &opts()).unwrap();
        let real = real(&g, &case);
        for (key, ours) in [
            ("start_logits", &out.start_logits),
            ("end_logits", &out.end_logits),
        ] {
            check(
                &g,
                &format!("{case}.{key}"),
                ours.clone().into_dyn(),
                TOL_LOGITS,
                &|i| real(i[0], i[1]),
            );
        }
        check_base(&g, &case, &out.hidden_states, &out.attentions);
    }
}

#[test]
fn multiple_choice() {
    let name = "heads-multiple-choice";
    let g = Golden::load(name);
    let m = BertForMultipleChoice::from_dir(dir(name)).unwrap();
    let c: usize = g.meta["num_choices"].parse().unwrap();
    for case in g.cases() {
        let out = m.forward(&g.inputs(&case), c, &opts()).unwrap();
        check(
            &g,
            &format!("{case}.logits"),
            out.logits.into_dyn(),
            TOL_LOGITS,
            &|_| true,
        );
        check_base(&g, &case, &out.hidden_states, &out.attentions);
    }
    let e = m
        .forward(&g.inputs("choices"), 4, &opts())
        .unwrap_err()
        .to_string();
    assert!(e.contains("4 choices"), "{e}");
}

fn masked_lm(name: &str, golden: &str) {
    let g = Golden::load(golden);
    let m = BertForMaskedLM::from_dir(dir(name)).unwrap();
    for case in g.cases() {
        let inputs = g.inputs(&case);
        let out = m.forward(&inputs, &opts()).unwrap();
        let real = real(&g, &case);
        let key = format!("{case}.logits");
        check(&g, &key, out.logits.clone().into_dyn(), TOL_LOGITS, &|i| {
            real(i[0], i[1])
        });
        check_base(&g, &case, &out.hidden_states, &out.attentions);

        // Only some positions, in any order: the same rows as the full product.
        let (b, t) = inputs.input_ids.dim();
        let positions: Vec<(usize, usize)> = (0..b)
            .flat_map(|i| (0..t).map(move |j| (i, j)))
            .filter(|&(i, j)| real(i, j) && (i + j) % 3 == 0)
            .rev()
            .collect();
        let at = m
            .forward_at(&inputs, &positions, &ForwardOptions::default())
            .unwrap();
        let want = &g.f32s[&key];
        for (r, &(i, j)) in positions.iter().enumerate() {
            for v in 0..m.config().vocab_size {
                let d = (at.logits[[r, v]] - want[IxDyn(&[i, j, v])]).abs();
                assert!(
                    d <= TOL_LOGITS,
                    "{name} forward_at ({i}, {j}) vocab {v}: {d:e}"
                );
            }
        }
    }
}

#[test]
fn masked_lm_tied_safetensors() {
    masked_lm("heads-mlm", "heads-mlm");
}

#[test]
fn masked_lm_pytorch_bin_with_stored_tied_tensors() {
    masked_lm("heads-mlm-pytorch", "heads-mlm-pytorch");
}

#[test]
fn masked_lm_legacy_gamma_beta_names() {
    masked_lm("heads-mlm-legacy-names", "heads-mlm");
}

#[test]
fn masked_lm_untied_decoder() {
    masked_lm("heads-mlm-untied", "heads-mlm-untied");
    let m = BertForMaskedLM::from_dir(dir("heads-mlm-untied")).unwrap();
    assert!(m.predictions.untied_decoder().is_some());
}

#[test]
fn masked_lm_positions_are_checked() {
    let g = Golden::load("heads-mlm");
    let m = BertForMaskedLM::from_dir(dir("heads-mlm")).unwrap();
    let inputs = g.inputs("batch");
    let o = ForwardOptions::default();
    let e = m
        .forward_at(&inputs, &[(1, 5)], &o)
        .unwrap_err()
        .to_string();
    assert!(e.contains("padding"), "{e}");
    let e = m
        .forward_at(&inputs, &[(3, 0)], &o)
        .unwrap_err()
        .to_string();
    assert!(e.contains("outside"), "{e}");
    let id = inputs.input_ids[[0, 2]];
    let pos = BertForMaskedLM::positions_of(&inputs, id);
    assert!(pos.contains(&(0, 2)), "{pos:?}");
    assert_eq!(
        m.forward_at(&inputs, &[], &o).unwrap().logits.dim(),
        (0, 99)
    );
}

#[test]
fn next_sentence_prediction() {
    let name = "heads-nsp";
    let g = Golden::load(name);
    let m = BertForNextSentencePrediction::from_dir(dir(name)).unwrap();
    for case in g.cases() {
        let out = m.forward(&g.inputs(&case), &opts()).unwrap();
        check(
            &g,
            &format!("{case}.logits"),
            out.logits.into_dyn(),
            TOL_LOGITS,
            &|_| true,
        );
        check_base(&g, &case, &out.hidden_states, &out.attentions);
    }
}

#[test]
fn pretraining() {
    let name = "heads-pretraining";
    let g = Golden::load(name);
    let m = BertForPreTraining::from_dir(dir(name)).unwrap();
    for case in g.cases() {
        let out = m.forward(&g.inputs(&case), &opts()).unwrap();
        let real = real(&g, &case);
        check(
            &g,
            &format!("{case}.prediction_logits"),
            out.prediction_logits.into_dyn(),
            TOL_LOGITS,
            &|i| real(i[0], i[1]),
        );
        check(
            &g,
            &format!("{case}.seq_relationship_logits"),
            out.seq_relationship_logits.into_dyn(),
            TOL_LOGITS,
            &|_| true,
        );
        check_base(&g, &case, &out.hidden_states, &out.attentions);
    }
}

#[test]
fn auto_model_picks_the_architecture() {
    for (name, arch) in [
        ("heads-seqcls", "BertForSequenceClassification"),
        ("heads-tokcls", "BertForTokenClassification"),
        ("heads-qa", "BertForQuestionAnswering"),
        ("heads-multiple-choice", "BertForMultipleChoice"),
        ("heads-mlm", "BertForMaskedLM"),
        ("heads-nsp", "BertForNextSentencePrediction"),
        ("heads-pretraining", "BertForPreTraining"),
        ("tiny-gelu", "BertModel"),
    ] {
        let m = AutoModel::from_dir(dir(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(m.architecture(), arch, "{name}");
        assert_eq!(m.bert().config().hidden_size, 32);
    }
}

#[test]
fn new_heads_are_seeded_and_shaped() {
    let base = || BertModel::from_dir(dir("tiny-gelu")).unwrap();
    let init = NewHead {
        seed: 7,
        labels: Some(vec!["A".into(), "B".into(), "C".into()]),
    };
    let a = BertForSequenceClassification::with_new_head(base(), &init).unwrap();
    let b = BertForSequenceClassification::with_new_head(base(), &init).unwrap();
    assert_eq!(a.classifier.weight(), b.classifier.weight());
    assert_eq!(a.classifier.weight().dim(), (3, 32));
    assert!(a.classifier.bias().iter().all(|&v| v == 0.0));
    assert_eq!(a.config().id2label[&2], "C");
    assert_eq!(a.config().label2id["B"], 1);
    let std = (a.classifier.weight().iter().map(|v| v * v).sum::<f32>() / 96.0).sqrt();
    assert!((0.01..0.03).contains(&std), "init std {std}");
    let g = Golden::load("heads-seqcls");
    assert_eq!(
        a.forward(&g.inputs("batch"), &ForwardOptions::default())
            .unwrap()
            .logits
            .dim(),
        (3, 3)
    );
    let t = BertForTokenClassification::with_new_head(base(), &NewHead::default()).unwrap();
    assert_eq!(t.classifier.weight().dim(), (2, 32));
    let mlm = BertForMaskedLM::with_new_head(base(), &NewHead::default()).unwrap();
    assert!(mlm.predictions.bias().iter().all(|&v| v == 0.0));
    BertForQuestionAnswering::with_new_head(base(), &NewHead::default()).unwrap();
    BertForMultipleChoice::with_new_head(base(), &NewHead::default()).unwrap();
    BertForNextSentencePrediction::with_new_head(base(), &NewHead::default()).unwrap();
    BertForPreTraining::with_new_head(base(), &NewHead::default()).unwrap();
    let nopool = || BertModel::from_dir(dir("tiny-nopooler")).unwrap();
    let init = NewHead::default();
    let errors = [
        BertForSequenceClassification::with_new_head(nopool(), &init).err(),
        BertForMultipleChoice::with_new_head(nopool(), &init).err(),
        BertForNextSentencePrediction::with_new_head(nopool(), &init).err(),
        BertForPreTraining::with_new_head(nopool(), &init).err(),
    ];
    for e in errors {
        let e = e
            .expect("a head on pooler_output needs a pooler")
            .to_string();
        assert!(
            e.contains("reads pooler_output") && e.contains("no pooler"),
            "{e}"
        );
    }
}

/// A scratch copy of a fixture model directory, removed on drop.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn copy_of(model: &str, tag: &str) -> Scratch {
        let dst = std::env::temp_dir().join(format!("bert-heads-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dst);
        std::fs::create_dir_all(&dst).unwrap();
        for e in std::fs::read_dir(dir(model)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
        Scratch(dst)
    }

    fn edit_config(&self, edit: impl Fn(&mut serde_json::Value)) {
        let p = self.0.join("config.json");
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        edit(&mut v);
        std::fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn missing_head_tensors_are_named() {
    // A plain BertModel checkpoint has no classifier: never random logits.
    let e = BertForSequenceClassification::from_dir(dir("tiny-gelu"))
        .err()
        .unwrap()
        .to_string();
    println!("{e}");
    for want in [
        "BertForSequenceClassification",
        "classifier.weight",
        "classifier.bias",
        "model.safetensors",
        "BertModel",
        "with_new_head",
    ] {
        assert!(e.contains(want), "missing {want:?} in: {e}");
    }
    // A token-classification checkpoint has no pooler and no NSP head.
    let e = BertForNextSentencePrediction::from_dir(dir("heads-tokcls"))
        .err()
        .unwrap()
        .to_string();
    for want in [
        "pooler.dense.weight",
        "cls.seq_relationship.weight",
        "BertForTokenClassification",
    ] {
        assert!(e.contains(want), "missing {want:?} in: {e}");
    }
    let e = BertForMaskedLM::from_dir(dir("heads-seqcls"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("cls.predictions.transform.dense.weight"), "{e}");
    assert!(e.contains("cls.predictions.bias"), "{e}");
    let e = BertForQuestionAnswering::from_dir(dir("heads-mlm"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("qa_outputs.weight"), "{e}");
    let e = BertForMultipleChoice::from_dir(dir("heads-qa"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("classifier.weight"), "{e}");
    // The encoder's own tensors are still reported as before.
    let e = AutoModel::from_dir(dir("tiny-gelu-gammabeta"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("BertForPreTraining") && e.contains("cls.seq_relationship"),
        "{e}"
    );
}

#[test]
fn num_labels_disagreeing_with_the_classifier() {
    let d = Scratch::copy_of("heads-seqcls", "labels");
    d.edit_config(|c| {
        c["id2label"] = serde_json::json!({"0": "A", "1": "B", "2": "C", "3": "D", "4": "E"});
        c["label2id"] = serde_json::json!({"A": 0, "B": 1, "C": 2, "D": 3, "E": 4});
    });
    let e = BertForSequenceClassification::from_dir(&d.0)
        .err()
        .unwrap()
        .to_string();
    println!("{e}");
    for want in ["classifier.weight", "3 output rows", "num_labels is 5"] {
        assert!(e.contains(want), "missing {want:?} in: {e}");
    }
    let d = Scratch::copy_of("heads-tokcls", "labels-tok");
    d.edit_config(|c| {
        c.as_object_mut().unwrap().remove("id2label");
        c.as_object_mut().unwrap().remove("label2id");
    });
    let e = BertForTokenClassification::from_dir(&d.0)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("5 output rows") && e.contains("num_labels is 2"),
        "{e}"
    );
    let d = Scratch::copy_of("heads-qa", "labels-qa");
    d.edit_config(|c| c["num_labels"] = serde_json::json!(3));
    let e = BertForQuestionAnswering::from_dir(&d.0)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("num_labels 2"), "{e}");
    let d = Scratch::copy_of("heads-seqcls", "arch");
    d.edit_config(|c| c["architectures"] = serde_json::json!(["BertLMHeadModel"]));
    let e = AutoModel::from_dir(&d.0).err().unwrap().to_string();
    assert!(e.contains("BertLMHeadModel"), "{e}");
}

#[test]
fn masked_lm_bias_saved_only_as_decoder_bias() {
    // Some older checkpoints hold the output bias only under its tied name.
    let d = Scratch::copy_of("heads-mlm", "decoder-bias");
    let path = d.0.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let views: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            let n = if n == "cls.predictions.bias" {
                "cls.predictions.decoder.bias".to_string()
            } else {
                n
            };
            (n, v)
        })
        .collect();
    safetensors::serialize_to_file(views, None, &path).unwrap();
    masked_lm_dir(&d.0, "heads-mlm");
}

fn masked_lm_dir(path: &std::path::Path, golden: &str) {
    let g = Golden::load(golden);
    let m = BertForMaskedLM::from_dir(path).unwrap();
    for case in g.cases() {
        let out = m.forward(&g.inputs(&case), &opts()).unwrap();
        let real = real(&g, &case);
        check(
            &g,
            &format!("{case}.logits"),
            out.logits.into_dyn(),
            TOL_LOGITS,
            &|i| real(i[0], i[1]),
        );
    }
}

#[test]
fn heads_can_be_shared_across_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<BertForSequenceClassification>();
    shared::<BertForTokenClassification>();
    shared::<BertForQuestionAnswering>();
    shared::<BertForMultipleChoice>();
    shared::<BertForMaskedLM>();
    shared::<BertForNextSentencePrediction>();
    shared::<BertForPreTraining>();
    shared::<AutoModel>();
    shared::<bert::SentenceEmbeddings>();
}
