"""Smoke runs of every benchmark (``scorestream bench <name> --smoke``) against the real broker.

They check that each benchmark runs end to end and writes a complete result file and plot —
never how fast anything was (this machine is shared; benchmarks measure time, tests do not).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def bench(name: str, tmp_path: Path, bootstrap: str, smoke_s: float = 8.0) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "scorestream", "bench", name, "--smoke", str(smoke_s)]
    done = subprocess.run(
        [*cmd, "--results-dir", str(tmp_path)],
        cwd=ROOT,
        env=os.environ | {"KAFKA_BOOTSTRAP_SERVERS": bootstrap},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (tmp_path / f"{name}.png").stat().st_size > 10_000
    results: dict[str, Any] = json.loads((tmp_path / f"{name}.json").read_text())
    machine = results["machine"]
    assert machine["nproc"] >= 1
    assert machine["cpu_model"]
    assert len(machine["loadavg_before"]) == 3
    assert len(machine["loadavg_after"]) == 3
    assert results["command"] == f"scorestream bench {name} --smoke {smoke_s:g}"
    return results


@pytest.mark.timeout(900)
def test_limits_smoke(kafka_bootstrap: str, tmp_path: Path) -> None:
    r = bench("limits", tmp_path, kafka_bootstrap)
    assert set(r["ort_only"]) == {"1", "100"}
    assert all(v["rows_per_s"] > 0 for v in r["ort_only"].values())
    for path in ("pydantic", "fast"):  # the contracts' codec, both paths side by side
        assert r["codec"]["paths"][path]["decode_us_per_event"] > 0
        assert r["codec"]["paths"][path]["encode_us_per_event"] > 0
    assert all(v > 0 for v in r["codec"]["candidates"]["decode_us_per_event"].values())
    assert r["peaks"]["codec_events_per_s_one_core"] > 0
    assert r["passthrough"][0]["records"] > 0


@pytest.mark.timeout(900)
def test_worker_smoke(kafka_bootstrap: str, tmp_path: Path) -> None:
    r = bench("worker", tmp_path, kafka_bootstrap)
    (run,) = r["worker"]
    assert "error" not in run, run.get("log_tail")
    assert run["predictions"] > 0
    assert run["duplicates"] == 0
    assert r["targets"]["best_eos"]["events_per_s"] == run["events_per_s"]
    assert r["targets"]["ratio_ge_0_75_of_eos_passthrough_same_batch"]["measured"] is not None


@pytest.mark.timeout(900)
def test_services_smoke(kafka_bootstrap: str, tmp_path: Path) -> None:
    r = bench("services", tmp_path, kafka_bootstrap)
    (run,) = r["runs"]
    assert run["arm"] == "after"
    assert (
        set(run["services"])
        == set(r["table"])
        == {
            "enricher",
            "worker",
            "decision",
            "notifier",
            "audit",
            "monitor",
        }
    )
    for service, figures in run["services"].items():  # CPU ticks of 10 ms: may round to 0
        assert figures["input_records"] > 0, service
        assert figures["cpu_us_per_input_record"] >= 0, service
        assert r["table"][service]["after_us_per_record"] is not None, service


@pytest.mark.timeout(900)
def test_e2e_smoke(kafka_bootstrap: str, tmp_path: Path) -> None:
    r = bench("e2e", tmp_path, kafka_bootstrap)
    (step,) = r["sync"]
    assert step["sent"] == step["ok"] + sum(
        n for status, n in step["statuses"].items() if status != "200"
    )
    assert step["ok"] > 0, step["statuses"]
    assert step["latency_ms"]["p50"] is not None
    (run,) = r["async"]
    assert run["decided"] == run["published"] > 0
    assert run["per_hop_ms"]["decision"]["p50"] is not None


@pytest.mark.timeout(900)
def test_latency_ab_smoke(kafka_bootstrap: str, tmp_path: Path) -> None:
    r = bench("latency", tmp_path, kafka_bootstrap)
    assert set(r["summary"]) == {"fixed_wait", "adaptive"}
    for variant in r["summary"].values():
        assert variant["sync"]["requests"] > 0
        assert variant["async"]["event_to_decision_p50_ms"] is not None


@pytest.mark.timeout(1800)
def test_peers_smoke(kafka_bootstrap: str, tmp_path: Path) -> None:
    """Creates the peers' virtualenvs on first use (pip; cached in
    ~/.cache/scorestream/bench-venvs)."""
    r = bench("peers", tmp_path, kafka_bootstrap)
    assert r["scorestream"]["predictions"] > 0
    for peer in ("mlserver", "faust"):
        assert "error" not in r[peer], r[peer].get("log_tail") or r[peer]["error"]
        assert r[peer]["outputs"] > 0
        assert r["ratios"][f"scorestream_over_{peer}"] is not None
        check = r[peer]["score_check"]  # same ONNX file, same features: same scores
        assert check["compared"] > 0
        assert check["equal_within_1e-6"], check
