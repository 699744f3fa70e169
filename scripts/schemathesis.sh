#!/usr/bin/env bash
# The contract test: schemathesis (pinned in .venv by scripts/provision.sh) against a private
# stack (`xtask stack`: its own Redis, a fresh SQLite file, the api and one worker on free
# ports), with every check on, as a logged-in user, a bounded number of examples per
# operation. Any failed check fails the step. The schema it tests is the served
# /openapi.json (the test `api::openapi::tests` keeps docs/openapi.json equal to it).
#
# Env: SCHEMATHESIS_EXAMPLES (examples per operation and phase, default 100),
#      SCHEMATHESIS_SEED (default 1: the same cases every run; set another to explore).
# Needs target/debug/{api,worker,xtask} (`cargo build --workspace`, which the build step of `cargo xtask ci`
# runs) and .venv/bin/schemathesis.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
st="$repo/.venv/bin/schemathesis"

# Inside the stack (xtask runs this script again with --run and STACK_* set).
if [ "${1:-}" = --run ]; then
    api="$STACK_API_URL"
    # A user of our own, logged in: the token goes with every request schemathesis sends.
    email="schemathesis-$$@example.com"
    password="schemathesis-password"
    curl -sS --fail-with-body -o /dev/null -X POST "$api/users" -H 'content-type: application/json' \
        -d "{\"name\":\"Schemathesis\",\"email\":\"$email\",\"password\":\"$password\"}"
    token="$(curl -sS --fail-with-body -X POST "$api/login" \
        --data-urlencode "username=$email" --data-urlencode "password=$password" | jq -r .access_token)"
    [ -n "$token" ] && [ "$token" != null ] || { echo "schemathesis.sh: no token" >&2; exit 1; }
    report="$STACK_DIR/schemathesis"
    set +e
    "$st" --config-file "$repo/tests/schemathesis.toml" run "$api/openapi.json" \
        --checks all \
        --header "Authorization: Bearer $token" \
        --max-examples "${SCHEMATHESIS_EXAMPLES:-100}" \
        --seed "${SCHEMATHESIS_SEED:-1}" \
        --workers 1 \
        --request-timeout 40 \
        --report junit --report-dir "$report" \
        --suppress-health-check too_slow,filter_too_much,data_too_large \
        --warnings off
    status=$?
    set -e
    rm -rf "$repo/data/test-logs/schemathesis-report"
    cp -r "$report" "$repo/data/test-logs/schemathesis-report" 2>/dev/null || true
    exit "$status"
fi

[ -x "$st" ] || { echo "schemathesis.sh: $st is missing; run scripts/provision.sh" >&2; exit 1; }
for bin in api worker xtask; do
    [ -x "target/debug/$bin" ] || { echo "schemathesis.sh: target/debug/$bin is missing (cargo build --workspace)" >&2; exit 1; }
done
models_dir="$repo/../shared/models"
[ -d "$models_dir" ] || models_dir="$repo/models"
mkdir -p "$repo/data/test-logs"
exec target/debug/xtask stack --workers 1 --models efficientnet-lite0 --default-model efficientnet-lite0 \
    --models-dir "$models_dir" --env RUST_LOG=warn -- "$0" --run
