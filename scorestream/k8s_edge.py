"""The gateway's edge, per tenant: an Istio Gateway (``istio`` overlay) or an ingress-nginx
Ingress (``ingress`` overlay) in front of the gateway Service, generated like the rest of the
tenant's objects. Pure functions: nothing here talks to Kubernetes.

**Idempotency across replicas.** A retried request with the same ``Idempotency-Key`` must reach
the replica that answered the first attempt (a ``:score`` that answered 504 is only resolved on the
replica that reads its reply partition, see docs/gateway.md). So both edges hash on that header:

* Istio: a ``DestinationRule`` for the gateway Service with ``consistentHash.httpHeaderName:
  Idempotency-Key`` (Envoy's ring hash; a request without the header gets no hash and is balanced
  as usual).
* ingress-nginx: its consistent-hash balancer hashes the value of ``upstream-hash-by`` and an
  absent header hashes as the empty string, which would send *every* request without a key to one
  replica. So requests with the header take a second, canary Ingress (``canary-by-header`` +
  ``canary-by-header-pattern``: any non-empty value) whose ``upstream-hash-by`` is
  ``$http_idempotency_key`` (a canary Ingress keeps its own ``upstream-hash-by``; its other
  annotations are taken from the main one), towards a second Service over the same pods; the
  rest round-robins through the main Ingress.

**Istio.** The overlay assumes a standard install with **Istio CNI** enabled (``--set
components.cni.enabled=true``): istiod in ``istio-system`` and the ingress gateway of ``istioctl
install``'s default profile (:data:`ISTIOCTL`: pods labelled ``istio: ingressgateway`` in
``istio-system``) or of Istio's Helm ``gateway`` chart installed as ``istio-ingress`` in namespace
``istio-ingress`` (:data:`HELM`: ``istio: ingress``; ``scorestream k8s generate --istio-ingress
helm``). The Gateway's selector and the NetworkPolicy that admits the ingress gateway's pods are
generated from the same :class:`IstioIngress`. The tenant namespaces enforce the ``restricted`` Pod
Security level, which refuses the default ``istio-init`` container (NET_ADMIN, NET_RAW, UID 0); with
CNI the injected ``istio-validation`` and ``istio-proxy`` containers run as UID 1337 with no
capabilities (a unit test evaluates the injected pods with the upstream Pod Security code). The
retraining Job's pods are not injected (:data:`~scorestream.k8s_apps.ISTIO_INJECT_LABEL`): a classic
sidecar would keep the Job from completing. TLS for the tenant's host comes from the Secret
:func:`istio_tls_secret`, which Istio reads in the ingress gateway's namespace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scorestream.k8s_apps import labels, namespace, selector
from scorestream.k8s_network import API as NETWORK_API
from scorestream.k8s_network import ns_peer

ISTIO_API = "networking.istio.io/v1"
ISTIO_NAMESPACE = "istio-system"
"""Where istiod runs."""


@dataclass(frozen=True)
class IstioIngress:
    """Where the Istio ingress gateway's pods run and the labels that select them."""

    namespace: str
    selector: tuple[tuple[str, str], ...]

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.selector)


ISTIOCTL = IstioIngress("istio-system", (("istio", "ingressgateway"),))
"""``istioctl install`` (default profile): the ``istio-ingressgateway`` Deployment."""
HELM = IstioIngress("istio-ingress", (("istio", "ingress"),))
"""Istio's Helm ``gateway`` chart, release ``istio-ingress`` in namespace ``istio-ingress``."""
INSTALLS = {"istioctl": ISTIOCTL, "helm": HELM}
ISTIOD_SELECTOR = {"app": "istiod"}
ISTIOD_XDS_PORT = 15012
IDEMPOTENCY_HEADER = "Idempotency-Key"
NGINX = "nginx.ingress.kubernetes.io"
NGINX_HASH_BY = "$http_idempotency_key"
KEYED_SERVICE = "gateway-keyed"
"""The second gateway Service, behind the canary Ingress of requests with an Idempotency-Key."""
REQUEST_TIMEOUT_S = 35
"""Synchronous scoring waits up to max_deadline_s (30 s) for a decision."""


def host(tenant: str) -> str:
    return f"{tenant}.scorestream.example.com"


def istio_tls_secret(tenant: str) -> str:
    """The TLS Secret of the tenant's host, in the ingress gateway's namespace
    (:attr:`IstioIngress.namespace`)."""
    return f"scorestream-{tenant}-gateway-tls"


def gateway_service_host(tenant: str) -> str:
    return f"gateway.{namespace(tenant)}.svc.cluster.local"


def _meta(name: str, tenant: str) -> dict[str, Any]:
    return {"name": name, "namespace": namespace(tenant), "labels": labels(tenant, "gateway")}


# -- Istio ----------------------------------------------------------------------------------------
def istio_gateway(tenant: str, ingress: IstioIngress = ISTIOCTL) -> dict[str, Any]:
    return {
        "apiVersion": ISTIO_API,
        "kind": "Gateway",
        "metadata": _meta("scorestream", tenant),
        "spec": {
            "selector": ingress.labels,
            "servers": [
                {
                    "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                    "hosts": [host(tenant)],
                    "tls": {"mode": "SIMPLE", "credentialName": istio_tls_secret(tenant)},
                }
            ],
        },
    }


def virtual_service(tenant: str) -> dict[str, Any]:
    return {
        "apiVersion": ISTIO_API,
        "kind": "VirtualService",
        "metadata": _meta("gateway", tenant),
        "spec": {
            "hosts": [host(tenant)],
            "gateways": ["scorestream"],
            "http": [
                {
                    "match": [{"uri": {"prefix": "/"}}],
                    "route": [
                        {
                            "destination": {
                                "host": gateway_service_host(tenant),
                                "port": {"number": 80},
                            }
                        }
                    ],
                    # POSTs are retried only by clients that send an Idempotency-Key, never by
                    # the mesh
                    "timeout": f"{REQUEST_TIMEOUT_S}s",
                    "retries": {"attempts": 0},
                }
            ],
        },
    }


def destination_rule(tenant: str) -> dict[str, Any]:
    """Retries with the same Idempotency-Key reach the same gateway replica."""
    return {
        "apiVersion": ISTIO_API,
        "kind": "DestinationRule",
        "metadata": _meta("gateway", tenant),
        "spec": {
            "host": gateway_service_host(tenant),
            "trafficPolicy": {
                "loadBalancer": {"consistentHash": {"httpHeaderName": IDEMPOTENCY_HEADER}}
            },
        },
    }


def istio_policies(tenant: str, ingress: IstioIngress = ISTIOCTL) -> list[dict[str, Any]]:
    """The ingress gateway's pods in to the gateway; every sidecar out to istiod (xDS, certs)."""
    meta_labels = {"app.kubernetes.io/part-of": "scorestream", "scorestream.io/tenant": tenant}
    return [
        {
            "apiVersion": NETWORK_API,
            "kind": "NetworkPolicy",
            "metadata": {
                "name": "gateway-from-istio-ingress",
                "namespace": namespace(tenant),
                "labels": labels(tenant, "gateway"),
            },
            "spec": {
                "podSelector": {"matchLabels": selector(tenant, "gateway")},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [
                            {
                                **ns_peer(ingress.namespace),
                                "podSelector": {"matchLabels": ingress.labels},
                            }
                        ],
                        "ports": [{"protocol": "TCP", "port": "http"}],
                    }
                ],
            },
        },
        {
            "apiVersion": NETWORK_API,
            "kind": "NetworkPolicy",
            "metadata": {
                "name": "istio-sidecars",
                "namespace": namespace(tenant),
                "labels": meta_labels,
            },
            "spec": {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [
                            {
                                **ns_peer(ISTIO_NAMESPACE),
                                "podSelector": {"matchLabels": dict(ISTIOD_SELECTOR)},
                            }
                        ],
                        "ports": [{"protocol": "TCP", "port": ISTIOD_XDS_PORT}],
                    }
                ],
            },
        },
    ]


def istio_objects(tenant: str, ingress: IstioIngress = ISTIOCTL) -> list[dict[str, Any]]:
    return [
        istio_gateway(tenant, ingress),
        virtual_service(tenant),
        destination_rule(tenant),
        *istio_policies(tenant, ingress),
    ]


def istio_namespace_patch(tenant: str) -> dict[str, Any]:
    """Sidecar injection in the tenant namespace (a kustomize JSON patch)."""
    return {
        "target": {"kind": "Namespace", "name": namespace(tenant)},
        "patch": "- {op: add, path: /metadata/labels/istio-injection, value: enabled}",
    }


# -- ingress-nginx --------------------------------------------------------------------------------
def keyed_service(tenant: str) -> dict[str, Any]:
    """The gateway pods again, for the canary Ingress of requests with an Idempotency-Key."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(KEYED_SERVICE, tenant),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(tenant, "gateway"),
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def _ingress(tenant: str, name: str, service: str, annotations: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {**_meta(name, tenant), "annotations": annotations},
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": [host(tenant)], "secretName": "scorestream-gateway-tls"}],
            "rules": [
                {
                    "host": host(tenant),
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": service, "port": {"name": "http"}}},
                            }
                        ]
                    },
                }
            ],
        },
    }


def ingresses(tenant: str) -> list[dict[str, Any]]:
    """The main Ingress (round robin) and the canary one for requests with an Idempotency-Key
    (consistent hash on the key). TLS from ``scorestream-gateway-tls`` in the tenant namespace."""
    main = {
        f"{NGINX}/proxy-read-timeout": str(REQUEST_TIMEOUT_S),
        f"{NGINX}/proxy-body-size": "1m",
    }
    keyed = {
        f"{NGINX}/canary": "true",
        f"{NGINX}/canary-by-header": IDEMPOTENCY_HEADER,
        f"{NGINX}/canary-by-header-pattern": ".+",
        f"{NGINX}/upstream-hash-by": NGINX_HASH_BY,
    }
    return [
        _ingress(tenant, "gateway", "gateway", main),
        _ingress(tenant, KEYED_SERVICE, KEYED_SERVICE, keyed),
    ]


def ingress_objects(tenant: str) -> list[dict[str, Any]]:
    return [keyed_service(tenant), *ingresses(tenant)]
