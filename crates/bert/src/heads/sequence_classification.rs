//! `BertForSequenceClassification`: a Linear over `pooler_output`
//! (<https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/models/bert/modeling_bert.py#L1444>),
//! and the family's variants of it ([`crate::architecture::Classifier`]): RoBERTa's and
//! ELECTRA's `classifier.dense` + tanh / GELU + `classifier.out_proj` on the first token
//! (`RobertaClassificationHead`), DistilBERT's `pre_classifier` + ReLU + `classifier`.

use std::path::Path;

use ndarray::{Array2, Array3, Array4};

use super::params::Rng;
use super::{
    apply, apply_labels, check_labels, pooled, require, require_pooler, Dense, NewHead, Opened,
    POOLER,
};
use crate::architecture::{Architecture, HeadAct};
use crate::{BertConfig, BertInputs, BertModel, ForwardOptions, LoadOptions, Result};

const NAME: &str = "BertForSequenceClassification";

/// transformers' `SequenceClassifierOutput` (without the loss).
#[derive(Clone, Debug)]
pub struct SequenceClassifierOutput {
    /// (B, num_labels)
    pub logits: Array2<f32>,
    /// As [`crate::BertModelOutput::hidden_states`], when asked for.
    pub hidden_states: Option<Vec<Array3<f32>>>,
    /// As [`crate::BertModelOutput::attentions`], when asked for.
    pub attentions: Option<Vec<Array4<f32>>>,
}

/// `logits = classifier(dropout(pooler_output))`, or `classifier(act(dense(first token)))` in the
/// families with a head of their own; the labels are `config().id2label`.
pub struct BertForSequenceClassification {
    bert: BertModel,
    /// (H, H) the head's own dense layer on the first token and its activation (`None`: BERT's
    /// pooler).
    /// (Boxed: most checkpoints are BERT's, and the head stays small beside the others.)
    pub dense: Option<Box<(Dense, HeadAct)>>,
    /// (num_labels, H)
    pub classifier: Dense,
}

impl BertForSequenceClassification {
    /// Loads a fine-tuned checkpoint from a directory or a hub id.
    pub fn from_pretrained(model: &str) -> Result<Self> {
        Self::from_pretrained_with(model, &LoadOptions::default())
    }

    /// As `from_pretrained`, with options: `dtype` applies to the encoder (the head stays f32).
    pub fn from_pretrained_with(model: &str, opts: &LoadOptions) -> Result<Self> {
        Self::from_opened(super::open(model, opts)?)
    }

    /// Loads a fine-tuned checkpoint from a directory.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        Self::from_opened(super::open_dir(dir.as_ref(), &LoadOptions::default())?)
    }

    pub(crate) fn from_opened(o: Opened) -> Result<Self> {
        let c = o.bert.config();
        check_labels(c)?;
        let head = Architecture::of(c).classifier;
        let (w, b) = (format!("{}.weight", head.out), format!("{}.bias", head.out));
        let mut names = vec![w.as_str(), b.as_str()];
        let dense_names = head
            .dense
            .map(|(d, _)| [format!("{d}.weight"), format!("{d}.bias")]);
        match &dense_names {
            Some([dw, db]) => names.extend([dw.as_str(), db.as_str()]),
            None => names.extend(POOLER),
        }
        require(&o.checkpoint, NAME, c, &names)?;
        let h = c.hidden_size;
        let dense = match head.dense {
            Some((name, act)) => Some(Box::new((Dense::load(&o.checkpoint, name, h, h)?, act))),
            None => None,
        };
        let classifier =
            Dense::load_classifier(&o.checkpoint, head.out, c.num_labels(), "num_labels", h)?;
        Ok(BertForSequenceClassification {
            bert: o.bert,
            dense,
            classifier,
        })
    }

    /// A fresh, untrained classifier on `bert` (which must have a pooler when the family's
    /// head reads it), for fine-tuning.
    pub fn with_new_head(mut bert: BertModel, init: &NewHead) -> Result<Self> {
        apply_labels(&mut bert, init)?;
        let c = bert.config();
        let head = Architecture::of(c).classifier;
        let mut rng = Rng::new(init.seed);
        let dense = match head.dense {
            Some((_, act)) => Some(Box::new((
                Dense::init(c.hidden_size, c.hidden_size, c, &mut rng)?,
                act,
            ))),
            None => {
                require_pooler(NAME, &bert)?;
                None
            }
        };
        let classifier = Dense::init(c.num_labels(), c.hidden_size, c, &mut rng)?;
        Ok(BertForSequenceClassification {
            bert,
            dense,
            classifier,
        })
    }

    /// The encoder.
    pub fn bert(&self) -> &BertModel {
        &self.bert
    }

    /// The configuration (labels in `id2label`, `problem_type`).
    pub fn config(&self) -> &BertConfig {
        self.bert.config()
    }

    /// Runs the model. `opts` asks for hidden states / attentions as for [`BertModel::forward`].
    pub fn forward(
        &self,
        inputs: &BertInputs,
        opts: &ForwardOptions,
    ) -> Result<SequenceClassifierOutput> {
        let out = self.bert.forward(inputs, opts)?;
        let own;
        let pooled = match &self.dense {
            Some(d) => {
                own = first_token(&d.0, d.1, &out.last_hidden_state, inputs);
                &own
            }
            None => pooled(NAME, &out)?,
        };
        let b = pooled.nrows();
        let logits = apply(
            &self.classifier,
            pooled
                .as_slice()
                .expect("model outputs are standard-layout"),
        );
        Ok(SequenceClassifierOutput {
            logits: Array2::from_shape_vec((b, self.classifier.out_features()), logits)
                .expect("(B, num_labels) values"),
            hidden_states: out.hidden_states,
            attentions: out.attentions,
        })
    }
}

/// (B, H) `act(dense(x))` of each sequence's first real token (transformers takes
/// `features[:, 0, :]`, the same token under right padding); as the pooler, a row without
/// tokens gets zeros.
pub(crate) fn first_token(
    dense: &Dense,
    act: HeadAct,
    hidden: &Array3<f32>,
    inputs: &BertInputs,
) -> Array2<f32> {
    let (b, _, h) = hidden.dim();
    let firsts: Vec<(usize, usize)> = (0..b)
        .filter_map(|i| {
            let row = inputs.attention_mask.row(i);
            row.iter().position(|&m| m != 0).map(|j| (i, j))
        })
        .collect();
    let x: Vec<f32> = firsts
        .iter()
        .flat_map(|&(i, j)| hidden.slice(ndarray::s![i, j, ..]).to_vec())
        .collect();
    let mut y = apply(dense, &x);
    act.apply(&mut y);
    let mut out = Array2::zeros((b, h));
    for (k, &(i, _)) in firsts.iter().enumerate() {
        out.row_mut(i)
            .iter_mut()
            .zip(&y[k * h..(k + 1) * h])
            .for_each(|(o, &v)| *o = v);
    }
    out
}
