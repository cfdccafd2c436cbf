"""The Grafana dashboard: generated and current, every queried series exists, every query parses.

A series exists when it is a `scorestream_*` series of the metrics catalog (docs/metrics.md,
read from the code) or a recording rule of k8s/monitoring/rules/scorestream-rules.yaml. The
queries are parsed by the real Prometheus parser: promtool (from `.ci/promtool.sh`, cached)
checks them as recording rules.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from scorestream import k8s_dashboard, k8s_monitoring
from scorestream.metrics_catalog import collect, series_names

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "k8s" / "monitoring" / "grafana" / "scorestream.json"
RULE_FILE = ROOT / "k8s" / "monitoring" / "rules" / "scorestream-rules.yaml"
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
WINDOW = re.compile(r"\[[0-9]+[smhdwy]\]")


def _document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return document


def selected_series(expr: str) -> set[str]:
    """Metric names an expression selects (label values and strings stripped first)."""
    tokens = IDENTIFIER.findall(STRING.sub('""', expr))
    return {t for t in tokens if t.startswith("scorestream_") or ":" in t}


def _known() -> set[str]:
    rules = yaml.safe_load(RULE_FILE.read_text(encoding="utf-8"))
    recorded = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    return series_names(collect()) | recorded


def test_committed_dashboard_equals_the_generator_output() -> None:
    assert DASHBOARD.read_text(encoding="utf-8") == k8s_dashboard.render(), (
        "stale: run `scorestream k8s generate`"
    )


def test_every_queried_metric_exists_in_the_catalog_or_the_rules() -> None:
    known = _known()
    queries = k8s_dashboard.queries(_document())
    assert len(queries) > 20
    for expr in queries:
        used = selected_series(expr)
        assert used, f"selects no scorestream series: {expr}"
        assert used <= known, f"unknown {used - known} in {expr}"


def test_the_series_check_catches_an_unknown_metric() -> None:
    assert selected_series('rate(scorestream_nope_total{tenant=~"$t"}[5m])') - _known() == {
        "scorestream_nope_total"
    }
    assert selected_series('x{route="/v1/a:b"}') == set()


def test_the_dashboard_covers_what_the_issue_asks_for() -> None:
    text = " ".join(k8s_dashboard.queries(_document())).lower()
    titles = " ".join(
        [t.lower() for t, _ in k8s_dashboard.ROWS]
        + [p.title.lower() for _, row in k8s_dashboard.ROWS for p in row]
    )
    for metric in (
        "scorestream_events_in_total",  # throughput per stage
        "scorestream_gateway_sync_seconds_bucket",  # latency percentiles
        "scorestream_consumer_lag_records",  # lag
        "scorestream_dlq_total",  # DLQ
        "scorestream_model_loaded",  # model versions
        "scorestream_monitor_average_precision",  # live AP
        "scorestream_score_psi",  # drift
    ):
        assert metric in text
    for word in ("throughput", "p99", "lag", "dead letters", "model versions", "drift"):
        assert word in titles or word in text
    ids = [p["id"] for p in _document()["panels"]]
    assert len(ids) == len(set(ids))


@pytest.fixture(scope="module")
def promtool() -> str:
    proc = subprocess.run(
        [str(ROOT / ".ci" / "promtool.sh")], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip()


def test_every_query_parses_with_promtool(promtool: str, tmp_path: Path) -> None:
    queries = k8s_dashboard.queries(_document())
    rules = [
        {"record": f"dashboard:query:q{i}", "expr": q.replace("$tenant", ".*")}
        for i, q in enumerate(queries)
        if not q.startswith("label_values(")
    ]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    proc = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{len(rules)} rules found" in proc.stdout


# -- the tenant filter (issue 18) ---------------------------------------------------------------
SELECTOR = re.compile(r"((?:tenant:)?scorestream_[a-z0-9_:]+)(\{[^}]*\})?")


def _panel_queries() -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in _document()["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def test_every_panel_follows_the_tenant_filter() -> None:
    """Each series a panel selects (scorestream_* metric or tenant:* recording rule) is filtered
    by $tenant; only the cluster-wide SLO panel is not, and says so in its title."""
    for title, expr in _panel_queries():
        if "all tenants" in title:
            assert "$tenant" not in expr
            continue
        selected = SELECTOR.findall(expr)
        assert selected, f"{title}: {expr}"
        for metric, labels in selected:
            assert 'tenant=~"$tenant"' in labels, f"{title}: {metric} ignores the tenant filter"


def test_metrics_without_a_tenant_label_get_one_at_scrape_time() -> None:
    """The series that the code labels by service only are labelled by the scrape: both monitors
    copy the pod's scorestream.io/tenant label into `tenant` and honour the series' own."""
    untenanted = {series for m in collect() if "tenant" not in m.labels for series in m.series}
    used = {
        metric
        for _, expr in _panel_queries()
        for metric, _ in SELECTOR.findall(expr)
        if metric in untenanted
    }
    assert used >= {
        "scorestream_gateway_requests_total",
        "scorestream_batch_seconds_bucket",
        "scorestream_consumer_lag_records",
        "scorestream_ready",
        "scorestream_state_restore_seconds_bucket",
    }
    for monitor in (k8s_monitoring.pod_monitor("demo"), k8s_monitoring.service_monitor("demo")):
        spec = monitor["spec"]
        (endpoint,) = spec.get("podMetricsEndpoints") or spec["endpoints"]
        assert endpoint["honorLabels"] is True
        assert {
            "sourceLabels": ["__meta_kubernetes_pod_label_scorestream_io_tenant"],
            "targetLabel": "tenant",
            "action": "replace",
        } in endpoint["relabelings"]
