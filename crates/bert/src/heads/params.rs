//! The parameters of a task head: `nn.Linear` kept both as plain arrays (what a backward pass and an
//! optimizer read and update) and packed for bert-kernels' GEMM (what the forward pass runs), and
//! transformers' initialization of a fresh head
//! (`BertPreTrainedModel._init_weights`,
//! <https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/models/bert/modeling_bert.py#L786>).

use bert_kernels::rng::SplitMix64;
use bert_kernels::{Epilogue, Linear};
use ndarray::{Array1, Array2};

use crate::weights::Checkpoint;
use crate::{BertConfig, Error, Result};

/// A head's `nn.Linear`: `weight` (out, in) and `bias` (out) in PyTorch layout, plus the same weights
/// packed for the GEMM. Change them only through [`Dense::set`], which re-packs.
pub struct Dense {
    /// (out, in)
    weight: Array2<f32>,
    /// (out)
    bias: Array1<f32>,
    packed: Linear,
}

impl std::fmt::Debug for Dense {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dense")
            .field("out_features", &self.weight.nrows())
            .field("in_features", &self.weight.ncols())
            .finish()
    }
}

impl Dense {
    /// A layer from `weight` (out, in) and `bias` (out).
    pub fn new(weight: Array2<f32>, bias: Array1<f32>) -> Result<Self> {
        let (out, inp) = weight.dim();
        if bias.len() != out || inp == 0 || out == 0 {
            return Err(Error::Input(format!(
                "Dense: weight ({out}, {inp}) and bias ({}) do not make a layer",
                bias.len()
            )));
        }
        let packed = Linear::new(weight.iter().copied().collect(), bias.to_vec(), out, inp);
        Ok(Dense {
            weight,
            bias,
            packed,
        })
    }

    /// (out, in) the weight, PyTorch layout.
    pub fn weight(&self) -> &Array2<f32> {
        &self.weight
    }

    /// (out) the bias.
    pub fn bias(&self) -> &Array1<f32> {
        &self.bias
    }

    /// Replaces both parameters (same shapes) and re-packs them: the optimizer's write path.
    pub fn set(&mut self, weight: Array2<f32>, bias: Array1<f32>) -> Result<()> {
        if weight.dim() != self.weight.dim() || bias.len() != self.bias.len() {
            return Err(Error::Input(format!(
                "Dense::set: shapes {:?} and ({}) differ from the layer's {:?} and ({})",
                weight.dim(),
                bias.len(),
                self.weight.dim(),
                self.bias.len()
            )));
        }
        *self = Dense::new(weight, bias)?;
        Ok(())
    }

    pub fn out_features(&self) -> usize {
        self.weight.nrows()
    }

    pub fn in_features(&self) -> usize {
        self.weight.ncols()
    }

    /// `y (M, out) = epilogue(x (M, in) W^T + b)`.
    pub(crate) fn forward(&self, x: &[f32], y: &mut [f32], epilogue: Epilogue<'_>) {
        self.packed.forward(x, y, epilogue);
    }

    /// `{prefix}.weight` (out, in) and `{prefix}.bias` (out) from a checkpoint.
    pub(crate) fn load(ck: &Checkpoint, prefix: &str, out: usize, inp: usize) -> Result<Self> {
        let weight = ck.get(&format!("{prefix}.weight"), &[out, inp])?;
        let bias = ck.get(&format!("{prefix}.bias"), &[out])?;
        Dense::new(
            Array2::from_shape_vec((out, inp), weight).expect("shape checked by Checkpoint::get"),
            Array1::from(bias),
        )
    }

    /// A classifier `{prefix}` with `labels` outputs, where `labels` comes from `config.json`
    /// (`num_labels`): a checkpoint whose tensor has another row count is an error that says so,
    /// rather than a bare shape mismatch.
    pub(crate) fn load_classifier(
        ck: &Checkpoint,
        prefix: &str,
        labels: usize,
        why: &str,
        hidden: usize,
    ) -> Result<Self> {
        let name = format!("{prefix}.weight");
        if let (Some(shape), Some(path)) = (ck.shape(&name), ck.file_of(&name)) {
            if shape.len() == 2 && shape[1] == hidden && shape[0] != labels {
                return Err(Error::tensor(
                    &name,
                    path,
                    format!(
                        "has {} output rows but {why} is {labels}: config.json and the checkpoint disagree \
                         (fix id2label/num_labels in config.json)",
                        shape[0]
                    ),
                ));
            }
        }
        Dense::load(ck, prefix, labels, hidden)
    }

    /// A fresh layer as transformers initializes one: weight ~ N(0, `initializer_range`²), bias 0.
    pub(crate) fn init(out: usize, inp: usize, config: &BertConfig, rng: &mut Rng) -> Result<Self> {
        let std = config.initializer_range as f32;
        let weight = Array2::from_shape_fn((out, inp), |_| std * rng.normal());
        Dense::new(weight, Array1::zeros(out))
    }
}

/// The weights of `nn.LayerNorm` in plain form.
#[derive(Clone, Debug)]
pub struct LayerNormParams {
    /// (H) gamma.
    pub weight: Array1<f32>,
    /// (H) beta.
    pub bias: Array1<f32>,
    pub eps: f32,
}

impl LayerNormParams {
    pub(crate) fn load(ck: &Checkpoint, prefix: &str, size: usize, eps: f64) -> Result<Self> {
        Ok(LayerNormParams {
            weight: Array1::from(ck.get(&format!("{prefix}.weight"), &[size])?),
            bias: Array1::from(ck.get(&format!("{prefix}.bias"), &[size])?),
            eps: eps as f32,
        })
    }

    /// transformers' init: gamma 1, beta 0.
    pub(crate) fn init(size: usize, eps: f64) -> Self {
        LayerNormParams {
            weight: Array1::ones(size),
            bias: Array1::zeros(size),
            eps: eps as f32,
        }
    }

    /// Normalizes every row of `x` (rows of width H) in place.
    pub(crate) fn forward(&self, x: &mut [f32]) {
        let (w, b) = (
            self.weight
                .as_slice()
                .expect("owned 1-d arrays are contiguous"),
            self.bias
                .as_slice()
                .expect("owned 1-d arrays are contiguous"),
        );
        bert_kernels::layer_norm(x, w, b, self.eps);
    }
}

/// A seeded normal generator (splitmix64 + Box-Muller): fresh heads are reproducible from the seed
/// alone, independently of any global state.
pub(crate) struct Rng {
    state: SplitMix64,
    spare: Option<f32>,
}

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng {
            state: SplitMix64(seed ^ 0x5eed_b3e7_0000_0001),
            spare: None,
        }
    }

    /// Uniform in (0, 1].
    fn uniform(&mut self) -> f64 {
        ((self.state.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// A standard normal sample.
    pub(crate) fn normal(&mut self) -> f32 {
        if let Some(v) = self.spare.take() {
            return v;
        }
        let (u1, u2) = (self.uniform(), self.uniform());
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * u2;
        self.spare = Some((r * theta.sin()) as f32);
        (r * theta.cos()) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_seeded_and_normal() {
        let draw = |seed| {
            let mut r = Rng::new(seed);
            (0..20_000).map(|_| r.normal()).collect::<Vec<f32>>()
        };
        let (a, b) = (draw(7), draw(7));
        assert_eq!(a, b);
        assert_ne!(a, draw(8));
        let mean = a.iter().sum::<f32>() / a.len() as f32;
        let var = a.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / a.len() as f32;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
    }

    #[test]
    fn dense_matches_a_naive_product_and_set_repacks() {
        let w = Array2::from_shape_fn((3, 5), |(i, j)| (i * 5 + j) as f32 * 0.1 - 0.7);
        let b = Array1::from(vec![0.5, -1.0, 2.0]);
        let mut d = Dense::new(w.clone(), b.clone()).unwrap();
        let x: Vec<f32> = (0..10).map(|v| v as f32 * 0.3 - 1.0).collect();
        let mut y = vec![0.0; 6];
        d.forward(&x, &mut y, Epilogue::Bias);
        for m in 0..2 {
            for o in 0..3 {
                let want: f32 = (0..5).map(|k| x[m * 5 + k] * w[[o, k]]).sum::<f32>() + b[o];
                assert!((y[m * 3 + o] - want).abs() < 1e-5);
            }
        }
        d.set(Array2::zeros((3, 5)), Array1::from(vec![1.0, 2.0, 3.0]))
            .unwrap();
        d.forward(&x, &mut y, Epilogue::Bias);
        assert_eq!(y, vec![1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
        assert!(d.set(Array2::zeros((2, 5)), Array1::zeros(2)).is_err());
    }
}
