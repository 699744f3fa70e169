#!/usr/bin/env bash
# Benchmarks (`make bench ARGS="..."`): raw ONNX Runtime session throughput against
# the same images pushed end-to-end through HTTP -> Redis -> worker -> result, as
# implemented by the worker's `bench` subcommand (`... -- bench --help` lists its
# options). Uses the local defaults of scripts/stack-env.sh.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

command -v cargo >/dev/null 2>&1 || { echo "bench: cargo not found: install the Rust toolchain (rustup)" >&2; exit 1; }
scripts/install-ort.sh
# shellcheck source=scripts/stack-env.sh
source "$repo/scripts/stack-env.sh"

cargo run --release -p worker -- bench "$@"
