"""Supply chain and integrity: model artifacts are verified by sha256 before anything loads them,
and the dependency audit's allow-list policy (``make audit``) is enforced as documented.

The worker side (a tampered version promoted mid-stream → ``ModelRejected`` on
``<tenant>.model-rejections``, the old version keeps serving) runs on the real broker in
``tests/integration/test_worker.py::test_hot_swap_under_load_then_a_corrupt_promotion_is_rejected``.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from pipelines.repository import ModelRepository
from scorestream.dev.dependency_audit import (
    EXIT_INCOMPLETE,
    EXIT_OK,
    EXIT_VULNERABLE,
    evaluate,
    parse_allowlist,
)
from scorestream.errors import ConfigError, ModelIntegrityError
from tests.model_factory import tiny_model

pytestmark = [pytest.mark.security]


def test_a_swapped_valid_onnx_model_is_refused_by_its_sha256(tmp_path: Path) -> None:
    """The attacker's file is a perfectly valid ONNX model with the same inputs and outputs: only
    the digest in model.json tells it apart, and load() must refuse it before ONNX Runtime."""
    repo = ModelRepository(str(tmp_path / "models"))
    repo.publish(*tiny_model("1", seed=0))
    repo.publish(*tiny_model("2", seed=5))
    v1 = tmp_path / "models" / "fraud-gbt" / "1" / "model.onnx"
    v2 = tmp_path / "models" / "fraud-gbt" / "2" / "model.onnx"
    assert v1.read_bytes() != v2.read_bytes()
    v1.write_bytes(v2.read_bytes())
    with pytest.raises(ModelIntegrityError, match="sha256"):
        repo.load("fraud-gbt", "1")
    assert repo.load("fraud-gbt", "2").metadata.version == "2"


def test_an_appended_byte_is_refused(tmp_path: Path) -> None:
    repo = ModelRepository(str(tmp_path / "models"))
    repo.publish(*tiny_model("1"))
    path = tmp_path / "models" / "fraud-gbt" / "1" / "model.onnx"
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(ModelIntegrityError, match="tampered"):
        repo.load("fraud-gbt", "1")


def _report(*deps: dict[str, object]) -> dict[str, object]:
    return {"dependencies": list(deps), "fixes": []}


VULN = {"id": "PYSEC-2099-1", "aliases": ["CVE-2099-0001"], "fix_versions": ["2.0"]}
TODAY = date(2026, 11, 25)


def test_audit_policy() -> None:
    clean = _report({"name": "requests", "version": "2.32.3", "vulns": []})
    assert evaluate(clean, [], TODAY).exit_code() == EXIT_OK
    bad = _report({"name": "requests", "version": "1.0", "vulns": [VULN]})
    report = evaluate(bad, [], TODAY)
    assert report.exit_code() == EXIT_VULNERABLE
    assert "PYSEC-2099-1" in report.vulnerable[0]

    allowed = parse_allowlist("CVE-2099-0001 Requests 2026-12-31 not reachable: we never call it")
    report = evaluate(bad, allowed, TODAY)
    assert report.exit_code() == EXIT_OK
    assert "not reachable" in report.ignored[0]
    # an entry for another package does not cover this one
    other = parse_allowlist("CVE-2099-0001 urllib3 2026-12-31 other package")
    assert evaluate(bad, other, TODAY).exit_code() == EXIT_VULNERABLE
    # expired: the vulnerability counts again, and the stale entry itself fails the audit
    expired = parse_allowlist("PYSEC-2099-1 requests 2026-11-24 was fine last month")
    report = evaluate(bad, expired, TODAY)
    assert report.exit_code() == EXIT_VULNERABLE
    assert report.expired
    assert evaluate(clean, expired, TODAY).exit_code() == EXIT_VULNERABLE


def test_an_unanswered_dependency_makes_the_audit_incomplete_not_clean() -> None:
    report = evaluate(
        _report(
            {"name": "requests", "version": "2.32.3", "vulns": []},
            {
                "name": "numpy",
                "skip_reason": "Dependency not found on PyPI and could not be audited",
            },
            {"name": "scorestream", "skip_reason": "distribution marked as editable"},
        ),
        [],
        TODAY,
    )
    assert report.exit_code() == EXIT_INCOMPLETE
    assert report.audited == 1
    assert len(report.skipped) == 1
    assert not any("no known vulnerabilities" in line for line in report.lines())


def test_the_committed_allowlist_is_valid_and_current() -> None:
    text = Path(".pip-audit-allowlist").read_text(encoding="utf-8")
    for entry in parse_allowlist(text):
        assert entry.expires >= date.today(), f"expired allow-list entry {entry.vuln_id}"
        assert len(entry.reason) >= 10, entry
    with pytest.raises(ConfigError, match="line 1"):
        parse_allowlist("CVE-1 pkg not-a-date reason")
