//! f16-weight vs f32 `Linear` on one BERT layer's four shapes, interleaved in one process: the f16
//! product with its weights read in the kernel, widened per micro-panel, widened whole, and `Auto`
//! (the first at M < 256, the last at 256 and more), all with `F16Linear::default_options`
//! (docs/quantization.md).
//!
//! ```text
//! cargo bench -p bert-kernels --bench f16 -- [--threads 2] [--m 8,128,2048] [--reps 11] [--cold-mb 64]
//! ```
//! Figures are GFLOP/s, 2 M N K / time, medians of `--reps` interleaved repetitions, weights rotated
//! over copies totalling `--cold-mb` (beyond L3, as a model streams them).

mod common;

use std::time::Instant;

use bert_kernels::linear::{F16Read, Isa};
use bert_kernels::{Epilogue, F16Linear, Linear};
use common::{data, median, LayerBench};

/// One layer's four Linears ((N, K): QKV, attention output, FFN up, FFN down) in one variant.
enum Layer {
    F32(Vec<Linear>),
    F16(Vec<F16Linear>),
}

impl Layer {
    fn forward(&self, xs: &[Vec<f32>], ys: &mut [Vec<f32>]) {
        match self {
            Layer::F32(ls) => {
                for ((l, x), y) in ls.iter().zip(xs).zip(ys) {
                    l.forward(x, y, Epilogue::Bias);
                }
            }
            Layer::F16(ls) => {
                for ((l, x), y) in ls.iter().zip(xs).zip(ys) {
                    l.forward(x, y, Epilogue::Bias);
                }
            }
        }
    }
}

fn main() {
    let LayerBench {
        threads,
        ms,
        reps,
        cold_mb,
        pool,
    } = LayerBench::from_args();
    let isa = Isa::selected();
    println!("threads {threads}, ISA {isa:?}");
    for (model, h, i) in [("MiniLM-L6", 384, 1536), ("bert-base", 768, 3072)] {
        let shapes = [(3 * h, h), (h, h), (i, h), (h, i)];
        let f32_bytes: usize = shapes.iter().map(|(n, k)| 4 * n * k).sum();
        let copies = (cold_mb << 20).div_ceil(f32_bytes).max(1);
        let opts = F16Linear::default_options(isa);
        let reads = [
            F16Read::InKernel,
            F16Read::Widened,
            F16Read::WidenedAll,
            F16Read::Auto,
        ];
        let variants: Vec<(String, Vec<Layer>)> = std::iter::once(("f32".to_string(), None))
            .chain(reads.iter().map(|r| (format!("f16 {r:?}"), Some(*r))))
            .map(|(name, read)| {
                let layers = (0..copies)
                    .map(|c| {
                        let ws = shapes
                            .iter()
                            .enumerate()
                            .map(|(s, &(n, k))| (data(n * k, 10 * c + s), data(n, s), n, k));
                        match read {
                            None => {
                                Layer::F32(ws.map(|(w, b, n, k)| Linear::new(w, b, n, k)).collect())
                            }
                            Some(r) => Layer::F16(
                                ws.map(|(w, b, n, k)| {
                                    F16Linear::with_options(&w, b, (n, k), opts, r)
                                })
                                .collect(),
                            ),
                        }
                    })
                    .collect();
                (name, layers)
            })
            .collect();
        for &m in &ms {
            let xs: Vec<Vec<f32>> = shapes.iter().map(|&(_, k)| data(m * k, 3)).collect();
            let mut ys: Vec<Vec<f32>> = shapes.iter().map(|&(n, _)| vec![0.0; m * n]).collect();
            let flops: usize = shapes.iter().map(|(n, k)| 2 * m * n * k).sum();
            let iters = (2e9 / flops as f64).clamp(2.0, 400.0) as usize;
            let mut times = vec![Vec::new(); variants.len()];
            for _ in 0..reps {
                for (v, (_, layers)) in variants.iter().enumerate() {
                    let t = Instant::now();
                    pool.install(|| {
                        for it in 0..iters {
                            layers[it % copies].forward(&xs, &mut ys);
                        }
                    });
                    times[v].push(t.elapsed().as_secs_f64() / iters as f64);
                }
            }
            let base = median(times[0].clone());
            for ((name, _), t) in variants.iter().zip(times) {
                let t = median(t);
                println!(
                    "{model} M {m:5} {name:>16}: {:7.1} GFLOP/s  {:8.3} ms  x{:.2} vs f32",
                    flops as f64 / t / 1e9,
                    t * 1e3,
                    base / t
                );
            }
        }
    }
}
