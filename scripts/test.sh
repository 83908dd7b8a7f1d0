#!/usr/bin/env bash
# The README's test command: every Rust test (`cargo test`), then the Python package built into a
# virtual environment (one `pip install` of this repository, maturin through build isolation) and
# its pytest suite (goldens, exceptions, threads, fork, a local Ray cluster).
#   VENV=DIR   the environment to use or create (default .venv-test in the repository)
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test

VENV=${VENV:-.venv-test}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q ".[test]"
# The Ray tests compare with `bert embed` of this checkout.
cargo build --release -p bert-cli
RAY_USAGE_STATS_ENABLED=0 "$VENV/bin/python" -m pytest -q python/tests
