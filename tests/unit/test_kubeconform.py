"""kubeconform (the upstream validator, built by `.ci/kubeconform.sh`) checks every object of
every overlay strictly against Kubernetes 1.33's and 1.37's own schemas and the pinned operators'
CRD schemas (scorestream.k8s_crds): 0 invalid, 0 errors, 0 skipped. Never skipped: if kubeconform
cannot be built these tests fail."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from scorestream import k8s_crds
from tests import k8s_support

ROOT = k8s_support.ROOT
KUBE_VERSIONS = ("1.33.0", "1.37.0")


@pytest.fixture(scope="module")
def kubeconform() -> str:
    proc = subprocess.run(
        [str(ROOT / ".ci" / "kubeconform.sh")],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    assert proc.returncode == 0, f"kubeconform could not be provided:\n{proc.stderr[-3000:]}"
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def built() -> dict[str, list[dict[str, Any]]]:
    return k8s_support.build(k8s_support.kustomize())


@pytest.fixture(scope="module")
def schemas(
    tmp_path_factory: pytest.TempPathFactory, built: dict[str, list[dict[str, Any]]]
) -> Path:
    root = tmp_path_factory.mktemp("schemas")
    k8s_crds.write_kubeconform_schemas(root / "crds")
    custom = set(k8s_crds.crd_schemas())
    kinds = {
        (o["apiVersion"], o["kind"])
        for objects in built.values()
        for o in objects
        if (o["apiVersion"], o["kind"]) not in custom
    }
    for version in KUBE_VERSIONS:
        k8s_support.write_core_schemas(root / "core", version, kinds)
    return root


def validate(
    kubeconform: str, schemas: Path, version: str, files: list[Path]
) -> tuple[dict[str, int], list[dict[str, Any]]]:
    proc = subprocess.run(
        [
            kubeconform,
            "-strict",
            "-summary",
            "-output",
            "json",
            "-kubernetes-version",
            version,
            "-schema-location",
            str(schemas / "core" / k8s_support.KUBECONFORM_CORE_LAYOUT),
            "-schema-location",
            str(schemas / "crds" / k8s_crds.KUBECONFORM_LAYOUT),
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    report = json.loads(proc.stdout)
    return report["summary"], report["resources"]


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_every_object_of_every_overlay_is_valid(
    kubeconform: str,
    schemas: Path,
    built: dict[str, list[dict[str, Any]]],
    tmp_path: Path,
    version: str,
) -> None:
    files = []
    for overlay, objects in built.items():
        path = tmp_path / f"{overlay.replace('/', '-')}.yaml"
        path.write_text(yaml.safe_dump_all(objects, sort_keys=False))
        files.append(path)
    summary, problems = validate(kubeconform, schemas, version, files)
    assert problems == []
    total = sum(len(objects) for objects in built.values())
    assert summary == {"valid": total, "invalid": 0, "errors": 0, "skipped": 0}


@pytest.mark.parametrize(
    ("kind", "change"),
    [
        ("Deployment", lambda o: o["spec"].update(replica=2)),
        ("ScaledObject", lambda o: o["spec"].update(maxReplicas=3)),
        ("DestinationRule", lambda o: o["spec"]["trafficPolicy"].update(loadbalancer={})),
        ("HorizontalPodAutoscaler", lambda o: o["spec"].update(minReplicas="two")),
    ],
)
def test_kubeconform_refuses_mistakes(
    kubeconform: str,
    schemas: Path,
    built: dict[str, list[dict[str, Any]]],
    tmp_path: Path,
    kind: str,
    change: Any,
) -> None:
    obj = json.loads(json.dumps(next(o for o in built["istio"] if o["kind"] == kind)))
    change(obj)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(obj))
    summary, problems = validate(kubeconform, schemas, KUBE_VERSIONS[0], [path])
    assert summary["invalid"] == 1, problems
