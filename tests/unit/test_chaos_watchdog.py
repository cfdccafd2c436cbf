"""The chaos watchdog's liveness probing: a service whose ``/livez`` keeps failing is restarted.

The supervisor here is an in-memory stand-in (this tests the watchdog's decisions, not process
management); the "service" pid is this test process, so ``/proc`` says it is alive and running.
The CI-sized chaos run (tests/chaos) exercises the watchdog against real processes.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from dataclasses import dataclass, field

import pytest

from scorestream.chaos import faults as chaos_faults
from scorestream.chaos.faults import Watchdog


@dataclass
class FakeSupervisor:
    pid: int = field(default_factory=os.getpid)
    restarted: list[str] = field(default_factory=list)
    exited: dict[str, int] = field(default_factory=dict)

    def pids(self) -> dict[str, int]:
        return {"enricher": self.pid}

    def ports(self) -> dict[str, int]:
        return {"enricher": 8123}

    def dead(self) -> dict[str, int]:
        return dict(self.exited)

    def restart(self, name: str) -> int:
        self.restarted.append(name)
        self.exited.pop(name, None)
        self.pid += 100_000  # a new process: not in /proc, but never probed again in these tests
        return self.pid


def _watchdog(answers: list[int], supervisor: FakeSupervisor) -> tuple[Watchdog, list[str]]:
    queue = deque(answers)
    messages: list[str] = []
    dog = Watchdog(
        supervisor,  # type: ignore[arg-type]  # the stand-in has the methods the watchdog calls
        threading.Lock(),
        messages.append,
        live_period_s=0.0,
        live_failures=3,
        probe=lambda port: queue.popleft() if queue else 200,
    )
    return dog, messages


def test_three_failed_probes_in_a_row_restart_the_service() -> None:
    sup = FakeSupervisor()
    hung = sup.pid
    dog, messages = _watchdog([503, 503, 503], sup)
    for _ in range(3):
        dog.check()
    assert sup.restarted == ["enricher"]
    assert dog.restarts[0]["service"] == "enricher"
    assert dog.restarts[0]["exit"] == "/livez failed 3 times; SIGKILLed"
    assert f"enricher (pid {hung}) /livez failed" in messages[0]


def test_a_passing_probe_resets_the_count() -> None:
    sup = FakeSupervisor()
    dog, _ = _watchdog([503, 503, 200, 503, 503, 200], sup)
    for _ in range(6):
        dog.check()
    assert sup.restarted == []


@pytest.mark.parametrize("answer", [0, 404, 200])
def test_only_a_503_counts_as_failed(answer: int) -> None:
    """No answer (refused: still starting; timed out: paused) is not a liveness failure."""
    sup = FakeSupervisor()
    dog, _ = _watchdog([answer] * 5, sup)
    for _ in range(5):
        dog.check()
    assert sup.restarted == []


def test_a_stopped_process_is_never_probed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chaos_faults, "_state", lambda pid: "T")
    sup = FakeSupervisor()
    dog, _ = _watchdog([503] * 5, sup)
    for _ in range(5):
        dog.check()
    assert sup.restarted == []


def test_a_process_that_exited_is_restarted_once_per_backoff() -> None:
    sup = FakeSupervisor(exited={"enricher": 4242})
    dog, messages = _watchdog([], sup)
    dog.check()
    sup.exited["enricher"] = 4243  # crashed again straight away
    dog.check()  # within the backoff: left for the next round
    assert sup.restarted == ["enricher"]
    assert dog.restarts[0]["exit"] == "exited"  # not our child: no exit code known
    assert "enricher (pid 4242) exited" in messages[0]
