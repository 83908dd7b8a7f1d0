//! int8 vs f32 `Linear` on BERT's shapes, interleaved in one process, and the core's FMA / VNNI peak
//! measured by a register-only loop on the same machine, with the 256-bit int8 forms that AVX2's
//! kernel chooses between (docs/quantization.md).
//!
//! ```text
//! cargo bench -p bert-kernels --bench int8 -- [--threads 2] [--m 8,128,2048] [--reps 11] [--cold-mb 64]
//! ```
//! Figures are GFLOP/s (f32) and GOP/s (int8), 2 M N K / time; medians of `--reps` interleaved
//! repetitions with weights rotated over copies totalling `--cold-mb` (beyond L3, as a model streams
//! them). `INT8_SHAPES=1` also prints each of the four int8 Linears on its own (weights not rotated).

mod common;

use std::time::Instant;

use bert_kernels::linear::Isa;
use bert_kernels::{Epilogue, Int8Linear, Int8Path, Linear};
use common::{data, median, LayerBench};

/// Runs `f` over `iters` calls, seconds per call.
fn time(iters: usize, mut f: impl FnMut(usize)) -> f64 {
    let t = Instant::now();
    for i in 0..iters {
        f(i);
    }
    t.elapsed().as_secs_f64() / iters as f64
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
    let path = Int8Path::for_isa(isa).unwrap();
    println!("threads {threads}, f32 ISA {isa:?}, int8 path {path:?}");
    peak(&pool, threads);
    let shapes = [
        (
            "minilm",
            [(384, 1152), (384, 384), (384, 1536), (1536, 384)],
        ),
        ("base", [(768, 2304), (768, 768), (768, 3072), (3072, 768)]),
    ];
    println!("| model | M | f32 GFLOP/s | int8 GOP/s | int8 / f32 |");
    println!("|---|---:|---:|---:|---:|");
    for (model, layer) in shapes {
        let bytes_per_layer: usize = layer.iter().map(|(k, n)| k * n * 4).sum();
        let copies = (cold_mb << 20).div_ceil(bytes_per_layer).max(1);
        let f32s: Vec<Vec<Linear>> = (0..copies)
            .map(|c| {
                layer
                    .iter()
                    .map(|&(k, n)| Linear::new(data(n * k, c), data(n, 1), n, k))
                    .collect()
            })
            .collect();
        // int8 weights are a quarter the size: 4x the copies for the same bytes.
        let i8s: Vec<Vec<Int8Linear>> = (0..4 * copies)
            .map(|c| {
                layer
                    .iter()
                    .map(|&(k, n)| Int8Linear::new(&data(n * k, c), data(n, 1), n, k))
                    .collect()
            })
            .collect();
        for &m in &ms {
            let flops: f64 = layer.iter().map(|(k, n)| 2.0 * (m * k * n) as f64).sum();
            let xs: Vec<Vec<f32>> = layer.iter().map(|&(k, _)| data(m * k, 3)).collect();
            let mut ys: Vec<Vec<f32>> = layer.iter().map(|&(_, n)| vec![0.0; m * n]).collect();
            let iters = ((2e9 * 0.01 / flops) as usize).max(1);
            let (mut tf, mut ti) = (Vec::new(), Vec::new());
            pool.install(|| {
                for rep in 0..reps + 1 {
                    let mut f32_run = |i: usize| {
                        for (l, lin) in f32s[i % copies].iter().enumerate() {
                            lin.forward(&xs[l], &mut ys[l], Epilogue::Bias);
                        }
                    };
                    let a = time(iters, &mut f32_run);
                    let mut i8_run = |i: usize| {
                        for (l, lin) in i8s[i % (4 * copies)].iter().enumerate() {
                            lin.forward(&xs[l], &mut ys[l], Epilogue::Bias);
                        }
                    };
                    let b = time(iters, &mut i8_run);
                    if rep > 0 {
                        tf.push(flops / a / 1e9);
                        ti.push(flops / b / 1e9);
                    }
                }
            });
            let (f, i) = (median(tf), median(ti));
            println!("| {model} | {m} | {f:.1} | {i:.1} | {:.2} |", i / f);
            if std::env::var_os("INT8_SHAPES").is_some() {
                pool.install(|| {
                    for (l, &(k, n)) in layer.iter().enumerate() {
                        let fl = 2.0 * (m * k * n) as f64;
                        let it = ((2e9 * 0.01 / fl) as usize).max(1);
                        let mut v = Vec::new();
                        for _ in 0..reps {
                            v.push(
                                fl / time(it, |i| {
                                    i8s[i % (4 * copies)][l].forward(
                                        &xs[l],
                                        &mut ys[l],
                                        Epilogue::Bias,
                                    )
                                }) / 1e9,
                            );
                        }
                        println!("  int8 K {k} N {n}: {:.1} GOP/s", median(v));
                    }
                });
            }
        }
    }
}

/// FMA (f32) and VNNI (int8) peak of `threads` cores from register-only loops.
fn peak(pool: &rayon::ThreadPool, threads: usize) {
    for (name, per_call) in [
        (
            "f32 FMA",
            bert_kernels::linear::peak_fma as fn(usize) -> Option<f64>,
        ),
        ("int8 VNNI", bert_kernels::linear::peak_vnni),
    ] {
        let iters = 20_000_000;
        let mut best = 0.0f64;
        for _ in 0..5 {
            let t = Instant::now();
            let ops = pool.broadcast(|_| per_call(iters));
            let secs = t.elapsed().as_secs_f64();
            if let Some(ops) = ops.iter().copied().sum::<Option<f64>>() {
                best = best.max(ops / secs / 1e9);
            }
        }
        if best > 0.0 {
            println!("peak {name}, {threads} threads: {best:.0} G(FL)OP/s");
        }
    }
    // The 256-bit forms (AVX2's int8 kernel and the ones it is compared with), one thread.
    use bert_kernels::linear::{peak_avx2, Avx2Loop};
    for form in [
        Avx2Loop::Fma,
        Avx2Loop::SignMaddubs,
        Avx2Loop::Madd16,
        Avx2Loop::U8Maddubs,
    ] {
        let iters = 20_000_000;
        let mut best = 0.0f64;
        for _ in 0..5 {
            let t = Instant::now();
            if let Some(ops) = peak_avx2(form, iters) {
                best = best.max(ops / t.elapsed().as_secs_f64() / 1e9);
            }
        }
        if best > 0.0 {
            println!("AVX2 {form:?}, 1 thread: {best:.0} G(FL)OP/s");
        }
    }
}
