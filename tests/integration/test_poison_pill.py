"""Issue 15 item 2: one oversize record must not stop a tenant.

A record of 1,000,001 to 1,048,588 bytes is accepted by the broker (the topics'
``max.message.bytes``) but its copy cannot be a dead letter (librdkafka's ``message.max.bytes``
and the ``dlq.*`` headers on top): before the fix the enricher, the worker, the decision
service, the audit and the monitor crash-looped on it. Here each runs as a real process; an
oversize record goes into each input, then a normal transaction on the same partition. Every
process keeps running, the transaction is enriched, scored, decided and audited (and the
monitor counts its prediction), and each DLQ holds a *pointer* per consuming service,
read_committed, with the reason and the original's coordinates.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Message, Producer

from schemas.cloudevents import encode
from schemas.events import AuditRecord, DecisionEvent, EnrichedTransaction
from scorestream.admin import ensure_tenant_topics
from scorestream.dev.supervisor import Supervisor
from scorestream.dev.up import service_specs
from scorestream.kafka_config import producer_config
from scorestream.partitioning import partition_for
from scorestream.serde import EventProducer
from scorestream.settings import KafkaSettings
from scorestream.topics import REGISTRY
from tests.consumer_support import headers, read_events
from tests.factories import transaction
from tests.kafka_helpers import read_messages
from tests.worker_support import Tenant, http_get, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SERVICES = ("enricher", "worker", "decision", "audit", "monitor")
POISON_BYTES = 1_047_500
"""Value size: the record is accepted by the broker (1,048,588) but larger than librdkafka's
default ``message.max.bytes`` (1,000,000) and too large to be copied with the dead-letter
headers under the same limit (smaller ones, up to ~1,044,000 bytes, are copied whole)."""
ACCOUNT = "acct-poison"


@pytest.fixture
def stack(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Tenant, Supervisor]]:
    tenant = Tenant(f"p{uuid.uuid4().hex[:9]}", tmp_path / "models")
    monkeypatch.setenv("SCORESTREAM_MODELS_URL", str(tenant.repo_dir))
    monkeypatch.setenv("SCORESTREAM_AUDIT_JOIN_TIMEOUT_S", "3")
    ensure_tenant_topics(tenant.name)
    tenant.publish_model("1")
    tenant.promote("1")
    supervisor = Supervisor(tenant.name, run_dir=tmp_path / "run")
    specs = [s for s in service_specs(tenant.name) if s.name in SERVICES]
    assert sorted(s.name for s in specs) == sorted(SERVICES)
    supervisor.start(specs)
    try:
        ports = supervisor.ports()
        wait_until(
            lambda: all(http_get(p, "/readyz")[0] == 200 for p in ports.values()),
            180,
            "every service ready",
            1.0,
        )
        yield tenant, supervisor
    finally:
        supervisor.stop()


def _poison(bootstrap: str, topics: list[str]) -> dict[str, tuple[int, int]]:
    """One oversize record per topic, keyed by the account the normal transaction uses (same
    partition), produced as any Java client may (limit 1,048,588, uncompressed). Returns
    topic → (partition, offset)."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "partitioner": "murmur2_random",
            "message.max.bytes": 1_048_588,
            "compression.type": "none",
        }
    )
    where: dict[str, tuple[int, int]] = {}

    def delivered(err: KafkaError | None, msg: Message) -> None:
        assert err is None, err
        where[msg.topic() or ""] = (msg.partition() or 0, msg.offset() or 0)

    ce = encode(transaction(account_id=ACCOUNT), source="tests/poison").headers
    for topic in topics:
        producer.produce(
            topic,
            key=ACCOUNT.encode(),
            value=os.urandom(POISON_BYTES),
            headers=[*ce, ("x-poison", b"1")],
            on_delivery=delivered,
        )
    assert producer.flush(30) == 0
    assert len(where) == len(topics)
    return where


def test_an_oversize_record_becomes_a_pointer_and_every_service_keeps_running(
    kafka_bootstrap: str, stack: tuple[Tenant, Supervisor]
) -> None:
    tenant, supervisor = stack
    pids = supervisor.pids()
    inputs = [tenant.topic(s) for s in ("transactions", "transactions.enriched", "predictions")]
    where = _poison(kafka_bootstrap, inputs)

    good = transaction(
        tenant_id=tenant.name,
        account_id=ACCOUNT,
        transaction_id=f"good-{uuid.uuid4().hex[:8]}",
        timestamp=datetime.now(UTC),
    )
    with EventProducer(producer_config(KafkaSettings()), source="tests/poison") as producer:
        producer.send(tenant.topic("transactions"), good)

    # the normal record went through every hop after the poison
    decisions = read_events(
        kafka_bootstrap, tenant.topic("decisions"), 1, DecisionEvent, timeout=90
    )
    assert [d.transaction_id for _, d in decisions] == [good.transaction_id]
    audits = read_events(kafka_bootstrap, tenant.topic("audit"), 1, AuditRecord, timeout=60)
    assert [a.transaction_id for _, a in audits] == [good.transaction_id]
    monitor_port = supervisor.ports()["monitor"]

    def monitor_counted() -> bool:
        text = http_get(monitor_port, "/metrics")[1]
        return any(
            line.startswith("scorestream_monitor_predictions{")
            and f'tenant="{tenant.name}"' in line
            and line.endswith(" 1.0")
            for line in text.splitlines()
        )

    wait_until(monitor_counted, 30, "the monitor counts the normal prediction")

    # one pointer per consuming service, with the reason and the original's coordinates
    expected = {
        "transactions": {"enricher"},
        "transactions.enriched": {"worker", "audit"},
        "predictions": {"decision", "audit", "monitor"},
    }
    for stream, services in expected.items():
        topic = tenant.topic(stream)
        dlq = read_messages(kafka_bootstrap, tenant.topic(f"{stream}.dlq"), len(services), 60)
        got = {}
        for msg in dlq:
            h = headers(msg)
            got[h["dlq.service"]] = h
            assert h.get("dlq.pointer") == "true", (msg.value() or b"")[:100]
            assert h["dlq.reason"], h
            assert h["dlq.source.topic"] == topic
            partition, offset = where[topic]
            assert (int(h["dlq.source.partition"]), int(h["dlq.source.offset"])) == where[topic]
            assert int(h["dlq.source.size"]) > POISON_BYTES
            assert h["x-poison"] == "1"  # the original headers that fit are kept
            pointer = json.loads(msg.value() or b"")
            assert (pointer["topic"], pointer["partition"], pointer["offset"]) == (
                topic,
                partition,
                offset,
            )
            assert pointer["value_bytes"] == POISON_BYTES
            assert pointer["reason"] == h["dlq.reason"]
        assert set(got) == services, (stream, sorted(got))

    # nobody crashed or was restarted
    assert supervisor.dead() == {}, {n: _tail(supervisor, n) for n in supervisor.dead()}
    assert supervisor.pids() == pids


def _tail(supervisor: Supervisor, name: str) -> str:
    return (supervisor.dir / f"{name}.log").read_text(errors="replace")[-3000:]


def test_an_oversize_valid_transaction_on_the_wrong_partition_does_not_stop_the_enricher(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A decodable transaction padded to the largest record the broker accepts (unknown JSON
    fields are ignored), on a partition its key does not hash to: the enricher moves such a
    record with a header added, so the copy is larger than any topic accepts and the batch
    failed (MSG_SIZE_TOO_LARGE from librdkafka, or from the broker at commit: it stopped the
    enricher either way). Now its dead letter (a pointer) is written instead, and the next
    transaction is enriched."""
    tenant = f"p{uuid.uuid4().hex[:9]}"
    ensure_tenant_topics(tenant)
    tx_topic = REGISTRY.topic("transactions", tenant)
    home = partition_for(ACCOUNT.encode(), 6)
    now = datetime.now(UTC)
    padded = transaction(tenant_id=tenant, account_id=ACCOUNT, transaction_id="big", timestamp=now)
    m = encode(padded, source="tests/poison")
    # the largest record the broker accepts: a v2 batch of one record with a 1 MB value is
    # 73 bytes + key + value + 2 + name + value per header (checked against Kafka 4.4)
    room = 1_048_588 - 73 - len(m.key) - sum(2 + len(k) + len(v or b"") for k, v in m.headers)
    body = json.loads(m.value) | {"padding": ""}
    pad = room - len(json.dumps(body).encode())
    value = json.dumps(body | {"padding": os.urandom(pad // 2).hex() + "p" * (pad % 2)}).encode()
    assert len(value) == room
    producer = Producer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "message.max.bytes": 1_048_588,
            "compression.type": "none",
        }
    )
    producer.produce(
        tx_topic, key=m.key, value=value, headers=list(m.headers), partition=(home + 1) % 6
    )
    assert producer.flush(30) == 0
    good = transaction(tenant_id=tenant, account_id=ACCOUNT, transaction_id="good", timestamp=now)
    with EventProducer(producer_config(KafkaSettings()), source="tests/poison") as events:
        events.send(tx_topic, good)

    with (tmp_path / "enricher.log").open("ab") as log:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "scorestream", "enricher", "--tenant", tenant),
                *("--health-port", "0", "--state-dir", str(tmp_path / "state")),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        got = read_events(
            kafka_bootstrap, REGISTRY.topic("transactions.enriched", tenant), 1, EnrichedTransaction
        )
        dlq = read_messages(kafka_bootstrap, REGISTRY.dlq_topic("transactions", tenant), 1, 30)
        assert proc.poll() is None, (tmp_path / "enricher.log").read_text()[-3000:]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert [e.transaction.transaction_id for _, e in got] == ["good"]
    [msg] = dlq
    h = headers(msg)
    assert (h["dlq.reason"], h["dlq.pointer"]) == ("too_large_to_move", "true")
    assert h["dlq.source.partition"] == str((home + 1) % 6)
