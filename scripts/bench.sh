#!/usr/bin/env bash
# Benchmarks (`make bench`): for each model, in one run on this machine,
#   (a) raw ONNX Runtime session.run throughput at batch 1 with the worker's thread settings,
#   (b) the same image pushed end-to-end through HTTP -> Redis -> one worker -> result,
# and the ratio (b)/(a). Each model gets a private stack (`xtask stack`: Redis, api, one
# worker, release builds, free ports).
# Results: stress/reports/bench.jsonl (one JSON line per model) and the printed table.
# Options: BENCH_MODELS="resnet50-synthetic efficientnet-lite0" BENCH_JOBS=100 BENCH_CLIENTS=4
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
jobs="${BENCH_JOBS:-100}"

# Inside a stack (xtask runs this script again with --measure MODEL and STACK_* set).
if [ "${1:-}" = --measure ]; then
  model="$2"
  pid_of() { local kv; for kv in $STACK_PIDS; do [ "${kv%%=*}" = "$1" ] && echo "${kv#*=}"; done; }
  # CPU time (ms) a process has used so far: utime + stime from /proc/PID/stat.
  cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{ print int(($14 + $15) * 1000 / hz) }' "/proc/$1/stat"; }
  names=(api worker-1 redis)
  declare -A before
  for n in "${names[@]}"; do before[$n]="$(cpu_ms "$(pid_of "$n")")"; done
  echo "== $model"
  "${BIN_DIR:-target/release}/worker" bench --model "$model" --api-url "$STACK_API_URL" \
    --jobs "$jobs" --clients "${BENCH_CLIENTS:-4}" --iterations "${BENCH_ITERATIONS:-100}" \
    --image "$repo/../shared/testdata/grace_hopper.jpg" --report "$repo/stress/reports/bench.jsonl"
  # Where the end-to-end CPU went (the raw phase runs in the bench process, not in these).
  printf 'CPU per end-to-end image:'
  for n in "${names[@]}"; do
    printf ' %s %.1f ms' "${n%-1}" "$(awk -v a="$(cpu_ms "$(pid_of "$n")")" -v b="${before[$n]}" -v n="$jobs" 'BEGIN { print (a - b) / (n + 1) }')"
  done
  echo
  exit 0
fi

command -v cargo >/dev/null 2>&1 || { echo "bench: cargo not found: install the Rust toolchain (rustup)" >&2; exit 1; }
scripts/install-ort.sh >/dev/null
models_dir="${BENCH_MODELS_DIR:-$repo/../shared/models}"
[ -d "$models_dir" ] || models_dir="${MODELS_DIR:-$repo/models}"
cargo build --release -p api -p worker -p xtask

for model in ${BENCH_MODELS:-resnet50-synthetic efficientnet-lite0}; do
  target/release/xtask stack --profile release --workers 1 --models "$model" --default-model "$model" \
    --models-dir "$models_dir" --env RUST_LOG=warn --env ALLOW_BENCHMARK_MODELS=true --env UPLOAD_RATE_PER_ADDRESS=off \
    --env UPLOAD_RATE_PER_USER=off -- "$0" --measure "$model"
done
