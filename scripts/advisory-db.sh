#!/usr/bin/env bash
# Unpack the vendored RustSec advisory database (vendor/rustsec-advisory-db.tar.gz, see
# vendor/README.md) where cargo-deny looks for it: $ADVISORY_DB_ROOT (default
# <repo>/.cache/advisory-dbs)/advisory-db-3157b0e258782691, the directory name cargo-deny derives
# from https://github.com/rustsec/advisory-db (xxHash64 of the URL). It must be a git repository:
# cargo-deny dates the database by its HEAD commit and by the mtime of .git/HEAD, so both are set
# to the snapshot's commit date, and `maximum-db-staleness` (deny.toml) sees its true age.
# Idempotent (run by scripts/provision.sh): does nothing when that snapshot is already there.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tarball="$repo/vendor/rustsec-advisory-db.tar.gz"
info="$repo/vendor/rustsec-advisory-db.txt"
root="${ADVISORY_DB_ROOT:-$repo/.cache/advisory-dbs}"
db="$root/advisory-db-3157b0e258782691"

commit="$(awk '$1 == "commit" { print $2 }' "$info")"
date="$(awk '$1 == "date" { print $2 }' "$info")"
want="$(awk '$1 == "sha256" { print $2 }' "$info")"
have="$(sha256sum "$tarball" | cut -d' ' -f1)"
[ "$have" = "$want" ] || { echo "advisory-db: $tarball has sha256 $have, vendor/rustsec-advisory-db.txt says $want" >&2; exit 1; }

stamp="$db/.git/vendored-snapshot"
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "advisory database: RustSec snapshot ${commit:0:12} of $date (already unpacked)"
    exit 0
fi
rm -rf "$db"
mkdir -p "$db"
tar -xzf "$tarball" -C "$db"
(
    cd "$db"
    export GIT_AUTHOR_NAME=vendored GIT_AUTHOR_EMAIL=vendored@localhost \
        GIT_COMMITTER_NAME=vendored GIT_COMMITTER_EMAIL=vendored@localhost \
        GIT_AUTHOR_DATE="$date" GIT_COMMITTER_DATE="$date"
    git init -q -b main .
    git add -A
    git -c commit.gpgsign=false commit -q -m "rustsec/advisory-db $commit (vendored snapshot)"
)
touch -d "$date" "$db/.git/HEAD"
echo "$want" >"$stamp"
echo "advisory database: RustSec snapshot ${commit:0:12} of $date unpacked into ${db#"$repo"/}"
