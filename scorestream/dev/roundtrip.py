"""The demo: broker, topics for tenant ``demo``, generated transactions, read back as a table."""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition
from rich.console import Console
from rich.table import Table

from producers.generator import generate_transactions
from schemas.cloudevents import Envelope
from schemas.errors import DecodeError
from schemas.events import TransactionEvent
from scorestream.admin import Action, ensure_tenant_topics
from scorestream.dev.broker import LocalBroker
from scorestream.errors import KafkaClientError
from scorestream.kafka_config import consumer_config, producer_config
from scorestream.reader import watermarks
from scorestream.serde import EventProducer, decode_message
from scorestream.settings import KafkaSettings
from scorestream.topics import REGISTRY


@dataclass(frozen=True, slots=True)
class ReadBack:
    envelope: Envelope[TransactionEvent]
    partition: int
    offset: int


def _money(minor: int, currency: str) -> str:
    return f"{minor / 100:,.2f} {currency}"


def run_demo(*, tenant: str = "demo", count: int = 300, seed: int | None = None) -> int:
    console = Console(width=None if Console().is_terminal else 132, soft_wrap=True)
    console.rule("[bold]scorestream demo")
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        LocalBroker().start(progress=lambda m: console.print(f"[dim]broker:[/] {m}"))
    kafka = KafkaSettings()
    results = ensure_tenant_topics(tenant, kafka=kafka)
    created = sum(r.action is Action.CREATED for r in results)
    console.print(
        f"topics for tenant [bold]{tenant}[/]: {len(results)} ready ({created} created now)"
    )
    topic = REGISTRY.topic("transactions", tenant)

    consumer = Consumer(consumer_config(kafka, group_id=f"demo-readback-{uuid.uuid4().hex[:8]}"))
    md = consumer.list_topics(topic, timeout=10)
    partitions = sorted(md.topics[topic].partitions)
    start_offsets = []
    for p in partitions:
        _, high = watermarks(consumer, TopicPartition(topic, p))
        start_offsets.append(TopicPartition(topic, p, high))

    run_seed = seed if seed is not None else int(time.time())
    events = list(generate_transactions(count, tenant=tenant, seed=run_seed))
    t0 = time.perf_counter()
    with EventProducer(producer_config(kafka, client_id="demo"), source="scorestream/demo") as prod:
        for event in events:
            prod.send(topic, event)
    produce_s = time.perf_counter() - t0
    console.print(
        f"published [bold]{count}[/] transactions to [cyan]{topic}[/] in {produce_s * 1000:.0f} ms"
        f" ({count / max(produce_s, 1e-9):,.0f} events/s, acks=all, idempotent)"
    )

    consumer.assign(start_offsets)
    read: list[ReadBack] = []
    bad = 0
    deadline = time.monotonic() + 30
    t1 = time.perf_counter()
    while len(read) + bad < count and time.monotonic() < deadline:
        for msg in consumer.consume(num_messages=500, timeout=0.5):
            if msg.error():
                raise KafkaClientError(f"consume failed: {msg.error()}")
            try:
                env = decode_message(msg, accept=[TransactionEvent])
            except DecodeError:
                bad += 1
                continue
            read.append(ReadBack(env, msg.partition() or 0, msg.offset() or 0))
    consumer.close()
    read_s = time.perf_counter() - t1
    _print_tables(console, read, topic)
    sent = {e.transaction_id: e for e in events}
    got = {r.envelope.event.transaction_id: r.envelope.event for r in read}
    ok = sent == got and bad == 0
    verdict = "[green]all round-tripped, decoded equal to sent[/]" if ok else "[red]MISMATCH[/]"
    console.print(
        f"read back {len(read)} of {count} in {read_s * 1000:.0f} ms (read_committed): {verdict}"
    )
    console.print(
        "\nTry the genuine Kafka CLI on the same data:\n"
        f"  scorestream kafka kafka-console-consumer --topic {topic} --from-beginning "
        "--max-messages 3 --property print.key=true --property print.headers=true\n"
        f"  scorestream kafka kafka-get-offsets --topic {topic}\n"
        "  scorestream kafka kafka-topics --list"
    )
    return 0 if ok else 1


def _print_tables(console: Console, read: list[ReadBack], topic: str) -> None:
    read.sort(key=lambda r: r.envelope.event.timestamp)
    table = Table(title=f"latest transactions on {topic}", title_justify="left")
    for col in ("event time (UTC)", "transaction", "account", "merchant", "amount", "channel"):
        table.add_column(col)
    table.add_column("country")
    table.add_column("p/offset", justify="right")
    for r in read[-12:]:
        e = r.envelope.event
        cross = " ✈" if e.card_country and e.card_country != e.country else ""
        table.add_row(
            e.timestamp.strftime("%Y-%m-%d %H:%M:%S"),
            e.transaction_id,
            e.account_id,
            e.merchant_id,
            _money(e.amount_minor, e.currency),
            e.channel.value,
            e.country + cross,
            f"{r.partition}/{r.offset}",
        )
    console.print(table)

    by_channel: Counter[str] = Counter()
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    per_partition: Counter[int] = Counter()
    accounts_per_partition: dict[str, set[int]] = defaultdict(set)
    for r in read:
        e = r.envelope.event
        by_channel[e.channel.value] += 1
        totals[e.channel.value][e.currency] += e.amount_minor
        per_partition[r.partition] += 1
        accounts_per_partition[e.account_id].add(r.partition)
    summary = Table(title="by channel", title_justify="left")
    summary.add_column("channel")
    summary.add_column("events", justify="right")
    summary.add_column("volume", justify="right")
    for channel, n in by_channel.most_common():
        volume = ", ".join(_money(v, c) for c, v in sorted(totals[channel].items()))
        summary.add_row(channel, str(n), volume)
    console.print(summary)
    spread = " ".join(f"p{p}={n}" for p, n in sorted(per_partition.items()))
    one_partition = all(len(p) == 1 for p in accounts_per_partition.values())
    console.print(
        f"partitions: {spread}; every account on exactly one partition (key = account_id): "
        f"{'yes' if one_partition else 'NO'}"
    )
    if read:
        env = read[-1].envelope
        console.print(
            f"CloudEvents headers of the last record: ce_type={env.type} ce_id={env.id} "
            f"ce_source={env.source} ce_time={env.time.isoformat()}"
        )
