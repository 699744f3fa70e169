#!/usr/bin/env bash
# Start the whole stack locally (`make run`): ONNX Runtime, a dev build, models, then
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

# One profile for tests and `make run`: the dev profile `make test` builds (dependencies are
# optimised, see [profile.dev.package."*"]), so neither waits for a second compilation.
t0=$SECONDS
if [ ! -x target/debug/api ] || [ ! -x target/debug/worker ] || [ ! -x target/debug/ui ]; then
    say "first build of api, worker, ui and xtask: about 10 minutes on 2 cores (make test and later runs reuse it)"
fi
cargo build -p api -p worker -p ui -p xtask
say "build: $((SECONDS - t0)) s"

# Fetch what has a pinned URL; without internet the stack serves what ../shared/models holds.
# One line says what is served and why; the per-model lines go to data/logs/models.log.
mkdir -p data/logs
target/debug/xtask models fetch >data/logs/models.log 2>&1 || true
if grep -q '^models:' data/logs/models.log; then
    say "$(grep -m1 '^models:' data/logs/models.log) (per model: data/logs/models.log)"
else
    cat data/logs/models.log
fi

exec target/debug/xtask stack --profile debug --ui --workers "${WORKERS:-1}" \
    --redis auto --database "${DATABASE_URL:-sqlite://$repo/data/app.db}" --dir "$repo/data/logs" \
    --api-bind "${API_BIND:-127.0.0.1:8000}" --ui-bind "${UI_BIND:-127.0.0.1:8080}"
