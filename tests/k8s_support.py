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
