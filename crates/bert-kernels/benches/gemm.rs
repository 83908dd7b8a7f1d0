//! GEMM candidates for `Linear` on BERT's shapes, timed interleaved in one process, in GFLOP/s
//! (OpenBLAS in a second process, beside `ours` again; see `run_config`).
//!
//! ```text
//! cargo bench -p bert-kernels --bench gemm [--features openblas] -- [options]
//!   --isa avx2,avx512     ISA paths of our kernel (child processes each; default: all supported SIMD)
//!   --threads 1,2         rayon / OpenBLAS / matrixmultiply threads (child processes each)
//!   --model minilm,base   MiniLM-L6 (H=384, I=1536) and/or bert-base (H=768, I=3072) shapes
//!   --shapes 384x1152,..  explicit KxN shapes instead of --model
//!   --m 8,32,128,872,2048,4000
//!   --reps 15             interleaved repetitions; one table shows each candidate's median, one its
//!                         best (which filters out other processes' interference)
//!   --rep-ms 10           target duration of one repetition of one candidate
//!   --cold-mb 64          rotate over copies of the weights totalling this much (beyond L3), so small
//!                         M streams weights from DRAM as a whole model does; 0 keeps them hot in cache
//!   --gap-ms 5           pause before each timing so the last candidate's idle threads stop spinning
//!   --gelu               y = gelu(x W^T + b): fused into our store; the others run the old Linear's
//!                         scalar pass (gemm) or Activation::apply_slice (mm, openblas) after
//!   --candidates ours,gemm,mm,openblas
//!   --ours 6x2/kc256/mc96,4x3/kc384   extra variants of our kernel: RxV tile, kcN, mcN, ncN, nopf, tN tasks per
//!                         thread, otN the same for products of one row block, fN min task flops,
//!                         sN one-row-tile products' L1 prefetch distance in floats (0: off), sbN
//!                         the packed weights held from which they write C through scratch tiles,
//!                         st0 / st1 products of several row tiles streamed from there (off / on)
//! ```
//! Every candidate computes `y = x W^T + b` with W (N, K) row-major as PyTorch stores it. docs/gemm.md
//! has the results.

mod common;

use std::process::Command;
use std::time::Instant;

use bert_kernels::linear::{GemmOptions, Isa, ISA_ENV};
use bert_kernels::{Activation, Epilogue, Linear};
use common::data;

#[derive(Clone, Debug)]
struct Args {
    isas: Vec<Isa>,
    threads: Vec<usize>,
    shapes: Vec<(usize, usize)>,
    ms: Vec<usize>,
    reps: usize,
    rep_ms: f64,
    cold_mb: usize,
    gap_ms: u64,
    gelu: bool,
    candidates: Vec<String>,
    ours: Vec<String>,
    child: bool,
}

fn list<T: std::str::FromStr>(s: &str) -> Vec<T> {
    s.split(',')
        .filter(|t| !t.is_empty())
        .map(|t| t.parse().ok().expect("bad list item"))
        .collect()
}

fn parse_args() -> Args {
    let mut a = Args {
        isas: Isa::supported()
            .into_iter()
            .filter(|&i| i != Isa::Scalar)
            .collect(),
        threads: vec![1, 2],
        shapes: Vec::new(),
        ms: vec![8, 32, 128, 872, 2048, 4000],
        reps: 15,
        rep_ms: 10.0,
        cold_mb: 64,
        gap_ms: 5,
        gelu: false,
        candidates: ["ours", "gemm", "mm", "openblas"]
            .map(String::from)
            .to_vec(),
        ours: Vec::new(),
        child: false,
    };
    let mut models = vec!["minilm".to_string(), "base".to_string()];
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().expect("flag needs a value");
        match flag.as_str() {
            "--isa" => {
                a.isas = val()
                    .split(',')
                    .map(|s| Isa::parse(s).expect("bad --isa"))
                    .collect()
            }
            "--threads" => a.threads = list(&val()),
            "--model" => models = list(&val()),
            "--shapes" => {
                a.shapes = val()
                    .split(',')
                    .map(|s| {
                        let (k, n) = s.split_once('x').expect("KxN");
                        (k.parse().unwrap(), n.parse().unwrap())
                    })
                    .collect()
            }
            "--m" => a.ms = list(&val()),
            "--reps" => a.reps = val().parse().unwrap(),
            "--rep-ms" => a.rep_ms = val().parse().unwrap(),
            "--cold-mb" => a.cold_mb = val().parse().unwrap(),
            "--gap-ms" => a.gap_ms = val().parse().unwrap(),
            "--gelu" => a.gelu = true,
            "--candidates" => a.candidates = list(&val()),
            "--ours" => a.ours = list(&val()),
            "--child" => a.child = true,
            _ => {} // cargo bench passes --bench
        }
    }
    if a.shapes.is_empty() {
        for m in models {
            let (h, i) = match m.as_str() {
                "minilm" => (384, 1536),
                "base" => (768, 3072),
                _ => panic!("--model minilm|base"),
            };
            a.shapes.extend([(h, 3 * h), (h, h), (h, i), (i, h)]);
        }
    }
    if !cfg!(feature = "openblas") {
        a.candidates.retain(|c| c != "openblas");
    }
    a
}

fn main() {
    let args = parse_args();
    if args.child {
        return child(&args);
    }
    for &isa in &args.isas {
        for &t in &args.threads {
            run_config(&args, isa, t);
        }
    }
}

/// Runs the candidates for one (ISA, threads) in child processes, since matrixmultiply and
/// OpenBLAS read their thread count and kernel choice from the environment once per process, and
/// prints the merged tables. OpenBLAS gets a process of its own, with `ours` again as an anchor:
/// with OpenBLAS loaded, the other pools' second thread intermittently ran at a fraction of a core
/// (rayon and matrixmultiply fell to one-thread speed for tens of seconds at a time).
fn run_config(args: &Args, isa: Isa, threads: usize) {
    let others: Vec<String> = args
        .candidates
        .iter()
        .filter(|c| *c != "openblas")
        .cloned()
        .collect();
    let mut groups = vec![(others.join(","), args.ours.join(","))];
    if args.candidates.iter().any(|c| c == "openblas") {
        groups.push(("ours,openblas".into(), String::new()));
    }
    let mut names: Vec<String> = Vec::new();
    let mut rows: [Vec<Row>; 2] = [Vec::new(), Vec::new()];
    let mut notes = String::new();
    for (g, (cands, ours)) in groups.iter().enumerate() {
        let out = run_child(isa, threads, cands, ours);
        for line in out.lines() {
            let f: Vec<&str> = line.split('\t').collect();
            match f[0] {
                "@names" => names.extend(f[1].split(',').map(|n| match (g, n) {
                    (1, "ours") => "ours (OpenBLAS's process)".to_string(),
                    _ => n.to_string(),
                })),
                "@note" => notes += f[1],
                "@row" => {
                    let stat: usize = f[1].parse().unwrap();
                    let (m, k, n) = (
                        f[2].parse().unwrap(),
                        f[3].parse().unwrap(),
                        f[4].parse().unwrap(),
                    );
                    let secs: Vec<f64> = f[5].split(',').map(|v| v.parse().unwrap()).collect();
                    match rows[stat].iter_mut().find(|r| (r.0, r.1, r.2) == (m, k, n)) {
                        Some(r) => r.3.extend(secs),
                        None => rows[stat].push((m, k, n, secs)),
                    }
                }
                _ => {}
            }
        }
    }
    // Libraries first, then our variants, then the anchor.
    let rank = |n: &str| match n {
        _ if n.starts_with("ours (") => 2,
        _ if n.starts_with("ours ") => 1,
        _ => 0,
    };
    let mut order: Vec<usize> = (0..names.len()).collect();
    order.sort_by_key(|&i| rank(&names[i]));
    names = order.iter().map(|&i| names[i].clone()).collect();
    for r in rows.iter_mut().flatten() {
        r.3 = order.iter().map(|&i| r.3[i]).collect();
    }
    let weights = if args.cold_mb > 0 {
        format!("cold ({} MB rotation)", args.cold_mb)
    } else {
        "hot".into()
    };
    for (stat, rows) in ["median", "best"].iter().zip(&rows) {
        println!(
            "\n## ISA {} (ours), {threads} thread(s){notes}; {}; GFLOP/s, {stat} of {} interleaved reps; weights {weights}",
            isa.name(),
            if args.gelu { "y = gelu(x W^T + b)" } else { "y = x W^T + b" },
            args.reps,
        );
        print_table(&names, rows, args);
    }
}

/// Runs this benchmark as a child for one ISA, thread count and candidate list; returns its stdout.
fn run_child(isa: Isa, threads: usize, cands: &str, ours: &str) -> String {
    let t = threads.to_string();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(std::env::args().skip(1))
        .args([
            "--child",
            "--threads",
            &t,
            "--candidates",
            cands,
            "--ours",
            ours,
        ])
        .env(ISA_ENV, isa.name())
        .env("RAYON_NUM_THREADS", &t)
        .env("MATMUL_NUM_THREADS", &t)
        .env("OPENBLAS_NUM_THREADS", &t)
        // OpenBLAS's own AVX2 or AVX-512 kernels, to match our ISA path (overriding any
        // OPENBLAS_CORETYPE in the environment).
        .env(
            "OPENBLAS_CORETYPE",
            if isa == Isa::Avx512 {
                "SkylakeX"
            } else {
                "Haswell"
            },
        )
        // OpenBLAS workers otherwise busy-wait ~2^28 cycles after each call.
        .env("OPENBLAS_THREAD_TIMEOUT", "4");
    let out = cmd.output().expect("run child");
    assert!(
        out.status.success(),
        "child {isa:?} x{threads} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A candidate: computes `y = x W^T + b` for the shape it was built for.
type Candidate<'a> = Box<dyn FnMut(&[f32], &mut [f32]) + Send + 'a>;

/// Times the candidates and prints tab-separated lines for `run_config`: `@names`, `@note`, and one
/// `@row stat m k n seconds,...` per shape and statistic (0 median, 1 best).
fn child(args: &Args) {
    let threads = args.threads[0];
    let isa = Isa::selected();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    #[cfg(feature = "openblas")]
    if args.candidates.iter().any(|c| c == "openblas") {
        openblas::set_threads(threads);
        println!("@note\t, OpenBLAS core {}", openblas::core_name());
    }
    println!("@names\t{}", candidate_names(args).join(","));
    for &(k, n) in &args.shapes {
        let wbytes = n * k * 4;
        let copies = if args.cold_mb == 0 {
            1
        } else {
            (args.cold_mb << 20).div_ceil(wbytes)
        };
        let ws: Vec<Vec<f32>> = (0..copies).map(|c| data(n * k, 10 + c)).collect();
        let b = data(n, 2);
        let mut cands = build(args, isa, &ws, &b, n, k);
        for &m in &args.ms {
            let x = data(m * k, 1);
            let mut y = vec![0.0f32; m * n];
            let flops = 2.0 * (m * n * k) as f64;
            let stats = pool.install(|| time(&mut cands, &x, &mut y, flops, args));
            for (stat, secs) in [stats.0, stats.1].iter().enumerate() {
                let secs: Vec<String> = secs.iter().map(|s| format!("{s:e}")).collect();
                println!("@row\t{stat}\t{m}\t{k}\t{n}\t{}", secs.join(","));
            }
        }
    }
}

/// (M, K, N, seconds per call of each candidate).
type Row = (usize, usize, usize, Vec<f64>);

/// One table of GFLOP/s per shape, then one per M over all shapes (a layer's Linears when the
/// shapes are one model's).
fn print_table(names: &[String], rows: &[Row], args: &Args) {
    let ratio = ratio_column(names);
    let head = names.join(" | ")
        + if ratio.is_some() {
            " | ours / best other (same process) |"
        } else {
            " |"
        };
    let rule = "---:|".repeat(names.len() + usize::from(ratio.is_some()));
    println!("\n| M | K | N | {head}\n|---|---|---|{rule}");
    for (m, k, n, secs) in rows {
        println!(
            "| {m} | {k} | {n} | {}",
            cells(secs, 2.0 * (m * n * k) as f64, &ratio)
        );
    }
    println!("\nAll shapes above together:\n\n| M | {head}\n|---|{rule}");
    for &m in &args.ms {
        let mut flops = 0.0;
        let mut secs = vec![0.0; names.len()];
        for (_, k, n, s) in rows.iter().filter(|r| r.0 == m) {
            flops += 2.0 * (m * n * k) as f64;
            secs.iter_mut().zip(s).for_each(|(a, s)| *a += s);
        }
        println!("| {m} | {}", cells(&secs, flops, &ratio));
    }
}

/// For the ratio column: each other library's index paired with the index of `ours` timed in the
/// same process (the anchor for OpenBLAS), when there are other libraries.
fn ratio_column(names: &[String]) -> Option<Vec<(usize, usize)>> {
    let ours = names.iter().position(|n| n == "ours")?;
    let anchor = names
        .iter()
        .position(|n| n.starts_with("ours ("))
        .unwrap_or(ours);
    let pairs: Vec<(usize, usize)> = (0..names.len())
        .filter(|&i| !names[i].starts_with("ours"))
        .map(|i| (i, if names[i] == "openblas" { anchor } else { ours }))
        .collect();
    (!pairs.is_empty()).then_some(pairs)
}

/// A table row's GFLOP/s cells, and when `ratio` is set the worst of ours / each other library, each
/// ratio taken within one process so that a stretch of load on one process does not skew it.
fn cells(secs: &[f64], flops: f64, ratio: &Option<Vec<(usize, usize)>>) -> String {
    let gflops: Vec<f64> = secs.iter().map(|s| flops / s / 1e9).collect();
    let mut out: String = gflops.iter().map(|g| format!("{g:.1} | ")).collect();
    if let Some(pairs) = ratio {
        let worst = pairs
            .iter()
            .map(|&(i, o)| gflops[o] / gflops[i])
            .fold(f64::INFINITY, f64::min);
        out += &format!("{worst:.2} |");
    }
    out.trim_end().to_string()
}

fn candidate_names(args: &Args) -> Vec<String> {
    let mut names: Vec<String> = args.candidates.clone();
    names.extend(args.ours.iter().map(|v| format!("ours {v}")));
    names
}

/// Parses an `--ours` variant such as `4x3/kc384/mc72/t2/f100000` over the ISA's defaults.
fn variant(isa: Isa, spec: &str) -> GemmOptions {
    let mut o = GemmOptions::new(isa);
    for part in spec.split('/') {
        if let Some((r, v)) = part.split_once('x') {
            (o.mr, o.nv) = (r.parse().unwrap(), v.parse().unwrap());
        } else if let Some(v) = part.strip_prefix("kc") {
            o.kc = v.parse().unwrap();
        } else if let Some(v) = part.strip_prefix("mc") {
            o.mc = v.parse().unwrap();
        } else if let Some(v) = part.strip_prefix("nc") {
            o.nc = v.parse().unwrap();
        } else if part == "nopf" {
            o.prefetch = false;
        } else if let Some(v) = part.strip_prefix("sb") {
            o.stream_scratch_bytes = v.parse().unwrap();
        } else if let Some(v) = part.strip_prefix("st") {
            o.stream_tiles = v == "1";
        } else if let Some(v) = part.strip_prefix('s') {
            o.stream_ahead = v.parse().unwrap();
        } else if let Some(v) = part.strip_prefix("ot") {
            o.one_block_tasks_per_thread = v.parse().unwrap();
        } else if let Some(v) = part.strip_prefix('t') {
            o.tasks_per_thread = v.parse().unwrap();
        } else if let Some(v) = part.strip_prefix('f') {
            o.min_task_flops = v.parse().unwrap();
        } else {
            panic!("bad --ours part {part:?}");
        }
    }
    o
}

fn build<'a>(
    args: &Args,
    isa: Isa,
    ws: &'a [Vec<f32>],
    b: &'a [f32],
    n: usize,
    k: usize,
) -> Vec<Candidate<'a>> {
    let mut out = Vec::new();
    let gelu = args.gelu;
    let ours = |opts: GemmOptions| -> Candidate<'a> {
        let lins: Vec<Linear> = ws
            .iter()
            .map(|w| Linear::with_options(w.clone(), b.to_vec(), n, k, opts))
            .collect();
        let mut i = 0;
        Box::new(move |x: &[f32], y: &mut [f32]| {
            i = (i + 1) % lins.len();
            let epi = if gelu {
                Epilogue::BiasActivation(Activation::Gelu)
            } else {
                Epilogue::Bias
            };
            lins[i].forward(x, y, epi)
        })
    };
    for c in &args.candidates {
        let mut i = 0;
        let mut next = move || {
            i = (i + 1) % ws.len();
            &ws[i][..]
        };
        out.push(match c.as_str() {
            "ours" => ours(GemmOptions::new(isa)),
            "gemm" => {
                Box::new(move |x: &[f32], y: &mut [f32]| gemm_crate(x, next(), b, y, n, k, gelu))
            }
            "mm" => Box::new(move |x: &[f32], y: &mut [f32]| {
                matrixmultiply(x, next(), b, y, n, k);
                if gelu {
                    Activation::Gelu.apply_slice(y);
                }
            }),
            #[cfg(feature = "openblas")]
            "openblas" => Box::new(move |x: &[f32], y: &mut [f32]| {
                openblas::sgemm(x, next(), b, y, n, k);
                if gelu {
                    Activation::Gelu.apply_slice(y);
                }
            }),
            other => panic!("unknown candidate {other}"),
        });
    }
    for v in &args.ours {
        out.push(ours(variant(isa, v)));
    }
    out
}

/// Seconds per call of each candidate, (median, best) over `reps` rounds, each round timing every
/// candidate in turn for about `rep_ms`.
fn time(
    cands: &mut [Candidate<'_>],
    x: &[f32],
    y: &mut [f32],
    flops: f64,
    args: &Args,
) -> (Vec<f64>, Vec<f64>) {
    // Calibrate iterations per round on one warm call of each candidate.
    let mut samples = vec![Vec::new(); cands.len()];
    let mut iters = vec![1usize; cands.len()];
    for (c, it) in cands.iter_mut().zip(&mut iters) {
        c(x, y);
        let t = Instant::now();
        c(x, y);
        let s = t.elapsed().as_secs_f64().max(flops / 200e9);
        *it = ((args.rep_ms / 1e3 / s) as usize).clamp(1, 100_000);
    }
    // Alternate the order each round so no candidate always follows the same neighbour.
    for r in 0..args.reps {
        let mut order: Vec<usize> = (0..cands.len()).collect();
        if r % 2 == 1 {
            order.reverse();
        }
        for c in order {
            // Let the previous candidate's idle workers stop spinning and go to sleep.
            std::thread::sleep(std::time::Duration::from_millis(args.gap_ms));
            let t = Instant::now();
            for _ in 0..iters[c] {
                cands[c](x, y);
            }
            samples[c].push(t.elapsed().as_secs_f64() / iters[c] as f64);
        }
    }
    let sorted: Vec<Vec<f64>> = samples
        .into_iter()
        .map(|mut s| {
            s.sort_by(f64::total_cmp);
            s
        })
        .collect();
    (
        sorted.iter().map(|s| s[s.len() / 2]).collect(),
        sorted.iter().map(|s| s[0]).collect(),
    )
}

/// (a) `gemm` 0.19 followed by a parallel bias (+ GELU) pass: `Linear` before this kernel.
fn gemm_crate(x: &[f32], w: &[f32], b: &[f32], y: &mut [f32], n: usize, k: usize, gelu: bool) {
    use rayon::prelude::*;
    let m = x.len() / k;
    let threads = rayon::current_num_threads();
    let par = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: x (m, k), W^T read from W (n, k), y (m, n), all row-major and in bounds.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            y.as_mut_ptr(),
            1,
            n as isize,
            false,
            x.as_ptr(),
            1,
            k as isize,
            w.as_ptr(),
            k as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
    let rows = (16 * 1024 / n).clamp(1, m);
    y.par_chunks_mut(n * rows).for_each(|c| {
        for row in c.chunks_exact_mut(n) {
            if gelu {
                row.iter_mut()
                    .zip(b)
                    .for_each(|(v, b)| *v = Activation::Gelu.apply(*v + b));
            } else {
                row.iter_mut().zip(b).for_each(|(v, b)| *v += b);
            }
        }
    });
}

/// (c) `matrixmultiply` with y pre-filled with the bias and beta = 1.
fn matrixmultiply(x: &[f32], w: &[f32], b: &[f32], y: &mut [f32], n: usize, k: usize) {
    let m = x.len() / k;
    y.chunks_exact_mut(n).for_each(|r| r.copy_from_slice(b));
    // SAFETY: as for gemm_crate.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            x.as_ptr(),
            k as isize,
            1,
            w.as_ptr(),
            1,
            k as isize,
            1.0,
            y.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// (b) OpenBLAS through its C interface, y pre-filled with the bias and beta = 1.
#[cfg(feature = "openblas")]
mod openblas {
    use std::ffi::{c_char, c_int, CStr};

    const ROW_MAJOR: c_int = 101;
    const NO_TRANS: c_int = 111;
    const TRANS: c_int = 112;

    #[link(name = "openblas")]
    extern "C" {
        #[allow(clippy::too_many_arguments)]
        fn cblas_sgemm(
            order: c_int,
            ta: c_int,
            tb: c_int,
            m: c_int,
            n: c_int,
            k: c_int,
            alpha: f32,
            a: *const f32,
            lda: c_int,
            b: *const f32,
            ldb: c_int,
            beta: f32,
            c: *mut f32,
            ldc: c_int,
        );
        fn openblas_set_num_threads(n: c_int);
        fn openblas_get_corename() -> *const c_char;
    }

    pub fn set_threads(n: usize) {
        // SAFETY: plain setter of OpenBLAS's global thread count.
        unsafe { openblas_set_num_threads(n as c_int) }
    }

    pub fn core_name() -> String {
        // SAFETY: OpenBLAS returns a static NUL-terminated string.
        unsafe { CStr::from_ptr(openblas_get_corename()) }
            .to_string_lossy()
            .into_owned()
    }

    pub fn sgemm(x: &[f32], w: &[f32], b: &[f32], y: &mut [f32], n: usize, k: usize) {
        let m = x.len() / k;
        y.chunks_exact_mut(n).for_each(|r| r.copy_from_slice(b));
        // SAFETY: row-major x (m, k) lda k, W (n, k) transposed ldb k, y (m, n) ldc n, all in bounds.
        unsafe {
            cblas_sgemm(
                ROW_MAJOR,
                NO_TRANS,
                TRANS,
                m as c_int,
                n as c_int,
                k as c_int,
                1.0,
                x.as_ptr(),
                k as c_int,
                w.as_ptr(),
                k as c_int,
                1.0,
                y.as_mut_ptr(),
                n as c_int,
            )
        }
    }
}
