"""The CI-sized ``scorestream chaos`` run: every kind of fault once or more, invariants hold.

Every consuming service runs, the merchant stage included (a SIGKILL target like the enricher).
The runner starts its own 3-node cluster (own home directories, free ports), so the shared
broker of the test session is never touched; it runs as a subprocess exactly as an operator
would run it, and the test reads the JSON report it writes. The full run (100k events, >= 20
faults) is the same command with its defaults; its table is in docs/reliability.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scorestream.chaos.check import DLQ_SERVICES
from scorestream.chaos.faults import KILL_TARGETS, FaultKind, make_schedule

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

EVENTS = 2000
FAULTS = 8
BAD = 12


def test_schedule_is_seeded_and_covers_every_kind_of_fault() -> None:
    a = make_schedule(FAULTS, 60.0, seed=3)
    assert a == make_schedule(FAULTS, 60.0, seed=3)
    assert a != make_schedule(FAULTS, 60.0, seed=4)
    assert len(a) == FAULTS
    assert {f.kind for f in a} == set(FaultKind)
    assert all(3.0 <= f.at_s <= 51.0 for f in a)
    assert [f.at_s for f in a] == sorted(f.at_s for f in a)
    full = make_schedule(24, 250.0, seed=7)
    killed = [f.target for f in full if f.kind is FaultKind.KILL]
    assert "merchant" in KILL_TARGETS
    for service in ("merchant", "enricher", "decision", "audit"):
        assert killed.count(service) >= 2, (service, killed)
    assert sum(1 for f in full if f.kind is FaultKind.BROKER) >= 2


@pytest.mark.timeout(1200)
def test_ci_sized_chaos_run_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    report_path = tmp_path / "chaos.json"
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "scorestream", "chaos"),
            *("--events", str(EVENTS), "--faults", str(FAULTS), "--bad", str(BAD)),
            *("--rate", "40", "--seed", "11", "--report", str(report_path)),
        ],
        capture_output=True,
        text=True,
        timeout=1150,
        check=False,
    )
    if not report_path.exists():
        pytest.fail(f"no report\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}", pytrace=False)
    report = json.loads(report_path.read_text())
    if proc.returncode != 0:
        pytest.fail(_diagnosis(report, proc.stdout), pytrace=False)
    assert report["failures"] == []
    assert report["faults_injected"] == FAULTS
    assert report["faults_survived"] == FAULTS
    kinds = {f["fault"]["kind"] for f in report["faults"]}
    assert kinds == {k.value for k in FaultKind}
    assert report["events_in"] == EVENTS
    assert (report["lost"], report["duplicated"], report["reorderings"]) == (0, 0, 0)
    # each bad transaction is dead-lettered by every service that consumes the transactions
    assert report["dlq"] == report["dlq_expected"] == report["bad_in"] * len(DLQ_SERVICES) > 0
    for stream in ("transactions.enriched", "predictions", "decisions", "audit"):
        assert report["streams"][stream]["records"] == EVENTS, stream
    # the merchant stage re-keyed everything once and its table counts exactly what was sent
    activity = report["streams"]["merchant-activity"]
    assert (activity["lost"], activity["duplicated"], activity["unexpected"]) == (0, 0, 0)
    table = report["merchant_table_check"]
    assert table["wrong"] == 0, table["examples"]
    assert table["clocks"] == table["partitions"]
    assert "v1" in report["versions"], "the promotion came before anything was scored"
    assert "v2" in report["versions"], "the mid-run promotion never took effect"
    assert "| faults injected" in proc.stdout


def _diagnosis(report: dict[str, Any], stdout: str) -> str:
    """What a failed run needs to be understood from CI's output alone (its directory is gone
    with the clone): the failures, the runner's progress lines and every service's last words."""
    progress = [line for line in stdout.splitlines() if not line.startswith(("|", "started "))]
    logs = Path(report["config"]["work_dir"]) / report["run"] / "run" / report["tenant"]
    last_words = []
    for log in sorted(logs.glob("*.log")):
        lines = log.read_text(errors="replace").splitlines()[-3:]
        last_words += [f"{log.stem}: {line[:300]}" for line in lines]
    return "\n".join(
        [
            f"chaos run failed: {report['failures']}",
            f"watchdog restarts: {report['watchdog_restarts']}",
            *progress[-40:],
            f"last lines of the service logs ({logs}):",
            *last_words,
        ]
    )
