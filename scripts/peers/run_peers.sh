#!/usr/bin/env bash
# Side-by-side CPU benchmark of BERT inference peers (see README.md / RESULTS.md).
#
# For every round, model and workload, each peer runs once in a fresh process
# (order rotated each round: A,B,C / B,C,A / C,A,B ...), so all peers see the same
# host noise; summarize.py then quotes medians over rounds.
#
# Environment knobs (defaults in brackets):
#   MODELS     model dirs                      [$ROOT/models/minilm-l6 $ROOT/models/bert-base-random]
#   WORKLOADS  subset of W1 W2 W3 (+ extras W2F W3S W3U, training T1 T2, see common.py) [W1 W2 W3]
#   PEERS      peer names                      [torch-sdpa torch-eager ort-raw ort-opt ort-int8 candle candle-native]
#              (also torch-bf16: torch-sdpa under bf16 autocast, inference and training)
#   ROUNDS     interleaved repetitions         [3]
#   THREADS    threads for every peer          [2]
#   ITERS_W1 / ITERS_W2 / ITERS_W3             [60 / 10 (minilm) 4 (others) / 1] timed iterations per process
#              (ITERS_W2 and its warm-up also apply to W2F)
#   SKIP       space-separated model:workload:peer triples to skip (model = dir basename, * = any)
#   EXTRA_PEERS  'name=command;name2=command2' extra peers following the protocol (README.md);
#              they are appended to PEERS. The command gets:
#              --model DIR --workload W --corpus FILE --iters N --warmup N --peer NAME
#              (a command is split on whitespace: no quoting inside it)
#   ITERS_T1 / ITERS_T2                         [30 (minilm) 6 (others) / 5 (minilm) 2 (others)] timed
#              training steps per process (warm-up: T1 2 batches, T2 1 step)
#   SST2       SST-2 train.tsv, passed as --corpus to T1 [/work/shared/data/sst2/train.tsv]
#   OUT        result dir                      [$ROOT/results/<UTC timestamp>]
#   PY, CANDLE_BIN, CANDLE_NATIVE_BIN, PEERBENCH_ROOT (=/tmp/peerbench)
#   CORPUS     benchmark corpus                [data/fortunes-en.txt next to this script]
#
# Example: ROUNDS=3 WORKLOADS="W1 W2" PEERS="ort-opt candle" ./run_peers.sh
#          EXTRA_PEERS='mybert=/path/to/mybert-bench' ./run_peers.sh
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=${PEERBENCH_ROOT:-/tmp/peerbench}
PY=${PY:-/tmp/ref/bin/python}
MODELS=${MODELS:-"$ROOT/models/minilm-l6 $ROOT/models/bert-base-random"}
WORKLOADS=${WORKLOADS:-"W1 W2 W3"}
PEERS=${PEERS:-"torch-sdpa torch-eager ort-raw ort-opt ort-int8 candle candle-native"}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
CORPUS=${CORPUS:-$HERE/data/fortunes-en.txt}
OUT=${OUT:-$ROOT/results/$(date -u +%Y%m%dT%H%M%SZ)}
CANDLE_BIN=${CANDLE_BIN:-$ROOT/target/generic/release/candle-bert-bench}
CANDLE_NATIVE_BIN=${CANDLE_NATIVE_BIN:-$ROOT/target/native/release/candle-bert-bench}
SKIP=${SKIP:-}
SST2=${SST2:-/work/shared/data/sst2/train.tsv}
EXTRA_PEERS=${EXTRA_PEERS:-}

export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS \
       RAYON_NUM_THREADS=$THREADS BENCH_THREADS=$THREADS TOKENIZERS_PARALLELISM=true \
       PYTHONWARNINGS=ignore TRANSFORMERS_VERBOSITY=error HF_HUB_OFFLINE=1

declare -A EXTRA
if [[ -n "$EXTRA_PEERS" ]]; then
  IFS=';' read -ra _E <<< "$EXTRA_PEERS"
  for e in "${_E[@]}"; do EXTRA["${e%%=*}"]="${e#*=}"; PEERS="$PEERS ${e%%=*}"; done
fi

peer_cmd() {  # prints the command prefix for a peer
  case "$1" in
    torch-sdpa|torch-eager|torch-bf16|ort-raw|ort-opt|ort-int8) echo "$PY $HERE/bench_py.py --peer $1 --threads $THREADS" ;;
    candle)        echo "$CANDLE_BIN --peer candle" ;;
    candle-native) echo "$CANDLE_NATIVE_BIN --peer candle-native" ;;
    *) if [[ -n "${EXTRA[$1]:-}" ]]; then echo "${EXTRA[$1]} --peer $1"; else return 1; fi ;;
  esac
}

iters_for() {  # workload model -> "iters warmup"
  case "$1" in
    W1) echo "${ITERS_W1:-60} 10" ;;
    W2|W2F) if [[ "$2" == minilm* ]]; then echo "${ITERS_W2:-10} 2"; else echo "${ITERS_W2:-4} 1"; fi ;;
    W3*) echo "${ITERS_W3:-1} 2" ;;
    T1) if [[ "$2" == minilm* ]]; then echo "${ITERS_T1:-30} 2"; else echo "${ITERS_T1:-6} 2"; fi ;;
    T2) if [[ "$2" == minilm* ]]; then echo "${ITERS_T2:-5} 1"; else echo "${ITERS_T2:-2} 1"; fi ;;
    *) echo "unknown workload $1" >&2; return 1 ;;
  esac
}

skipped() {  # model workload peer
  local s sm sw sp
  for s in $SKIP; do
    IFS=':' read -r sm sw sp <<< "$s"
    [[ ( "$sm" == "*" || "$sm" == "$1" ) && ( "$sw" == "*" || "$sw" == "$2" ) && ( "$sp" == "*" || "$sp" == "$3" ) ]] && return 0
  done
  return 1
}

mkdir -p "$OUT"
RES="$OUT/results.jsonl"; ERR="$OUT/errors.log"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"; echo "host: $(hostname)"
  lscpu | grep -E 'Model name|^CPU\(s\)|Thread|Core|Socket|L1d|L2|L3|Hypervisor'
  grep -m2 -E '^(cpu family|model)[[:space:]]' /proc/cpuinfo | tr -s '\t' ' ' | tr '\n' ' '; echo
  grep -o -w -E 'avx2|fma|avx512f|avx_vnni|avx512_vnni|avx512_bf16|avx512_fp16|amx_tile|amx_int8|amx_bf16' /proc/cpuinfo | sort -u | tr '\n' ' '; echo
  echo "threads: $THREADS rounds: $ROUNDS models: $MODELS workloads: $WORKLOADS"
  echo "peers: $PEERS"; echo "skip: $SKIP"
  $PY -c 'import torch, transformers, onnxruntime, tokenizers, onnx, numpy; print("torch", torch.__version__, "| transformers", transformers.__version__, "| onnxruntime", onnxruntime.__version__, "| onnx", onnx.__version__, "| tokenizers", tokenizers.__version__, "| numpy", numpy.__version__)'
  cargo --version 2>/dev/null; rustc --version 2>/dev/null
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
echo "results -> $RES"

read -ra PEER_ARR <<< "$PEERS"
NP=${#PEER_ARR[@]}
for ((r = 1; r <= ROUNDS; r++)); do
  for model in $MODELS; do
    mname=$(basename "$model")
    for w in $WORKLOADS; do
      read -r iters warm <<< "$(iters_for "$w" "$mname")" || continue
      for ((k = 0; k < NP; k++)); do
        p=${PEER_ARR[$(( (k + r - 1) % NP ))]}
        skipped "$mname" "$w" "$p" && continue
        if ! cmd=$(peer_cmd "$p"); then echo "unknown peer $p" | tee -a "$ERR"; continue; fi
        corpus=$CORPUS; [[ "$w" == T1 ]] && corpus=$SST2
        t0=$(date +%s.%N)
        line=$($cmd --model "$model" --workload "$w" --corpus "$corpus" --iters "$iters" --warmup "$warm" \
               2>>"$OUT/stderr.log" | grep '^{' | tail -n 1)
        rc=$?
        dt=$(echo "$(date +%s.%N) - $t0" | bc)
        if [[ -n "$line" ]]; then
          echo "{\"round\": $r, ${line#\{}" >> "$RES"
          printf 'round %d %-18s %s %-14s ok  (%.0fs)\n' "$r" "$mname" "$w" "$p" "$dt"
        else
          echo "round $r $mname $w $p FAILED rc=$rc (see stderr.log)" | tee -a "$ERR"
        fi
      done
    done
  done
done
$PY "$HERE/summarize.py" "$RES" --corpus "$CORPUS" | tee "$OUT/table.md"
# Issue 19's targets (our engines against their peers, per-round ratios), where the run has them.
$PY "$HERE/targets.py" "$RES" | tee "$OUT/targets.md"
