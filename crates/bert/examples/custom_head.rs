//! Fine-tuning BERT end to end with your own layer on top — the Rust twin of
//!
//! ```python
//! class Model(nn.Module):
//!     def forward(self, input_ids, attention_mask, token_type_ids):
//!         outputs = self.bert(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
//!         mean = masked_mean(outputs.last_hidden_state, attention_mask)
//!         return self.mlp(mean)            # Linear(H, 64) -> ReLU -> Linear(64, 2)
//! ```
//!
//! The encoder's [`Encoder::forward`] keeps what its backward needs; our layer computes its own
//! forward and backward, hands d(loss)/d(last_hidden_state) to [`Encoder::backward`], and one AdamW
//! updates the encoder's and the layer's parameters, which live in the same [`ParamSet`].
//!
//! ```text
//! cargo run --release -p bert --example custom_head [-- MODEL]
//! ```

use bert::ndarray::{Array2, Array3};
use bert::train::optim::{clip_grad_norm, AdamW, AdamWConfig, Schedule, ScheduleKind};
use bert::train::{cross_entropy, Encoder, Mode, ParamSet};
use bert::{BertTokenizer, ForwardOptions};

const HIDDEN: usize = 64;

/// Mean pooling + a 2-layer MLP, its weights in the shared parameter set.
struct MeanPoolMlp {
    h: usize,
    classes: usize,
}

/// What the layer's backward needs from its forward.
struct MlpTape {
    pooled: Vec<f32>,
    act: Vec<f32>,
    counts: Vec<f32>,
}

impl MeanPoolMlp {
    fn new(params: &mut ParamSet, h: usize, classes: usize, seed: u64) -> bert::Result<Self> {
        let mut state = seed;
        let mut uniform = |n: usize, bound: f32| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * bound
                })
                .collect()
        };
        // torch.nn.Linear's default init: U(-1/sqrt(in), 1/sqrt(in)).
        let (b1, b2) = (1.0 / (h as f32).sqrt(), 1.0 / (HIDDEN as f32).sqrt());
        params.push("mlp.0.weight", &[HIDDEN, h], uniform(HIDDEN * h, b1))?;
        params.push("mlp.0.bias", &[HIDDEN], uniform(HIDDEN, b1))?;
        params.push(
            "mlp.2.weight",
            &[classes, HIDDEN],
            uniform(classes * HIDDEN, b2),
        )?;
        params.push("mlp.2.bias", &[classes], uniform(classes, b2))?;
        Ok(MeanPoolMlp { h, classes })
    }

    /// logits (B, classes) from last_hidden_state (B, T, H) and the attention mask (B, T).
    fn forward(&self, p: &ParamSet, x: &Array3<f32>, mask: &Array2<i64>) -> (Vec<f32>, MlpTape) {
        let (b, t, h) = x.dim();
        let (w1, b1) = (p.get("mlp.0.weight").unwrap(), p.get("mlp.0.bias").unwrap());
        let (w2, b2) = (p.get("mlp.2.weight").unwrap(), p.get("mlp.2.bias").unwrap());
        let mut pooled = vec![0.0f32; b * h];
        let mut counts = vec![0.0f32; b];
        for s in 0..b {
            for k in 0..t {
                if mask[[s, k]] == 1 {
                    counts[s] += 1.0;
                    for j in 0..h {
                        pooled[s * h + j] += x[[s, k, j]];
                    }
                }
            }
            pooled[s * h..(s + 1) * h]
                .iter_mut()
                .for_each(|v| *v /= counts[s].max(1.0));
        }
        let mut act = vec![0.0f32; b * HIDDEN];
        for s in 0..b {
            for o in 0..HIDDEN {
                let z: f32 = b1[o]
                    + (0..h)
                        .map(|j| w1[o * h + j] * pooled[s * h + j])
                        .sum::<f32>();
                act[s * HIDDEN + o] = z.max(0.0);
            }
        }
        let mut logits = vec![0.0f32; b * self.classes];
        for s in 0..b {
            for c in 0..self.classes {
                logits[s * self.classes + c] = b2[c]
                    + (0..HIDDEN)
                        .map(|o| w2[c * HIDDEN + o] * act[s * HIDDEN + o])
                        .sum::<f32>();
            }
        }
        (
            logits,
            MlpTape {
                pooled,
                act,
                counts,
            },
        )
    }

    /// Adds the layer's parameter gradients to `g`; returns d(loss)/d(last_hidden_state).
    fn backward(
        &self,
        p: &ParamSet,
        g: &mut ParamSet,
        tape: &MlpTape,
        dlogits: &[f32],
        mask: &Array2<i64>,
    ) -> Array3<f32> {
        let (b, t) = mask.dim();
        let (h, c) = (self.h, self.classes);
        let w1 = p.get("mlp.0.weight").unwrap().to_vec();
        let w2 = p.get("mlp.2.weight").unwrap().to_vec();
        let mut dact = vec![0.0f32; b * HIDDEN];
        {
            let gw2 = g.get_mut("mlp.2.weight").unwrap();
            for s in 0..b {
                for k in 0..c {
                    let d = dlogits[s * c + k];
                    for o in 0..HIDDEN {
                        gw2[k * HIDDEN + o] += d * tape.act[s * HIDDEN + o];
                        dact[s * HIDDEN + o] += d * w2[k * HIDDEN + o];
                    }
                }
            }
        }
        let gb2 = g.get_mut("mlp.2.bias").unwrap();
        for s in 0..b {
            for k in 0..c {
                gb2[k] += dlogits[s * c + k];
            }
        }
        // ReLU
        for (d, a) in dact.iter_mut().zip(&tape.act) {
            if *a <= 0.0 {
                *d = 0.0;
            }
        }
        let mut dpooled = vec![0.0f32; b * h];
        {
            let gw1 = g.get_mut("mlp.0.weight").unwrap();
            for s in 0..b {
                for o in 0..HIDDEN {
                    let d = dact[s * HIDDEN + o];
                    for j in 0..h {
                        gw1[o * h + j] += d * tape.pooled[s * h + j];
                        dpooled[s * h + j] += d * w1[o * h + j];
                    }
                }
            }
        }
        let gb1 = g.get_mut("mlp.0.bias").unwrap();
        for s in 0..b {
            for o in 0..HIDDEN {
                gb1[o] += dact[s * HIDDEN + o];
            }
        }
        // Mean pooling spreads each sequence's gradient evenly over its real tokens.
        let mut dx = Array3::zeros((b, t, h));
        for s in 0..b {
            for k in 0..t {
                if mask[[s, k]] == 1 {
                    for j in 0..h {
                        dx[[s, k, j]] = dpooled[s * h + j] / tape.counts[s];
                    }
                }
            }
        }
        dx
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let model = std::env::args()
        .nth(1)
        .unwrap_or_else(|| bert::hub::DEFAULT_MODEL.to_string());
    let data = [
        ("a gripping, beautifully acted film", 1),
        ("the best thing I have seen this year", 1),
        ("warm, funny and wise", 1),
        ("an absolute delight from start to finish", 1),
        ("dull, lifeless and far too long", 0),
        ("a tedious mess with nothing to say", 0),
        ("I walked out after twenty minutes", 0),
        ("the plot makes no sense at all", 0),
    ];
    let tokenizer = BertTokenizer::from_pretrained(&model)?;
    let (encoder, mut params) = Encoder::from_pretrained(&model, false)?;
    let head = MeanPoolMlp::new(&mut params, encoder.config().hidden_size, 2, 7)?;
    let mut grads = params.zeros_like();
    let steps = 30;
    let mut opt = AdamW::new(
        &params,
        AdamWConfig {
            weight_decay: 0.01,
            ..Default::default()
        },
    );
    let schedule = Schedule {
        kind: ScheduleKind::Linear,
        base_lr: 5e-5,
        warmup_steps: 3,
        total_steps: steps,
    };
    let texts: Vec<&str> = data.iter().map(|d| d.0).collect();
    let labels: Vec<i64> = data.iter().map(|d| d.1).collect();
    let inputs = tokenizer.encode_batch(&texts)?;
    for step in 0..steps {
        grads.zero();
        let (out, tape) = encoder.forward(
            &params,
            &inputs,
            &ForwardOptions::default(),
            Mode::Train { seed: step },
        )?;
        let (logits, mlp) = head.forward(&params, &out.last_hidden_state, &inputs.attention_mask);
        let (loss, dlogits) = cross_entropy(&logits, &labels, 2)?;
        let dx = head.backward(&params, &mut grads, &mlp, &dlogits, &inputs.attention_mask);
        encoder.backward(&params, &tape, &mut grads, Some(&dx), None)?;
        let norm = clip_grad_norm(&mut grads, 1.0);
        opt.update(&mut params, &grads, schedule.lr(step));
        println!("step {:2}  loss {loss:.4}  grad norm {norm:.3}", step + 1);
    }
    Ok(())
}
