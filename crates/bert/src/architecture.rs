//! The BERT family, described once: what RoBERTa, XLM-RoBERTa, DistilBERT and ELECTRA change in
//! BERT's post-LayerNorm encoder. The inference model (`model/`), the task heads (`heads/`), the
//! training encoder (`train/`) and the checkpoint loaders all read this table; none of them has a
//! per-family copy of the encoder.
//!
//! What differs, per transformers 4.57 (`modeling_roberta.py`, `modeling_xlm_roberta.py`,
//! `modeling_distilbert.py`, `modeling_electra.py`):
//!
//! | family | positions | token types | names | sequence classifier |
//! |---|---|---|---|---|
//! | BERT | `0..T` | yes | `bert.` | pooler (dense + tanh) -> `classifier` |
//! | RoBERTa, XLM-R | `padding_idx + 1 + rank` over non-pad ids | yes (1 type) | `roberta.` | `classifier.dense` + tanh -> `classifier.out_proj` on `<s>` |
//! | DistilBERT | `0..T` | none | `distilbert.transformer.layer.{i}.attention.q_lin`, `sa_layer_norm`, `ffn.lin1` ... | `pre_classifier` + ReLU -> `classifier` |
//! | ELECTRA | `0..T` | yes | `electra.`, `embeddings_project` when `embedding_size != hidden_size` | `classifier.dense` + GELU -> `classifier.out_proj` |
//!
//! Checkpoint names are mapped onto one canonical set (BERT's `BertModel` keys, and BERT's names
//! for the masked-LM head) when a checkpoint is read ([`Architecture::canonical`]) and back when
//! a trained model is saved ([`Architecture::checkpoint_name`]).

use ndarray::Array2;

use crate::{BertConfig, Error, HiddenAct, Result};

/// The model families this crate runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    Bert,
    Roberta,
    XlmRoberta,
    DistilBert,
    Electra,
}

/// How position ids are made when the caller gives none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Positions {
    /// `0..T` in every row (BERT).
    Absolute,
    /// transformers' `create_position_ids_from_input_ids`: `padding_idx + 1 + k` for the k-th
    /// non-pad id of the row, `padding_idx` at pad ids (RoBERTa, XLM-R).
    AfterPadding,
}

/// An activation of a task head (fixed by the class, not by `hidden_act`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadAct {
    Tanh,
    /// The exact erf GELU.
    Gelu,
    Relu,
}

impl HeadAct {
    /// Applies the activation in place.
    pub fn apply(self, x: &mut [f32]) {
        match self {
            HeadAct::Tanh => x.iter_mut().for_each(|v| *v = v.tanh()),
            HeadAct::Relu => x.iter_mut().for_each(|v| *v = v.max(0.0)),
            HeadAct::Gelu => x.iter_mut().for_each(|v| {
                *v = bert_kernels::reference::activation(bert_kernels::Activation::Gelu, *v)
            }),
        }
    }

    /// The training kernels' name for it (`None` for tanh, which has its own pooler kernel).
    pub(crate) fn kernel(self) -> Option<bert_kernels::Activation> {
        match self {
            HeadAct::Tanh => None,
            HeadAct::Gelu => Some(bert_kernels::Activation::Gelu),
            HeadAct::Relu => Some(bert_kernels::Activation::Relu),
        }
    }
}

/// The transformers classes, by what they put on the encoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    Model,
    SequenceClassification,
    TokenClassification,
    QuestionAnswering,
    MultipleChoice,
    MaskedLM,
    NextSentencePrediction,
    PreTraining,
    /// ELECTRA's `ElectraForPreTraining`: one replaced-token logit per token.
    Discriminator,
}

/// The sequence classifier on the first token: `out(act(dense(x)))`, where `dense` + `act` is the
/// pooler (`None`: BERT's `pooler.dense` + tanh, part of the base model) or the head's own layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Classifier {
    /// The head's dense layer (canonical name) and its activation; `None` reads `pooler_output`.
    pub dense: Option<(&'static str, HeadAct)>,
    /// Dropout on the first token before `dense` (RoBERTa's and ELECTRA's heads), in training.
    pub dropout_before_dense: bool,
    /// The output Linear (canonical name).
    pub out: &'static str,
}

/// One family's row of the table.
#[derive(Debug)]
pub struct Architecture {
    pub family: Family,
    /// `model_type` in config.json.
    pub model_type: &'static str,
    /// The attribute that holds the base model in the task classes (`bert`, `roberta`, ...), the
    /// prefix of their checkpoint keys.
    pub base: &'static str,
    pub positions: Positions,
    /// Whether the embeddings have a token-type table (DistilBERT: none; a `token_type_ids`
    /// input is an error).
    pub token_types: bool,
    /// Whether training applies dropout after the attention's output layer (DistilBERT: no).
    pub attention_output_dropout: bool,
    /// The layers' path in checkpoint keys (canonical `encoder.layer`).
    layers: &'static str,
    /// In-layer renames `(checkpoint, canonical)`, matched on the name's start.
    layer_names: &'static [(&'static str, &'static str)],
    /// Task-head renames `(checkpoint, canonical)`; `None` as canonical drops the tensor (a tied
    /// copy).
    head_names: &'static [(&'static str, Option<&'static str>)],
    /// Top-level modules of the task classes besides the base model.
    head_modules: &'static [&'static str],
    pub classifier: Classifier,
    /// The masked-LM transform's activation when the class fixes it (RoBERTa's `gelu`);
    /// `None`: `hidden_act`.
    pub mlm_act: Option<HiddenAct>,
    /// The classes of the family, with their transformers names.
    classes: &'static [(Class, &'static str)],
}

const BERT_HEADS: [&str; 3] = ["cls.", "classifier.", "qa_outputs."];

/// The table. Adding a family member is adding a row.
pub static ARCHITECTURES: [Architecture; 5] = [
    Architecture {
        family: Family::Bert,
        model_type: "bert",
        base: "bert",
        positions: Positions::Absolute,
        token_types: true,
        attention_output_dropout: true,
        layers: "encoder.layer",
        layer_names: &[],
        head_names: &[],
        head_modules: &BERT_HEADS,
        classifier: Classifier {
            dense: None,
            dropout_before_dense: false,
            out: "classifier",
        },
        mlm_act: None,
        classes: &[
            (Class::Model, "BertModel"),
            (
                Class::SequenceClassification,
                "BertForSequenceClassification",
            ),
            (Class::TokenClassification, "BertForTokenClassification"),
            (Class::QuestionAnswering, "BertForQuestionAnswering"),
            (Class::MultipleChoice, "BertForMultipleChoice"),
            (Class::MaskedLM, "BertForMaskedLM"),
            (
                Class::NextSentencePrediction,
                "BertForNextSentencePrediction",
            ),
            (Class::PreTraining, "BertForPreTraining"),
        ],
    },
    ROBERTA,
    // XLM-R is RoBERTa's architecture under other class names (and a SentencePiece tokenizer).
    Architecture {
        family: Family::XlmRoberta,
        model_type: "xlm-roberta",
        classes: &[
            (Class::Model, "XLMRobertaModel"),
            (
                Class::SequenceClassification,
                "XLMRobertaForSequenceClassification",
            ),
            (
                Class::TokenClassification,
                "XLMRobertaForTokenClassification",
            ),
            (Class::QuestionAnswering, "XLMRobertaForQuestionAnswering"),
            (Class::MaskedLM, "XLMRobertaForMaskedLM"),
        ],
        ..ROBERTA
    },
    Architecture {
        family: Family::DistilBert,
        model_type: "distilbert",
        base: "distilbert",
        positions: Positions::Absolute,
        token_types: false,
        attention_output_dropout: false,
        layers: "transformer.layer",
        layer_names: &[
            ("attention.q_lin.", "attention.self.query."),
            ("attention.k_lin.", "attention.self.key."),
            ("attention.v_lin.", "attention.self.value."),
            ("attention.out_lin.", "attention.output.dense."),
            ("sa_layer_norm.", "attention.output.LayerNorm."),
            ("ffn.lin1.", "intermediate.dense."),
            ("ffn.lin2.", "output.dense."),
            ("output_layer_norm.", "output.LayerNorm."),
        ],
        head_names: &[
            ("vocab_transform.", Some("cls.predictions.transform.dense.")),
            (
                "vocab_layer_norm.",
                Some("cls.predictions.transform.LayerNorm."),
            ),
            (
                "vocab_projector.weight",
                Some("cls.predictions.decoder.weight"),
            ),
            ("vocab_projector.bias", Some("cls.predictions.bias")),
        ],
        head_modules: &[
            "vocab_transform.",
            "vocab_layer_norm.",
            "vocab_projector.",
            "pre_classifier.",
            "classifier.",
            "qa_outputs.",
        ],
        classifier: Classifier {
            dense: Some(("pre_classifier", HeadAct::Relu)),
            dropout_before_dense: false,
            out: "classifier",
        },
        mlm_act: None,
        classes: &[
            (Class::Model, "DistilBertModel"),
            (
                Class::SequenceClassification,
                "DistilBertForSequenceClassification",
            ),
            (
                Class::TokenClassification,
                "DistilBertForTokenClassification",
            ),
            (Class::QuestionAnswering, "DistilBertForQuestionAnswering"),
            (Class::MaskedLM, "DistilBertForMaskedLM"),
        ],
    },
    Architecture {
        family: Family::Electra,
        model_type: "electra",
        base: "electra",
        positions: Positions::Absolute,
        token_types: true,
        attention_output_dropout: true,
        layers: "encoder.layer",
        layer_names: &[],
        head_names: &[],
        head_modules: &["discriminator_predictions.", "classifier.", "qa_outputs."],
        classifier: Classifier {
            dense: Some(("classifier.dense", HeadAct::Gelu)),
            dropout_before_dense: true,
            out: "classifier.out_proj",
        },
        mlm_act: None,
        classes: &[
            (Class::Model, "ElectraModel"),
            (
                Class::SequenceClassification,
                "ElectraForSequenceClassification",
            ),
            (Class::TokenClassification, "ElectraForTokenClassification"),
            (Class::QuestionAnswering, "ElectraForQuestionAnswering"),
            (Class::Discriminator, "ElectraForPreTraining"),
        ],
    },
];

/// RoBERTa's row (XLM-R's differs only in its names).
const ROBERTA: Architecture = Architecture {
    family: Family::Roberta,
    model_type: "roberta",
    base: "roberta",
    positions: Positions::AfterPadding,
    token_types: true,
    attention_output_dropout: true,
    layers: "encoder.layer",
    layer_names: &[],
    head_names: ROBERTA_HEAD_NAMES,
    head_modules: &["lm_head.", "classifier.", "qa_outputs."],
    classifier: Classifier {
        dense: Some(("classifier.dense", HeadAct::Tanh)),
        dropout_before_dense: true,
        out: "classifier.out_proj",
    },
    mlm_act: Some(HiddenAct::Gelu),
    classes: &[
        (Class::Model, "RobertaModel"),
        (
            Class::SequenceClassification,
            "RobertaForSequenceClassification",
        ),
        (Class::TokenClassification, "RobertaForTokenClassification"),
        (Class::QuestionAnswering, "RobertaForQuestionAnswering"),
        (Class::MaskedLM, "RobertaForMaskedLM"),
    ],
};

/// `lm_head.decoder.bias` is the same parameter as `lm_head.bias` (tied in `RobertaLMHead`).
const ROBERTA_HEAD_NAMES: &[(&str, Option<&str>)] = &[
    ("lm_head.dense.", Some("cls.predictions.transform.dense.")),
    (
        "lm_head.layer_norm.",
        Some("cls.predictions.transform.LayerNorm."),
    ),
    (
        "lm_head.decoder.weight",
        Some("cls.predictions.decoder.weight"),
    ),
    ("lm_head.decoder.bias", None),
    ("lm_head.bias", Some("cls.predictions.bias")),
];

/// Base-model modules (canonical names).
const BASE_MODULES: [&str; 4] = ["embeddings.", "encoder.", "pooler.", "embeddings_project."];

impl Architecture {
    /// The row of `model_type` (absent: `bert`).
    pub fn of_model_type(model_type: Option<&str>) -> Result<&'static Architecture> {
        let mt = model_type.unwrap_or("bert");
        ARCHITECTURES
            .iter()
            .find(|a| a.model_type == mt)
            .ok_or_else(|| {
                Error::Config(format!(
                    "model_type `{mt}` is not supported (supported: {})",
                    ARCHITECTURES
                        .iter()
                        .map(|a| a.model_type)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }

    /// The row of a configuration.
    pub fn of(config: &BertConfig) -> &'static Architecture {
        Self::of_model_type(config.model_type.as_deref())
            .expect("BertConfig::validate accepted the model_type")
    }

    /// The transformers name of `class` in this family, if the family has it.
    pub fn class_name(&self, class: Class) -> Option<&'static str> {
        self.classes
            .iter()
            .find(|(c, _)| *c == class)
            .map(|(_, n)| *n)
    }

    /// The family's classes.
    pub fn classes(&self) -> impl Iterator<Item = (Class, &'static str)> + '_ {
        self.classes.iter().copied()
    }

    /// The canonical key a stored tensor is looked up by, or `None` for anything the model does
    /// not read (buffers such as `embeddings.position_ids`, tied copies, other models' tensors).
    ///
    /// Base-model keys lose the `{base}.` prefix and map onto `BertModel`'s names; TF-era
    /// `gamma`/`beta` become `weight`/`bias`; head tensors keep their class's names except the
    /// masked-LM head, which takes BERT's (`cls.predictions.*`).
    pub fn canonical(&self, name: &str) -> Option<String> {
        let name = if let Some(stem) = name.strip_suffix(".gamma") {
            format!("{stem}.weight")
        } else if let Some(stem) = name.strip_suffix(".beta") {
            format!("{stem}.bias")
        } else {
            name.to_string()
        };
        let stripped = name
            .strip_prefix(self.base)
            .and_then(|r| r.strip_prefix('.'));
        let bare = stripped.unwrap_or(&name).to_string();
        if matches!(
            bare.as_str(),
            "embeddings.position_ids" | "embeddings.token_type_ids"
        ) {
            return None;
        }
        if let Some(rest) = bare
            .strip_prefix(self.layers)
            .and_then(|r| r.strip_prefix('.'))
        {
            let (index, inner) = rest.split_once('.')?;
            let inner = rename(inner, self.layer_names.iter().map(|&(a, b)| (a, b)));
            return Some(format!("encoder.layer.{index}.{inner}"));
        }
        if BASE_MODULES.iter().any(|m| bare.starts_with(m)) {
            return Some(bare);
        }
        // A head tensor never carries the base prefix: `bert.classifier.weight` is not one.
        if stripped.is_some() || !self.head_modules.iter().any(|p| name.starts_with(p)) {
            return None;
        }
        for &(from, to) in self.head_names {
            if let Some(rest) = name.strip_prefix(from) {
                return to.map(|to| format!("{to}{rest}"));
            }
        }
        Some(name.clone())
    }

    /// The name transformers' class keeps canonical key `key` under: the inverse of
    /// [`Architecture::canonical`], with the `{base}.` prefix on base-model keys when `prefixed`
    /// (inside a task class).
    pub fn checkpoint_name(&self, key: &str, prefixed: bool) -> String {
        let base = |k: String| {
            if prefixed {
                format!("{}.{k}", self.base)
            } else {
                k
            }
        };
        if let Some(rest) = key.strip_prefix("encoder.layer.") {
            if let Some((index, inner)) = rest.split_once('.') {
                let inner = rename(inner, self.layer_names.iter().map(|&(a, b)| (b, a)));
                return base(format!("{}.{index}.{inner}", self.layers));
            }
        }
        if BASE_MODULES.iter().any(|m| key.starts_with(m)) {
            return base(key.to_string());
        }
        for &(from, to) in self.head_names {
            if let Some(rest) = to.and_then(|to| key.strip_prefix(to)) {
                return format!("{from}{rest}");
            }
        }
        key.to_string()
    }

    /// Position ids the family makes from `input_ids` when the caller gives none; `None` for
    /// `0..T` (which the engine makes without a table).
    pub fn default_positions(
        &self,
        config: &BertConfig,
        input_ids: &Array2<i64>,
    ) -> Option<Array2<i64>> {
        match self.positions {
            Positions::Absolute => None,
            Positions::AfterPadding => {
                let pad = config.pad_token_id.unwrap_or(1);
                let mut out = Array2::zeros(input_ids.raw_dim());
                for (ids, mut pos) in input_ids.rows().into_iter().zip(out.rows_mut()) {
                    let mut k = 0;
                    for (&id, p) in ids.iter().zip(pos.iter_mut()) {
                        *p = if id == pad {
                            pad
                        } else {
                            k += 1;
                            pad + k
                        };
                    }
                }
                Some(out)
            }
        }
    }

    /// The longest input the position table holds.
    pub fn max_len(&self, config: &BertConfig) -> usize {
        match self.positions {
            Positions::Absolute => config.max_position_embeddings,
            Positions::AfterPadding => {
                let pad = config.pad_token_id.unwrap_or(1).max(0) as usize;
                config.max_position_embeddings.saturating_sub(pad + 1)
            }
        }
    }
}

/// `name` with the first `(from, to)` prefix replaced.
fn rename<'a>(name: &str, pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    for (from, to) in pairs {
        if let Some(rest) = name.strip_prefix(from) {
            return format!("{to}{rest}");
        }
    }
    name.to_string()
}

/// The family and class a transformers class name belongs to.
pub fn find_class(name: &str) -> Option<(&'static Architecture, Class)> {
    ARCHITECTURES.iter().find_map(|a| {
        a.classes
            .iter()
            .find(|(_, n)| *n == name)
            .map(|&(c, _)| (a, c))
    })
}

/// Every class name this crate loads, family by family.
pub fn class_names() -> impl Iterator<Item = &'static str> {
    ARCHITECTURES
        .iter()
        .flat_map(|a| a.classes.iter().map(|(_, n)| *n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arch(f: Family) -> &'static Architecture {
        ARCHITECTURES.iter().find(|a| a.family == f).unwrap()
    }

    #[test]
    fn bert_names_as_before() {
        let a = arch(Family::Bert);
        for (stored, key) in [
            (
                "bert.encoder.layer.0.output.LayerNorm.gamma",
                Some("encoder.layer.0.output.LayerNorm.weight"),
            ),
            (
                "embeddings.LayerNorm.beta",
                Some("embeddings.LayerNorm.bias"),
            ),
            ("pooler.dense.weight", Some("pooler.dense.weight")),
            ("bert.embeddings.position_ids", None),
            ("bert.classifier.weight", None),
            ("lm_head.weight", None),
            ("cls.predictions.bias", Some("cls.predictions.bias")),
            (
                "cls.predictions.transform.LayerNorm.gamma",
                Some("cls.predictions.transform.LayerNorm.weight"),
            ),
            ("qa_outputs.bias", Some("qa_outputs.bias")),
        ] {
            assert_eq!(a.canonical(stored).as_deref(), key, "{stored}");
        }
    }

    #[test]
    fn family_names_round_trip() {
        for (f, stored, key) in [
            (
                Family::DistilBert,
                "distilbert.transformer.layer.3.attention.q_lin.weight",
                "encoder.layer.3.attention.self.query.weight",
            ),
            (
                Family::DistilBert,
                "distilbert.transformer.layer.0.attention.out_lin.bias",
                "encoder.layer.0.attention.output.dense.bias",
            ),
            (
                Family::DistilBert,
                "distilbert.transformer.layer.1.ffn.lin2.weight",
                "encoder.layer.1.output.dense.weight",
            ),
            (
                Family::DistilBert,
                "distilbert.transformer.layer.1.output_layer_norm.weight",
                "encoder.layer.1.output.LayerNorm.weight",
            ),
            (
                Family::DistilBert,
                "vocab_projector.bias",
                "cls.predictions.bias",
            ),
            (
                Family::DistilBert,
                "pre_classifier.weight",
                "pre_classifier.weight",
            ),
            (
                Family::Roberta,
                "roberta.encoder.layer.2.attention.self.key.bias",
                "encoder.layer.2.attention.self.key.bias",
            ),
            (
                Family::Roberta,
                "lm_head.layer_norm.weight",
                "cls.predictions.transform.LayerNorm.weight",
            ),
            (
                Family::Roberta,
                "classifier.out_proj.weight",
                "classifier.out_proj.weight",
            ),
            (
                Family::Electra,
                "electra.embeddings_project.weight",
                "embeddings_project.weight",
            ),
        ] {
            let a = arch(f);
            assert_eq!(a.canonical(stored).as_deref(), Some(key), "{stored}");
            assert_eq!(a.checkpoint_name(key, true), stored, "{key}");
        }
        let r = arch(Family::Roberta);
        assert_eq!(r.canonical("lm_head.decoder.bias"), None);
        assert_eq!(r.canonical("roberta.embeddings.token_type_ids"), None);
        assert_eq!(
            r.checkpoint_name("embeddings.word_embeddings.weight", false),
            "embeddings.word_embeddings.weight"
        );
    }

    #[test]
    fn roberta_positions_follow_create_position_ids_from_input_ids() {
        let a = arch(Family::Roberta);
        let c = BertConfig {
            pad_token_id: Some(1),
            ..BertConfig::default()
        };
        let ids = ndarray::array![[0, 5, 6, 2, 1, 1], [0, 7, 2, 1, 1, 1]];
        let p = a.default_positions(&c, &ids).unwrap();
        assert_eq!(p, ndarray::array![[2, 3, 4, 5, 1, 1], [2, 3, 4, 1, 1, 1]]);
        assert_eq!(
            a.max_len(&BertConfig {
                max_position_embeddings: 514,
                ..c
            }),
            512
        );
    }

    #[test]
    fn classes_are_found_by_name() {
        let (a, c) = find_class("XLMRobertaForTokenClassification").unwrap();
        assert_eq!(
            (a.family, c),
            (Family::XlmRoberta, Class::TokenClassification)
        );
        assert!(find_class("GPT2Model").is_none());
        assert!(class_names().any(|n| n == "ElectraForPreTraining"));
    }
}
