//! Sentence embeddings against sentence-transformers' `encode(texts)`: the real all-MiniLM-L6-v2
//! (mean pooling + Normalize, max_seq_length 256) and tiny models with CLS, max (+ Normalize),
//! mean + last-token, and mean-sqrt-len + weighted-mean (+ Normalize) pooling
//! (`fixtures/models/st-tiny-*`).

mod common;

use bert::hub::DEFAULT_MODEL;
use bert::pipelines::{EncodeOptions, PoolingMode, SentenceEmbeddings};
use bert::ForwardOptions;
use common::{fixtures, Golden};

/// all-MiniLM-L6-v2's normalized embeddings: the bound.
const TOL_NORMALIZED: f32 = 1e-5;
/// Unnormalized tiny embeddings are token states (values of a few units): as `last_hidden_state`.
const TOL_RAW: f32 = 1e-4;

fn texts(g: &Golden) -> Vec<String> {
    serde_json::from_str(&g.meta["texts"]).unwrap()
}

fn check(label: &str, st: &SentenceEmbeddings, golden: &str, tol: f32, batch_size: usize) {
    check_against(label, st, &Golden::load(golden), tol, batch_size)
}

fn check_against(label: &str, st: &SentenceEmbeddings, g: &Golden, tol: f32, batch_size: usize) {
    let texts = texts(g);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let ours = st.encode(&refs, &EncodeOptions { batch_size }).unwrap();
    let want = &g.f32s["embeddings"];
    assert_eq!(ours.shape(), want.shape(), "{label}: shape");
    let mut worst = 0.0f32;
    for ((i, j), &v) in ours.indexed_iter() {
        let d = (v - want[[i, j]]).abs();
        assert!(
            d <= tol,
            "{label}: text {i} dim {j}: {v} vs {} ({d:e} > {tol:e})",
            want[[i, j]]
        );
        worst = worst.max(d);
    }
    println!("{label} (batch {batch_size}): max abs diff {worst:e} (tol {tol:e})");
}

#[test]
fn all_minilm_l6_v2_matches_sentence_transformers() {
    let st = SentenceEmbeddings::from_pretrained(DEFAULT_MODEL).unwrap();
    assert_eq!(st.max_seq_length(), 256);
    assert!(st.normalizes());
    assert_eq!(st.pooling().modes, vec![PoolingMode::Mean]);
    assert_eq!(st.dimension(), 384);
    assert!(st.notice().is_none());
    for batch in [32, 2] {
        check(
            "all-MiniLM-L6-v2",
            &st,
            "st-all-MiniLM-L6-v2",
            TOL_NORMALIZED,
            batch,
        );
    }
}

#[test]
fn tiny_cls_pooling() {
    let st = SentenceEmbeddings::from_dir(fixtures().join("models/st-tiny-cls")).unwrap();
    assert_eq!(st.pooling().modes, vec![PoolingMode::Cls]);
    assert!(!st.normalizes());
    assert_eq!(st.max_seq_length(), 16);
    check("st-tiny-cls", &st, "st-tiny-cls", TOL_RAW, 4);
}

#[test]
fn tiny_max_pooling_normalized() {
    let st = SentenceEmbeddings::from_dir(fixtures().join("models/st-tiny-max")).unwrap();
    assert_eq!(st.pooling().modes, vec![PoolingMode::Max]);
    assert!(st.normalizes());
    check("st-tiny-max", &st, "st-tiny-max", TOL_NORMALIZED, 32);
}

#[test]
fn tiny_mean_and_last_token_concatenated() {
    let st =
        SentenceEmbeddings::from_dir(fixtures().join("models/st-tiny-mean-lasttoken")).unwrap();
    assert_eq!(
        st.pooling().modes,
        vec![PoolingMode::Mean, PoolingMode::LastToken]
    );
    assert_eq!(st.dimension(), 64);
    check(
        "st-tiny-mean-lasttoken",
        &st,
        "st-tiny-mean-lasttoken",
        TOL_RAW,
        3,
    );
}

#[test]
fn plain_bert_directory_gets_mean_pooling_and_says_so() {
    let src = fixtures().join("models/st-tiny-cls");
    let dst = std::env::temp_dir().join(format!("bert-st-plain-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dst);
    std::fs::create_dir_all(&dst).unwrap();
    for f in [
        "config.json",
        "model.safetensors",
        "vocab.txt",
        "tokenizer_config.json",
    ] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    let st = SentenceEmbeddings::from_dir(&dst).unwrap();
    let notice = st.notice().expect("a notice for a plain model").to_string();
    assert!(
        notice.contains("modules.json") && notice.contains("mean pooling"),
        "{notice}"
    );
    assert_eq!(st.pooling().modes, vec![PoolingMode::Mean]);
    assert!(!st.normalizes());
    // Mean over the real tokens of last_hidden_state.
    let inputs = st
        .tokenizer()
        .encode_batch(&["the dog", "a cat is cute"])
        .unwrap();
    let hidden = st
        .model()
        .forward(&inputs, &ForwardOptions::default())
        .unwrap()
        .last_hidden_state;
    let emb = st
        .encode(&["the dog", "a cat is cute"], &EncodeOptions::default())
        .unwrap();
    for b in 0..2 {
        let n = inputs.attention_mask.row(b).iter().sum::<i64>() as f32;
        for h in 0..32 {
            let want: f32 = (0..inputs.seq_len())
                .map(|t| hidden[[b, t, h]])
                .sum::<f32>()
                / n;
            assert!((emb[[b, h]] - want).abs() < 1e-5);
        }
    }
    let _ = std::fs::remove_dir_all(&dst);
}

#[test]
fn tiny_mean_sqrt_len_and_weighted_mean_normalized() {
    let st = SentenceEmbeddings::from_dir(fixtures().join("models/st-tiny-sqrt-weighted")).unwrap();
    assert_eq!(
        st.pooling().modes,
        vec![PoolingMode::MeanSqrtLen, PoolingMode::WeightedMean]
    );
    assert!(st.normalizes());
    check(
        "st-tiny-sqrt-weighted",
        &st,
        "st-tiny-sqrt-weighted",
        TOL_NORMALIZED,
        5,
    );
}

/// sentence-transformers models on RoBERTa (mean + Normalize), XLM-R (mean), DistilBERT (CLS +
/// Normalize) and ELECTRA (max) bases (`fixtures/family/*/sentence`, by
/// `scripts/fixtures_family.py`), max_seq_length 24 (the last text is truncated).
#[test]
fn family_bases_match_sentence_transformers() {
    for (family, tol) in [
        ("roberta", TOL_NORMALIZED),
        ("xlm-roberta", TOL_RAW),
        ("distilbert", TOL_NORMALIZED),
        ("electra", TOL_RAW),
    ] {
        let d = fixtures().join("family").join(family).join("sentence");
        let st = SentenceEmbeddings::from_pretrained(d.to_str().unwrap()).unwrap();
        assert_eq!(st.max_seq_length(), 24, "{family}");
        let g = Golden::load_path(&d.join("golden.safetensors"));
        for batch_size in [1, 4, 32] {
            check_against(family, &st, &g, tol, batch_size);
        }
    }
}
