#!/usr/bin/env bash
# Every check and test of the project (`make test`, and so `.ci/run`). It installs and
# changes nothing on the machine: scripts/provision.sh (which `make test` runs first) does.
#
# Steps: rustfmt, clippy, cargo-deny (licenses, bans, sources, advisories from the vendored
# RustSec snapshot), docker-check (compose + Dockerfile, no Docker engine), k8s manifests
# (offline schemas), the workspace build, the Rust tests (cargo-nextest), the network-namespace
# test, the locust smoke run, the contract test (schemathesis against a private stack,
# scripts/schemathesis.sh), a 60 s fuzz run of each fuzz target (scripts/fuzz.sh), the browser
# tests. Every step runs even after a failure and prints its duration; the summary lists each
# step with its time and the test runners' own summary lines. The exit status is non-zero when
# any step failed.
#
# Env: TEST_DATABASE_URL, the PostgreSQL admin URL the tests create their databases with
#      (default postgres://postgres@127.0.0.1:5432/test); SKIP_BROWSER=1 skips the browser
#      tests; FUZZ_SECONDS (default 60) is each fuzz target's run. The tests start their own
#      Redis servers on free ports.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

log_dir="$repo/data/test-logs"
mkdir -p "$log_dir"
rm -f "$log_dir"/*.log

say() { printf '\n==> %s\n' "$*"; }
die() { printf 'test.sh: %s\n' "$*" >&2; exit 1; }

missing=()
command -v cargo >/dev/null 2>&1 || missing+=(cargo)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
cargo nextest --version >/dev/null 2>&1 || missing+=(cargo-nextest)
cargo fuzz --version >/dev/null 2>&1 || missing+=(cargo-fuzz)
[ -x "$repo/.venv/bin/schemathesis" ] || missing+=(.venv/bin/schemathesis)
[ -e "$repo/.ort/libonnxruntime.so" ] || [ -n "${ORT_DYLIB_PATH:-}" ] || missing+=(.ort/libonnxruntime.so)
[ "${#missing[@]}" = 0 ] || die "missing: ${missing[*]}; run scripts/provision.sh (make test does) first"

export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

started=$SECONDS
failed=()
summaries=()

# step NAME LOG COMMAND...: run COMMAND with its output shown and kept in LOG, timed.
step() {
    local name="$1" log="$2" t0=$SECONDS
    shift 2
    say "$name: $*"
    if "$@" 2>&1 | tee "$log"; then
        summaries+=("$(printf '%-14s ok      %4d s' "$name" $((SECONDS - t0)))")
    else
        failed+=("$name")
        summaries+=("$(printf '%-14s FAILED  %4d s  (log: %s)' "$name" $((SECONDS - t0)) "${log#"$repo"/}")")
    fi
    printf '==> %s: %d s\n' "$name" $((SECONDS - t0))
}

step fmt "$log_dir/fmt.log" cargo fmt --all -- --check
step clippy "$log_dir/clippy.log" cargo clippy --workspace --all-targets -- -D warnings
# Supply chain and deployment files: a few seconds each.
step cargo-deny "$log_dir/cargo-deny.log" scripts/deny-check.sh
step docker-check "$log_dir/docker-check.log" scripts/docker-check.sh
step k8s-manifests "$log_dir/k8s-manifests.log" .venv/bin/python deploy/kubernetes/validate.py
# The dev profile serves the tests, `make run` and `make model` alike: one compilation.
step build "$log_dir/build.log" cargo build --workspace

rust_log="$log_dir/rust-tests.log"
if [[ " ${failed[*]:-} " == *" build "* ]]; then
    summaries+=("rust tests     not run (the build failed)")
    failed+=("rust tests")
else
    # The network-namespace test runs as a step of its own below, alone on the machine.
    # --status-level skip: the log names every skipped (#[ignore]d) test; the summary lists them.
    step "rust tests" "$rust_log" cargo nextest run --workspace --no-fail-fast --no-tests=warn \
        --status-level skip -E 'not binary_id(e2e::netns)'
fi

# Redis, the api, two workers and a client in network namespaces of their own, one worker's
# link cut mid-run (tests/tests/netns.rs). Its tests are #[ignore]d (they need root and network
# namespaces); this step runs them where it can and otherwise says why it did not.
netns_log="$log_dir/netns-test.log"
netns_unavailable() {
    [ "$(id -u)" = 0 ] || { echo "not root"; return; }
    local probe="lens-probe-$$"
    if ip netns add "$probe" 2>/dev/null; then
        ip netns delete "$probe"
    else
        echo "'ip netns add' refused"
    fi
}
netns_why="$(netns_unavailable)"
if [[ " ${failed[*]:-} " == *" build "* ]]; then
    summaries+=("netns test     not run (the build failed)")
    failed+=("netns test")
elif [ -n "$netns_why" ]; then
    summaries+=("netns test     SKIPPED ($netns_why)")
else
    # --workspace (not -p e2e): the same feature set as the build above, so nothing recompiles.
    step "netns test" "$netns_log" cargo nextest run --workspace -E 'binary_id(e2e::netns)' \
        --run-ignored only --no-capture --no-fail-fast
fi

# The locustfile against a private stack for a few seconds (zero failures); `make locust` is
# the real, long run and is not part of CI.
if [[ " ${failed[*]:-} " != *" build "* ]]; then
    step "locust smoke" "$log_dir/locust-smoke.log" scripts/locust.sh --smoke
fi

# The contract: every answer of the running API against its OpenAPI document (needs the build).
contract_log="$log_dir/schemathesis.log"
if [[ " ${failed[*]:-} " == *" build "* ]]; then
    summaries+=("contract       not run (the build failed)")
    failed+=("contract")
else
    step contract "$contract_log" bash scripts/schemathesis.sh
fi
# Fuzzing smoke run: each target 60 s from the seed corpus (its own build, fuzz/target).
fuzz_log="$log_dir/fuzz.log"
step fuzz "$fuzz_log" nice -n 10 bash scripts/fuzz.sh "${FUZZ_SECONDS:-60}"

browser_tests="$repo/tests/browser/run.sh"
browser_log="$log_dir/browser-tests.log"
if [ -f "$browser_tests" ] && [ "${SKIP_BROWSER:-0}" != 1 ]; then
    step "browser tests" "$browser_log" bash "$browser_tests"
fi

# --- summary -------------------------------------------------------------------------------------------
say "summary ($((SECONDS - started)) s)"
for line in "${summaries[@]}"; do echo "  $line"; done
for log in cargo-deny docker-check k8s-manifests; do
    # The deployment checks' own closing lines.
    [ -f "$log_dir/$log.log" ] && grep -E '^advisories: |^ *(advisories|bans|licenses|sources) (ok|FAILED)|^docker-check: |^kubernetes manifests: ' \
        "$log_dir/$log.log" | sed 's/^ */  /' || true
done
if [ -f "$rust_log" ]; then
    # nextest's closing line.
    grep -E '^[[:space:]]*Summary \[' "$rust_log" | sed 's/^[[:space:]]*/  /' || true
    # The skipped tests by name, so a skip is never mistaken for a pass.
    grep -E '^[[:space:]]*SKIP ' "$rust_log" | sed -E 's/^[[:space:]]*SKIP[^]]*\][[:space:]]*/  skipped: /' || true
fi
if [ -f "$netns_log" ]; then
    # The test's own closing line: `netns: ok: ...`.
    grep -E '^netns: ok' "$netns_log" | sed 's/^/  /' || true
fi
if [ -f "$contract_log" ]; then
    # schemathesis' closing line ("=== No issues found in 20.5s ===", "=== 2 failures in ...").
    grep -E '^=+ .* in [0-9.]+s =+$' "$contract_log" | tr -s '=' | sed 's/^= */  schemathesis: /; s/ *=$//' || true
fi
if [ -f "$fuzz_log" ]; then
    grep -E '^fuzz [a-z_]+: ' "$fuzz_log" | sed 's/^/  /' || true
fi
if [ -f "$browser_log" ] && [ "${SKIP_BROWSER:-0}" != 1 ]; then
    # node --test closes with "ℹ tests N", "ℹ pass N", "ℹ fail N" lines.
    grep -E '^[^a-zA-Z0-9]*(tests|pass|fail) [0-9]+$' "$browser_log" | sed 's/^[^a-zA-Z0-9]*/  browser /' || true
fi
if [ "${#failed[@]}" -gt 0 ]; then
    echo "FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "all checks and tests passed"
