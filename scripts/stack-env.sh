# shellcheck shell=bash
# Local defaults for running and testing the stack. Sourced by scripts/run-stack.sh
# and scripts/test.sh (or by hand: `source scripts/stack-env.sh`). Every variable
# that is already set is left alone; nothing here changes shell options.
#
#   ORT_DYLIB_PATH  <repo>/.ort/libonnxruntime.so (see scripts/install-ort.sh)
#   MODELS_DIR      <repo>/models when it holds the registry's default model,
#                   else <repo>/../shared/models when that folder exists
#   DEFAULT_MODEL   the registry default when its file is in MODELS_DIR,
#                   else efficientnet-lite0
#   MODELS          the models present in MODELS_DIR, benchmark-only ones excluded
#   APP_ENV=dev, REDIS_URL=redis://127.0.0.1:6379,
#   DATABASE_URL=sqlite://<repo>/data/app.db

_stack_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$_stack_repo/.ort/libonnxruntime.so}"
export APP_ENV="${APP_ENV:-dev}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
export DATABASE_URL="${DATABASE_URL:-sqlite://$_stack_repo/data/app.db}"
mkdir -p "$_stack_repo/data"

# Prints, one per line: the registry default's file name, then
# "name<TAB>file<TAB>benchmark_only(0|1)" for every model.
_stack_registry() {
    python3 - "$_stack_repo/models/registry.toml" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    reg = tomllib.load(f)
models = reg.get("models", {})
default = reg.get("default", "")
print(default)
print(models.get(default, {}).get("file", ""))
for name, m in models.items():
    print(f"{name}\t{m.get('file', '')}\t{1 if m.get('benchmark_only') else 0}")
PY
}

if _stack_reg_out="$(_stack_registry)"; then
    _stack_default="$(sed -n 1p <<<"$_stack_reg_out")"
    _stack_default_file="$(sed -n 2p <<<"$_stack_reg_out")"

    if [ -z "${MODELS_DIR:-}" ]; then
        if [ -n "$_stack_default_file" ] && [ -f "$_stack_repo/models/$_stack_default_file" ]; then
            MODELS_DIR="$_stack_repo/models"
        elif [ -d "$_stack_repo/../shared/models" ]; then
            MODELS_DIR="$(cd "$_stack_repo/../shared/models" && pwd)"
        else
            MODELS_DIR="$_stack_repo/models"
        fi
    fi
    export MODELS_DIR

    if [ -z "${DEFAULT_MODEL:-}" ]; then
        if [ -n "$_stack_default_file" ] && [ -f "$MODELS_DIR/$_stack_default_file" ]; then
            DEFAULT_MODEL="$_stack_default"
        else
            DEFAULT_MODEL="efficientnet-lite0"
        fi
    fi
    export DEFAULT_MODEL

    if [ -z "${MODELS:-}" ]; then
        _stack_present=""
        while IFS=$'\t' read -r _stack_name _stack_file _stack_bench; do
            if [ "$_stack_bench" = 0 ] && [ -n "$_stack_file" ] && [ -f "$MODELS_DIR/$_stack_file" ]; then
                _stack_present="${_stack_present:+$_stack_present,}$_stack_name"
            fi
        done < <(sed -n '3,$p' <<<"$_stack_reg_out")
        # Nothing present: name the default anyway, so the worker says what is missing.
        MODELS="${_stack_present:-$DEFAULT_MODEL}"
    fi
    export MODELS
else
    echo "stack-env: could not read $_stack_repo/models/registry.toml (python3 >= 3.11 needed)" >&2
    export MODELS_DIR="${MODELS_DIR:-$_stack_repo/models}"
    export DEFAULT_MODEL="${DEFAULT_MODEL:-efficientnet-lite0}"
    export MODELS="${MODELS:-$DEFAULT_MODEL}"
fi

unset _stack_repo _stack_reg_out _stack_default _stack_default_file _stack_present \
    _stack_name _stack_file _stack_bench
unset -f _stack_registry
