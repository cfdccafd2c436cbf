"""``scorestream simulate``: simulated traffic to files (for training) or to Kafka at a rate.

To Kafka, transactions and labels are interleaved in simulated time (a label is sent when its
``labelled_at`` comes) and paced open-loop: event *i* is due at ``start + i / rate`` whatever
happened before, so a slow broker shows up as lag instead of silently lowering the rate.
"""

from __future__ import annotations

import argparse
import heapq
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from producers.simulator import Simulation, SimulatorConfig, simulate, write_jsonl, write_parquet
from schemas.events import Contract
from scorestream.kafka_config import producer_config
from scorestream.serde import EventProducer
from scorestream.settings import KafkaSettings
from scorestream.topics import REGISTRY

console = Console()


def interleaved(sim: Simulation, *, labels: bool = True) -> list[tuple[str, Contract]]:
    """``(stream, event)`` in simulated-time order: transactions by timestamp, labels by arrival."""
    txs = (
        (t.event.timestamp, 0, i, "transactions", t.event) for i, t in enumerate(sim.transactions)
    )
    lbls = ((lbl.labelled_at, 1, i, "labels", lbl) for i, lbl in enumerate(sim.labels) if labels)
    return [(stream, event) for _, _, _, stream, event in heapq.merge(txs, lbls)]


def send_to_kafka(
    items: list[tuple[str, Contract]],
    *,
    tenant: str,
    rate: float,
    kafka: KafkaSettings | None = None,
    show_progress: bool = True,
) -> dict[str, float]:
    """Publish at ``rate`` events/s (0 = as fast as possible); returns achieved figures."""
    topics = {name: REGISTRY.topic(name, tenant) for name in ("transactions", "labels")}
    producer = EventProducer(
        producer_config(kafka or KafkaSettings(), client_id="simulator"),
        source="scorestream/simulator",
    )
    max_lag = 0.0
    start = time.perf_counter()
    with Progress(
        TextColumn("[bold]simulate →[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>8.0f} ev/s  lag {task.fields[lag]:5.2f}s"),
        TimeRemainingColumn(),
        console=console,
        disable=not show_progress,
    ) as progress:
        task = progress.add_task(f"{topics['transactions']}", total=len(items), rate=0.0, lag=0.0)
        for i, (stream, event) in enumerate(items):
            if rate > 0:
                due = start + i / rate
                now = time.perf_counter()
                if due > now:
                    time.sleep(due - now)
                else:
                    max_lag = max(max_lag, now - due)
            producer.send(topics[stream], event)
            if i % 500 == 0:
                elapsed = time.perf_counter() - start
                progress.update(
                    task,
                    completed=i + 1,
                    rate=(i + 1) / elapsed if elapsed else 0.0,
                    lag=max(0.0, time.perf_counter() - (start + i / rate)) if rate > 0 else 0.0,
                )
        delivered = producer.flush(60)
        progress.update(task, completed=len(items))
    elapsed = time.perf_counter() - start
    return {
        "events": float(len(items)),
        "delivered": float(delivered),
        "seconds": elapsed,
        "events_per_s": len(items) / elapsed if elapsed else 0.0,
        "max_lag_s": max_lag,
    }


def cmd_simulate(args: argparse.Namespace) -> int:
    config = SimulatorConfig(
        seed=args.seed, tenant=args.tenant, n_customers=args.customers, days=args.days
    )
    t = time.perf_counter()
    sim = simulate(config)
    counts = ", ".join(f"{k} {v}" for k, v in sim.scenario_counts().items())
    console.print(
        f"simulated {len(sim.transactions):,} transactions and {len(sim.labels):,} labels over "
        f"{args.days} days in {time.perf_counter() - t:.1f}s; fraud rate {sim.fraud_rate():.3%} "
        f"({counts})"
    )
    if args.out:
        out = Path(args.out)
        files = write_parquet(sim, out) if args.format == "parquet" else write_jsonl(sim, out)
        console.print("wrote " + ", ".join(str(f) for f in files))
    if args.kafka:
        items = interleaved(sim, labels=not args.no_labels)
        if args.limit:
            items = items[: args.limit]
        figures = send_to_kafka(items, tenant=args.tenant, rate=args.rate)
        console.print(
            f"sent {int(figures['events']):,} events in {figures['seconds']:.1f}s "
            f"({figures['events_per_s']:,.0f}/s, target {args.rate:,.0f}/s, max lag "
            f"{figures['max_lag_s']:.2f}s)"
        )
    if not args.out and not args.kafka:
        console.print("nothing written: pass --out DIR and/or --kafka")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("simulate", help="simulated transactions + delayed labels (files or Kafka)")
    p.add_argument("--tenant", default="demo", help="tenant of the events and topics")
    p.add_argument("--seed", type=int, default=42, help="random seed (same seed, same events)")
    p.add_argument("--days", type=int, default=60, help="days of traffic to simulate")
    p.add_argument("--customers", type=int, default=2000, help="simulated card holders")
    p.add_argument("--out", help="directory for transactions + labels files")
    p.add_argument(
        "--format", choices=("jsonl", "parquet"), default="jsonl", help="file format for --out"
    )
    p.add_argument("--kafka", action="store_true", help="publish to <tenant>.transactions/labels")
    p.add_argument("--rate", type=float, default=1000.0, help="events/s to Kafka; 0 = unpaced")
    p.add_argument("--limit", type=int, default=0, help="send only the first N events")
    p.add_argument("--no-labels", action="store_true", help="send transactions only")
    p.set_defaults(func=cmd_simulate)
