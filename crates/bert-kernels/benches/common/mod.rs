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
