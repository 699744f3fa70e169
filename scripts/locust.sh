#!/usr/bin/env bash
# Locust report (`make locust`): for WORKERS in LOCUST_WORKERS (1 2) a private stack
# (`xtask stack`: its own redis-server on a free port, the api, WORKERS workers, SQLite, in a
# temp dir), and in it, for USERS in LOCUST_USERS (1 10 50), stress/locustfile.py headless
# for LOCUST_SECONDS (60). Every point writes its CSV and HTML report under
# stress/reports/locust/; then stress/locust_report.py writes the chart
# (stress/reports/locust.png) and the summary (stress/reports/locust.md) with the machine
# described. Not part of CI: it takes LOCUST_SECONDS x 6 plus start-ups.
#
# Env: LOCUST_SECONDS (60), LOCUST_USERS ("1 10 50"), LOCUST_WORKERS ("1 2"), LOCUST_PROFILE
# (release; or debug), LOCUST_NOTE (a line for the summary, e.g. what else ran), MODELS
# (efficientnet-lite0), MODELS_DIR (<repo>/../shared/models), INTRA_THREADS (1),
# REPEAT_SHARE (0: every upload is new bytes), WAIT_S (10).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

say() { printf '==> %s\n' "$*"; }
die() { printf 'locust: %s\n' "$*" >&2; exit 1; }

out="$repo/stress/reports/locust"
# Every Locust user comes from this machine's one address: the per-address limits (sign-up,
# log-in, uploads) are for the internet, not for a load generator; the per-account ones stay.
one_address=(--env SIGNUP_RATE_PER_ADDRESS=off --env LOGIN_RATE_PER_ADDRESS=off --env UPLOAD_RATE_PER_ADDRESS=off)
seconds="${LOCUST_SECONDS:-60}"

# CI's smoke (`scripts/locust.sh --smoke`, in `cargo xtask ci`): the locustfile for a few
# seconds, 2 users, against a private stack of the dev build already made; any failure fails.
if [ "${1:-}" = --smoke ]; then
    [ -x .venv/bin/locust ] || die ".venv/bin/locust missing: run scripts/provision.sh"
    exec target/debug/xtask stack --profile debug --workers 1 --models efficientnet-lite0 \
        --default-model efficientnet-lite0 --models-dir "${MODELS_DIR:-$repo/../shared/models}" \
        --env RUST_LOG=warn --env INTRA_THREADS=1 "${one_address[@]}" -- \
        bash -c '.venv/bin/locust -f stress/locustfile.py --host "$STACK_API_URL" --headless \
            -u 2 -r 2 -t "${LOCUST_SMOKE_SECONDS:-5}s" --stop-timeout 10 --only-summary \
            --loglevel WARNING'
fi

# Inside a stack (xtask runs this script again with --inside WORKERS and STACK_* set).
if [ "${1:-}" = --inside ]; then
    workers="$2"
    for users in ${LOCUST_USERS:-1 10 50}; do
        point="w${workers}-u${users}"
        say "locust: $users users, $workers workers, ${seconds}s against $STACK_API_URL"
        # The load average before the point: what else the machine was doing.
        cut -d' ' -f1-3 /proc/loadavg >"$out/$point.load"
        # Every user starts within the first second; --exit-code-on-error 0 so one failed
        # point does not stop the others (the summary shows its failures).
        .venv/bin/locust -f stress/locustfile.py --host "$STACK_API_URL" --headless \
            -u "$users" -r "$users" -t "${seconds}s" --stop-timeout 15 --only-summary \
            --csv "$out/$point" --html "$out/$point.html" --exit-code-on-error 0 \
            --loglevel WARNING
    done
    exit 0
fi

command -v python3 >/dev/null 2>&1 || die "python3 not found"
[ -x .venv/bin/python ] || python3 -m venv .venv
# Pinned versions: a no-op (no download) once they are installed.
.venv/bin/pip install -q -r stress/requirements.txt

models="${MODELS:-efficientnet-lite0}"
models_dir="${MODELS_DIR:-$repo/../shared/models}"
models_dir="$(cd "$models_dir" && pwd)" || die "MODELS_DIR $models_dir not found"
export INTRA_THREADS="${INTRA_THREADS:-1}"
profile="${LOCUST_PROFILE:-release}"
build_flag=()
[ "$profile" = release ] && build_flag=(--release)

say "building api, worker and xtask ($profile)"
cargo build "${build_flag[@]}" -p api -p worker -p xtask
scripts/install-ort.sh >/dev/null

rm -rf "$out"
mkdir -p "$out"
date -u +%Y-%m-%dT%H:%M:%SZ >"$out/started"
for workers in ${LOCUST_WORKERS:-1 2}; do
    say "stack with $workers worker(s)"
    "target/$profile/xtask" stack --profile "$profile" --workers "$workers" --models "$models" \
        --default-model "${DEFAULT_MODEL:-${models%%,*}}" --models-dir "$models_dir" \
        --env RUST_LOG=warn "${one_address[@]}" -- "$0" --inside "$workers"
done
date -u +%Y-%m-%dT%H:%M:%SZ >"$out/finished"
.venv/bin/python stress/locust_report.py --dir "$out" --seconds "$seconds" \
    --profile "$profile" --note "${LOCUST_NOTE:-}" \
    --chart "$repo/stress/reports/locust.png" --summary "$repo/stress/reports/locust.md"
say "summary: stress/reports/locust.md, chart: stress/reports/locust.png"
