#!/usr/bin/env python3
"""Where does the time go? Profile W2 (16 x 128, padded) or W2F (16 x 128 real tokens) with torch.profiler (torch-sdpa / torch-eager)
and with ONNX Runtime's built-in profiler (ort-opt), aggregated by operator.

Usage: /tmp/ref/bin/python profile_w2.py [--model /tmp/peerbench/models/bert-base-random] [--iters 2] [--workload W2|W2F]
"""
import argparse
import glob
import json
import os
import sys
import tempfile
import time
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common  # noqa: E402

common.set_thread_env(2)


def gemm_flops(d, B, L):
    h, i = d["h"], d["i"]
    lin = d["layers"] * B * L * 2 * (4 * h * h + 2 * h * i)
    att = d["layers"] * B * L * 4 * h * L
    return lin, att


def profile_torch(mdir, feed, attn, iters):
    import torch
    from torch.profiler import ProfilerActivity, profile

    import bench_py

    peer = bench_py.make_peer(f"torch-{attn}", mdir, 2)
    peer(feed)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=False) as prof:
        t = time.perf_counter()
        for _ in range(iters):
            peer(feed)
        wall = (time.perf_counter() - t) / iters * 1e3
    ka = prof.key_averages()
    print(f"\n### torch-{attn}: {wall:.0f} ms per forward under the profiler\n")
    print("```")
    print(ka.table(sort_by="self_cpu_time_total", row_limit=14, max_name_column_width=38))
    print("```")
    tot = sum(e.self_cpu_time_total for e in ka)
    return {e.key: e.self_cpu_time_total / iters / 1e3 for e in ka}, tot / iters / 1e3, wall


def profile_ort(mdir, feed, variant, iters):
    import onnxruntime as ort

    name = os.path.basename(os.path.normpath(mdir))
    path = os.path.join(os.environ.get("PEERBENCH_ONNX", "/tmp/peerbench/onnx"), name, variant)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    td = tempfile.mkdtemp()
    so.enable_profiling = True
    so.profile_file_prefix = os.path.join(td, "ort")
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    s.run(None, feed)
    t = time.perf_counter()
    for _ in range(iters):
        s.run(None, feed)
    wall = (time.perf_counter() - t) / iters * 1e3
    prof = s.end_profiling()
    ev = json.load(open(prof))
    by = defaultdict(float)
    for e in ev:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            by[e["args"]["op_name"]] += e["dur"]
    # first run (warm-up) is included in the trace: scale by iters/(iters+1)
    scale = 1 / (iters + 1) / 1e3
    tot = sum(by.values()) * scale
    print(f"\n### ORT {variant}: {wall:.0f} ms per forward with profiling on; kernel time by op type\n")
    print("| op | ms/forward | % |")
    print("|---|---:|---:|")
    for k, v in sorted(by.items(), key=lambda kv: -kv[1]):
        if v * scale / tot >= 0.002:
            print(f"| {k} | {v * scale:.1f} | {100 * v * scale / tot:.1f} |")
    return {k: v * scale for k, v in by.items()}, tot, wall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="/tmp/peerbench/models/bert-base-random")
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--corpus", default=common.DEFAULT_CORPUS)
    ap.add_argument("--workload", type=str.upper, choices=["W2", "W2F"], default="W2")
    a = ap.parse_args()
    d = common.model_dims(a.model)
    if a.workload == "W2":
        tok = common.make_tokenizer(a.model, common.W2_LEN, common.W2_LEN)
        feed, _ = common.encode(tok, common.load_corpus(a.corpus, common.W2_BATCH))
    else:
        tok = common.make_tokenizer(a.model, common.W2F_LEN, common.W2F_LEN)
        feed, _ = common.encode(tok, common.w2f_lines(a.model, a.corpus))
    B, L = feed["input_ids"].shape
    lin, att = gemm_flops(d, B, L)
    print(f"model {os.path.basename(a.model)}, {a.workload} batch {B}x{L}: linear-layer GFLOP {lin / 1e9:.0f}, attention GFLOP {att / 1e9:.1f}")
    groups = {
        "GEMM (linear)": ("aten::addmm", "aten::mm", "aten::linear"),
        "attention (sdpa/bmm/softmax)": ("aten::_scaled_dot_product_flash_attention_for_cpu", "aten::bmm",
                                         "aten::_softmax", "aten::baddbmm", "aten::matmul", "aten::softmax"),
        "gelu": ("aten::gelu",),
        "layer_norm": ("aten::native_layer_norm", "aten::layer_norm"),
    }
    for attn in ("sdpa", "eager"):
        by, tot, wall = profile_torch(a.model, feed, attn, a.iters)
        print(f"\nself-CPU by group (torch-{attn}, ms/forward, total self-CPU {tot:.0f} ms):")
        used = 0.0
        for g, keys in groups.items():
            v = sum(by.get(k, 0.0) for k in keys)
            used += v
            extra = f"  -> {lin / (v / 1e3) / 1e9:.0f} GFLOP/s in GEMM" if g.startswith("GEMM") and v else ""
            print(f"  {g:32s} {v:8.1f}  {100 * v / tot:5.1f}%{extra}")
        print(f"  {'everything else':32s} {tot - used:8.1f}  {100 * (tot - used) / tot:5.1f}%")
    for variant in ("model-opt.onnx",):
        by, tot, wall = profile_ort(a.model, feed, variant, a.iters)
        # The fused com.microsoft Attention op contains the QKV projection GEMM + softmax(QK^T)V;
        # the remaining MatMuls are the attention output projection and the two FFN GEMMs.
        h, i, nl = d["h"], d["i"], d["layers"]
        f_mm = nl * B * L * 2 * (h * h + 2 * h * i)
        f_att = nl * B * L * (2 * 3 * h * h + 4 * h * L)
        mm = sum(v for k, v in by.items() if k in ("MatMul", "FusedMatMul", "Gemm"))
        at = by.get("Attention", 0.0)
        print(f"\nORT {variant}: MatMul ops {mm:.0f} ms -> {f_mm / (mm / 1e3) / 1e9:.0f} GFLOP/s; "
              f"Attention ops (QKV GEMM + attention) {at:.0f} ms -> {f_att / (at / 1e3) / 1e9:.0f} GFLOP/s; "
              f"kernel total {tot:.0f} ms vs wall {wall:.0f} ms")


if __name__ == "__main__":
    main()
