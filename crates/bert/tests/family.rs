//! The BERT family against transformers 4.57 (goldens by `scripts/fixtures_family.py`): tiny
//! random RoBERTa, XLM-RoBERTa, DistilBERT and ELECTRA models of every class, with tokenizers
//! trained on `fixtures/family/corpus.txt`: token ids, type ids and byte offsets exactly; the four
//! outputs within 1e-4 (attentions 1e-5); every head's logits within 1e-4.

mod common;

use bert::architecture::Class;
use bert::ndarray::ArrayD;
use bert::{AutoModel, BertTokenizer, ForwardOptions};
use common::{check_case, fixtures, max_diff, Golden, TOL_HIDDEN};
use serde_json::Value;

const FAMILIES: [&str; 4] = ["roberta", "xlm-roberta", "distilbert", "electra"];

fn dir(family: &str, kind: &str) -> std::path::PathBuf {
    fixtures().join("family").join(family).join(kind)
}

/// The class directories of a family (`model`, `seqcls`, ... as the fixture script names them).
fn kinds(family: &str) -> Vec<String> {
    ["model", "seqcls", "tokcls", "qa", "mlm", "discriminator"]
        .into_iter()
        .filter(|k| dir(family, k).is_dir())
        .map(String::from)
        .collect()
}

#[test]
fn tokenizers_match_transformers() {
    for family in FAMILIES {
        check_tokenizer(
            family,
            &BertTokenizer::from_dir(dir(family, "model")).unwrap(),
        );
    }
}

/// RoBERTa checkpoints without tokenizer.json: byte-level BPE built from vocab.json and
/// merges.txt as transformers' `RobertaConverter` does gives the same ids, offsets and text.
#[test]
fn roberta_tokenizer_from_vocab_and_merges() {
    let tmp = std::env::temp_dir().join(format!("bert-roberta-bpe-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for f in [
        "vocab.json",
        "merges.txt",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ] {
        std::fs::copy(dir("roberta", "model").join(f), tmp.join(f)).unwrap();
    }
    let tok = BertTokenizer::from_dir(&tmp).unwrap();
    check_tokenizer("roberta", &tok);
    // The mask token takes the space before it (transformers' `lstrip=True`), as in tokenizer.json.
    let json = BertTokenizer::from_dir(dir("roberta", "model")).unwrap();
    for text in ["Paris is the <mask> of France.", "<mask> and  <mask>"] {
        assert_eq!(
            tok.tokenize(text).unwrap(),
            json.tokenize(text).unwrap(),
            "{text}"
        );
    }
    std::fs::remove_dir_all(&tmp).unwrap();
}

fn check_tokenizer(family: &str, tok: &BertTokenizer) {
    {
        let path = fixtures()
            .join("family")
            .join(family)
            .join("tokenizer-golden.json");
        let rows: Vec<Value> = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert!(rows.len() > 20, "{family}: too few tokenizer cases");
        for row in rows {
            let text = row["text"].as_str().unwrap();
            // transformers truncates only when asked to (ours defaults to model_max_length).
            let max_length = row["max_length"].as_u64().unwrap_or(10_000);
            let tok = tok.clone().with_max_length(max_length as usize);
            let e = match row["pair"].as_str() {
                Some(b) => tok.tokenize_pair(text, b).unwrap(),
                None => tok.tokenize(text).unwrap(),
            };
            let ids: Vec<i64> = serde_json::from_value(row["ids"].clone()).unwrap();
            assert_eq!(e.ids, ids, "{family} {row}");
            // RoBERTa's, XLM-R's and DistilBERT's tokenizers return no token_type_ids: ours are 0.
            match row["type_ids"].as_array() {
                Some(t) => {
                    let t: Vec<i64> = t.iter().map(|v| v.as_i64().unwrap()).collect();
                    assert_eq!(e.type_ids, t, "{family} {row}");
                }
                None => assert!(e.type_ids.iter().all(|&t| t == 0), "{family} {row}"),
            }
            if let Some(off) = row.get("offsets") {
                let off: Vec<(usize, usize)> = serde_json::from_value(off.clone()).unwrap();
                assert_eq!(e.offsets, off, "{family} offsets {row}");
                let decoded = tok.decode(&e.ids, true).unwrap();
                assert_eq!(decoded, row["decoded"].as_str().unwrap(), "{family} {row}");
            }
        }
    }
}

/// Max |ours - want| over real positions of the golden's case (dims 0, 1 = batch, token).
fn check_logits(label: &str, g: &Golden, case: &str, name: &str, ours: ArrayD<f32>) {
    let want = &g.f32s[&format!("{case}.{name}")];
    let mask = g.ids(&format!("{case}.attention_mask")).unwrap();
    // (B, T, ...) outputs: only real tokens; (B, C) sequence logits: every row.
    let per_token = ours.ndim() >= 2 && ours.shape()[1] == mask.ncols();
    let (worst, at) = max_diff(&ours, want, |i| !per_token || mask[[i[0], i[1]]] != 0);
    assert!(
        worst <= TOL_HIDDEN,
        "{label} {case}.{name}: max abs diff {worst:e} at {at:?} exceeds {TOL_HIDDEN:e}"
    );
}

#[test]
fn every_class_matches_transformers() {
    let mut checked = 0;
    for family in FAMILIES {
        for kind in kinds(family) {
            let label = format!("{family}/{kind}");
            let d = dir(family, &kind);
            let g = Golden::load_path(&d.join("golden.safetensors"));
            let model = AutoModel::from_dir(&d).unwrap_or_else(|e| panic!("{label}: {e}"));
            assert_eq!(model.architecture(), g.meta["class"], "{label}");
            for case in g.cases() {
                let inputs = g.inputs(&case);
                let opts = g.options(&case);
                let plain = ForwardOptions {
                    head_mask: opts.head_mask.clone(),
                    ..Default::default()
                };
                match &model {
                    AutoModel::Bert(m) => {
                        let out = m.forward(&inputs, &opts).unwrap();
                        check_case(&label, &g, &case, &out);
                    }
                    AutoModel::SequenceClassification(m) => {
                        let out = m.forward(&inputs, &plain).unwrap();
                        check_logits(&label, &g, &case, "logits", out.logits.into_dyn());
                    }
                    AutoModel::TokenClassification(m) => {
                        let out = m.forward(&inputs, &plain).unwrap();
                        check_logits(&label, &g, &case, "logits", out.logits.into_dyn());
                    }
                    AutoModel::QuestionAnswering(m) => {
                        let out = m.forward(&inputs, &plain).unwrap();
                        check_logits(
                            &label,
                            &g,
                            &case,
                            "start_logits",
                            out.start_logits.into_dyn(),
                        );
                        check_logits(&label, &g, &case, "end_logits", out.end_logits.into_dyn());
                    }
                    AutoModel::MaskedLM(m) => {
                        let out = m.forward(&inputs, &plain).unwrap();
                        check_logits(&label, &g, &case, "logits", out.logits.into_dyn());
                    }
                    AutoModel::Discriminator(m) => {
                        let out = m.forward(&inputs, &plain).unwrap();
                        check_logits(&label, &g, &case, "logits", out.logits.into_dyn());
                    }
                    _ => panic!("{label}: unexpected class {}", model.architecture()),
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 40, "only {checked} cases checked");
}

#[test]
fn distilbert_has_no_pooler_and_refuses_token_types() {
    let d = dir("distilbert", "model");
    let model = AutoModel::from_dir(&d).unwrap();
    assert_eq!(model.class(), Class::Model);
    let g = Golden::load_path(&d.join("golden.safetensors"));
    let mut inputs = g.inputs("pairs");
    let out = model.bert().forward(&inputs, &Default::default()).unwrap();
    assert!(out.pooler_output.is_none());
    inputs.token_type_ids[[0, 1]] = 1;
    let e = model
        .bert()
        .forward(&inputs, &Default::default())
        .unwrap_err();
    assert!(e.to_string().contains("takes no token_type_ids"), "{e}");
}

#[test]
fn classes_of_another_family_are_refused() {
    let e = AutoModel::from_pretrained_as(
        "BertForSequenceClassification",
        dir("roberta", "seqcls").to_str().unwrap(),
        &Default::default(),
    )
    .err()
    .unwrap();
    assert!(
        e.to_string().contains("RobertaForSequenceClassification"),
        "{e}"
    );
    let m = AutoModel::from_pretrained_as(
        "RobertaModel",
        dir("roberta", "seqcls").to_str().unwrap(),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(m.architecture(), "RobertaModel");
}

#[test]
fn roberta_inputs_longer_than_its_positions_are_refused() {
    let d = dir("roberta", "model");
    let model = AutoModel::from_dir(&d).unwrap();
    // max_position_embeddings 66 with padding_idx 1: 64 tokens at most.
    let ids = bert::ndarray::Array2::from_elem((1, 65), 5i64);
    let e = model
        .bert()
        .forward(&bert::BertInputs::from_ids(ids), &Default::default())
        .unwrap_err();
    assert!(e.to_string().contains("exceeds the 64 positions"), "{e}");
}

/// Loss and every gradient of a sequence-classification, a token-classification and a
/// question-answering loss against PyTorch's (`loss.backward()` in eval mode), relative to each
/// tensor's largest gradient; then the classifiers saved by `save_pretrained` carry transformers'
/// parameter names and reload to the same logits.
#[test]
fn fine_tuning_gradients_match_pytorch() {
    use bert::train::{save_pretrained, HeadInit, Labels, Mode, Task, TaskModel};
    let mut checked = 0;
    for family in FAMILIES {
        for (kind, task) in [
            ("seqcls", Task::SequenceClassification),
            ("tokcls", Task::TokenClassification),
            ("qa", Task::QuestionAnswering),
        ] {
            let label = format!("{family}/{kind}");
            let d = dir(family, kind);
            let g = Golden::load_path(&d.join("golden.safetensors"));
            let (model, params) = TaskModel::from_dir(&d, task, &HeadInit::default()).unwrap();
            let mut want: Vec<String> = g
                .f32s
                .keys()
                .filter_map(|k| k.strip_prefix("grads.grad.").map(String::from))
                .collect();
            let mut ours: Vec<String> = params
                .tensors()
                .iter()
                .map(|t| model.checkpoint_name(&t.name))
                .collect();
            want.sort();
            ours.sort();
            assert_eq!(ours, want, "{label}: parameter names");
            let vec = |k: &str| g.i64s[k].iter().copied().collect::<Vec<i64>>();
            let (inputs, labels) = match task {
                Task::SequenceClassification => {
                    (g.inputs("singles"), Labels::Classes(vec("grads.labels")))
                }
                Task::TokenClassification => (
                    g.inputs("singles"),
                    Labels::Tokens(g.ids("grads.labels").unwrap()),
                ),
                Task::QuestionAnswering => (
                    g.inputs("grads"),
                    Labels::Spans {
                        start: vec("grads.start_positions"),
                        end: vec("grads.end_positions"),
                    },
                ),
            };
            let mut grads = params.zeros_like();
            let loss = model
                .train_step(
                    &params,
                    &mut grads,
                    &inputs,
                    &labels,
                    &ForwardOptions::default(),
                    Mode::Eval,
                    1.0,
                )
                .unwrap();
            let want_loss = g.f32s["grads.loss"][[0]];
            assert!(
                (loss - want_loss).abs() <= 1e-5 * want_loss.abs().max(1.0),
                "{label}: loss {loss} vs {want_loss}"
            );
            for t in grads.tensors() {
                let name = model.checkpoint_name(&t.name);
                let theirs: Vec<f32> = g.f32s[&format!("grads.grad.{name}")]
                    .iter()
                    .copied()
                    .collect();
                let ours = grads.get(&t.name).unwrap();
                let scale = theirs.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
                let d = ours
                    .iter()
                    .zip(&theirs)
                    .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()))
                    / scale;
                // The key bias has no effect on softmax, and the QA head's bias shifts every logit
                // of a softmax over the same tokens: their gradients are zero, rounding noise in
                // both.
                if name.ends_with("attention.self.key.bias")
                    || name.ends_with("k_lin.bias")
                    || name == "qa_outputs.bias"
                {
                    assert!(ours.iter().all(|v| v.abs() < 1e-5), "{label}: {name}");
                    continue;
                }
                assert!(
                    d <= 1e-4,
                    "{label}: grad of {name} differs by {d:e} of its max"
                );
            }
            if task == Task::QuestionAnswering {
                checked += 1;
                continue;
            }
            // Saved as transformers names it, and loaded back by the inference model.
            let out = std::env::temp_dir()
                .join(format!("bert-family-{}-{label}", std::process::id()).replace('/', "-"));
            save_pretrained(&model, &params, &out, &[]).unwrap();
            let st = std::fs::read(out.join("model.safetensors")).unwrap();
            let mut saved: Vec<String> = safetensors::SafeTensors::deserialize(&st)
                .unwrap()
                .names()
                .into_iter()
                .map(String::from)
                .collect();
            saved.sort();
            assert_eq!(saved, want, "{label}: saved names");
            let back = AutoModel::from_dir(&out).unwrap();
            assert_eq!(back.architecture(), g.meta["class"], "{label}");
            let logits = match &back {
                AutoModel::SequenceClassification(m) => m
                    .forward(&inputs, &Default::default())
                    .unwrap()
                    .logits
                    .into_dyn(),
                AutoModel::TokenClassification(m) => m
                    .forward(&inputs, &Default::default())
                    .unwrap()
                    .logits
                    .into_dyn(),
                _ => unreachable!(),
            };
            check_logits(&label, &g, "singles", "logits", logits);
            std::fs::remove_dir_all(&out).unwrap();
            checked += 1;
        }
    }
    assert_eq!(checked, 12);
}

/// f16 and int8 run every family (the encoder's Linear layers in the dtype, ELECTRA's
/// `embeddings_project` too): each real token's `last_hidden_state` keeps its direction
/// (cosine to transformers' f32; tiny random weights, so the bounds are loose next to a
/// trained model's in docs/quantization.md).
#[test]
fn every_family_runs_in_f16_and_int8() {
    use bert::{Dtype, LoadOptions};
    for family in FAMILIES {
        let d = dir(family, "model");
        let g = Golden::load_path(&d.join("golden.safetensors"));
        let inputs = g.inputs("singles");
        let want = &g.f32s["singles.last_hidden_state"];
        for (dtype, bound) in [(Dtype::F16, 0.99999), (Dtype::Int8, 0.995)] {
            let m =
                AutoModel::from_pretrained_with(d.to_str().unwrap(), &LoadOptions::dtype(dtype))
                    .unwrap();
            assert_eq!(m.bert().dtype(), dtype);
            let out = m.bert().forward(&inputs, &Default::default()).unwrap();
            let (b, t, h) = out.last_hidden_state.dim();
            let mut worst = 1.0f32;
            for i in 0..b {
                for j in 0..t {
                    if inputs.attention_mask[[i, j]] == 0 {
                        continue;
                    }
                    let (mut dot, mut na, mut nb) = (0.0f32, 0.0f32, 0.0f32);
                    for k in 0..h {
                        let (x, y) = (out.last_hidden_state[[i, j, k]], want[[i, j, k]]);
                        dot += x * y;
                        na += x * x;
                        nb += y * y;
                    }
                    worst = worst.min(dot / (na.sqrt() * nb.sqrt()));
                }
            }
            println!("{family} {dtype:?}: worst token cosine {worst}");
            assert!(
                worst >= bound,
                "{family} {dtype:?}: cosine {worst} < {bound}"
            );
        }
    }
}
