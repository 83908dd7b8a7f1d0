//! `BertModel`: embeddings, encoder and pooler over packed tokens, with transformers' four outputs.
//!
//! One file per transformers module, named as in `modeling_bert.py`: [`embeddings`],
//! [`self_attention`], [`self_output`], [`attention`], [`intermediate`], [`output`], [`layer`],
//! [`encoder`], [`pooler`].

mod attention;
mod embeddings;
mod encoder;
mod intermediate;
mod layer;
mod layer_norm;
mod linear;
mod output;
mod pooler;
mod self_attention;
mod self_output;

use bert_kernels::rng::SplitMix64;
use std::cell::Cell;
use std::path::Path;
use std::sync::Mutex;

use ndarray::{Array2, Array3, Array4};

use crate::architecture::Architecture;
use crate::packing::Packing;
use crate::profile::{self, Phase};
use crate::weights::{Checkpoint, F32Tensor};
use crate::{BertConfig, BertInputs, Dtype, Error, LoadOptions, Result};

use embeddings::BertEmbeddings;
use encoder::{BertEncoder, EncoderTrace};
pub(crate) use linear::ModelLinear;
use pooler::BertPooler;

/// Where module loaders get their f32 tensors, by bare `BertModel` key.
pub(crate) trait WeightSource {
    /// The values of tensor `name`, which must have exactly `shape`.
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>>;
    /// Like `get`, but may borrow the values from a memory map (for large gather tables).
    fn get_mapped(&self, name: &str, shape: &[usize]) -> Result<F32Tensor> {
        self.get(name, shape).map(F32Tensor::Owned)
    }
    /// Whether tensor `name` exists (optional parts such as the pooler).
    fn contains(&self, name: &str) -> bool;
    /// Builds a Linear layer from `weight` (out, in) and `bias` (out) in the dtype being loaded.
    fn linear(&self, weight: Vec<f32>, bias: Vec<f32>, out: usize, inp: usize) -> ModelLinear {
        ModelLinear::new(weight, bias, out, inp, Dtype::F32)
    }
    /// The dtype being loaded.
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
}

/// A [`WeightSource`] that builds its Linear layers in `dtype` and counts the bytes they hold.
struct Typed<'a> {
    inner: &'a dyn WeightSource,
    dtype: Dtype,
    linear_bytes: Cell<usize>,
}

impl WeightSource for Typed<'_> {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        self.inner.get(name, shape)
    }
    fn get_mapped(&self, name: &str, shape: &[usize]) -> Result<F32Tensor> {
        self.inner.get_mapped(name, shape)
    }
    fn contains(&self, name: &str) -> bool {
        self.inner.contains(name)
    }
    fn linear(&self, weight: Vec<f32>, bias: Vec<f32>, out: usize, inp: usize) -> ModelLinear {
        self.count(ModelLinear::new(weight, bias, out, inp, self.dtype))
    }
    fn dtype(&self) -> Dtype {
        self.dtype
    }
}

impl Typed<'_> {
    fn count(&self, l: ModelLinear) -> ModelLinear {
        self.linear_bytes
            .set(self.linear_bytes.get() + l.memory_bytes());
        l
    }
}

impl WeightSource for Checkpoint {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        Checkpoint::get(self, name, shape)
    }
    fn get_mapped(&self, name: &str, shape: &[usize]) -> Result<F32Tensor> {
        Checkpoint::get_mapped(self, name, shape)
    }
    fn contains(&self, name: &str) -> bool {
        Checkpoint::contains(self, name)
    }
}

/// Seeded random weights of the right shapes, for benchmarks: LayerNorm weights 1, biases 0,
/// everything else uniform in [-0.05, 0.05).
struct RandomWeights {
    seed: u64,
}

impl WeightSource for RandomWeights {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let n: usize = shape.iter().product();
        if name.ends_with("LayerNorm.weight") {
            return Ok(vec![1.0; n]);
        }
        if name.ends_with(".bias") {
            return Ok(vec![0.0; n]);
        }
        // splitmix64 seeded by the tensor name, so each tensor is independent of load order.
        let mut rng = SplitMix64(
            name.bytes()
                .fold(self.seed ^ bert_kernels::rng::GOLDEN, |h, b| {
                    (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
                }),
        );
        Ok((0..n)
            .map(|_| ((rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1)
            .collect())
    }
    fn contains(&self, _name: &str) -> bool {
        true
    }
}

/// Loads `{prefix}.weight` (out, in) and `{prefix}.bias` (out) into a Linear of the dtype being
/// loaded.
pub(crate) fn linear(
    w: &dyn WeightSource,
    prefix: &str,
    out_features: usize,
    in_features: usize,
) -> Result<ModelLinear> {
    let weight = w.get(&format!("{prefix}.weight"), &[out_features, in_features])?;
    let bias = w.get(&format!("{prefix}.bias"), &[out_features])?;
    Ok(w.linear(weight, bias, out_features, in_features))
}

/// Scratch activations of one forward pass, sized for its N packed tokens. The model keeps one
/// between calls so repeated forwards do not fault in fresh pages every time.
#[derive(Default)]
pub(crate) struct Workspace {
    /// (N, 3H)
    qkv: Vec<f32>,
    /// (N, H) attention context
    ctx: Vec<f32>,
    /// (N, H) attention block output
    attn_out: Vec<f32>,
    /// (N, I)
    inter: Vec<f32>,
}

impl Workspace {
    fn resize(&mut self, n: usize, c: &BertConfig) {
        let h = c.hidden_size;
        for (buf, len) in [
            (&mut self.qkv, n * 3 * h),
            (&mut self.ctx, n * h),
            (&mut self.attn_out, n * h),
            (&mut self.inter, n * c.intermediate_size),
        ] {
            // Give back memory after an outsized batch rather than holding it forever.
            if buf.capacity() > 4 * len.max(1 << 20) {
                *buf = Vec::new();
            }
            buf.resize(len, 0.0);
        }
    }
}

/// What a forward pass returns besides `last_hidden_state` and `pooler_output`, and optional inputs.
/// `Default` turns everything off.
#[derive(Clone, Debug, Default)]
pub struct ForwardOptions {
    /// Return the embeddings output and every layer's output (`hidden_states`).
    pub output_hidden_states: bool,
    /// Return every layer's attention probabilities (`attentions`).
    pub output_attentions: bool,
    /// (L, NH): multiplies each layer's attention probabilities per head after softmax, as
    /// transformers 4.x `head_mask` does (1 keeps a head, 0 silences it).
    pub head_mask: Option<Array2<f32>>,
    /// (B, T) position of each token in the position-embedding table; default `0..T` in every row.
    pub position_ids: Option<Array2<i64>>,
}

/// The outputs of [`BertModel::forward`], shaped as transformers returns them.
///
/// Positions where `attention_mask` is 0 hold zeros in every output (transformers computes values
/// there that nothing should use); attention columns of padded keys are 0 in both.
#[derive(Clone, Debug)]
pub struct BertModelOutput {
    /// (B, T, H): the last layer's state of every token.
    pub last_hidden_state: Array3<f32>,
    /// (B, H): the first real token's last state through Linear + Tanh; `None` when the checkpoint
    /// has no pooler. A sequence without any real token gets zeros.
    pub pooler_output: Option<Array2<f32>>,
    /// L + 1 tensors (B, T, H): the embeddings output, then each layer's output.
    pub hidden_states: Option<Vec<Array3<f32>>>,
    /// L tensors (B, NH, T, T): each layer's attention probabilities after softmax and `head_mask`.
    pub attentions: Option<Vec<Array4<f32>>>,
}

/// transformers' `BertModel`: embeddings, encoder, optional pooler.
pub struct BertModel {
    config: BertConfig,
    embeddings: BertEmbeddings,
    encoder: BertEncoder,
    pooler: Option<BertPooler>,
    dtype: Dtype,
    /// Bytes held by the Linear layers (encoder and pooler).
    linear_bytes: usize,
    /// Reused by `forward`; a concurrent call that finds it busy uses a fresh one.
    workspace: Mutex<Workspace>,
}

impl BertModel {
    /// Loads a model from a directory or a Hugging Face hub id (see [`crate::hub`]).
    pub fn from_pretrained(model: &str) -> Result<Self> {
        Self::from_pretrained_with(model, &LoadOptions::default())
    }

    /// As [`BertModel::from_pretrained`], with options (e.g. `dtype`).
    pub fn from_pretrained_with(model: &str, opts: &LoadOptions) -> Result<Self> {
        let dir = crate::hub::resolve(model, crate::hub::Need::Model)?;
        Self::from_dir_with(&dir, opts)
    }

    /// Loads `config.json` and the weights of a model directory.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        Self::from_dir_with(dir, &LoadOptions::default())
    }

    /// As [`BertModel::from_dir`], with options (e.g. `dtype`).
    pub fn from_dir_with(dir: impl AsRef<Path>, opts: &LoadOptions) -> Result<Self> {
        let (config, checkpoint) = open_dir(dir.as_ref())?;
        Self::load(config, &checkpoint, opts)
    }

    /// The encoder of a checkpoint already opened (a `BertFor*` head loads its own tensors from
    /// the same `checkpoint`).
    pub(crate) fn from_checkpoint(
        config: BertConfig,
        checkpoint: &Checkpoint,
        opts: &LoadOptions,
    ) -> Result<Self> {
        Self::load(config, checkpoint, opts)
    }

    /// A model of the given shape with seeded random weights (for benchmarks).
    pub fn random(config: BertConfig, seed: u64) -> Result<Self> {
        Self::random_with(config, seed, &LoadOptions::default())
    }

    /// As [`BertModel::random`], with options (e.g. `dtype`).
    pub fn random_with(config: BertConfig, seed: u64, opts: &LoadOptions) -> Result<Self> {
        config.validate()?;
        Self::load(config, &RandomWeights { seed }, opts)
    }

    pub(crate) fn load(
        config: BertConfig,
        w: &dyn WeightSource,
        opts: &LoadOptions,
    ) -> Result<Self> {
        let w = &Typed {
            inner: w,
            dtype: opts.dtype,
            linear_bytes: Cell::new(0),
        };
        let embeddings = BertEmbeddings::load(w, &config)?;
        let encoder = BertEncoder::load(w, &config)?;
        let pooler = if w.contains("pooler.dense.weight") || w.contains("pooler.dense.bias") {
            Some(BertPooler::load(w, &config)?)
        } else {
            None
        };
        Ok(BertModel {
            config,
            embeddings,
            encoder,
            pooler,
            dtype: opts.dtype,
            linear_bytes: w.linear_bytes.get(),
            workspace: Mutex::new(Workspace::default()),
        })
    }

    /// The dtype the encoder's Linear layers compute in.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// Bytes of weights this model holds in its own memory: the Linear layers (packed, in their
    /// dtype) and any embedding table copied out of the checkpoint (tables used in place in its
    /// memory map are not counted; see [`BertModel::mapped_bytes`]). LayerNorm parameters are
    /// left out (2 H floats each).
    pub fn memory_bytes(&self) -> usize {
        self.linear_bytes + self.embeddings.owned_bytes()
    }

    /// Bytes of embedding tables read in place from the checkpoint's memory map (pages the OS
    /// loads as tokens need them and may drop again).
    pub fn mapped_bytes(&self) -> usize {
        self.embeddings.mapped_bytes()
    }

    /// The model's configuration.
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// Replaces the label fields of the configuration (a fresh task head's labels).
    pub(crate) fn config_mut(&mut self) -> &mut BertConfig {
        &mut self.config
    }

    /// (V, H) the word-embedding table, which the masked-LM decoder shares.
    pub(crate) fn word_embeddings(&self) -> &[f32] {
        self.embeddings.word_embeddings()
    }

    /// Whether the checkpoint has a pooler (`pooler_output` is `Some`).
    pub fn has_pooler(&self) -> bool {
        self.pooler.is_some()
    }

    /// Runs the model. See [`BertModelOutput`] for what comes back.
    pub fn forward(&self, inputs: &BertInputs, opts: &ForwardOptions) -> Result<BertModelOutput> {
        self.validate(inputs, opts)?;
        // Run the whole pass as one parallel region of rayon's pool: from a thread outside it, each
        // of the ~7 parallel kernels per layer would be handed to the pool and waited for (a futex
        // wake-up and sleep per kernel, 0.1-0.3 ms per forward of a short sentence); inside it the
        // other workers spin between kernels instead of a fork-join per kernel (bert_kernels::team).
        bert_kernels::team::region(|| self.forward_in_pool(inputs, opts))
    }

    fn forward_in_pool(
        &self,
        inputs: &BertInputs,
        opts: &ForwardOptions,
    ) -> Result<BertModelOutput> {
        let c = &self.config;
        let (h, nh) = (c.hidden_size, c.num_attention_heads);
        let (packing, ids, types, positions) = profile::timed(Phase::Elementwise, || {
            let packing = Packing::from_mask(&inputs.attention_mask);
            let ids = packing.gather(&inputs.input_ids);
            let types = packing.gather(&inputs.token_type_ids);
            let positions = positions(c, inputs, opts, &packing);
            (packing, ids, types, positions)
        });
        let head_mask = opts
            .head_mask
            .as_ref()
            .map(|m| m.iter().copied().collect::<Vec<f32>>());

        // (N, H)
        let mut hidden = vec![0.0f32; packing.len() * h];
        self.embeddings
            .forward(&ids, &types, &positions, &mut hidden);
        let mut guard = self.workspace.try_lock();
        let mut fresh = Workspace::default();
        let ws = match guard.as_deref_mut() {
            Ok(ws) => ws,
            Err(_) => &mut fresh,
        };
        ws.resize(packing.len(), c);
        let mut trace = EncoderTrace {
            hidden_states: opts.output_hidden_states.then(Vec::new),
            attentions: opts.output_attentions.then(Vec::new),
        };
        self.encoder.forward(
            &mut hidden,
            &packing.cu_seqlens,
            head_mask.as_deref(),
            ws,
            &mut trace,
        );

        let pooler_output = self
            .pooler
            .as_ref()
            .map(|p| self.pool(p, &packing, &hidden));
        Ok(profile::timed(Phase::Elementwise, || BertModelOutput {
            last_hidden_state: packing.unpack_rows(&hidden, h),
            pooler_output,
            hidden_states: trace
                .hidden_states
                .map(|hs| hs.iter().map(|x| packing.unpack_rows(x, h)).collect()),
            attentions: trace
                .attentions
                .map(|all| all.iter().map(|p| packing.unpack_probs(p, nh)).collect()),
        }))
    }

    /// Pooler over each sequence's first real token; rows without tokens stay zero.
    fn pool(&self, pooler: &BertPooler, packing: &Packing, hidden: &[f32]) -> Array2<f32> {
        let h = self.config.hidden_size;
        let b = packing.batch;
        let nonempty: Vec<usize> = (0..b)
            .filter(|&s| packing.cu_seqlens[s + 1] > packing.cu_seqlens[s])
            .collect();
        let mut first = Vec::with_capacity(nonempty.len() * h);
        for &s in &nonempty {
            let i = packing.cu_seqlens[s];
            first.extend_from_slice(&hidden[i * h..(i + 1) * h]);
        }
        let mut pooled = vec![0.0f32; nonempty.len() * h];
        pooler.forward(&first, &mut pooled);
        let mut out = Array2::zeros((b, h));
        for (k, &s) in nonempty.iter().enumerate() {
            out.row_mut(s)
                .as_slice_mut()
                .expect("rows of a standard-layout array are contiguous")
                .copy_from_slice(&pooled[k * h..(k + 1) * h]);
        }
        out
    }

    fn validate(&self, inputs: &BertInputs, opts: &ForwardOptions) -> Result<()> {
        validate(&self.config, inputs, opts)
    }
}

/// The packed position id of every token: the caller's `position_ids`, else the family's rule
/// ([`Architecture::default_positions`]), else `0..T`.
pub(crate) fn positions(
    c: &BertConfig,
    inputs: &BertInputs,
    opts: &ForwardOptions,
    packing: &Packing,
) -> Vec<i64> {
    match &opts.position_ids {
        Some(p) => packing.gather(p),
        None => match Architecture::of(c).default_positions(c, &inputs.input_ids) {
            Some(p) => packing.gather(&p),
            None => packing.cols.iter().map(|&t| t as i64).collect(),
        },
    }
}

/// Checks shapes and value ranges of everything a forward pass of a model with config `c` reads.
pub(crate) fn validate(c: &BertConfig, inputs: &BertInputs, opts: &ForwardOptions) -> Result<()> {
    let dim = inputs.input_ids.dim();
    let (b, t) = dim;
    if b == 0 || t == 0 {
        return Err(Error::Input(format!(
            "empty batch: input_ids has shape ({b}, {t})"
        )));
    }
    for (name, a) in [
        ("attention_mask", &inputs.attention_mask),
        ("token_type_ids", &inputs.token_type_ids),
    ] {
        if a.dim() != dim {
            return Err(Error::Input(format!(
                "{name} has shape {:?}, input_ids has shape {dim:?}",
                a.dim()
            )));
        }
    }
    check_range("input_ids", &inputs.input_ids, c.vocab_size, "vocab_size")?;
    let arch = Architecture::of(c);
    if !arch.token_types {
        if let Some(((i, j), &v)) = inputs.token_type_ids.indexed_iter().find(|(_, &v)| v != 0) {
            return Err(Error::Input(format!(
                "token_type_ids[{i}, {j}] = {v}: a {} model takes no token_type_ids",
                arch.model_type
            )));
        }
    }
    check_range(
        "token_type_ids",
        &inputs.token_type_ids,
        c.type_vocab_size,
        "type_vocab_size",
    )?;
    if let Some(((i, j), &v)) = inputs
        .attention_mask
        .indexed_iter()
        .find(|(_, &v)| v != 0 && v != 1)
    {
        return Err(Error::Input(format!(
            "attention_mask[{i}, {j}] = {v}; only 0 (padding) and 1 (token) are allowed"
        )));
    }
    match &opts.position_ids {
        Some(p) => {
            if p.dim() != dim {
                return Err(Error::Input(format!(
                    "position_ids has shape {:?}, input_ids has shape {dim:?}",
                    p.dim()
                )));
            }
            check_range(
                "position_ids",
                p,
                c.max_position_embeddings,
                "max_position_embeddings",
            )?;
        }
        None if t > arch.max_len(c) => {
            return Err(Error::Input(format!(
                "sequence length {t} exceeds the {} positions of this model \
                 (max_position_embeddings {}); truncate the input (e.g. \
                 BertTokenizer::with_max_length)",
                arch.max_len(c),
                c.max_position_embeddings
            )));
        }
        None => {}
    }
    if let Some(m) = &opts.head_mask {
        let want = (c.num_hidden_layers, c.num_attention_heads);
        if m.dim() != want {
            return Err(Error::Input(format!(
                "head_mask has shape {:?}, expected (num_hidden_layers, num_attention_heads) = {want:?}",
                m.dim()
            )));
        }
        if let Some(v) = m.iter().find(|v| !v.is_finite()) {
            return Err(Error::Input(format!("head_mask holds {v}")));
        }
    }
    Ok(())
}

/// `config.json` and the weights of a model directory.
pub(crate) fn open_dir(dir: &Path) -> Result<(BertConfig, Checkpoint)> {
    if !dir.is_dir() {
        return Err(Error::io(
            dir,
            std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
        ));
    }
    let config = BertConfig::from_file(dir.join("config.json"))?;
    let checkpoint = Checkpoint::from_dir(dir, Architecture::of(&config))?;
    Ok((config, checkpoint))
}

/// Every value of `a` must be in `0..limit`.
fn check_range(name: &str, a: &Array2<i64>, limit: usize, limit_name: &str) -> Result<()> {
    match a
        .indexed_iter()
        .find(|(_, &v)| v < 0 || v as u64 >= limit as u64)
    {
        Some(((i, j), &v)) => Err(Error::Input(format!(
            "{name}[{i}, {j}] = {v} is out of range: the model's {limit_name} is {limit}"
        ))),
        None => Ok(()),
    }
}
