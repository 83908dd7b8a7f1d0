//! What the benches share: argument lists, deterministic data, medians.

/// The comma-separated values after `name` on the command line (`--m 8,128,2048`), if given.
#[allow(dead_code)]
pub fn arg<T: std::str::FromStr>(name: &str) -> Option<Vec<T>> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    Some(
        args.get(i + 1)?
            .split(',')
            .filter_map(|t| t.parse().ok())
            .collect(),
    )
}

/// Values in [-0.5, 0.5), a different sequence per seed: the kernel tests' inputs.
pub fn data(len: usize, seed: usize) -> Vec<f32> {
    bert_kernels::reference::test_data(len, seed, 0.5)
}

/// The middle value (the upper one of an even count).
#[allow(dead_code)]
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The layer benches' options: `--threads` (2), `--m` (8,128,2048), `--reps` (11), `--cold-mb` (64),
/// and a rayon pool of `threads`.
#[allow(dead_code)]
pub struct LayerBench {
    pub threads: usize,
    pub ms: Vec<usize>,
    pub reps: usize,
    pub cold_mb: usize,
    pub pool: rayon::ThreadPool,
}

#[allow(dead_code)]
impl LayerBench {
    pub fn from_args() -> Self {
        let threads = arg::<usize>("--threads").map_or(2, |v| v[0]);
        LayerBench {
            threads,
            ms: arg::<usize>("--m").unwrap_or(vec![8, 128, 2048]),
            reps: arg::<usize>("--reps").map_or(11, |v| v[0]),
            cold_mb: arg::<usize>("--cold-mb").map_or(64, |v| v[0]),
            pool: rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap(),
        }
    }
}
