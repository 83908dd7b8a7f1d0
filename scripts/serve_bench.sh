#!/usr/bin/env bash
# Load benchmark of `bert serve` on loopback, against `bert bench` W1/W3 measured in the same run
# (this machine's speed drifts; only same-run ratios mean something).
#
#   cargo build --release -p bert-cli && cargo build --release -p bert-server --example loadgen
#   scripts/serve_bench.sh                       # 1, 8, 64 clients x 30 s, then a soak
#   SECONDS_PER_RUN=10 SOAK_SECONDS=0 scripts/serve_bench.sh
#
# 1. `bert bench --workload W1,W3` (all-MiniLM-L6-v2): W1 median ms, W3 real tokens/s.
# 2. `bert serve` on 127.0.0.1, then the loadgen example (one keep-alive connection per client):
#    W1's text from 1 client (median latency vs W1), then corpus lines (scripts/peers' corpus, one
#    line per request, `"truncate": true`) from 1, 8 and 64 clients (tokens/s vs W3, p99, statuses).
# 3. Soak: 64 clients for SOAK_SECONDS (default 600) while the server's RSS is sampled every 10 s.
set -euo pipefail
cd "$(dirname "$0")/.."
BERT_BIN=${BERT_BIN:-target/release/bert}
LOADGEN=${LOADGEN:-target/release/examples/loadgen}
MODEL=${MODEL:-sentence-transformers/all-MiniLM-L6-v2}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-30}
SOAK_SECONDS=${SOAK_SECONDS:-600}
CLIENTS=${CLIENTS:-"1 8 64"}
THREADS=${THREADS:-$(nproc)}
corpus=scripts/peers/data/fortunes-en.txt
work=$(mktemp -d)
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores; threads $THREADS; $(date -u +%FT%TZ)"
"$BERT_BIN" bench --model "$MODEL" --workload W1,W3 --peer-protocol --threads "$THREADS" > "$work/bench.jsonl"
read -r w1_ms w3_tps < <(python3 - "$work/bench.jsonl" <<'PY'
import json, statistics, sys
rows = {r["workload"]: r for r in map(json.loads, open(sys.argv[1]))}
w1 = statistics.median(rows["W1"]["times_ms"])
w3 = rows["W3"]["real_tokens"] / (statistics.median(rows["W3"]["times_ms"]) / 1e3)
print(f"{w1:.3f} {w3:.0f}")
PY
)
echo "bert bench: W1 median $w1_ms ms, W3 $w3_tps tokens/s"

"$BERT_BIN" serve --model "$MODEL" --host 127.0.0.1 --port 0 --threads "$THREADS" 2> "$work/serve.log" &
server=$!
for _ in $(seq 600); do
  grep -q "listening on http://" "$work/serve.log" && break
  kill -0 "$server" 2>/dev/null || { cat "$work/serve.log"; exit 1; }
  sleep 0.1
done
addr=$(grep -o 'listening on http://[^ ]*' "$work/serve.log" | head -1 | sed 's|listening on http://||')
rss() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$server/status"; }
echo "bert serve at $addr, RSS $(rss) MB after start"

# (Into a file, then shown: `| head -1` would cut the JSON line off.)
"$LOADGEN" --addr "$addr" --text "Hello, my dog is cute" --clients 1 --seconds "$SECONDS_PER_RUN" > "$work/w1.txt"
head -1 "$work/w1.txt"
p50=$(tail -1 "$work/w1.txt" | python3 -c 'import json,sys; print(json.load(sys.stdin)["p50_ms"])')
echo "  1 client, W1 text: median $p50 ms vs bert bench W1 $w1_ms ms: $(python3 -c "print(f'{$p50 - $w1_ms:+.3f}')") ms"
# On a busy machine minutes apart mean little: W1 and the 1-client median, interleaved in rounds.
diffs=""
for r in $(seq "${W1_ROUNDS:-5}"); do
  "$BERT_BIN" bench --model "$MODEL" --workload W1 --peer-protocol --threads "$THREADS" > "$work/w1b.jsonl"
  b=$(python3 -c 'import json,statistics,sys; print("%.3f" % statistics.median(json.load(open(sys.argv[1]))["times_ms"]))' "$work/w1b.jsonl")
  "$LOADGEN" --addr "$addr" --text "Hello, my dog is cute" --clients 1 --seconds 3 > "$work/w1r.txt"
  s=$(tail -1 "$work/w1r.txt" | python3 -c 'import json,sys; print(json.load(sys.stdin)["p50_ms"])')
  d=$(python3 -c "print(f'{$s - $b:+.3f}')")
  echo "  round $r: bert bench W1 $b ms, 1-client median $s ms: $d ms"
  diffs="$diffs $d"
done
echo "  median over rounds: $(python3 -c "import statistics; print(f'{statistics.median([$(echo $diffs | tr ' ' ',')]):+.3f}')") ms"
for c in $CLIENTS; do
  "$LOADGEN" --addr "$addr" --corpus "$corpus" --lines 1024 --clients "$c" --seconds "$SECONDS_PER_RUN" > "$work/c$c.txt"
  head -1 "$work/c$c.txt"
  tps=$(tail -1 "$work/c$c.txt" | python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens_per_s"])')
  echo "  $c clients: $(python3 -c "print(f'{$tps / $w3_tps * 100:.1f}')")% of W3 tokens/s; RSS $(rss) MB"
done

if [ "$SOAK_SECONDS" -gt 0 ]; then
  echo "soak: 64 clients for $SOAK_SECONDS s; RSS MB every 10 s:"
  "$LOADGEN" --addr "$addr" --corpus "$corpus" --clients 64 --seconds "$SOAK_SECONDS" > "$work/soak.txt" &
  gen=$!
  samples=""
  while kill -0 "$gen" 2>/dev/null; do
    samples="$samples $(rss)"
    sleep 10
  done
  wait "$gen"
  echo " $samples"
  head -1 "$work/soak.txt"
fi
kill -TERM "$server"
wait "$server"
echo "bert serve exited with status $?"
server=""
