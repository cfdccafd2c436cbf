"""Traffic for ``scorestream chaos``: simulated events, deliberately bad records, the sender.

The bad records are produced raw (bypassing every encoder) at seeded positions of the stream, each
with a unique key, so the checker knows exactly which records the DLQs must hold and nothing else.
"""

from __future__ import annotations

import json
import random
import threading
import time
from datetime import datetime

from confluent_kafka import Producer

from schemas.cloudevents import encode
from schemas.events import Contract, LabelEvent, TransactionEvent
from scorestream.chaos.check import Inputs
from scorestream.kafka_config import producer_config
from scorestream.serde import EventProducer
from scorestream.settings import KafkaSettings
from scorestream.topics import REGISTRY

BAD_KINDS = ("random-bytes", "truncated-json", "no-headers", "unknown-ce-type", "negative-amount")


def simulated(events: int, seed: int, tenant: str) -> tuple[list[tuple[str, Contract]], Inputs]:
    from producers.simulate_cli import interleaved  # noqa: PLC0415
    from producers.simulator import SimulatorConfig, simulate  # noqa: PLC0415

    customers = max(100, min(2000, events // 50))
    days = max(2, round(events / (customers * 2.0)) + 1)
    sim = simulate(
        SimulatorConfig(
            seed=seed, tenant=tenant, n_customers=customers, n_terminals=2 * customers, days=days
        )
    )
    items: list[tuple[str, Contract]] = []
    inputs = Inputs()
    for stream, event in interleaved(sim):
        if isinstance(event, TransactionEvent):
            if len(inputs.order) >= events:
                break
            inputs.order[event.transaction_id] = (event.account_id, len(items))
            inputs.merchants[event.transaction_id] = (event.merchant_id, _ms(event.timestamp))
        else:
            inputs.labels += 1
            if isinstance(event, LabelEvent) and event.is_fraud:
                inputs.frauds[event.transaction_id] = (
                    event.merchant_id,
                    _ms(event.transaction_time),
                )
        items.append((stream, event))
    return items, inputs


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


Headers = list[tuple[str, str | bytes | None]]


def bad_record(kind: str, key: str, tenant: str) -> tuple[bytes, bytes, Headers]:
    """A deliberately broken transaction record: (key, value, headers)."""
    from producers.generator import generate_transactions  # noqa: PLC0415

    sample = next(iter(generate_transactions(1, tenant=tenant, seed=len(key))))
    event = sample.model_copy(update={"transaction_id": key, "account_id": key})
    message = encode(event, source="scorestream/chaos")
    headers: Headers = [
        (k, v if isinstance(v, bytes) else str(v).encode()) for k, v in message.headers
    ]
    value = message.value
    rng = random.Random(key)  # noqa: S311  (reproducible damage)
    if kind == "random-bytes":
        value = rng.randbytes(rng.randint(1, 300))
    elif kind == "truncated-json":
        value = value[: rng.randint(1, len(value) - 1)]
    elif kind == "no-headers":
        headers = []
    elif kind == "unknown-ce-type":
        headers = [(k, b"scorestream.bogus.v1" if k == "ce_type" else v) for k, v in headers]
    elif kind == "negative-amount":
        data = json.loads(value)
        data["amount_minor"] = -5
        value = json.dumps(data).encode()
    return key.encode(), value, headers


class Sender(threading.Thread):
    """Sends the traffic open loop at ``rate`` and the bad records at seeded positions."""

    def __init__(
        self,
        items: list[tuple[str, Contract]],
        inputs: Inputs,
        *,
        tenant: str,
        rate: float,
        bad: int,
        seed: int,
    ) -> None:
        super().__init__(name="chaos-sender", daemon=True)
        self.items, self.inputs, self.tenant, self.rate = items, inputs, tenant, rate
        rng = random.Random(seed + 1)  # noqa: S311  (replayable positions)
        self.bad_at: dict[int, str] = {}
        for i in range(bad):
            at = rng.randrange(len(items))
            key = f"chaos-bad-{i:05d}"
            self.bad_at.setdefault(at, key)
        for key in self.bad_at.values():
            inputs.bad[key] = BAD_KINDS[int(key.rsplit("-", 1)[1]) % len(BAD_KINDS)]
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # noqa: BLE001  (reported by the runner)
            self.error = exc

    def _run(self) -> None:
        conf = producer_config(KafkaSettings(), client_id="chaos-traffic")
        producer = EventProducer(conf, source="scorestream/simulator")
        raw = Producer(conf)
        topic = {s: REGISTRY.topic(s, self.tenant) for s in ("transactions", "labels")}
        start = time.perf_counter()
        for i, (stream, event) in enumerate(self.items):
            delay = start + i / self.rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            producer.send(topic[stream], event)
            key = self.bad_at.get(i)
            if key is not None:
                k, v, h = bad_record(self.inputs.bad[key], key, self.tenant)
                raw.produce(topic["transactions"], key=k, value=v, headers=h)
                raw.poll(0)
            self.sent = i + 1
        producer.flush(300)
        if raw.flush(300):
            raise RuntimeError("bad records not acknowledged")
