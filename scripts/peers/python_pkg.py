"""The Python package's workloads for bench_py.py (peers `bert-rs-py`, `st-torch`):

  E3  sentence embeddings of the W3 corpus (W3_N lines, batch W3_BATCH, max_seq_length
      W3_MAXLEN) by one `encode` call, tokenization included: bert_rs.SentenceTransformer vs
      sentence_transformers.SentenceTransformer (torch).
  R3  the same corpus x4 as a Ray Data job on a local cluster (ray.init(num_cpus=THREADS)):
      read_parquet -> map_batches (THREADS workers x 1 CPU) -> write_parquet, timed from read to
      written; bert_rs.ray.embed_dataset vs a sentence-transformers UDF in the same pipeline.
      Reports the workers' peak RSS.

`bert embed` on the same lines is the reference for both (scripts/bench_python.sh runs it in the
same rounds).
"""
import os
import shutil
import tempfile
import time

import common

R3_REPEAT = 4
R3_FILES = 8


def model_for(peer, model_dir, threads):
    if peer == "bert-rs-py":
        import bert_rs

        return bert_rs.SentenceTransformer(model_dir, num_threads=threads), "bert_rs.SentenceTransformer"
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    return SentenceTransformer(model_dir, device="cpu"), f"sentence-transformers (torch {torch.__version__})"


def real_tokens(model_dir, lines):
    tok = common.make_tokenizer(model_dir, common.W3_MAXLEN)
    return sum(sum(e.attention_mask) for e in tok.encode_batch(lines))


def run_e3(peer, model_dir, corpus, threads, iters, warmup):
    warmup, iters = (common.DEFAULTS["E3"][0] if warmup is None else warmup,
                     common.DEFAULTS["E3"][1] if iters is None else iters)
    lines = common.load_corpus(corpus, common.W3_N)
    st, desc = model_for(peer, model_dir, threads)
    st.max_seq_length = common.W3_MAXLEN
    for _ in range(warmup or 0):
        st.encode(lines[:64], batch_size=common.W3_BATCH)
    times = []
    for _ in range(iters or 1):
        t = time.perf_counter()
        st.encode(lines, batch_size=common.W3_BATCH)
        times.append((time.perf_counter() - t) * 1e3)
    return dict(times_ms=times, n_seqs=len(lines), real_tokens=real_tokens(model_dir, lines)), desc


class StUdf:
    """sentence-transformers inside the same Ray pipeline (the peer of bert_rs.ray)."""

    def __init__(self, model):
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(1)
        self.st = SentenceTransformer(model, device="cpu")
        self.st.max_seq_length = common.W3_MAXLEN

    def __call__(self, batch):
        import numpy as np
        import pyarrow as pa

        texts = batch.column("text").to_pylist()
        e = self.st.encode(texts, batch_size=common.W3_BATCH).astype(np.float32)
        return batch.append_column(
            "embedding", pa.FixedSizeListArray.from_arrays(pa.array(e.reshape(-1)), e.shape[1])
        )


def run_r3(peer, model_dir, corpus, threads, iters, warmup):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    lines = common.load_corpus(corpus, common.W3_N) * R3_REPEAT
    d = tempfile.mkdtemp(prefix="r3-")
    # A corpus of 8 parquet files, as corpora come (a file is a block, and a block goes to one
    # worker: one file would keep the other workers idle).
    os.makedirs(f"{d}/in")
    for k in range(R3_FILES):
        part = slice(k * len(lines) // R3_FILES, (k + 1) * len(lines) // R3_FILES)
        pq.write_table(pa.table({"id": np.arange(len(lines))[part], "text": lines[part]}),
                       f"{d}/in/part-{k}.parquet")
    ray.init(num_cpus=threads + 1, include_dashboard=False, log_to_driver=False,
             object_store_memory=300 << 20)
    ray.data.DataContext.get_current().enable_progress_bars = False
    times, rss = [], 0.0
    for i in range(iters or 1):
        out = f"{d}/out-{i}"
        t = time.perf_counter()
        # Ray 2.60 reads these small files as one block, and a block goes to one worker: split it
        # as a corpus of real size (128 MiB blocks) would be.
        ds = ray.data.read_parquet(f"{d}/in").repartition(4 * threads)
        if peer == "bert-rs-py":
            import bert_rs.ray

            ds = bert_rs.ray.embed_dataset(ds, column="text", model=model_dir, concurrency=threads,
                                           num_cpus_per_worker=1, max_seq_length=common.W3_MAXLEN)
            desc = "bert_rs.ray.embed_dataset"
        else:
            ds = ds.map_batches(StUdf, fn_constructor_kwargs={"model": model_dir}, batch_format="pyarrow",
                                batch_size=256, concurrency=threads, num_cpus=1)
            desc = "sentence-transformers UDF in ray.data.map_batches"
        sampler = RssSampler()
        ds.write_parquet(out, ray_remote_args={"num_cpus": 0})
        times.append((time.perf_counter() - t) * 1e3)
        rss = max(rss, sampler.stop())
        assert pq.read_table(out).num_rows == len(lines)
    ray.shutdown()
    shutil.rmtree(d, ignore_errors=True)
    r = dict(times_ms=times, n_seqs=len(lines), real_tokens=real_tokens(model_dir, lines),
             worker_peak_rss_mb=rss)
    return r, desc


class RssSampler:
    """The largest RSS of a Ray map worker (`ray::MapWorker...` processes), sampled every 0.2 s."""

    def __init__(self):
        import threading

        self.peak, self._stop = 0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        import psutil

        while not self._stop.wait(0.2):
            for p in psutil.process_iter(["cmdline", "memory_info"]):
                cmd = " ".join(p.info["cmdline"] or [])
                if "MapWorker" in cmd and p.info["memory_info"]:
                    self.peak = max(self.peak, p.info["memory_info"].rss)

    def stop(self):
        self._stop.set()
        self._t.join()
        return round(self.peak / 2**20, 1)
