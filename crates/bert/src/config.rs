//! `BertConfig`: the model hyper-parameters, deserialized from a checkpoint's `config.json` with the
//! defaults of transformers' `BertConfig`
//! (<https://github.com/huggingface/transformers/blob/v4.57.1/src/transformers/models/bert/configuration_bert.py>).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The activation of the intermediate (feed-forward) layer, `hidden_act` in `config.json`.
///
/// Names follow transformers' `ACT2FN`: `gelu` is the exact erf form, `gelu_new` and
/// `gelu_pytorch_tanh` are the same tanh approximation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum HiddenAct {
    /// `gelu`: `x * 0.5 * (1 + erf(x / sqrt(2)))`.
    Gelu,
    /// `gelu_new`: `0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x^3)))`.
    GeluNew,
    /// `gelu_pytorch_tanh`: numerically the same formula as `gelu_new`.
    GeluPytorchTanh,
    /// `relu`.
    Relu,
    /// `silu` (alias `swish`): `x * sigmoid(x)`.
    Silu,
}

impl HiddenAct {
    /// The name transformers uses for this activation.
    pub fn name(self) -> &'static str {
        match self {
            HiddenAct::Gelu => "gelu",
            HiddenAct::GeluNew => "gelu_new",
            HiddenAct::GeluPytorchTanh => "gelu_pytorch_tanh",
            HiddenAct::Relu => "relu",
            HiddenAct::Silu => "silu",
        }
    }

    pub(crate) fn kernel(self) -> bert_kernels::Activation {
        match self {
            HiddenAct::Gelu => bert_kernels::Activation::Gelu,
            HiddenAct::GeluNew | HiddenAct::GeluPytorchTanh => bert_kernels::Activation::GeluTanh,
            HiddenAct::Relu => bert_kernels::Activation::Relu,
            HiddenAct::Silu => bert_kernels::Activation::Silu,
        }
    }
}

impl TryFrom<String> for HiddenAct {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Ok(match s.as_str() {
            "gelu" => HiddenAct::Gelu,
            "gelu_new" => HiddenAct::GeluNew,
            "gelu_pytorch_tanh" => HiddenAct::GeluPytorchTanh,
            "relu" => HiddenAct::Relu,
            "silu" | "swish" => HiddenAct::Silu,
            other => {
                return Err(format!(
                    "unsupported hidden_act `{other}` (supported: gelu, gelu_new, gelu_pytorch_tanh, relu, silu, swish)"
                ))
            }
        })
    }
}

impl From<HiddenAct> for String {
    fn from(a: HiddenAct) -> String {
        a.name().to_string()
    }
}

/// What a classification head's loss (and a pipeline's score function) treats its logits as:
/// `problem_type` in `config.json`, the three values transformers' `PretrainedConfig` accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemType {
    /// `regression`: logits are the prediction (MSE loss, no score function).
    Regression,
    /// `single_label_classification`: one class per input (cross-entropy, softmax).
    SingleLabelClassification,
    /// `multi_label_classification`: independent classes (BCE with logits, sigmoid).
    MultiLabelClassification,
}

/// BERT hyper-parameters. Field names and defaults are transformers' `BertConfig` (and, for the task
/// fields, its base `PretrainedConfig`); fields this crate does not use (dropout, `initializer_range`)
/// are kept so the struct round-trips.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: HiddenAct,
    pub hidden_dropout_prob: f64,
    pub attention_probs_dropout_prob: f64,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub initializer_range: f64,
    pub layer_norm_eps: f64,
    pub pad_token_id: Option<i64>,
    /// Only `absolute` is supported; `relative_key` and `relative_key_query` are rejected at load.
    pub position_embedding_type: String,
    pub classifier_dropout: Option<f64>,
    /// The family (`bert`, `roberta`, `xlm-roberta`, `distilbert`, `electra`; see
    /// [`crate::architecture`]); any other is rejected at load.
    pub model_type: Option<String>,
    /// ELECTRA's embedding width when it differs from `hidden_size` (then `embeddings_project`
    /// maps it to `hidden_size`); `None` elsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding_size: Option<usize>,
    /// The class that wrote the checkpoint (`BertForSequenceClassification`, ...): what
    /// [`crate::heads::AutoModel`] loads.
    pub architectures: Option<Vec<String>>,
    /// Class index -> label name. Absent from `config.json`: `LABEL_0 .. LABEL_{n-1}` with
    /// `n = num_labels` (default 2), as `PretrainedConfig._create_id_label_maps`
    /// (<https://github.com/huggingface/transformers/blob/v4.57.1/src/transformers/configuration_utils.py#L303>).
    /// JSON keys are strings (`"0"`); they are parsed as integers, as transformers does.
    pub id2label: BTreeMap<usize, String>,
    /// Label name -> class index. Filled with the reverse of `id2label` only when both are absent
    /// from `config.json`; a file with `id2label` but no `label2id` leaves it empty, as transformers
    /// leaves it `None`.
    pub label2id: BTreeMap<String, usize>,
    /// `num_labels` as written in `config.json` (rare: transformers does not save it). After
    /// [`BertConfig::from_json_str`] it always equals `id2label.len()`, which wins when both are
    /// given (transformers only warns about the disagreement). Use [`BertConfig::num_labels`].
    #[serde(skip_serializing)]
    pub num_labels: Option<usize>,
    /// `None` lets each head decide from `num_labels` (and the pipelines from the label dtype).
    pub problem_type: Option<ProblemType>,
    /// Whether the masked-LM decoder shares the word-embedding matrix (default true, as in
    /// `PretrainedConfig`); when false the decoder weight is read from `cls.predictions.decoder.weight`.
    pub tie_word_embeddings: bool,
}

impl Default for BertConfig {
    fn default() -> Self {
        BertConfig {
            vocab_size: 30522,
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            hidden_act: HiddenAct::Gelu,
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            initializer_range: 0.02,
            layer_norm_eps: 1e-12,
            pad_token_id: Some(0),
            position_embedding_type: "absolute".to_string(),
            classifier_dropout: None,
            model_type: Some("bert".to_string()),
            embedding_size: None,
            architectures: None,
            id2label: default_labels(2).0,
            label2id: default_labels(2).1,
            num_labels: None,
            problem_type: None,
            tie_word_embeddings: true,
        }
    }
}

/// `LABEL_0 .. LABEL_{n-1}` and its reverse map.
fn default_labels(n: usize) -> (BTreeMap<usize, String>, BTreeMap<String, usize>) {
    let id2label: BTreeMap<usize, String> = (0..n).map(|i| (i, format!("LABEL_{i}"))).collect();
    let label2id = id2label.iter().map(|(&i, l)| (l.clone(), i)).collect();
    (id2label, label2id)
}

/// The label fields as they appear in `config.json`, before defaults are applied.
#[derive(Deserialize)]
struct LabelFields {
    id2label: Option<BTreeMap<usize, String>>,
    label2id: Option<BTreeMap<String, usize>>,
    num_labels: Option<usize>,
}

impl BertConfig {
    /// Reads and validates `config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json_str(&text).map_err(|e| match e {
            Error::Json { source, .. } => Error::Json {
                path: path.to_path_buf(),
                source,
            },
            Error::Config(msg) => Error::Config(format!("{}: {msg}", path.display())),
            other => other,
        })
    }

    /// Parses and validates a `config.json` document.
    pub fn from_json_str(text: &str) -> Result<Self> {
        let json_err = |source| Error::Json {
            path: "config.json".into(),
            source,
        };
        let value: serde_json::Value = serde_json::from_str(text).map_err(json_err)?;
        let value = family_keys::to_bert(value);
        let mut config: BertConfig = serde_json::from_value(value.clone()).map_err(json_err)?;
        let labels: LabelFields = serde_json::from_value(value).map_err(json_err)?;
        match labels.id2label {
            Some(id2label) => {
                config.label2id = labels.label2id.unwrap_or_default();
                config.id2label = id2label;
            }
            None => {
                let (id2label, label2id) = default_labels(labels.num_labels.unwrap_or(2));
                config.id2label = id2label;
                config.label2id = labels.label2id.unwrap_or(label2id);
            }
        }
        config.num_labels = Some(config.id2label.len());
        config.validate()?;
        Ok(config)
    }

    /// Number of classes of a classification head: `len(id2label)`, as transformers' `num_labels`.
    pub fn num_labels(&self) -> usize {
        self.id2label.len()
    }

    /// Replaces the labels: `id2label` = `labels` in order, `label2id` its reverse (a fresh head
    /// for fine-tuning).
    pub fn set_labels<S: AsRef<str>>(&mut self, labels: &[S]) {
        self.id2label = labels
            .iter()
            .enumerate()
            .map(|(i, l)| (i, l.as_ref().to_string()))
            .collect();
        self.label2id = self.id2label.iter().map(|(&i, l)| (l.clone(), i)).collect();
        self.num_labels = Some(labels.len());
    }

    /// The document transformers' config class of this family reads (DistilBERT's own key names).
    pub fn to_json_value(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("plain struct");
        v["model_type"] = crate::architecture::Architecture::of(self)
            .model_type
            .into();
        family_keys::from_bert(v)
    }

    /// The longest input, in tokens, the position table holds: `max_position_embeddings`, less
    /// RoBERTa's and XLM-R's `padding_idx + 1` offset (514 -> 512).
    pub fn max_input_length(&self) -> usize {
        crate::architecture::Architecture::of(self).max_len(self)
    }

    /// The width of the embedding tables: `embedding_size` (ELECTRA) or `hidden_size`.
    pub fn embedding_width(&self) -> usize {
        self.embedding_size.unwrap_or(self.hidden_size)
    }

    /// Checks that the configuration describes a model this crate can run.
    pub fn validate(&self) -> Result<()> {
        crate::architecture::Architecture::of_model_type(self.model_type.as_deref())?;
        if self.embedding_size == Some(0) {
            return Err(Error::Config("embedding_size must be positive".into()));
        }
        if self.position_embedding_type != "absolute" {
            return Err(Error::Config(format!(
                "position_embedding_type `{}` is not supported (only `absolute`)",
                self.position_embedding_type
            )));
        }
        for (field, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ] {
            if v == 0 {
                return Err(Error::Config(format!("{field} must be positive")));
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(Error::Config(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            )));
        }
        if let Some(n) = self.num_labels {
            if n != self.id2label.len() {
                return Err(Error::Config(format!(
                    "num_labels {n} disagrees with id2label, which has {} entries",
                    self.id2label.len()
                )));
            }
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps >= 0.0) {
            return Err(Error::Config(format!(
                "layer_norm_eps {} must be a non-negative number",
                self.layer_norm_eps
            )));
        }
        Ok(())
    }

    /// Size of one attention head, `D = H / NH`.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// The shapes of `bert-base-uncased`, `bert-large-uncased`, `all-MiniLM-L6-v2`, `roberta-base`
    /// and `distilbert-base-uncased`, for benchmarks with random weights.
    pub fn preset(name: &str) -> Option<Self> {
        let base = BertConfig::default();
        Some(match name {
            "roberta-base" => BertConfig {
                vocab_size: 50265,
                max_position_embeddings: 514,
                type_vocab_size: 1,
                layer_norm_eps: 1e-5,
                pad_token_id: Some(1),
                model_type: Some("roberta".into()),
                ..base
            },
            "distilbert-base" => BertConfig {
                num_hidden_layers: 6,
                type_vocab_size: 1,
                model_type: Some("distilbert".into()),
                ..base
            },
            "bert-base" => base,
            "bert-large" => BertConfig {
                hidden_size: 1024,
                num_hidden_layers: 24,
                num_attention_heads: 16,
                intermediate_size: 4096,
                ..base
            },
            "minilm-l6" => BertConfig {
                hidden_size: 384,
                num_hidden_layers: 6,
                num_attention_heads: 12,
                intermediate_size: 1536,
                ..base
            },
            _ => return None,
        })
    }
}

/// The config keys of families whose `config.json` does not use BERT's names or defaults.
mod family_keys {
    use serde_json::{json, Map, Value};

    /// DistilBERT's names for BERT's keys (`DistilBertConfig`).
    const DISTILBERT: [(&str, &str); 8] = [
        ("dim", "hidden_size"),
        ("n_layers", "num_hidden_layers"),
        ("n_heads", "num_attention_heads"),
        ("hidden_dim", "intermediate_size"),
        ("activation", "hidden_act"),
        ("dropout", "hidden_dropout_prob"),
        ("attention_dropout", "attention_probs_dropout_prob"),
        ("seq_classif_dropout", "classifier_dropout"),
    ];

    /// The defaults of each family's config class that differ from `BertConfig`'s.
    fn defaults(model_type: &str) -> Value {
        match model_type {
            "roberta" => json!({"vocab_size": 50265, "pad_token_id": 1}),
            "xlm-roberta" => json!({"pad_token_id": 1}),
            "electra" => json!({"embedding_size": 128, "hidden_size": 256,
                "num_attention_heads": 4, "intermediate_size": 1024}),
            "distilbert" => json!({"dim": 768, "n_layers": 6, "n_heads": 12,
                "hidden_dim": 3072, "activation": "gelu", "dropout": 0.1,
                "attention_dropout": 0.1}),
            _ => json!({}),
        }
    }

    /// `config.json` in BERT's keys: the family's defaults filled in, DistilBERT's keys renamed
    /// (it has no token types: one all-zero type; its LayerNorms use eps 1e-12).
    pub fn to_bert(v: Value) -> Value {
        let Value::Object(mut m) = v else { return v };
        let mt = m
            .get("model_type")
            .and_then(Value::as_str)
            .unwrap_or("bert")
            .to_string();
        if let Value::Object(d) = defaults(&mt) {
            for (k, v) in d {
                m.entry(k).or_insert(v);
            }
        }
        if mt == "electra" && m.get("embedding_size") == m.get("hidden_size") {
            m.remove("embedding_size");
        }
        if mt == "distilbert" {
            for (theirs, ours) in DISTILBERT {
                if let Some(v) = m.remove(theirs) {
                    m.insert(ours.to_string(), v);
                }
            }
            m.insert("type_vocab_size".into(), 1.into());
            m.insert("layer_norm_eps".into(), json!(1e-12));
        }
        Value::Object(m)
    }

    /// The inverse of [`to_bert`] for saving.
    pub fn from_bert(v: Value) -> Value {
        let Value::Object(mut m) = v else { return v };
        if m.get("model_type").and_then(Value::as_str) == Some("distilbert") {
            let mut out = Map::new();
            for (k, v) in m {
                match DISTILBERT.iter().find(|(_, ours)| *ours == k) {
                    Some((theirs, _)) => {
                        out.insert(theirs.to_string(), v);
                    }
                    None if k == "type_vocab_size" || k == "layer_norm_eps" => {}
                    None => {
                        out.insert(k, v);
                    }
                }
            }
            return Value::Object(out);
        }
        if m.get("model_type").and_then(Value::as_str) == Some("electra") {
            if let Some(h) = m.get("hidden_size").cloned() {
                m.entry("embedding_size").or_insert(h);
            }
        }
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_bert_base() {
        let c = BertConfig::from_json_str("{}").unwrap();
        assert_eq!(
            c,
            BertConfig {
                num_labels: Some(2),
                ..BertConfig::default()
            }
        );
        assert_eq!(c.head_dim(), 64);
        assert_eq!(c.num_labels(), 2);
        assert_eq!(c.id2label[&1], "LABEL_1");
        assert_eq!(c.label2id["LABEL_0"], 0);
        assert!(c.tie_word_embeddings);
        assert_eq!(c.problem_type, None);
    }

    #[test]
    fn labels_follow_pretrained_config() {
        let c = BertConfig::from_json_str(r#"{"num_labels": 5}"#).unwrap();
        assert_eq!(c.num_labels(), 5);
        assert_eq!(c.id2label[&4], "LABEL_4");
        let c = BertConfig::from_json_str(
            r#"{"id2label": {"0": "NEG", "1": "NEU", "2": "POS"}, "num_labels": 2,
                "problem_type": "multi_label_classification"}"#,
        )
        .unwrap();
        // id2label wins over a disagreeing num_labels; transformers only warns.
        assert_eq!(c.num_labels(), 3);
        assert_eq!(c.id2label[&2], "POS");
        assert!(c.label2id.is_empty());
        assert_eq!(c.problem_type, Some(ProblemType::MultiLabelClassification));
        let e = BertConfig::from_json_str(r#"{"problem_type": "ranking"}"#).unwrap_err();
        assert!(e.to_string().contains("ranking"), "{e}");
        let back: BertConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back.id2label, c.id2label);
    }

    #[test]
    fn distilbert_keys_round_trip() {
        let c = BertConfig::from_json_str(
            r#"{"model_type": "distilbert", "dim": 32, "n_layers": 2, "n_heads": 4,
                "hidden_dim": 37, "activation": "gelu", "vocab_size": 99}"#,
        )
        .unwrap();
        assert_eq!(
            (c.hidden_size, c.num_hidden_layers, c.num_attention_heads),
            (32, 2, 4)
        );
        assert_eq!((c.intermediate_size, c.type_vocab_size), (37, 1));
        let v = c.to_json_value();
        assert_eq!(
            (v["dim"].as_u64(), v["hidden_dim"].as_u64()),
            (Some(32), Some(37))
        );
        assert!(v.get("hidden_size").is_none() && v.get("type_vocab_size").is_none());
        let back = BertConfig::from_json_str(&v.to_string()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn presets_are_valid() {
        for name in [
            "bert-base",
            "bert-large",
            "minilm-l6",
            "roberta-base",
            "distilbert-base",
        ] {
            let c = BertConfig::preset(name).unwrap();
            c.validate().unwrap();
            assert_eq!(c.max_input_length(), 512, "{name}");
        }
        assert!(BertConfig::preset("gpt2").is_none());
    }

    #[test]
    fn family_defaults() {
        let c = BertConfig::from_json_str(r#"{"model_type": "roberta"}"#).unwrap();
        assert_eq!((c.vocab_size, c.pad_token_id), (50265, Some(1)));
        let c = BertConfig::from_json_str(r#"{"model_type": "electra"}"#).unwrap();
        assert_eq!((c.embedding_size, c.hidden_size), (Some(128), 256));
        let c = BertConfig::from_json_str(
            r#"{"model_type": "electra", "embedding_size": 64, "hidden_size": 64}"#,
        )
        .unwrap();
        assert_eq!(c.embedding_size, None);
        assert_eq!(c.to_json_value()["embedding_size"].as_u64(), Some(64));
    }

    #[test]
    fn activations_parse() {
        for (s, a) in [
            ("gelu", HiddenAct::Gelu),
            ("gelu_new", HiddenAct::GeluNew),
            ("gelu_pytorch_tanh", HiddenAct::GeluPytorchTanh),
            ("relu", HiddenAct::Relu),
            ("silu", HiddenAct::Silu),
            ("swish", HiddenAct::Silu),
        ] {
            let c = BertConfig::from_json_str(&format!(r#"{{"hidden_act": "{s}"}}"#)).unwrap();
            assert_eq!(c.hidden_act, a);
        }
    }

    #[test]
    fn unsupported_settings_are_errors() {
        let e = BertConfig::from_json_str(r#"{"hidden_act": "mish"}"#).unwrap_err();
        assert!(
            e.to_string().contains("unsupported hidden_act `mish`"),
            "{e}"
        );
        let e = BertConfig::from_json_str(r#"{"position_embedding_type": "relative_key"}"#)
            .unwrap_err();
        assert!(e.to_string().contains("relative_key"), "{e}");
        let e = BertConfig::from_json_str(r#"{"hidden_size": 100, "num_attention_heads": 3}"#)
            .unwrap_err();
        assert!(e.to_string().contains("not a multiple"), "{e}");
        let e = BertConfig::from_json_str(r#"{"model_type": "gpt2"}"#).unwrap_err();
        assert!(e.to_string().contains("gpt2"), "{e}");
        let e = BertConfig::from_json_str(r#"{"num_hidden_layers": 0}"#).unwrap_err();
        assert!(e.to_string().contains("num_hidden_layers"), "{e}");
    }
}
