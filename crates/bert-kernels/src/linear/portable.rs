//! The portable microkernel: plain Rust on fixed-size arrays, which LLVM vectorizes for the
//! baseline target (SSE2 on x86-64). The fallback for CPUs without AVX2 + FMA.

use super::driver::{Tile, TileEpi};

/// Columns of C per microkernel call.
pub(super) const NR: usize = 8;

/// `C[mr, 8] (+)= A[mr, kc] B[kc, 8]`, then the epilogue.
///
/// # Safety
/// `t` describes in-bounds buffers: `a` holds `kc * MR` floats, `b` holds `kc * 8`, `c` (and `res`)
/// `MR` rows of 8 floats `ldc` (`ldr`) apart, `bias` 8 floats.
pub(super) unsafe fn kernel<const MR: usize>(t: &Tile) {
    let mut acc = [[0.0f32; NR]; MR];
    let a = std::slice::from_raw_parts(t.a, t.kc * MR);
    let b = std::slice::from_raw_parts(t.b, t.kc * NR);
    for (a, b) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
        for (acc, &a) in acc.iter_mut().zip(a) {
            for (acc, &b) in acc.iter_mut().zip(b) {
                *acc += a * b;
            }
        }
    }
    for (i, acc) in acc.iter().enumerate() {
        let c = std::slice::from_raw_parts_mut(t.c.add(i * t.ldc), NR);
        for (j, (c, &acc)) in c.iter_mut().zip(acc).enumerate() {
            let mut r = acc;
            if t.accumulate {
                r += *c;
            }
            match t.epi {
                TileEpi::None => {}
                TileEpi::Bias { bias, act } => {
                    r += *bias.add(j);
                    if let Some(act) = act {
                        r = act.apply(r);
                    }
                }
                TileEpi::BiasResidual { bias, res, ldr } => {
                    r += *bias.add(j) + *res.add(i * ldr + j)
                }
            }
            *c = r;
        }
    }
}
