//! Pipelines: what transformers' `pipeline(...)` and sentence-transformers' `encode(...)` do around
//! a model, one file each. Each pipeline holds a model and its tokenizer, takes an options struct
//! with transformers' defaults, and returns plain structs that serialize to the JSON fields
//! transformers returns (`{"label", "score"}`, `{"entity_group", "score", "word", "start", "end"}`, ...).
//! Character offsets (`start`, `end`) count Unicode scalar values, as Python string indices do.
//!
//! ```no_run
//! use bert::pipelines::{FillMask, TextClassification, TextClassificationOptions};
//!
//! let clf = TextClassification::from_pretrained("path/to/finetuned-sst2")?;
//! let opts = TextClassificationOptions { top_k: None, ..Default::default() }; // every label
//! for l in &clf.classify(&[("great movie", None)], &opts)?[0] {
//!     println!("{} {}", l.label, l.score);
//! }
//! let fill = FillMask::from_pretrained("bert-base-uncased")?;
//! let best = &fill.fill("Paris is the [MASK] of France.", &Default::default())?[0][0];
//! println!("{} {}", best.token_str, best.sequence); // capital paris is the capital of france.
//! # Ok::<(), bert::Error>(())
//! ```

mod cross_encoder;
mod fill_mask;
mod question_answering;
mod sentence_embeddings;
mod text_classification;
mod token_classification;

pub use cross_encoder::CrossEncoder;
pub use fill_mask::{FillMask, FillMaskOptions, MaskPrediction};
pub use question_answering::{Answer, QuestionAnswering, QuestionAnsweringOptions};
pub use sentence_embeddings::{
    normalize, pool, EncodeOptions, PoolingConfig, PoolingMode, SentenceEmbeddings,
};
pub use text_classification::{
    ClassificationFunction, LabelScore, TextClassification, TextClassificationOptions,
};
pub use token_classification::{
    AggregationStrategy, Entity, TokenClassification, TokenClassificationOptions,
};

/// Inputs per forward pass when a pipeline is given many texts.
pub const DEFAULT_BATCH_SIZE: usize = 32;

/// numpy's `softmax` of transformers' pipelines: `exp(x - max) / sum`, in f32.
pub(crate) fn softmax(x: &[f32]) -> Vec<f32> {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = x.iter().map(|&v| (v - max).exp()).collect();
    let sum: f32 = e.iter().sum();
    e.into_iter().map(|v| v / sum).collect()
}

/// `1 / (1 + exp(-x))`.
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// numpy's `argmax`: the first index of the largest value.
pub(crate) fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best
}

/// The characters `start..end` of `chars` (Python's `text[start:end]`), clamped to the text.
pub(crate) fn char_slice(chars: &[char], start: usize, end: usize) -> String {
    let end = end.min(chars.len());
    chars[start.min(end)..end].iter().collect()
}

/// The label of class `i`, or an error naming the config's labels.
pub(crate) fn label(config: &crate::BertConfig, i: usize) -> crate::Result<String> {
    config.id2label.get(&i).cloned().ok_or_else(|| {
        crate::Error::Config(format!(
            "id2label has no label for class {i} (it has {} labels)",
            config.id2label.len()
        ))
    })
}

/// Padded inputs of several windows, for one forward pass.
pub(crate) fn pad_windows<'a>(
    tok: &crate::BertTokenizer,
    windows: impl IntoIterator<Item = &'a tokenizers::Encoding>,
) -> crate::Result<crate::BertInputs> {
    let rows: Vec<(Vec<i64>, Vec<i64>)> = windows
        .into_iter()
        .map(|w| {
            (
                w.get_ids().iter().map(|&i| i64::from(i)).collect(),
                w.get_type_ids().iter().map(|&i| i64::from(i)).collect(),
            )
        })
        .collect();
    crate::BertInputs::from_rows(&rows, tok.pad_id())
}
