#!/usr/bin/env bash
# The reduced-precision task check: each fine-tuned SST-2 classifier and CoNLL-2003 tagger scored
# with `bert evaluate --dtype f32` and `--dtype $DTYPE` (int8 by default; bf16, f16) on the full dev
# set, as a Markdown table (per seed f32, the dtype, delta in points; mean delta). The bounds: SST-2
# accuracy and CoNLL entity F1 each lose at most 0.5 point (docs/quantization.md, Accuracy).
#
#   scripts/dtype_task_accuracy.sh                  # int8, the models scripts/train_real_tasks.sh wrote
#   DTYPE=bf16 scripts/dtype_task_accuracy.sh       # bf16
#   scripts/dtype_task_accuracy.sh DIR...           # these fine-tuned directories (task from config.json)
#   TASKS=sst2 SEEDS="1 2" scripts/dtype_task_accuracy.sh
#
# Needs: target/release/bert (cargo build --release), the data in ../shared/data (DATA), the models
# (default OUT/bert-{sst2,conll}-SEED, OUT=/tmp/train-real as train_real_tasks.sh writes them).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
BERT=${BERT:-$ROOT/target/release/bert}
DATA=${DATA:-$ROOT/../shared/data}
OUT=${OUT:-/tmp/train-real}
SEEDS=${SEEDS:-"1 2 3"}
TASKS=${TASKS:-"sst2 conll"}
THREADS=${THREADS:-2}
DTYPE=${DTYPE:-int8}
[ -x "$BERT" ] || { echo "no $BERT: cargo build --release" >&2; exit 2; }

models=("$@")
if [ ${#models[@]} -eq 0 ]; then
  for task in $TASKS; do
    for seed in $SEEDS; do models+=("$OUT/bert-$task-$seed"); done
  done
fi

# One row per model: task, metric, model, f32, $DTYPE (fractions), tab-separated.
rows=()
for dir in "${models[@]}"; do
  [ -f "$dir/config.json" ] || { echo "no $dir/config.json (train it with scripts/train_real_tasks.sh)" >&2; exit 2; }
  if grep -q BertForTokenClassification "$dir/config.json"; then
    task=conll; metric=f1; dev=$DATA/conll2003/valid.txt
  else
    task=sst2; metric=accuracy; dev=$DATA/sst2/dev.tsv
  fi
  [ -f "$dev" ] || { echo "no $dev: set DATA to the directory with sst2/ and conll2003/" >&2; exit 2; }
  score=()
  for dtype in f32 "$DTYPE"; do
    echo "== $dir: $dtype" >&2
    json=$("$BERT" --threads "$THREADS" evaluate -m "$dir" --data "$dev" --dtype "$dtype")
    echo "   $json" >&2
    score+=("$(printf '%s' "$json" | sed -n "s/.*\"$metric\":\([-0-9.eE+]*\).*/\1/p")")
  done
  rows+=("$task"$'\t'"$metric"$'\t'"$(basename "$dir")"$'\t'"${score[0]}"$'\t'"${score[1]}")
done

echo "| task | metric | model | f32 | $DTYPE | $DTYPE - f32 (points) |"
echo "|---|---|---|---:|---:|---:|"
printf '%s\n' "${rows[@]}" | awk -F'\t' '
  { d = 100 * ($5 - $4)
    printf "| %s | %s | %s | %.2f | %.2f | %+.2f |\n", $1, $2, $3, 100 * $4, 100 * $5, d
    sum[$1] += d; n[$1]++; metric[$1] = $2; if (!($1 in seen)) { order[++k] = $1; seen[$1] = 1 } }
  END { for (i = 1; i <= k; i++) { t = order[i]
          printf "| %s | %s | mean of %d | | | %+.2f |\n", t, metric[t], n[t], sum[t] / n[t] } }'
