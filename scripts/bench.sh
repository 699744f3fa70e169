#!/usr/bin/env bash
# Benchmarks (`make bench`): one run on this machine writes stress/reports/bench-<date>.md and a
# PNG chart beside it (throughput and p50/p99 against clients), from the JSON lines it appends to
# stress/reports/bench.jsonl (stress/bench_report.py):
#   - the engine layouts per model in one process (`cargo xtask bench-executor`), the reference;
#   - preprocessing per image (640x480, 4000x3000 and 4240x2832 JPEG, a large PNG): the plain
#     `image` decode + resize against the worker's path, on one thread (`xtask bench-e2e
#     --preprocess-only`);
#   - per model (fp32 and int8 synthetic ResNet-50 graphs by default), a private stack (`xtask
#     stack`: Redis, api, release builds, free ports) with one default worker, then with two:
#     raw ONNX Runtime session.run at batch 1 with the worker's settings, and unique uploads (a
#     JPEG comment per request defeats the result cache) at 1, 4, 16 and 64 clients for
#     BENCH_SECONDS each, with the CPU time per image of each process of the stack (redis, api,
#     workers, the load generator) from /proc.
# Options: BENCH_SECONDS=20 (3 for a quick check), BENCH_MODELS="resnet50-synthetic
# resnet50-synthetic-int8", BENCH_CLIENTS_LIST="1 4 16 64", BENCH_ITERATIONS=100,
# BENCH_TWO_WORKERS=1 (0: skip the two-worker stacks), BENCH_PATHS="predict v2" (the routes the
# uploads go to: /predict, and the V2 protocol's infer with one binary BYTES row; the V2 points'
# setup says ", v2").
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
secs="${BENCH_SECONDS:-20}"
jsonl="$repo/stress/reports/bench.jsonl"

# Inside a stack (xtask runs this script again with --measure MODEL and STACK_* set).
if [ "${1:-}" = --measure ]; then
  model="$2"
  echo "== $model, ${BENCH_SETUP:-}"
  watch=()
  for kv in ${STACK_PIDS:-}; do watch+=(--watch "$kv"); done
  for path in ${BENCH_PATHS:-predict v2}; do
    setup="${BENCH_SETUP:-}"
    [ "$path" = predict ] || setup="$setup, $path"
    for c in ${BENCH_CLIENTS_LIST:-1 4 16 64}; do
      "${BIN_DIR:-target/release}/xtask" bench-e2e --model "$model" --api-url "$STACK_API_URL" \
        --jobs 1000000 --duration-secs "$secs" --clients "$c" --iterations "${BENCH_ITERATIONS:-100}" \
        --path "$path" --setup "$setup" \
        --image "$repo/../shared/testdata/grace_hopper.jpg" --report "$jsonl" "${watch[@]}"
    done
  done
  exit 0
fi

command -v cargo >/dev/null 2>&1 || { echo "bench: cargo not found: install the Rust toolchain (rustup)" >&2; exit 1; }
scripts/install-ort.sh >/dev/null
models_dir="${BENCH_MODELS_DIR:-$repo/../shared/models}"
[ -d "$models_dir" ] || models_dir="${MODELS_DIR:-$repo/models}"
cargo build --release -p api -p worker -p xtask
export BENCH_RUN="${BENCH_RUN:-$(date -u +%Y%m%d-%H%M%S)}"

echo "== preprocessing (one thread)"
target/release/xtask bench-e2e --preprocess-only --model efficientnet-lite0 --seconds "$secs" \
  --image "$repo/../shared/testdata/grace_hopper.jpg" --report "$jsonl"

# The engine layouts of each model in one process on this machine (1 x N threads, N x 1 thread,
# the executor's choice): the reference the end-to-end points are compared with, same run.
for model in ${BENCH_MODELS:-resnet50-synthetic resnet50-synthetic-int8}; do
  echo "== engine layouts, $model"
  target/release/xtask bench-executor --models-dir "$models_dir" \
    --model "$model" --seconds "$secs" --rounds 2 \
    --image "$repo/../shared/testdata/grace_hopper.jpg" --report "$jsonl"
done

workers_list="1"
[ "${BENCH_TWO_WORKERS:-1}" = 1 ] && workers_list="1 2"
for model in ${BENCH_MODELS:-resnet50-synthetic resnet50-synthetic-int8}; do
  for n in $workers_list; do
    BENCH_SETUP="$n worker(s), default settings" target/release/xtask stack --profile release \
      --workers "$n" --models "$model" --default-model "$model" \
      --models-dir "$models_dir" --env RUST_LOG=warn --env ALLOW_BENCHMARK_MODELS=true --env UPLOAD_RATE_PER_ADDRESS=off \
      --env UPLOAD_RATE_PER_USER=off -- "$0" --measure "$model"
  done
done

.venv/bin/python stress/bench_report.py "$BENCH_RUN" "$jsonl"
