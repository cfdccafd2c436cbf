"""The enricher alone on a preloaded backlog: events/s per process and CPU per event.

A fresh tenant (6 partitions) is loaded with simulated transactions and their labels; the
merchant stage builds the merchant table first (its own rate is reported too) and is stopped;
then one enricher starts and works through the backlog. Rate = transactions / (time from its
``/readyz`` answering 200 to the append time of the last enriched record); CPU = the process's
user + system seconds over the same span (``/proc/<pid>/stat``).

With ``SCORESTREAM_BENCH_BASELINE_TREE=<dir>`` (a worktree of an older commit with its own
``.venv``, e.g. the Quix enricher of 65537ff), that tree's enricher runs on its own fresh tenant
with the same events, arms alternating, so the before/after ratio comes from one run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from bench.common import RESULTS, ROOT, fmt, header, process_cpu_s, rand
from schemas.events import LabelEvent, TransactionEvent
from scorestream.admin import ensure_tenant_topics
from scorestream.kafka_config import common_config, producer_config
from scorestream.serde import EventProducer
from scorestream.settings import KafkaSettings
from scorestream.topics import REGISTRY


def _events(n: int) -> list[tuple[str, Any]]:
    from producers.simulate_cli import interleaved  # noqa: PLC0415
    from producers.simulator import SimulatorConfig, simulate  # noqa: PLC0415

    sim = simulate(SimulatorConfig(seed=5, tenant="bench", n_customers=2000, days=21))
    items = interleaved(sim)
    txs = [e for _, e in items if isinstance(e, TransactionEvent)][:n]
    last = txs[-1].timestamp
    return [
        (s, e)
        for s, e in items
        if (isinstance(e, TransactionEvent) and e.timestamp <= last)
        or (isinstance(e, LabelEvent) and e.labelled_at <= last)
    ]


def _preload(tenant: str, items: list[tuple[str, Any]], kafka: KafkaSettings) -> int:
    with EventProducer(producer_config(kafka, client_id="bench-preload"), source="bench") as p:
        for stream, event in items:
            p.send(REGISTRY.topic(stream, tenant), event.model_copy(update={"tenant_id": tenant}))
    return sum(1 for s, _ in items if s == "transactions")


def _ready(port: int) -> bool:
    with (
        contextlib.suppress(OSError),
        urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r,
    ):
        return bool(r.status == 200)
    return False


def _free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _committed(kafka: KafkaSettings, group: str, topics: list[str]) -> int:
    c = Consumer(common_config(kafka, client_id="bench-probe") | {"group.id": group})
    try:
        tps = []
        for topic in topics:
            meta = c.list_topics(topic, timeout=10).topics[topic]
            tps += [TopicPartition(topic, p) for p in meta.partitions]
        return sum(max(0, tp.offset) for tp in c.committed(tps, timeout=10))
    finally:
        c.close()


def _ends(kafka: KafkaSettings, topics: list[str]) -> int:
    c = Consumer(common_config(kafka, client_id="bench-probe") | {"group.id": "bench-probe"})
    try:
        total = 0
        for topic in topics:
            meta = c.list_topics(topic, timeout=10).topics[topic]
            for p in meta.partitions:
                total += c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        return total
    finally:
        c.close()


def _last_append_ms(kafka: KafkaSettings, topic: str, expected: int) -> tuple[int, int]:
    """(records read, largest record timestamp in ms) of ``topic`` (read_committed)."""
    c = Consumer(
        common_config(kafka, client_id="bench-reader")
        | {
            "group.id": rand("bench-"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    c.subscribe([topic])
    n, last = 0, 0
    deadline = time.monotonic() + 120
    try:
        while n < expected and time.monotonic() < deadline:
            for m in c.consume(num_messages=5000, timeout=0.5):
                if m.error() is None:
                    n += 1
                    last = max(last, m.timestamp()[1])
    finally:
        c.close()
    return n, last


def _start(
    python: str, cwd: Path, service: str, tenant: str, port: int, workdir: Path
) -> subprocess.Popen[bytes]:
    log = (workdir / f"{tenant}-{service}.log").open("ab")
    return subprocess.Popen(
        [
            *(python, "-m", "scorestream", service, "--tenant", tenant),
            *("--health-port", str(port), "--state-dir", str(workdir / "state")),
        ],
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=os.environ | {"SCORESTREAM_LOG_LEVEL": "WARNING"},
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


def _until(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.2)


def _cleanup(kafka: KafkaSettings, tenant: str) -> None:
    """The run's topics and groups (the baseline's Quix topics have the tenant inside)."""
    from confluent_kafka.admin import AdminClient  # noqa: PLC0415

    from bench.stack import delete_tenant  # noqa: PLC0415
    from scorestream.kafka_config import admin_config  # noqa: PLC0415

    delete_tenant(kafka, tenant)
    admin = AdminClient(admin_config(kafka, client_id="bench-cleanup"))
    left = [t for t in admin.list_topics(timeout=30).topics if tenant in t]
    if left:
        for fut in admin.delete_topics(left, operation_timeout=30).values():
            with contextlib.suppress(Exception):
                fut.result(timeout=30)


def _until_stable(value: Any, quiet_s: float, timeout: float, what: str) -> None:
    """Until ``value()`` stops changing for ``quiet_s`` (a transactional topic's end offset
    counts commit markers, so "committed == end" never holds)."""
    deadline = time.monotonic() + timeout
    last, since = value(), time.monotonic()
    while time.monotonic() - since < quiet_s:
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.2)
        now = value()
        if now != last:
            last, since = now, time.monotonic()


def one_run(
    arm: str,
    python: str,
    cwd: Path,
    items: list[tuple[str, Any]],
    kafka: KafkaSettings,
    workdir: Path,
) -> dict[str, Any]:
    tenant = rand("be")
    ensure_tenant_topics(tenant)
    n = _preload(tenant, items, kafka)
    out: dict[str, Any] = {"arm": arm, "tenant": tenant, "transactions": n}
    if arm == "one-hop":
        # the merchant table first (what a running deployment has), timed on its own
        inputs = [REGISTRY.topic(s, tenant) for s in ("transactions", "labels")]
        total = _ends(kafka, inputs)
        port = _free_port()
        proc = _start(python, cwd, "merchant", tenant, port, workdir)
        try:
            _until(lambda: _ready(port), 120, "merchant ready")
            t0, cpu0 = time.monotonic(), process_cpu_s(proc.pid)
            group = f"{tenant}.merchant"
            _until(lambda: _committed(kafka, group, inputs) >= total, 300, "merchant re-keyed")
            activity = [REGISTRY.topic("merchant-activity", tenant)]
            _until_stable(lambda: _committed(kafka, group, activity), 2.0, 300, "aggregated")
            seconds, cpu = time.monotonic() - t0, process_cpu_s(proc.pid) - cpu0
        finally:
            _stop(proc)
        out["merchant_stage"] = {
            "input_records": total,
            "seconds": round(seconds, 2),
            "records_per_s": round(total / seconds),
            "cpu_us_per_input_record": round(cpu / total * 1e6, 1),
        }
    port = _free_port()
    proc = _start(python, cwd, "enricher", tenant, port, workdir)
    try:
        _until(lambda: _ready(port), 180, "enricher ready")
        t_ready_ms, cpu0 = time.time() * 1000, process_cpu_s(proc.pid)
        group = f"{tenant}.enricher"
        tx_topic = [REGISTRY.topic("transactions", tenant)]
        _until(lambda: _committed(kafka, group, tx_topic) >= n, 600, "enriched")
        cpu = process_cpu_s(proc.pid) - cpu0
    finally:
        _stop(proc)
    read, last_ms = _last_append_ms(kafka, REGISTRY.topic("transactions.enriched", tenant), n)
    _cleanup(kafka, tenant)
    seconds = (last_ms - t_ready_ms) / 1000
    out |= {
        "enriched": read,
        "seconds": round(seconds, 3),
        "events_per_s": round(n / seconds),
        "cpu_s": round(cpu, 2),
        "cpu_us_per_event": round(cpu / n * 1e6, 1),
    }
    return out


def run(
    smoke_s: float | None,
    results_dir: Path = RESULTS,
    name: str = "enricher",
    command: str = "scorestream bench enricher",
) -> dict[str, Any]:
    from bench.common import finish  # noqa: PLC0415

    n = 3000 if smoke_s is not None else 60_000
    rounds = 1 if smoke_s is not None else 2
    baseline = os.environ.get("SCORESTREAM_BENCH_BASELINE_TREE")
    arms: list[tuple[str, str, Path]] = [("one-hop", sys.executable, ROOT)]
    if baseline:
        tree = Path(baseline)
        arms.append(("baseline", str(tree / ".venv" / "bin" / "python"), tree))
    kafka = KafkaSettings()
    items = _events(n)
    results = header(name, command, transactions=n, rounds=rounds, baseline_tree=baseline)
    if baseline:
        results["baseline_commit"] = subprocess.run(
            ["git", "-C", baseline, "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    workdir = ROOT / "var" / "bench" / "enricher-run"
    workdir.mkdir(parents=True, exist_ok=True)
    runs = []
    for r in range(rounds):
        for arm, python, cwd in arms:
            one = one_run(arm, python, cwd, items, kafka, workdir)
            one["round"] = r
            runs.append(one)
            extra = ""
            if "merchant_stage" in one:
                m = one["merchant_stage"]
                extra = (
                    f"; merchant stage {fmt(m['records_per_s'])} records/s, "
                    f"{m['cpu_us_per_input_record']} us CPU/record"
                )
            print(
                f"    {arm:>8} round {r}: {fmt(one['events_per_s'])} events/s, "
                f"{one['cpu_us_per_event']} us CPU/event ({one['enriched']}/{n}){extra}",
                flush=True,
            )
    results["runs"] = runs
    best = max((x for x in runs if x["arm"] == "one-hop"), key=lambda x: x["events_per_s"])
    results["targets"] = {
        "enricher_ge_10000_eps": {
            "target": ">= 10,000 events/s per process on a preloaded backlog",
            "events_per_s": best["events_per_s"],
            "cpu_us_per_event": best["cpu_us_per_event"],
            "met": best["events_per_s"] >= 10_000,
        }
    }
    base = [x["events_per_s"] for x in runs if x["arm"] == "baseline"]
    if base:
        results["targets"]["ratio_to_baseline"] = round(best["events_per_s"] / max(base), 2)
    finish(results, results_dir, name)
    plot(results, results_dir / f"{name}.png")
    return results


def plot(results: dict[str, Any], path: Path) -> None:
    """Events/s and CPU per event of each run, the arms side by side."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    runs = results["runs"]
    labels = [f"{r['arm']}\nround {r['round']}" for r in runs]
    colors = ["tab:blue" if r["arm"] == "one-hop" else "tab:gray" for r in runs]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    ax.bar(labels, [r["events_per_s"] for r in runs], color=colors)
    ax.axhline(10_000, color="tab:red", linestyle=":", label="target 10,000 events/s")
    ax.set_ylabel("events/s (one process)")
    ax.legend(fontsize=8)
    bx.bar(labels, [r["cpu_us_per_event"] for r in runs], color=colors)
    bx.set_ylabel("µs CPU per event")
    m = results["machine"]
    fig.suptitle(
        f"enricher on a preloaded backlog of {results['transactions']:,} transactions — "
        f"{m['nproc']} cores, load {m['loadavg_before'][0]:.2f} before",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
