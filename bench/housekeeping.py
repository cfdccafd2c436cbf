"""Housekeeping for benchmark runs: what a run created (removed at the end), bounded process
stops, and the foreign-CPU sampler that records how busy the shared machine was per phase."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from scorestream.kafka_config import (
    admin_config,
)
from scorestream.settings import KafkaSettings
from scorestream.topics import REGISTRY, Scope


# -- housekeeping ----------------------------------------------------------------------------------
@dataclass
class Cleanup:
    """What this run created on the broker and the machine; removed in ``close``."""

    kafka: KafkaSettings
    topics: set[str] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    dirs: list[Path] = field(default_factory=list)

    def tenant(self, tenant: str) -> None:
        self.topics |= {s.topic(tenant) for s in REGISTRY.streams if s.scope is Scope.TENANT}
        self.groups |= {f"{tenant}.worker", f"{tenant}.worker.models"}

    def close(self) -> None:
        for proc in self.procs:
            stop_process(proc)
        admin = AdminClient(admin_config(self.kafka, client_id="bench-cleanup"))
        if self.groups:
            futures = admin.delete_consumer_groups(sorted(self.groups), request_timeout=15)
            for fut in futures.values():
                with contextlib.suppress(Exception):
                    fut.result(timeout=15)
        if self.topics:
            futures = admin.delete_topics(sorted(self.topics), operation_timeout=30)
            for fut in futures.values():
                with contextlib.suppress(Exception):
                    fut.result(timeout=30)
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


QUIET_S = 10
"""--wait-idle waits for this many consecutive seconds under a quarter of a core of foreign load."""


class ForeignCpu(threading.Thread):
    """Once a second, how many cores the *other* processes of the machine use.

    Own processes are this benchmark, its worker processes and the Kafka broker; anything else
    (a test run, a build) competes for the 2 cores and skews the figures, so each phase of the
    run records the mean foreign load and its biggest consumers."""

    def __init__(self, own: Callable[[], set[int]]) -> None:
        super().__init__(name="foreign-cpu", daemon=True)
        self.own = own
        self.tick = os.sysconf("SC_CLK_TCK")
        self.halt = threading.Event()
        self.lock = threading.Lock()
        self.phase = "start"
        self.phases: dict[str, dict[str, Any]] = {}
        self.recent: list[float] = []

    @staticmethod
    def _ticks() -> dict[int, tuple[str, int]]:
        out: dict[int, tuple[str, int]] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, ValueError, IndexError):
                raw = Path(entry.path, "stat").read_text()
                comm = raw[raw.index("(") + 1 : raw.rindex(")")]
                fields = raw[raw.rindex(")") + 2 :].split()
                out[int(entry.name)] = (comm, int(fields[11]) + int(fields[12]))
        return out

    def run(self) -> None:
        prev, t_prev = self._ticks(), time.monotonic()
        while not self.halt.wait(1.0):
            cur, now = self._ticks(), time.monotonic()
            own = self.own()
            per_comm: dict[str, float] = defaultdict(float)
            for pid, (comm, ticks) in cur.items():
                if pid in own or pid not in prev:
                    continue
                per_comm[comm] += max(0, ticks - prev[pid][1]) / self.tick
            wall = now - t_prev
            with self.lock:
                ph = self.phases.setdefault(
                    self.phase, {"wall_s": 0.0, "cpu_s": 0.0, "by_process": defaultdict(float)}
                )
                ph["wall_s"] += wall
                ph["cpu_s"] += sum(per_comm.values())
                for comm, cpu in per_comm.items():
                    ph["by_process"][comm] += cpu
                self.recent = ([*self.recent, sum(per_comm.values()) / wall])[-QUIET_S:]
            prev, t_prev = cur, now

    def mark(self, phase: str) -> None:
        with self.lock:
            self.phase = phase

    def quiet(self) -> bool:
        with self.lock:
            return len(self.recent) == QUIET_S and max(self.recent) < 0.25

    def report(self) -> dict[str, Any]:
        with self.lock:
            out = {}
            for name, ph in self.phases.items():
                top = sorted(ph["by_process"].items(), key=lambda kv: kv[1], reverse=True)[:3]
                out[name] = {
                    "foreign_cores_mean": round(ph["cpu_s"] / ph["wall_s"], 2)
                    if ph["wall_s"]
                    else None,
                    "wall_s": round(ph["wall_s"], 1),
                    "top_foreign": {k: round(v / ph["wall_s"], 2) for k, v in top if v > 0},
                }
            return out

    def stop(self) -> None:
        self.halt.set()
        self.join(5)


def broker_pids() -> set[int]:
    """The broker's process and its descendants (the JVM may sit under a wrapper)."""
    from scorestream.dev.broker.state import read_state  # noqa: PLC0415
    from scorestream.settings import BrokerSettings  # noqa: PLC0415

    state = read_state(BrokerSettings().home)
    return descendants({state.pid}) if state else set()


def descendants(roots: set[int]) -> set[int]:
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                raw = Path(entry.path, "stat").read_text()
                ppid = int(raw[raw.rindex(")") + 2 :].split()[1])
                children[ppid].append(int(entry.name))
    out, todo = set(roots), list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def best_of(tries: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The run with the highest ``key``; every run's figure is kept under ``runs``."""
    best = max(tries, key=lambda r: float(r.get(key) or 0))
    return best | {"runs": [r.get(key) for r in tries]}


def steady_rate(stamps: Sequence[tuple[float, int]]) -> float | None:
    """Events/s over whole batches: the first batch's end starts the clock (start-up excluded)."""
    if len(stamps) < 2:
        return None
    elapsed = stamps[-1][0] - stamps[0][0]
    return sum(n for _, n in stamps[1:]) / elapsed if elapsed > 0 else None
