#!/usr/bin/env python3
"""Summarize results.jsonl files written by run_peers.sh into one Markdown table.

Medians: W1/W2/W2F pool all timed forwards of all rounds (each round = one process per peer) and
take the median; the 'rounds' column shows the spread of per-round medians. W3*: one pass per
round (by default), median over passes.
Effective GFLOP/s uses common.workload_flops: W2 and W2F count all 16x128 positions (L=128; in W2F
all of them are real tokens, so it measures pure kernel efficiency); 'real tok/s' is shown for W2/W2F/W3*;
W3* count real tokens only (useful work) with the attention term at each batch's padded L.
'exec GFLOP/s' (W3* only) counts everything a padded peer executes (all B*L positions), i.e.
raw arithmetic throughput regardless of whether the work was useful.

Usage: python3 summarize.py RESULTS.jsonl [more.jsonl ...] [--models-root /tmp/peerbench/models]
"""
import argparse
import os
import statistics as st
import sys
from collections import OrderedDict, defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results", nargs="+")
    ap.add_argument("--models-root", default=os.path.join(os.environ.get("PEERBENCH_ROOT", "/tmp/peerbench"), "models"))
    ap.add_argument("--corpus", default=common.DEFAULT_CORPUS)
    a = ap.parse_args()

    cells = OrderedDict()  # (model, workload) -> peer -> list of records
    for _, r in common.read_results(a.results):
        cells.setdefault((r["model"], r["workload"]), defaultdict(list))[r["peer"]].append(r)

    order = {w: k for k, w in enumerate(common.WORKLOADS)}
    models = list(OrderedDict.fromkeys(m for m, _ in cells))
    keys = sorted(cells, key=lambda k: (models.index(k[0]), order.get(k[1], 99)))
    train_keys = [k for k in keys if k[1].startswith("T")]
    keys = [k for k in keys if not k[1].startswith("T")]
    flops_cache, warnings = {}, []
    if keys:
        print("| model | workload | peer | median ms | round medians ms (min-max) | n | real tok/s | seq/s | eff. GFLOP/s | exec GFLOP/s | vs best |")
        print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for key in keys:
            model, w = key
            mdir = os.path.join(a.models_root, model)
            if key not in flops_cache:
                flops_cache[key] = common.workload_flops(mdir, w, a.corpus) if os.path.isdir(mdir) else None
            fl = flops_cache[key]
            rows = []
            for peer, recs in cells[key].items():
                samples = [t for r in recs for t in r["times_ms"]]
                per_round = [st.median(r["times_ms"]) for r in recs]
                med = st.median(samples)
                r0 = recs[0]
                if fl and (r0["real_tokens"] != fl["real_tokens"] or r0["padded_tokens"] != fl["padded_tokens"]):
                    warnings.append(f"{model} {w} {peer}: real/padded tokens {r0['real_tokens']}/{r0['padded_tokens']}"
                                    f" != expected {fl['real_tokens']}/{fl['padded_tokens']}")
                rows.append((med, peer, per_round, len(samples), r0))
            rows.sort()
            best = rows[0][0]
            for med, peer, per_round, n, r0 in rows:
                tps = sps = gf = xgf = ""
                s = med / 1e3
                if w in ("W2", "W2F"):
                    tps = f"{r0['real_tokens'] / s:,.0f}"
                if w.startswith("W3"):
                    tps = f"{r0['real_tokens'] / s:,.0f}"
                    sps = f"{r0['n_seqs'] / s:,.1f}"
                if fl and w != "W1":
                    gf = f"{fl['counted'] / s / 1e9:.1f}"
                if fl and w.startswith("W3"):
                    xgf = f"{fl['padded'] / s / 1e9:.1f}"
                spread = f"{min(per_round):.2f}-{max(per_round):.2f}" if len(per_round) > 1 else "-"
                print(f"| {model} | {w} | {peer} | {med:,.2f} | {spread} | {n} | {tps} | {sps} | {gf} | {xgf} | {med / best:.2f}x |")
        print()
        print("FLOP accounting (GFLOP; counted = used for eff. GFLOP/s):")
        print("| model | workload | seqs | real tokens | padded tokens | counted | executed if padded | perfectly unpadded | padded/unpadded |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for key in keys:
            fl = flops_cache.get(key)
            if fl and key[1] != "W1":
                print(f"| {key[0]} | {key[1]} | {fl['n_seqs']} | {fl['real_tokens']:,} | {fl['padded_tokens']:,} | "
                      f"{fl['counted'] / 1e9:,.0f} | {fl['padded'] / 1e9:,.0f} | {fl['unpadded'] / 1e9:,.0f} | "
                      f"{fl['padded'] / fl['unpadded']:.2f} |")
    if train_keys:
        print()
        train_table(cells, train_keys)
    if warnings:
        print("\nWARNINGS:")
        for x in warnings:
            print(" -", x)


def train_table(cells, keys):
    """T1/T2: per round, real tokens / summed step time; medians over rounds of tokens/s, phase
    shares and peak RSS; 'vs torch-eager' = tokens/s ratio to that peer in the same cell."""
    print("Training (forward + backward + optimizer step):")
    print("| model | workload | peer | real tok/s (median) | rounds tok/s (min-max) | steps | median step ms | "
          "forward | backward | optimizer | peak RSS MB | vs torch-eager |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key in keys:
        model, w = key
        stats = {}
        for peer, recs in cells[key].items():
            tps = [r["real_tokens"] / (sum(r["times_ms"]) / 1e3) for r in recs]
            ph = {k: st.median([r["phases_ms"][k] / sum(r["times_ms"]) for r in recs])
                  for k in ("forward", "backward", "optimizer")}
            rss = [r["peak_rss_mb"] for r in recs if r.get("peak_rss_mb")]
            steps = sum(len(r["times_ms"]) for r in recs)
            stats[peer] = (st.median(tps), tps, steps, st.median([t for r in recs for t in r["times_ms"]]), ph,
                           max(rss) if rss else None)
        ref = stats.get("torch-eager", (None,))[0]
        for peer, (tps, all_tps, steps, step_ms, ph, rss) in sorted(stats.items(), key=lambda kv: -kv[1][0]):
            spread = f"{min(all_tps):,.0f}-{max(all_tps):,.0f}" if len(all_tps) > 1 else "-"
            ratio = f"{tps / ref:.2f}x" if ref else "-"
            print(f"| {model} | {w} | {peer} | {tps:,.0f} | {spread} | {steps} | {step_ms:,.1f} | "
                  f"{ph['forward']:.0%} | {ph['backward']:.0%} | {ph['optimizer']:.0%} | "
                  f"{rss if rss is None else f'{rss:,.0f}'} | {ratio} |")


if __name__ == "__main__":
    main()
