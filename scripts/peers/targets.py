#!/usr/bin/env python3
"""Issue 19's speed targets from results.jsonl files written by run_peers.sh (via bench_peers.sh).

Each ratio is taken within a round (both engines ran back to back, so they saw the same host) from
the two per-round medians; the table gives the median of those per-round ratios, the rounds'
range, and whether the target holds. Rows whose two peers are missing are left out, so a run of
`WORKLOADS="W1 W2F" PEERS="ort-opt ort-int8" BERT_DTYPES="f32 int8 bf16"` gives the inference
rows and `WORKLOADS=T2 PEERS=torch-bf16 BERT_DTYPES="f32 bf16"` the training ones.

Usage: python3 targets.py RESULTS.jsonl [more.jsonl ...]
"""
import os
import statistics as st
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

# (label, workload, ours, peer, kind, bound): kind "latency" is ours' time / peer's (<= bound),
# "speed" is peer's time / ours' (>= bound).
TARGETS = [
    ("f32 W1 latency / ORT fp32's", "W1", "bert-rs", "ort-opt", "latency", 0.8),
    ("f32 W2F speed / ORT fp32's", "W2F", "bert-rs", "ort-opt", "speed", 1.0),
    ("int8 W1 latency / ORT int8's", "W1", "bert-rs-int8", "ort-int8", "latency", 0.8),
    ("int8 W2F speed / ORT int8's", "W2F", "bert-rs-int8", "ort-int8", "speed", 1.2),
    ("bf16 W2F speed / our f32's", "W2F", "bert-rs-bf16", "bert-rs", "speed", 1.6),
    ("bf16 W2F speed / ORT int8's", "W2F", "bert-rs-bf16", "ort-int8", "speed", 1.0),
    ("bf16 T2 speed / our f32's", "T2", "bert-rs-bf16", "bert-rs", "speed", 1.5),
    ("bf16 T2 speed / PyTorch bf16 autocast's", "T2", "bert-rs-bf16", "torch-bf16", "speed", 1.3),
]


def main():
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        sys.exit(0 if len(sys.argv) > 1 else 2)
    # (model, workload, peer) -> (file, round) -> median ms of that round's timed iterations
    med = defaultdict(dict)
    models = []
    for path, r in common.read_results(sys.argv[1:]):
        if not r.get("times_ms"):
            continue
        # Rounds pair up within one file only (a run's round 1 is not another's).
        med[(r["model"], r["workload"], r["peer"])][(path, r["round"])] = st.median(r["times_ms"])
        if r["model"] not in models:
            models.append(r["model"])
    rows = []
    for label, w, ours, peer, kind, bound in TARGETS:
        cells = []
        for m in models:
            a, b = med.get((m, w, ours), {}), med.get((m, w, peer), {})
            rounds = sorted(set(a) & set(b))
            if not rounds:
                cells.append("-")
                continue
            rs = [a[k] / b[k] if kind == "latency" else b[k] / a[k] for k in rounds]
            x = st.median(rs)
            ok = x <= bound if kind == "latency" else x >= bound
            unit = "" if kind == "latency" else "x"
            spread = f" ({min(rs):.2f}-{max(rs):.2f}{unit})" if len(rs) > 1 else ""
            cells.append(f"{'**' if ok else ''}{x:.2f}{unit}{'**' if ok else ''}{spread}")
        if any(c != "-" for c in cells):
            op = "<=" if kind == "latency" else ">="
            rows.append(f"| {label} | {op} {bound} | " + " | ".join(cells) + " |")
    if not rows:
        print("(no pair of a target's peers in these results)")
        return
    print("| target | bound | " + " | ".join(models) + " |")
    print("|---|---:|" + "---:|" * len(models))
    print("\n".join(rows))
    print("\nBold: target met (median of per-round ratios; the rounds' range in brackets).")


if __name__ == "__main__":
    main()
