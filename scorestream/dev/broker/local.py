"""Start, stop and inspect the local Apache Kafka broker (KRaft, single node)."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from scorestream.dev.broker import config as cfg
from scorestream.dev.broker.jars import Progress, classpath, ensure_jars, find_java
from scorestream.dev.broker.state import BrokerState, pid_is_broker, read_state, write_state
from scorestream.errors import BrokerError, BrokerStartError, PortUnavailableError
from scorestream.settings import BrokerSettings
from scorestream.versions import KAFKA_VERSION


@dataclass(frozen=True, slots=True)
class BrokerStatus:
    running: bool
    ready: bool
    state: BrokerState | None

    def describe(self) -> str:
        if self.state is None or not self.running:
            return "stopped"
        s = self.state
        health = "ready" if self.ready else "not answering metadata requests"
        return (
            f"running (pid {s.pid}, Kafka {s.kafka_version}, {health})\n"
            f"  bootstrap (PLAINTEXT):        {s.bootstrap}\n"
            f"  SASL_PLAINTEXT SCRAM-SHA-512: {s.sasl_bootstrap}\n"
            f"  controller:                   127.0.0.1:{s.controller_port}\n"
            f"  data: {s.data_dir}\n  log:  {s.log_file}"
        )


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def stable_free_ports(n: int) -> list[int]:
    """``n`` free ports *below* the kernel's ephemeral range, for a broker that must get its ports
    back after a SIGKILL: a port from the ephemeral range can meanwhile become the source port of
    one of the many reconnecting clients (the chaos runner's nodes, tests' private brokers)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.SystemRandom()
    chosen: list[int] = []
    while len(chosen) < n:
        port = rng.randrange(20000, max(20001, low - 1))
        if port not in chosen and port_is_free(port):
            chosen.append(port)
    return chosen


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


ELR_FEATURE = "eligible.leader.replicas.version"
ELR_OFF_MARKER = "scorestream-elr-disabled"
"""In the data directory: this storage runs with eligible leader replicas off (see
``LocalBroker._disable_elr``)."""

_QUIET = logging.getLogger("scorestream.dev.broker.probe")
_QUIET.propagate = False
_QUIET.addHandler(logging.NullHandler())


def _cluster_id() -> str:
    """A random Kafka cluster id (URL-safe base64 of 16 bytes). Never one starting with ``-``:
    ``kafka-storage format --cluster-id -X...`` reads it as an option and fails (1 format in 64
    did, seen in a chaos run); Kafka's own ``Uuid.randomUuid`` skips those too."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def metadata_ready(bootstrap: str, timeout: float = 3.0) -> bool:
    """True when the broker answers a metadata request and lists itself as a live broker."""
    host, _, port = bootstrap.split(",", maxsplit=1)[0].rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError:
        return False  # not listening yet: skip the client, which would log connection errors
    admin = AdminClient(
        {"bootstrap.servers": bootstrap, "socket.timeout.ms": 2000, "logger": _QUIET}  # type: ignore[dict-item]
    )
    try:
        md = admin.list_topics(timeout=timeout)
    except KafkaException:
        return False
    return len(md.brokers) > 0


class LocalBroker:
    """One local broker rooted at ``settings.home`` (data, logs, config, state)."""

    def __init__(self, settings: BrokerSettings | None = None) -> None:
        self.settings = settings or BrokerSettings()
        self.home = self.settings.home

    # -- paths -------------------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def config_dir(self) -> Path:
        return self.home / "config"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "server.log"

    @property
    def stdout_file(self) -> Path:
        return self.log_dir / "kafka.out"

    # -- status ------------------------------------------------------------------------------
    def state(self) -> BrokerState | None:
        return read_state(self.home)

    def status(self) -> BrokerStatus:
        state = self.state()
        if state is None or not pid_is_broker(state.pid, self.home):
            return BrokerStatus(running=False, ready=False, state=state)
        return BrokerStatus(running=True, ready=metadata_ready(state.bootstrap), state=state)

    # -- start -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.home.mkdir(parents=True, exist_ok=True)
        with (self.home / ".lock").open("w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _ports(self, progress: Progress) -> cfg.Ports:
        """Recorded ports if storage exists (the controller port is part of the KRaft log)."""
        recorded_path = self.home / "ports.json"
        s = self.settings
        if recorded_path.exists() and (self.data_dir / "meta.properties").exists():
            wanted = cfg.Ports(**json.loads(recorded_path.read_text()))
            if not port_is_free(wanted.controller):
                raise PortUnavailableError(
                    f"controller port {wanted.controller} recorded in {self.home} is taken by "
                    "another process; free it, or start with --clean to re-create the broker"
                )
        else:
            wanted = cfg.Ports(s.plaintext_port, s.sasl_port, s.controller_port)
        chosen: list[int] = []
        for name, port in (
            ("plaintext", wanted.plaintext),
            ("sasl", wanted.sasl),
            ("controller", wanted.controller),
        ):
            use = port
            if port == 0 or port in chosen or not port_is_free(port):
                use = free_port()
                while use in chosen:
                    use = free_port()
                if port:
                    progress(f"{name} port {port} is taken; using {use}")
            chosen.append(use)
        ports = cfg.Ports(*chosen)
        recorded_path.write_text(json.dumps(dataclasses.asdict(ports)))
        return ports

    def start(self, *, clean: bool = False, progress: Progress = lambda _: None) -> BrokerState:
        """Start the broker (idempotent) and wait until it answers metadata requests."""
        with self._lock():
            current = self.status()
            if current.running and current.state is not None:
                if clean:
                    raise BrokerError("the broker is running; stop it before --clean")
                progress(f"broker already running at {current.state.bootstrap}")
                if not current.ready:
                    self._wait_ready(current.state, None, progress)
                return current.state
            java = find_java()
            libs = ensure_jars(self.settings.cache_dir, progress)
            if clean:
                progress(f"wiping {self.home}")
                for sub in ("data", "logs", "config"):
                    shutil.rmtree(self.home / sub, ignore_errors=True)
                (self.home / "ports.json").unlink(missing_ok=True)
            ports = self._ports(progress)
            for d in (self.data_dir, self.log_dir, self.config_dir):
                d.mkdir(parents=True, exist_ok=True)
            server_props = self.config_dir / "server.properties"
            server_props.write_text(
                cfg.server_properties(
                    ports,
                    self.data_dir,
                    admin_user=self.settings.admin_user,
                    num_partitions=self.settings.num_partitions,
                    quorum=self._quorum(),
                    extra=self.settings.extra_config,
                )
            )
            log4j = self.config_dir / "log4j2.properties"
            log4j.write_text(cfg.log4j2_properties(self.log_file))
            tools_log4j = self.config_dir / "tools-log4j2.properties"
            tools_log4j.write_text(cfg.tools_log4j2_properties())
            cluster_id = self._format_if_needed(java, libs, server_props, tools_log4j, progress)
            state = self._launch(java, libs, server_props, log4j, ports, cluster_id, progress)
            self._disable_elr(state, java, libs, tools_log4j, progress)
            return state

    def _quorum(self) -> cfg.Quorum | None:
        s = self.settings
        if not s.quorum_voters:
            return None
        return cfg.Quorum(node_id=s.node_id, voters=s.quorum_voters, nodes=s.cluster_nodes)

    def _format_if_needed(
        self, java: str, libs: Path, server_props: Path, tools_log4j: Path, progress: Progress
    ) -> str:
        meta = self.data_dir / "meta.properties"
        if meta.exists():
            for line in meta.read_text().splitlines():
                if line.startswith("cluster.id="):
                    return line.split("=", 1)[1].strip()
            raise BrokerError(f"{meta} has no cluster.id; start with --clean to re-create storage")
        cluster_id = self.settings.cluster_id or _cluster_id()
        password = self.settings.admin_password.get_secret_value()
        # one standalone voter, or the static voters of a local cluster (in server.properties)
        mode = ("--standalone",) if not self.settings.quorum_voters else ()
        progress(f"formatting KRaft storage (cluster {cluster_id}) in {self.data_dir}")
        proc = subprocess.run(
            [
                java,
                "-Xmx256m",
                f"-Dlog4j2.configurationFile={tools_log4j}",
                "-cp",
                classpath(libs),
                "kafka.tools.StorageTool",
                "format",
                "--config",
                str(server_props),
                "--cluster-id",
                cluster_id,
                *mode,
                "--add-scram",
                f"SCRAM-SHA-512=[name={self.settings.admin_user},password={password}]",
                "--feature",
                f"{ELR_FEATURE}=0",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=180,
        )
        if proc.returncode != 0:
            output = (proc.stdout + proc.stderr).replace(password, "***").strip()
            raise BrokerStartError(f"formatting storage failed (exit {proc.returncode}):\n{output}")
        (self.data_dir / ELR_OFF_MARKER).write_text(f"{ELR_FEATURE}=0 at format\n")
        return cluster_id

    def _disable_elr(
        self, state: BrokerState, java: str, libs: Path, tools_log4j: Path, progress: Progress
    ) -> None:
        """Storage formatted before ELR was turned off: turn it off now, once.

        Eligible leader replicas (KIP-966, on by default for new Kafka 4.x clusters) take the
        only replica of a single-node cluster out of the ISR when the broker dies uncleanly, so
        after a SIGKILL every partition comes back through an *unclean* election. Unclean
        elections and transactions do not mix (KAFKA-20716): measured here, in 1 of 10 broker
        SIGKILLs under back-to-back transactions the coordinator completed a transaction while
        its partitions had no leader yet, logged "Couldn't find leader endpoint ... likely
        deleted already and hence can be skipped", and never wrote their markers; the next
        transaction of that producer then committed the orphaned records (the chaos run's
        duplicates). With ELR off: 0 skipped markers and 0 unclean elections in 10 kills
        (``docs/adr/0003-single-broker-transactions.md``)."""
        marker = self.data_dir / ELR_OFF_MARKER
        if marker.exists():
            return
        proc = subprocess.run(
            [
                java,
                "-Xmx256m",
                f"-Dlog4j2.configurationFile={tools_log4j}",
                "-cp",
                classpath(libs),
                "org.apache.kafka.tools.FeatureCommand",
                "--bootstrap-server",
                state.bootstrap,
                "disable",
                "--feature",
                ELR_FEATURE,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if proc.returncode != 0:
            progress(
                f"could not disable {ELR_FEATURE} (exit {proc.returncode}): {proc.stderr[-500:]}"
            )
            return
        marker.write_text(f"{ELR_FEATURE}=0 after start\n")
        progress(f"disabled {ELR_FEATURE}: a restart after a crash no longer elects uncleanly")

    def _launch(
        self,
        java: str,
        libs: Path,
        server_props: Path,
        log4j: Path,
        ports: cfg.Ports,
        cluster_id: str,
        progress: Progress,
    ) -> BrokerState:
        heap = self.settings.heap
        cmd = [
            java,
            f"-Xmx{heap}",
            f"-Xms{heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent",
            "-XX:TieredStopAtLevel=1"
            if os.environ.get("SCORESTREAM_BROKER_FAST_JIT")
            else "-server",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            f"-Dkafka.logs.dir={self.log_dir}",
            "-cp",
            classpath(libs),
            "kafka.Kafka",
            str(server_props),
        ]
        progress(f"starting Apache Kafka {KAFKA_VERSION} (heap {heap}) ...")
        with self.stdout_file.open("ab") as out:
            proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.home,
            )
        _CHILDREN[proc.pid] = proc  # keep the handle: reaped in stop(), no zombie, no warning
        state = BrokerState(
            pid=proc.pid,
            plaintext_port=ports.plaintext,
            sasl_port=ports.sasl,
            controller_port=ports.controller,
            home=str(self.home),
            data_dir=str(self.data_dir),
            log_file=str(self.log_file),
            kafka_version=KAFKA_VERSION,
            cluster_id=cluster_id,
            started_at=datetime.now(UTC).isoformat(),
        )
        write_state(self.home, state)
        self._wait_ready(state, proc, progress)
        self._ensure_admin_credential(state, progress)
        return state

    def _ensure_admin_credential(self, state: BrokerState, progress: Progress) -> None:
        """Re-create the admin's SCRAM credential when the broker came up without it.

        Apache Kafka 4.4.0 loses *every* SCRAM credential on restart once any SCRAM user has
        been deleted (reproduced on a fresh broker: create a user, delete it, restart: describing
        the credentials lists none and the admin can no longer log in on the SASL listener), so
        a development broker that ran the security tests (which delete their principals) came
        back without its admin. Storage formatting adds the admin once; this restores it over
        the PLAINTEXT listener, where ``ANONYMOUS`` is a super user, with the configured
        password. ``tests/integration/test_broker_lifecycle.py`` restarts a broker this way."""
        from confluent_kafka.admin import (  # noqa: PLC0415  (start-up only)
            ScramCredentialInfo,
            ScramMechanism,
            UserScramCredentialUpsertion,
        )

        name = self.settings.admin_user
        conf = {"bootstrap.servers": state.bootstrap, "client.id": "broker-start"}
        admin = AdminClient(conf | {"logger": _QUIET})  # type: ignore[arg-type]
        deadline = time.monotonic() + 60
        while True:
            try:
                described = admin.describe_user_scram_credentials(request_timeout=10)
                users = cast("Future[dict[str, object]]", described).result(15)
                break
            except KafkaException:  # the controller may still be loading: ask again
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        if name in users:
            return
        progress(f"the SCRAM credential of {name!r} is missing after the restart: re-creating it")
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
        password = self.settings.admin_password.get_secret_value().encode()
        for future in admin.alter_user_scram_credentials(
            [UserScramCredentialUpsertion(name, info, password)]
        ).values():
            future.result(30)

    def _wait_ready(
        self, state: BrokerState, proc: subprocess.Popen[bytes] | None, progress: Progress
    ) -> None:
        deadline = time.monotonic() + self.settings.ready_timeout_s
        started = time.monotonic()
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise BrokerStartError(
                    f"the broker exited with code {proc.returncode} while starting; "
                    f"last log lines:\n{self.logs(40)}"
                )
            if metadata_ready(state.bootstrap, timeout=2.0):
                progress(
                    f"broker ready at {state.bootstrap} after {time.monotonic() - started:.1f}s "
                    f"(SASL/SCRAM at {state.sasl_bootstrap})"
                )
                return
            time.sleep(0.25)
        raise BrokerStartError(
            f"the broker did not answer metadata requests within {self.settings.ready_timeout_s}s;"
            f" last log lines:\n{self.logs(40)}"
        )

    # -- stop --------------------------------------------------------------------------------
    def stop(self, *, timeout: float = 30.0, progress: Progress = lambda _: None) -> bool:
        """SIGTERM, wait for a controlled shutdown, then SIGKILL. True if a broker was stopped."""
        state = self.state()
        if state is None or not pid_is_broker(state.pid, self.home):
            progress("broker is not running")
            return False
        progress(f"stopping broker (pid {state.pid}) ...")
        with contextlib.suppress(ProcessLookupError):
            os.kill(state.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and pid_is_broker(state.pid, self.home):
            _reap(state.pid)
            time.sleep(0.1)
        if pid_is_broker(state.pid, self.home):
            progress(f"broker did not stop within {timeout:.0f}s; killing it")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(state.pid, signal.SIGKILL)
            for _ in range(50):
                _reap(state.pid)
                if not pid_is_broker(state.pid, self.home):
                    break
                time.sleep(0.1)
        progress("broker stopped")
        return True

    # -- logs --------------------------------------------------------------------------------
    def logs(self, lines: int = 50) -> str:
        chunks = []
        for path in (self.log_file, self.stdout_file):
            if path.exists():
                text = path.read_text(errors="replace").splitlines()
                if text:
                    chunks.append(f"==> {path} <==\n" + "\n".join(text[-lines:]))
        return "\n".join(chunks) if chunks else f"no logs yet in {self.log_dir}"


_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
"""Brokers started by this process. The broker outlives a CLI invocation on purpose; within a
long-lived process (the test session) the handle is kept so ``stop`` can reap it."""


def _reap(pid: int) -> None:
    """Collect the exit status if the broker is our own child (avoids a zombie)."""
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is not None:
            del _CHILDREN[pid]
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
