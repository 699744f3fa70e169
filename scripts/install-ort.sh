#!/usr/bin/env bash
# Install the ONNX Runtime shared library the worker loads at run time (`ort` with
# `load-dynamic`), taken from the `onnxruntime` wheel on PyPI: no build-time download.
#
# Supply chain: the wheel for this machine's architecture (x86_64 or aarch64) is the one named in
# scripts/onnxruntime-wheels.txt and must match its SHA-256 there: pip downloads it with
# --require-hashes, and a cached wheel is checked again before it is used. The Dockerfile's
# `ort` stage runs this same script, so the image carries the same library.
#
# Result: <repo>/.ort/libonnxruntime.so -> libonnxruntime.so.<version>, and
# <repo>/.ort/wheel.sha256 naming the wheel it came from.
# Idempotent: does nothing when that library is there, loads, and came from the pinned wheel.
#
# Env: ORT_DIR (default <repo>/.ort), PYTHON (default python3), ORT_ARCH (default uname -m).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version=1.31.1
ort_dir="${ORT_DIR:-$repo/.ort}"
wheel_dir="$repo/.cache/wheels"
python="${PYTHON:-python3}"
lib="$ort_dir/libonnxruntime.so"
stamp="$ort_dir/wheel.sha256"
pins="$repo/scripts/onnxruntime-wheels.txt"

arch="${ORT_ARCH:-$(uname -m)}"
[ "$arch" = arm64 ] && arch=aarch64
read -r wheel_name wheel_sha < <(awk -v a="$arch" '$1 == a { print $2, $3 }' "$pins") || true
if [ -z "${wheel_name:-}" ] || [ -z "${wheel_sha:-}" ]; then
    echo "install-ort: no pinned onnxruntime wheel for architecture $arch in $pins" >&2
    exit 1
fi
case "$wheel_name" in
    onnxruntime-"$version"-*) ;;
    *) echo "install-ort: $pins pins $wheel_name, not onnxruntime $version" >&2; exit 1 ;;
esac
platform="${wheel_name##*-}"
platform="${platform%.whl}"

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

if [ "$(cat "$stamp" 2>/dev/null)" = "$wheel_sha  $wheel_name" ] && lib_works "$lib"; then
    echo "ONNX Runtime $version: $lib (already installed from $wheel_name, sha256 ${wheel_sha:0:12}…)"
    exit 0
fi

if ! command -v "$python" >/dev/null 2>&1; then
    echo "install-ort: $python not found; install Python 3 with pip, or put libonnxruntime.so.$version at $lib" >&2
    exit 1
fi

mkdir -p "$wheel_dir" "$ort_dir"
wheel="$wheel_dir/$wheel_name"

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$wheel_sha" ]; }

if [ -f "$wheel" ] && ! sha_ok "$wheel"; then
    echo "install-ort: the cached $wheel_name does not match its pinned SHA-256; downloading it again" >&2
    rm -f "$wheel"
fi
if [ ! -f "$wheel" ]; then
    # The pinned file exactly: its CPython tag and platform, whatever the local Python is.
    req="$(mktemp)"
    trap 'rm -f "$req"' EXIT
    echo "onnxruntime==$version --hash=sha256:$wheel_sha" >"$req"
    "$python" -m pip download --quiet --disable-pip-version-check --no-deps \
        --only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 \
        --platform "$platform" --require-hashes -r "$req" -d "$wheel_dir"
fi
# pip checked the hash while downloading; check the file itself too (a cache may be edited).
if ! sha_ok "$wheel"; then
    rm -f "$wheel"
    echo "install-ort: $wheel_name is missing or does not match the SHA-256 pinned in $pins (removed)" >&2
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
    rm -f "$wheel"
    echo "install-ort: could not extract the library from $wheel (removed it; run again to download it anew)" >&2
    exit 1
fi

ln -sfn "libonnxruntime.so.$version" "$lib"

# Loading needs the architecture's own loader: skip the check when installing for another one.
if [ "$arch" = "$(uname -m)" ] && ! lib_works "$lib"; then
    echo "install-ort: $lib was extracted from $wheel but cannot be loaded" >&2
    exit 1
fi
echo "$wheel_sha  $wheel_name" >"$stamp"
echo "ONNX Runtime $version: $lib (from $wheel_name, sha256 ${wheel_sha:0:12}… verified)"
