#!/usr/bin/env bash
# `cargo deny check` (licenses, bans, sources, advisories; deny.toml) for the `cargo-deny` step
# of `cargo xtask ci`. Advisories come from the vendored RustSec snapshot that
# scripts/provision.sh unpacks (scripts/advisory-db.sh), read offline (--frozen: --locked + --offline): the
# output names the snapshot's date, which is as far as the advisory check sees.
#   DENY_FETCH=1  fetch today's database instead (needs GitHub; into $ADVISORY_DB_ROOT).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
export ADVISORY_DB_ROOT="${ADVISORY_DB_ROOT:-$repo/.cache/advisory-dbs}"
cargo deny --version >/dev/null 2>&1 || { echo "deny-check: cargo-deny missing; run scripts/provision.sh" >&2; exit 1; }

if [ "${DENY_FETCH:-0}" = 1 ]; then
    echo "advisories: fetching the live RustSec database"
    exec cargo deny --locked check
fi
db="$ADVISORY_DB_ROOT/advisory-db-3157b0e258782691"
[ -d "$db/.git" ] || { echo "deny-check: no advisory database at $db; run scripts/provision.sh" >&2; exit 1; }
echo "advisories: offline, RustSec snapshot $(awk '$1 == "commit" { print substr($2, 1, 12) }' vendor/rustsec-advisory-db.txt) of $(awk '$1 == "date" { print $2 }' vendor/rustsec-advisory-db.txt) (vendor/README.md)"
exec cargo deny --frozen check --hide-inclusion-graph --show-stats
