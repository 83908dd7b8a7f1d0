#!/usr/bin/env python3
"""Fails if a register-blocked GEMM microkernel of a release binary keeps its sums in memory.

Each microkernel (`bert_kernels::linear::{avx512,avx2}::kernel*`, the VNNI and AVX2 int8 kernels,
attention's `tile_*` register tiles and `vdpbf16ps` blocks) holds its tile of sums in vector registers through the K loop. When LLVM cannot promote the sums
array to registers (a store loop it did not unroll, a helper it did not inline), the K loop still
computes in registers but also stores every sum to the stack on every step: the outputs are the
same and no test notices, while the product runs at half speed. It happened twice, each time on a
kernel that the CPU of the day did not run (the f32 kernels once; the `vdpbf16ps` kernels, which
Intel AMX machines skip, on Zen 4). Timing cannot guard what the CI CPU does not run; the
disassembly can, on any x86-64 machine.

For every microkernel instance this finds its loops (backward jumps that their target's code
leads back to) that hold multiply-adds
(`vfmadd*`, `vdpbf16ps`, `vpdpbusd`, `vpmaddwd`) and counts vector stores to fixed stack slots in
them: any is a failure. Kernels whose tiles cannot fit the registers (AMX's tall tiles' tail loop) are
not matched.

Usage: scripts/check_kernel_spills.py [BINARY]   (default target/release/bert; needs binutils)
"""
import re
import subprocess
import sys

KERNELS = re.compile(
    r"^bert_kernels::(linear::((avx512|avx2)::kernel(_\w+)?|int8_x86::\w+_kernel)"
    r"|attention::(avx512|avx2)::tile_\d+x\d+|attention::avx512::dp_(rows|tile))(::h[0-9a-f]+)?$"
)
MULTIPLY_ADD = re.compile(r"^(vfmadd\w+|vdpbf16ps|vpdpbusds?|vpmaddwd)\s")
# A fixed slot: a buffer on the stack written by index (the int8 kernels' outlier weights) is not
# a spill.
STACK_STORE = re.compile(r"^v\w+\s+%[xyz]mm\d+,(-?0x[0-9a-f]+)?\(%rsp\)$")
INSN = re.compile(r"^\s+([0-9a-f]+):\s+(.*?)\s*(#.*)?$")
JUMP = re.compile(r"^j\w+\s+([0-9a-f]+)\b")


def symbols(binary):
    """(start, size, demangled name) of every defined function."""
    out = subprocess.run(
        ["nm", "-S", "-C", "--defined-only", binary], capture_output=True, text=True, check=True
    ).stdout
    for line in out.splitlines():
        parts = line.split(maxsplit=3)
        if len(parts) == 4 and parts[2] in "tT":
            yield int(parts[0], 16), int(parts[1], 16), parts[3]


def instructions(binary, start, size):
    out = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", f"--start-address={start}",
         f"--stop-address={start + size}", binary],
        capture_output=True, text=True, check=True,
    ).stdout
    for line in out.splitlines():
        m = INSN.match(line)
        if m:
            yield int(m.group(1), 16), m.group(2)


def successors(insns):
    """Each instruction's address -> the addresses control can go to next (fall-through, jump)."""
    succ = {}
    for i, (addr, text) in enumerate(insns):
        nxt = [insns[i + 1][0]] if i + 1 < len(insns) else []
        m = JUMP.match(text)
        if text.startswith(("ret", "ud2")) or (m and text.startswith("jmp ")):
            nxt = []
        if m:
            nxt.append(int(m.group(1), 16))
        succ[addr] = nxt
    return succ


def reachable(edges, start):
    seen, todo = {start}, [start]
    while todo:
        for b in edges.get(todo.pop(), []):
            if b not in seen:
                seen.add(b)
                todo.append(b)
    return seen


def spilling_loops(insns, start):
    """(loop start, multiply-adds, stack stores) of each loop with both. A loop is a backward
    jump whose target leads back to it; its body, the instructions on a path from the target to
    the jump (a backward jump that is no loop, such as an unrolled block that rejoins the code
    before it, is not one)."""
    succ = successors(insns)
    pred = {}
    for a, bs in succ.items():
        for b in bs:
            pred.setdefault(b, []).append(a)
    text_at = dict(insns)
    for addr, text in insns:
        m = JUMP.match(text)
        if not m:
            continue
        target = int(m.group(1), 16)
        if not start <= target < addr:
            continue
        from_target = reachable(succ, target)
        if addr not in from_target:
            continue
        body = [text_at[a] for a in from_target & reachable(pred, addr) if a in text_at]
        fmas = sum(1 for t in body if MULTIPLY_ADD.match(t))
        stores = sum(1 for t in body if STACK_STORE.match(t))
        if fmas and stores:
            yield target, fmas, stores


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/bert"
    kernels = [(s, n, name) for s, n, name in symbols(binary) if KERNELS.match(name)]
    if not kernels:
        sys.exit(f"check_kernel_spills: no microkernels found in {binary} (not x86-64, or renamed?)")
    bad = 0
    for start, size, name in kernels:
        insns = list(instructions(binary, start, size))
        for loop, fmas, stores in spilling_loops(insns, start):
            bad += 1
            print(f"{name} at {start:#x}: the loop at {loop:#x} has {fmas} multiply-adds and "
                  f"{stores} vector stores to the stack (sums kept in memory)")
    if bad:
        sys.exit(f"check_kernel_spills: {bad} loops of {len(kernels)} microkernels spill")
    print(f"check_kernel_spills: {len(kernels)} microkernel instances, none keeps its sums in memory")


if __name__ == "__main__":
    main()
