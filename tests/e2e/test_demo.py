"""The README's demo command runs end to end against the session broker."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


def test_demo_round_trips_generated_transactions(kafka_bootstrap: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "scorestream", "roundtrip", "--count", "250", "--seed", "11"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "read back 250 of 250" in proc.stdout
    assert "decoded equal to sent" in proc.stdout
    assert "key = account_id): yes" in proc.stdout


def test_topics_create_cli_is_idempotent(kafka_bootstrap: str) -> None:
    first = subprocess.run(
        [sys.executable, "-m", "scorestream", "topics", "create", "--tenant", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert first.returncode == 0, first.stderr
    second = subprocess.run(
        [sys.executable, "-m", "scorestream", "topics", "create", "--tenant", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert second.returncode == 0, second.stderr
    lines = second.stdout.strip().splitlines()
    assert lines
    assert all(line.startswith("unchanged") for line in lines), second.stdout
    assert any("demo.audit" in line for line in lines)


def test_invalid_tenant_is_a_clear_cli_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "scorestream", "topics", "create", "--tenant", "Bad Tenant"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "invalid tenant id" in proc.stderr


@pytest.mark.slow
def test_live_demo_runs_and_summarises(kafka_bootstrap: str) -> None:
    """The README's first command, shortened: services up, traffic, hot swap, summary, down."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "scorestream",
            "demo",
            "--duration",
            "16",
            "--rate",
            "200",
            "--sync-rate",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "all services ready" in proc.stdout
    assert "hot swap" in proc.stdout
    summary = json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith('{"summary"')))
    assert summary["summary"]["transactions"] > 0
    assert summary["summary"]["decisions"] > 0
    assert len(summary["summary"]["versions"]) == 2  # served by both versions: the swap happened
