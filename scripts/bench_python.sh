#!/usr/bin/env bash
# The Python package against `bert` and sentence-transformers, interleaved in ROUNDS rounds on
# one model (scripts/peers: bench_py.py's peers bert-rs-py / st-torch, workloads W1, E3, R3):
#   W1  `bert bench` W1 vs bert_rs `model(**inputs)` (latency, ms)
#   E3  `bert embed` on the W3 corpus (1024 lines) vs bert_rs / sentence-transformers `encode`
#   R3  `bert embed` on that corpus x4 vs the Ray Data job (THREADS workers x 1 CPU)
# PY: a Python with bert_rs installed (and ray[data], tokenizers); ST_PY: one with
# sentence-transformers (st-torch is skipped when it is unset). Results: $OUT (JSON lines).
#   PY=.venv-test/bin/python ST_PY=/tmp/ref/bin/python MODEL=DIR scripts/bench_python.sh
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BERT=${BERT_BIN:-$REPO/target/release/bert}
PY=${PY:-$REPO/.venv-test/bin/python}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
MODEL=${MODEL:?MODEL=a sentence-transformers model directory (all-MiniLM-L6-v2)}
CORPUS=$REPO/scripts/peers/data/fortunes-en.txt
OUT=${OUT:-/tmp/bench_python.jsonl}
W=$(mktemp -d)
head -n 1024 <(grep -v '^[[:space:]]*$' "$CORPUS") > "$W/e3.txt"
for _ in 1 2 3 4; do cat "$W/e3.txt"; done > "$W/r3.txt"
: > "$OUT"

embed() { # FILE WORKLOAD -> one JSON line from bert embed's own tokens/s report
  "$BERT" embed -m "$MODEL" -i "$1" -o "$W/e.npy" --threads "$THREADS" 2>&1 >/dev/null |
    sed -n 's/^embedded \([0-9]*\) inputs (\([0-9]*\) tokens) in \([0-9.]*\) s.*/{"peer": "bert embed", "workload": "'"$2"'", "n_seqs": \1, "real_tokens": \2, "times_ms": [\3e3]}/p'
}

for r in $(seq "$ROUNDS"); do
  echo "round $r" >&2
  "$BERT" bench --peer-protocol --peer bert-rs --model "$MODEL" --workload W1 --threads "$THREADS" >> "$OUT"
  "$PY" "$REPO/scripts/peers/bench_py.py" --peer bert-rs-py --model "$MODEL" --workload W1 --threads "$THREADS" >> "$OUT"
  embed "$W/e3.txt" E3 >> "$OUT"
  "$PY" "$REPO/scripts/peers/bench_py.py" --peer bert-rs-py --model "$MODEL" --workload E3 --threads "$THREADS" >> "$OUT"
  [[ -z "${ST_PY:-}" ]] || "$ST_PY" "$REPO/scripts/peers/bench_py.py" --peer st-torch --model "$MODEL" --workload E3 --threads "$THREADS" >> "$OUT"
  embed "$W/r3.txt" R3 >> "$OUT"
  "$PY" "$REPO/scripts/peers/bench_py.py" --peer bert-rs-py --model "$MODEL" --workload R3 --threads "$THREADS" >> "$OUT"
  [[ -z "${ST_PY:-}" ]] || "$ST_PY" "$REPO/scripts/peers/bench_py.py" --peer st-torch --model "$MODEL" --workload R3 --threads "$THREADS" >> "$OUT"
done
rm -rf "$W"
"$PY" - "$OUT" <<'PYEOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {}
for r in rows:
    t = statistics.median(r["times_ms"])
    by.setdefault((r["workload"], r["peer"]), []).append((t, r))
print("| workload | peer | median ms | tokens/s | worker peak RSS MB |")
print("|---|---|---:|---:|---:|")
for (w, p), v in sorted(by.items()):
    ms = statistics.median(t for t, _ in v)
    tok = v[0][1].get("real_tokens")
    rate = f"{tok / ms * 1e3:,.0f}" if tok and w != "W1" else ""
    print(f"| {w} | {p} | {ms:,.2f} | {rate} | {v[0][1].get('worker_peak_rss_mb', '')} |")
PYEOF
