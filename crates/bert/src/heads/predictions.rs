//! `BertLMPredictionHead` (with its `BertPredictionHeadTransform`): dense + activation + LayerNorm,
//! then the decoder that shares the word-embedding matrix, plus an output-only bias
//! (<https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/models/bert/modeling_bert.py#L723>).

use bert_kernels::{Activation, Epilogue, Linear};
use ndarray::{Array1, Array2};

use super::params::{Dense, LayerNormParams, Rng};
use crate::weights::Checkpoint;
use crate::{BertConfig, BertModel, Result};

/// The tensors of the prediction head, for [`super::require`]. The bias is looked up as
/// `cls.predictions.bias`, or as `cls.predictions.decoder.bias` (the same parameter, tied) when only
/// that one was saved.
pub(crate) fn tensor_names(ck: &Checkpoint, config: &BertConfig) -> Vec<&'static str> {
    let mut names = vec![
        "cls.predictions.transform.dense.weight",
        "cls.predictions.transform.dense.bias",
        "cls.predictions.transform.LayerNorm.weight",
        "cls.predictions.transform.LayerNorm.bias",
        bias_name(ck),
    ];
    if !config.tie_word_embeddings {
        names.push("cls.predictions.decoder.weight");
    }
    names
}

fn bias_name(ck: &Checkpoint) -> &'static str {
    if !ck.contains("cls.predictions.bias") && ck.contains("cls.predictions.decoder.bias") {
        "cls.predictions.decoder.bias"
    } else {
        "cls.predictions.bias"
    }
}

/// `decoder(LayerNorm(act(dense(x))))`, the decoder weight being the word embeddings (V, H) when
/// `tie_word_embeddings` (the default), with bias `cls.predictions.bias` (V).
pub struct BertLMPredictionHead {
    /// (H, H) `cls.predictions.transform.dense`.
    pub transform_dense: Dense,
    /// The activation after `transform_dense` (`config.hidden_act`).
    act: Activation,
    /// (H) `cls.predictions.transform.LayerNorm`.
    pub transform_layer_norm: LayerNormParams,
    /// (V) `cls.predictions.bias`.
    bias: Array1<f32>,
    /// (V, H) the decoder weight when it is not tied to the word embeddings.
    untied_decoder: Option<Array2<f32>>,
    /// (V, H) decoder weight and (V) bias packed for the GEMM.
    decoder: Linear,
}

impl BertLMPredictionHead {
    /// Loads the head; the tied decoder is packed from `bert`'s word embeddings.
    pub(crate) fn load(ck: &Checkpoint, bert: &BertModel) -> Result<Self> {
        let c = bert.config();
        let (h, v) = (c.hidden_size, c.vocab_size);
        let bias = Array1::from(ck.get(bias_name(ck), &[v])?);
        let untied_decoder = if c.tie_word_embeddings {
            None
        } else {
            let w = ck.get("cls.predictions.decoder.weight", &[v, h])?;
            Some(Array2::from_shape_vec((v, h), w).expect("shape checked by Checkpoint::get"))
        };
        Ok(Self::assemble(
            Dense::load(ck, "cls.predictions.transform.dense", h, h)?,
            LayerNormParams::load(
                ck,
                "cls.predictions.transform.LayerNorm",
                h,
                c.layer_norm_eps,
            )?,
            bias,
            untied_decoder,
            bert,
        ))
    }

    /// A fresh head as transformers initializes it (the decoder is the embeddings, the bias 0).
    pub(crate) fn init(bert: &BertModel, rng: &mut Rng) -> Result<Self> {
        let c = bert.config();
        let (h, v) = (c.hidden_size, c.vocab_size);
        let untied_decoder = (!c.tie_word_embeddings)
            .then(|| Array2::from_shape_fn((v, h), |_| c.initializer_range as f32 * rng.normal()));
        Ok(Self::assemble(
            Dense::init(h, h, c, rng)?,
            LayerNormParams::init(h, c.layer_norm_eps),
            Array1::zeros(v),
            untied_decoder,
            bert,
        ))
    }

    fn assemble(
        transform_dense: Dense,
        transform_layer_norm: LayerNormParams,
        bias: Array1<f32>,
        untied_decoder: Option<Array2<f32>>,
        bert: &BertModel,
    ) -> Self {
        let c = bert.config();
        let (h, v) = (c.hidden_size, c.vocab_size);
        let weight = match &untied_decoder {
            Some(w) => w.iter().copied().collect(),
            None => bert.word_embeddings().to_vec(),
        };
        BertLMPredictionHead {
            transform_dense,
            act: crate::architecture::Architecture::of(c)
                .mlm_act
                .unwrap_or(c.hidden_act)
                .kernel(),
            transform_layer_norm,
            decoder: Linear::new(weight, bias.to_vec(), v, h),
            bias,
            untied_decoder,
        }
    }

    /// (V) the output bias `cls.predictions.bias`.
    pub fn bias(&self) -> &Array1<f32> {
        &self.bias
    }

    /// (V, H) the decoder weight when `tie_word_embeddings` is false; `None` when it is the word
    /// embeddings of the encoder.
    pub fn untied_decoder(&self) -> Option<&Array2<f32>> {
        self.untied_decoder.as_ref()
    }

    /// Vocabulary size V.
    pub fn vocab_size(&self) -> usize {
        self.bias.len()
    }

    /// `out (M, V) = decoder(transform(x (M, H)))`.
    pub(crate) fn forward(&self, x: &[f32], out: &mut [f32]) {
        let mut t = vec![0.0f32; x.len()];
        self.transform_dense
            .forward(x, &mut t, Epilogue::BiasActivation(self.act));
        self.transform_layer_norm.forward(&mut t);
        self.decoder.forward(&t, out, Epilogue::Bias);
    }
}
