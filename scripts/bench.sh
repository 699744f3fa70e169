#!/usr/bin/env bash
# Benchmarks (`make bench`): for each model, in one run on this machine,
#   (a) raw ONNX Runtime session.run throughput at batch 1 with the worker's thread settings,
#   (b) the same image pushed end-to-end through HTTP -> Redis -> one worker -> result,
# and the ratio (b)/(a). Starts its own Redis, API and worker (release builds) on free ports.
# Results: stress/reports/bench.jsonl (one JSON line per model) and the printed table.
# Options: BENCH_MODELS="resnet50-synthetic efficientnet-lite0" BENCH_JOBS=100 BENCH_CLIENTS=4
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
command -v cargo >/dev/null 2>&1 || { echo "bench: cargo not found: install the Rust toolchain (rustup)" >&2; exit 1; }
scripts/install-ort.sh >/dev/null
# shellcheck source=scripts/stack-env.sh
source "$repo/scripts/stack-env.sh"
models_dir="${BENCH_MODELS_DIR:-$repo/../shared/models}"
[ -d "$models_dir" ] || models_dir="$MODELS_DIR"
cargo build --release -p api -p worker

work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
# CPU time (ms) a process has used so far: utime + stime from /proc/PID/stat.
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{ print int(($14 + $15) * 1000 / hz) }' "/proc/$1/stat"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

rport="$(free_port)"
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no >"$work/redis.log" 2>&1 &
pids+=($!)
export REDIS_URL="redis://127.0.0.1:$rport" MODELS_DIR="$models_dir" APP_ENV=dev RUST_LOG=warn \
  DATABASE_URL="sqlite://$work/app.db" JWT_SECRET="bench-secret-bench-secret-bench-secret-00"

for model in ${BENCH_MODELS:-resnet50-synthetic efficientnet-lite0}; do
  aport="$(free_port)"
  API_BIND="127.0.0.1:$aport" DEFAULT_MODEL="$model" target/release/api >"$work/api-$model.log" 2>&1 &
  api_pid=$!
  pids+=($api_pid)
  MODELS="$model" target/release/worker >"$work/worker-$model.log" 2>&1 &
  worker_pid=$!
  pids+=($worker_pid)
  for _ in $(seq 1 300); do
    curl -fs "http://127.0.0.1:$aport/ready" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fs "http://127.0.0.1:$aport/ready" >/dev/null || { cat "$work/api-$model.log" "$work/worker-$model.log"; exit 1; }
  echo "== $model"
  declare -A before=([api]="$(cpu_ms "$api_pid")" [worker]="$(cpu_ms "$worker_pid")" [redis]="$(cpu_ms "${pids[0]}")")
  target/release/worker bench --model "$model" --api-url "http://127.0.0.1:$aport" \
    --jobs "${BENCH_JOBS:-100}" --clients "${BENCH_CLIENTS:-4}" --iterations "${BENCH_ITERATIONS:-100}" \
    --image "$repo/../shared/testdata/grace_hopper.jpg" --report "$repo/stress/reports/bench.jsonl"
  # Where the end-to-end CPU went (the raw phase runs in the bench process, not in these).
  jobs="${BENCH_JOBS:-100}"
  printf 'CPU per end-to-end image:'
  for name in api worker redis; do
    case "$name" in api) pid="$api_pid" ;; worker) pid="$worker_pid" ;; redis) pid="${pids[0]}" ;; esac
    printf ' %s %.1f ms' "$name" "$(awk -v a="$(cpu_ms "$pid")" -v b="${before[$name]}" -v n="$jobs" 'BEGIN { print (a - b) / (n + 1) }')"
  done
  echo
  kill "$api_pid" "$worker_pid"
  wait "$api_pid" "$worker_pid" 2>/dev/null || true
done
