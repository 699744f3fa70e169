#!/usr/bin/env bash
# Start the whole stack locally (`make run`): ONNX Runtime, models, a release build, then
# `xtask stack` in the foreground: the Redis at REDIS_URL when one answers (else a private one
# under data/logs/), SQLite under data/, the api, worker(s) and ui. Ctrl-C (or SIGTERM) stops
# everything it started.
#
# Env: API_BIND (127.0.0.1:8000), UI_BIND (127.0.0.1:8080), WORKERS (1), REDIS_URL
# (redis://127.0.0.1:6379), DATABASE_URL (sqlite://<repo>/data/app.db), and every variable the
# binaries read (MODELS_DIR, MODELS, DEFAULT_MODEL, ...), passed through.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

say() { printf '==> %s\n' "$*"; }
die() { printf 'run-stack: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null 2>&1 ||
    die "cargo not found: install the Rust toolchain (rustup, see https://rustup.rs) and run again"

scripts/install-ort.sh
say "models: fetching what is missing into ${MODELS_DIR:-models}"
scripts/fetch-models.sh || true

say "building api, worker, ui and xtask (release)"
cargo build --release -p api -p worker -p ui -p xtask

mkdir -p data/logs
exec target/release/xtask stack --profile release --ui --workers "${WORKERS:-1}" \
    --redis auto --database "${DATABASE_URL:-sqlite://$repo/data/app.db}" --dir "$repo/data/logs" \
    --api-bind "${API_BIND:-127.0.0.1:8000}" --ui-bind "${UI_BIND:-127.0.0.1:8080}"
