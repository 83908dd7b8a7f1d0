//! The checks every fuzz input must pass, shared by the libFuzzer targets (`fuzz/`) and the stable
//! corpus replay test (`tests/fuzz_corpus.rs`): the reader returns (`Ok` or `Err`, never a panic)
//! and its peak heap use stays within a bound set by the input's length and what it declares.
//!
//! Hangs are caught by libFuzzer's `-timeout` in `scripts/fuzz.sh`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use bert::fuzzing::{self, CheckpointRun, Weights};

/// Allowance on top of every bound: the readers' fixed costs (hash maps, a zip directory, the
/// tokenizer pipeline, the model of `config_json`) and the allocator's rounding.
pub const SLACK: usize = 64 << 20;

/// Text formats (JSON, vocab.txt) become maps and trees whose size is a constant factor of their
/// text: a vocab entry of a few bytes costs a `String` and a hash-map slot.
pub const TEXT_FACTOR: usize = 64;

/// A global allocator that tracks the live and the peak heap bytes of the process.
pub struct PeakAlloc;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let live = LIVE.fetch_add(n, Relaxed) + n;
    PEAK.fetch_max(live, Relaxed);
}

// SAFETY: every call forwards to `System` with the caller's layout and pointer unchanged; the
// counters are plain atomics.
unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Relaxed);
            grew(new_size);
        }
        p
    }
}

/// Runs `f` and returns its result with the heap bytes it held at its peak, above what was live
/// before. Exact only when nothing else allocates meanwhile (one input at a time).
pub fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    let out = f();
    (out, PEAK.load(Relaxed).saturating_sub(base))
}

/// The fuzz targets, one per reader of a downloaded file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// `pytorch_model.bin`: zip container, pickle VM, storages, f32 conversion.
    PytorchBin,
    /// `data.pkl` alone (the zip's CRC makes most mutations of it in `PytorchBin` fail early).
    Pickle,
    /// `model.safetensors`: header, tensors, f32 conversion.
    Safetensors,
    /// The same bytes as `config.json` (then loading a tiny model with it), a shard index, and
    /// `tokenizer_config.json`.
    Json,
    /// `tokenizer.json`, then one encode and decode.
    TokenizerJson,
    /// `vocab.txt`, then one encode and decode.
    VocabTxt,
}

impl Target {
    pub const ALL: [Target; 6] = [
        Target::PytorchBin,
        Target::Pickle,
        Target::Safetensors,
        Target::Json,
        Target::TokenizerJson,
        Target::VocabTxt,
    ];

    /// The name of the fuzz target and of its corpus directory.
    pub fn name(self) -> &'static str {
        match self {
            Target::PytorchBin => "pytorch_bin",
            Target::Pickle => "pickle",
            Target::Safetensors => "safetensors",
            Target::Json => "json",
            Target::TokenizerJson => "tokenizer_json",
            Target::VocabTxt => "vocab_txt",
        }
    }
}

/// Files the checks read once: the tiny model whose weights `config.json` inputs load, and the
/// vocabulary `tokenizer_config.json` inputs are paired with.
pub struct Fixtures {
    weights: Weights,
    vocab: Vec<u8>,
}

impl Fixtures {
    pub fn load() -> Fixtures {
        let root = repo_root();
        let weights = Weights::from_dir(&root.join("fixtures/models/tiny-gelu"))
            .expect("fixtures/models/tiny-gelu loads");
        let vocab = std::fs::read(root.join("fuzz/seeds/vocab_txt/small-vocab.txt"))
            .expect("fuzz/seeds/vocab_txt/small-vocab.txt");
        Fixtures { weights, vocab }
    }
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|d| d.join("fixtures/models").is_dir())
        .expect("the repository root, with fixtures/models")
        .to_path_buf()
}

/// Replaces the panic hook by one that prints only the message: the readers catch the panics of
/// the `tokenizers` crate, and the default hook's backtrace (with `RUST_BACKTRACE` set) would
/// allocate a hundred MB of debug info inside the measured load.
pub fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| eprintln!("{info}")));
}

/// Runs `data` through `target`'s readers; panics (a libFuzzer crash) when one panics or holds more
/// heap than its bound.
pub fn check(target: Target, data: &[u8], fx: &Fixtures) {
    let len = data.len();
    let text_bound = len.saturating_mul(TEXT_FACTOR).saturating_add(SLACK);
    match target {
        Target::PytorchBin => {
            check_checkpoint("pytorch_model.bin", len, || fuzzing::pytorch_bin(data))
        }
        Target::Safetensors => {
            check_checkpoint("model.safetensors", len, || fuzzing::safetensors(data))
        }
        Target::Pickle => {
            let (_, peak) = peak_during(|| fuzzing::pickle(data));
            assert_bound("data.pkl", peak, text_bound);
        }
        Target::Json => {
            let (_, peak) = peak_during(|| fuzzing::config_json(data, &fx.weights));
            assert_bound("config.json", peak, text_bound);
            let (_, peak) = peak_during(|| fuzzing::shard_index(data));
            assert_bound("model.safetensors.index.json", peak, text_bound);
            let vocab_bound = text_bound.saturating_add(fx.vocab.len() * TEXT_FACTOR);
            let (_, peak) = peak_during(|| {
                exercise(fuzzing::tokenizer(None, Some(&fx.vocab), Some(data)));
            });
            assert_bound("tokenizer_config.json", peak, vocab_bound);
        }
        Target::TokenizerJson => {
            let (_, peak) = peak_during(|| exercise(fuzzing::tokenizer(Some(data), None, None)));
            assert_bound("tokenizer.json", peak, text_bound);
        }
        Target::VocabTxt => {
            let (_, peak) = peak_during(|| exercise(fuzzing::tokenizer(None, Some(data), None)));
            assert_bound("vocab.txt", peak, text_bound);
        }
    }
}

/// A checkpoint may hold, beyond its own bytes, what it declares: its storages and tensors as
/// stored, and their f32 copies.
fn check_checkpoint(file: &str, len: usize, load: impl FnOnce() -> CheckpointRun) {
    let (run, peak) = peak_during(load);
    let bound = run
        .declared_bytes
        .saturating_mul(2)
        .saturating_add(len)
        .saturating_add(SLACK);
    assert_bound(file, peak, bound);
}

fn assert_bound(file: &str, peak: usize, bound: usize) {
    assert!(
        peak <= bound,
        "{file}: the load held {peak} heap bytes at its peak, more than its bound of {bound}"
    );
}

/// Uses a tokenizer the readers built, as a caller would: one pair encoded, its ids decoded.
fn exercise(tokenizer: bert::Result<bert::BertTokenizer>) {
    let Ok(tok) = tokenizer else { return };
    if let Ok(inputs) = tok.encode_pairs(&[("Hello, my dog is cute", "Ça va? 你好 ﬁ 🙂")]) {
        let ids: Vec<i64> = inputs.input_ids.iter().copied().collect();
        let _ = tok.decode(&ids, true);
        let _ = tok.decode(&ids, false);
    }
}
