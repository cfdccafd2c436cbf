"""The metrics catalog is complete, well-formed, and docs/metrics.md is current."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scorestream.dev import metrics_catalog
from scorestream.dev.metrics_catalog import METRIC_MODULES, MetricDef, collect, render, series_names

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("scorestream", "consumers", "producers", "inference_worker")
# A prometheus_client constructor whose first argument is a scorestream_ metric name.
DEFINITION = re.compile(r"\b(?:Counter|Gauge|Histogram|Info|Summary)\(\s*\"(scorestream_\w+)\"")


def defined_in_sources() -> dict[str, set[str]]:
    """Metric names defined in the sources, by module."""
    found: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            names = set(DEFINITION.findall(path.read_text(encoding="utf-8")))
            if names:
                module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
                found[module] = names
    return found


@pytest.fixture(scope="module")
def catalog() -> list[MetricDef]:
    return collect()


def test_every_module_defining_metrics_is_listed() -> None:
    assert set(defined_in_sources()) == set(METRIC_MODULES)


def test_every_metric_in_the_sources_is_in_the_catalog(catalog: list[MetricDef]) -> None:
    families = {m.name.removesuffix("_total").removesuffix("_info") for m in catalog}
    for module, names in defined_in_sources().items():
        missing = {n.removesuffix("_total") for n in names} - families
        assert not missing, f"{module} defines metrics missing from the catalog: {missing}"


def test_catalog_is_sorted_and_well_formed(catalog: list[MetricDef]) -> None:
    names = [m.name for m in catalog]
    assert names == sorted(names)
    assert len(names) == len(set(names))
    assert len(catalog) >= 40
    for metric in catalog:
        assert metric.name.startswith("scorestream_"), metric
        assert metric.type in {"counter", "gauge", "histogram", "info", "summary"}, metric
        assert metric.help.strip(), f"{metric.name} has no help text"
        if metric.type == "counter":
            assert metric.name.endswith("_total"), metric.name
        # Low-cardinality labels only: never per-record ids.
        assert not [label for label in metric.labels if label.endswith("_id")], metric


def test_known_metrics_and_labels(catalog: list[MetricDef]) -> None:
    by_name = {m.name: m for m in catalog}
    assert by_name["scorestream_gateway_requests_total"] == MetricDef(
        "scorestream_gateway_requests_total",
        "counter",
        "HTTP requests by route template, method and status code",
        ("route", "method", "status"),
    )
    assert by_name["scorestream_gateway_request_seconds"].type == "histogram"
    assert by_name["scorestream_model_info"].type == "info"
    assert by_name["scorestream_score_psi"].labels == ("tenant", "model", "version", "alias")


def test_series_names_cover_exposition_suffixes(catalog: list[MetricDef]) -> None:
    series = series_names(catalog)
    assert {
        "scorestream_dlq_total",
        "scorestream_gateway_request_seconds_bucket",
        "scorestream_gateway_request_seconds_count",
        "scorestream_gateway_request_seconds_sum",
        "scorestream_model_info",
        "scorestream_ready",
    } <= series
    assert "scorestream_dlq" not in series


def test_render_is_a_sorted_markdown_table(catalog: list[MetricDef]) -> None:
    text = render(catalog)
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) == len(catalog)
    assert rows == sorted(rows)
    row = "| `scorestream_gateway_requests_total` | counter | `route`, `method`, `status` |"
    assert row in text


def test_committed_docs_are_current(catalog: list[MetricDef]) -> None:
    committed = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    assert committed == render(catalog), (
        "docs/metrics.md is stale: run `.venv/bin/python -m scorestream.dev.metrics_catalog`"
    )


def test_check_flag_detects_stale_docs(tmp_path: Path) -> None:
    doc = tmp_path / "metrics.md"
    assert metrics_catalog.main(["--output", str(doc)]) == 0
    assert metrics_catalog.main(["--check", "--output", str(doc)]) == 0
    doc.write_text(doc.read_text(encoding="utf-8") + "stale\n", encoding="utf-8")
    assert metrics_catalog.main(["--check", "--output", str(doc)]) == 1
