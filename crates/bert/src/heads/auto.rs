//! `AutoModel`: the class (of any family) named by `config.json`'s `architectures`, as transformers'
//! `AutoModel*.from_pretrained` picks it.

use std::path::Path;

use super::{
    BertForMaskedLM, BertForMultipleChoice, BertForNextSentencePrediction, BertForPreTraining,
    BertForQuestionAnswering, BertForSequenceClassification, BertForTokenClassification,
    ElectraForPreTraining, Opened,
};
use crate::architecture::{self, Architecture, Class};
use crate::{BertConfig, BertModel, Error, LoadOptions, Result};

/// Any class this crate loads, chosen by `architectures[0]` (the family's base model when the
/// config has none). The same Rust head serves every family ([`crate::architecture`]).
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
    Discriminator(ElectraForPreTraining),
}

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

    /// Loads a directory or hub id as the transformers class `class` (any name of
    /// [`architecture::class_names`]), whatever its config.json names: transformers'
    /// `XForY.from_pretrained` rather than `AutoModel`'s choice (a head's tensors must be there;
    /// the base class takes the encoder of any checkpoint of its family).
    pub fn from_pretrained_as(class: &str, model: &str, opts: &LoadOptions) -> Result<Self> {
        let Some((arch, c)) = architecture::find_class(class) else {
            return Err(Error::Config(format!(
                "class `{class}` is not one this crate loads ({})",
                architecture::class_names().collect::<Vec<_>>().join(", ")
            )));
        };
        let o = super::open(model, opts)?;
        let theirs = Architecture::of(o.bert.config());
        if !std::ptr::eq(arch, theirs) {
            return Err(Error::Config(format!(
                "{model} is a `{}` checkpoint, not a {class}; load it as {} (or AutoModel)",
                theirs.model_type,
                theirs.class_name(c).unwrap_or(
                    theirs
                        .class_name(Class::Model)
                        .expect("every family has a base class")
                )
            )));
        }
        Self::load_as(c, o)
    }

    /// Loads a directory or hub id as its family's `class` (transformers'
    /// `AutoModelForSequenceClassification` for `Class::SequenceClassification`, ...): a RoBERTa
    /// checkpoint gives `RobertaForSequenceClassification`. An error when the family has no such
    /// class or the checkpoint lacks the head's tensors.
    pub fn from_pretrained_for(class: Class, model: &str, opts: &LoadOptions) -> Result<Self> {
        let o = super::open(model, opts)?;
        let arch = Architecture::of(o.bert.config());
        // transformers' AutoModelForPreTraining gives ELECTRA's discriminator.
        let class = match class {
            Class::PreTraining if arch.class_name(Class::Discriminator).is_some() => {
                Class::Discriminator
            }
            c => c,
        };
        if arch.class_name(class).is_none() {
            return Err(Error::Config(format!(
                "{model} is a `{}` checkpoint, which has no {class:?} class (it has {})",
                arch.model_type,
                arch.classes()
                    .map(|(_, n)| n)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Self::load_as(class, o)
    }

    fn from_opened(o: Opened) -> Result<Self> {
        let class = class_of(o.bert.config())?;
        Self::load_as(class, o)
    }

    /// `o` as `class`.
    fn load_as(class: Class, o: Opened) -> Result<Self> {
        Ok(match class {
            Class::Model => AutoModel::Bert(o.bert),
            Class::SequenceClassification => {
                AutoModel::SequenceClassification(BertForSequenceClassification::from_opened(o)?)
            }
            Class::TokenClassification => {
                AutoModel::TokenClassification(BertForTokenClassification::from_opened(o)?)
            }
            Class::QuestionAnswering => {
                AutoModel::QuestionAnswering(BertForQuestionAnswering::from_opened(o)?)
            }
            Class::MultipleChoice => {
                AutoModel::MultipleChoice(BertForMultipleChoice::from_opened(o)?)
            }
            Class::MaskedLM => AutoModel::MaskedLM(BertForMaskedLM::from_opened(o)?),
            Class::NextSentencePrediction => {
                AutoModel::NextSentencePrediction(BertForNextSentencePrediction::from_opened(o)?)
            }
            Class::PreTraining => AutoModel::PreTraining(BertForPreTraining::from_opened(o)?),
            Class::Discriminator => {
                AutoModel::Discriminator(ElectraForPreTraining::from_opened(o)?)
            }
        })
    }

    /// What the model puts on the encoder.
    pub fn class(&self) -> Class {
        match self {
            AutoModel::Bert(_) => Class::Model,
            AutoModel::SequenceClassification(_) => Class::SequenceClassification,
            AutoModel::TokenClassification(_) => Class::TokenClassification,
            AutoModel::QuestionAnswering(_) => Class::QuestionAnswering,
            AutoModel::MultipleChoice(_) => Class::MultipleChoice,
            AutoModel::MaskedLM(_) => Class::MaskedLM,
            AutoModel::NextSentencePrediction(_) => Class::NextSentencePrediction,
            AutoModel::PreTraining(_) => Class::PreTraining,
            AutoModel::Discriminator(_) => Class::Discriminator,
        }
    }

    /// The transformers class name of the loaded model (`RobertaForSequenceClassification`, ...).
    pub fn architecture(&self) -> &'static str {
        Architecture::of(self.bert().config())
            .class_name(self.class())
            .expect("loaded classes exist in their family")
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
            AutoModel::Discriminator(m) => m.bert(),
        }
    }
}

/// The class `architectures[0]` names, the base class when absent; an error for a class this
/// crate does not load or one of another family than `model_type`.
fn class_of(config: &BertConfig) -> Result<Class> {
    let arch = Architecture::of(config);
    let Some(name) = config.architectures.as_ref().and_then(|a| a.first()) else {
        return Ok(Class::Model);
    };
    match architecture::find_class(name) {
        Some((a, c)) if std::ptr::eq(a, arch) => Ok(c),
        _ => Err(Error::Config(format!(
            "architectures names `{name}`, which this crate does not load for model_type `{}` \
             (it loads {})",
            arch.model_type,
            arch.classes()
                .map(|(_, n)| n)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}
