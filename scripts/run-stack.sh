#!/usr/bin/env bash
# Start the whole stack locally (`make run`): ONNX Runtime, models, release build,
# a Redis of our own when none answers at REDIS_URL, then api, worker(s) and ui in
# the background, logs in data/logs/. Ctrl-C (or SIGTERM) stops everything it started.
#
# Env (besides those of scripts/stack-env.sh): API_BIND (127.0.0.1:8000),
# UI_BIND (127.0.0.1:8080), WORKERS (number of worker processes, 1),
# HEALTH_TIMEOUT (seconds to wait for /health, 120).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

log_dir="$repo/data/logs"
mkdir -p "$log_dir"

say() { printf '==> %s\n' "$*"; }
die() { printf 'run-stack: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null 2>&1 ||
    die "cargo not found: install the Rust toolchain (rustup, see https://rustup.rs) and run again"
command -v curl >/dev/null 2>&1 || die "curl not found (apt-get install -y curl)"

# --- ONNX Runtime and models -------------------------------------------------------
scripts/install-ort.sh

# First pass: fetch what can be fetched into the models folder (missing files only
# print a line here). Then pick MODELS_DIR/DEFAULT_MODEL/MODELS from what is present,
# and check that every model the worker will serve is there and intact.
say "models: checking ${MODELS_DIR:-$repo/models}"
MODELS_DIR="${MODELS_DIR:-$repo/models}" MODELS="${MODELS:-}" scripts/fetch-models.sh || true

# shellcheck source=scripts/stack-env.sh
source "$repo/scripts/stack-env.sh"
if ! check="$(scripts/fetch-models.sh 2>&1)"; then
    printf '%s\n' "$check" >&2
    die "the worker's models ($MODELS) are not all in $MODELS_DIR; see the lines above"
fi
say "models: serving $MODELS from $MODELS_DIR (default: $DEFAULT_MODEL)"

# --- build -------------------------------------------------------------------------
say "building api, worker and ui (release)"
cargo build --release -p api -p worker -p ui

# --- processes -----------------------------------------------------------------------
pids=()
names=()
stopping=0

# shellcheck disable=SC2317  # invoked from the EXIT trap
stop_all() {
    local status=$?
    [ "$stopping" = 1 ] && return
    stopping=1
    trap - INT TERM EXIT
    if [ "${#pids[@]}" -gt 0 ]; then
        say "stopping ${names[*]}"
        # Reverse start order: ui and api first, the workers next, our Redis last.
        local i
        for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
            kill -TERM "${pids[$i]}" 2>/dev/null || true
            # Let each finish its graceful shutdown (up to 30 s) before the next.
            local t=0
            while kill -0 "${pids[$i]}" 2>/dev/null && [ "$t" -lt 300 ]; do
                sleep 0.1
                t=$((t + 1))
            done
            if kill -0 "${pids[$i]}" 2>/dev/null; then
                echo "run-stack: ${names[$i]} did not stop within 30 s; killing it" >&2
                kill -KILL "${pids[$i]}" 2>/dev/null || true
            fi
            wait "${pids[$i]}" 2>/dev/null || true
        done
    fi
    exit "$status"
}
trap 'stop_all' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME LOGFILE COMMAND... : run COMMAND in the background, output to LOGFILE.
start() {
    local name="$1" log="$2"
    shift 2
    "$@" >>"$log" 2>&1 </dev/null &
    pids+=("$!")
    names+=("$name")
    say "started $name (pid $!, log ${log#"$repo"/})"
}

# Dies (stopping everything) if the process at index $1 has exited.
check_alive() {
    local i="$1"
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
        local log="$log_dir/${names[$i]}.log"
        echo "run-stack: ${names[$i]} exited during start-up; last lines of ${log#"$repo"/}:" >&2
        tail -n 25 "$log" >&2 || true
        exit 1
    fi
}

redis_answers() {
    [ "$(redis-cli -u "$1" ping 2>/dev/null)" = "PONG" ]
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_free() {
    python3 - "$1" <<'PY'
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PY
}

# --- Redis ---------------------------------------------------------------------------
command -v redis-cli >/dev/null 2>&1 ||
    die "redis-cli not found: install Redis (apt-get install -y redis-server) or use docker compose up"
if redis_answers "$REDIS_URL"; then
    say "redis: using the one answering at $REDIS_URL"
else
    command -v redis-server >/dev/null 2>&1 ||
        die "no Redis answers at $REDIS_URL and redis-server is not installed (apt-get install -y redis-server)"
    # Use REDIS_URL's port when it points at this machine and the port is free,
    # else any free port (REDIS_URL is updated either way).
    port="$(python3 -c 'import sys, urllib.parse as u; r = u.urlsplit(sys.argv[1]); print(r.port or 6379 if r.hostname in ("127.0.0.1", "localhost", "::1") else 0)' "$REDIS_URL")"
    if [ "$port" = 0 ] || ! port_free "$port"; then
        port="$(free_port)"
    fi
    export REDIS_URL="redis://127.0.0.1:$port"
    : >"$log_dir/redis.log"
    start redis "$log_dir/redis.log" redis-server --bind 127.0.0.1 --port "$port" \
        --save "" --appendonly no --daemonize no
    redis_index=$((${#pids[@]} - 1))
    for _ in $(seq 100); do
        redis_answers "$REDIS_URL" && break
        check_alive "$redis_index"
        sleep 0.1
    done
    redis_answers "$REDIS_URL" || die "the Redis started on port $port does not answer; see data/logs/redis.log"
    say "redis: started our own at $REDIS_URL"
fi

# --- api, worker(s), ui ----------------------------------------------------------------
export API_BIND="${API_BIND:-127.0.0.1:8000}"
export UI_BIND="${UI_BIND:-127.0.0.1:8080}"
export RUST_LOG="${RUST_LOG:-info}"
# A wildcard bind is reached through loopback.
local_url() { printf 'http://%s' "$1" | sed -e 's#//0\.0\.0\.0:#//127.0.0.1:#' -e 's#//\[::\]:#//127.0.0.1:#'; }
api_url="$(local_url "$API_BIND")"
ui_url="$(local_url "$UI_BIND")"
export API_URL="${API_URL:-$api_url}"

for bin in api worker ui; do
    [ -x "target/release/$bin" ] || die "target/release/$bin was not built"
done

: >"$log_dir/api.log"
start api "$log_dir/api.log" target/release/api
api_index=$((${#pids[@]} - 1))

workers="${WORKERS:-1}"
for ((n = 1; n <= workers; n++)); do
    wname=worker
    [ "$workers" -gt 1 ] && wname="worker-$n"
    : >"$log_dir/$wname.log"
    start "$wname" "$log_dir/$wname.log" target/release/worker
done

: >"$log_dir/ui.log"
start ui "$log_dir/ui.log" target/release/ui
ui_index=$((${#pids[@]} - 1))

# Wait for /health of api and ui, watching that nothing we started has died.
wait_health() {
    local url="$1" index="$2" timeout="${HEALTH_TIMEOUT:-120}" t=0
    until curl -fsS -o /dev/null --max-time 2 "$url/health" 2>/dev/null; do
        check_alive "$index"
        t=$((t + 1))
        [ "$t" -ge $((timeout * 5)) ] && die "$url/health did not answer within ${timeout}s; see data/logs/"
        sleep 0.2
    done
}
wait_health "$api_url" "$api_index"
wait_health "$ui_url" "$ui_index"
for i in "${!pids[@]}"; do check_alive "$i"; done

image="$repo/../shared/testdata/grace_hopper.jpg"
if [ -f "$image" ]; then
    image="$(cd "$(dirname "$image")" && pwd)/$(basename "$image")"
else
    image="path/to/photo.jpg"
fi

cat <<EOF

The stack is up (logs in data/logs/; Ctrl-C stops it):
  UI        $ui_url
  API       $api_url      (health: $api_url/health, readiness: $api_url/ready)
  API docs  $api_url/docs (OpenAPI: $api_url/openapi.json)
  Redis     $REDIS_URL
  Database  $DATABASE_URL
  Models    $MODELS from $MODELS_DIR (default: $DEFAULT_MODEL)

Classify an image from the command line:
  curl -s -X POST $api_url/users -H 'content-type: application/json' \\
       -d '{"name":"Grace","email":"grace@example.com","password":"correct-horse-battery"}'
  TOKEN=\$(curl -s -X POST $api_url/login -d 'username=grace@example.com&password=correct-horse-battery' \\
       | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl -s -H "Authorization: Bearer \$TOKEN" -F file=@$image $api_url/predict

EOF

# Run until a signal arrives or one of the processes exits on its own.
set +e
wait -n "${pids[@]}"
set -e
for i in "${!pids[@]}"; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
        echo "run-stack: ${names[$i]} exited; last lines of data/logs/${names[$i]}.log:" >&2
        tail -n 25 "$log_dir/${names[$i]}.log" >&2 || true
    fi
done
exit 1
