"""The Grafana dashboard (``k8s/monitoring/grafana/scorestream.json``), generated from rows here.

Panels: throughput per stage, latency percentiles, consumer lag, DLQ, the served features (merchant
table freshness and clocks, late activity, duplicates, reroutes, state restores), model versions,
live average precision, score drift (PSI) and the SLO error ratio. Every series a query selects is a
``scorestream_*`` metric of the catalog (``docs/metrics.md``) or a recording rule of
``k8s/monitoring/rules/scorestream-rules.yaml``; a unit test checks this.

Every panel follows the ``$tenant`` variable except the availability SLO (a cluster-wide
objective, titled "all tenants"). Metrics whose code carries no ``tenant`` label (the kernel's
per-service metrics: batch time, lag, readiness, restores; the gateway's request counter) get it
at scrape time: the PodMonitor and ServiceMonitor copy the pod's ``scorestream.io/tenant`` label
into ``tenant`` (:mod:`scorestream.k8s_monitoring`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

UID = "scorestream-overview"
T = '{tenant=~"$tenant"}'


@dataclass(frozen=True)
class Panel:
    title: str
    targets: tuple[tuple[str, str], ...]
    """(PromQL, legend)"""
    unit: str = "short"
    kind: str = "timeseries"
    description: str = ""
    width: int = 12
    options: dict[str, Any] = field(default_factory=dict)


def _q(quantile: float, metric: str, by: str = "") -> str:
    group = f"le, {by}" if by else "le"
    return f"histogram_quantile({quantile}, sum by ({group}) (rate({metric}_bucket{T}[5m])))"


ROWS: tuple[tuple[str, tuple[Panel, ...]], ...] = (
    (
        "Throughput",
        (
            Panel(
                "Records consumed per stage",
                (
                    (
                        "sum by (service) (rate(scorestream_events_in_total" + T + "[5m]))",
                        "{{service}}",
                    ),
                ),
                unit="reqps",
                description="Records read from each service's input topic per second",
            ),
            Panel(
                "Records produced per stage and stream",
                (
                    (
                        "sum by (service, stream) (rate(scorestream_events_out_total"
                        + T
                        + "[5m]))",
                        "{{service}} → {{stream}}",
                    ),
                ),
                unit="reqps",
            ),
            Panel(
                "Decisions by outcome",
                (
                    (
                        "sum by (outcome) (rate(scorestream_decisions_total" + T + "[5m]))",
                        "{{outcome}}",
                    ),
                ),
                unit="reqps",
            ),
            Panel(
                "Gateway requests by status",
                (
                    (
                        "sum by (status) (rate(scorestream_gateway_requests_total" + T + "[5m]))",
                        "{{status}}",
                    ),
                ),
                unit="reqps",
            ),
        ),
    ),
    (
        "Latency",
        (
            Panel(
                "Synchronous scoring (gateway publish → decision)",
                tuple(
                    (_q(q, "scorestream_gateway_sync_seconds"), f"p{int(q * 100)}")
                    for q in (0.5, 0.95, 0.99)
                ),
                unit="s",
            ),
            Panel(
                "Event → prediction and prediction → decision, p99",
                (
                    (_q(0.99, "scorestream_event_to_prediction_seconds"), "event → prediction"),
                    (
                        _q(0.99, "scorestream_prediction_to_decision_seconds"),
                        "prediction → decision",
                    ),
                    (
                        "max(tenant:scorestream_event_to_decision_seconds:p99_estimate" + T + ")",
                        "event → decision (estimate)",
                    ),
                ),
                unit="s",
            ),
            Panel(
                "Batch time per service, p99",
                (
                    (
                        _q(0.99, "scorestream_batch_seconds", "service"),
                        "{{service}}",
                    ),
                ),
                unit="s",
            ),
            Panel(
                "ONNX Runtime time per batch, p99",
                (
                    (
                        _q(0.99, "scorestream_inference_seconds", "alias"),
                        "{{alias}}",
                    ),
                ),
                unit="s",
            ),
        ),
    ),
    (
        "Lag, dead letters and health",
        (
            Panel(
                "Consumer lag per service and topic",
                (
                    (
                        "sum by (service, topic) (scorestream_consumer_lag_records" + T + ")",
                        "{{service}} {{topic}}",
                    ),
                ),
                unit="short",
                description="What KEDA scales the merchant stage, enricher, worker and decision on",
            ),
            Panel(
                "Dead letters per second by service and reason",
                (
                    (
                        "sum by (service, reason) (rate(scorestream_dlq_total" + T + "[5m]))",
                        "{{service}}: {{reason}}",
                    ),
                ),
                unit="reqps",
            ),
            Panel(
                "DLQ ratio (5m)",
                (
                    (
                        "sum by (service) (rate(scorestream_dlq_total" + T + "[5m])) / "
                        "sum by (service) (rate(scorestream_events_in_total" + T + "[5m]))",
                        "{{service}}",
                    ),
                ),
                unit="percentunit",
            ),
            Panel(
                "Ready pods per service",
                (("sum by (service) (scorestream_ready" + T + ")", "{{service}}"),),
                unit="short",
            ),
            Panel(
                "Availability SLO: error ratio (5m, 1h), all tenants",
                (
                    ("scorestream:slo_availability:error_ratio_rate5m", "5m"),
                    ("scorestream:slo_availability:error_ratio_rate1h", "1h"),
                ),
                unit="percentunit",
            ),
        ),
    ),
    (
        "Features",
        (
            Panel(
                "Merchant feature freshness (event time - served as-of)",
                tuple(
                    (
                        _q(q, "scorestream_enricher_merchant_freshness_seconds", "tenant"),
                        f"p{int(q * 100)} {{{{tenant}}}}",
                    )
                    for q in (0.5, 0.99)
                ),
                unit="s",
                description="How old the merchant aggregates served with a transaction are, "
                "against the transaction's own time; below the spec's step (1 h) when the table "
                "keeps up. ScorestreamMerchantFeaturesStale fires when the median passes 2 h",
            ),
            Panel(
                "Merchant table age (now - as-of), slowest enricher",
                (
                    (
                        "time() - min by (tenant) (scorestream_merchant_table_as_of_seconds"
                        + T
                        + " > 0)",
                        "{{tenant}}",
                    ),
                ),
                unit="s",
                description="The time up to which the merchant table is complete, as each "
                "enricher sees it; it moves in steps of the spec's step (1 h). "
                "ScorestreamMerchantTableStalled fires when it stops moving under traffic",
            ),
            Panel(
                "Merchant table clock age per partition (merchant stage)",
                (
                    (
                        "time() - max by (tenant, partition) (scorestream_merchant_clock_seconds"
                        + T
                        + ")",
                        "{{tenant}} p{{partition}}",
                    ),
                ),
                unit="s",
                description="The partition whose clock lags holds the whole table back: its "
                "inputs (transactions, labels) are slow or not caught up",
            ),
            Panel(
                "Transactions served without merchant features",
                (
                    (
                        "sum by (tenant) (rate(scorestream_enricher_merchant_table_missing_total"
                        + T
                        + "[5m]))",
                        "{{tenant}}",
                    ),
                ),
                unit="reqps",
                description="The merchant table is not complete yet (a partition has no clock)",
            ),
            Panel(
                "Late merchant activity, duplicates and reroutes",
                (
                    (
                        "sum by (tenant, kind) (rate(scorestream_merchant_late_total"
                        + T
                        + "[5m]))",
                        "late {{kind}} {{tenant}}",
                    ),
                    (
                        "sum by (tenant) (rate(scorestream_enricher_duplicates_total"
                        + T
                        + "[5m]))",
                        "duplicate transactions {{tenant}}",
                    ),
                    (
                        "sum by (tenant) (rate(scorestream_enricher_rerouted_total" + T + "[5m]))",
                        "rerouted {{tenant}}",
                    ),
                ),
                unit="reqps",
                description="Late: activity older than its partition's clock (counted from the "
                "next snapshot on). Rerouted: records on a partition their key does not hash to "
                "(a producer without the murmur2 partitioner)",
            ),
            Panel(
                "State restore time per store, p99 over 1h",
                (
                    (
                        "histogram_quantile(0.99, sum by (le, store) "
                        "(increase(scorestream_state_restore_seconds_bucket" + T + "[1h])))",
                        "{{store}}",
                    ),
                ),
                unit="s",
                description="Rebuilding newly assigned partitions of a keyed state store from "
                "its checkpoint and changelog, after a rebalance or a restart; "
                "scorestream_state_restored_records_total counts the changelog records read",
            ),
        ),
    ),
    (
        "Models",
        (
            Panel(
                "Model versions serving",
                (
                    (
                        "max by (tenant, model, version, alias) (scorestream_model_loaded"
                        + T
                        + ") == 1",
                        "{{alias}} {{version}}",
                    ),
                ),
                kind="table",
                options={"showHeader": True},
            ),
            Panel(
                "Predictions per second by version",
                (
                    (
                        "sum by (version, alias) (rate(scorestream_predictions_total"
                        + T
                        + "[5m]))",
                        "{{alias}} {{version}}",
                    ),
                ),
                unit="reqps",
            ),
            Panel(
                "Live average precision",
                (
                    (
                        "max by (version, alias) (scorestream_monitor_average_precision" + T + ")",
                        "{{alias}} {{version}}",
                    ),
                ),
                unit="percentunit",
                description="Area under the precision-recall curve over the labelled predictions",
            ),
            Panel(
                "Live precision and recall",
                (
                    (
                        "max by (version, alias) (scorestream_monitor_precision" + T + ")",
                        "precision {{alias}} {{version}}",
                    ),
                    (
                        "max by (version, alias) (scorestream_monitor_recall" + T + ")",
                        "recall {{alias}} {{version}}",
                    ),
                ),
                unit="percentunit",
            ),
            Panel(
                "Score drift (PSI vs reference)",
                (
                    (
                        "max by (version, alias) (scorestream_score_psi" + T + ")",
                        "{{alias}} {{version}}",
                    ),
                ),
                unit="short",
                description="Population stability index; the ScoreDrift alert fires above 0.2",
            ),
            Panel(
                "Models rejected at promotion",
                (
                    (
                        "sum by (model) (increase(scorestream_model_rejected_total" + T + "[1h]))",
                        "{{model}}",
                    ),
                ),
                unit="short",
            ),
        ),
    ),
)


def _panel(panel: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    return {
        "id": pid,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": panel.options,
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "expr": expr,
                "legendFormat": legend,
                **({"instant": True, "format": "table"} if panel.kind == "table" else {}),
            }
            for i, (expr, legend) in enumerate(panel.targets)
        ],
    }


def dashboard() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    pid, y = 1, 0
    for title, row in ROWS:
        panels.append(
            {
                "id": pid,
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        pid, y, x = pid + 1, y + 1, 0
        for panel in row:
            if x + panel.width > 24:
                x, y = 0, y + 8
            panels.append(_panel(panel, pid, x, y))
            pid, x = pid + 1, x + panel.width
        y += 8
    return {
        "uid": UID,
        "title": "scorestream",
        "tags": ["scorestream", "kafka"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "type": "datasource",
                    "query": "prometheus",
                    "label": "Prometheus",
                },
                {
                    "name": "tenant",
                    "type": "query",
                    "label": "Tenant",
                    "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    "query": {
                        "query": "label_values(scorestream_events_in_total, tenant)",
                        "refId": "tenant",
                    },
                    "definition": "label_values(scorestream_events_in_total, tenant)",
                    "includeAll": True,
                    "multi": True,
                    "allValue": ".*",
                    "refresh": 2,
                },
            ]
        },
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


def queries(document: dict[str, Any]) -> list[str]:
    """Every PromQL expression of a dashboard document (panels and template variables)."""
    out = [t["expr"] for p in document["panels"] for t in p.get("targets", [])]
    for var in document["templating"]["list"]:
        if var["type"] == "query":
            out.append(var["definition"])
    return out
