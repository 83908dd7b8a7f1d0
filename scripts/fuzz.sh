#!/usr/bin/env bash
# Fuzzes the readers of downloaded files (docs/fuzzing.md): builds the libFuzzer targets of fuzz/ on
# stable Rust, then runs each target in turn for a fixed time and prints its figures.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]    (default 600 s, every target)
#   scripts/fuzz.sh build                                (only build the targets)
#
# One libFuzzer process at a time, one job, `nice`d. Corpora grow under $FUZZ_WORK (default
# /tmp/bert-fuzz), seeded from fuzz/seeds and fuzz/corpus; findings land in $FUZZ_WORK/artifacts/.
# Environment: FUZZ_WORK, FUZZ_TIMEOUT (s per input, default 10), FUZZ_RSS_MB (default 2048).
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(pytorch_bin pickle safetensors json tokenizer_json vocab_txt)
work=${FUZZ_WORK:-/tmp/bert-fuzz}
triple=$(rustc -vV | sed -n 's/^host: //p')

# cargo-fuzz's coverage instrumentation, without a sanitizer (the readers are safe Rust), so stable
# rustc accepts it. `--target` keeps the flags off build scripts and proc-macros. Debug assertions
# and overflow checks are on (fuzz/Cargo.toml), so an arithmetic overflow is a crash too.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cforce-frame-pointers"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target/fuzz}
nice -n 10 cargo build --manifest-path fuzz/Cargo.toml --release --target "$triple" --bins
bin=$CARGO_TARGET_DIR/$triple/release
[ "$secs" != build ] || exit 0

mkdir -p "$work/artifacts"
printf '%-15s %8s %10s %8s %8s %8s %10s %s\n' target secs execs 'avg ex/s' cov features corpus findings
for t in "${targets[@]}"; do
  corpus=$work/corpus/$t
  mkdir -p "$corpus" "$work/artifacts/$t"
  log=$work/$t.log
  # fork=1 keeps going after a crash, timeout or OOM (each is saved to artifacts/) so that one run
  # gives the figures of the whole period.
  nice -n 10 "$bin/$t" "$corpus" fuzz/seeds/"$t" $( [ -d fuzz/corpus/"$t" ] && echo fuzz/corpus/"$t" ) \
    -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
    -max_total_time="$secs" -timeout="${FUZZ_TIMEOUT:-10}" -rss_limit_mb="${FUZZ_RSS_MB:-2048}" \
    -max_len=262144 -artifact_prefix="$work/artifacts/$t/" -print_final_stats=1 >"$log" 2>&1 || true
  # The last status line: "#N: cov: C ft: F corp: K exec/s: E oom/timeout/crash: a/b/c time: Ts".
  last=$(grep -E '^#[0-9]+: cov:' "$log" | tail -1 || true)
  execs=$(sed -nE 's/^#([0-9]+):.*/\1/p' <<<"$last")
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
  corp=$(sed -nE 's/.* corp: ([0-9]+).*/\1/p' <<<"$last")
  # Fork mode's exec/s is the last job's; the average over the run is what compares.
  t_s=$(sed -nE 's/.* time: ([0-9]+)s.*/\1/p' <<<"$last")
  eps=$( [ -n "$execs" ] && [ "${t_s:-0}" -gt 0 ] && echo $((execs / t_s)) || echo '?')
  found=$(sed -nE 's/.* oom\/timeout\/crash: ([0-9/]+).*/\1/p' <<<"$last")
  printf '%-15s %8s %10s %8s %8s %8s %10s %s\n' "$t" "$secs" "${execs:-?}" "${eps:-?}" "${cov:-?}" \
    "${ft:-?}" "${corp:-?}" "oom/timeout/crash ${found:-?} ($(ls "$work/artifacts/$t" | wc -l) files)"
done
