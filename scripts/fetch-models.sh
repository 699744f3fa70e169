#!/usr/bin/env bash
# Make the models of models/registry.toml available in MODELS_DIR (`make model`).
#
#   MODELS_DIR  folder holding the model files (default: <repo>/models)
#   MODELS      comma-separated registry names to check (default: every model)
#
# For each model: a file already in MODELS_DIR whose sha256 (and size) match the
# registry is kept; a missing file with a `url` is downloaded with curl into a
# temporary file, verified, then moved into place. Entries without a checksum
# (the fp32 ResNet-50 of the ONNX model zoo) are verified by their ONNX graph:
# input/output names and shapes (with the `onnx` Python package when it is
# importable, else with a small protobuf reader of our own) plus a size check.
# A model that cannot be had prints one line saying which file is missing and how
# to get it. Exit status is non-zero only when a model named in $MODELS is
# missing or invalid (or $MODELS names a model the registry does not have).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export FETCH_MODELS_REPO="$repo"

if ! command -v python3 >/dev/null 2>&1; then
    echo "fetch-models: python3 (3.11 or newer, for tomllib) is required" >&2
    exit 1
fi

exec python3 - "$@" <<'PY'
import hashlib
import os
import shutil
import subprocess
import sys

try:
    import tomllib
except ModuleNotFoundError:
    sys.exit("fetch-models: Python 3.11 or newer is required (tomllib)")

REPO = os.environ["FETCH_MODELS_REPO"]
REGISTRY = os.environ.get("MODEL_REGISTRY") or os.path.join(REPO, "models", "registry.toml")
MODELS_DIR = os.path.abspath(os.environ.get("MODELS_DIR") or os.path.join(REPO, "models"))
REPO_MODELS = os.path.join(REPO, "models")
SHARED_MODELS = os.path.normpath(os.path.join(REPO, "..", "shared", "models"))

# Lower bounds for files the registry gives no checksum for (bytes).
MIN_SIZE = {"resnet50-v1-12.onnx": 90_000_000}
DEFAULT_MIN_SIZE = 1_000_000
NUM_CLASSES = 1000


def say(msg):
    print(msg, flush=True)


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --- ONNX graph check -------------------------------------------------------------

def _varint(buf, pos):
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _fields(buf, start=0, end=None):
    """Yield (field_number, wire_type, value) of one protobuf message."""
    pos, end = start, len(buf) if end is None else end
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield field, wire, value


def _value_info(buf):
    """ValueInfoProto -> (name, [dim, ...]) with dim an int or a str (symbolic)."""
    name, dims = "", None
    for f, _, v in _fields(buf):
        if f == 1:
            name = bytes(v).decode()
        elif f == 2:  # TypeProto
            for tf, _, tv in _fields(v):
                if tf == 1:  # tensor_type
                    for ttf, _, ttv in _fields(tv):
                        if ttf == 2:  # TensorShapeProto
                            dims = []
                            for sf, _, sv in _fields(ttv):
                                if sf == 1:  # Dimension
                                    dim = "?"
                                    for df, _, dv in _fields(sv):
                                        if df == 1:
                                            dim = dv
                                        elif df == 2:
                                            dim = bytes(dv).decode()
                                    dims.append(dim)
    return name, dims


def graph_io_builtin(path):
    with open(path, "rb") as f:
        buf = memoryview(f.read())
    inputs, outputs, initializers = [], [], set()
    for field, _, value in _fields(buf):
        if field == 7:  # ModelProto.graph
            for gf, _, gv in _fields(value):
                if gf == 11:
                    inputs.append(_value_info(gv))
                elif gf == 12:
                    outputs.append(_value_info(gv))
                elif gf == 5:  # initializer (TensorProto); name is field 8
                    for tf, _, tv in _fields(gv):
                        if tf == 8:
                            initializers.add(bytes(tv).decode())
    return [i for i in inputs if i[0] not in initializers], outputs


def graph_io_onnx(path):
    import onnx  # noqa: F401  (only when importable)

    model = onnx.load(path, load_external_data=False)
    inits = {t.name for t in model.graph.initializer}

    def info(vi):
        dims = [
            d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in vi.type.tensor_type.shape.dim
        ]
        return vi.name, dims

    return (
        [info(i) for i in model.graph.input if i.name not in inits],
        [info(o) for o in model.graph.output],
    )


def check_graph(entry, path):
    """None when the graph has the registry's input/output names and shapes, else why not."""
    try:
        import onnx  # noqa: F401
        reader = graph_io_onnx
    except ImportError:
        reader = graph_io_builtin
    try:
        inputs, outputs = reader(path)
    except Exception as e:  # a truncated or foreign file
        return f"it is not a readable ONNX model ({e})"
    size = int(entry.get("input_size", 224))
    want_in, want_out = entry.get("input_name"), entry.get("output_name")
    ins, outs = dict(inputs), dict(outputs)
    if want_in not in ins:
        return f"its graph has no input {want_in!r} (inputs: {sorted(ins)})"
    if want_out not in outs:
        return f"its graph has no output {want_out!r} (outputs: {sorted(outs)})"
    d = ins[want_in]
    if d is None or len(d) != 4 or list(d[1:]) != [3, size, size]:
        return f"input {want_in!r} has shape {d}, expected [N, 3, {size}, {size}]"
    d = outs[want_out]
    if d is None or len(d) != 2 or d[1] != NUM_CLASSES:
        return f"output {want_out!r} has shape {d}, expected [N, {NUM_CLASSES}]"
    return None


# --- verification -------------------------------------------------------------------

def verify(entry, path):
    """None when the file at path is the registry's model, else the reason it is not."""
    actual = os.path.getsize(path)
    size = entry.get("size")
    if size is not None and actual != int(size):
        return f"its size is {actual} bytes, the registry says {size}"
    want = entry.get("sha256")
    if want:
        got = sha256_of(path)
        if got != want.lower():
            return f"its sha256 is {got}, the registry says {want}"
        return None
    minimum = MIN_SIZE.get(entry["file"], DEFAULT_MIN_SIZE)
    if actual < minimum:
        return f"it is only {actual} bytes (expected more than {minimum})"
    return check_graph(entry, path)


def how_verified(entry):
    if entry.get("sha256"):
        return "sha256 verified"
    return "graph input/output names and shapes verified; the registry has no checksum"


def download(url, dest):
    """Download url into a temporary file beside dest: (path, None) or (None, why not)."""
    if shutil.which("curl") is None:
        return None, "curl not found"
    tmp = os.path.join(os.path.dirname(dest), f".{os.path.basename(dest)}.part-{os.getpid()}")
    interactive = sys.stderr.isatty()
    cmd = ["curl", "--fail", "--location", "--retry", "2", "--connect-timeout", "15",
           "--progress-bar" if interactive else "--silent", "--show-error",
           "--output", tmp, url]
    if interactive:
        say(f"downloading {url}")
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, text=True,
                       stderr=None if interactive else subprocess.PIPE)
    if r.returncode != 0:
        if os.path.exists(tmp):
            os.unlink(tmp)
        err = (r.stderr or "").strip().splitlines()
        return None, (err[-1] if err else f"curl exited with {r.returncode}")
    return tmp, None


def missing_line(name, entry, extra=""):
    file, url = entry["file"], entry.get("url")
    d = MODELS_DIR
    if url:
        how = f"download {url} into {d} or set MODELS_DIR to a folder holding it"
    else:
        how = f"it has no download URL: copy it into {d} or set MODELS_DIR to a folder holding it"
    if os.path.isfile(os.path.join(SHARED_MODELS, file)) and os.path.normpath(d) != SHARED_MODELS:
        how += f" (e.g. MODELS_DIR={SHARED_MODELS})"
    return f"model {name}: {file} is missing from {d}{extra}; {how}"


def find_labels(entry):
    labels = entry.get("labels")
    if not labels:
        return None, None
    for d in (MODELS_DIR, REPO_MODELS):
        p = os.path.join(d, labels)
        if os.path.isfile(p):
            return labels, p
    return labels, None


def main():
    with open(REGISTRY, "rb") as f:
        registry = tomllib.load(f)
    models = registry.get("models", {})
    requested = [m.strip() for m in os.environ.get("MODELS", "").split(",") if m.strip()]
    failed = False
    unknown = [m for m in requested if m not in models]
    for m in unknown:
        say(f"model {m}: not in {REGISTRY} (known: {', '.join(models)})")
        failed = True
    names = [m for m in requested if m in models] if requested else list(models)

    for name in names:
        entry = models[name]
        file, url = entry["file"], entry.get("url")
        path = os.path.join(MODELS_DIR, file)
        problem = None
        if os.path.isfile(path):
            problem = verify(entry, path)
            if problem is None:
                say(f"model {name}: ok ({path}, {how_verified(entry)})")
            elif not url:
                say(f"model {name}: {path} is not the registry's file: {problem}; "
                    f"replace it (see ../shared/models/MODELS.md) or set MODELS_DIR to a folder holding the right one")
                failed |= name in requested
                continue
            else:
                say(f"model {name}: {path} is not the registry's file: {problem}; downloading it again")
        if problem is not None or not os.path.isfile(path):
            ok, why_not = False, ""
            if url:
                os.makedirs(MODELS_DIR, exist_ok=True)
                tmp, err = download(url, path)
                if tmp is None:
                    why_not = f" (download failed: {err})"
                else:
                    why = verify(entry, tmp)
                    if why is None:
                        os.replace(tmp, path)
                        say(f"model {name}: downloaded to {path} ({how_verified(entry)})")
                        ok = True
                    else:
                        os.unlink(tmp)
                        why_not = f" (the file downloaded from {url} was rejected: {why})"
            if not ok:
                if problem is not None:
                    say(f"model {name}: {path} is not the registry's file ({problem}) and could not be "
                        f"downloaded again{why_not}; download {url} into {MODELS_DIR} "
                        f"or set MODELS_DIR to a folder holding it")
                else:
                    say(missing_line(name, entry, why_not))
                failed |= name in requested
                continue

        labels, found = find_labels(entry)
        if labels and found is None:
            say(f"model {name}: label file {labels} is missing from {MODELS_DIR} and {REPO_MODELS}; "
                f"it is committed as models/{labels}: restore it with git checkout")
            failed |= name in requested

    return 1 if failed else 0


sys.exit(main())
PY
