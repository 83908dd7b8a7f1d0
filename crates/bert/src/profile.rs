//! Opt-in wall-clock accounting of where a forward pass spends its time, by phase, for `bert bench`.
//!
//! Off by default: then each instrumented call costs one relaxed atomic load.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// The phases a forward pass is split into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Text to ids (timed by callers such as `bert bench`).
    Tokenization,
    /// Packing, embeddings gather, LayerNorm, re-padding outputs: element-wise work.
    Elementwise,
    /// Every Linear layer (GEMM with its fused bias / activation / residual epilogue).
    Gemm,
    /// Scaled dot-product attention per (sequence, head).
    Attention,
}

impl Phase {
    /// Every phase, in report order.
    pub const ALL: [Phase; 4] = [
        Phase::Tokenization,
        Phase::Elementwise,
        Phase::Gemm,
        Phase::Attention,
    ];

    /// Lower-case name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Tokenization => "tokenization",
            Phase::Elementwise => "element-wise",
            Phase::Gemm => "gemm",
            Phase::Attention => "attention",
        }
    }
}

static ENABLED: AtomicBool = AtomicBool::new(false);
static NANOS: [AtomicU64; 4] = [
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
];

/// Turns accounting on or off (process-wide).
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Zeroes every phase's total.
pub fn reset() {
    for n in &NANOS {
        n.store(0, Ordering::Relaxed);
    }
}

/// Seconds spent in each phase since the last [`reset`], in [`Phase::ALL`] order.
pub fn totals() -> [(Phase, f64); 4] {
    Phase::ALL.map(|p| (p, NANOS[p as usize].load(Ordering::Relaxed) as f64 * 1e-9))
}

/// Runs `f`, adding its wall time to `phase` when accounting is on.
#[inline]
pub fn timed<R>(phase: Phase, f: impl FnOnce() -> R) -> R {
    if !ENABLED.load(Ordering::Relaxed) {
        return f();
    }
    let t = Instant::now();
    let r = f();
    NANOS[phase as usize].fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
    r
}
