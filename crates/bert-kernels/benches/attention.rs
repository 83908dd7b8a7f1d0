//! Self-attention (`bert_kernels::attention`) in f32 and with bf16 products allowed (AMX tiles
//! where the CPU has AMX-BF16, `vdpbf16ps` where it has AVX512-BF16 without AMX, on the AVX-512
//! path, for sequences of more than `AMX_MIN_TOKENS` / `DP_MIN_TOKENS` tokens; f32 otherwise:
//! `attention::uses_bf16`), on the peer workloads' shapes, interleaved in one process
//! (docs/quantization.md, "Attention in bf16").
//!
//! ```text
//! cargo bench -p bert-kernels --bench attention -- [--threads 2] [--reps 11] [--tokens 25,40]
//! ```
//! `--tokens` replaces the workloads with sequences of those lengths (2,048 tokens a call).
//! Figures are microseconds per call (all heads of all sequences), medians of `--reps`
//! interleaved repetitions of 20 calls each.

mod common;

use std::time::Instant;

use bert_kernels::{attention, AttentionArgs};
use common::{arg, data, median};

fn main() {
    let threads = arg::<usize>("--threads").map_or(2, |v| v[0]);
    let reps = arg::<usize>("--reps").map_or(11, |v| v[0]);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("rayon pool");
    println!("threads {threads}, ISA {:?}", bert_kernels::Isa::selected());
    // (model, heads, head dim, sequences, tokens each): W2F is 16 lines of 128 tokens, W1 one of 8.
    let shapes: Vec<(String, usize, usize)> = match arg::<usize>("--tokens") {
        Some(lens) => lens
            .into_iter()
            .map(|t| (format!("T={t}"), (2048 / t).max(1), t))
            .collect(),
        None => [("W2F", 16, 128), ("W1", 1, 8), ("T=384", 2, 384)]
            .map(|(w, b, t)| (w.to_string(), b, t))
            .into(),
    };
    for (model, nh, d) in [("MiniLM-L6", 12, 32), ("bert-base", 12, 64)] {
        for (work, b, t) in shapes.iter().cloned() {
            let h = nh * d;
            let n = b * t;
            let qkv = data(n * 3 * h, 7);
            let cu: Vec<usize> = (0..=b).map(|s| s * t).collect();
            let mut ctx = vec![0.0; n * h];
            let mut times = [Vec::new(), Vec::new()];
            pool.install(|| {
                for _ in 0..reps {
                    for (bf16, times) in [false, true].into_iter().zip(&mut times) {
                        let args = AttentionArgs {
                            qkv: &qkv,
                            cu_seqlens: &cu,
                            num_heads: nh,
                            head_dim: d,
                            head_mask: None,
                            allow_bf16: bf16,
                        };
                        attention(args, &mut ctx, None);
                        let start = Instant::now();
                        for _ in 0..20 {
                            attention(args, &mut ctx, None);
                        }
                        times.push(start.elapsed().as_secs_f64() * 1e6 / 20.0);
                    }
                }
            });
            let [f, bf] = times.map(median);
            println!(
                "{model:9} {work:5}  f32 {f:9.1} us  bf16 {bf:9.1} us  f32/bf16 {:.2}x",
                f / bf
            );
        }
    }
}
