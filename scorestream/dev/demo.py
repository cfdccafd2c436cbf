"""The live demo: every service running, simulated traffic, a live view, a hot swap, a summary.

``scorestream demo`` (the README's first command) starts the broker and the services of tenant
``demo``, trains and promotes a model if the tenant has none for the current feature spec, then
streams simulated transactions and labels through Kafka while sending synchronous scoring
requests to the gateway, shows throughput per stage, latency, decisions and fraud caught vs
missed as labels arrive, promotes a retrained model half-way (hot swap), prints a summary and
stops everything (``--keep-running`` leaves the services up).
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from confluent_kafka import Consumer
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from schemas.events import DecisionEvent, LabelEvent, ModelAlias, Outcome, TransactionEvent
from scorestream.errors import ScorestreamError
from scorestream.kafka_config import common_config, producer_config
from scorestream.serde import EventProducer, decode_message
from scorestream.settings import KafkaSettings, scorestream_home
from scorestream.topics import REGISTRY

if TYPE_CHECKING:
    from scorestream.dev.supervisor import Supervisor

TENANT = "demo"
STAGES = (
    ("merchant", "merchant"),
    ("enricher", "enricher"),
    ("worker", "worker"),
    ("decision", "decision"),
    ("notifier", "notifier"),
    ("audit", "audit"),
)


@dataclass
class Stats:
    decisions: Counter[str] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    latest_version: str = "-"
    latencies_ms: list[float] = field(default_factory=list)
    sync_errors: int = 0
    sync_timeouts: int = 0
    sent: int = 0
    labels_sent: int = 0
    outcome_by_tx: dict[str, str] = field(default_factory=dict)
    fraud_labelled: set[str] = field(default_factory=set)
    swap_at: float | None = None
    swap_to: str = "-"
    """The version promoted mid-run: a freshly retrained one on the first run, then the other of
    the two the home already has."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fraud_table(self) -> tuple[int, int, int]:
        """(caught, missed, pending) among transactions whose fraud label has arrived."""
        with self.lock:
            caught = missed = pending = 0
            for tx in self.fraud_labelled:
                outcome = self.outcome_by_tx.get(tx)
                if outcome is None:
                    pending += 1
                elif outcome in ("review", "decline"):
                    caught += 1
                else:
                    missed += 1
        return caught, missed, pending


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            return str(r.read().decode())
    except OSError:
        return ""


def _events_in(text: str) -> float:
    total = 0.0
    for match in re.finditer(r"^scorestream_events_in_total\{[^}]*\} ([0-9.e+]+)$", text, re.M):
        total += float(match.group(1))
    return total


def _ensure_model(console: Console) -> tuple[str, str]:
    """Champion for the current feature spec (train one if needed) and a retrained candidate."""
    from pipelines import lifecycle, steps, training  # noqa: PLC0415
    from pipelines.sources import from_simulator  # noqa: PLC0415
    from scorestream.features import FEATURE_SPEC  # noqa: PLC0415

    repo = lifecycle.open_repository()
    name = "fraud-gbt"

    def train(seed: int) -> str:
        data = from_simulator(tenant=TENANT, seed=seed, days=60)
        d = scorestream_home() / "runs" / f"demo-{seed}-{uuid.uuid4().hex[:6]}"
        cfg = training.TrainConfig(model_name=name)
        steps.build_dataset_step(data.transactions, data.labels, d / "ds", cfg)
        steps.train_step(d / "ds", d / "model.txt", cfg)
        steps.export_onnx_step(d / "model.txt", d / "model.onnx", d / "ds")
        steps.evaluate_step(d / "model.onnx", d / "ds", d / "metrics.json")
        event = steps.publish_step(
            d / "model.onnx", d / "ds", d / "metrics.json", tenant=TENANT, promote_if_first=False
        )
        return event.model_version

    current = lifecycle.serving_version(TENANT, name, ModelAlias.CHAMPION)
    usable = [
        v
        for v in repo.versions(name)
        if repo.metadata(name, v).feature_spec_hash == FEATURE_SPEC.hash
    ]
    if current is None or current not in usable:
        console.print("[bold]training a model[/] (60 simulated days, LightGBM → ONNX, ~30 s) ...")
        current = train(seed=42)
        lifecycle.promote(repo, tenant=TENANT, name=name, version=current, reason="demo: first")
        usable.append(current)
    console.print(f"champion for tenant {TENANT}: [bold]{name}/{current}[/]")
    candidates = [v for v in usable if v != current]
    if candidates:
        return current, candidates[-1]
    console.print("[bold]training a retrained candidate[/] for the mid-run hot swap ...")
    return current, train(seed=43)


def _follow_decisions(stats: Stats, stop: threading.Event, kafka: KafkaSettings) -> None:
    topic = REGISTRY.topic("decisions", TENANT)
    consumer = Consumer(
        common_config(kafka, client_id="demo-view")
        | {
            "group.id": f"demo-view-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "latest",
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([topic])
    try:
        while not stop.is_set():
            for msg in consumer.consume(num_messages=500, timeout=0.3):
                if msg.error():
                    continue
                try:
                    d = decode_message(msg, accept=[DecisionEvent]).event
                except ScorestreamError:
                    continue
                with stats.lock:
                    stats.decisions[d.outcome.value] += 1
                    stats.versions[d.model_version] += 1
                    stats.latest_version = d.model_version
                    stats.outcome_by_tx[d.transaction_id] = d.outcome.value
    finally:
        consumer.close()


SIMULATED_TX_PER_DAY = 3500
"""A lower bound of the simulator's transactions per day (~4,000 with the default config)."""


def simulated_days(rate: float, duration: float) -> int:
    """Days to simulate for ``rate`` transactions/s over ``duration`` s, plus one for the labels'
    delay: simulating more only delays the first event (21 days took ~3 s idle, over 16 s on a
    loaded machine, and a short demo then streamed nothing)."""
    return min(60, max(2, math.ceil(rate * duration / SIMULATED_TX_PER_DAY) + 1))


def _stream(
    stats: Stats, stop: threading.Event, rate: float, kafka: KafkaSettings, seed: int, days: int
) -> None:
    from producers.simulate_cli import interleaved  # noqa: PLC0415
    from producers.simulator import SimulatorConfig, simulate  # noqa: PLC0415

    sim = simulate(SimulatorConfig(seed=seed, tenant=TENANT, days=days))
    items = interleaved(sim)
    producer = EventProducer(
        producer_config(kafka, client_id="demo-traffic"), source="scorestream/simulator"
    )
    start = time.perf_counter()
    for i, (stream, event) in enumerate(items):
        if stop.is_set():
            break
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        producer.send(REGISTRY.topic(stream, TENANT), event)
        with stats.lock:
            if isinstance(event, LabelEvent):
                stats.labels_sent += 1
                if event.is_fraud:
                    stats.fraud_labelled.add(event.transaction_id)
            else:
                stats.sent += 1
    producer.flush(30)


def _sync_requests(stats: Stats, stop: threading.Event, port: int, rate: float) -> None:
    import httpx  # noqa: PLC0415

    from producers.generator import generate_transactions  # noqa: PLC0415
    from scorestream.dev.up import dev_api_key  # noqa: PLC0415

    events = generate_transactions(10**6, tenant=TENANT, seed=int(time.time()))
    auth = {"Authorization": f"Bearer {dev_api_key(TENANT)[0]}"}  # the key `up` gave the gateway
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5, headers=auth) as client:
        for event in events:
            if stop.is_set():
                break
            t0 = time.perf_counter()
            body = event.model_copy(
                update={
                    "transaction_id": f"sync-{uuid.uuid4().hex[:12]}",
                    "timestamp": datetime.now(UTC),
                }
            )
            try:
                r = client.post(
                    "/v1/transactions:score",
                    content=body.model_dump_json(),
                    headers={"content-type": "application/json"},
                )
                ms = (time.perf_counter() - t0) * 1000
                with stats.lock:
                    if r.status_code == 200:
                        stats.latencies_ms.append(ms)
                    elif r.status_code == 504:
                        stats.sync_timeouts += 1
                    else:
                        stats.sync_errors += 1
            except httpx.HTTPError:
                with stats.lock:
                    stats.sync_errors += 1
            time.sleep(max(0.0, 1 / rate - (time.perf_counter() - t0)))


def _view(
    stats: Stats, rates: dict[str, float], elapsed: float, duration: float, champion: str
) -> Group:
    table = Table(title="events/s per stage", title_justify="left", expand=False)
    for name, _ in STAGES:
        table.add_column(name, justify="right")
    table.add_row(*(f"{rates.get(name, 0):,.0f}" for name, _ in STAGES))
    with stats.lock:
        lat = list(stats.latencies_ms)
        decisions = dict(stats.decisions)
        versions = dict(stats.versions)
        sent, labels = stats.sent, stats.labels_sent
        timeouts, errors = stats.sync_timeouts, stats.sync_errors
        latest = stats.latest_version
    caught, missed, pending = stats.fraud_table()
    lines = [
        f"[bold]{elapsed:5.0f}s / {duration:.0f}s[/]   transactions sent {sent:,}   "
        f"labels {labels:,}",
        f"sync scoring (gateway → Kafka → enricher → worker → decision → reply): "
        f"{len(lat)} ok, p50 {_percentile(lat, 0.5):.0f} ms, p99 {_percentile(lat, 0.99):.0f} ms,"
        f" {timeouts} timeouts, {errors} errors",
        "decisions: "
        + ", ".join(f"{k} {decisions.get(k, 0):,}" for k in ("approve", "review", "decline")),
        f"fraud as labels arrive: [green]caught {caught}[/]  [red]missed {missed}[/]  "
        f"(not decided yet {pending})",
        f"model serving: [bold]{latest}[/] (started with {champion}); predictions by version: "
        + ", ".join(f"v{k}: {v:,}" for k, v in sorted(versions.items())),
    ]
    if stats.swap_at is not None:
        swap = f"fraud-gbt/{stats.swap_to} promoted at {stats.swap_at:.0f}s"
        lines.append(f"[yellow]hot swap: {swap}[/]")
    return Group(table, Panel("\n".join(lines), title="scorestream live", expand=False))


def _prepare(console: Console) -> tuple[Supervisor, str, str]:
    """Broker, topics, models (trained if needed), then every service of the demo tenant."""
    from scorestream.admin import ensure_tenant_topics  # noqa: PLC0415
    from scorestream.dev.broker import LocalBroker  # noqa: PLC0415
    from scorestream.dev.broker.local import port_is_free  # noqa: PLC0415
    from scorestream.dev.supervisor import Supervisor, free_port  # noqa: PLC0415
    from scorestream.dev.up import up  # noqa: PLC0415

    previous = Supervisor(TENANT)
    if previous.running():
        previous.stop()
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = (
            LocalBroker().start(progress=lambda m: console.print(f"[dim]broker:[/] {m}")).bootstrap
        )
    ensure_tenant_topics(TENANT)
    policy = Path(__file__).resolve().parents[2] / "config" / "policies" / "demo.yaml"
    if policy.exists():
        os.environ.setdefault("SCORESTREAM_DECISION_POLICY_FILE", str(policy))
    champion, candidate = _ensure_model(console)
    gateway_port = 8000 if port_is_free(8000) else free_port()
    supervisor = up(
        TENANT, gateway_port=gateway_port, progress=lambda m: console.print(f"[dim]{m}[/]")
    )
    return supervisor, champion, candidate


def run_live_demo(
    *,
    duration: float = 60.0,
    rate: float = 400.0,
    sync_rate: float = 10.0,
    keep_running: bool = False,
    seed: int | None = None,
) -> int:
    from pipelines import lifecycle  # noqa: PLC0415

    console = Console(width=None if Console().is_terminal else 132, soft_wrap=True)
    console.rule("[bold]scorestream live demo")
    supervisor, champion, candidate = _prepare(console)
    ports = supervisor.ports()
    kafka = KafkaSettings()
    stats = Stats()
    stop = threading.Event()
    started = time.perf_counter()
    try:
        _wait_ready(ports, console)
        threads = [
            threading.Thread(target=_follow_decisions, args=(stats, stop, kafka), daemon=True),
            threading.Thread(
                target=_stream,
                args=(
                    stats,
                    stop,
                    rate,
                    kafka,
                    seed if seed is not None else int(time.time()),
                    simulated_days(rate, duration),
                ),
                daemon=True,
            ),
            threading.Thread(
                target=_sync_requests, args=(stats, stop, ports["gateway"], sync_rate), daemon=True
            ),
        ]
        for t in threads:
            t.start()
        previous = {name: _events_in(_scrape(ports[name])) for name, _ in STAGES if name in ports}
        rates: dict[str, float] = {}
        last = time.perf_counter()
        with Live(
            _view(stats, rates, 0, duration, champion),
            console=console,
            refresh_per_second=2,
            transient=False,
        ) as live:
            while (elapsed := time.perf_counter() - started) < duration:
                time.sleep(1.0)
                now = time.perf_counter()
                for name, _ in STAGES:
                    if name in ports:
                        value = _events_in(_scrape(ports[name]))
                        rates[name] = (value - previous.get(name, 0)) / (now - last)
                        previous[name] = value
                last = now
                if stats.swap_at is None and elapsed >= duration / 2:
                    lifecycle.promote(
                        lifecycle.open_repository(),
                        tenant=TENANT,
                        name="fraud-gbt",
                        version=candidate,
                        reason="demo: retrained model, hot swap mid-run",
                    )
                    stats.swap_at, stats.swap_to = elapsed, candidate
                live.update(_view(stats, rates, elapsed, duration, champion))
        stop.set()
        for t in threads:
            t.join(10)
        _summary(console, stats, duration, champion, candidate)
    finally:
        stop.set()
        if keep_running:
            console.print("services keep running: 'scorestream down --tenant demo' stops them")
        else:
            supervisor.stop(progress=lambda m: console.print(f"[dim]{m}[/]"))
    return 0


def _wait_ready(ports: dict[str, int], console: Console, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    waiting = dict(ports)
    while waiting and time.monotonic() < deadline:
        for name, port in list(waiting.items()):
            path = "/readyz"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
                    if r.status == 200:
                        waiting.pop(name)
            except OSError:
                pass
        time.sleep(0.5)
    if waiting:
        raise ScorestreamError(
            f"services not ready after {timeout:.0f}s: {sorted(waiting)} "
            f"(see {scorestream_home() / 'run' / 'demo'}/*.log)"
        )
    console.print("all services ready")


def _summary(
    console: Console, stats: Stats, duration: float, champion: str, candidate: str
) -> None:
    caught, missed, pending = stats.fraud_table()
    lat = stats.latencies_ms
    table = Table(title="summary", title_justify="left")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("duration", f"{duration:.0f} s")
    table.add_row("transactions streamed", f"{stats.sent:,} ({stats.sent / duration:,.0f}/s)")
    table.add_row("labels streamed", f"{stats.labels_sent:,}")
    table.add_row("decisions seen", f"{sum(stats.decisions.values()):,}")
    for outcome in Outcome:
        table.add_row(f"  {outcome.value}", f"{stats.decisions.get(outcome.value, 0):,}")
    table.add_row("fraud caught / missed (labelled)", f"{caught} / {missed} ({pending} pending)")
    table.add_row(
        "sync scoring ok / 504 / errors",
        f"{len(lat)} / {stats.sync_timeouts} / {stats.sync_errors}",
    )
    table.add_row(
        "sync latency p50 / p99", f"{_percentile(lat, 0.5):.0f} / {_percentile(lat, 0.99):.0f} ms"
    )
    table.add_row(
        "hot swap",
        f"v{champion} → v{candidate} at {stats.swap_at or 0:.0f}s; "
        + ", ".join(f"v{k}: {v:,}" for k, v in sorted(stats.versions.items())),
    )
    console.print(table)
    console.print(
        json.dumps(
            {
                "summary": {
                    "transactions": stats.sent,
                    "decisions": sum(stats.decisions.values()),
                    "versions": dict(stats.versions),
                }
            }
        )
    )


__all__ = ["TransactionEvent", "run_live_demo"]
