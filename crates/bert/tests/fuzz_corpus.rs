//! The short, deterministic version of `scripts/fuzz.sh` that CI runs on stable Rust without
//! libFuzzer: every committed seed, corpus entry and crash regression of `fuzz/`, then seeded random
//! mutations of them, through the same checks as the fuzz targets (`fuzz_oracle`): no panic, and
//! peak heap within the input's bound.
//!
//! `BERT_FUZZ_MUTATIONS` sets the mutations per target (default 3000); `BERT_FUZZ_SEED` the seed.

mod fuzz_oracle;

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;

use fuzz_oracle::{check, repo_root, Fixtures, PeakAlloc, Target};

#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

/// The committed inputs of a target: seeds, minimized corpus, crash regressions.
fn inputs(target: Target) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for dir in ["seeds", "corpus", "regressions"] {
        let dir = repo_root().join("fuzz").join(dir).join(target.name());
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
        paths.sort();
        for p in paths {
            let bytes = std::fs::read(&p).unwrap();
            out.push((p, bytes));
        }
    }
    out
}

/// xorshift64: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One to four libFuzzer-style edits: byte flips and sets, boundary integers, inserted, deleted and
/// duplicated ranges, truncation, and splices with another input.
fn mutate(rng: &mut Rng, data: &[u8], other: &[u8]) -> Vec<u8> {
    const INTERESTING: [u64; 8] = [0, 1, 0x7f, 0x80, 0xff, 0x7fff_ffff, 0xffff_ffff, u64::MAX];
    let mut d = data.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = d.len();
        let at = rng.below(len);
        match rng.below(8) {
            0 if len > 0 => d[at] ^= 1 << rng.below(8),
            1 if len > 0 => d[at] = rng.next() as u8,
            2 => {
                let v = INTERESTING[rng.below(INTERESTING.len())].to_le_bytes();
                let n = [1, 2, 4, 8][rng.below(4)].min(len - at);
                d[at..at + n].copy_from_slice(&v[..n]);
            }
            3 => {
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                d.splice(at..at, bytes);
            }
            4 => {
                let n = rng.below(len - at + 1).min(64);
                d.drain(at..at + n);
            }
            5 => {
                let n = rng.below(len - at + 1).min(256);
                let chunk = d[at..at + n].to_vec();
                let to = rng.below(len + 1);
                d.splice(to..to, chunk);
            }
            6 => d.truncate(at),
            _ if !other.is_empty() => {
                let from = rng.below(other.len());
                let n = rng.below(other.len() - from + 1).min(512);
                let end = (at + n).min(len);
                d.splice(at..end, other[from..from + n].iter().copied());
            }
            _ => {}
        }
    }
    d
}

#[test]
fn committed_inputs_and_mutations_pass_the_fuzz_checks() {
    let fixtures = Fixtures::load();
    fuzz_oracle::quiet_panics();
    let mutations: usize = std::env::var("BERT_FUZZ_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let seed: u64 = std::env::var("BERT_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_f0f0_1234_abcd);
    for target in Target::ALL {
        let inputs = inputs(target);
        assert!(!inputs.is_empty(), "no seeds for {}", target.name());
        for (path, bytes) in &inputs {
            eprintln!("{}: {}", target.name(), path.display());
            check(target, bytes, &fixtures);
        }
        let mut rng = Rng(seed ^ target.name().len() as u64);
        for i in 0..mutations {
            let (_, a) = &inputs[rng.below(inputs.len())];
            let (_, b) = &inputs[rng.below(inputs.len())];
            let m = mutate(&mut rng, a, b);
            let run = std::panic::catch_unwind(AssertUnwindSafe(|| check(target, &m, &fixtures)));
            if let Err(panic) = run {
                // Kept for fuzz/regressions/ once the reader is fixed.
                let dump = std::env::temp_dir().join(format!("bert-fuzz-{}-{i}", target.name()));
                std::fs::write(&dump, &m).unwrap();
                eprintln!(
                    "mutation {i} of {} failed; input saved to {}",
                    target.name(),
                    dump.display()
                );
                std::panic::resume_unwind(panic);
            }
        }
        eprintln!(
            "{}: {} inputs, {mutations} mutations",
            target.name(),
            inputs.len()
        );
    }
}
