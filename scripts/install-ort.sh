#!/usr/bin/env bash
# Install the ONNX Runtime shared library the worker loads at run time (`ort` with
# `load-dynamic`), taken from the `onnxruntime` wheel on PyPI: no build-time download.
#
# Result: <repo>/.ort/libonnxruntime.so -> libonnxruntime.so.<version>
# Idempotent: does nothing when that library is already there and loads.
#
# Env: ORT_VERSION (default 1.31.1), ORT_DIR (default <repo>/.ort),
#      PYTHON (default python3).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="${ORT_VERSION:-1.31.1}"
ort_dir="${ORT_DIR:-$repo/.ort}"
wheel_dir="$repo/.cache/wheels"
python="${PYTHON:-python3}"
lib="$ort_dir/libonnxruntime.so"

# True when the library exists and the dynamic loader can open it (its
# dependencies resolve). Uses ctypes, so no compiler or Rust is needed.
lib_works() {
    [ -e "$1" ] || return 1
    "$python" - "$1" <<'PY' >/dev/null 2>&1
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
api = lib.OrtGetApiBase  # the one symbol `ort` looks up first
PY
}

if lib_works "$lib"; then
    echo "ONNX Runtime $version: $lib (already installed)"
    exit 0
fi

if ! command -v "$python" >/dev/null 2>&1; then
    echo "install-ort: $python not found; install Python 3 with pip, or put libonnxruntime.so.$version at $lib" >&2
    exit 1
fi

mkdir -p "$wheel_dir" "$ort_dir"

find_wheel() {
    find "$wheel_dir" -maxdepth 1 -name "onnxruntime-${version}-*.whl" -print | sort | head -n 1
}

wheel="$(find_wheel)"
if [ -z "$wheel" ]; then
    # First try the wheel for this interpreter and platform; if pip finds none
    # (an interpreter newer than the wheels on PyPI, say), ask for the CPython 3.11
    # manylinux wheel explicitly: the shared library inside is the same.
    if ! "$python" -m pip download --quiet --disable-pip-version-check --no-deps \
        --only-binary=:all: "onnxruntime==$version" -d "$wheel_dir"; then
        echo "install-ort: no onnxruntime $version wheel for this Python; trying the cp311 manylinux_2_28_x86_64 wheel" >&2
        "$python" -m pip download --quiet --disable-pip-version-check --no-deps \
            --only-binary=:all: --python-version 3.11 --platform manylinux_2_28_x86_64 \
            "onnxruntime==$version" -d "$wheel_dir"
    fi
    wheel="$(find_wheel)"
fi
if [ -z "$wheel" ]; then
    echo "install-ort: pip reported success but no onnxruntime-$version wheel is in $wheel_dir" >&2
    exit 1
fi

# Extract only the shared library (no `unzip`: it may be absent).
if ! "$python" - "$wheel" "$ort_dir" "$version" <<'PY'
import os, shutil, sys, zipfile
wheel, dest, version = sys.argv[1:4]
member = f"onnxruntime/capi/libonnxruntime.so.{version}"
target = os.path.join(dest, f"libonnxruntime.so.{version}")
with zipfile.ZipFile(wheel) as zf:
    try:
        info = zf.getinfo(member)
    except KeyError:
        sys.exit(f"install-ort: {member} not found in {wheel}")
    tmp = target + ".tmp"
    with zf.open(info) as src, open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst)
os.chmod(tmp, 0o755)
os.replace(tmp, target)
PY
then
    # A damaged wheel in the cache would fail every later run the same way.
    rm -f "$wheel"
    echo "install-ort: could not extract the library from $wheel (removed it; run again to download it anew)" >&2
    exit 1
fi

ln -sfn "libonnxruntime.so.$version" "$lib"

if ! lib_works "$lib"; then
    echo "install-ort: $lib was extracted from $wheel but cannot be loaded" >&2
    exit 1
fi
echo "ONNX Runtime $version: $lib"
