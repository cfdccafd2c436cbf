"""The recorded state of the local broker: what ``status``, ``stop`` and the test fixture read."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class BrokerState:
    pid: int
    plaintext_port: int
    sasl_port: int
    controller_port: int
    home: str
    data_dir: str
    log_file: str
    kafka_version: str
    cluster_id: str
    started_at: str

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.plaintext_port}"

    @property
    def sasl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.sasl_port}"

    def to_json(self) -> str:
        return json.dumps(asdict(self) | {"bootstrap": self.bootstrap}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> BrokerState:
        raw = json.loads(text)
        raw.pop("bootstrap", None)
        return cls(**raw)


def state_file(home: Path) -> Path:
    return home / "state.json"


def read_state(home: Path) -> BrokerState | None:
    path = state_file(home)
    try:
        return BrokerState.from_json(path.read_text())
    except (OSError, ValueError, TypeError):
        return None


def write_state(home: Path, state: BrokerState) -> None:
    path = state_file(home)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(state.to_json())
    os.replace(tmp, path)


def pid_is_broker(pid: int, home: Path | None = None) -> bool:
    """True if ``pid`` is alive and is a Kafka broker JVM — with ``home``, the broker of that
    home (guards against pid reuse: with pid_max 32768 a dead private broker's pid can come back
    as *another* broker, which a stop must never signal)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True  # no /proc (not Linux): trust the live pid
    if b"kafka.Kafka" not in cmdline:
        return False
    return home is None or str(home).encode() in cmdline


def read_running_bootstrap(home: Path | None = None) -> str | None:
    """Bootstrap address of the local broker if one is running, else ``None``."""
    if home is None:
        from scorestream.settings import BrokerSettings  # noqa: PLC0415

        home = BrokerSettings().home
    state = read_state(home)
    if state is None or not pid_is_broker(state.pid, home):
        return None
    return state.bootstrap
