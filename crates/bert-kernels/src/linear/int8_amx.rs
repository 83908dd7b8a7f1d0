//! Intel AMX int8 microkernel (`tdpbusd` on tile registers: Sapphire Rapids and later Xeons), for
//! the int8 path [`super::Int8Path::Amx`]. One `tdpbusd` multiplies a 16 x 64 tile of (shifted,
//! unsigned) A by a 64 x 16 tile of B into 16 x 16 i32 sums: 16,384 multiply-adds, where a
//! `vpdpbusd` does 64. The weights keep the VNNI panel layout ((K/4, NR, 4): a B tile is 16 of its
//! k groups, 64 bytes of one row at a time, read with the panel's row stride), only K padded to a
//! multiple of 64; A is quantized row-major ((MR, K4 x 4) per row tile, `ALayout::Rows`) so that an
//! A tile is 16 rows of 64 consecutive bytes. The i32 sums go through the same AVX-512 dequantization
//! and epilogue as the VNNI kernel's. Stable Rust has no AMX intrinsics: the tile instructions are
//! inline assembly, and only this file touches the tile registers.

use std::arch::asm;
use std::sync::OnceLock;

use super::int8::QTile;
use super::int8_x86::store_avx512;

/// Columns of the AMX path's panels: two B tiles of 16 i32 columns.
pub(super) const NR: usize = 32;
/// Rows of the AMX path's row tiles: two A tiles of 16 rows.
pub(super) const MR: usize = 32;

/// Whether the AMX path can run: the CPU has AMX-TILE and AMX-INT8 (CPUID leaf 7, EDX bits 24 and
/// 25), Linux granted this process the tile data state (`arch_prctl(ARCH_REQ_XCOMP_PERM,
/// XFEATURE_XTILEDATA)`, without which the first tile instruction faults), and `BERT_KERNELS_AMX`
/// is not `0`. Decided once per process.
pub(super) fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        std::env::var(crate::isa::AMX_ENV).map_or(true, |v| v.trim() != "0")
            && cpu_has_amx_int8()
            && request_tile_data()
    })
}

fn cpu_has_amx_int8() -> bool {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    #[allow(unused_unsafe)]
    // SAFETY: CPUID exists on every x86-64 CPU; leaf 7 is read only if the CPU reports it.
    let edx = unsafe {
        if __cpuid(0).eax < 7 {
            return false;
        }
        __cpuid_count(7, 0).edx
    };
    edx & (1 << 24) != 0 && edx & (1 << 25) != 0
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

/// The i32 sums of a (32, 32) tile, 64-byte aligned for the tile stores.
#[repr(C, align(64))]
struct Sums([i32; MR * NR]);

/// AMX: `C[R, 32]` as two (R <= 16) or four 16 x 16 tiles of i32 sums, K in steps of 64, then the
/// AVX-512 dequantization and epilogue of [`super::int8_x86::vnni_kernel`].
///
/// # Safety
/// [`available`] returned true (so the CPU has AVX-512F/BW/VNNI and AMX and the process may use
/// the tiles) and [`configure`] ran on this thread since any other tile configuration; `t` describes in-bounds buffers (see [`QTile`]) for NR = 32 columns, with `t.a` a
/// row-major tile of 32 rows `t.a_step` bytes apart (all 32 readable; rows past R are ignored) and
/// `t.k4` a multiple of 16.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn amx_kernel<const R: usize>(t: &QTile) {
    let mut sums = Sums([0; MR * NR]);
    amx_sums(t, R > 16, sums.0.as_mut_ptr());
    let s = sums.0.as_ptr();
    store_avx512::<2>(t, R, |i, v| {
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
pub(super) unsafe fn configure() {
    asm!("ldtilecfg [{cfg}]", cfg = in(reg) CONFIG.0.as_ptr(), options(nostack));
}

/// The K loop of [`amx_kernel`] into `out` ((32, 32) i32, rows 128 bytes apart; only the first 16
/// rows unless `two_row_tiles`).
///
/// # Safety
/// As [`amx_kernel`]; `out` holds 32 x 32 i32, 64-byte aligned.
#[inline(always)]
unsafe fn amx_sums(t: &QTile, two_row_tiles: bool, out: *mut i32) {
    debug_assert!(t.k4.is_multiple_of(16) && t.k4 > 0);
    let steps = t.k4 / 16;
    let a0 = t.a;
    let b = t.b;
    let (sa, sb, sc) = (t.a_step, NR * 4, NR * 4);
    let b_step = 16 * NR * 4;
    if two_row_tiles {
        let a1 = a0.add(16 * sa);
        let out1 = out.add(16 * NR);
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            "2:",
            "tileloadd tmm6, [{b} + {sb}*1]",
            "tileloadd tmm7, [{b} + {sb}*1 + 64]",
            "tileloadd tmm4, [{a0} + {sa}*1]",
            "tdpbusd tmm0, tmm4, tmm6",
            "tdpbusd tmm1, tmm4, tmm7",
            "tileloadd tmm5, [{a1} + {sa}*1]",
            "tdpbusd tmm2, tmm5, tmm6",
            "tdpbusd tmm3, tmm5, tmm7",
            "add {a0}, 64",
            "add {a1}, 64",
            "add {b}, {b_step}",
            "dec {n}",
            "jnz 2b",
            "tilestored [{c0} + {sc}*1], tmm0",
            "tilestored [{c0} + {sc}*1 + 64], tmm1",
            "tilestored [{c1} + {sc}*1], tmm2",
            "tilestored [{c1} + {sc}*1 + 64], tmm3",
            a0 = inout(reg) a0 => _,
            a1 = inout(reg) a1 => _,
            b = inout(reg) b => _,
            n = inout(reg) steps => _,
            sa = in(reg) sa,
            sb = in(reg) sb,
            b_step = in(reg) b_step,
            c0 = in(reg) out,
            c1 = in(reg) out1,
            sc = in(reg) sc,
            options(nostack),
        );
    } else {
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "2:",
            "tileloadd tmm6, [{b} + {sb}*1]",
            "tileloadd tmm7, [{b} + {sb}*1 + 64]",
            "tileloadd tmm4, [{a0} + {sa}*1]",
            "tdpbusd tmm0, tmm4, tmm6",
            "tdpbusd tmm1, tmm4, tmm7",
            "add {a0}, 64",
            "add {b}, {b_step}",
            "dec {n}",
            "jnz 2b",
            "tilestored [{c0} + {sc}*1], tmm0",
            "tilestored [{c0} + {sc}*1 + 64], tmm1",
            a0 = inout(reg) a0 => _,
            b = inout(reg) b => _,
            n = inout(reg) steps => _,
            sa = in(reg) sa,
            sb = in(reg) sb,
            b_step = in(reg) b_step,
            c0 = in(reg) out,
            sc = in(reg) sc,
            options(nostack),
        );
    }
}
