"""End to end: every service of a fresh tenant, driven from outside like production traffic.

* **Sync**: ``POST /v1/transactions:score`` (gateway → transactions → enricher → worker →
  decision → reply partition → gateway) with the open-loop generator of :mod:`bench.loadgen` at
  rising constant rates until saturation: p50/p90/p99/p99.9 (from the intended send time) and
  the error rate per offered rate.
* **Async**: transactions published straight to ``<tenant>.transactions`` at a constant rate;
  decisions read with ``read_committed``; latency = decision arrival - the transaction's event
  time. Every hop stamps its output (``enriched_at``, ``predicted_at``, ``decided_at``), which
  splits the latency per hop: each hop's share includes the previous hop's commit and the
  read_committed visibility of it, plus this hop's batching wait and processing.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, TopicPartition

from bench.common import RESULTS, fmt, header, percentiles, process_cpu_s
from bench.loadgen import open_loop
from bench.stack import Stack, running_stack
from scorestream.kafka_config import common_config, producer_config
from scorestream.serde import EventProducer


@dataclass(frozen=True, slots=True)
class E2EPlan:
    smoke: bool
    rates: tuple[float, ...]
    step_s: float
    async_rates: tuple[float, ...]
    async_s: float
    deadline_s: float = 2.0
    """The gateway's sync deadline (``Prefer: wait=``); a 504 after it counts as an error."""
    saturated_error_rate: float = 0.05
    saturated_p50_ms: float = 1000.0


def make_plan(smoke_s: float | None) -> E2EPlan:
    if smoke_s is not None:
        step = max(1.0, smoke_s / 3)
        return E2EPlan(True, (20.0,), step, (20.0,), step)
    return E2EPlan(
        False,
        (10.0, 50.0, 100.0, 200.0, 300.0, 400.0, 600.0, 800.0, 1000.0),
        20.0,
        (200.0, 1000.0),
        60.0,
    )


def _bodies(tenant: str, n: int, seed: int) -> list[bytes]:
    from producers.generator import generate_transactions  # noqa: PLC0415

    now = datetime.now(UTC)
    return [
        e.model_copy(update={"transaction_id": f"b-{uuid.uuid4().hex[:16]}", "timestamp": now})
        .model_dump_json()
        .encode()
        for e in generate_transactions(n, tenant=tenant, seed=seed)
    ]


def sync_sweep(stack: Stack, plan: E2EPlan) -> list[dict[str, Any]]:
    url = f"{stack.base_url}/v1/transactions:score"
    out = []
    warm = _bodies(stack.tenant, 20, seed=1)
    open_loop(url, warm, 10.0, timeout_s=plan.deadline_s + 5)  # warm the whole chain
    for i, rate in enumerate(plan.rates):
        bodies = _bodies(stack.tenant, max(1, int(rate * plan.step_s)), seed=100 + i)
        cpu_before = {name: process_cpu_s(pid) for name, pid in stack.pids.items()}
        step = open_loop(
            url,
            bodies,
            rate,
            timeout_s=plan.deadline_s + 5,
            headers={"prefer": f"wait={plan.deadline_s:g}"},
        ).summary()
        # every service's CPU over the step (all its threads, librdkafka's included) per request
        step["cpu_ms_per_request"] = {
            name: round((process_cpu_s(pid) - cpu_before[name]) * 1000 / max(1, step["sent"]), 3)
            for name, pid in stack.pids.items()
        }
        out.append(step)
        lat = step["latency_ms"]
        print(
            f"    sync {rate:>6.0f} req/s: p50 {fmt(lat['p50'], 1)} p90 {fmt(lat['p90'], 1)} "
            f"p99 {fmt(lat['p99'], 1)} p99.9 {fmt(lat['p99_9'], 1)} ms, errors "
            f"{step['error_rate']:.1%}, achieved {fmt(step['achieved_rate'])}/s, CPU per request "
            f"{sum(step['cpu_ms_per_request'].values()):.2f} ms "
            f"(gateway {step['cpu_ms_per_request'].get('gateway', 0):.2f})",
            flush=True,
        )
        if step["error_rate"] > plan.saturated_error_rate or (
            (lat["p50"] or 0) > plan.saturated_p50_ms
        ):
            step["saturated"] = True
            print(f"    saturated at {rate:.0f} req/s: stopping the sweep", flush=True)
            break
    return out


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class DecisionReader(threading.Thread):
    """Reads enriched, predictions and decisions (read_committed) from their end; keeps the
    per-hop timestamps of every transaction id it is told to expect."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(name="decision-reader", daemon=True)
        self.consumer = Consumer(
            common_config(stack.kafka, client_id="bench-e2e-reader")
            | {
                "group.id": f"bench-e2e-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": 5,
            }
        )
        topics = [stack.topic(s) for s in ("transactions.enriched", "predictions", "decisions")]
        self.decisions_topic = topics[2]
        md = self.consumer.list_topics(timeout=15).topics
        self.consumer.assign(
            [TopicPartition(t, p, OFFSET_END) for t in topics for p in md[t].partitions]
        )
        self.halt = threading.Event()
        self.positioned = threading.Event()
        self.stamps: dict[str, dict[str, float]] = {}
        self.arrivals: dict[str, float] = {}

    def run(self) -> None:
        try:
            while not self.halt.is_set():
                # block for the first record only, then take what is already fetched: a
                # consume(1000, timeout) would hold every record back until the timeout
                msgs = self.consumer.consume(num_messages=1, timeout=0.05)
                if msgs:
                    msgs += self.consumer.consume(num_messages=1000, timeout=0)
                now = time.time()
                self.positioned.set()
                for m in msgs:
                    if m.error() is not None:
                        continue
                    body = json.loads(m.value() or b"{}")
                    tx = body.get("transaction_id") or body.get("transaction", {}).get(
                        "transaction_id"
                    )
                    if not tx:
                        continue
                    st = self.stamps.setdefault(tx, {})
                    for k in ("enriched_at", "predicted_at", "decided_at", "event_time"):
                        if k in body:
                            st[k] = _ts(body[k])
                    if m.topic() == self.decisions_topic:
                        self.arrivals[tx] = now
        finally:
            self.consumer.close()


def async_path(stack: Stack, rate: float, seconds: float) -> dict[str, Any]:
    from producers.generator import generate_transactions  # noqa: PLC0415

    reader = DecisionReader(stack)
    reader.start()
    reader.positioned.wait(30)
    time.sleep(1.0)  # the OFFSET_END positions are resolved before the first record
    n = max(1, int(rate * seconds))
    events = list(generate_transactions(n, tenant=stack.tenant, seed=int(time.time())))
    producer = EventProducer(
        producer_config(stack.kafka, client_id="bench-e2e-async") | {"linger.ms": 0},
        source="bench/e2e",
    )
    sent: dict[str, float] = {}
    t0 = time.perf_counter()
    topic = stack.topic("transactions")
    for i, e in enumerate(events):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        now = datetime.now(UTC)
        tx = f"a-{uuid.uuid4().hex[:16]}"
        producer.send(topic, e.model_copy(update={"transaction_id": tx, "timestamp": now}))
        sent[tx] = now.timestamp()
    producer.flush(30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(set(sent) & set(reader.arrivals)) < len(sent):
        time.sleep(0.2)
    reader.halt.set()
    reader.join(10)
    # without the audit service (bench latency's request path only) there is nothing to wait for
    audited = count_audited(stack, set(sent), timeout_s=60) if "audit" in stack.services else None
    total: list[float] = []
    hops: dict[str, list[float]] = {"enricher": [], "worker": [], "decision": [], "visible": []}
    hop_keys = (
        ("enricher", "event_time", "enriched_at"),
        ("worker", "enriched_at", "predicted_at"),
        ("decision", "predicted_at", "decided_at"),
    )
    for tx, ts in sent.items():
        arrived = reader.arrivals.get(tx)
        if arrived is None:
            continue
        total.append((arrived - ts) * 1000)
        st = reader.stamps.get(tx, {})
        st.setdefault("event_time", ts)
        for name, a, b in hop_keys:
            if a in st and b in st:
                hops[name].append((st[b] - st[a]) * 1000)
        if "decided_at" in st:
            hops["visible"].append((arrived - st["decided_at"]) * 1000)
    return {
        "rate": rate,
        "seconds": seconds,
        "published": len(sent),
        "decided": len(total),
        "missing": len(sent) - len(total),
        "audited": audited,
        "audit_missing": None if audited is None else len(sent) - audited,
        "event_to_decision_ms": percentiles(total),
        "per_hop_ms": {k: percentiles(v) for k, v in hops.items()},
        "hop_meaning": {
            "enricher": "enriched_at - event time (publish, read_committed visibility, enricher "
            "batching wait, feature computation)",
            "worker": "predicted_at - enriched_at (enricher commit + visibility, worker batching "
            "wait, decode, ONNX)",
            "decision": "decided_at - predicted_at (worker commit + visibility, decision "
            "batching wait, policy)",
            "visible": "decision arrival at a read_committed reader - decided_at (decision "
            "commit + visibility + the reader's fetch)",
        },
    }


def count_audited(stack: Stack, ids: set[str], *, timeout_s: float) -> int:
    """How many of ``ids`` have their audit record (read_committed), waiting up to
    ``timeout_s`` for the audit service to catch up."""
    topic = stack.topic("audit")
    consumer = Consumer(
        common_config(stack.kafka, client_id="bench-e2e-audit")
        | {
            "group.id": f"bench-e2e-audit-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([topic])
    seen: set[str] = set()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and len(seen) < len(ids):
            for m in consumer.consume(num_messages=1000, timeout=0.5):
                if m.error() is not None:
                    continue
                tx = json.loads(m.value() or b"{}").get("transaction_id")
                if tx in ids:
                    seen.add(tx)
    finally:
        consumer.close()
    return len(seen)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 5.2), dpi=110)
    steps = results["sync"]
    xs = [s["offered_rate"] for s in steps]
    for key, style in (("p50", "-o"), ("p90", "-s"), ("p99", "-^"), ("p99_9", "-v")):
        ax.plot(xs, [s["latency_ms"][key] for s in steps], style, label=key.replace("_", "."))
    ax.axhline(100, color="tab:red", linestyle=":", label="target p99 100 ms (at 200 req/s)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered load (requests/s, open loop)")
    ax.set_ylabel("latency from intended send time (ms)")
    ax.set_title("sync scoring POST /v1/transactions:score", fontsize=10)
    ax2 = ax.twinx()
    ax2.plot(xs, [100 * s["error_rate"] for s in steps], "k--", alpha=0.5, label="errors %")
    ax2.set_ylabel("errors (%)")
    ax.legend(loc="upper left", fontsize=8)
    ax2.legend(loc="lower right", fontsize=8)
    ax.grid(visible=True, which="both", alpha=0.25)
    runs = results["async"]
    names = ["enricher", "worker", "decision", "visible"]
    width = 0.8 / max(1, len(runs))
    for i, run in enumerate(runs):
        vals = [run["per_hop_ms"][n]["p50"] or 0 for n in names]
        pos = [j + i * width for j in range(len(names))]
        bx.bar(pos, vals, width, label=f"{run['rate']:.0f} ev/s: p50 per hop")
    bx.set_xticks([j + width * (len(runs) - 1) / 2 for j in range(len(names))], names)
    bx.set_ylabel("ms (p50)")
    bx.set_title("async path: event → decision, p50 per hop (from the events' stamps)", fontsize=10)
    bx.legend(fontsize=8)
    m = results["machine"]
    fig.suptitle(
        f"scorestream end to end — {m['cpu_model']}, {m['nproc']} cores, load "
        f"{m['loadavg_before'][0]:.2f} before, {m.get('loadavg_after', ['?'])[0]} after (1-min)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run(
    smoke_s: float | None,
    results_dir: Path = RESULTS,
    name: str = "e2e",
    env: dict[str, str] | None = None,
    command: str = "scorestream bench e2e",
) -> dict[str, Any]:
    from bench.common import finish  # noqa: PLC0415

    plan = make_plan(smoke_s)
    results = header(name, command, plan=asdict(plan), service_env=env or {})
    t0 = time.perf_counter()
    with running_stack(env=env) as stack:
        results["tenant"] = stack.tenant
        results["model"] = stack.model
        results["settings"] = _settings_snapshot(env or {})
        print("  sync sweep (open loop)", flush=True)
        results["sync"] = sync_sweep(stack, plan)
        results["async"] = []
        for rate in plan.async_rates:
            r = async_path(stack, rate, plan.async_s)
            e2d = r["event_to_decision_ms"]
            print(
                f"    async {rate:>5.0f} ev/s: event→decision p50 {fmt(e2d['p50'], 1)} p99 "
                f"{fmt(e2d['p99'], 1)} ms ({r['decided']}/{r['published']} decided, "
                f"{r['audited']} audited); p50 per hop "
                + ", ".join(f"{k} {fmt(v['p50'], 1)}" for k, v in r["per_hop_ms"].items()),
                flush=True,
            )
            results["async"].append(r)
    results["elapsed_s"] = round(time.perf_counter() - t0, 1)
    results["targets"] = _targets(results)
    finish(results, results_dir, name)
    plot(results, results_dir / f"{name}.png")
    return results


def _settings_snapshot(env: dict[str, str]) -> dict[str, Any]:
    from producers.gateway import GatewaySettings  # noqa: PLC0415
    from scorestream.settings import ProcessingSettings  # noqa: PLC0415

    fields = ProcessingSettings.model_fields
    return {
        "processing_defaults": {
            k: fields[k].default for k in ("max_batch", "max_wait_ms", "delivery")
        },
        "gateway_defaults": {
            k: GatewaySettings.model_fields[k].default
            for k in ("deadline_s", "linger_ms", "max_in_flight")
        },
        "env_overrides": env,
    }


def _targets(results: dict[str, Any]) -> dict[str, Any]:
    """Issue 14's targets: sync at 200 req/s p50 ≤ 40 ms, p99 ≤ 100 ms, no errors (and the
    highest rate that keeps p99 ≤ 100 ms); async 1,000 tx/s for 60 s, event→decision p99 ≤
    500 ms, nothing lost."""
    steps: Sequence[dict[str, Any]] = results["sync"]
    at_200 = next((s for s in steps if s["offered_rate"] == 200), None)
    lat = at_200["latency_ms"] if at_200 else {}
    ok = [
        s["offered_rate"]
        for s in steps
        if s["error_rate"] == 0 and (s["latency_ms"]["p99"] or 1e9) <= 100
    ]
    fast = next((r for r in results["async"] if r["rate"] >= 1000), None)
    e2d = fast["event_to_decision_ms"] if fast else {}
    return {
        "sync_200rps": {
            "target": "p50 <= 40 ms, p99 <= 100 ms, 0 errors",
            "p50_ms": lat.get("p50"),
            "p99_ms": lat.get("p99"),
            "error_rate": at_200["error_rate"] if at_200 else None,
            "met": bool(
                at_200
                and at_200["error_rate"] == 0
                and (lat.get("p50") or 1e9) <= 40
                and (lat.get("p99") or 1e9) <= 100
            ),
        },
        "sync_highest_rate_p99_le_100ms": max(ok) if ok else None,
        "async_1000tps_60s": {
            "target": "event->decision p99 <= 500 ms, nothing lost, every service running",
            "p99_ms": e2d.get("p99"),
            "missing": fast["missing"] if fast else None,
            "audited": fast.get("audited") if fast else None,
            "met": bool(
                fast
                and fast["missing"] == 0
                and fast.get("audit_missing") == 0
                and (e2d.get("p99") or 1e9) <= 500
            ),
        },
    }
