#!/usr/bin/env python3
"""Offline validation of deploy/kubernetes (`make k8s-check`, a step of `cargo xtask ci`).

No kustomize binary is installable from the registries this project may use, so this script
renders the kustomizations itself, covering only the kustomize features the manifests use:
`resources` (files and directories), `components`, `namespace`, `labels`, `images`, and
`patches` given as strategic-merge files (maps merged key by key, lists of maps merged by
`name`, `$patch: delete` removes an object). It refuses any other kustomization field, so a
manifest can never silently rely on something it does not render.

Every rendered object is then validated against a JSON schema, offline:
  - Kubernetes kinds: the schemas in the pinned PyPI package `kubernetes-validate`, strict
    (unknown fields are errors), for Kubernetes K8S_VERSION (default 1.33);
  - KEDA kinds: the CRD schemas vendored in deploy/schemas (README there);
  - any other kind is an error.
Then the cross-references schemas cannot see: ConfigMap/Secret keys that pods read exist,
selectors of Services and PodDisruptionBudgets match a Deployment's pods, autoscalers point at
the worker Deployment, the KEDA trigger reads `ic:jobs:<model>` of the `workers` consumer group
for every model in MODELS, the worker's CPU requests equal its limits and WORKER_CPUS follows
limits.cpu, probes are where the README says, and every pod's terminationGracePeriodSeconds
is above SHUTDOWN_GRACE plus its preStop pause.

Renders: the base, the production overlay (with components/keda), and the production overlay
with components/hpa in place of components/keda. Exit status 1 on any error.
"""

from __future__ import annotations

import copy
import json
import os
import re
import sys
from pathlib import Path

import jsonschema
import yaml
from kubernetes_validate import utils as kv_utils
from kubernetes_validate.version import __version__ as kv_version

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SCHEMAS = REPO / "deploy" / "schemas"
K8S_VERSION = os.environ.get("K8S_VERSION", "1.33")



def from_code(path: str, pattern: str) -> str:
    """The one group of `pattern` in the Rust file at `path` (relative to the checkout): the
    values the manifests must agree with are read from the code, never copied here."""
    text = (REPO / path).read_text(encoding="utf-8")
    found = re.search(pattern, text)
    if not found:
        sys.exit(f"validate.py: {pattern!r} not found in {path}: the code changed, update this check")
    return found.group(1)


# The queue layout the worker uses: a stream per model, one consumer group.
KEYS_RS = "shared/src/queue/keys.rs"
STREAM_PREFIX = from_code(KEYS_RS, r'format!\("([^"{]+)\{model\}"\)')
CONSUMER_GROUP = from_code(KEYS_RS, r'pub const GROUP: &str = "([^"]+)";')
# The API's default grace period, when the ConfigMap does not set SHUTDOWN_GRACE.
SHUTDOWN_GRACE_DEFAULT = from_code(
    "api/src/config.rs", r'env = "SHUTDOWN_GRACE",[^\n]*default_value = "([^"]+)"'
)

KEDA_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda-scaledobject-v1alpha1.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda-triggerauthentication-v1alpha1.json",
}

KNOWN_FIELDS = {"apiVersion", "kind", "resources", "components", "namespace", "labels", "images", "patches"}

CLUSTER_SCOPED = {"Namespace"}


class Invalid(Exception):
    pass


def load_yaml_docs(path: Path) -> list[dict]:
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def key(obj: dict) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def merge(base, patch):
    """A strategic merge as kustomize does it for the shapes used here."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    if (
        isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(x, dict) and "name" in x for x in base + patch)
    ):
        out = [copy.deepcopy(x) for x in base]
        for item in patch:
            for i, existing in enumerate(out):
                if existing["name"] == item["name"]:
                    out[i] = merge(existing, item)
                    break
            else:
                out.append(copy.deepcopy(item))
        return out
    return copy.deepcopy(patch)


def render(directory: Path, extra_components: list[Path] | None = None, drop_components: set[str] | None = None) -> list[dict]:
    kfile = directory / "kustomization.yaml"
    if not kfile.is_file():
        raise Invalid(f"{directory}: no kustomization.yaml")
    (k,) = load_yaml_docs(kfile)
    unknown = set(k) - KNOWN_FIELDS
    if unknown:
        raise Invalid(f"{kfile}: fields this renderer does not implement: {sorted(unknown)}")
    objects: list[dict] = []
    for res in k.get("resources", []):
        path = (directory / res).resolve()
        if path.is_dir():
            objects.extend(render(path))
        elif path.is_file():
            objects.extend(load_yaml_docs(path))
        else:
            raise Invalid(f"{kfile}: resource {res} does not exist")
    components = [(directory / c).resolve() for c in k.get("components", [])]
    components = [c for c in components if c.name not in (drop_components or set())]
    components += extra_components or []
    for comp in components:
        (ck,) = load_yaml_docs(comp / "kustomization.yaml")
        if ck.get("kind") != "Component":
            raise Invalid(f"{comp}: not a kustomize Component")
        for res in ck.get("resources", []):
            objects.extend(load_yaml_docs(comp / res))
    seen = set()
    for obj in objects:
        if key(obj) in seen:
            raise Invalid(f"{directory}: {key(obj)} defined twice")
        seen.add(key(obj))
    for p in k.get("patches", []):
        if set(p) != {"path"}:
            raise Invalid(f"{kfile}: only `patches: - path: file` is implemented, not {p}")
        for patch in load_yaml_docs(directory / p["path"]):
            target = key(patch)
            matches = [i for i, o in enumerate(objects) if key(o) == target]
            if not matches:
                raise Invalid(f"{kfile}: patch {p['path']} targets {target}, which is not in the resources")
            i = matches[0]
            if patch.get("$patch") == "delete":
                objects.pop(i)
            else:
                objects[i] = merge(objects[i], patch)
    if "namespace" in k:
        for obj in objects:
            if obj["kind"] in CLUSTER_SCOPED:
                continue
            obj["metadata"]["namespace"] = k["namespace"]
    for spec in k.get("labels", []):
        if spec.get("includeSelectors") or spec.get("includeTemplates"):
            raise Invalid(f"{kfile}: labels with includeSelectors/includeTemplates are not implemented")
        for obj in objects:
            obj["metadata"].setdefault("labels", {}).update(spec["pairs"])
    for img in k.get("images", []):
        used = False
        for obj in objects:
            for c in pod_spec(obj).get("containers", []) if pod_spec(obj) else []:
                name, _, _ = c["image"].partition(":")
                if name == img["name"]:
                    c["image"] = f"{img.get('newName', name)}:{img['newTag']}"
                    used = True
        if not used:
            raise Invalid(f"{kfile}: image {img['name']} is used by no container")
    return objects


def pod_spec(obj: dict) -> dict | None:
    if obj.get("kind") == "Deployment":
        return obj["spec"]["template"]["spec"]
    return None


def duration_seconds(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text.strip())
    if not m:
        raise Invalid(f"cannot read the duration {text!r}")
    n, unit = float(m.group(1)), m.group(2) or "s"
    return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def cpu_quantity(q) -> float:
    s = str(q)
    return float(s[:-1]) / 1000 if s.endswith("m") else float(s)


def validate_schema(obj: dict) -> str:
    ident = (obj.get("apiVersion"), obj.get("kind"))
    if ident in KEDA_SCHEMAS:
        with open(SCHEMAS / KEDA_SCHEMAS[ident]) as f:
            schema = json.load(f)
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(obj), key=lambda e: list(e.path))
        if errors:
            e = errors[0]
            raise Invalid(f"{'.'.join(map(str, e.path))}: {e.message}")
        return "KEDA v2.20.1 CRD schema"
    try:
        version = kv_utils.validate(obj, K8S_VERSION, strict=True)
    except kv_utils.ValidationError as e:
        raise Invalid(f"{'.'.join(map(str, e.path))}: {e.message}") from None
    except kv_utils.SchemaNotFoundError:
        raise Invalid(f"no schema for {ident[1]} {ident[0]} (neither Kubernetes {K8S_VERSION} nor vendored)") from None
    return f"Kubernetes {version} (strict)"


def cross_check(name: str, objects: list[dict], secret_keys: set[str]) -> list[str]:
    errors: list[str] = []
    by_kind: dict[str, dict[str, dict]] = {}
    for o in objects:
        by_kind.setdefault(o["kind"], {})[o["metadata"]["name"]] = o
    config = by_kind.get("ConfigMap", {}).get("image-classifier")
    if not config:
        return [f"{name}: no ConfigMap image-classifier"]
    data = config.get("data", {})
    secret = by_kind.get("Secret", {}).get("image-classifier")
    # Without the Secret object (created out of band in production) its documented keys count.
    keys_in_secret = set(secret.get("stringData", {})) | set(secret.get("data", {})) if secret else secret_keys
    grace = duration_seconds(data.get("SHUTDOWN_GRACE", SHUTDOWN_GRACE_DEFAULT))
    deployments = by_kind.get("Deployment", {})
    for dname in ("api", "worker", "ui"):
        if dname not in deployments:
            errors.append(f"{name}: no Deployment {dname}")
    for dname, d in deployments.items():
        spec = pod_spec(d)
        pod_labels = d["spec"]["template"]["metadata"]["labels"]
        if any(pod_labels.get(k) != v for k, v in d["spec"]["selector"]["matchLabels"].items()):
            errors.append(f"{name}: Deployment {dname}'s selector does not match its pods")
        pause = 0
        for c in spec["containers"]:
            for env in c.get("env", []):
                ref = env.get("valueFrom", {})
                if "configMapKeyRef" in ref and ref["configMapKeyRef"]["key"] not in data:
                    errors.append(f"{name}: {dname} reads ConfigMap key {ref['configMapKeyRef']['key']}, which is not there")
                if "secretKeyRef" in ref and ref["secretKeyRef"]["key"] not in keys_in_secret:
                    errors.append(f"{name}: {dname} reads Secret key {ref['secretKeyRef']['key']}, which is not there")
            pause = max(pause, c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0))
        tgps = spec.get("terminationGracePeriodSeconds", 30)
        if dname in ("api", "worker") and tgps <= grace + pause:
            errors.append(f"{name}: {dname} terminationGracePeriodSeconds {tgps} is not above SHUTDOWN_GRACE {grace:g} s + preStop {pause} s")
    if "api" in deployments:
        c = pod_spec(deployments["api"])["containers"][0]
        if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/health":
            errors.append(f"{name}: the api's liveness probe is not GET /health")
        if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/ready":
            errors.append(f"{name}: the api's readiness probe is not GET /ready")
    if "worker" in deployments:
        d = deployments["worker"]
        c = pod_spec(d)["containers"][0]
        res = c.get("resources", {})
        req, lim = res.get("requests", {}).get("cpu"), res.get("limits", {}).get("cpu")
        if req is None or lim is None or cpu_quantity(req) != cpu_quantity(lim):
            errors.append(f"{name}: the worker's CPU requests ({req}) and limits ({lim}) differ: its budget must be guaranteed")
        env = {e["name"]: e for e in c.get("env", [])}
        src = env.get("WORKER_CPUS", {}).get("valueFrom", {}).get("resourceFieldRef", {})
        if src.get("resource") != "limits.cpu" or src.get("containerName") != c["name"]:
            errors.append(f"{name}: the worker's WORKER_CPUS does not follow its limits.cpu")
        probe = c.get("livenessProbe", {}).get("exec", {}).get("command", [])
        if probe[-1:] != ["health"]:
            errors.append(f"{name}: the worker's liveness probe is not `worker health`")
        if "replicas" in d["spec"] and ("ScaledObject" in by_kind or "HorizontalPodAutoscaler" in by_kind):
            errors.append(f"{name}: the worker Deployment sets replicas although an autoscaler owns them")
    for kind in ("Service", "PodDisruptionBudget"):
        for oname, o in by_kind.get(kind, {}).items():
            sel = o["spec"]["selector"]
            sel = sel.get("matchLabels", sel) if kind == "PodDisruptionBudget" else sel
            if not any(all(d["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in sel.items()) for d in deployments.values()):
                errors.append(f"{name}: {kind} {oname} selects no Deployment's pods")
    for dname in deployments:
        if not any(
            all(deployments[dname]["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in p["spec"]["selector"]["matchLabels"].items())
            for p in by_kind.get("PodDisruptionBudget", {}).values()
        ):
            errors.append(f"{name}: Deployment {dname} has no PodDisruptionBudget")
    models = [m.strip() for m in data.get("MODELS", "").split(",") if m.strip()]
    for so_name, so in by_kind.get("ScaledObject", {}).items():
        if so["spec"]["scaleTargetRef"]["name"] not in deployments:
            errors.append(f"{name}: ScaledObject {so_name} scales a Deployment that does not exist")
        streams = set()
        for t in so["spec"]["triggers"]:
            if t["type"] != "redis-streams":
                continue
            md = t["metadata"]
            streams.add(md.get("stream"))
            if md.get("consumerGroup") != CONSUMER_GROUP:
                errors.append(f"{name}: the KEDA trigger on {md.get('stream')} reads group {md.get('consumerGroup')}, not {CONSUMER_GROUP}")
            if "lagCount" not in md:
                errors.append(f"{name}: the KEDA trigger on {md.get('stream')} does not scale on lag (lagCount)")
            addr_env = md.get("addressFromEnv")
            worker_env = (
                {e["name"] for e in pod_spec(deployments["worker"])["containers"][0].get("env", [])}
                if "worker" in deployments
                else set()
            )
            if addr_env and addr_env not in worker_env:
                errors.append(f"{name}: the KEDA trigger reads {addr_env} from the worker's environment, which lacks it")
            auth = t.get("authenticationRef", {}).get("name")
            if auth and auth not in by_kind.get("TriggerAuthentication", {}):
                errors.append(f"{name}: the KEDA trigger uses TriggerAuthentication {auth}, which is not there")
        want = {STREAM_PREFIX + m for m in models}
        if streams != want:
            errors.append(f"{name}: KEDA triggers read streams {sorted(streams)}, but MODELS={','.join(models)} needs {sorted(want)}")
    for ta_name, ta in by_kind.get("TriggerAuthentication", {}).items():
        for ref in ta["spec"].get("secretTargetRef", []):
            if ref["key"] not in keys_in_secret:
                errors.append(f"{name}: TriggerAuthentication {ta_name} reads Secret key {ref['key']}, which is not there")
    for hpa_name, hpa in by_kind.get("HorizontalPodAutoscaler", {}).items():
        if hpa["spec"]["scaleTargetRef"]["name"] not in deployments:
            errors.append(f"{name}: HPA {hpa_name} scales a Deployment that does not exist")
    if "ScaledObject" in by_kind and "HorizontalPodAutoscaler" in by_kind:
        errors.append(f"{name}: both a KEDA ScaledObject and an HPA scale the workers")
    return errors


def self_test() -> None:
    """The schemas must reject what is wrong, or this whole check proves nothing."""
    bad_deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
                      "spec": {"selector": {"matchLabels": {"a": "b"}}, "replicas": "two",
                               "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "x", "image": "x", "livenes": {}}]}}}}
    bad_so = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "x"},
              "spec": {"scaleTargetRef": {"name": "x"}, "minReplicaCount": "one", "triggers": [{"metadata": {}}]}}
    for obj in (bad_deployment, bad_so):
        try:
            validate_schema(obj)
        except Invalid:
            continue
        raise SystemExit(f"validate.py self-test: a broken {obj['kind']} passed its schema; the schemas are not being applied")


def main() -> int:
    self_test()
    base = HERE / "base"
    secret_keys = {k for o in render(base) if o["kind"] == "Secret" for k in o.get("stringData", {})}
    renders = [
        ("base", lambda: render(base)),
        ("overlays/production (components/keda)", lambda: render(HERE / "overlays" / "production")),
        ("overlays/production with components/hpa", lambda: render(HERE / "overlays" / "production", [HERE / "components" / "hpa"], {"keda"})),
    ]
    failures = 0
    for name, do in renders:
        try:
            objects = do()
        except Invalid as e:
            print(f"ERROR {name}: {e}")
            failures += 1
            continue
        kinds = {}
        for obj in objects:
            try:
                against = validate_schema(obj)
                kinds[against] = kinds.get(against, 0) + 1
            except Invalid as e:
                print(f"ERROR {name}: {obj['kind']} {obj['metadata']['name']}: {e}")
                failures += 1
        errors = cross_check(name, objects, secret_keys)
        for e in errors:
            print(f"ERROR {e}")
        failures += len(errors)
        summary = ", ".join(f"{n} against {k}" for k, n in sorted(kinds.items()))
        print(f"{name}: {len(objects)} objects ({summary}); cross-checks {'failed' if errors else 'ok'}")
    if failures:
        print(f"kubernetes manifests: {failures} error(s)")
        return 1
    print(
        f"kubernetes manifests: {len(renders)} renders valid (kubernetes-validate {kv_version}, "
        f"Kubernetes {K8S_VERSION}; no kustomize binary here: rendered by this script)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
