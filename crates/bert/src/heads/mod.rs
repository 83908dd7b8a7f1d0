//! Task heads: transformers' `BertFor*` classes, one file per class, on top of [`BertModel`]
//! (<https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/models/bert/modeling_bert.py>).
//!
//! Each head loads with `from_pretrained(dir_or_hub_id)` from the checkpoints transformers writes
//! (`bert.` prefix, safetensors or `.bin`, f16/bf16), reads its labels from `config.json`, and
//! refuses a checkpoint that lacks its tensors ([`crate::Error::MissingHead`]): transformers would
//! initialize them randomly. `with_new_head` builds a fresh, seeded head for fine-tuning instead.
//! [`AutoModel`] picks the class from `config.json`'s `architectures`.
//!
//! ```no_run
//! use bert::heads::{AutoModel, NewHead};
//! use bert::{BertForMaskedLM, BertForSequenceClassification, BertModel, BertTokenizer, ForwardOptions};
//!
//! // A fine-tuned classifier: logits (B, num_labels), labels from config.json.
//! let tok = BertTokenizer::from_pretrained("path/to/finetuned-sst2")?;
//! let clf = BertForSequenceClassification::from_pretrained("path/to/finetuned-sst2")?;
//! let out = clf.forward(&tok.encode_batch(&["great movie", "awful"])?, &ForwardOptions::default())?;
//! let best = out.logits.row(0).iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
//! println!("{}", clf.config().id2label[&best]);
//!
//! // Fill-mask logits only at the [MASK] positions: (P, V), never (N, V).
//! let mlm = BertForMaskedLM::from_pretrained("bert-base-uncased")?;
//! let inputs = tok.encode("Paris is the [MASK] of France.")?;
//! let mask_id = tok.token_to_id("[MASK]").unwrap();
//! let at = BertForMaskedLM::positions_of(&inputs, mask_id);
//! let logits = mlm.forward_at(&inputs, &at, &ForwardOptions::default())?.logits;
//!
//! // Whatever the checkpoint is, by its config.json `architectures`.
//! let any = AutoModel::from_pretrained("bert-base-uncased")?;
//! println!("{}", any.architecture()); // BertForMaskedLM
//!
//! // A fresh, seeded head for fine-tuning.
//! let labels = Some(vec!["neg".to_string(), "pos".to_string()]);
//! let fresh = BertForSequenceClassification::with_new_head(
//!     BertModel::from_pretrained("bert-base-uncased")?,
//!     &NewHead { seed: 42, labels },
//! )?;
//! # Ok::<(), bert::Error>(())
//! ```
//!
//! Head parameters are plain arrays ([`Dense`], [`LayerNormParams`]) a backward pass can reach.
//! Dropout (`classifier_dropout`, `hidden_dropout_prob`) is the identity at inference, as in `eval()`.

mod auto;
mod discriminator;
mod masked_lm;
mod multiple_choice;
mod next_sentence;
pub(crate) mod params;
mod predictions;
mod pretraining;
mod question_answering;
mod sequence_classification;
mod token_classification;

use std::path::Path;

use ndarray::{Array2, Array3};

use crate::weights::Checkpoint;
use crate::{BertConfig, BertInputs, BertModel, BertModelOutput, Error, LoadOptions, Result};

pub use auto::AutoModel;
pub use discriminator::{DiscriminatorOutput, ElectraForPreTraining};
pub use masked_lm::{BertForMaskedLM, MaskedLMOutput, MaskedLMPositionsOutput};
pub use multiple_choice::{BertForMultipleChoice, MultipleChoiceModelOutput};
pub use next_sentence::{BertForNextSentencePrediction, NextSentencePredictorOutput};
pub use params::{Dense, LayerNormParams};
pub use predictions::BertLMPredictionHead;
pub use pretraining::{BertForPreTraining, BertForPreTrainingOutput};
pub use question_answering::{BertForQuestionAnswering, QuestionAnsweringModelOutput};
pub use sequence_classification::{BertForSequenceClassification, SequenceClassifierOutput};
pub use token_classification::{BertForTokenClassification, TokenClassifierOutput};

/// How to start an untrained head for fine-tuning (`with_new_head`): transformers' initialization
/// (Linear weights ~ N(0, `initializer_range`²), biases 0, LayerNorm 1 / 0) from a seed.
#[derive(Clone, Debug, Default)]
pub struct NewHead {
    /// Seeds the head's weights; the same seed gives the same head.
    pub seed: u64,
    /// Class names (sets `id2label`, `label2id` and `num_labels`); `None` keeps the config's.
    pub labels: Option<Vec<String>>,
}

/// The encoder of a checkpoint and the checkpoint itself, for a head to take its tensors from.
pub(crate) struct Opened {
    pub bert: BertModel,
    pub checkpoint: Checkpoint,
}

/// Resolves a directory or hub id and opens it.
pub(crate) fn open(model: &str, opts: &LoadOptions) -> Result<Opened> {
    let dir = crate::hub::resolve(model, crate::hub::Need::Model)?;
    open_dir(&dir, opts)
}

pub(crate) fn open_dir(dir: &Path, opts: &LoadOptions) -> Result<Opened> {
    let (config, checkpoint) = crate::model::open_dir(dir)?;
    let bert = BertModel::from_checkpoint(config, &checkpoint, opts)?;
    Ok(Opened { bert, checkpoint })
}

/// The pooler tensors, which the heads on `pooler_output` need.
pub(crate) const POOLER: [&str; 2] = ["pooler.dense.weight", "pooler.dense.bias"];

/// [`Error::MissingHead`] naming every tensor of `names` the checkpoint lacks.
pub(crate) fn require(
    ck: &Checkpoint,
    head: &'static str,
    config: &BertConfig,
    names: &[&str],
) -> Result<()> {
    let missing: Vec<String> = names
        .iter()
        .filter(|n| !ck.contains(n))
        .map(|n| n.to_string())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::MissingHead {
        head,
        names: missing,
        files: ck.files().to_vec(),
        architectures: config.architectures.clone().unwrap_or_default(),
    })
}

/// Applies `labels` of a [`NewHead`] to the model's config; a head needs at least one class.
pub(crate) fn apply_labels(bert: &mut BertModel, init: &NewHead) -> Result<()> {
    if let Some(labels) = &init.labels {
        bert.config_mut().set_labels(labels);
    }
    check_labels(bert.config())
}

pub(crate) fn check_labels(config: &BertConfig) -> Result<()> {
    if config.num_labels() == 0 {
        return Err(Error::Config(
            "num_labels is 0 (id2label is empty): a classifier needs at least one class".into(),
        ));
    }
    Ok(())
}

/// A fresh head on the pooled first token needs an encoder with a pooler.
pub(crate) fn require_pooler(head: &str, bert: &BertModel) -> Result<()> {
    if bert.has_pooler() {
        return Ok(());
    }
    Err(Error::Config(format!(
        "{head} reads pooler_output, but this BertModel has no pooler"
    )))
}

/// `pooler_output`, which the heads on the pooled first token need.
pub(crate) fn pooled<'a>(head: &str, out: &'a BertModelOutput) -> Result<&'a Array2<f32>> {
    out.pooler_output.as_ref().ok_or_else(|| {
        Error::Config(format!(
            "{head} reads pooler_output, but the model has no pooler (pooler.dense.*)"
        ))
    })
}

/// The real (attention_mask 1) rows of `hidden` (B, T, H) packed to (N, H), and their (b, t).
pub(crate) fn real_rows(
    hidden: &Array3<f32>,
    inputs: &BertInputs,
) -> (Vec<f32>, Vec<(usize, usize)>) {
    let h = hidden.dim().2;
    let positions: Vec<(usize, usize)> = inputs
        .attention_mask
        .indexed_iter()
        .filter(|(_, &m)| m != 0)
        .map(|(bt, _)| bt)
        .collect();
    let mut rows = Vec::with_capacity(positions.len() * h);
    for &(b, t) in &positions {
        rows.extend(hidden.slice(ndarray::s![b, t, ..]).iter());
    }
    (rows, positions)
}

/// (B, T, W): packed `rows` (N, W) put back at `positions`, zeros elsewhere (padding).
pub(crate) fn scatter(
    rows: &[f32],
    positions: &[(usize, usize)],
    (b, t): (usize, usize),
    w: usize,
) -> Array3<f32> {
    let mut out = Array3::zeros((b, t, w));
    for (row, &(i, j)) in rows.chunks_exact(w).zip(positions) {
        out.slice_mut(ndarray::s![i, j, ..])
            .iter_mut()
            .zip(row)
            .for_each(|(o, &v)| *o = v);
    }
    out
}

/// `x (M, in)` through `dense`: (M, out).
pub(crate) fn apply(dense: &Dense, x: &[f32]) -> Vec<f32> {
    let m = x.len() / dense.in_features();
    let mut y = vec![0.0f32; m * dense.out_features()];
    dense.forward(x, &mut y, bert_kernels::Epilogue::Bias);
    y
}
