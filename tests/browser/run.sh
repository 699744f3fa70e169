#!/usr/bin/env bash
# Browser tests of the web UI (tests/browser/ui.test.mjs): installs playwright-core with
# `npm ci` (no browser download: Debian's /usr/bin/chromium is used), builds the binaries
# (unless BIN_DIR names prebuilt ones) and xtask, which starts the stack, then runs node's test
# runner and prints its summary.
#
# Env: BIN_DIR (default target/debug), LENS_FAKE_API=1 (fake API, for work on the looks),
#      KEEP_LOGS=1 (keep the processes' logs in a temp folder).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$here"

[ -x /usr/bin/chromium ] || { echo "run.sh: /usr/bin/chromium is missing: apt-get install -y chromium" >&2; exit 1; }
command -v node >/dev/null || { echo "run.sh: node is missing: apt-get install -y nodejs npm" >&2; exit 1; }
command -v redis-server >/dev/null || [ "${LENS_FAKE_API:-0}" = 1 ] ||
    { echo "run.sh: redis-server is missing: apt-get install -y redis-server" >&2; exit 1; }

PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error

need=(-p ui)
[ "${LENS_FAKE_API:-0}" = 1 ] || need+=(-p api -p worker)
if [ -n "${BIN_DIR:-}" ]; then
    need=() # prebuilt binaries; only xtask (which starts the stack) is built here
fi
# Make sure the binaries are current (a no-op when they are).
(cd "$repo" && cargo build --quiet -p xtask "${need[@]}")
if [ "${LENS_FAKE_API:-0}" != 1 ] && [ ! -e "$repo/.ort/libonnxruntime.so" ]; then
    "$repo/scripts/install-ort.sh"
fi

exec node --test --test-concurrency=1 --test-reporter=spec ui.test.mjs
