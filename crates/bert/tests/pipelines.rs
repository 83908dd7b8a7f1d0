//! The pipelines against transformers' own `pipeline(...)` outputs on the tiny fixtures
//! (`fixtures/golden/pipe-*.json`, made by `scripts/make_fixtures.py`): every field compared,
//! strings and integers exactly, scores within a tolerance.

mod common;

use bert::pipelines::{
    AggregationStrategy, ClassificationFunction, CrossEncoder, FillMask, FillMaskOptions,
    QuestionAnswering, QuestionAnsweringOptions, TextClassification, TextClassificationOptions,
    TokenClassification, TokenClassificationOptions,
};
use bert::Error;
use common::fixtures;
use serde_json::Value;

/// Max abs difference of a score (probabilities; raw logits for regression). The logits agree
/// within 1e-5 (see heads.rs), so softmax/sigmoid scores within a few 1e-6.
const TOL_SCORE: f64 = 2e-5;

fn golden(name: &str) -> Value {
    let path = fixtures().join("golden").join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn model(name: &str) -> String {
    fixtures().join("models").join(name).display().to_string()
}

/// Compares `ours` with `theirs` field by field; returns the largest score difference.
fn compare(ours: &Value, theirs: &Value, at: &str) -> f64 {
    match (ours, theirs) {
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(
                a.len(),
                b.len(),
                "{at}: length\nours   {ours}\ntheirs {theirs}"
            );
            a.iter()
                .zip(b)
                .enumerate()
                .map(|(i, (x, y))| compare(x, y, &format!("{at}[{i}]")))
                .fold(0.0, f64::max)
        }
        (Value::Object(a), Value::Object(b)) => {
            let mut ka: Vec<_> = a.keys().collect();
            let mut kb: Vec<_> = b.keys().collect();
            ka.sort();
            kb.sort();
            assert_eq!(ka, kb, "{at}: fields\nours   {ours}\ntheirs {theirs}");
            let mut worst = 0.0f64;
            for (k, v) in a {
                let w = &b[k];
                if k == "score" {
                    let d = (v.as_f64().unwrap() - w.as_f64().unwrap()).abs();
                    assert!(d <= TOL_SCORE, "{at}.score: {v} vs {w} (diff {d:e})");
                    worst = worst.max(d);
                } else {
                    worst = worst.max(compare(v, w, &format!("{at}.{k}")));
                }
            }
            worst
        }
        _ => {
            assert_eq!(ours, theirs, "{at}");
            0.0
        }
    }
}

fn cases(g: &Value) -> &Vec<Value> {
    g["cases"].as_array().unwrap()
}

fn top_k(kw: &Value) -> Option<usize> {
    match kw.get("top_k") {
        None => Some(1),
        Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().unwrap() as usize),
    }
}

#[test]
fn text_classification_matches_transformers() {
    for (name, f) in [
        ("pipe-seqcls", ClassificationFunction::Softmax),
        ("pipe-seqcls-multilabel", ClassificationFunction::Sigmoid),
        ("pipe-seqcls-regression", ClassificationFunction::None),
    ] {
        let g = golden(name);
        let p = TextClassification::from_pretrained(&model(name)).unwrap();
        assert_eq!(ClassificationFunction::for_config(p.model.config()), f);
        check_text_classification(name, &g, &p);
    }
}

fn check_text_classification(name: &str, g: &Value, p: &TextClassification) {
    {
        let mut worst = 0.0f64;
        for (i, c) in cases(g).iter().enumerate() {
            let text = c["text"].as_str().unwrap();
            let pair = c.get("text_pair").and_then(Value::as_str);
            let opts = TextClassificationOptions {
                top_k: top_k(&c["kwargs"]),
                function_to_apply: c["kwargs"]
                    .get("function_to_apply")
                    .map(|f| f.as_str().unwrap().parse().unwrap()),
                ..Default::default()
            };
            let ours = p.classify(&[(text, pair)], &opts).unwrap().remove(0);
            worst = worst.max(compare(
                &serde_json::to_value(ours).unwrap(),
                &c["output"],
                &format!("{name} case {i}"),
            ));
        }
        eprintln!("{name}: max score diff {worst:.2e}");
    }
}

#[test]
fn cross_encoder_matches_transformers_and_sentence_transformers() {
    let g = golden("pipe-rerank");
    let ce = CrossEncoder::from_pretrained(&model("pipe-rerank")).unwrap();
    check_cross_encoder(&g, &ce);
}

fn check_cross_encoder(g: &Value, ce: &CrossEncoder) {
    let query = cases(g)[0]["text"].as_str().unwrap();
    let passages: Vec<&str> = cases(g)
        .iter()
        .map(|c| c["text_pair"].as_str().unwrap())
        .collect();
    let pairs: Vec<(&str, &str)> = passages.iter().map(|&p| (query, p)).collect();
    let scores = ce.score(&pairs).unwrap();
    let mut worst = 0.0f64;
    for (c, s) in cases(g).iter().zip(&scores) {
        for theirs in [&c["output"]["score"], &c["cross_encoder"]] {
            let d = (f64::from(*s) - theirs.as_f64().unwrap()).abs();
            assert!(d <= TOL_SCORE, "{s} vs {theirs}");
            worst = worst.max(d);
        }
    }
    let ranked = ce.rerank(query, &passages).unwrap();
    assert!(ranked.windows(2).all(|w| w[0].1 >= w[1].1));
    eprintln!("pipe-rerank: max score diff {worst:.2e}");
}

#[test]
fn cross_encoder_needs_one_label() {
    let err = CrossEncoder::from_pretrained(&model("pipe-seqcls"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("one label") && err.contains("NEG"), "{err}");
}

#[test]
fn token_classification_matches_transformers() {
    let g = golden("pipe-tokcls");
    let p = TokenClassification::from_pretrained(&model("pipe-tokcls")).unwrap();
    check_token_classification("pipe-tokcls", &g, &p);
}

fn check_token_classification(name: &str, g: &Value, p: &TokenClassification) {
    let mut worst = 0.0f64;
    for (i, c) in cases(g).iter().enumerate() {
        let kw = &c["kwargs"];
        let mut opts = TokenClassificationOptions {
            aggregation_strategy: kw["aggregation_strategy"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap(),
            stride: kw.get("stride").map(|s| s.as_u64().unwrap() as usize),
            ..Default::default()
        };
        if let Some(l) = kw.get("ignore_labels") {
            opts.ignore_labels = serde_json::from_value(l.clone()).unwrap();
        }
        let ours = p.entities(c["text"].as_str().unwrap(), &opts).unwrap();
        worst = worst.max(compare(
            &serde_json::to_value(ours).unwrap(),
            &c["output"],
            &format!("{name} case {i} {kw}"),
        ));
    }
    eprintln!("{name}: max score diff {worst:.2e}");
}

#[test]
fn token_classification_refuses_to_merge_windows_without_aggregation() {
    let p = TokenClassification::from_pretrained(&model("pipe-tokcls")).unwrap();
    let long = "the quick brown fox ".repeat(30);
    let err = p
        .entities(&long, &TokenClassificationOptions::default())
        .unwrap_err();
    assert!(matches!(err, Error::Input(_)), "{err}");
    assert!(err.to_string().contains("longer than 64 tokens"), "{err}");
    // With an aggregation strategy the whole text is covered, to its last characters.
    let opts = TokenClassificationOptions {
        aggregation_strategy: AggregationStrategy::Simple,
        ignore_labels: vec![],
        ..Default::default()
    };
    let ents = p.entities(&long, &opts).unwrap();
    assert_eq!(ents.last().unwrap().end, long.trim_end().chars().count());
}

#[test]
fn question_answering_matches_transformers() {
    let g = golden("pipe-qa");
    let p = QuestionAnswering::from_pretrained(&model("pipe-qa")).unwrap();
    check_question_answering("pipe-qa", &g, &p);
}

fn check_question_answering(name: &str, g: &Value, p: &QuestionAnswering) {
    let mut worst = 0.0f64;
    for (i, c) in cases(g).iter().enumerate() {
        let kw = &c["kwargs"];
        let u = |k: &str| kw.get(k).map(|v| v.as_u64().unwrap() as usize);
        let opts = QuestionAnsweringOptions {
            top_k: u("top_k").unwrap_or(1),
            max_seq_len: u("max_seq_len"),
            doc_stride: u("doc_stride"),
            max_answer_len: u("max_answer_len").unwrap_or(15),
            handle_impossible_answer: kw
                .get("handle_impossible_answer")
                .is_some_and(|v| v.as_bool().unwrap()),
        };
        let q = c["question"].as_str().unwrap();
        let ctx = c["context"].as_str().unwrap();
        let ours = p.answer(q, ctx, &opts).unwrap();
        // transformers returns the answer itself when there is one, else a list.
        let ours = if ours.len() == 1 {
            serde_json::to_value(&ours[0]).unwrap()
        } else {
            serde_json::to_value(&ours).unwrap()
        };
        worst = worst.max(compare(
            &ours,
            &c["output"],
            &format!("{name} case {i} {kw}"),
        ));
    }
    eprintln!("{name}: max score diff {worst:.2e}");
}

#[test]
fn question_answering_rejects_a_question_that_leaves_no_room() {
    let p = QuestionAnswering::from_pretrained(&model("pipe-qa")).unwrap();
    let question = "where is the cat ".repeat(20);
    let err = p
        .answer(&question, "the cat sat on the mat", &Default::default())
        .unwrap_err();
    assert!(matches!(err, Error::Input(_)), "{err}");
    assert!(
        err.to_string().contains("the question is 80 tokens"),
        "{err}"
    );
    let err = p
        .answer(
            "where is the cat sat on the mat and where is the dog",
            &"the cat sat on the mat ".repeat(20),
            &QuestionAnsweringOptions {
                doc_stride: Some(50),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(err.to_string().contains("doc_stride 50"), "{err}");
    for (q, c, what) in [("", "the cat", "question"), ("where?", "", "context")] {
        let err = p.answer(q, c, &Default::default()).unwrap_err();
        assert!(
            err.to_string().contains(&format!("the {what} is empty")),
            "{err}"
        );
    }
}

#[test]
fn fill_mask_matches_transformers() {
    let g = golden("pipe-mlm");
    let p = FillMask::from_pretrained(&model("pipe-mlm")).unwrap();
    check_fill_mask("pipe-mlm", &g, &p);
}

fn check_fill_mask(name: &str, g: &Value, p: &FillMask) {
    let mut worst = 0.0f64;
    for (i, c) in cases(g).iter().enumerate() {
        let kw = &c["kwargs"];
        let opts = FillMaskOptions {
            top_k: kw.get("top_k").map_or(5, |v| v.as_u64().unwrap() as usize),
            targets: kw
                .get("targets")
                .map(|t| serde_json::from_value(t.clone()).unwrap()),
        };
        let mut ours = p.fill(c["text"].as_str().unwrap(), &opts).unwrap();
        let ours = if ours.len() == 1 {
            serde_json::to_value(ours.remove(0)).unwrap()
        } else {
            serde_json::to_value(ours).unwrap()
        };
        worst = worst.max(compare(
            &ours,
            &c["output"],
            &format!("{name} case {i} {kw}"),
        ));
    }
    eprintln!("{name}: max score diff {worst:.2e}");
}

#[test]
fn fill_mask_without_a_mask_is_an_error() {
    let p = FillMask::from_pretrained(&model("pipe-mlm")).unwrap();
    let err = p.fill("hello my dog", &Default::default()).unwrap_err();
    assert!(matches!(err, Error::Input(_)), "{err}");
    assert!(err.to_string().contains("no mask token [MASK]"), "{err}");
    let opts = FillMaskOptions {
        targets: Some(vec!["🎉🎉".into()]),
        ..Default::default()
    };
    // "🎉🎉" is [UNK]: transformers too would score [UNK] for it.
    assert_eq!(p.fill("my [MASK]", &opts).unwrap()[0][0].token_str, "[UNK]");
}

#[test]
fn a_pipeline_on_the_wrong_head_names_the_checkpoint_s_head() {
    let err = TokenClassification::from_pretrained(&model("pipe-qa"))
        .err()
        .unwrap();
    assert!(matches!(err, Error::MissingHead { .. }), "{err}");
    assert!(
        err.to_string().contains("BertForQuestionAnswering"),
        "{err}"
    );
}

/// The batch forms (one forward pass over several inputs' windows) give the goldens too.
#[test]
fn batches_match_transformers() {
    let mut worst = 0.0f64;
    let g = golden("pipe-tokcls");
    let p = TokenClassification::from_pretrained(&model("pipe-tokcls")).unwrap();
    for agg in ["simple", "first", "max"] {
        let cs: Vec<&Value> = cases(&g)
            .iter()
            .filter(|c| c["kwargs"].as_object().unwrap().len() == 1)
            .filter(|c| c["kwargs"]["aggregation_strategy"] == agg)
            .collect();
        let mut texts: Vec<&str> = cs.iter().map(|c| c["text"].as_str().unwrap()).collect();
        // The long text too, with its windows in the same batch.
        let long = cases(&g)
            .iter()
            .find(|c| c["kwargs"] == serde_json::json!({"aggregation_strategy": agg, "stride": 16}))
            .unwrap();
        texts.push(long["text"].as_str().unwrap());
        let opts = TokenClassificationOptions {
            aggregation_strategy: agg.parse().unwrap(),
            stride: Some(16),
            ..Default::default()
        };
        let ours = p.entities_batch(&texts, &opts).unwrap();
        for (o, c) in ours.iter().zip(cs.iter().copied().chain([long])) {
            worst = worst.max(compare(
                &serde_json::to_value(o).unwrap(),
                &c["output"],
                agg,
            ));
        }
    }
    let g = golden("pipe-qa");
    let p = QuestionAnswering::from_pretrained(&model("pipe-qa")).unwrap();
    let cs: Vec<&Value> = cases(&g)
        .iter()
        .filter(|c| c["kwargs"] == serde_json::json!({"top_k": 3}))
        .collect();
    let pairs: Vec<(&str, &str)> = cs
        .iter()
        .map(|c| {
            (
                c["question"].as_str().unwrap(),
                c["context"].as_str().unwrap(),
            )
        })
        .collect();
    let opts = QuestionAnsweringOptions {
        top_k: 3,
        ..Default::default()
    };
    for (o, c) in p.answer_batch(&pairs, &opts).unwrap().iter().zip(&cs) {
        worst = worst.max(compare(
            &serde_json::to_value(o).unwrap(),
            &c["output"],
            "qa",
        ));
    }
    let g = golden("pipe-mlm");
    let p = FillMask::from_pretrained(&model("pipe-mlm")).unwrap();
    let cs: Vec<&Value> = cases(&g)
        .iter()
        .filter(|c| c["kwargs"] == serde_json::json!({}))
        .collect();
    let texts: Vec<&str> = cs.iter().map(|c| c["text"].as_str().unwrap()).collect();
    for (mut o, c) in p
        .fill_batch(&texts, &Default::default())
        .unwrap()
        .into_iter()
        .zip(&cs)
    {
        let o = if o.len() == 1 {
            serde_json::to_value(o.remove(0)).unwrap()
        } else {
            serde_json::to_value(o).unwrap()
        };
        worst = worst.max(compare(&o, &c["output"], "fill-mask"));
    }
    eprintln!("batches: max score diff {worst:.2e}");
    let err = p
        .fill_batch(&["a [MASK]", "no mask"], &Default::default())
        .unwrap_err();
    assert!(err.to_string().contains("input 1"), "{err}");
}

/// The same pipelines on RoBERTa, XLM-R, DistilBERT and ELECTRA heads
/// (`fixtures/family/*/pipe-*.json`, by `scripts/fixtures_family.py`).
#[test]
fn family_pipelines_match_transformers() {
    let mut checked = 0;
    for family in ["roberta", "xlm-roberta", "distilbert", "electra"] {
        let root = fixtures().join("family").join(family);
        for kind in ["seqcls", "tokcls", "qa", "mlm", "rerank"] {
            let path = root.join(format!("pipe-{kind}.json"));
            if !path.exists() {
                // ELECTRA has no masked LM; the cross-encoders are RoBERTa's and DistilBERT's.
                let known = (family == "electra" && kind == "mlm")
                    || (kind == "rerank" && matches!(family, "xlm-roberta" | "electra"));
                assert!(known, "{}", path.display());
                continue;
            }
            let g: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let m = fixtures().join(g["model"].as_str().unwrap());
            let m = m.to_str().unwrap();
            let name = format!("{family}/pipe-{kind}");
            match kind {
                "seqcls" => check_text_classification(
                    &name,
                    &g,
                    &TextClassification::from_pretrained(m).unwrap(),
                ),
                "tokcls" => check_token_classification(
                    &name,
                    &g,
                    &TokenClassification::from_pretrained(m).unwrap(),
                ),
                "qa" => check_question_answering(
                    &name,
                    &g,
                    &QuestionAnswering::from_pretrained(m).unwrap(),
                ),
                "rerank" => check_cross_encoder(&g, &CrossEncoder::from_pretrained(m).unwrap()),
                _ => check_fill_mask(&name, &g, &FillMask::from_pretrained(m).unwrap()),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 17);
}
