//! What the fuzz targets share: the checks of `crates/bert/tests/fuzz_oracle` (also run by the
//! stable replay test), the heap-counting allocator they need, and the fixtures loaded once.

use std::sync::OnceLock;

#[path = "../../crates/bert/tests/fuzz_oracle/mod.rs"]
mod oracle;

pub use oracle::{check, Fixtures, Target};

#[global_allocator]
static HEAP: oracle::PeakAlloc = oracle::PeakAlloc;

/// The fixtures, read on the first input.
pub fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        // libfuzzer-sys's hook aborts on any panic, even one the library catches and turns into an
        // error (`tokenizers` panics on some malformed tokenizer.json). This one only prints; a
        // panic that escapes the target still aborts through libfuzzer-sys's `catch_unwind`, so
        // it is still a crash (rerun the artifact with the binary to see where).
        oracle::quiet_panics();
        Fixtures::load()
    })
}
