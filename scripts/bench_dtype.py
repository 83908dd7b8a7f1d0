#!/usr/bin/env python3
"""Interleaved A/B of `bert bench` variants (binaries x dtypes) in one run: each round runs every
variant once per workload in a fresh process, rotating the order, so all see the same host noise;
prints the median per-forward (W1, W2F) or per-pass (W3*) time and the ratios to the first variant.

  scripts/bench_dtype.py --model /tmp/peerbench/models/minilm-l6 --workloads W1,W2F,W3S \\
      --variant f32=target/release/bert --variant int8=target/release/bert:int8 \\
      --variant main-f32=/tmp/bert-main --rounds 5

A variant is NAME=BINARY[:DTYPE]; DTYPE (f32, f16, int8) becomes `--dtype DTYPE` (omitted for a binary
without the flag). Threads: the binaries' default (all cores) unless --threads.
"""
import argparse
import json
import statistics
import subprocess

ITERS = {"W1": (10, 60), "W2F": (2, 6), "W2": (2, 6), "W3": (2, 1), "W3S": (2, 1), "W3U": (2, 1)}


def run(binary, dtype, model, workload, threads, scale):
    warm, iters = ITERS[workload]
    cmd = [binary, "bench", "--peer-protocol", "--model", model, "--workload", workload,
           "--iters", str(max(1, int(iters * scale))), "--warmup", str(warm)]
    if dtype:
        cmd += ["--dtype", dtype]
    if threads:
        cmd += ["--threads", str(threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    line = json.loads(out.strip().splitlines()[-1])
    return statistics.median(line["times_ms"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--workloads", default="W1,W2F")
    ap.add_argument("--variant", action="append", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--iters-scale", type=float, default=1.0)
    a = ap.parse_args()
    variants = []
    for v in a.variant:
        name, spec = v.split("=", 1)
        binary, _, dtype = spec.partition(":")
        variants.append((name, binary, dtype))
    workloads = a.workloads.split(",")
    times = {(w, n): [] for w in workloads for n, _, _ in variants}
    for r in range(a.rounds):
        order = variants[r % len(variants):] + variants[:r % len(variants)]
        for w in workloads:
            for name, binary, dtype in order:
                times[(w, name)].append(run(binary, dtype, a.model, w, a.threads, a.iters_scale))
    base = variants[0][0]
    print(f"model {a.model}, {a.rounds} interleaved rounds; median ms (ratio to {base}: >1 is slower)")
    print("| workload | " + " | ".join(n for n, _, _ in variants) + " |")
    print("|---|" + "---:|" * len(variants))
    for w in workloads:
        b = statistics.median(times[(w, base)])
        cells = []
        for n, _, _ in variants:
            m = statistics.median(times[(w, n)])
            cells.append(f"{m:.2f} ({m / b:.2f}x)")
        print(f"| {w} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
