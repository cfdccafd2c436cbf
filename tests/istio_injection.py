"""What Istio's sidecar injector adds to a pod, as far as Pod Security is concerned.

Transcribed from Istio's injection template
(``manifests/charts/istio-control/istio-discovery/files/injection-template.yaml``, istio/istio at
86c9f01f, 2026-08-22) for the default values of ``istioctl install`` (``global.proxy.privileged``
false, interception ``REDIRECT``, no ``capNetBindService``, no ``seccompProfile`` value):

* without Istio CNI, the ``istio-init`` init container programs iptables itself: capabilities
  NET_ADMIN and NET_RAW, UID/GID 0, ``runAsNonRoot: false``;
* with Istio CNI (``pilot.cni.enabled``), it is ``istio-validation`` instead, run as UID/GID 1337
  with every capability dropped and ``--run-validation --skip-rule-apply``;
* ``istio-proxy``: UID/GID 1337, every capability dropped, read-only root filesystem; a regular
  container, or an init container with ``restartPolicy: Always`` with native sidecars;
* volumes: emptyDirs, a downwardAPI volume, projected service-account token and CA bundle.

Only the fields the Pod Security checks read are kept (the template's images, arguments and
environment do not matter to them); the pod-level ``securityContext`` stays the workload's own.
"""

from __future__ import annotations

import copy
from typing import Any

PROXY_UID = 1337

_DROP_ALL = {"drop": ["ALL"]}


def _init_container(*, cni: bool) -> dict[str, Any]:
    if cni:
        security: dict[str, Any] = {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "capabilities": dict(_DROP_ALL),
            "readOnlyRootFilesystem": True,
            "runAsGroup": PROXY_UID,
            "runAsUser": PROXY_UID,
            "runAsNonRoot": True,
        }
        args = ["istio-iptables", "--run-validation", "--skip-rule-apply"]
    else:
        security = {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
            "readOnlyRootFilesystem": False,
            "runAsGroup": 0,
            "runAsNonRoot": False,
            "runAsUser": 0,
        }
        args = ["istio-iptables"]
    return {
        "name": "istio-validation" if cni else "istio-init",
        "image": "docker.io/istio/proxyv2:1.31.4",
        "args": args,
        "securityContext": security,
    }


def _proxy(*, native: bool) -> dict[str, Any]:
    proxy: dict[str, Any] = {
        "name": "istio-proxy",
        "image": "docker.io/istio/proxyv2:1.31.4",
        "args": ["proxy", "sidecar"],
        "ports": [{"containerPort": 15090, "protocol": "TCP", "name": "http-envoy-prom"}],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": dict(_DROP_ALL),
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": PROXY_UID,
            "runAsGroup": PROXY_UID,
        },
    }
    if native:
        proxy["restartPolicy"] = "Always"
    return proxy


VOLUMES: tuple[dict[str, Any], ...] = (
    {"name": "workload-socket", "emptyDir": {}},
    {"name": "credential-socket", "emptyDir": {}},
    {"name": "workload-certs", "emptyDir": {}},
    {"name": "istio-envoy", "emptyDir": {"medium": "Memory"}},
    {"name": "istio-data", "emptyDir": {}},
    {
        "name": "istio-podinfo",
        "downwardAPI": {
            "items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
            ]
        },
    },
    {
        "name": "istio-token",
        "projected": {
            "sources": [
                {
                    "serviceAccountToken": {
                        "path": "istio-token",
                        "expirationSeconds": 43200,
                        "audience": "istio-ca",
                    }
                }
            ]
        },
    },
    {"name": "istiod-ca-cert", "configMap": {"name": "istio-ca-root-cert"}},
)


def inject(
    metadata: dict[str, Any], spec: dict[str, Any], *, cni: bool, native: bool = False
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pod's metadata and spec after injection (copies; the inputs are not changed)."""
    meta = copy.deepcopy(metadata)
    meta.setdefault("labels", {})["security.istio.io/tlsMode"] = "istio"
    meta.setdefault("annotations", {})["sidecar.istio.io/status"] = '{"initContainers":[]}'
    out = copy.deepcopy(spec)
    inits = [_init_container(cni=cni)]
    if native:
        inits.append(_proxy(native=True))
    else:
        out["containers"] = [*out["containers"], _proxy(native=False)]
    out["initContainers"] = [*out.get("initContainers", []), *inits]
    out["volumes"] = [*out.get("volumes", []), *copy.deepcopy(VOLUMES)]
    return meta, out


def injects(namespace_labels: dict[str, str], pod_labels: dict[str, str]) -> bool:
    """Whether the injector's default policy injects this pod (namespace label
    ``istio-injection: enabled``, unless the pod says ``sidecar.istio.io/inject: "false"``)."""
    if namespace_labels.get("istio-injection") != "enabled":
        return False
    return pod_labels.get("sidecar.istio.io/inject", "true") != "false"
