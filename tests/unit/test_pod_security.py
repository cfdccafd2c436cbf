"""Every pod template of every overlay passes the Pod Security level its namespace enforces, as
judged by the upstream admission code (k8s.io/pod-security-admission's policy evaluator, the code
the kube-apiserver's PodSecurity plugin runs), Istio's injected containers included where the
overlay injects them.

The checker is tests/podsecurity (Go), built once by `.ci/podsecurity.sh` and cached; if it cannot
be built these tests fail, they are never skipped.
"""

from __future__ import annotations

import copy
import json
import subprocess
from typing import Any

import pytest

from tests import istio_injection, k8s_support

ROOT = k8s_support.ROOT
ENFORCE = "pod-security.kubernetes.io/enforce"
ENFORCE_VERSION = "pod-security.kubernetes.io/enforce-version"


@pytest.fixture(scope="module")
def checker() -> str:
    proc = subprocess.run(
        [str(ROOT / ".ci" / "podsecurity.sh")],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    assert proc.returncode == 0, f"the Pod Security checker could not be built:\n{proc.stderr}"
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def built() -> dict[str, list[dict[str, Any]]]:
    return k8s_support.build(k8s_support.kustomize())


def evaluate(checker: str, pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run the upstream evaluator on ``pods`` ({name, level, version, metadata, spec})."""
    proc = subprocess.run(
        [checker],
        input=json.dumps(pods),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    verdicts: list[dict[str, Any]] = json.loads(proc.stdout)
    assert [v["name"] for v in verdicts] == [p["name"] for p in pods]
    return verdicts


def overlay_pods(
    objects: list[dict[str, Any]], *, cni: bool = True, native: bool = False
) -> list[dict[str, Any]]:
    """Every pod template of an overlay at its namespace's enforced level; injected by Istio
    (with or without CNI) where its namespace and labels say so."""
    namespaces = {
        o["metadata"]["name"]: o["metadata"].get("labels", {})
        for o in objects
        if o["kind"] == "Namespace"
    }
    pods = []
    for obj, template in k8s_support.pod_templates(objects):
        ns = obj["metadata"]["namespace"]
        ns_labels = namespaces[ns]  # every workload's namespace is part of the overlay
        metadata = template.get("metadata", {})
        spec = template["spec"]
        injected = istio_injection.injects(ns_labels, metadata.get("labels", {}))
        if injected:
            metadata, spec = istio_injection.inject(metadata, spec, cni=cni, native=native)
        pods.append(
            {
                "name": f"{obj['kind']}/{ns}/{obj['metadata']['name']}"
                + (" (istio)" if injected else ""),
                "level": ns_labels.get(ENFORCE, "privileged"),
                "version": ns_labels.get(ENFORCE_VERSION, "latest"),
                "metadata": metadata,
                "spec": spec,
            }
        )
    return pods


@pytest.mark.parametrize("overlay", k8s_support.OVERLAYS)
def test_every_pod_passes_its_namespace_level(
    checker: str, built: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    pods = overlay_pods(built[overlay])
    assert len(pods) >= 9
    assert {p["level"] for p in pods} == {"restricted"}
    injected = [p["name"] for p in pods if p["name"].endswith("(istio)")]
    if overlay == "istio":
        assert len(injected) == len(pods) - 1, "every pod but the retrain Job's is injected"
    else:
        assert injected == []
    refused = [v for v in evaluate(checker, pods) if not v["allowed"]]
    assert refused == []


def test_istio_with_native_sidecars_passes_too(
    checker: str, built: dict[str, list[dict[str, Any]]]
) -> None:
    pods = overlay_pods(built["istio"], native=True)
    assert all(v["allowed"] for v in evaluate(checker, pods))


def test_without_istio_cni_every_injected_pod_is_refused(
    checker: str, built: dict[str, list[dict[str, Any]]]
) -> None:
    """Why the istio overlay requires Istio CNI: the default istio-init container is refused by
    `restricted` (NET_ADMIN/NET_RAW, root)."""
    verdicts = evaluate(checker, overlay_pods(built["istio"], cni=False))
    refused = {v["name"] for v in verdicts if not v["allowed"]}
    assert refused == {v["name"] for v in verdicts if v["name"].endswith("(istio)")}
    assert refused
    reasons = " ".join(r for v in verdicts for r in v["forbidden"])
    assert "NET_ADMIN" in reasons
    assert "runAsNonRoot" in reasons


@pytest.mark.parametrize(
    ("mutation", "reason"),
    [
        (lambda s: s["containers"][0]["securityContext"].pop("capabilities"), "capabilities"),
        (
            lambda s: s["containers"][0]["securityContext"].update(allowPrivilegeEscalation=True),
            "allowPrivilegeEscalation",
        ),
        (lambda s: s["securityContext"].update(runAsUser=0), "runAsUser"),
        (lambda s: s["volumes"].append({"name": "h", "hostPath": {"path": "/"}}), "hostPath"),
        (
            lambda s: (
                [c["securityContext"].pop("seccompProfile") for c in s["containers"]]
                and s["securityContext"].pop("seccompProfile")
            ),
            "seccompProfile",
        ),
    ],
)
def test_the_checker_refuses_what_restricted_forbids(
    checker: str, built: dict[str, list[dict[str, Any]]], mutation: Any, reason: str
) -> None:
    (pod,) = [p for p in overlay_pods(built["prod"]) if p["name"].endswith("/decision")]
    bad = copy.deepcopy(pod)
    mutation(bad["spec"])
    good, wrong = evaluate(checker, [pod, bad])
    assert good["allowed"]
    assert not wrong["allowed"]
    assert reason in " ".join(wrong["forbidden"])
