//! bf16 vs f32 `Linear` on one BERT layer's four shapes, interleaved in one process: the native
//! `vdpbf16ps` product in each compiled kernel shape and K block, and the emulated product (f32
//! kernels on bf16-rounded values, what a CPU without AVX512-BF16 runs) (docs/quantization.md).
//!
//! ```text
//! cargo bench -p bert-kernels --bench bf16 -- [--threads 2] [--m 8,128,2048] [--reps 11] [--cold-mb 64]
//! ```
//! Figures are GFLOP/s, 2 M N K / time, medians of `--reps` interleaved repetitions, weights rotated
//! over copies totalling `--cold-mb` (beyond L3, as a model streams them).

mod common;

use std::time::Instant;

use bert_kernels::linear::{GemmOptions, Isa};
use bert_kernels::{Bf16Linear, Epilogue, Linear};
use common::{data, median, LayerBench};

/// One layer's four Linears ((N, K): QKV, attention output, FFN up, FFN down) in one variant.
enum Layer {
    F32(Vec<Linear>),
    Bf16(Vec<Bf16Linear>),
}

impl Layer {
    fn forward(&self, xs: &[Vec<f32>], ys: &mut [Vec<f32>]) {
        match self {
            Layer::F32(ls) => {
                for ((l, x), y) in ls.iter().zip(xs).zip(ys) {
                    l.forward(x, y, Epilogue::Bias);
                }
            }
            Layer::Bf16(ls) => {
                for ((l, x), y) in ls.iter().zip(xs).zip(ys) {
                    l.forward(x, y, Epilogue::Bias);
                }
            }
        }
    }
}

/// A bf16 variant: `None` options is the emulated product with the f32 defaults.
struct Variant {
    name: String,
    opts: Option<GemmOptions>,
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
    println!(
        "threads {threads}, ISA {isa:?}, AVX512-BF16 {}",
        bert_kernels::has_avx512_bf16()
    );
    let base = GemmOptions::new(isa);
    let mut variants = vec![Variant {
        name: "bf16 emulated".into(),
        opts: None,
    }];
    if bert_kernels::has_avx512_bf16() && isa == Isa::Avx512 {
        for (mr, nv) in [(12, 2), (14, 2), (8, 3)] {
            for kc in [768, 1536] {
                variants.push(Variant {
                    name: format!("bf16 {mr}x{nv} kc {kc}"),
                    opts: Some(GemmOptions { mr, nv, kc, ..base }),
                });
            }
        }
    }
    for (model, h, i) in [("MiniLM-L6", 384, 1536), ("bert-base", 768, 3072)] {
        let shapes = [(3 * h, h), (h, h), (i, h), (h, i)];
        let f32_bytes: usize = shapes.iter().map(|(n, k)| 4 * n * k).sum();
        let copies = (cold_mb << 20).div_ceil(f32_bytes).max(1);
        let weights = |c: usize| {
            shapes
                .iter()
                .enumerate()
                .map(move |(s, &(n, k))| (data(n * k, 10 * c + s), data(n, s), n, k))
        };
        let mut layers: Vec<(String, Vec<Layer>)> = vec![(
            "f32".into(),
            (0..copies)
                .map(|c| {
                    Layer::F32(
                        weights(c)
                            .map(|(w, b, n, k)| Linear::new(w, b, n, k))
                            .collect(),
                    )
                })
                .collect(),
        )];
        for v in &variants {
            let ls = (0..copies)
                .map(|c| {
                    Layer::Bf16(
                        weights(c)
                            .map(|(w, b, n, k)| match v.opts {
                                Some(o) => Bf16Linear::with_options(&w, b, (n, k), o),
                                None => Bf16Linear::emulated(&w, b, (n, k), base),
                            })
                            .collect(),
                    )
                })
                .collect();
            layers.push((v.name.clone(), ls));
        }
        for &m in &ms {
            let xs: Vec<Vec<f32>> = shapes.iter().map(|&(_, k)| data(m * k, 3)).collect();
            let mut ys: Vec<Vec<f32>> = shapes.iter().map(|&(n, _)| vec![0.0; m * n]).collect();
            let flops: usize = shapes.iter().map(|(n, k)| 2 * m * n * k).sum();
            let iters = (2e9 / flops as f64).clamp(2.0, 400.0) as usize;
            let mut times = vec![Vec::new(); layers.len()];
            for _ in 0..reps {
                for (v, (_, ls)) in layers.iter().enumerate() {
                    let t = Instant::now();
                    pool.install(|| {
                        for it in 0..iters {
                            ls[it % copies].forward(&xs, &mut ys);
                        }
                    });
                    times[v].push(t.elapsed().as_secs_f64() / iters as f64);
                }
            }
            let f32_time = median(times[0].clone());
            for ((name, _), t) in layers.iter().zip(times) {
                let t = median(t);
                println!(
                    "{model} M {m:5} {name:>20}: {:7.1} GFLOP/s  {:8.3} ms  x{:.2} vs f32",
                    flops as f64 / t / 1e9,
                    t * 1e3,
                    f32_time / t
                );
            }
        }
    }
}
