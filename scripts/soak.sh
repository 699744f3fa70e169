#!/usr/bin/env bash
# Soak test (`make soak`): release build, then a private stack in a temp dir (its own
# redis-server on a free port, the api, 2 workers, SQLite), stress/soak.py against it for
# $SOAK_MINUTES, then SIGTERM to everything (each process must exit 0).
#
# Env: SOAK_MINUTES (10), SOAK_USERS (8), WORKERS (2), MODELS (efficientnet-lite0),
# MODELS_DIR (<repo>/../shared/models), ORT_DYLIB_PATH (<repo>/.ort/libonnxruntime.so),
# INTRA_THREADS (1), KEEP_TMP=1 keeps the temp dir (logs). Extra arguments go to soak.py.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

say() { printf '==> %s\n' "$*"; }
die() { printf 'soak: %s\n' "$*" >&2; exit 1; }

command -v redis-server >/dev/null 2>&1 || die "redis-server not found (apt-get install -y redis-server)"
command -v python3 >/dev/null 2>&1 || die "python3 not found"

minutes="${SOAK_MINUTES:-10}"
users="${SOAK_USERS:-8}"
workers="${WORKERS:-2}"
export MODELS="${MODELS:-efficientnet-lite0}"
export DEFAULT_MODEL="${DEFAULT_MODEL:-${MODELS%%,*}}"
export MODELS_DIR="${MODELS_DIR:-$repo/../shared/models}"
MODELS_DIR="$(cd "$MODELS_DIR" && pwd)" || die "MODELS_DIR $MODELS_DIR not found"
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$repo/.ort/libonnxruntime.so}"
export INTRA_THREADS="${INTRA_THREADS:-1}"
export APP_ENV=dev
export RUST_LOG="${RUST_LOG:-info}"
[ -f "$ORT_DYLIB_PATH" ] || die "ONNX Runtime not found at $ORT_DYLIB_PATH (make ort)"

say "building api and worker (release)"
cargo build --release -p api -p worker

tmp="$(mktemp -d /tmp/soak.XXXXXX)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
redis_port="$(free_port)"
api_port="$(free_port)"
export REDIS_URL="redis://127.0.0.1:$redis_port"
export DATABASE_URL="sqlite://$tmp/app.db"
export API_BIND="127.0.0.1:$api_port"
api_url="http://$API_BIND"

pids=()
names=()
status=0
stop_all() {
    trap - INT TERM EXIT
    local i pid
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        pid="${pids[$i]}"
        kill -TERM "$pid" 2>/dev/null || continue
        local rc=0
        wait "$pid" || rc=$?
        if [ "$rc" = 0 ]; then
            say "${names[$i]} (pid $pid) exited 0"
        else
            say "${names[$i]} (pid $pid) exited $rc"
            [ "${names[$i]}" = redis ] || status=1
        fi
    done
    if [ "${KEEP_TMP:-0}" = 1 ]; then say "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap 'stop_all; exit 130' INT TERM
trap stop_all EXIT

start() { # name, command...
    local name="$1"
    shift
    "$@" >"$tmp/$name.log" 2>&1 &
    pids+=("$!")
    names+=("$name")
}

say "private redis on :$redis_port, api on :$api_port, $workers workers, temp dir $tmp"
start redis redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no
start api "$repo/target/release/api"
for ((w = 1; w <= workers; w++)); do
    WORKER_ID="soak-worker-$w" start "worker-$w" "$repo/target/release/worker"
done

ready=0
for _ in $(seq 1 240); do
    if python3 -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('$api_url/ready', timeout=2).status == 200 else 1)" 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.5
done
[ "$ready" = 1 ] || { tail -n 20 "$tmp"/*.log >&2; die "the stack never became ready"; }

pid_args=()
for ((i = 1; i < ${#pids[@]}; i++)); do
    pid_args+=(--pid "${names[$i]}=${pids[$i]}")
done
say "soak: $minutes min, $users users"
rc=0
python3 stress/soak.py --api "$api_url" --minutes "$minutes" --users "$users" "${pid_args[@]}" "$@" || rc=$?
stop_all
[ "$rc" = 0 ] && [ "$status" = 0 ] || exit 1
