#!/usr/bin/env bash
# Every check and test of the project (`make test`, and so `.ci/run`).
#
# Sets up what the tests need on this machine (ONNX Runtime, Redis at
# 127.0.0.1:6379, PostgreSQL at 127.0.0.1:5432 with a `test` database, Chromium),
# installing Debian packages when they are absent, then runs rustfmt, clippy, the
# workspace build, the Rust tests (cargo-nextest, else cargo test) and the browser
# tests when tests/browser/run.sh exists. Every step runs even after a failure;
# the exit status is non-zero when any failed.
#
# Env: TEST_DATABASE_URL (default: found here, postgres://<role>@127.0.0.1:5432/test),
#      TEST_REDIS_URL (redis://127.0.0.1:6379), SKIP_BROWSER=1 skips Chromium and the
#      browser tests, plus those of scripts/stack-env.sh.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

log_dir="$repo/data/test-logs"
mkdir -p "$log_dir"

say() { printf '\n==> %s\n' "$*"; }
die() { printf 'test.sh: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run: $*"
    fi
}

apt_updated=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install these by hand: $*"
    if [ "$apt_updated" = 0 ]; then
        as_root apt-get update -qq
        apt_updated=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

# --- Rust toolchain ---------------------------------------------------------------------
command -v cargo >/dev/null 2>&1 ||
    die "cargo not found: install the Rust toolchain with rustup (https://rustup.rs; this machine cannot download it) and run again"
for component in rustfmt clippy; do
    sub="${component/rustfmt/fmt}"
    if ! cargo "$sub" --version >/dev/null 2>&1; then
        if command -v rustup >/dev/null 2>&1 && rustup component add "$component" >/dev/null 2>&1; then
            echo "installed the $component component"
        else
            die "the $component component is missing and could not be installed: run 'rustup component add $component'"
        fi
    fi
done

# --- ONNX Runtime -------------------------------------------------------------------------
scripts/install-ort.sh

# --- Redis at 127.0.0.1:6379 ------------------------------------------------------------------
export TEST_REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379}"
redis_answers() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]; }
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    say "installing Redis"
    apt_install redis-server
fi
if ! redis_answers; then
    say "starting Redis on 127.0.0.1:6379"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
        --logfile "$log_dir/redis.log"
    for _ in $(seq 50); do redis_answers && break; sleep 0.1; done
    redis_answers || die "Redis does not answer at 127.0.0.1:6379 (see $log_dir/redis.log)"
fi
echo "Redis: answering at 127.0.0.1:6379"

# --- PostgreSQL at 127.0.0.1:5432 ----------------------------------------------------------------
pg_installed_here=0
if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! command -v psql >/dev/null 2>&1; then
    say "installing PostgreSQL"
    apt_install postgresql
    pg_installed_here=1
fi
pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
if ! pg_up; then
    pg_version="$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -n 1)"
    [ -n "$pg_version" ] || die "no PostgreSQL cluster under /etc/postgresql"
    if [ "$pg_installed_here" = 1 ]; then
        # Our own fresh cluster: let local TCP clients in without a password, as on CI.
        hba="/etc/postgresql/$pg_version/main/pg_hba.conf"
        as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    fi
    say "starting PostgreSQL $pg_version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$pg_version" main start || true
    for _ in $(seq 100); do pg_up && break; sleep 0.2; done
    pg_up || die "PostgreSQL does not answer at 127.0.0.1:5432"
fi

if [ -z "${TEST_DATABASE_URL:-}" ]; then
    # Find a role that gets in without a password (trust auth): postgres, else root.
    pg_role=""
    for role in ${PGUSER:-} postgres root "$(id -un)"; do
        if psql -w -h 127.0.0.1 -p 5432 -U "$role" -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
            pg_role="$role"
            break
        fi
    done
    [ -n "$pg_role" ] ||
        die "no PostgreSQL role gets in at 127.0.0.1:5432 without a password; set TEST_DATABASE_URL=postgres://USER:PASSWORD@127.0.0.1:5432/test"
    if [ "$(psql -w -h 127.0.0.1 -p 5432 -U "$pg_role" -d postgres -Atqc "select 1 from pg_database where datname = 'test'")" != 1 ]; then
        psql -w -h 127.0.0.1 -p 5432 -U "$pg_role" -d postgres -qc 'create database test' >/dev/null
    fi
    export TEST_DATABASE_URL="postgres://$pg_role@127.0.0.1:5432/test"
fi
psql -w "$TEST_DATABASE_URL" -Atqc 'select 1' >/dev/null ||
    die "cannot connect to TEST_DATABASE_URL=$TEST_DATABASE_URL"
echo "PostgreSQL: $TEST_DATABASE_URL"

# --- Chromium for the browser tests ---------------------------------------------------------------
browser_tests="$repo/tests/browser/run.sh"
if [ "${SKIP_BROWSER:-0}" != 1 ] && { [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; }; then
    say "installing Chromium and ChromeDriver"
    if ! apt_install chromium chromium-driver; then
        if [ -f "$browser_tests" ]; then
            die "could not install chromium and chromium-driver, which the browser tests need"
        fi
        echo "warning: could not install chromium (no browser tests yet, going on)" >&2
    fi
fi

# --- checks and tests --------------------------------------------------------------------------------
# shellcheck source=scripts/stack-env.sh
source "$repo/scripts/stack-env.sh"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

failed=()
summaries=()

# step NAME LOG COMMAND...: run COMMAND with its output shown and kept in LOG.
step() {
    local name="$1" log="$2"
    shift 2
    say "$name: $*"
    if "$@" 2>&1 | tee "$log"; then
        summaries+=("$name: ok")
    else
        failed+=("$name")
        summaries+=("$name: FAILED (log: ${log#"$repo"/})")
    fi
}

step fmt "$log_dir/fmt.log" cargo fmt --all -- --check
step clippy "$log_dir/clippy.log" cargo clippy --workspace --all-targets -- -D warnings
step build "$log_dir/build.log" cargo build --workspace

rust_log="$log_dir/rust-tests.log"
if [[ " ${failed[*]:-} " == *" build "* ]]; then
    summaries+=("rust tests: not run (the build failed)")
    failed+=("rust tests")
else
    if ! cargo nextest --version >/dev/null 2>&1; then
        say "cargo-nextest is absent: installing it"
        cargo install cargo-nextest --locked || echo "warning: could not install cargo-nextest; using cargo test" >&2
    fi
    if cargo nextest --version >/dev/null 2>&1; then
        step "rust tests" "$rust_log" cargo nextest run --workspace --no-fail-fast --no-tests=warn
    else
        step "rust tests" "$rust_log" cargo test --workspace --no-fail-fast
    fi
fi

browser_log="$log_dir/browser-tests.log"
if [ -f "$browser_tests" ] && [ "${SKIP_BROWSER:-0}" != 1 ]; then
    step "browser tests" "$browser_log" bash "$browser_tests"
fi

# --- summary -------------------------------------------------------------------------------------------
say "summary"
for line in "${summaries[@]}"; do echo "  $line"; done
if [ -f "$rust_log" ]; then
    # nextest's closing line, or cargo test's per-binary result lines.
    grep -E '^[[:space:]]*Summary \[|^test result:' "$rust_log" | sed 's/^[[:space:]]*/  /' || true
fi
if [ -f "$browser_log" ]; then
    # node --test closes with "ℹ tests N", "ℹ pass N", "ℹ fail N" lines.
    grep -E '^[^a-zA-Z0-9]*(tests|pass|fail) [0-9]+$' "$browser_log" | sed 's/^[^a-zA-Z0-9]*/  browser /' || true
fi
if [ "${#failed[@]}" -gt 0 ]; then
    echo "FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "all checks and tests passed"
