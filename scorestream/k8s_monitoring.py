"""prometheus-operator objects: scrape targets per tenant and the rule file as a PrometheusRule.

The scrape targets label every series with its pod's tenant (:data:`TENANT_RELABELING`), so the
dashboard's tenant filter also applies to the metrics that the code labels by service only.

The plain rule file ``k8s/monitoring/rules/scorestream-rules.yaml`` (tested with promtool) stays
the single source: :func:`prometheus_rule` wraps its groups unchanged, and a unit test keeps the
committed ``PrometheusRule`` equal to this output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from scorestream.k8s_apps import APPS, METRICS_LABEL, labels, namespace

API = "monitoring.coreos.com/v1"
MONITORING_NAMESPACE = "monitoring"
RULE_FILE = (
    Path(__file__).resolve().parent.parent
    / "k8s"
    / "monitoring"
    / "rules"
    / ("scorestream-rules.yaml")
)
TENANT_RELABELING: dict[str, Any] = {
    "sourceLabels": ["__meta_kubernetes_pod_label_scorestream_io_tenant"],
    "targetLabel": "tenant",
    "action": "replace",
}
"""Every scraped series gets its pod's tenant as ``tenant``; with ``honorLabels`` a series that
already has one (from the code, the same value) keeps it."""
PROMETHEUS_LABELS = {"app.kubernetes.io/part-of": "scorestream", "release": "prometheus"}
"""``release: prometheus`` is what kube-prometheus-stack's default selectors match."""


def pod_monitor(tenant: str) -> dict[str, Any]:
    """Every consuming service's ``/metrics`` on its ``http`` port (they have no Service)."""
    services = [a.service for a in APPS if a.service != "gateway"]
    return {
        "apiVersion": API,
        "kind": "PodMonitor",
        "metadata": {
            "name": "scorestream",
            "namespace": namespace(tenant),
            "labels": {**PROMETHEUS_LABELS, "scorestream.io/tenant": tenant},
        },
        "spec": {
            "selector": {
                "matchLabels": {"scorestream.io/tenant": tenant},
                "matchExpressions": [
                    {"key": "app.kubernetes.io/name", "operator": "In", "values": services}
                ],
            },
            "podMetricsEndpoints": [
                {
                    "port": "http",
                    "path": "/metrics",
                    "interval": "15s",
                    "honorLabels": True,
                    "relabelings": [dict(TENANT_RELABELING)],
                }
            ],
        },
    }


def service_monitor(tenant: str) -> dict[str, Any]:
    """The gateway's ``/metrics`` through its Service."""
    return {
        "apiVersion": API,
        "kind": "ServiceMonitor",
        "metadata": {
            "name": "gateway",
            "namespace": namespace(tenant),
            "labels": {**PROMETHEUS_LABELS, **labels(tenant, "gateway")},
        },
        "spec": {
            "selector": {"matchLabels": {**labels(tenant, "gateway"), METRICS_LABEL: "true"}},
            "endpoints": [
                {
                    "port": "http",
                    "path": "/metrics",
                    "interval": "15s",
                    "honorLabels": True,
                    "relabelings": [dict(TENANT_RELABELING)],
                }
            ],
        },
    }


def prometheus_rule(rule_file: Path = RULE_FILE) -> dict[str, Any]:
    document = yaml.safe_load(rule_file.read_text(encoding="utf-8"))
    return {
        "apiVersion": API,
        "kind": "PrometheusRule",
        "metadata": {
            "name": "scorestream",
            "namespace": MONITORING_NAMESPACE,
            "labels": PROMETHEUS_LABELS,
        },
        "spec": {"groups": document["groups"]},
    }
