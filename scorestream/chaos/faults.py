"""Faults for ``scorestream chaos``: a seeded schedule, the injector and a watchdog.

The schedule is data (kind, target, second of the run) drawn from a seeded RNG so a failing run
can be replayed with the same ``--seed``. The injector executes one fault at a time and then
waits until the target is back (process alive and ``/readyz`` answering 200): a fault is
*survived* only if the system recovers on its own within the recovery timeout. The watchdog is
the supervisor's job in production (Kubernetes restarts a crashed pod): any service process that
exits without being killed by the injector is restarted, and the restart is recorded so the
report shows which services died because, for example, the broker vanished. Like a Kubernetes
liveness probe it also polls every service's ``/livez`` and SIGKILLs + restarts one that failed
it several times in a row: a process hung inside a blocking client call does not exit on its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path

from scorestream.dev.broker import BrokerState, LocalBroker
from scorestream.dev.broker.state import pid_is_broker
from scorestream.dev.supervisor import Supervisor, exit_code
from scorestream.errors import PortUnavailableError

Progress = Callable[[str], None]


class FaultKind(StrEnum):
    KILL = "sigkill+restart"
    BROKER = "broker sigkill+restart"
    PAUSE = "sigstop>session timeout, sigcont"
    PROMOTE = "model promotion"


KILL_TARGETS = ("worker-0", "worker-1", "merchant", "enricher", "decision", "audit")
"""The services whose outputs :mod:`scorestream.chaos.check` verifies; the stateful ones (the
merchant stage and the enricher) restore their state stores after each kill."""
WORKERS = ("worker-0", "worker-1")


@dataclass(frozen=True, slots=True)
class Fault:
    at_s: float
    kind: FaultKind
    target: str


@dataclass
class FaultOutcome:
    fault: Fault
    injected_at_s: float
    sent_at_injection: int
    survived: bool
    recovery_s: float
    detail: str = ""

    def as_dict(self) -> dict[str, object]:
        return asdict(self) | {"fault": asdict(self.fault) | {"kind": self.fault.kind.value}}


def make_schedule(n_faults: int, duration_s: float, seed: int) -> list[Fault]:
    """``n_faults`` faults at random seconds in ``(5 %, 85 %)`` of the streaming time, the model
    promotion first (in ``(5 %, 25 %)``).

    At least one promotion, one broker kill and one worker pause (for ``n_faults >= 3``); about a
    tenth each of broker kills and pauses; the rest are SIGKILLs spread over every consuming
    service so each is killed several times in a full run.
    """
    rng = random.Random(seed)  # noqa: S311  (a replayable schedule, not a secret)
    kinds: list[tuple[FaultKind, str]] = []
    if n_faults >= 1:
        kinds.append((FaultKind.PROMOTE, "worker"))
    if n_faults >= 2:
        kinds += [(FaultKind.BROKER, "broker")] * max(1, n_faults // 10)
    if n_faults >= 3:
        kinds += [(FaultKind.PAUSE, rng.choice(WORKERS))] * max(1, n_faults // 10)
    targets = list(KILL_TARGETS)
    rng.shuffle(targets)
    i = 0
    while len(kinds) < n_faults:
        kinds.append((FaultKind.KILL, targets[i % len(targets)]))
        i += 1
    # The promotion comes first, early in the traffic: faults run one after another, and a broker
    # kill early on (recovery takes ~40 s) once pushed a late promotion past the last event, so
    # the new version never scored anything (seed 12). The other faults follow in random order.
    promote, others = kinds[:1], kinds[1:]
    rng.shuffle(others)
    first = rng.uniform(0.05 * duration_s, 0.25 * duration_s) if promote else 0.05 * duration_s
    times = sorted(rng.uniform(first, 0.85 * duration_s) for _ in others)
    if promote:
        times.insert(0, first)
    ordered = promote + others
    return [Fault(round(t, 2), k, target) for t, (k, target) in zip(times, ordered, strict=True)]


def http_status(port: int, path: str, timeout: float = 3.0) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def _state(pid: int) -> str:
    """The process state letter from ``/proc`` ("" when there is no such process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.split(") ", 1)[1][:1]


def _alive(pid: int) -> bool:
    return _state(pid) not in ("", "Z")


def _stopped(pid: int) -> bool:
    return _state(pid) in ("T", "t")


def live_status(port: int) -> int:
    """The ``/livez`` answer: 200, 503, or 0 when nothing answered (refused or timed out)."""
    return http_status(port, "/livez", timeout=3.0)


@dataclass
class Watchdog:
    """Restarts services that exited on their own (as Kubernetes restarts a crashed pod) and
    services whose ``/livez`` failed ``live_failures`` probes in a row, ``live_period_s`` apart
    (a liveness probe: ``failureThreshold`` 3 of ``periodSeconds``, like the manifests').

    Only a 503 counts as a failed probe. A connection that is refused or times out does not: the
    service may still be starting (Kubernetes has a startup probe for that), and a SIGSTOPped
    worker (the pause fault) answers nothing by design; stopped processes are skipped anyway.
    """

    supervisor: Supervisor
    lock: threading.Lock
    progress: Progress
    interval_s: float = 1.0
    backoff_s: float = 3.0
    live_period_s: float = 5.0
    live_failures: int = 3
    probe: Callable[[int], int] = live_status
    restarts: list[dict[str, object]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._last: dict[str, float] = {}
        self._failed: dict[tuple[str, int], int] = {}
        self._next_probe = time.monotonic() + self.live_period_s
        self._thread = threading.Thread(target=self._run, name="chaos-watchdog", daemon=True)

    def start(self) -> Watchdog:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.check()

    def check(self) -> None:
        """One round: restart what exited; every ``live_period_s``, probe ``/livez``."""
        with self.lock:
            for name, pid in self.supervisor.dead().items():
                now = time.monotonic()
                if now - self._last.get(name, 0.0) < self.backoff_s:
                    continue
                code = exit_code(pid)
                self._restart(name, pid, "exited" if code is None else f"exit {code}")
        if time.monotonic() >= self._next_probe:
            self._next_probe = time.monotonic() + self.live_period_s
            self._probe_liveness()

    def _probe_liveness(self) -> None:
        # probed without the lock (each probe may take its timeout); acted on under it, and only
        # if the probed process is still the one running
        pids, ports = self.supervisor.pids(), self.supervisor.ports()
        for name, port in ports.items():
            pid = pids.get(name, 0)
            if not _alive(pid) or _stopped(pid):
                self._failed.pop((name, pid), None)
                continue
            if self.probe(port) != 503:
                self._failed.pop((name, pid), None)
                continue
            failed = self._failed.get((name, pid), 0) + 1
            self._failed[(name, pid)] = failed
            if failed < self.live_failures:
                continue
            with self.lock:
                if self.supervisor.pids().get(name) == pid:
                    self._restart(name, pid, f"/livez failed {failed} times; SIGKILLed")
            self._failed.pop((name, pid), None)

    def _restart(self, name: str, pid: int, status: str) -> None:
        now = time.monotonic()
        self._last[name] = now
        new = self.supervisor.restart(name)
        self.restarts.append(
            {"service": name, "at_s": round(now - self.started, 1), "exit": status}
        )
        self.progress(f"watchdog: {name} (pid {pid}) {status}; restarted as {new}")


@dataclass
class Injector:
    """Executes faults against the supervisor's processes and the private cluster's nodes."""

    supervisor: Supervisor
    brokers: list[LocalBroker]
    lock: threading.Lock
    promote: Callable[[], str]
    pause_s: float
    recovery_timeout_s: float
    progress: Progress
    broker_kills: int = 0
    """Broker faults so far: the nodes are killed in turn."""

    def ready(self, names: list[str] | None = None) -> bool:
        pids = self.supervisor.pids()
        ports = self.supervisor.ports()
        for name in names or list(pids):
            if not _alive(pids.get(name, 0)):
                return False
            port = ports.get(name)
            if port and http_status(port, "/readyz") != 200:
                return False
        return True

    def wait_ready(self, names: list[str] | None, started: float) -> bool:
        deadline = started + self.recovery_timeout_s
        while time.monotonic() < deadline:
            if self.ready(names):
                return True
            time.sleep(0.5)
        return False

    def inject(self, fault: Fault) -> tuple[bool, float, str]:
        """(survived, seconds to recover, detail)."""
        started = time.monotonic()
        if fault.kind is FaultKind.KILL:
            with self.lock:
                old = self.supervisor.pids()[fault.target]
                new = self.supervisor.restart(fault.target)
            ok = self.wait_ready([fault.target], started)
            return ok, time.monotonic() - started, f"pid {old} -> {new}"
        if fault.kind is FaultKind.BROKER:
            detail = self._kill_broker()
            ok = self.wait_ready(None, started)
            return ok, time.monotonic() - started, detail
        if fault.kind is FaultKind.PAUSE:
            detail = self._pause(fault.target)
            ok = self.wait_ready(list(WORKERS), started)
            return ok, time.monotonic() - started, detail
        version = self.promote()
        return True, time.monotonic() - started, f"promoted version {version} to champion"

    def _kill_broker(self) -> str:
        """SIGKILL one node (the next in turn) and start it again."""
        broker = self.brokers[self.broker_kills % len(self.brokers)]
        self.broker_kills += 1
        node = f"node {broker.settings.node_id}/{len(self.brokers)}"
        state = broker.state()
        if state is None:
            return f"{node}: no broker state"
        if not pid_is_broker(state.pid, broker.home):
            return f"{node}: private broker not running"
        with contextlib.suppress(ProcessLookupError):
            os.killpg(state.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while pid_is_broker(state.pid, broker.home) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(state.pid, os.WNOHANG)
            time.sleep(0.1)
        down_at = time.monotonic()
        new = self._restart_broker(broker)
        if new.bootstrap != state.bootstrap:
            return f"{node} came back on {new.bootstrap}, not {state.bootstrap}"
        return f"{node}: pid {state.pid} -> {new.pid}, down {time.monotonic() - down_at:.1f}s"

    def _restart_broker(self, broker: LocalBroker) -> BrokerState:
        """Start the node again on its recorded ports; a port still held (a lingering socket)
        is retried rather than fatal."""
        deadline = time.monotonic() + self.recovery_timeout_s
        while True:
            try:
                return broker.start(progress=lambda _: None)
            except PortUnavailableError as exc:
                if time.monotonic() > deadline:
                    raise
                self.progress(f"broker restart: {exc}; retrying")
                time.sleep(2.0)

    def _pause(self, target: str) -> str:
        other = next(w for w in WORKERS if w != target)
        log = self.supervisor.dir / f"{other}.log"
        before = _count(log, "assigned [")
        pid = self.supervisor.pids()[target]
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(self.pause_s)
        finally:
            os.kill(pid, signal.SIGCONT)
        moved = _count(log, "assigned [") - before
        return f"{target} stopped {self.pause_s:.0f}s; {other} got {moved} new assignment(s)"


def _count(path: Path, needle: str) -> int:
    try:
        return path.read_text(errors="replace").count(needle)
    except OSError:
        return 0


def dump(outcomes: list[FaultOutcome]) -> str:
    return json.dumps([o.as_dict() for o in outcomes], indent=2)
