//! `AutoModel`: the class named by `config.json`'s `architectures`, as transformers'
//! `AutoModel*.from_pretrained` picks it.

use std::path::Path;

use super::{
    BertForMaskedLM, BertForMultipleChoice, BertForNextSentencePrediction, BertForPreTraining,
    BertForQuestionAnswering, BertForSequenceClassification, BertForTokenClassification, Opened,
};
use crate::{BertConfig, BertModel, Error, LoadOptions, Result};

/// Any BERT class this crate loads, chosen by `architectures[0]` (a plain [`BertModel`] when the
/// config has none).
// A model is loaded once and matched on, never moved in bulk: boxing the variants would only make
// every match noisier.
#[allow(clippy::large_enum_variant)]
pub enum AutoModel {
    Bert(BertModel),
    SequenceClassification(BertForSequenceClassification),
    TokenClassification(BertForTokenClassification),
    QuestionAnswering(BertForQuestionAnswering),
    MultipleChoice(BertForMultipleChoice),
    MaskedLM(BertForMaskedLM),
    NextSentencePrediction(BertForNextSentencePrediction),
    PreTraining(BertForPreTraining),
}

/// The `architectures` names [`AutoModel`] accepts.
pub const ARCHITECTURES: [&str; 8] = [
    "BertModel",
    "BertForSequenceClassification",
    "BertForTokenClassification",
    "BertForQuestionAnswering",
    "BertForMultipleChoice",
    "BertForMaskedLM",
    "BertForNextSentencePrediction",
    "BertForPreTraining",
];

impl AutoModel {
    /// Loads a directory or hub id as the class its `config.json` names.
    pub fn from_pretrained(model: &str) -> Result<Self> {
        Self::from_pretrained_with(model, &LoadOptions::default())
    }

    /// As `from_pretrained`, with options: `dtype` applies to the encoder (the head stays f32).
    pub fn from_pretrained_with(model: &str, opts: &LoadOptions) -> Result<Self> {
        Self::from_opened(super::open(model, opts)?)
    }

    /// Loads a directory as the class its `config.json` names.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        Self::from_opened(super::open_dir(dir.as_ref(), &LoadOptions::default())?)
    }

    /// Loads a directory or hub id as the transformers class `class` (one of
    /// [`ARCHITECTURES`]), whatever its config.json names: transformers'
    /// `BertForX.from_pretrained` rather than `AutoModel`'s choice (a head's tensors must be
    /// there; `BertModel` takes the encoder of any checkpoint).
    pub fn from_pretrained_as(class: &str, model: &str, opts: &LoadOptions) -> Result<Self> {
        if !ARCHITECTURES.contains(&class) {
            return Err(Error::Config(format!(
                "class `{class}` is not one this crate loads ({})",
                ARCHITECTURES.join(", ")
            )));
        }
        Self::load_as(class, super::open(model, opts)?)
    }

    fn from_opened(o: Opened) -> Result<Self> {
        let arch = architecture(o.bert.config())?;
        Self::load_as(&arch, o)
    }

    /// `o` as class `arch`, one of [`ARCHITECTURES`].
    fn load_as(arch: &str, o: Opened) -> Result<Self> {
        Ok(match arch {
            "BertModel" => AutoModel::Bert(o.bert),
            "BertForSequenceClassification" => {
                AutoModel::SequenceClassification(BertForSequenceClassification::from_opened(o)?)
            }
            "BertForTokenClassification" => {
                AutoModel::TokenClassification(BertForTokenClassification::from_opened(o)?)
            }
            "BertForQuestionAnswering" => {
                AutoModel::QuestionAnswering(BertForQuestionAnswering::from_opened(o)?)
            }
            "BertForMultipleChoice" => {
                AutoModel::MultipleChoice(BertForMultipleChoice::from_opened(o)?)
            }
            "BertForMaskedLM" => AutoModel::MaskedLM(BertForMaskedLM::from_opened(o)?),
            "BertForNextSentencePrediction" => {
                AutoModel::NextSentencePrediction(BertForNextSentencePrediction::from_opened(o)?)
            }
            "BertForPreTraining" => AutoModel::PreTraining(BertForPreTraining::from_opened(o)?),
            _ => unreachable!("callers pass only names of ARCHITECTURES"),
        })
    }

    /// The transformers class name of the loaded model.
    pub fn architecture(&self) -> &'static str {
        match self {
            AutoModel::Bert(_) => ARCHITECTURES[0],
            AutoModel::SequenceClassification(_) => ARCHITECTURES[1],
            AutoModel::TokenClassification(_) => ARCHITECTURES[2],
            AutoModel::QuestionAnswering(_) => ARCHITECTURES[3],
            AutoModel::MultipleChoice(_) => ARCHITECTURES[4],
            AutoModel::MaskedLM(_) => ARCHITECTURES[5],
            AutoModel::NextSentencePrediction(_) => ARCHITECTURES[6],
            AutoModel::PreTraining(_) => ARCHITECTURES[7],
        }
    }

    /// The encoder under the head.
    pub fn bert(&self) -> &BertModel {
        match self {
            AutoModel::Bert(m) => m,
            AutoModel::SequenceClassification(m) => m.bert(),
            AutoModel::TokenClassification(m) => m.bert(),
            AutoModel::QuestionAnswering(m) => m.bert(),
            AutoModel::MultipleChoice(m) => m.bert(),
            AutoModel::MaskedLM(m) => m.bert(),
            AutoModel::NextSentencePrediction(m) => m.bert(),
            AutoModel::PreTraining(m) => m.bert(),
        }
    }
}

/// `architectures[0]`, `BertModel` when absent; an error for a class this crate does not load.
fn architecture(config: &BertConfig) -> Result<String> {
    let arch = config
        .architectures
        .as_ref()
        .and_then(|a| a.first().cloned())
        .unwrap_or_else(|| "BertModel".to_string());
    if ARCHITECTURES.contains(&arch.as_str()) {
        Ok(arch)
    } else {
        Err(Error::Config(format!(
            "architectures names `{arch}`, which this crate does not load (it loads {})",
            ARCHITECTURES.join(", ")
        )))
    }
}
