//! `BertModel` in training: the forward keeps what the backward needs (a [`Tape`]), the backward
//! takes gradients with respect to `last_hidden_state` and/or `pooler_output` and accumulates the
//! gradient of every encoder parameter.
//!
//! Same data flow as inference (packed real tokens, no work on padding), on the unpacked weights of a
//! [`ParamSet`] that the optimizer updates between steps. Module by module, as `modeling_bert.py`:
//! embeddings -> L x (self-attention, self-output, intermediate, output) -> pooler. Dropout sits
//! where transformers has it: after the embeddings' LayerNorm, on the attention probabilities, and
//! after the two dense layers of each block before their residual LayerNorm (DistilBERT has none
//! after the attention's output layer).
//!
//! The family variants come from [`Architecture`], as in inference: position ids, a missing
//! token-type table (DistilBERT), ELECTRA's `embeddings_project`, and the "pooler" of a sequence
//! classifier (BERT's `pooler.dense` + tanh, or the family head's dense layer and activation).

use std::ops::Range;
use std::sync::Arc;

use ndarray::{Array2, Array3};

use bert_kernels::train::attention::{attention_backward, attention_forward, Heads};
use bert_kernels::train::embedding::{embedding_backward, embedding_forward, Tables};
use bert_kernels::train::gemm::{
    linear_backward_input, linear_backward_params, linear_forward, Post, Precision,
};
use bert_kernels::train::layernorm::{layer_norm_backward, layer_norm_forward};
use bert_kernels::train::{activation::activation_backward, Dropout};
use bert_kernels::Activation;

use super::params::ParamSet;
use super::pool::BufferPool;
use crate::architecture::{Architecture, HeadAct};
use crate::model::WeightSource;
use crate::packing::Packing;
use crate::{BertConfig, BertInputs, BertModelOutput, Error, ForwardOptions, Result};

/// Dropout on (training) or off (evaluation), as `model.train()` / `model.eval()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// No dropout: the forward equals inference.
    Eval,
    /// Dropout with the config's probabilities; `seed` picks the masks (use a new one every step).
    Train { seed: u64 },
}

/// Ranges of one tensor pair in the [`ParamSet`].
#[derive(Clone, Debug)]
struct Dense {
    w: Range<usize>,
    b: Range<usize>,
}

#[derive(Clone, Debug)]
struct LayerParams {
    /// query, key, value weights stacked (3H, H), biases (3H).
    qkv: Dense,
    attn_out: Dense,
    ln1: Dense,
    inter: Dense,
    out: Dense,
    ln2: Dense,
}

/// What pools a sequence for a classifier: a dense layer on its first token and an activation.
#[derive(Clone, Debug)]
pub(crate) struct PoolerSpec {
    /// The dense layer's parameter name without `.weight` / `.bias` (`bert.pooler.dense`,
    /// `classifier.dense`, `pre_classifier`).
    pub name: String,
    /// Where its weights are read from (canonical checkpoint key, without `.weight`).
    pub source: String,
    pub act: HeadAct,
    /// Dropout on the first token before the dense layer (`RobertaClassificationHead`).
    pub dropout_before: bool,
}

/// The encoder's place in a [`ParamSet`]; the values live in the set.
#[derive(Clone, Debug)]
pub struct Encoder {
    config: BertConfig,
    arch: &'static Architecture,
    word: Range<usize>,
    position: Range<usize>,
    /// `None`: no token types (DistilBERT); a zero row stands in.
    token_type: Option<Range<usize>>,
    emb_ln: Dense,
    /// ELECTRA's `embeddings_project` (H, E), when the tables are narrower than H.
    project: Option<Dense>,
    layers: Vec<LayerParams>,
    pooler: Option<(Dense, HeadAct, bool)>,
    act: Activation,
    /// The arithmetic of every Linear product, forward and backward: f32, or bf16 operands with
    /// f32 sums (mixed precision; weights, gradients and the rest f32 either way).
    prec: Precision,
    /// Activation buffers reused across steps (shared by clones and by the tapes).
    pool: Arc<BufferPool>,
}

/// What [`Encoder::forward`] saves for [`Encoder::backward`].
pub struct Tape {
    pool: Arc<BufferPool>,
    pub(crate) packing: Packing,
    ids: Vec<i64>,
    types: Vec<i64>,
    positions: Vec<i64>,
    head_mask: Option<Vec<f32>>,
    mode: Mode,
    /// (N, E) embedding sum before its LayerNorm, and the LayerNorm's statistics.
    emb_sum: Vec<f32>,
    emb_mean: Vec<f32>,
    emb_rstd: Vec<f32>,
    /// (N, E) the input of `embeddings_project` (after dropout), when there is one.
    emb_out: Vec<f32>,
    layers: Vec<LayerTape>,
    /// (N, H) the last layer's output (packed `last_hidden_state`).
    pub(crate) hidden: Vec<f32>,
    /// Sequences with at least one token, their first-token rows (S, H) (after dropout, when
    /// the head has one there) and pooled output (S, H).
    pub(crate) pooled: Option<(Vec<usize>, Vec<f32>, Vec<f32>)>,
    /// (S, H) the pooler's pre-activation (its backward for GELU needs it).
    pooled_pre: Vec<f32>,
}

impl Drop for Tape {
    /// Hands the buffers back to the encoder's pool for the next step.
    fn drop(&mut self) {
        let pool = &self.pool;
        for b in [
            &mut self.emb_sum,
            &mut self.emb_mean,
            &mut self.emb_rstd,
            &mut self.emb_out,
            &mut self.hidden,
            &mut self.pooled_pre,
        ] {
            pool.give(std::mem::take(b));
        }
        for l in self.layers.drain(..) {
            for b in [
                l.input, l.qkv, l.probs, l.ctx, l.ln1_in, l.ln1_mean, l.ln1_rstd, l.attn, l.z, l.u,
                l.ln2_in, l.ln2_mean, l.ln2_rstd,
            ] {
                pool.give(b);
            }
        }
        if let Some((_, first, pooled)) = self.pooled.take() {
            pool.give(first);
            pool.give(pooled);
        }
    }
}

struct LayerTape {
    /// (N, H) the layer's input.
    input: Vec<f32>,
    /// (N, 3H)
    qkv: Vec<f32>,
    /// Softmax outputs, per sequence (NH, T_s, T_s).
    probs: Vec<f32>,
    /// (N, H) attention context.
    ctx: Vec<f32>,
    /// (N, H) input of the attention block's LayerNorm, and its statistics.
    ln1_in: Vec<f32>,
    ln1_mean: Vec<f32>,
    ln1_rstd: Vec<f32>,
    /// (N, H) attention block output.
    attn: Vec<f32>,
    /// (N, I) intermediate pre-activation and activation.
    z: Vec<f32>,
    u: Vec<f32>,
    /// (N, H) input of the output LayerNorm, and its statistics.
    ln2_in: Vec<f32>,
    ln2_mean: Vec<f32>,
    ln2_rstd: Vec<f32>,
}

/// Dropout streams: one per (layer, site), so no two sites share a mask.
fn stream(layer: usize, site: u64) -> u64 {
    (layer as u64 + 1) * 16 + site
}
/// The embeddings' dropout stream (below every layer's).
const EMB_STREAM: u64 = 0;
const SITE_ATTN_PROBS: u64 = 1;
const SITE_ATTN_OUT: u64 = 2;
const SITE_OUT: u64 = 3;
/// The dropout stream of a classifier's dropout before its dense layer.
const POOLER_STREAM: u64 = 5;

impl Encoder {
    /// Adds the encoder's tensors from `w` to `params` under `prefix` + their canonical
    /// `BertModel` names (`prefix` is the family's `bert.` / `roberta.` ... inside a task model);
    /// `pooler` adds what pools a sequence.
    pub(crate) fn load(
        config: &BertConfig,
        w: &dyn WeightSource,
        params: &mut ParamSet,
        prefix: &str,
        pooler: Option<PoolerSpec>,
    ) -> Result<Self> {
        config.validate()?;
        let c = config;
        let arch = Architecture::of(c);
        let (h, i, e) = (c.hidden_size, c.intermediate_size, c.embedding_width());
        let mut pooler_params = None;
        let mut add = |name: &str, shape: &[usize]| -> Result<Range<usize>> {
            let v = w.get(name, shape)?;
            params.push(&format!("{prefix}{name}"), shape, v)
        };
        let word = add("embeddings.word_embeddings.weight", &[c.vocab_size, e])?;
        let position = add(
            "embeddings.position_embeddings.weight",
            &[c.max_position_embeddings, e],
        )?;
        let token_type = if arch.token_types {
            Some(add(
                "embeddings.token_type_embeddings.weight",
                &[c.type_vocab_size, e],
            )?)
        } else {
            None
        };
        let emb_ln = Dense {
            w: add("embeddings.LayerNorm.weight", &[e])?,
            b: add("embeddings.LayerNorm.bias", &[e])?,
        };
        let project = if e != h {
            Some(dense(&mut add, "embeddings_project", h, e)?)
        } else {
            None
        };
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for l in 0..c.num_hidden_layers {
            let p = format!("encoder.layer.{l}");
            // Q, K, V weights then their biases, so each triple is one contiguous (3H, H) / (3H).
            let mut qkv_w = None;
            for part in ["query", "key", "value"] {
                let r = add(&format!("{p}.attention.self.{part}.weight"), &[h, h])?;
                qkv_w = Some(qkv_w.map_or(r.clone(), |q: Range<usize>| q.start..r.end));
            }
            let mut qkv_b = None;
            for part in ["query", "key", "value"] {
                let r = add(&format!("{p}.attention.self.{part}.bias"), &[h])?;
                qkv_b = Some(qkv_b.map_or(r.clone(), |q: Range<usize>| q.start..r.end));
            }
            let qkv = Dense {
                w: qkv_w.expect("three parts"),
                b: qkv_b.expect("three parts"),
            };
            let attn_out = dense(&mut add, &format!("{p}.attention.output.dense"), h, h)?;
            let ln1 = Dense {
                w: add(&format!("{p}.attention.output.LayerNorm.weight"), &[h])?,
                b: add(&format!("{p}.attention.output.LayerNorm.bias"), &[h])?,
            };
            let inter = dense(&mut add, &format!("{p}.intermediate.dense"), i, h)?;
            let out = dense(&mut add, &format!("{p}.output.dense"), h, i)?;
            let ln2 = Dense {
                w: add(&format!("{p}.output.LayerNorm.weight"), &[h])?,
                b: add(&format!("{p}.output.LayerNorm.bias"), &[h])?,
            };
            layers.push(LayerParams {
                qkv,
                attn_out,
                ln1,
                inter,
                out,
                ln2,
            });
        }
        if let Some(spec) = pooler {
            let mut get = |part: &str, shape: &[usize]| -> Result<Range<usize>> {
                let v = w.get(&format!("{}.{part}", spec.source), shape)?;
                params.push(&format!("{}.{part}", spec.name), shape, v)
            };
            let d = Dense {
                w: get("weight", &[h, h])?,
                b: get("bias", &[h])?,
            };
            pooler_params = Some((d, spec.act, spec.dropout_before));
        }
        Ok(Encoder {
            pool: Arc::default(),
            config: config.clone(),
            arch,
            word,
            position,
            token_type,
            emb_ln,
            project,
            layers,
            pooler: pooler_params,
            act: config.hidden_act.kernel(),
            prec: Precision::F32,
        })
    }

    /// The encoder (and the pooler, when asked for and present) of a directory or hub id, for a
    /// user's own layers on top: the parameters come back under their `BertModel` names.
    pub fn from_pretrained(model: &str, pooler: bool) -> Result<(Self, ParamSet)> {
        let dir = crate::hub::resolve(model, crate::hub::Need::Model)?;
        Self::from_dir(&dir, pooler)
    }

    /// As [`Encoder::from_pretrained`], from a local directory.
    pub fn from_dir(dir: &std::path::Path, pooler: bool) -> Result<(Self, ParamSet)> {
        let (config, checkpoint) = crate::model::open_dir(dir)?;
        let pooler = (pooler && checkpoint.contains("pooler.dense.weight")).then(|| PoolerSpec {
            name: "pooler.dense".into(),
            source: "pooler.dense".into(),
            act: HeadAct::Tanh,
            dropout_before: false,
        });
        let mut params = ParamSet::new();
        let enc = Self::load(&config, &checkpoint, &mut params, "", pooler)?;
        Ok((enc, params))
    }

    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// Sets the arithmetic of the Linear products (forward and backward), as `torch.autocast`
    /// does around a model: [`Precision::Bf16`] rounds their operands to bf16 and sums in f32.
    pub fn set_precision(&mut self, prec: Precision) {
        self.prec = prec;
    }

    pub fn precision(&self) -> Precision {
        self.prec
    }

    /// The buffers its steps reuse.
    pub(crate) fn pool(&self) -> &BufferPool {
        &self.pool
    }

    /// Whether the encoder has a pooler (`pooler_output`).
    pub fn has_pooler(&self) -> bool {
        self.pooler.is_some()
    }

    fn dropout(&self, p: f64, mode: Mode) -> Option<Dropout> {
        match mode {
            Mode::Train { seed } if p > 0.0 => Some(Dropout { p: p as f32, seed }),
            _ => None,
        }
    }

    /// Runs the model on `p`'s weights and keeps what [`Encoder::backward`] needs.
    pub fn forward(
        &self,
        p: &ParamSet,
        inputs: &BertInputs,
        opts: &ForwardOptions,
        mode: Mode,
    ) -> Result<(BertModelOutput, Tape)> {
        if opts.output_attentions || opts.output_hidden_states {
            return Err(Error::Input(
                "training forward: output_attentions / output_hidden_states are not kept on the \
                 training path; use BertModel for them"
                    .into(),
            ));
        }
        let tape = self.forward_tape(p, inputs, opts, mode)?;
        let h = self.config.hidden_size;
        let out = BertModelOutput {
            last_hidden_state: tape.packing.unpack_rows(&tape.hidden, h),
            pooler_output: tape.pooled.as_ref().map(|(rows, _, pooled)| {
                let mut out = Array2::zeros((tape.packing.batch, h));
                for (k, &s) in rows.iter().enumerate() {
                    for j in 0..h {
                        out[[s, j]] = pooled[k * h + j];
                    }
                }
                out
            }),
            hidden_states: None,
            attentions: None,
        };
        Ok((out, tape))
    }

    /// The forward on packed tokens; the packed outputs stay in the tape.
    pub(crate) fn forward_tape(
        &self,
        p: &ParamSet,
        inputs: &BertInputs,
        opts: &ForwardOptions,
        mode: Mode,
    ) -> Result<Tape> {
        let c = &self.config;
        crate::model::validate(c, inputs, opts)?;
        let w = p.data();
        let (h, nh, i_sz) = (c.hidden_size, c.num_attention_heads, c.intermediate_size);
        let packing = Packing::from_mask(&inputs.attention_mask);
        let ids = packing.gather(&inputs.input_ids);
        let types = packing.gather(&inputs.token_type_ids);
        let positions = crate::model::positions(c, inputs, opts, &packing);
        let n = packing.len();
        let e = c.embedding_width();
        let head_mask = opts
            .head_mask
            .as_ref()
            .map(|m| m.iter().copied().collect::<Vec<f32>>());
        let hidden_drop = self.dropout(c.hidden_dropout_prob, mode);
        let attn_drop = self.dropout(c.attention_probs_dropout_prob, mode);

        let mut emb_sum = self.pool.take(n * e);
        let no_types = vec![0.0f32; e];
        embedding_forward(
            &mut emb_sum,
            Tables {
                word: &w[self.word.clone()],
                token_type: match &self.token_type {
                    Some(r) => &w[r.clone()],
                    None => &no_types,
                },
                position: &w[self.position.clone()],
                hidden: e,
            },
            &ids,
            &types,
            &positions,
        );
        let (mut emb_mean, mut emb_rstd) = (self.pool.take(n), self.pool.take(n));
        let mut emb_out = self.pool.take(n * e);
        let eps = c.layer_norm_eps as f32;
        layer_norm_forward(
            &mut emb_out,
            &mut emb_mean,
            &mut emb_rstd,
            &emb_sum,
            &w[self.emb_ln.w.clone()],
            &w[self.emb_ln.b.clone()],
            eps,
        );
        if let Some(d) = hidden_drop {
            d.apply(&mut emb_out, EMB_STREAM);
        }
        // ELECTRA: hidden = embeddings_project(emb_out); elsewhere the embeddings are the input.
        let mut hidden = match &self.project {
            Some(pr) => {
                let mut x = self.pool.take(n * h);
                linear_forward(
                    &mut x,
                    &emb_out,
                    &w[pr.w.clone()],
                    &w[pr.b.clone()],
                    (n, e, h),
                    Post::None,
                    self.prec,
                );
                x
            }
            None => std::mem::take(&mut emb_out),
        };

        let probs_len = *bert_kernels::attention::probs_offsets(&packing.cu_seqlens, nh)
            .last()
            .unwrap_or(&0);
        let mut layers = Vec::with_capacity(self.layers.len());
        for (l, lp) in self.layers.iter().enumerate() {
            let input = hidden;
            let mut qkv = self.pool.take(n * 3 * h);
            linear_forward(
                &mut qkv,
                &input,
                &w[lp.qkv.w.clone()],
                &w[lp.qkv.b.clone()],
                (n, h, 3 * h),
                Post::None,
                self.prec,
            );
            let mut probs = self.pool.take(probs_len);
            let mut ctx = self.pool.take(n * h);
            attention_forward(
                &mut ctx,
                &mut probs,
                &qkv,
                Heads {
                    cu_seqlens: &packing.cu_seqlens,
                    num_heads: nh,
                    head_dim: c.head_dim(),
                    head_mask: head_mask.as_deref().map(|m| &m[l * nh..(l + 1) * nh]),
                    dropout: attn_drop.map(|d| (d, stream(l, SITE_ATTN_PROBS))),
                },
            );
            // BertSelfOutput: LayerNorm(dropout(dense(ctx)) + input)
            let mut ln1_in = self.pool.take(n * h);
            linear_forward(
                &mut ln1_in,
                &ctx,
                &w[lp.attn_out.w.clone()],
                &w[lp.attn_out.b.clone()],
                (n, h, h),
                Post::None,
                self.prec,
            );
            if let (Some(d), true) = (hidden_drop, self.arch.attention_output_dropout) {
                d.apply(&mut ln1_in, stream(l, SITE_ATTN_OUT));
            }
            add_in_place(&mut ln1_in, &input);
            let (mut ln1_mean, mut ln1_rstd) = (self.pool.take(n), self.pool.take(n));
            let mut attn = self.pool.take(n * h);
            layer_norm_forward(
                &mut attn,
                &mut ln1_mean,
                &mut ln1_rstd,
                &ln1_in,
                &w[lp.ln1.w.clone()],
                &w[lp.ln1.b.clone()],
                eps,
            );
            // BertIntermediate: act(dense(attn))
            let (mut z, mut u) = (self.pool.take(n * i_sz), self.pool.take(n * i_sz));
            linear_forward(
                &mut u,
                &attn,
                &w[lp.inter.w.clone()],
                &w[lp.inter.b.clone()],
                (n, h, i_sz),
                Post::Activation(self.act, &mut z),
                self.prec,
            );
            // BertOutput: LayerNorm(dropout(dense(u)) + attn)
            let mut ln2_in = self.pool.take(n * h);
            linear_forward(
                &mut ln2_in,
                &u,
                &w[lp.out.w.clone()],
                &w[lp.out.b.clone()],
                (n, i_sz, h),
                Post::None,
                self.prec,
            );
            if let Some(d) = hidden_drop {
                d.apply(&mut ln2_in, stream(l, SITE_OUT));
            }
            add_in_place(&mut ln2_in, &attn);
            let (mut ln2_mean, mut ln2_rstd) = (self.pool.take(n), self.pool.take(n));
            hidden = self.pool.take(n * h);
            layer_norm_forward(
                &mut hidden,
                &mut ln2_mean,
                &mut ln2_rstd,
                &ln2_in,
                &w[lp.ln2.w.clone()],
                &w[lp.ln2.b.clone()],
                eps,
            );
            layers.push(LayerTape {
                input,
                qkv,
                probs,
                ctx,
                ln1_in,
                ln1_mean,
                ln1_rstd,
                attn,
                z,
                u,
                ln2_in,
                ln2_mean,
                ln2_rstd,
            });
        }

        let mut pooled_pre = Vec::new();
        let pooled = self.pooler.as_ref().map(|(pd, act, drop_first)| {
            let rows: Vec<usize> = (0..packing.batch)
                .filter(|&s| packing.cu_seqlens[s + 1] > packing.cu_seqlens[s])
                .collect();
            let mut first = Vec::with_capacity(rows.len() * h);
            for &s in &rows {
                let r = packing.cu_seqlens[s];
                first.extend_from_slice(&hidden[r * h..(r + 1) * h]);
            }
            if let (Some(d), true) = (self.classifier_dropout(mode), drop_first) {
                d.apply(&mut first, POOLER_STREAM);
            }
            let mut pooled = self.pool.take(rows.len() * h);
            linear_forward(
                &mut pooled,
                &first,
                &w[pd.w.clone()],
                &w[pd.b.clone()],
                (rows.len(), h, h),
                Post::None,
                self.prec,
            );
            pooled_pre = self.pool.copy_of(&pooled);
            act.apply(&mut pooled);
            (rows, first, pooled)
        });

        Ok(Tape {
            pool: self.pool.clone(),
            packing,
            ids,
            types,
            positions,
            head_mask,
            mode,
            emb_sum,
            emb_mean,
            emb_rstd,
            emb_out,
            layers,
            hidden,
            pooled,
            pooled_pre,
        })
    }

    /// The classifier head's dropout (`classifier_dropout`, else `hidden_dropout_prob`).
    fn classifier_dropout(&self, mode: Mode) -> Option<Dropout> {
        let c = &self.config;
        self.dropout(c.classifier_dropout.unwrap_or(c.hidden_dropout_prob), mode)
    }

    /// Accumulates into `g` the gradient of every encoder parameter, given the gradient of the loss
    /// with respect to `last_hidden_state` (B, T, H) and/or `pooler_output` (B, H) (values at
    /// padding positions are ignored: nothing was computed there).
    pub fn backward(
        &self,
        p: &ParamSet,
        tape: &Tape,
        g: &mut ParamSet,
        d_last_hidden_state: Option<&Array3<f32>>,
        d_pooler_output: Option<&Array2<f32>>,
    ) -> Result<()> {
        let h = self.config.hidden_size;
        let (b, t) = (tape.packing.batch, tape.packing.seq_len);
        let n = tape.packing.len();
        let mut d_hidden = self.pool.take_zeroed(n * h);
        if let Some(d) = d_last_hidden_state {
            if d.dim() != (b, t, h) {
                return Err(Error::Input(format!(
                    "d_last_hidden_state has shape {:?}, expected {:?}",
                    d.dim(),
                    (b, t, h)
                )));
            }
            for (k, (s, col)) in tape.packing.positions().enumerate() {
                for j in 0..h {
                    d_hidden[k * h + j] = d[[s, col, j]];
                }
            }
        }
        let d_pooled = match d_pooler_output {
            Some(d) => {
                if d.dim() != (b, h) {
                    return Err(Error::Input(format!(
                        "d_pooler_output has shape {:?}, expected {:?}",
                        d.dim(),
                        (b, h)
                    )));
                }
                let Some((rows, _, _)) = &tape.pooled else {
                    return Err(Error::Input(
                        "d_pooler_output given, but this encoder has no pooler".into(),
                    ));
                };
                let mut packed = Vec::with_capacity(rows.len() * h);
                for &s in rows {
                    packed.extend(d.row(s).iter().copied());
                }
                Some(packed)
            }
            None => None,
        };
        self.backward_packed(p, tape, g, d_hidden, d_pooled.as_deref());
        Ok(())
    }

    /// [`Encoder::backward`] with packed gradients: `d_hidden` (N, H) and `d_pooled` (S, H) over the
    /// tape's non-empty sequences.
    pub(crate) fn backward_packed(
        &self,
        p: &ParamSet,
        tape: &Tape,
        g: &mut ParamSet,
        mut d_hidden: Vec<f32>,
        d_pooled: Option<&[f32]>,
    ) {
        let c = &self.config;
        let w = p.data();
        let gd = g.data_mut();
        let (h, nh, i_sz) = (c.hidden_size, c.num_attention_heads, c.intermediate_size);
        let n = tape.packing.len();
        let hidden_drop = self.dropout(c.hidden_dropout_prob, tape.mode);
        let attn_drop = self.dropout(c.attention_probs_dropout_prob, tape.mode);

        if let (Some(dp), Some((pd, act, drop_first)), Some((rows, first, pooled))) =
            (d_pooled, &self.pooler, &tape.pooled)
        {
            // pooled = act(first W^T + b)
            let s = rows.len();
            let dpre: Vec<f32> = match act.kernel() {
                None => dp
                    .iter()
                    .zip(pooled)
                    .map(|(g, y)| g * (1.0 - y * y))
                    .collect(),
                Some(k) => {
                    let mut d = vec![0.0f32; dp.len()];
                    activation_backward(&mut d, dp, &tape.pooled_pre, k);
                    d
                }
            };
            let (gw, gb) = split_pair(gd, &pd.w, &pd.b);
            linear_backward_params(gw, Some(gb), &dpre, first, (s, h, h), self.prec);
            let mut dfirst = vec![0.0f32; s * h];
            linear_backward_input(
                &mut dfirst,
                &dpre,
                &w[pd.w.clone()],
                (s, h, h),
                false,
                self.prec,
            );
            if let (Some(d), true) = (self.classifier_dropout(tape.mode), drop_first) {
                d.apply(&mut dfirst, POOLER_STREAM);
            }
            for (k, &seq) in rows.iter().enumerate() {
                let r = tape.packing.cu_seqlens[seq];
                add_in_place(
                    &mut d_hidden[r * h..(r + 1) * h],
                    &dfirst[k * h..(k + 1) * h],
                );
            }
        }

        for (l, (lp, lt)) in self.layers.iter().zip(&tape.layers).enumerate().rev() {
            // hidden = LN2(ln2_in); ln2_in = dropout(u Wo^T + bo) + attn
            let mut d_ln2_in = self.pool.take(n * h);
            {
                let (gw, gb) = split_pair(gd, &lp.ln2.w, &lp.ln2.b);
                layer_norm_backward(
                    &mut d_ln2_in,
                    gw,
                    gb,
                    &d_hidden,
                    &lt.ln2_in,
                    &lt.ln2_mean,
                    &lt.ln2_rstd,
                    &w[lp.ln2.w.clone()],
                    false,
                );
            }
            let mut d_attn = self.pool.copy_of(&d_ln2_in);
            let mut d_out = d_ln2_in;
            if let Some(d) = hidden_drop {
                d.apply(&mut d_out, stream(l, SITE_OUT));
            }
            {
                let (gw, gb) = split_pair(gd, &lp.out.w, &lp.out.b);
                linear_backward_params(gw, Some(gb), &d_out, &lt.u, (n, i_sz, h), self.prec);
            }
            let mut d_u = self.pool.take(n * i_sz);
            linear_backward_input(
                &mut d_u,
                &d_out,
                &w[lp.out.w.clone()],
                (n, i_sz, h),
                false,
                self.prec,
            );
            let mut d_z = self.pool.take(n * i_sz);
            activation_backward(&mut d_z, &d_u, &lt.z, self.act);
            self.pool.give(d_u);
            {
                let (gw, gb) = split_pair(gd, &lp.inter.w, &lp.inter.b);
                linear_backward_params(gw, Some(gb), &d_z, &lt.attn, (n, h, i_sz), self.prec);
            }
            linear_backward_input(
                &mut d_attn,
                &d_z,
                &w[lp.inter.w.clone()],
                (n, h, i_sz),
                true,
                self.prec,
            );
            self.pool.give(d_z);
            // attn = LN1(ln1_in); ln1_in = dropout(ctx Wao^T + bao) + input
            let mut d_ln1_in = self.pool.take(n * h);
            {
                let (gw, gb) = split_pair(gd, &lp.ln1.w, &lp.ln1.b);
                layer_norm_backward(
                    &mut d_ln1_in,
                    gw,
                    gb,
                    &d_attn,
                    &lt.ln1_in,
                    &lt.ln1_mean,
                    &lt.ln1_rstd,
                    &w[lp.ln1.w.clone()],
                    false,
                );
            }
            let mut d_input = self.pool.copy_of(&d_ln1_in);
            let mut d_ao = d_ln1_in;
            if let (Some(d), true) = (hidden_drop, self.arch.attention_output_dropout) {
                d.apply(&mut d_ao, stream(l, SITE_ATTN_OUT));
            }
            {
                let (gw, gb) = split_pair(gd, &lp.attn_out.w, &lp.attn_out.b);
                linear_backward_params(gw, Some(gb), &d_ao, &lt.ctx, (n, h, h), self.prec);
            }
            let mut d_ctx = self.pool.take(n * h);
            linear_backward_input(
                &mut d_ctx,
                &d_ao,
                &w[lp.attn_out.w.clone()],
                (n, h, h),
                false,
                self.prec,
            );
            let mut d_qkv = self.pool.take(n * 3 * h);
            attention_backward(
                &mut d_qkv,
                &d_ctx,
                &lt.qkv,
                &lt.probs,
                Heads {
                    cu_seqlens: &tape.packing.cu_seqlens,
                    num_heads: nh,
                    head_dim: c.head_dim(),
                    head_mask: tape.head_mask.as_deref().map(|m| &m[l * nh..(l + 1) * nh]),
                    dropout: attn_drop.map(|d| (d, stream(l, SITE_ATTN_PROBS))),
                },
            );
            {
                let (gw, gb) = split_pair(gd, &lp.qkv.w, &lp.qkv.b);
                linear_backward_params(gw, Some(gb), &d_qkv, &lt.input, (n, h, 3 * h), self.prec);
            }
            linear_backward_input(
                &mut d_input,
                &d_qkv,
                &w[lp.qkv.w.clone()],
                (n, h, 3 * h),
                true,
                self.prec,
            );
            for buf in [d_out, d_attn, d_ao, d_ctx, d_qkv] {
                self.pool.give(buf);
            }
            self.pool.give(std::mem::replace(&mut d_hidden, d_input));
        }

        // hidden0 = project(dropout(LN(word + type + position))), project the identity but in
        // ELECTRA.
        let e = c.embedding_width();
        if let Some(pr) = &self.project {
            let (gw, gb) = split_pair(gd, &pr.w, &pr.b);
            linear_backward_params(gw, Some(gb), &d_hidden, &tape.emb_out, (n, e, h), self.prec);
            let mut d_emb = self.pool.take(n * e);
            linear_backward_input(
                &mut d_emb,
                &d_hidden,
                &w[pr.w.clone()],
                (n, e, h),
                false,
                self.prec,
            );
            self.pool.give(std::mem::replace(&mut d_hidden, d_emb));
        }
        if let Some(d) = hidden_drop {
            d.apply(&mut d_hidden, EMB_STREAM);
        }
        let mut d_sum = self.pool.take(n * e);
        {
            let (gw, gb) = split_pair(gd, &self.emb_ln.w, &self.emb_ln.b);
            layer_norm_backward(
                &mut d_sum,
                gw,
                gb,
                &d_hidden,
                &tape.emb_sum,
                &tape.emb_mean,
                &tape.emb_rstd,
                &w[self.emb_ln.w.clone()],
                false,
            );
        }
        let pad = c
            .pad_token_id
            .filter(|&p| p >= 0 && (p as usize) < c.vocab_size)
            .map(|p| p as usize);
        let mut no_types = Vec::new();
        let (word, ty, pos) = match &self.token_type {
            Some(tt) => {
                let (word, (ty, pos)) = split3(gd, &self.word, tt, &self.position);
                (word, ty, pos)
            }
            None => {
                // DistilBERT: the token-type gradient goes to a scratch row.
                no_types = vec![0.0f32; e];
                let (word, pos) = split_pair(gd, &self.word, &self.position);
                (word, &mut no_types[..], pos)
            }
        };
        embedding_backward(
            word,
            ty,
            pos,
            &d_sum,
            &tape.ids,
            &tape.types,
            &tape.positions,
            e,
            pad,
        );
        drop(no_types);
        self.pool.give(d_sum);
        self.pool.give(d_hidden);
    }
}

/// Adds one named tensor of a shape to the parameters, returning its range.
type AddTensor<'a> = dyn FnMut(&str, &[usize]) -> Result<Range<usize>> + 'a;

/// `{name}.weight` (out, inp) and `{name}.bias` (out).
fn dense(add: &mut AddTensor<'_>, name: &str, out: usize, inp: usize) -> Result<Dense> {
    Ok(Dense {
        w: add(&format!("{name}.weight"), &[out, inp])?,
        b: add(&format!("{name}.bias"), &[out])?,
    })
}

fn add_in_place(acc: &mut [f32], x: &[f32]) {
    for (a, v) in acc.iter_mut().zip(x) {
        *a += v;
    }
}

/// Two disjoint ranges of one buffer, mutably.
pub(crate) fn split_pair<'a>(
    buf: &'a mut [f32],
    a: &Range<usize>,
    b: &Range<usize>,
) -> (&'a mut [f32], &'a mut [f32]) {
    assert!(
        a.end <= b.start || b.end <= a.start,
        "overlapping parameter ranges"
    );
    if a.start < b.start {
        let (lo, hi) = buf.split_at_mut(b.start);
        (&mut lo[a.clone()], &mut hi[..b.len()])
    } else {
        let (lo, hi) = buf.split_at_mut(a.start);
        (&mut hi[..a.len()], &mut lo[b.clone()])
    }
}

/// Three disjoint ranges of one buffer, mutably.
fn split3<'a>(
    buf: &'a mut [f32],
    a: &Range<usize>,
    b: &Range<usize>,
    c: &Range<usize>,
) -> (&'a mut [f32], (&'a mut [f32], &'a mut [f32])) {
    let mut parts: Vec<(usize, &Range<usize>)> = vec![(0, a), (1, b), (2, c)];
    parts.sort_by_key(|p| p.1.start);
    let mut rest = buf;
    let mut consumed = 0;
    let mut out: [Option<&'a mut [f32]>; 3] = [None, None, None];
    for (k, r) in parts {
        assert!(r.start >= consumed, "overlapping parameter ranges");
        let (_, tail) = std::mem::take(&mut rest).split_at_mut(r.start - consumed);
        let (mid, tail) = tail.split_at_mut(r.len());
        out[k] = Some(mid);
        rest = tail;
        consumed = r.end;
    }
    let [x, y, z] = out;
    (x.expect("filled"), (y.expect("filled"), z.expect("filled")))
}
