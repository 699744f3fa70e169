#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ (cargo-fuzz, libFuzzer) for SECONDS each (default 60: the
# smoke run of `cargo xtask ci`; use 600 and more for a real campaign), starting from the seed
# corpus in fuzz/corpus/<target>/. New inputs go to a scratch folder, not into the repository
# (FUZZ_CORPUS_OUT=DIR keeps them in DIR instead). A crash, a timeout or an
# out-of-memory input fails the run; its reproducer is kept in data/fuzz-artifacts/<target>/
# (replay it with `cargo fuzz run -s none <target> <file>`).
#
# The machine has no nightly toolchain: the targets are built on stable with the sanitizer
# off (`-s none`); libFuzzer's coverage instrumentation needs no unstable flag. libFuzzer's
# own limits stand in for the sanitizer: -rss_limit_mb and -malloc_limit_mb (FUZZ_RSS_MB,
# default 2048) and -timeout (FUZZ_TIMEOUT, seconds per input, default 10).
#
# Env: FUZZ_TARGETS (default: every target of `cargo fuzz list`), FUZZ_CORPUS_OUT,
#      FUZZ_RSS_MB, FUZZ_TIMEOUT (see above).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
seconds="${1:-60}"
cargo fuzz --version >/dev/null 2>&1 || { echo "fuzz.sh: cargo-fuzz is missing; run scripts/provision.sh" >&2; exit 1; }

# Built once for all targets (release with debug assertions, coverage instrumented).
cargo fuzz build -s none
targets="${FUZZ_TARGETS:-$(cargo fuzz list)}"
if [ -n "${FUZZ_CORPUS_OUT:-}" ]; then
    scratch="$FUZZ_CORPUS_OUT"
    mkdir -p "$scratch"
else
    scratch="$(mktemp -d)"
    trap 'rm -rf "$scratch"' EXIT
fi
failed=()
for target in $targets; do
    artifacts="$repo/data/fuzz-artifacts/$target"
    mkdir -p "$artifacts" "$scratch/$target"
    log="$scratch/$target.log"
    echo "==> fuzz $target: ${seconds} s"
    if cargo fuzz run -s none "$target" "$scratch/$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb="${FUZZ_RSS_MB:-2048}" \
        -malloc_limit_mb="${FUZZ_RSS_MB:-2048}" -timeout="${FUZZ_TIMEOUT:-10}" \
        -max_len=65536 -print_final_stats=1 -artifact_prefix="$artifacts/" 2>"$log"; then
        result=ok
    else
        result=FAILED
        failed+=("$target")
        tail -n 60 "$log"
    fi
    # libFuzzer's closing statistics: executions, speed, peak RSS.
    runs="$(grep -Eo '^stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo '?')"
    rate="$(grep -Eo '^stat::average_exec_per_sec: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo '?')"
    rss="$(grep -Eo '^stat::peak_rss_mb: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo '?')"
    corpus="$(find "$scratch/$target" -type f | wc -l)"
    echo "fuzz $target: $result, $runs executions in ${seconds} s ($rate/s), peak RSS $rss MB, $corpus new corpus entries"
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]} (reproducers in data/fuzz-artifacts/)" >&2
    exit 1
fi
echo "fuzz: every target ran ${seconds} s without a finding"
