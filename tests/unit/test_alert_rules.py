"""The Prometheus rule file: names exist, alerts are documented, and promtool accepts and tests it.

promtool comes from `.ci/promtool.sh` (built once with `go install` and cached under
~/.cache/scorestream/bin; set PROMTOOL to use another binary). If it cannot be provided the
promtool tests fail, they are never skipped.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from scorestream.dev.metrics_catalog import collect, series_names

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "k8s" / "monitoring" / "rules"
RULE_FILE = RULES_DIR / "scorestream-rules.yaml"
RULE_TESTS = sorted((RULES_DIR / "tests").glob("*.yaml"))
SLO_DOC = ROOT / "docs" / "slo.md"

STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
# Metrics that come from Prometheus itself rather than from scorestream.
BUILTIN_SERIES = {"up"}


def load_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULE_FILE.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def referenced_series(expr: str) -> set[str]:
    """Series names an expression selects: identifiers outside strings that look like metrics."""
    tokens = IDENTIFIER.findall(STRING.sub('""', expr))
    return {t for t in tokens if t.startswith("scorestream_") or ":" in t or t in BUILTIN_SERIES}


def anchor(heading: str) -> str:
    """GitHub's anchor for a markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_groups_have_unique_names_and_rules() -> None:
    document = yaml.safe_load(RULE_FILE.read_text(encoding="utf-8"))
    names = [group["name"] for group in document["groups"]]
    assert len(names) == len(set(names))
    assert all(group["rules"] for group in document["groups"])


def test_every_referenced_metric_exists() -> None:
    rules = load_rules()
    known = series_names(collect()) | {r["record"] for r in rules if "record" in r}
    known |= BUILTIN_SERIES
    for rule in rules:
        used = referenced_series(rule["expr"])
        assert used, f"{rule.get('record') or rule.get('alert')} selects no series"
        unknown = used - known
        assert not unknown, f"{rule.get('record') or rule.get('alert')} uses unknown {unknown}"


def test_referenced_series_ignores_label_values_and_keywords() -> None:
    expr = 'sum by (le) (rate(scorestream_x_bucket{route="/v1/transactions:score"}[5m])) + a:b:c'
    assert referenced_series(expr) == {"scorestream_x_bucket", "a:b:c"}


def test_recording_rules_follow_the_naming_convention() -> None:
    for rule in load_rules():
        if "record" in rule:
            assert re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", rule["record"]), rule["record"]


def test_alerts_have_severity_summary_and_a_documented_runbook() -> None:
    headings = {
        anchor(line.lstrip("#"))
        for line in SLO_DOC.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    }
    alerts = [rule for rule in load_rules() if "alert" in rule]
    assert len({a["alert"] for a in alerts}) == len(alerts)
    for alert in alerts:
        assert alert["labels"]["severity"] in {"page", "ticket"}, alert["alert"]
        assert alert["annotations"]["summary"], alert["alert"]
        doc, _, section = alert["annotations"]["runbook"].partition("#")
        assert doc == "docs/slo.md"
        assert section in headings, f"{alert['alert']}: no section #{section} in docs/slo.md"
        assert alert["alert"] in SLO_DOC.read_text(encoding="utf-8"), alert["alert"]


def test_availability_uses_the_workbook_burn_rates() -> None:
    alerts = {r["alert"]: r for r in load_rules() if "alert" in r}
    expected = {
        "ScorestreamScoringBudgetBurnFast": ("1h", "5m", "14.4 * 0.001", "page"),
        "ScorestreamScoringBudgetBurnMedium": ("6h", "30m", "6 * 0.001", "page"),
        "ScorestreamScoringBudgetBurnSlow": ("3d", "6h", "> 0.001", "ticket"),
    }
    for name, (long, short, threshold, severity) in expected.items():
        expr = alerts[name]["expr"]
        assert f"error_ratio_rate{long} " in expr, name
        assert f"error_ratio_rate{short} " in expr, name
        assert expr.count(threshold) == 2, name
        assert alerts[name]["labels"]["severity"] == severity
        assert alerts[name]["labels"]["long_window"] == long


def _seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smhd])", duration))


def test_the_merchant_table_stall_window_covers_the_spec_step() -> None:
    """The table clock moves once per merchant step (fraud.yaml): a shorter window than the step
    would page every hour on a healthy table; the pod must be as old as the window."""
    from scorestream.features import FEATURE_SPEC  # noqa: PLC0415

    alerts = {r["alert"]: r for r in load_rules() if "alert" in r}
    expr = alerts["ScorestreamMerchantTableStalled"]["expr"]
    (window,) = re.findall(r"changes\(scorestream_merchant_table_as_of_seconds\[(\w+)\]\)", expr)
    (age,) = re.findall(r"scorestream_merchant_table_as_of_seconds offset (\w+)", expr)
    assert _seconds(window) >= FEATURE_SPEC.merchant_step_s
    assert _seconds(age) >= _seconds(window)
    stale = alerts["ScorestreamMerchantFeaturesStale"]
    assert "> 7200" in stale["expr"]
    from consumers.enricher import FRESHNESS  # noqa: PLC0415

    assert 7200 in FRESHNESS._upper_bounds  # the median against a bucket bound is exact


# -- promtool ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def promtool() -> str:
    script = ROOT / ".ci" / "promtool.sh"
    result = subprocess.run(
        [str(script)], capture_output=True, text=True, timeout=1500, check=False
    )
    if result.returncode != 0:
        pytest.fail(
            f"{script} could not provide promtool (exit {result.returncode}):\n{result.stderr}"
        )
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.timeout(1800)
def test_promtool_check_rules(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "check", "rules", str(RULE_FILE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


@pytest.mark.timeout(1800)
def test_promtool_test_rules(promtool: str) -> None:
    assert RULE_TESTS, "no promtool rule tests found"
    result = subprocess.run(
        [promtool, "test", "rules", *map(str, RULE_TESTS)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=RULES_DIR / "tests",
    )
    assert result.returncode == 0, result.stdout + result.stderr
