//! Intel AMX microkernels (tile registers: Sapphire Rapids and later Xeons), 32 x 32 register
//! tiles as four 16 x 16 tiles of sums, K in steps of one A tile's 64 bytes:
//!
//! - **int8** (`tdpbusd`, the int8 path [`super::Int8Path::Amx`]): a 16 x 64 tile of (shifted,
//!   unsigned) A by a 64 x 16 tile of B into i32 sums, 16,384 multiply-adds where a `vpdpbusd` does
//!   64. The weights keep the VNNI panel layout ((K/4, NR, 4): a B tile is 16 of its k groups, 64
//!   bytes of one row at a time, read with the panel's row stride), only K padded to a multiple of
//!   64; A is quantized row-major ((MR, K4 x 4) per row tile, `ALayout::Rows`) so that an A tile is
//!   16 rows of 64 consecutive bytes. The i32 sums go through the VNNI kernel's AVX-512
//!   dequantization and epilogue.
//! - **bf16** (`tdpbf16ps`, [`super::Bf16Linear`]'s native kernel where the CPU has AMX-BF16): a
//!   16 x 32 tile of bf16 A by 16 pair rows of 16 columns of B into f32 sums (512 multiply-adds per
//!   row, 16 times `vdpbf16ps`'s). B is the bf16 panels' pairs as they are ((kc/2, NR) u32: a B
//!   tile is 16 pair rows of 16 columns, read with the panel's row stride); A is packed row-major in
//!   pairs ([`super::pack::pack_a_bf16`]); a K block's last pairs short of a whole tile go
//!   through `vdpbf16ps`, and the f32 kernels' epilogue stores the tile.
//!
//! - **bf16 attention** ([`bf16_block`], for [`crate::attention`]'s bf16 products): 32 x 32
//!   blocks of f32 sums, A and B tiles laid out by the caller (Q and the probabilities
//!   row-major in pairs, K transposed and V interleaved in pair rows).
//!
//! Stable Rust has no AMX intrinsics: the tile instructions are inline assembly, and only this file
//! touches the tile registers.

use std::arch::asm;
use std::arch::x86_64::*;
use std::sync::OnceLock;

use super::driver::{Tile, TileEpi};
use super::int8::QTile;
use super::int8_x86::store_avx512;
use super::pack::bf16_pairs_pad;

/// Columns of the AMX path's panels: two B tiles of 16 i32 columns.
pub(super) const NR: usize = 32;
/// Rows of the AMX path's row tiles: two A tiles of 16 rows.
pub(super) const MR: usize = 32;

/// Whether the AMX int8 kernel can run: [`tiles_available`] and the CPU has AMX-INT8 (CPUID leaf 7,
/// EDX bit 25).
pub(super) fn available() -> bool {
    tiles_available() && amx_bits() & (1 << 25) != 0
}

/// Whether the AMX bf16 kernel can run: [`tiles_available`], AMX-BF16 (CPUID leaf 7, EDX bit 22)
/// and AVX512-BF16 (for a K block's last pairs).
pub(crate) fn bf16_available() -> bool {
    tiles_available() && amx_bits() & (1 << 22) != 0 && crate::isa::has_avx512_bf16()
}

/// Whether the tiles can be used: the CPU has AMX-TILE (CPUID leaf 7, EDX bit 24) and AVX-512 BW
/// and VNNI (the quantizer and epilogues around the tiles), Linux granted this process the tile
/// data state (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, without which the first tile
/// instruction faults), and `BERT_KERNELS_AMX` is not `0`. Decided once per process.
fn tiles_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        std::env::var(crate::isa::AMX_ENV).map_or(true, |v| v.trim() != "0")
            && amx_bits() & (1 << 24) != 0
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vnni")
            && request_tile_data()
    })
}

/// CPUID leaf 7's EDX (the AMX feature bits), or 0 if the CPU has no leaf 7. Read once: under a
/// hypervisor each CPUID traps (executed per product, it made bf16 W1 1.33x slower).
fn amx_bits() -> u32 {
    static BITS: OnceLock<u32> = OnceLock::new();
    *BITS.get_or_init(|| {
        #[allow(unused_unsafe)]
        // SAFETY: CPUID exists on every x86-64 CPU; leaf 7 is read only if the CPU reports it.
        unsafe {
            if __cpuid(0).eax < 7 {
                return 0;
            }
            __cpuid_count(7, 0).edx
        }
    })
}

#[cfg(target_os = "linux")]
fn request_tile_data() -> bool {
    const SYS_ARCH_PRCTL: usize = 158;
    const ARCH_REQ_XCOMP_PERM: usize = 0x1023;
    const XFEATURE_XTILEDATA: usize = 18;
    let ret: isize;
    // SAFETY: arch_prctl(ARCH_REQ_XCOMP_PERM) only changes which extended states this process may
    // use; the syscall clobbers rcx and r11 and returns in rax.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL as isize => ret,
            in("rdi") ARCH_REQ_XCOMP_PERM,
            in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret == 0
}

#[cfg(not(target_os = "linux"))]
fn request_tile_data() -> bool {
    false
}

/// The tile configuration (palette 1): all eight tiles 16 rows of 64 bytes. tmm0-3 hold the
/// (32, 32) i32 sums, tmm4-5 two A tiles (rows 0-15, 16-31), tmm6-7 two B tiles (columns 0-15,
/// 16-31).
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

static CONFIG: TileConfig = {
    let mut c = [0u8; 64];
    c[0] = 1;
    let mut t = 0;
    while t < 8 {
        c[16 + 2 * t] = 64; // bytes per row, u16 little-endian
        c[48 + t] = 16; // rows
        t += 1;
    }
    TileConfig(c)
};

/// The i32 (or f32) sums of a (32, 32) tile, 64-byte aligned for the tile stores. Left
/// uninitialized until the tile stores write it: clearing its 4 KB in every call was 3.6% of a
/// bf16 training step's samples (short K blocks make short kernel calls).
#[repr(C, align(64))]
struct Sums([i32; MR * NR]);

impl Sums {
    fn uninit() -> std::mem::MaybeUninit<Sums> {
        std::mem::MaybeUninit::uninit()
    }
}

/// AMX: `C[R, 32]` as two (R <= 16) or four 16 x 16 tiles of i32 sums, K in steps of 64, then the
/// AVX-512 dequantization and epilogue of [`super::int8_x86::vnni_kernel`].
///
/// # Safety
/// [`available`] returned true (so the CPU has AVX-512F/BW/VNNI and AMX and the process may use
/// the tiles) and [`configure`] ran on this thread since any other tile configuration; `t`
/// describes in-bounds buffers (see [`QTile`]) for NR = 32 columns, with `t.a` a row-major tile of
/// 32 rows `t.a_step` bytes apart (all 32 readable; rows past R are ignored) and `t.k4` a multiple
/// of 16.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn amx_kernel<const R: usize>(t: &QTile) {
    debug_assert!(t.k4.is_multiple_of(16) && t.k4 > 0);
    let mut sums = Sums::uninit();
    // The tile stores write rows 0..16 (0..32 if R > 16), every row the loads below read.
    int8_sums(
        t.a,
        t.a_step,
        t.b.cast(),
        t.k4 / 16,
        R > 16,
        sums.as_mut_ptr().cast(),
    );
    let s = sums.as_ptr().cast::<i32>();
    store_avx512::<2, true>(t, R, |i, v| {
        std::arch::x86_64::_mm512_load_si512(s.add(i * NR + v * 16).cast())
    });
}

/// Loads [`CONFIG`] on this thread: once per task of a product, before its kernel calls, not in
/// every call (`ldtilecfg` per call was 5% of the kernel's samples at K = 384), nor once per
/// thread (another library in the process, e.g. PyTorch's oneDNN beside the Python package, may
/// load or release its own configuration on the same thread between two products).
///
/// # Safety
/// [`available`] returned true.
pub(crate) unsafe fn configure() {
    asm!("ldtilecfg [{cfg}]", cfg = in(reg) CONFIG.0.as_ptr(), options(nostack));
}

/// The K loop of a 32 x 32 block of sums as four 16 x 16 tiles, `$op` (`tdpbusd` or `tdpbf16ps`)
/// into four independent chains, each A and B tile loaded once for two of them: A's 32 rows are
/// `$lda` bytes apart, 64 bytes (one tile row) a step; B's 16 rows of a step are `$ldb` bytes apart
/// and the next step's start 16 rows on; `$c` gets 32 rows of 32 sums, `$ldc` bytes apart. Shared
/// by the GEMM ([`bf16_sums`], [`int8_sums`]) and attention ([`bf16_block`]).
macro_rules! block_sums {
    ($op:literal, $a:expr, $lda:expr, $b:expr, $ldb:expr, $steps:expr, $c:expr, $ldc:expr) => {
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            "2:",
            "tileloadd tmm6, [{b} + {ldb}*1]",
            "tileloadd tmm7, [{b} + {ldb}*1 + 64]",
            "tileloadd tmm4, [{a0} + {lda}*1]",
            concat!($op, " tmm0, tmm4, tmm6"),
            concat!($op, " tmm1, tmm4, tmm7"),
            "tileloadd tmm5, [{a1} + {lda}*1]",
            concat!($op, " tmm2, tmm5, tmm6"),
            concat!($op, " tmm3, tmm5, tmm7"),
            "add {a0}, 64",
            "add {a1}, 64",
            "add {b}, {b_step}",
            "dec {n}",
            "jnz 2b",
            "tilestored [{c0} + {ldc}*1], tmm0",
            "tilestored [{c0} + {ldc}*1 + 64], tmm1",
            "tilestored [{c1} + {ldc}*1], tmm2",
            "tilestored [{c1} + {ldc}*1 + 64], tmm3",
            a0 = inout(reg) $a => _,
            a1 = inout(reg) $a.add(16 * $lda) => _,
            b = inout(reg) $b => _,
            n = inout(reg) $steps => _,
            lda = in(reg) $lda,
            ldb = in(reg) $ldb,
            b_step = in(reg) 16 * $ldb,
            c0 = in(reg) $c,
            c1 = in(reg) $c.add(16 * $ldc),
            ldc = in(reg) $ldc,
            options(nostack),
        )
    };
}

/// A 32 x 32 block of f32 sums `c = sum over s < steps of A_s B_s` of bf16 pairs
/// ([`block_sums!`] with `tdpbf16ps`): A_s the 32 rows, `lda` bytes apart, of 32 bf16 (16 pairs)
/// at `a + 64 s`; B_s the 16 pair rows, `ldb` bytes apart, of 32 pair columns at `b + 16 s ldb`;
/// `c` 32 rows of 32 f32, `ldc` bytes apart.
///
/// # Safety
/// [`bf16_available`] returned true and [`configure`] ran on this thread since any other tile
/// configuration; `steps > 0`; every row named above is in bounds.
pub(crate) unsafe fn bf16_block(
    a: *const u8,
    lda: usize,
    b: *const u8,
    ldb: usize,
    steps: usize,
    c: *mut u8,
    ldc: usize,
) {
    debug_assert!(steps > 0);
    block_sums!("tdpbf16ps", a, lda, b, ldb, steps, c, ldc);
}

macro_rules! tile_sums {
    ($(#[$doc:meta])* $name:ident, $op:literal) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// [`configure`] ran on this thread since any other tile configuration; `a` holds 16 (32 if
        /// `two_row_tiles`) rows `lda` bytes apart of `steps` x 64 bytes, `b` `steps` x 16 rows
        /// of 128 bytes; `out` holds 32 x 32 4-byte sums, 64-byte aligned.
        #[inline(always)]
        unsafe fn $name(
            a0: *const u8,
            lda: usize,
            b: *const u8,
            steps: usize,
            two_row_tiles: bool,
            out: *mut u8,
        ) {
            debug_assert!(steps > 0);
            let (sb, sc) = (NR * 4, NR * 4);
            let b_step = 16 * NR * 4;
            if two_row_tiles {
                block_sums!($op, a0, lda, b, sb, steps, out, sc);
            } else {
                asm!(
                    "tilezero tmm0",
                    "tilezero tmm1",
                    "2:",
                    "tileloadd tmm6, [{b} + {sb}*1]",
                    "tileloadd tmm7, [{b} + {sb}*1 + 64]",
                    "tileloadd tmm4, [{a0} + {sa}*1]",
                    concat!($op, " tmm0, tmm4, tmm6"),
                    concat!($op, " tmm1, tmm4, tmm7"),
                    "add {a0}, 64",
                    "add {b}, {b_step}",
                    "dec {n}",
                    "jnz 2b",
                    "tilestored [{c0} + {sc}*1], tmm0",
                    "tilestored [{c0} + {sc}*1 + 64], tmm1",
                    a0 = inout(reg) a0 => _,
                    b = inout(reg) b => _,
                    n = inout(reg) steps => _,
                    sa = in(reg) lda,
                    sb = in(reg) sb,
                    b_step = in(reg) b_step,
                    c0 = in(reg) out,
                    sc = in(reg) sc,
                    options(nostack),
                );
            }
        }
    };
}

tile_sums!(
    /// The K loop of [`amx_kernel`]: i32 sums of u8 x s8 (`tdpbusd`) into `out` ((32, 32), rows
    /// 128 bytes apart; only the first 16 rows unless `two_row_tiles`).
    int8_sums,
    "tdpbusd"
);

tile_sums!(
    /// The K loop of [`bf16_kernel`]: f32 sums of bf16 pairs (`tdpbf16ps`) into `out` ((32, 32),
    /// rows 128 bytes apart; only the first 16 rows unless `two_row_tiles`).
    bf16_sums,
    "tdpbf16ps"
);

/// bf16 (see the module docs): `C[R, 32] (+)= A[R, kc] B[kc, 32]` in f32, then the f32 kernels'
/// epilogue.
///
/// # Safety
/// [`bf16_available`] returned true and [`configure`] ran on this thread since any other tile
/// configuration; `t` describes in-bounds buffers for NR = 32 columns: `t.a` a row tile of
/// [`super::pack::bf16_rows_pad`]`(R)` rows of [`bf16_pairs_pad`]`(t.kc)` u32 pairs (rows past R
/// ignored), `t.b` (ceil(kc / 2), 32) pairs, `c` (and `res`) R rows of 32 floats.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub(super) unsafe fn bf16_kernel<const R: usize>(t: &Tile) {
    let pairs = t.kc.div_ceil(2);
    let lda = bf16_pairs_pad(t.kc);
    let steps = pairs / 16;
    let mut sums = Sums::uninit();
    if steps > 0 {
        // The tile stores write rows 0..16 (0..32 if R > 16), every row the loads below read.
        bf16_sums(
            t.a.cast(),
            4 * lda,
            t.b.cast(),
            steps,
            R > 16,
            sums.as_mut_ptr().cast(),
        );
    } else {
        sums.write(Sums([0; MR * NR]));
    }
    let s = sums.as_ptr().cast::<f32>();
    let mut acc: [[__m512; 2]; R] = std::array::from_fn(|i| {
        [
            _mm512_load_ps(s.add(i * NR)),
            _mm512_load_ps(s.add(i * NR + 16)),
        ]
    });
    // The pairs past the last whole tile (K blocks not a multiple of 32), by `vdpbf16ps`.
    let (a, b) = (t.a.cast::<i32>(), t.b.cast::<i32>());
    for p in steps * 16..pairs {
        let b0 = _mm512_loadu_si512(b.add(p * NR).cast());
        let b1 = _mm512_loadu_si512(b.add(p * NR + 16).cast());
        for (i, acc) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_epi32(*a.add(i * lda + p));
            // SAFETY (transmute): __m512i and __m512bh are both 64 bytes of lanes.
            let av = std::mem::transmute::<__m512i, __m512bh>(av);
            acc[0] = _mm512_dpbf16_ps(acc[0], av, std::mem::transmute::<__m512i, __m512bh>(b0));
            acc[1] = _mm512_dpbf16_ps(acc[1], av, std::mem::transmute::<__m512i, __m512bh>(b1));
        }
    }
    const LANES: usize = 16;
    // The activation in the store for tiles of more than 8 rows, whose 2R sums no longer fit the
    // registers anyway: re-reading C's rows, N floats apart, missed L1 (bert-base bf16 W2F 0.96x the
    // time, Intel Xeon); with 8 rows (W1) its temporaries spilled the sums (MiniLM bf16 W1 1.024x).
    super::avx512::store_tile!(t, acc, R, 2, R > 8);
}
