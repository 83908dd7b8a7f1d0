//! `ElectraForPreTraining`: the discriminator, one "replaced token" logit per token:
//! `dense_prediction(act(dense(last_hidden_state)))`
//! (<https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/models/electra/modeling_electra.py#L440>).

use std::path::Path;

use ndarray::{Array2, Array3, Array4};

use super::{apply, real_rows, require, scatter, Dense, Opened};
use crate::{BertConfig, BertInputs, BertModel, ForwardOptions, LoadOptions, Result};

const NAME: &str = "ElectraForPreTraining";

/// transformers' `ElectraForPreTrainingOutput` (without the loss).
#[derive(Clone, Debug)]
pub struct DiscriminatorOutput {
    /// (B, T): a token's logit of having been replaced; zeros where `attention_mask` is 0.
    pub logits: Array2<f32>,
    pub hidden_states: Option<Vec<Array3<f32>>>,
    pub attentions: Option<Vec<Array4<f32>>>,
}

/// `ElectraDiscriminatorPredictions` on an ELECTRA encoder.
pub struct ElectraForPreTraining {
    bert: BertModel,
    /// (H, H) `discriminator_predictions.dense`, followed by `hidden_act`.
    pub dense: Dense,
    /// (1, H) `discriminator_predictions.dense_prediction`.
    pub dense_prediction: Dense,
}

impl ElectraForPreTraining {
    pub fn from_pretrained(model: &str) -> Result<Self> {
        Self::from_pretrained_with(model, &LoadOptions::default())
    }

    /// As `from_pretrained`, with options: `dtype` applies to the encoder (the head stays f32).
    pub fn from_pretrained_with(model: &str, opts: &LoadOptions) -> Result<Self> {
        Self::from_opened(super::open(model, opts)?)
    }

    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        Self::from_opened(super::open_dir(dir.as_ref(), &LoadOptions::default())?)
    }

    pub(crate) fn from_opened(o: Opened) -> Result<Self> {
        let c = o.bert.config();
        require(
            &o.checkpoint,
            NAME,
            c,
            &[
                "discriminator_predictions.dense.weight",
                "discriminator_predictions.dense.bias",
                "discriminator_predictions.dense_prediction.weight",
                "discriminator_predictions.dense_prediction.bias",
            ],
        )?;
        let h = c.hidden_size;
        Ok(ElectraForPreTraining {
            dense: Dense::load(&o.checkpoint, "discriminator_predictions.dense", h, h)?,
            dense_prediction: Dense::load(
                &o.checkpoint,
                "discriminator_predictions.dense_prediction",
                1,
                h,
            )?,
            bert: o.bert,
        })
    }

    pub fn bert(&self) -> &BertModel {
        &self.bert
    }

    pub fn config(&self) -> &BertConfig {
        self.bert.config()
    }

    /// Runs the model; the head runs on real tokens only.
    pub fn forward(
        &self,
        inputs: &BertInputs,
        opts: &ForwardOptions,
    ) -> Result<DiscriminatorOutput> {
        let out = self.bert.forward(inputs, opts)?;
        let (rows, positions) = real_rows(&out.last_hidden_state, inputs);
        // dense + hidden_act in one pass, as the masked-LM transform (predictions.rs).
        let act = self.config().hidden_act.kernel();
        let mut x = vec![0.0f32; rows.len()];
        self.dense
            .forward(&rows, &mut x, bert_kernels::Epilogue::BiasActivation(act));
        let logits = apply(&self.dense_prediction, &x);
        let (b, t) = inputs.input_ids.dim();
        let logits = scatter(&logits, &positions, (b, t), 1)
            .into_shape_with_order((b, t))
            .expect("(B, T, 1) is (B, T)");
        Ok(DiscriminatorOutput {
            logits,
            hidden_states: out.hidden_states,
            attentions: out.attentions,
        })
    }
}
