#!/usr/bin/env bash
# Soak test (`make soak`): release build, then a private stack (`xtask stack`: its own
# redis-server on a free port, the api, 2 workers, SQLite, in a temp dir), stress/soak.py
# against it for $SOAK_MINUTES, then SIGTERM to everything (each process must exit 0).
#
# Env: SOAK_MINUTES (10), SOAK_USERS (8), WORKERS (2), MODELS (efficientnet-lite0),
# MODELS_DIR (<repo>/../shared/models), ORT_DYLIB_PATH (<repo>/.ort/libonnxruntime.so),
# KEEP_TMP=1 keeps the logs (in a folder it names). The workers run with their defaults (the
# executor and batched queue reads; set WORKER_CPUS, INTRA_THREADS... to try others). Extra
# arguments go to soak.py (e.g. --users, --warmup; --image, repeatable, replaces the four
# photos of mixed sizes it uploads by default).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

say() { printf '==> %s\n' "$*"; }
die() { printf 'soak: %s\n' "$*" >&2; exit 1; }

# Inside the stack (xtask runs this script again with --inside and STACK_* set).
if [ "${1:-}" = --inside ]; then
    shift
    pid_args=()
    for kv in $STACK_PIDS; do
        [ "${kv%%=*}" = redis ] || pid_args+=(--pid "$kv")
    done
    say "soak: ${SOAK_MINUTES:-10} min, ${SOAK_USERS:-8} users against $STACK_API_URL"
    exec python3 stress/soak.py --api "$STACK_API_URL" --minutes "${SOAK_MINUTES:-10}" \
        --users "${SOAK_USERS:-8}" "${pid_args[@]}" "$@"
fi

command -v python3 >/dev/null 2>&1 || die "python3 not found"
models="${MODELS:-efficientnet-lite0}"
models_dir="${MODELS_DIR:-$repo/../shared/models}"
models_dir="$(cd "$models_dir" && pwd)" || die "MODELS_DIR $models_dir not found"

say "building api, worker and xtask (release)"
cargo build --release -p api -p worker -p xtask

dir_args=()
if [ "${KEEP_TMP:-0}" = 1 ]; then
    keep="$(mktemp -d /tmp/soak.XXXXXX)"
    dir_args=(--dir "$keep")
    say "logs kept in $keep"
fi
# Every finished job keeps its record and its cache entry (result + thumbnail, tens of kB)
# for RESULT_TTL (1 h): at the soak's rate that outgrows the private Redis's default 512 MB in
# a few minutes, and the API then rightly answers 503. Give the soak's Redis room for an hour.
export TEST_REDIS_MAXMEMORY="${TEST_REDIS_MAXMEMORY:-4gb}"
exec target/release/xtask stack --profile release --workers "${WORKERS:-2}" --models "$models" \
    --default-model "${DEFAULT_MODEL:-${models%%,*}}" --models-dir "$models_dir" "${dir_args[@]}" \
    --env SIGNUP_RATE_PER_ADDRESS=off --env LOGIN_RATE_PER_ADDRESS=off --env UPLOAD_RATE_PER_ADDRESS=off \
    -- "$0" --inside "$@"
