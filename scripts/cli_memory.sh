#!/usr/bin/env bash
# Peak RSS and wall time of the streaming subcommands on corpora of growing size: `bert encode
# --input` printing its summary and writing --output, and `bert embed --input` writing .npy.
# Memory must stay flat as the line count grows (batches stream through, files are written as they
# complete).
#
#   BERT_BIN=target/release/bert LINES="10000 100000" scripts/cli_memory.sh
#   LINES=1000000 JOBS=embed-npy EXTRA="--max-length 8" scripts/cli_memory.sh
#
# The corpus is scripts/peers/data/fortunes-en.txt repeated to LINES lines. EXTRA adds flags to
# every run (default --max-length 16, which keeps the runs short and the 100,000-line encode
# output near 2.5 GB; pass EXTRA= for full-length inputs). Output files go to OUT_DIR (default: a
# temporary directory) and are deleted after each run.
set -euo pipefail
cd "$(dirname "$0")/.."
BERT_BIN=${BERT_BIN:-target/release/bert}
LINES=${LINES:-"10000 100000"}
JOBS=${JOBS:-"encode-summary encode-output embed-npy"}
EXTRA=${EXTRA---max-length 16}
OUT_DIR=${OUT_DIR:-$(mktemp -d)}
corpus=scripts/peers/data/fortunes-en.txt
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

printf '%-8s %-16s %12s %10s %14s\n' lines job "peak RSS MB" "wall s" "output bytes"
for n in $LINES; do
  file=$work/corpus-$n.txt
  : > "$file"
  while [ "$(wc -l < "$file")" -lt "$n" ]; do cat "$corpus" >> "$file"; done
  head -n "$n" "$file" > "$file.tmp" && mv "$file.tmp" "$file"
  for job in $JOBS; do
    out=""
    case $job in
      encode-summary) args=(encode) ;;
      encode-output) out=$OUT_DIR/encode-$n.safetensors; args=(encode --output "$out") ;;
      embed-npy) out=$OUT_DIR/embed-$n.npy; args=(embed --output "$out") ;;
    esac
    # shellcheck disable=SC2086
    args+=(--quiet --input "$file" $EXTRA)
    start=$(date +%s.%N)
    /usr/bin/time -f '%M' -o "$work/rss" "$BERT_BIN" "${args[@]}" > /dev/null
    end=$(date +%s.%N)
    size=0
    if [ -n "$out" ]; then size=$(stat -c %s "$out"); rm -f "$out"; fi
    awk -v n="$n" -v j="$job" -v kb="$(cat "$work/rss")" -v s="$start" -v e="$end" -v b="$size" \
      'BEGIN { printf "%-8s %-16s %12.0f %10.1f %14s\n", n, j, kb / 1024, e - s, b }'
  done
done
