"""Helpers for decision / notifier integration tests: events, service processes, readers."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from confluent_kafka import Consumer, Message

from schemas.events import (
    Contract,
    DecisionEvent,
    ModelAlias,
    Outcome,
    PredictionEvent,
    PredictionTimings,
)
from scorestream.kafka_config import producer_config
from scorestream.serde import EventProducer, decode_message
from scorestream.settings import KafkaSettings
from tests.worker_support import TRACEPARENT, Tenant

C = TypeVar("C", bound=Contract)


def predictions(tenant: str, n: int, *, seed: int = 1, prefix: str = "tx") -> list[PredictionEvent]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    out = []
    for i in range(n):
        out.append(
            PredictionEvent(
                transaction_id=f"{prefix}-{seed}-{i:05d}",
                tenant_id=tenant,
                account_id=f"acc-{rng.randrange(50):03d}",
                score=round(rng.random(), 4),
                model_name="fraud-gbt",
                model_version="1" if i % 10 == 0 else "2",
                model_sha256="ab" * 32,
                feature_spec_hash="0123456789abcdef",
                alias=ModelAlias.CHAMPION,
                event_time=now - timedelta(seconds=rng.randrange(3600)),
                predicted_at=now,
                timings=PredictionTimings(queue_ms=1.0, inference_ms=0.2, batch_size=1),
            )
        )
    return out


def decisions(tenant: str, n: int, *, seed: int = 1) -> list[DecisionEvent]:
    outcomes = (Outcome.APPROVE, Outcome.APPROVE, Outcome.REVIEW, Outcome.DECLINE)
    now = datetime.now(UTC)
    return [
        DecisionEvent(
            transaction_id=f"dx-{seed}-{i:05d}",
            tenant_id=tenant,
            account_id=f"acc-{i % 37:03d}",
            outcome=outcomes[i % len(outcomes)],
            score=0.25 * (i % 4),
            model_name="fraud-gbt",
            model_version="2",
            policy_version="p-1",
            reasons=("threshold:test",),
            event_time=now,
            decided_at=now,
        )
        for i in range(n)
    ]


def trace_for(i: int) -> dict[str, str]:
    return {"traceparent": TRACEPARENT.format(span=f"{i + 1:016x}")}


def publish(
    topic: str,
    events: Sequence[Contract],
    *,
    extensions: Mapping[int, Mapping[str, str]] | None = None,
) -> None:
    """Publish ``events`` with a distinct traceparent each; ``extensions`` by event index."""
    producer = EventProducer(producer_config(KafkaSettings()), source="tests/upstream")
    for i, event in enumerate(events):
        producer.send(topic, event, trace=trace_for(i), extensions=(extensions or {}).get(i))
    producer.flush(60)


def start_service(
    tenant: Tenant, module: str, instance: str, *args: str, **env: str
) -> subprocess.Popen[bytes]:
    """``python -m <module> --tenant T --instance-id I ...`` with its log beside the tenant."""
    log = (tenant.repo_dir.parent / f"{instance}.log").open("ab")
    prefix = "SCORESTREAM_" + module.rsplit(".", 1)[-1].upper() + "_"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            module,
            "--tenant",
            tenant.name,
            "--instance-id",
            instance,
            "--max-wait-ms",
            "20",
            *args,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=os.environ | {prefix + "SESSION_TIMEOUT_MS": "6000", prefix + "HEALTH_PORT": "0"} | env,
    )
    log.close()
    tenant.procs.append(proc)
    return proc


def read_events(
    bootstrap: str,
    topic: str,
    expected: int,
    contract: type[C],
    *,
    timeout: float = 60,
    settle: float = 0.0,
) -> list[tuple[Message, C]]:
    """Committed records of ``topic`` from the start: ``expected`` of them (or what arrived
    before ``timeout``), then whatever more arrives within ``settle`` seconds (to catch extras)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-reader-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([topic])
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expected and time.monotonic() < deadline:
            out += _consume(consumer)
        settled = time.monotonic() + settle
        while time.monotonic() < settled:
            out += _consume(consumer)
    finally:
        consumer.close()
    return [(m, decode_message(m, accept=[contract]).event) for m in out]


def _consume(consumer: Consumer) -> list[Message]:
    batch = consumer.consume(num_messages=500, timeout=0.2)
    for msg in batch:
        err = msg.error()
        if err is not None:
            raise AssertionError(f"consume error: {err}")
    return batch


def headers(msg: Message) -> dict[str, str]:
    raw = msg.headers() or []
    items = raw.items() if isinstance(raw, dict) else raw
    return {k: v.decode() if isinstance(v, bytes) else (v or "") for k, v in items}
