"""NetworkPolicies: deny everything in the tenant namespace, then open only the design's flows.

Per service: DNS, the Kafka brokers' TLS listener, the OTLP collector; Prometheus in to the
metrics port; the ingress-nginx controller in to the gateway (the Istio ingress gateway's policy
is part of the ``istio`` overlay, :mod:`scorestream.k8s_edge`); HTTPS out to the internet (never to
private ranges) only for the services that need it (model storage, webhooks). The Kafka side is
closed by the Strimzi listener's ``networkPolicyPeers`` (tenant namespaces, KEDA and the training
pipeline's pods in the Kubeflow Pipelines namespace only).
"""

from __future__ import annotations

from typing import Any

from scorestream import k8s_config as cfg
from scorestream.k8s_apps import APPS, RETRAIN, App, labels, namespace, selector

API = "networking.k8s.io/v1"
MONITORING_NAMESPACE = "monitoring"
INGRESS_NAMESPACES = ("ingress-nginx",)
KEDA_NAMESPACE = "keda"
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16")


def _ns(*names: str) -> dict[str, Any]:
    return {
        "namespaceSelector": {
            "matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "In", "values": list(names)}
            ]
        }
    }


def ns_peer(*names: str) -> dict[str, Any]:
    """A NetworkPolicy peer: the namespaces of these names."""
    return _ns(*names)


def default_deny(tenant: str) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "NetworkPolicy",
        "metadata": {
            "name": "default-deny",
            "namespace": namespace(tenant),
            "labels": {"app.kubernetes.io/part-of": "scorestream", "scorestream.io/tenant": tenant},
        },
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }


def _egress(app: App) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [
        {
            "to": [
                {
                    **_ns("kube-system"),
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                }
            ],
            "ports": [{"protocol": p, "port": 53} for p in ("UDP", "TCP")],
        },
        {
            "to": [
                {
                    **_ns(cfg.KAFKA_NAMESPACE),
                    "podSelector": {
                        "matchLabels": {
                            "strimzi.io/cluster": cfg.KAFKA_CLUSTER,
                            "strimzi.io/kind": "Kafka",
                        }
                    },
                }
            ],
            "ports": [{"protocol": "TCP", "port": cfg.KAFKA_TLS_PORT}],
        },
        {
            "to": [_ns(cfg.OTLP_NAMESPACE)],
            "ports": [{"protocol": "TCP", "port": 4318}],
        },
    ]
    if app.egress_https:
        rules.append(
            {
                "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": list(PRIVATE_RANGES)}}],
                "ports": [{"protocol": "TCP", "port": 443}],
            }
        )
    return rules


def _ingress(app: App) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [
        {"from": [_ns(MONITORING_NAMESPACE)], "ports": [{"protocol": "TCP", "port": "http"}]}
    ]
    if app.service == "gateway":
        rules.append(
            {"from": [_ns(*INGRESS_NAMESPACES)], "ports": [{"protocol": "TCP", "port": "http"}]}
        )
    return rules


def service_policy(app: App, tenant: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "podSelector": {"matchLabels": selector(tenant, app.service)},
        "policyTypes": ["Ingress", "Egress"],
        "egress": _egress(app),
    }
    spec["ingress"] = _ingress(app) if app is not RETRAIN else []
    return {
        "apiVersion": API,
        "kind": "NetworkPolicy",
        "metadata": {
            "name": app.service,
            "namespace": namespace(tenant),
            "labels": labels(tenant, app.service),
        },
        "spec": spec,
    }


def tenant_policies(tenant: str) -> list[dict[str, Any]]:
    return [default_deny(tenant)] + [service_policy(a, tenant) for a in (*APPS, RETRAIN)]


def kafka_namespace() -> dict[str, Any]:
    """The Kafka cluster's namespace, with its topics and users (Strimzi watches it)."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": cfg.KAFKA_NAMESPACE,
            "labels": {"app.kubernetes.io/part-of": "scorestream"},
        },
    }


def kafka_namespace_default_deny() -> dict[str, Any]:
    """Ingress closed in the Kafka namespace; Strimzi generates the allow policies for its own
    components and for each listener's ``networkPolicyPeers``."""
    return {
        "apiVersion": API,
        "kind": "NetworkPolicy",
        "metadata": {
            "name": "default-deny-ingress",
            "namespace": cfg.KAFKA_NAMESPACE,
            "labels": {"app.kubernetes.io/part-of": "scorestream"},
        },
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }
