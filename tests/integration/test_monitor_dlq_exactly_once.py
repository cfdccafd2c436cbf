"""Issue 15 item 16: the monitor's dead letters are exactly-once across a SIGKILL.

Before the fix the monitor produced each dead letter at once and committed its dedup mark (the
offsets the dead letters cover) only at the next publish interval: a SIGKILL in between, and the
restart's rebuild dead-lettered the same records again (5 bad records → 10 DLQ entries). Here a
real monitor process dead-letters 2 bad records while rebuilding (committed), then consumes 3
more and is SIGKILLed before its next interval; after a restart the DLQ holds exactly 5 entries,
read_committed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.kafka_helpers import produce_raw, read_messages
from tests.worker_support import Tenant, free_port, http_get, new_tenant, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def tenant(kafka_bootstrap: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    t = new_tenant(tmp_path)
    yield t
    t.stop_all()


def _start(tenant: Tenant, port: int) -> subprocess.Popen[bytes]:
    log = (tenant.repo_dir.parent / "monitor.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "scorestream", "monitor", "--tenant", tenant.name],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=os.environ
        | {
            "SCORESTREAM_MODELS_URL": str(tenant.repo_dir),
            "SCORESTREAM_MONITOR_HEALTH_PORT": str(port),
            # the kill lands between two intervals: the dead letters of the last 3 records
            # are not committed yet when it comes
            "SCORESTREAM_MONITOR_PUBLISH_INTERVAL_S": "60",
            "SCORESTREAM_MONITOR_WINDOW_S": "3600",
        },
    )
    log.close()
    tenant.procs.append(proc)
    return proc


def _consumed(port: int, tenant: str) -> float:
    for line in http_get(port, "/metrics")[1].splitlines():
        if line.startswith("scorestream_events_in_total{") and f'tenant="{tenant}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _bad(tag: str, n: int) -> list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]]:
    return [(f"{tag}-{i}".encode(), f"not json {tag} {i}".encode(), []) for i in range(n)]


def test_monitor_dead_letters_are_exactly_once_across_sigkill(
    kafka_bootstrap: str, tenant: Tenant
) -> None:
    preds, dlq = tenant.topic("predictions"), tenant.topic("predictions.dlq")
    produce_raw(kafka_bootstrap, preds, _bad("before", 2))  # dead-lettered while rebuilding
    port = free_port()
    proc = _start(tenant, port)
    wait_until(lambda: http_get(port, "/readyz")[0] == 200, 60, "/readyz (window rebuilt)")
    assert len(read_messages(kafka_bootstrap, dlq, 2, timeout=20)) == 2

    seen = _consumed(port, tenant.name)
    produce_raw(kafka_bootstrap, preds, _bad("mid", 3))
    wait_until(lambda: _consumed(port, tenant.name) >= seen + 3, 20, "3 more records consumed")
    time.sleep(1.0)  # whatever the monitor sends on its own is on the broker by now
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)

    port = free_port()
    _start(tenant, port)
    wait_until(lambda: http_get(port, "/readyz")[0] == 200, 60, "/readyz after the restart")
    entries = read_messages(kafka_bootstrap, dlq, 10, timeout=8)
    keys = sorted((m.key() or b"").decode() for m in entries)
    assert keys == ["before-0", "before-1", "mid-0", "mid-1", "mid-2"], tenant.worker_logs()
