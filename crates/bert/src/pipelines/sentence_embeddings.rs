//! Sentence embeddings as sentence-transformers computes them: `modules.json` (Transformer ->
//! Pooling -> optional Normalize), `1_Pooling/config.json`, `sentence_bert_config.json`
//! (`max_seq_length`, `do_lower_case`)
//! (<https://github.com/UKPLab/sentence-transformers/blob/main/sentence_transformers/sentence_transformer/modules/pooling.py>).
//!
//! A directory without `modules.json` is a plain transformers model: sentence-transformers then
//! builds Transformer + mean Pooling, without Normalize, and says so in a warning;
//! [`SentenceEmbeddings::notice`] says the same.

use std::path::Path;

use ndarray::{Array2, Array3};
use serde::Deserialize;

use crate::{BertInputs, BertModel, BertTokenizer, Error, ForwardOptions, LoadOptions, Result};

/// One way of pooling token states into a sentence vector (sentence-transformers' names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum PoolingMode {
    /// The first real token (`[CLS]`).
    #[serde(rename = "cls")]
    Cls,
    /// Per-dimension max over real tokens.
    #[serde(rename = "max")]
    Max,
    /// Mean over real tokens.
    #[serde(rename = "mean")]
    Mean,
    /// Sum over real tokens divided by sqrt(count).
    #[serde(rename = "mean_sqrt_len_tokens")]
    MeanSqrtLen,
    /// Mean weighted by position (1-based, padded position).
    #[serde(rename = "weightedmean")]
    WeightedMean,
    /// The last real token.
    #[serde(rename = "lasttoken")]
    LastToken,
}

/// The legacy boolean keys of `1_Pooling/config.json`, in sentence-transformers' concatenation order.
const LEGACY_KEYS: [(&str, PoolingMode); 6] = [
    ("pooling_mode_cls_token", PoolingMode::Cls),
    ("pooling_mode_max_tokens", PoolingMode::Max),
    ("pooling_mode_mean_tokens", PoolingMode::Mean),
    (
        "pooling_mode_mean_sqrt_len_tokens",
        PoolingMode::MeanSqrtLen,
    ),
    (
        "pooling_mode_weightedmean_tokens",
        PoolingMode::WeightedMean,
    ),
    ("pooling_mode_lasttoken", PoolingMode::LastToken),
];

/// `1_Pooling/config.json`: the modes whose vectors are concatenated, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolingConfig {
    pub modes: Vec<PoolingMode>,
    /// `word_embedding_dimension` / `embedding_dimension`: must equal the model's hidden size.
    pub embedding_dimension: Option<usize>,
}

impl Default for PoolingConfig {
    /// Mean pooling: what sentence-transformers uses for a plain transformers model.
    fn default() -> Self {
        PoolingConfig {
            modes: vec![PoolingMode::Mean],
            embedding_dimension: None,
        }
    }
}

impl PoolingConfig {
    /// Parses either format: `"pooling_mode": "mean" | ["cls", "max"]` (sentence-transformers 5)
    /// or the legacy `pooling_mode_*_token(s)` booleans (none true means mean, as upstream).
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self> {
        let json_err = |source| Error::Json {
            path: path.to_path_buf(),
            source,
        };
        let v: serde_json::Value = serde_json::from_str(text).map_err(json_err)?;
        let embedding_dimension = ["embedding_dimension", "word_embedding_dimension"]
            .iter()
            .find_map(|k| v.get(*k).and_then(|d| d.as_u64()))
            .map(|d| d as usize);
        let modes = match v.get("pooling_mode") {
            Some(serde_json::Value::String(s)) => {
                vec![serde_json::from_value(serde_json::Value::String(s.clone()))
                    .map_err(json_err)?]
            }
            Some(list @ serde_json::Value::Array(_)) => {
                serde_json::from_value(list.clone()).map_err(json_err)?
            }
            Some(other) => {
                return Err(Error::Config(format!(
                    "{}: pooling_mode {other} is neither a mode name nor a list of them",
                    path.display()
                )))
            }
            None => LEGACY_KEYS
                .iter()
                .filter(|(k, _)| v.get(*k).and_then(|b| b.as_bool()) == Some(true))
                .map(|&(_, m)| m)
                .collect(),
        };
        if v.get("include_prompt").and_then(|b| b.as_bool()) == Some(false) {
            return Err(Error::Config(format!(
                "{}: include_prompt false (prompt tokens excluded from pooling) is not supported",
                path.display()
            )));
        }
        Ok(PoolingConfig {
            modes: if modes.is_empty() {
                vec![PoolingMode::Mean]
            } else {
                modes
            },
            embedding_dimension,
        })
    }
}

/// (B, M·H) sentence vectors from `hidden` (B, T, H) and `mask` (B, T), one (B, H) block per mode
/// in `modes`' order, exactly as sentence-transformers' `Pooling._forward_padded`. Rows without real
/// tokens give zeros (mean, CLS, last token) or -inf (max), as upstream.
pub fn pool(hidden: &Array3<f32>, mask: &Array2<i64>, modes: &[PoolingMode]) -> Array2<f32> {
    let (b, t, h) = hidden.dim();
    let mut out = Array2::zeros((b, modes.len() * h));
    for s in 0..b {
        let real: Vec<usize> = (0..t).filter(|&j| mask[[s, j]] != 0).collect();
        for (k, mode) in modes.iter().enumerate() {
            let mut dst = out.slice_mut(ndarray::s![s, k * h..(k + 1) * h]);
            let row = |j: usize| hidden.slice(ndarray::s![s, j, ..]);
            match mode {
                PoolingMode::Cls => {
                    // argmax of the mask: the first real token, position 0 when there is none.
                    let j = real.first().copied().unwrap_or(0);
                    dst.assign(&row(j));
                }
                PoolingMode::LastToken => {
                    // The last real token; none: position T - 1 times its mask (0).
                    if let Some(&j) = real.last() {
                        dst.assign(&row(j));
                    }
                }
                PoolingMode::Max => {
                    dst.fill(f32::NEG_INFINITY);
                    for &j in &real {
                        dst.zip_mut_with(&row(j), |d, &x| *d = d.max(x));
                    }
                }
                PoolingMode::Mean | PoolingMode::MeanSqrtLen | PoolingMode::WeightedMean => {
                    let weight = |j: usize| match mode {
                        PoolingMode::WeightedMean => (j + 1) as f32,
                        _ => 1.0,
                    };
                    for &j in &real {
                        let w = weight(j);
                        dst.zip_mut_with(&row(j), |d, &x| *d += x * w);
                    }
                    // torch.clamp(sum of weights, min=1e-9)
                    let total = real.iter().map(|&j| weight(j)).sum::<f32>().max(1e-9);
                    let div = match mode {
                        PoolingMode::MeanSqrtLen => total.sqrt(),
                        _ => total,
                    };
                    dst.mapv_inplace(|v| v / div);
                }
            }
        }
    }
    out
}

/// `torch.nn.functional.normalize(x, p=2, dim=1)`: each row divided by max(‖row‖, 1e-12).
pub fn normalize(x: &mut Array2<f32>) {
    for mut row in x.rows_mut() {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        row.mapv_inplace(|v| v / norm);
    }
}

/// How [`SentenceEmbeddings::encode`] batches its texts.
#[derive(Clone, Debug)]
pub struct EncodeOptions {
    /// Texts per forward pass (sentence-transformers' default 32).
    pub batch_size: usize,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions { batch_size: 32 }
    }
}

/// `modules.json`'s entries: only the module type matters here.
#[derive(Deserialize)]
struct Module {
    #[serde(rename = "type")]
    kind: String,
    path: String,
}

/// `sentence_bert_config.json`.
#[derive(Deserialize, Default)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
    #[serde(default)]
    do_lower_case: bool,
}

/// A sentence-transformers model over [`BertModel`]: tokenizer, encoder, pooling, optional
/// normalization.
pub struct SentenceEmbeddings {
    tokenizer: BertTokenizer,
    model: BertModel,
    pooling: PoolingConfig,
    normalize: bool,
    do_lower_case: bool,
    notice: Option<String>,
}

impl SentenceEmbeddings {
    /// Loads a directory or hub id.
    pub fn from_pretrained(model: &str) -> Result<Self> {
        Self::from_pretrained_with(model, &LoadOptions::default())
    }

    /// As [`SentenceEmbeddings::from_pretrained`], with options (e.g. `dtype`).
    pub fn from_pretrained_with(model: &str, opts: &LoadOptions) -> Result<Self> {
        let dir = crate::hub::resolve(model, crate::hub::Need::Model)?;
        Self::from_dir_with(&dir, opts)
    }

    /// Loads a sentence-transformers directory, or a plain BERT directory (mean pooling).
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        Self::from_dir_with(dir, &LoadOptions::default())
    }

    /// As [`SentenceEmbeddings::from_dir`], with options (e.g. `dtype`).
    pub fn from_dir_with(dir: impl AsRef<Path>, opts: &LoadOptions) -> Result<Self> {
        let dir = dir.as_ref();
        let model = BertModel::from_dir_with(dir, opts)?;
        let mut tokenizer = BertTokenizer::from_dir(dir)?;
        let modules_path = dir.join("modules.json");
        let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| Error::io(p, e));
        let json_err = |p: &Path| {
            let p = p.to_path_buf();
            move |source| Error::Json { path: p, source }
        };
        let (pooling, normalize, notice) = if modules_path.is_file() {
            let modules: Vec<Module> =
                serde_json::from_str(&read(&modules_path)?).map_err(json_err(&modules_path))?;
            let mut pooling = None;
            let mut normalize = false;
            for m in &modules {
                match m.kind.rsplit('.').next().unwrap_or("") {
                    "Transformer" if m.path.is_empty() => {}
                    "Pooling" => {
                        let p = dir.join(&m.path).join("config.json");
                        pooling = Some(PoolingConfig::from_json_str(&read(&p)?, &p)?);
                    }
                    "Normalize" => normalize = true,
                    _ => {
                        return Err(Error::Config(format!(
                            "{}: module `{}` (path `{}`) is not supported (Transformer at the \
                             model root, Pooling, Normalize)",
                            modules_path.display(),
                            m.kind,
                            m.path
                        )))
                    }
                }
            }
            let pooling = pooling.ok_or_else(|| {
                Error::Config(format!(
                    "{}: no Pooling module: token embeddings only are not supported",
                    modules_path.display()
                ))
            })?;
            (pooling, normalize, None)
        } else {
            let notice = format!(
                "{}: no modules.json, not a sentence-transformers model: mean pooling over \
                 last_hidden_state, no normalization (what sentence-transformers does for a plain \
                 transformers model)",
                dir.display()
            );
            (PoolingConfig::default(), false, Some(notice))
        };
        let h = model.config().hidden_size;
        if let Some(d) = pooling.embedding_dimension {
            if d != h {
                return Err(Error::Config(format!(
                    "{}: pooling embedding dimension {d} differs from the model's hidden_size {h}",
                    dir.display()
                )));
            }
        }
        let st_config = dir.join("sentence_bert_config.json");
        let st: SentenceBertConfig = if st_config.is_file() {
            serde_json::from_str(&read(&st_config)?).map_err(json_err(&st_config))?
        } else {
            SentenceBertConfig::default()
        };
        // sentence-transformers' Transformer module: max_seq_length from sentence_bert_config.json,
        // else min(max_input_length, tokenizer.model_max_length).
        let max_len = st.max_seq_length.unwrap_or_else(|| {
            tokenizer
                .max_length()
                .min(model.config().max_input_length())
        });
        tokenizer = tokenizer.with_max_length(max_len);
        Ok(SentenceEmbeddings {
            tokenizer,
            model,
            pooling,
            normalize,
            do_lower_case: st.do_lower_case,
            notice,
        })
    }

    /// Embeds `texts`: (len, M·H) float32, as `SentenceTransformer(dir).encode(texts)`.
    pub fn encode(&self, texts: &[&str], opts: &EncodeOptions) -> Result<Array2<f32>> {
        let width = self.dimension();
        let mut out = Array2::zeros((texts.len(), width));
        for (k, chunk) in texts.chunks(opts.batch_size.max(1)).enumerate() {
            let lowered: Vec<String>;
            let chunk: Vec<&str> = if self.do_lower_case {
                lowered = chunk.iter().map(|t| t.to_lowercase()).collect();
                lowered.iter().map(String::as_str).collect()
            } else {
                chunk.to_vec()
            };
            let emb = self.embed(&self.tokenizer.encode_batch(&chunk)?)?;
            let start = k * opts.batch_size.max(1);
            out.slice_mut(ndarray::s![start..start + chunk.len(), ..])
                .assign(&emb);
        }
        Ok(out)
    }

    /// Embeds a padded batch made by [`tokenizer`](Self::tokenizer) (from texts lowercased first
    /// when [`lowercases`](Self::lowercases)): encoder, pooling, normalization. (B, M·H).
    pub fn embed(&self, inputs: &BertInputs) -> Result<Array2<f32>> {
        let hidden = self
            .model
            .forward(inputs, &ForwardOptions::default())?
            .last_hidden_state;
        let mut emb = pool(&hidden, &inputs.attention_mask, &self.pooling.modes);
        if self.normalize {
            normalize(&mut emb);
        }
        Ok(emb)
    }

    /// Whether texts are lowercased before tokenization (`do_lower_case` of
    /// `sentence_bert_config.json`).
    pub fn lowercases(&self) -> bool {
        self.do_lower_case
    }

    /// Length of one embedding: hidden size times the number of pooling modes.
    pub fn dimension(&self) -> usize {
        self.pooling.modes.len() * self.model.config().hidden_size
    }

    pub fn pooling(&self) -> &PoolingConfig {
        &self.pooling
    }

    /// Whether embeddings are L2-normalized (a `Normalize` module).
    pub fn normalizes(&self) -> bool {
        self.normalize
    }

    /// Tokens per text after truncation (`max_seq_length`).
    pub fn max_seq_length(&self) -> usize {
        self.tokenizer.max_length()
    }

    /// Set when the directory is not a sentence-transformers model and defaults were used.
    pub fn notice(&self) -> Option<&str> {
        self.notice.as_deref()
    }

    pub fn model(&self) -> &BertModel {
        &self.model
    }

    pub fn tokenizer(&self) -> &BertTokenizer {
        &self.tokenizer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn pooling_config_both_formats() {
        let p = Path::new("1_Pooling/config.json");
        let c = PoolingConfig::from_json_str(
            r#"{"word_embedding_dimension": 4, "pooling_mode_cls_token": false,
                "pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": true}"#,
            p,
        )
        .unwrap();
        // Legacy booleans concatenate in upstream order: max before mean.
        assert_eq!(c.modes, vec![PoolingMode::Max, PoolingMode::Mean]);
        assert_eq!(c.embedding_dimension, Some(4));
        let c = PoolingConfig::from_json_str(r#"{"pooling_mode_mean_tokens": false}"#, p).unwrap();
        assert_eq!(c.modes, vec![PoolingMode::Mean]);
        let c = PoolingConfig::from_json_str(
            r#"{"embedding_dimension": 8, "pooling_mode": ["lasttoken", "cls"]}"#,
            p,
        )
        .unwrap();
        assert_eq!(c.modes, vec![PoolingMode::LastToken, PoolingMode::Cls]);
        let e = PoolingConfig::from_json_str(r#"{"pooling_mode": "median"}"#, p).unwrap_err();
        assert!(e.to_string().contains("median"), "{e}");
    }

    #[test]
    fn every_mode_on_a_padded_batch() {
        // B = 2, T = 3, H = 2; row 1 has one real token at position 1 (left padding).
        let hidden = Array3::from_shape_vec(
            (2, 3, 2),
            vec![1., 2., 3., -4., 5., 0., 9., 9., 2., 6., 9., 9.],
        )
        .unwrap();
        let mask = array![[1, 1, 1], [0, 1, 0]];
        let all = [
            PoolingMode::Cls,
            PoolingMode::Max,
            PoolingMode::Mean,
            PoolingMode::MeanSqrtLen,
            PoolingMode::WeightedMean,
            PoolingMode::LastToken,
        ];
        let p = pool(&hidden, &mask, &all);
        let s3 = 3f32.sqrt();
        let want0 = [
            1.,
            2.,
            5.,
            2.,
            3.,
            -2. / 3.,
            9. / s3,
            -2. / s3,
            22. / 6.,
            -6. / 6.,
            5.,
            0.,
        ];
        let want1 = [2., 6., 2., 6., 2., 6., 2., 6., 2., 6., 2., 6.];
        for (k, (&a, &b)) in want0.iter().zip(&want1).enumerate() {
            assert!(
                (p[[0, k]] - a).abs() < 1e-6,
                "row 0 [{k}]: {} vs {a}",
                p[[0, k]]
            );
            assert!(
                (p[[1, k]] - b).abs() < 1e-6,
                "row 1 [{k}]: {} vs {b}",
                p[[1, k]]
            );
        }
        let mut n = array![[3.0f32, 4.0], [0.0, 0.0]];
        normalize(&mut n);
        assert_eq!(n, array![[0.6, 0.8], [0.0, 0.0]]);
    }
}
