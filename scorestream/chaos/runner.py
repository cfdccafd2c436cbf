"""``scorestream chaos``: every service under faults on a private cluster, then the invariants.

A Jepsen-style run on real processes: a private three-node Kafka cluster (own home directories
and free ports, so the shared development broker is never touched; replication factor 3 like
production, ADR 0003), the topics of a random tenant, a small trained model, every service as a
process (the merchant stage among them; two workers, so partitions move), simulated traffic at a
fixed rate with a known set of deliberately bad records mixed in, and a seeded schedule of
faults (SIGKILL + restart of each consuming service, the stateful merchant stage and enricher
included, SIGKILL + restart of a broker node, a worker SIGSTOPped for longer than its session
timeout, a model promotion under traffic). Afterwards every output (the enriched transactions,
predictions, decisions, audit records, the merchant stage's activity and table, the DLQs) is
read with ``read_committed`` consumers and checked (:mod:`scorestream.chaos.check`); the table
is printed and written as JSON; the exit code is non-zero when an invariant fails.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer

from schemas.errors import DecodeError
from schemas.events import AuditRecord
from scorestream.chaos.check import (
    ACTIVITY,
    OUTPUTS,
    Inputs,
    check,
    format_table,
    write_report,
)
from scorestream.chaos.faults import (
    Fault,
    FaultKind,
    FaultOutcome,
    Injector,
    Watchdog,
    make_schedule,
)
from scorestream.chaos.traffic import Sender, simulated
from scorestream.dev.supervisor import ServiceSpec, Supervisor, free_port
from scorestream.serde import decode_message
from scorestream.settings import scorestream_home
from scorestream.topics import REGISTRY

Progress = Callable[[str], None]
MODEL = "fraud-gbt"
SESSION_TIMEOUT_MS = 6000


@dataclass(frozen=True, slots=True)
class ChaosConfig:
    events: int = 100_000
    """Simulated transactions (labels come on top, as the simulator produces them)."""
    faults: int = 24
    rate: float = 250.0
    """Events per second sent to Kafka (open loop)."""
    seed: int = 7
    bad: int = 50
    """Deliberately bad records mixed into the transactions topic."""
    work_dir: Path = field(default_factory=lambda: scorestream_home() / "chaos")
    report: Path | None = None
    recovery_timeout_s: float = 180.0
    drain_timeout_s: float = 300.0
    """Give up waiting for the last audit records after this long without progress."""
    broker_heap: str = "512m"
    brokers: int = 3
    """Nodes of the private cluster (one is SIGKILLed per broker fault). 1 is possible, but a
    single node cannot keep transactions exactly-once across its own SIGKILL (ADR 0003)."""
    keep: bool = False


def tiny_model(version: str, seed: int) -> tuple[bytes, Any]:
    """A small LightGBM model on random data, exported to ONNX like production models: the runner
    tests the platform, not model quality, and this trains in about a second."""
    import lightgbm as lgb  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    from pipelines import training  # noqa: PLC0415
    from scorestream.features import FEATURE_SPEC  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(600, len(FEATURE_SPEC))).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(scale=0.5, size=600) > 1.2).astype(np.int8)
    model = lgb.LGBMClassifier(n_estimators=15, num_leaves=7, verbose=-1, random_state=seed)
    model.fit(X, y)
    data = training.export_onnx(model)
    meta = training.make_metadata(
        data,
        metrics={"average_precision": 0.5 + seed / 100},
        window=None,
        version=version,
        config=training.TrainConfig(model_name=MODEL),
        parent_version=None,
        score_reference=tuple(np.linspace(0.01, 0.2, 9)),
    )
    return data, meta


def _prepare_models(repo_dir: Path, tenant: str) -> Callable[[], str]:
    """Version 1 promoted now, version 2 published; returns the mid-run promotion."""
    from pipelines import lifecycle, training  # noqa: PLC0415
    from pipelines.repository import ModelRepository  # noqa: PLC0415

    repo = ModelRepository(str(repo_dir))
    for version, seed in (("1", 0), ("2", 1)):
        data, meta = tiny_model(version, seed)
        lifecycle.publish(repo, training.TrainingResult(meta, data, 0.0), tenant=tenant)
    lifecycle.promote(repo, tenant=tenant, name=MODEL, version="1", reason="chaos: start")

    def promote() -> str:
        lifecycle.promote(repo, tenant=tenant, name=MODEL, version="2", reason="chaos: mid-run")
        return "2"

    return promote


def _specs(tenant: str, env: dict[str, str]) -> list[ServiceSpec]:
    """Every service of ``up``, with two workers (so a paused one's partitions can move)."""
    from scorestream.dev.up import service_specs  # noqa: PLC0415

    out = []
    pairs = tuple(env.items())
    for spec in service_specs(tenant, gateway_port=free_port()):
        if spec.name != "worker":
            out.append(dataclasses.replace(spec, env=pairs))
            continue
        for i in range(2):
            port = free_port()
            args: tuple[str, ...] = ("worker", "--tenant", tenant, "--health-port", str(port))
            args += ("--instance-id", f"{tenant}-worker-{i}")
            out.append(ServiceSpec(f"worker-{i}", args, health_port=port, env=pairs))
    return out


SHARED_ENV = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "SCORESTREAM_MODELS_URL",
    "SCORESTREAM_TOPICS_REPLICATION_FACTOR",
    "SCORESTREAM_TOPICS_MIN_INSYNC_REPLICAS",
)
"""Set in this process too while the run lasts (it creates the tenant's topics and models)."""


def _service_env(bootstrap: str, run_dir: Path, brokers: int) -> dict[str, str]:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "SCORESTREAM_MODELS_URL": str(run_dir / "models"),
        "SCORESTREAM_TOPICS_REPLICATION_FACTOR": str(brokers),
        "SCORESTREAM_TOPICS_MIN_INSYNC_REPLICAS": str(brokers // 2 + 1),
        "SCORESTREAM_AUDIT_JOIN_TIMEOUT_S": "86400",
        "SCORESTREAM_WORKER_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
        "SCORESTREAM_GATEWAY_AUTH_MODE": "disabled",  # no HTTP traffic in this run
    }
    for service in ("MERCHANT", "ENRICHER", "WORKER", "DECISION", "AUDIT", "NOTIFIER", "MONITOR"):
        env[f"SCORESTREAM_{service}_TRANSACTION_TIMEOUT_S"] = "15"
    # the stateful services' checkpoints stay with the run (and survive their restarts)
    for service in ("MERCHANT", "ENRICHER"):
        env[f"SCORESTREAM_{service}_STATE_DIR"] = str(run_dir / "state" / service.lower())
    return env


class _AuditFollower(threading.Thread):
    """Counts committed audit records while the run goes on: the progress and drain signal."""

    def __init__(self, bootstrap: str, tenant: str) -> None:
        super().__init__(name="chaos-follower", daemon=True)
        self.ids: set[str] = set()
        self.stopping = threading.Event()
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"chaos-follow-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "logger": _QUIET,
            }
        )
        self.consumer.subscribe([REGISTRY.topic("audit", tenant)])

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                for msg in self.consumer.consume(num_messages=1000, timeout=0.5):
                    if msg.error() is not None:
                        continue
                    try:
                        event = decode_message(msg, accept=[AuditRecord]).event
                    except DecodeError:
                        continue
                    self.ids.add(event.transaction_id)
        finally:
            self.consumer.close()

    @property
    def count(self) -> int:
        return len(self.ids)

    def close(self) -> None:
        self.stopping.set()
        self.join(10)


def _quiet_logger() -> Any:
    import logging  # noqa: PLC0415

    logger = logging.getLogger("scorestream.chaos.runner.kafka")
    logger.propagate = False
    logger.addHandler(logging.NullHandler())
    return logger


_QUIET = _quiet_logger()


def run_chaos(cfg: ChaosConfig, progress: Progress) -> dict[str, Any]:
    """The whole run; returns the report (``report["failures"]`` empty when every invariant
    holds)."""
    from scorestream.admin import ensure_tenant_topics  # noqa: PLC0415
    from scorestream.dev.broker.cluster import LocalCluster, NodePorts  # noqa: PLC0415
    from scorestream.dev.broker.local import stable_free_ports  # noqa: PLC0415

    started = time.monotonic()
    run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:4]}"
    tenant = f"chaos-{uuid.uuid4().hex[:8]}"
    run_dir = (cfg.work_dir / run_id).resolve()
    ports = stable_free_ports(3 * cfg.brokers)
    cluster = LocalCluster(
        run_dir / "broker",
        [NodePorts(*ports[i : i + 3]) for i in range(0, len(ports), 3)],
        heap=cfg.broker_heap,
        ready_timeout_s=cfg.recovery_timeout_s,  # log recovery after SIGKILL takes a while
    )
    saved = {k: os.environ.get(k) for k in SHARED_ENV}
    supervisor: Supervisor | None = None
    watchdog: Watchdog | None = None
    progress(f"run {run_id}: tenant {tenant}, logs in {run_dir}")
    try:
        cluster.start(progress=progress)
        env = _service_env(cluster.bootstrap, run_dir, cfg.brokers)
        os.environ.update({k: env[k] for k in saved})
        ensure_tenant_topics(tenant)
        promote = _prepare_models(run_dir / "models", tenant)
        items, inputs = simulated(cfg.events, cfg.seed, tenant)
        progress(f"{len(inputs.order):,} transactions + {inputs.labels:,} labels to send")
        supervisor = Supervisor(tenant, run_dir=run_dir / "run")
        supervisor.start(_specs(tenant, env), progress=progress)
        lock = threading.Lock()
        watchdog = Watchdog(supervisor, lock, progress)
        injector = Injector(
            supervisor,
            cluster.nodes,
            lock,
            promote,
            pause_s=SESSION_TIMEOUT_MS / 1000 + 4,
            recovery_timeout_s=cfg.recovery_timeout_s,
            progress=progress,
        )
        outcomes = _faults_under_traffic(
            cfg, tenant, cluster.bootstrap, items, inputs, injector, watchdog, progress
        )
        progress("reading every output back with read_committed consumers ...")
        verdict = check(cluster.bootstrap, tenant, inputs)
        report = _report(cfg, tenant, run_dir, inputs, outcomes, watchdog, verdict, started)
        path = cfg.report or run_dir / "report.json"
        write_report(report, path)
        report["report_path"] = str(path)
        return report
    finally:
        # each step on its own: a failing step must not leave processes behind
        with contextlib.suppress(Exception):
            if watchdog is not None:
                watchdog.stop()
        with contextlib.suppress(Exception):
            if supervisor is not None:
                supervisor.stop(progress=lambda _: None)
        with contextlib.suppress(Exception):
            cluster.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if not cfg.keep:
            for node in cluster.nodes:
                shutil.rmtree(node.data_dir, ignore_errors=True)


def _faults_under_traffic(
    cfg: ChaosConfig,
    tenant: str,
    bootstrap: str,
    items: list[Any],
    inputs: Inputs,
    injector: Injector,
    watchdog: Watchdog,
    progress: Progress,
) -> list[FaultOutcome]:
    """Traffic starts once every service is ready; faults follow the schedule; then drain."""
    watchdog.start()  # a service that crashes while starting is restarted too
    if not injector.wait_ready(None, time.monotonic()):
        raise RuntimeError(f"services not ready; see the logs in {injector.supervisor.dir}")
    progress("every service is ready")
    sender = Sender(items, inputs, tenant=tenant, rate=cfg.rate, bad=cfg.bad, seed=cfg.seed)
    follower = _AuditFollower(bootstrap, tenant)
    schedule = make_schedule(cfg.faults, len(items) / cfg.rate, cfg.seed)
    t0 = time.monotonic()
    follower.start()
    sender.start()
    try:
        outcomes = _inject_all(schedule, injector, sender, follower, t0, progress)
        sender.join()
        if sender.error is not None:
            raise RuntimeError(f"sending failed: {sender.error}")
        _drain(follower, len(inputs.order), cfg.drain_timeout_s, progress)
    finally:
        follower.close()
        watchdog.stop()
    return outcomes


def _inject_all(
    schedule: list[Fault],
    injector: Injector,
    sender: Sender,
    follower: _AuditFollower,
    t0: float,
    progress: Progress,
) -> list[FaultOutcome]:
    outcomes = []
    for n, fault in enumerate(schedule, 1):
        wait = t0 + fault.at_s - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        if fault.kind is FaultKind.PROMOTE:
            # a hot swap under traffic: the old version must have scored something first (the
            # chain takes a while to warm up, on 3 brokers of a 2-core machine ~20 s)
            deadline = time.monotonic() + 120
            while follower.count == 0 and time.monotonic() < deadline:
                time.sleep(0.5)
        at = time.monotonic() - t0
        sent = sender.sent
        progress(f"[{at:6.1f}s] fault {n}/{len(schedule)}: {fault.kind.value} {fault.target}")
        survived, recovery, detail = injector.inject(fault)
        outcomes.append(
            FaultOutcome(fault, round(at, 1), sent, survived, round(recovery, 1), detail)
        )
        progress(
            f"         {'recovered' if survived else 'NOT recovered'} in {recovery:.1f}s: {detail}"
            f" (sent {sender.sent:,}, audit records {follower.count:,})"
        )
    return outcomes


def _drain(follower: _AuditFollower, expected: int, stall_s: float, progress: Progress) -> None:
    last, last_change = -1, time.monotonic()
    while time.monotonic() - last_change < stall_s:
        time.sleep(5.0)
        n = follower.count
        if n >= expected:
            break
        if n != last:
            last, last_change = n, time.monotonic()
            progress(f"draining: {n:,}/{expected:,} audit records")
    progress(f"drained: {len(follower.ids):,}/{expected:,} audit records")


def _report(
    cfg: ChaosConfig,
    tenant: str,
    run_dir: Path,
    inputs: Inputs,
    outcomes: list[FaultOutcome],
    watchdog: Watchdog,
    verdict: Any,
    started: float,
) -> dict[str, Any]:
    failures = list(verdict.failures())
    failures += [
        f"fault not survived: {o.fault.kind.value} {o.fault.target}"
        for o in outcomes
        if not o.survived
    ]
    if any(o.fault.kind is FaultKind.PROMOTE for o in outcomes) and "2" not in verdict.versions:
        failures.append("the promoted model version 2 never scored")
    kinds = Counter(f"{o.fault.kind.value} {o.fault.target}" for o in outcomes)
    out = "/".join(f"{verdict.streams[s].records:,}" for s in OUTPUTS)
    table = verdict.merchant_table
    return {
        "run": run_dir.name,
        "tenant": tenant,
        "config": {k: str(v) for k, v in dataclasses.asdict(cfg).items()},
        "faults_injected": len(outcomes),
        "faults_survived": sum(o.survived for o in outcomes),
        "faults_by_kind": dict(sorted(kinds.items())),
        "faults": [o.as_dict() for o in outcomes],
        "watchdog_restarts": watchdog.restarts,
        "events_in": len(inputs.order),
        "labels_in": inputs.labels,
        "bad_in": len(inputs.bad),
        "out": out,
        "streams": {k: dataclasses.asdict(v) for k, v in verdict.streams.items()},
        "merchant_activity": verdict.streams[ACTIVITY].records,
        "merchant_table": f"{table.merchants - table.wrong:,}/{table.merchants:,}, "
        f"clocks on {table.clocks}/{table.partitions} partitions",
        "merchant_table_check": dataclasses.asdict(table),
        "dlq": verdict.dlq_records,
        "dlq_expected": verdict.dlq_expected,
        "dlq_reasons": verdict.dlq_reasons,
        "lost": verdict.lost,
        "duplicated": verdict.duplicated,
        "reorderings": verdict.reorderings,
        "versions": ", ".join(f"v{k} {v:,}" for k, v in verdict.versions.items()),
        "wall_s": round(time.monotonic() - started, 1),
        "failures": failures,
    }


def cmd_chaos(args: Any) -> int:
    cfg = ChaosConfig(
        events=args.events,
        faults=args.faults,
        rate=args.rate,
        seed=args.seed,
        bad=args.bad,
        report=Path(args.report) if args.report else None,
        keep=args.keep,
        brokers=args.brokers,
    )
    report = run_chaos(cfg, progress=lambda m: print(m, flush=True))  # noqa: T201
    print(format_table(report))  # noqa: T201
    for failure in report["failures"]:
        print(f"FAILED: {failure}")  # noqa: T201
    print(f"report: {report['report_path']}")  # noqa: T201
    return 1 if report["failures"] else 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "chaos",
        help="faults on every service and the broker (private), then exactly-once invariants",
    )
    p.add_argument("--events", type=int, default=100_000, help="simulated transactions")
    p.add_argument("--faults", type=int, default=24, help="faults to inject (>= 20 for a full run)")
    p.add_argument("--rate", type=float, default=250.0, help="events/s sent to Kafka")
    p.add_argument("--seed", type=int, default=7, help="seeds the traffic and the fault schedule")
    p.add_argument("--bad", type=int, default=50, help="deliberately bad records mixed in")
    p.add_argument(
        "--report", help="JSON report path (default $SCORESTREAM_HOME/chaos/<run>/report.json)"
    )
    p.add_argument("--keep", action="store_true", help="keep the private brokers' data")
    p.add_argument(
        "--brokers",
        type=int,
        default=3,
        help="nodes of the private cluster (default 3; with 1, a broker SIGKILL can duplicate "
        "transactional records: Kafka skips markers, docs/adr/0003-single-broker-transactions.md)",
    )
    p.set_defaults(func=cmd_chaos)
