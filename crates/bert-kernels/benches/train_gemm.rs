//! The three products of a training step's Linear layers (`train::gemm`: forward `y = x W^T + b`,
//! `dx = dy W`, `dW += dy^T x`), f32 and bf16, on one BERT layer's four shapes, interleaved in one
//! process; with each product's packing alone (the operand the GEMM reads as W^T: W for the
//! forward and `dx`, `x` for `dW`, packed every step because they change every step)
//! (docs/training.md).
//!
//! ```text
//! cargo bench -p bert-kernels --bench train_gemm -- [--threads 2] [--m 2048] [--reps 11]
//! ```
//! Figures are milliseconds per layer (the four shapes summed), medians of `--reps` interleaved
//! repetitions.

mod common;

use std::time::Instant;

use bert_kernels::train::gemm::{
    linear_backward_input, linear_backward_params, linear_forward, Post, Precision,
};
use bert_kernels::{Bf16Linear, Linear};
use common::{data, median, LayerBench};

fn main() {
    let LayerBench {
        threads,
        ms,
        reps,
        pool,
        ..
    } = LayerBench::from_args();
    let ms = if common::arg::<usize>("--m").is_some() {
        ms
    } else {
        vec![2048]
    };
    println!(
        "threads {threads}, ISA {:?}, AVX512-BF16 {}",
        bert_kernels::Isa::selected(),
        bert_kernels::has_avx512_bf16()
    );
    println!("| model | M | precision | forward | dx = dy W | dW += dy^T x | pack W^T (dx) | pack x (dW) | pack W (forward) |");
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|");
    for (model, h, i) in [("MiniLM-L6", 384, 1536), ("bert-base", 768, 3072)] {
        // (N, K) of QKV, attention output, FFN up, FFN down.
        let shapes = [(3 * h, h), (h, h), (i, h), (h, i)];
        for &m in &ms {
            let ops: Vec<_> = shapes
                .iter()
                .enumerate()
                .map(|(s, &(n, k))| {
                    let w = data(n * k, 10 * s);
                    let b = data(n, 10 * s + 1);
                    let x = data(m * k, 10 * s + 2);
                    let dy = data(m * n, 10 * s + 3);
                    (n, k, w, b, x, dy)
                })
                .collect();
            let precs = [("f32", Precision::F32), ("bf16", Precision::Bf16)];
            // times[prec][op][rep]
            let mut times = vec![vec![Vec::new(); 6]; precs.len()];
            pool.install(|| {
                for rep in 0..reps + 1 {
                    for (pi, &(_, prec)) in precs.iter().enumerate() {
                        let mut t = [0.0f64; 6];
                        for (n, k, w, b, x, dy) in &ops {
                            let (n, k) = (*n, *k);
                            let mut y = vec![0.0; m * n];
                            let mut dx = vec![0.0; m * k];
                            let mut dw = vec![0.0; n * k];
                            let start = Instant::now();
                            linear_forward(&mut y, x, w, b, (m, k, n), Post::None, prec);
                            t[0] += start.elapsed().as_secs_f64();
                            let start = Instant::now();
                            linear_backward_input(&mut dx, dy, w, (m, k, n), false, prec);
                            t[1] += start.elapsed().as_secs_f64();
                            let start = Instant::now();
                            linear_backward_params(&mut dw, None, dy, x, (m, k, n), prec);
                            t[2] += start.elapsed().as_secs_f64();
                            // The packings alone: as linear_backward_input / _params build them.
                            let start = Instant::now();
                            pack(prec, w, k, n);
                            t[3] += start.elapsed().as_secs_f64();
                            let start = Instant::now();
                            pack(prec, x, k, m);
                            t[4] += start.elapsed().as_secs_f64();
                            let start = Instant::now();
                            pack_w(prec, w, b, n, k);
                            t[5] += start.elapsed().as_secs_f64();
                        }
                        if rep > 0 {
                            for (op, &v) in t.iter().enumerate() {
                                times[pi][op].push(v * 1e3);
                            }
                        }
                    }
                }
            });
            for (pi, &(name, _)) in precs.iter().enumerate() {
                let med: Vec<String> = times[pi]
                    .iter()
                    .map(|v| format!("{:.2}", median(v.clone())))
                    .collect();
                println!("| {model} | {m} | {name} | {} |", med.join(" | "));
            }
        }
    }
}

/// Packs `w` (out, in) row-major as the forward product does, and drops it.
fn pack_w(prec: Precision, w: &[f32], b: &[f32], out: usize, inp: usize) {
    match prec {
        Precision::F32 => drop(std::hint::black_box(Linear::from_slice(w, b, out, inp))),
        Precision::Bf16 => drop(std::hint::black_box(Bf16Linear::new(
            w,
            b.to_vec(),
            out,
            inp,
        ))),
    }
}

/// Packs `wt` (in, out) row-major as the GEMM's W^T, as the backward products do, and drops it.
fn pack(prec: Precision, wt: &[f32], out: usize, inp: usize) {
    let bias = vec![0.0; out];
    match prec {
        Precision::F32 => drop(std::hint::black_box(Linear::from_transposed(
            wt, bias, out, inp,
        ))),
        Precision::Bf16 => drop(std::hint::black_box(Bf16Linear::from_transposed(
            wt, bias, out, inp,
        ))),
    }
}
