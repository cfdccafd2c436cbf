"""``scorestream up`` / ``down``: run every service of a tenant as local processes.

Each service is a real process (``python -m scorestream <service> ...``) with its log in
``$SCORESTREAM_HOME/run/<tenant>/<service>.log`` and its pid in ``.../run/<tenant>/pids.json``.
``down`` sends SIGTERM (services drain and commit), waits, then SIGKILLs stragglers.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scorestream.errors import ConfigError
from scorestream.settings import scorestream_home
from scorestream.topics import validate_tenant


def default_run_dir() -> Path:
    """``$SCORESTREAM_HOME/run``: the same directory whatever the current one."""
    return scorestream_home() / "run"


Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    name: str
    args: tuple[str, ...]
    health_port: int | None = None
    env: tuple[tuple[str, str], ...] = ()


@dataclass
class Supervisor:
    tenant: str
    run_dir: Path = field(default_factory=default_run_dir)

    def __post_init__(self) -> None:
        validate_tenant(self.tenant)
        self.dir = self.run_dir / self.tenant
        self.pid_file = self.dir / "pids.json"

    def _records(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.pid_file.read_text())
        except (OSError, ValueError):
            return {}
        return {k: v for k, v in data.items() if isinstance(v, dict)}

    def pids(self) -> dict[str, int]:
        return {k: int(v["pid"] or 0) for k, v in self._records().items()}

    def ports(self) -> dict[str, int]:
        """Health/metrics port per running service (the gateway's HTTP port for the gateway)."""
        out: dict[str, int] = {}
        for name, record in self._records().items():
            port = record.get("port")
            if port:
                out[name] = int(port)
        return out

    def running(self) -> dict[str, int]:
        return {name: int(r["pid"]) for name, r in self._records().items() if _same_process(r)}

    def dead(self) -> dict[str, int]:
        """Services whose process has exited (crashed or killed): the restart candidates of a
        watchdog (``scorestream chaos``); name → the exited pid."""
        return {
            name: int(r["pid"] or 0) for name, r in self._records().items() if not _same_process(r)
        }

    def start(self, services: Sequence[ServiceSpec], progress: Progress = lambda _: None) -> None:
        already = self.running()
        if already:
            raise ConfigError(
                f"services of tenant {self.tenant} are already running ({', '.join(already)}); "
                "run 'scorestream down' first"
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        records: dict[str, dict[str, Any]] = {}
        for spec in services:
            records[spec.name] = self._spawn(
                spec.name, list(spec.args), spec.health_port, dict(spec.env)
            )
            progress(
                f"started {spec.name:10} pid {records[spec.name]['pid']:<7} log "
                f"{self.dir / (spec.name + '.log')}"
            )
        self.pid_file.write_text(json.dumps(records, indent=2))

    def _spawn(
        self, name: str, args: list[str], port: int | None, env: dict[str, str]
    ) -> dict[str, Any]:
        with (self.dir / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                # -P: the current directory is not put on sys.path (a `scorestream` directory
                # there, e.g. /tmp/scorestream of the state stores, would shadow the package)
                [sys.executable, "-P", "-m", "scorestream", *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=os.environ | env,
            )
        _CHILDREN.append(proc)
        start = _start_ticks(proc.pid)
        return {"pid": proc.pid, "start": start, "port": port, "args": args, "env": env}

    def restart(self, name: str, *, kill: bool = True) -> int:
        """SIGKILL (or SIGTERM) one service and start it again with the same arguments and port.
        Returns the new pid. Used by the chaos and end-to-end tests."""
        records = self._records()
        record = records[name]
        if _same_process(record):  # never signal a recycled pid (pid_max can be 32768)
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(record["pid"]), signal.SIGKILL if kill else signal.SIGTERM)
        deadline = time.monotonic() + 15
        while _same_process(record) and time.monotonic() < deadline:
            _reap_children()
            time.sleep(0.05)
        records[name] = self._spawn(
            name, list(record["args"]), record["port"], dict(record.get("env") or {})
        )
        self.pid_file.write_text(json.dumps(records, indent=2))
        return int(records[name]["pid"])

    def stop(self, *, timeout: float = 15.0, progress: Progress = lambda _: None) -> int:
        pids = self.running()
        for name, pid in pids.items():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            progress(f"SIGTERM {name} (pid {pid})")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(_alive(p) for p in pids.values()):
            _reap_children()
            time.sleep(0.1)
        for name, pid in pids.items():
            if _alive(pid):
                progress(f"{name} did not stop in {timeout:.0f}s: SIGKILL")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        _reap_children()
        self.pid_file.unlink(missing_ok=True)
        return len(pids)


_CHILDREN: list[subprocess.Popen[bytes]] = []


def exit_code(pid: int) -> int | None:
    """Exit code of a service process started by this process (negative: killed by that
    signal); ``None`` while it runs or when it is not our child."""
    for proc in _CHILDREN:
        if proc.pid == pid:
            return proc.poll()
    return None


def _reap_children() -> None:
    for proc in list(_CHILDREN):
        if proc.poll() is not None:
            _CHILDREN.remove(proc)


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.split(") ", 1)[1].split()[19])


def _same_process(record: dict[str, Any]) -> bool:
    """The recorded service is still this pid: alive, and not a recycled pid now owned by
    another process (with pid_max 32768 a stale pids.json could make a stop SIGTERM, say, the
    Kafka broker)."""
    pid = int(record.get("pid") or 0)
    if pid <= 0 or not _alive(pid):
        return False
    start = record.get("start")
    return start is None or _start_ticks(pid) == start


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.split(") ", 1)[1][:1] != "Z"  # a zombie has exited


PORTS_BELOW_EPHEMERAL = (20_000, 32_767)
"""Where :func:`free_port` looks: below Linux's ephemeral range (32768 to 60999 by default), so
that no outgoing connection (a Kafka client's, say) takes the port between the check and the
service's bind, as one did to an audit's health port under load."""


def free_port() -> int:
    """A port free on 127.0.0.1 now, outside the ephemeral range (see above) when one is."""
    low, high = PORTS_BELOW_EPHEMERAL
    for _ in range(100):
        port = random.randint(low, high)  # noqa: S311  (a port number, not a secret)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
