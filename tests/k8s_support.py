"""Rendering the k8s/ overlays for the tests: ``kustomize build`` of each, parsed."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "k8s"
OVERLAYS = ("dev", "prod", "istio", "ingress", "tenants/demo")
POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}


def kustomize() -> str:
    """A kustomize-compatible command (``.ci/kustomize.sh``: kubectl's, or built with Go)."""
    proc = subprocess.run(
        [str(ROOT / ".ci" / "kustomize.sh")],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    assert proc.returncode == 0, f"kustomize could not be provided:\n{proc.stderr[-3000:]}"
    return proc.stdout.strip()


def build(command: str, overlays: tuple[str, ...] = OVERLAYS) -> dict[str, list[dict[str, Any]]]:
    """``kustomize build`` of every overlay: overlay -> its objects."""
    out = {}
    for overlay in overlays:
        proc = subprocess.run(
            [command, "build", str(K8S / "overlays" / overlay)],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        assert proc.returncode == 0, f"kustomize build {overlay} failed:\n{proc.stderr}"
        out[overlay] = [d for d in yaml.safe_load_all(proc.stdout) if d]
    return out


def pod_templates(
    objects: list[dict[str, Any]],
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(object, pod template) of every object that makes pods."""
    for obj in objects:
        kind = obj["kind"]
        if kind not in POD_KINDS:
            continue
        if kind == "Pod":
            yield obj, obj
        elif kind == "CronJob":
            yield obj, obj["spec"]["jobTemplate"]["spec"]["template"]
        else:
            yield obj, obj["spec"]["template"]


# -- schemas for kubeconform -----------------------------------------------------------------------
KUBECONFORM_CORE_LAYOUT = (
    "{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/"
    "{{ .ResourceKind }}{{ .KindSuffix }}.json"
)
"""The ``-schema-location`` template of :func:`write_core_schemas`' directory."""


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _relinked(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: "#/definitions/" + v.rsplit("/", 1)[-1]
            if k == "$ref" and isinstance(v, str)
            else _relinked(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_relinked(v) for v in node]
    return node


def write_core_schemas(dest: Path, version: str, kinds: set[tuple[str, str]]) -> None:
    """Kubernetes' own strict schemas of ``version`` for the (apiVersion, kind) pairs, one
    self-contained file each in kubeconform's layout, from kubernetes-validate's copy of the
    Kubernetes OpenAPI (whose files share one ``/api/_definitions.json`` that kubeconform's
    loader cannot follow: the definitions each kind needs are copied into its file)."""
    import json  # noqa: PLC0415

    import kubernetes_validate  # noqa: PLC0415

    source = (
        Path(kubernetes_validate.__file__).parent
        / "kubernetes-json-schema"
        / f"v{version}-local-strict"
    )
    definitions = json.loads((source / "_definitions.json").read_text())["$defs"]
    out = dest / f"v{version}-standalone-strict"
    out.mkdir(parents=True, exist_ok=True)
    for api_version, kind in sorted(kinds):
        group, _, ver = api_version.rpartition("/")
        suffix = f"-{group.split('.')[0]}-{ver}" if group else f"-{ver}"
        name = f"{kind.lower()}{suffix}.json"
        schema = json.loads((source / name).read_text())
        needed: set[str] = set()
        todo = [r.rsplit("/", 1)[-1] for r in _refs(schema)]
        while todo:
            ref = todo.pop()
            if ref not in needed:
                needed.add(ref)
                todo += [r.rsplit("/", 1)[-1] for r in _refs(definitions[ref])]
        schema = _relinked(schema)
        schema["definitions"] = {ref: _relinked(definitions[ref]) for ref in sorted(needed)}
        (out / name).write_text(json.dumps(schema), encoding="utf-8")
