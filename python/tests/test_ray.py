"""bert_rs.ray on a real local Ray cluster (ray.init(num_cpus=2)): a corpus read from parquet and
text files comes out once per row with its ids, its embeddings equal to `bert embed` on the same
lines; a worker that dies mid-job changes nothing; bad rows get an answer, not a crashed job."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import bert_rs
import bert_rs.ray

# The cluster's 2 CPUs go to the embedding workers: writing files (I/O) takes none, or the write
# would wait for a CPU the workers hold until the map is done.
IO = {"ray_remote_args": {"num_cpus": 0}}

LONG = "the cat sat on the mat and looked at the quick brown fox " * 40  # > 256 tokens


def corpus(n: int = 240) -> list[str]:
    words = ["cats", "dogs", "rivers", "markets", "poems", "engines", "clouds", "trains"]
    return [
        f"line {i}: {words[i % 8]} and {words[(i * 3) % 8]} meet {i % 7} times"
        for i in range(n)
    ] + ["", LONG]


@pytest.fixture(scope="module")
def lines() -> list[str]:
    return corpus()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, bert_bin, minilm_dir, lines) -> np.ndarray:
    """`bert embed` on the same lines (one per line of a text file)."""
    d = tmp_path_factory.mktemp("ref")
    (d / "lines.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    subprocess.run(
        [str(bert_bin), "embed", "-q", "-m", minilm_dir, "-i", str(d / "lines.txt"), "-o", str(d / "ref.npy")],
        check=True,
    )
    return np.load(d / "ref.npy")


def write_corpus(path, lines: list[str]) -> None:
    table = pa.table({"id": np.arange(len(lines), dtype=np.int64), "text": lines})
    pq.write_table(table, path, row_group_size=37)


def read_back(path) -> pa.Table:
    return pq.read_table(path).sort_by("id")


def check_output(t: pa.Table, lines: list[str], reference: np.ndarray) -> None:
    assert t["id"].to_pylist() == list(range(len(lines))), "every id exactly once"
    assert t["text"].to_pylist() == lines
    emb = np.array(t["embedding"].to_pylist(), dtype=np.float32)
    assert emb.shape == reference.shape
    assert np.abs(emb - reference).max() <= 1e-6
    assert t["truncated"].to_pylist() == [x == LONG for x in lines]
    assert t["error"].null_count == len(lines)


def test_parquet_corpus_matches_bert_embed(ray_cluster, tmp_path, lines, reference, minilm_dir):
    write_corpus(tmp_path / "in.parquet", lines)
    ds = ray_cluster.data.read_parquet(str(tmp_path / "in.parquet"))
    out = bert_rs.ray.embed_dataset(
        ds, column="text", model=minilm_dir, concurrency=(1, 2), num_cpus_per_worker=1, batch_size=50
    )
    out.write_parquet(str(tmp_path / "out"), **IO)
    check_output(read_back(tmp_path / "out"), lines, reference)


def test_read_text_with_map_batches_numpy(ray_cluster, tmp_path, lines, reference, minilm_dir):
    (tmp_path / "lines.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    ds = ray_cluster.data.read_text(str(tmp_path / "lines.txt"), drop_empty_lines=False)
    out = ds.map_batches(
        bert_rs.ray.SentenceEmbedder,
        fn_constructor_kwargs={"model": minilm_dir},
        batch_format="numpy",
        batch_size=64,
        concurrency=1,
        num_cpus=1,
    )
    rows = out.take_all()
    # read_text keeps the file's order within one file and block.
    assert [r["text"] for r in rows] == lines
    emb = np.stack([r["embedding"] for r in rows])
    assert np.abs(emb - reference).max() <= 1e-6


class DiesOnce(bert_rs.ray.SentenceEmbedder):
    """Exits its worker process on the first batch that finds the flag file (one worker only)."""

    def __init__(self, flag: str, **kwargs):
        super().__init__(**kwargs)
        self.flag = flag

    def __call__(self, batch):
        try:
            os.remove(self.flag)
        except FileNotFoundError:
            pass
        else:
            sys.stdout.flush()
            os._exit(1)
        return super().__call__(batch)


def test_a_worker_dying_mid_job_loses_and_duplicates_nothing(
    ray_cluster, tmp_path, lines, reference, minilm_dir
):
    ray_cluster.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    write_corpus(tmp_path / "in.parquet", lines)
    flag = tmp_path / "die-once"
    flag.write_text("")
    ds = ray_cluster.data.read_parquet(str(tmp_path / "in.parquet"))
    out = ds.map_batches(
        DiesOnce,
        fn_constructor_kwargs={"flag": str(flag), "model": minilm_dir},
        batch_format="pyarrow",
        batch_size=30,
        concurrency=(1, 2),  # as embed_dataset: the read's file listing needs a CPU first
        num_cpus=1,
    )
    out.write_parquet(str(tmp_path / "out"), **IO)
    assert not flag.exists(), "a worker died"
    check_output(read_back(tmp_path / "out"), lines, reference)


def test_bad_rows_get_an_answer_not_a_crash(ray_cluster, tmp_path, minilm_dir, bert_bin):
    good = ["a normal sentence", "", LONG]
    # A parquet string column holding bytes that are not UTF-8 (Arrow does not check them).
    texts = [t.encode() for t in good] + [b"caf\xe9 latin-1", None]
    offsets = np.cumsum([0] + [len(t or b"") for t in texts]).astype(np.int32)
    data = b"".join(t or b"" for t in texts)
    validity = pa.array([t is not None for t in texts]).buffers()[1]
    col = pa.Array.from_buffers(
        pa.string(), len(texts), [validity, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data)], null_count=1
    )
    pq.write_table(pa.table({"id": np.arange(len(texts)), "text": col}), tmp_path / "bad.parquet")
    ds = ray_cluster.data.read_parquet(str(tmp_path / "bad.parquet"))
    out = bert_rs.ray.embed_dataset(ds, column="text", model=minilm_dir, concurrency=1)
    out.write_parquet(str(tmp_path / "out"), **IO)
    t = read_back(tmp_path / "out")
    errors = t["error"].to_pylist()
    assert errors[:3] == [None, None, None]
    assert errors[3] == "not valid UTF-8 (at byte 3 of the text)"
    assert errors[4] == "the text is null"
    assert t["truncated"].to_pylist() == [False, False, True, False, False]
    emb = np.array(t["embedding"].to_pylist(), dtype=np.float32)
    assert np.isnan(emb[3:]).all()
    ref = bert_rs.SentenceTransformer(minilm_dir).encode(good)
    assert np.abs(emb[:3] - ref).max() <= 1e-6  # the empty text is embedded, the long one truncated


def run_udf(ray, udf, model: str, texts: list[str]) -> list[dict]:
    """`udf` mapped over `texts` (with ids) on one worker; the rows in id order."""
    ds = ray.data.from_items([{"id": i, "text": t} for i, t in enumerate(texts)])
    out = ds.map_batches(
        udf, fn_constructor_kwargs={"model": model}, batch_format="pyarrow", concurrency=1, num_cpus=1
    )
    return sorted(out.take_all(), key=lambda r: r["id"])


def test_classification_and_ner_columns(ray_cluster):
    from conftest import golden_json, model_dir

    g = golden_json("pipe-seqcls")
    plain = [c for c in g["cases"] if not c["kwargs"] and "text_pair" not in c]
    rows = run_udf(ray_cluster, bert_rs.ray.TextClassifier, model_dir("pipe-seqcls"), [c["text"] for c in plain])
    for r, c in zip(rows, plain):
        assert r["label"] == c["output"][0]["label"]
        assert abs(r["score"] - c["output"][0]["score"]) <= 2e-5
    tg = golden_json("pipe-tokcls")
    simple = [c for c in tg["cases"] if c["kwargs"] == {"aggregation_strategy": "simple"}]
    rows = run_udf(ray_cluster, bert_rs.ray.EntityTagger, model_dir("pipe-tokcls"), [c["text"] for c in simple])
    for r, c in zip(rows, simple):
        got = [{k: v for k, v in e.items() if v is not None} for e in r["entities"]]
        assert [e["word"] for e in got] == [e["word"] for e in c["output"]]
        assert [e["entity_group"] for e in got] == [e["entity_group"] for e in c["output"]]
