#!/usr/bin/env bash
# Peer benchmark with bert-rs as more peers: runs scripts/peers/run_peers.sh with
#   EXTRA_PEERS="bert-rs=$REPO/target/release/bert bench --peer-protocol;
#                bert-rs-f16=$REPO/target/release/bert bench --peer-protocol --dtype f16;
#                bert-rs-int8=$REPO/target/release/bert bench --peer-protocol --dtype int8"
# (bert-rs-f16 and bert-rs-int8, the latter beside the Python peer ort-int8: docs/quantization.md;
# BERT_DTYPES="f32" drops them, BERT_DTYPES="f32 int8" keeps one, BERT_DTYPES="f32 bf16" adds
# bert-rs-bf16, inference and mixed-precision training, beside the Python peer torch-bf16)
# so each measurement is a fresh process
#   bert bench --peer-protocol --peer bert-rs --model DIR --workload W1|W2|W2F|W3|W3S|W3U \
#              --corpus FILE --iters N --warmup N
# printing one JSON line (protocol: scripts/peers/README.md).
#
# Setup of /tmp/ref and /tmp/peerbench: scripts/peers/README.md. Build first, not during the run:
#   cargo build --release -p bert-cli
# Every run_peers.sh knob passes through (MODELS, WORKLOADS, PEERS, ROUNDS, THREADS, ITERS_W*, SKIP,
# OUT, ...). BERT_BIN overrides the binary; EXTRA_PEERS given here are appended to bert-rs.
# Examples:
#   scripts/bench_peers.sh
#   ROUNDS=1 WORKLOADS="W1 W2F" ITERS_W1=5 ITERS_W2=1 MODELS=/tmp/peerbench/models/minilm-l6 scripts/bench_peers.sh
#   PEERS="ort-opt candle-native" WORKLOADS="W2 W2F" scripts/bench_peers.sh
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BERT_BIN=${BERT_BIN:-$REPO/target/release/bert}

if [[ ! -x "$BERT_BIN" ]]; then
  echo "bench_peers.sh: $BERT_BIN not found; run: cargo build --release -p bert-cli" >&2
  exit 1
fi
if [[ "$BERT_BIN" == *[[:space:]]* ]]; then
  echo "bench_peers.sh: run_peers.sh splits peer commands on whitespace; $BERT_BIN contains some" >&2
  exit 1
fi
if ! "$BERT_BIN" bench --help >/dev/null 2>&1; then
  echo "bench_peers.sh: warning: '$BERT_BIN bench --help' failed; bert-rs measurements will fail" >&2
fi

OURS="bert-rs=$BERT_BIN bench --peer-protocol"
for dtype in ${BERT_DTYPES:-f32 f16 int8}; do
  [[ "$dtype" == f32 ]] || OURS="$OURS;bert-rs-$dtype=$BERT_BIN bench --peer-protocol --dtype $dtype"
done
export EXTRA_PEERS="$OURS${EXTRA_PEERS:+;$EXTRA_PEERS}"
# Training (T1, T2) runs in f32 and bf16 (mixed precision) only: the f16 and int8 peers sit
# those workloads out.
for dtype in ${BERT_DTYPES:-f32 f16 int8}; do
  [[ "$dtype" == f32 || "$dtype" == bf16 ]] || SKIP="${SKIP:+$SKIP }*:T1:bert-rs-$dtype *:T2:bert-rs-$dtype"
done
export SKIP
exec "$REPO/scripts/peers/run_peers.sh"
