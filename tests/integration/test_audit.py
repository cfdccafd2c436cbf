"""The audit service as a real process against the real broker, the Kafka CLI recipes operators
use on the audit trail, and ``scorestream audit replay``."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from consumers.audit.join import transaction_id_of
from inference_worker.model import load_serving_model
from producers.generator import generate_transactions
from schemas.events import AuditRecord, AuditStatus, Contract, ModelAlias, latest_revisions
from scorestream.kafka_config import producer_config
from scorestream.serde import EventProducer, decode_message
from scorestream.settings import KafkaSettings
from tests.audit_support import Parts, enrich, parts_for, traceparent
from tests.kafka_helpers import read_messages
from tests.worker_support import Tenant, free_port, http_get, new_tenant, wait_until

pytestmark = pytest.mark.integration

STREAM = {"enriched": "transactions.enriched", "prediction": "predictions", "decision": "decisions"}


JOIN_TIMEOUT_S = 3.0


def start_audit(
    tenant: Tenant, instance: str, *, timeout_s: float = JOIN_TIMEOUT_S, health_port: int = 0
) -> subprocess.Popen[bytes]:
    log = (tenant.repo_dir.parent / f"{instance}.log").open("ab")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "consumers.audit",
            "--tenant",
            tenant.name,
            "--instance-id",
            instance,
            "--health-port",
            str(health_port),
            "--max-batch",
            "200",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=os.environ
        | {
            "SCORESTREAM_AUDIT_JOIN_TIMEOUT_S": str(timeout_s),
            "SCORESTREAM_AUDIT_SESSION_TIMEOUT_MS": "6000",
        },
    )
    log.close()
    tenant.procs.append(proc)
    return proc


def items_for(
    parts: list[Parts],
    *,
    without_decision: set[str] = frozenset(),  # type: ignore[assignment]
) -> list[tuple[str, Contract, str]]:
    """(stream, event, traceparent) for every part; decisions left out for ``without_decision``."""
    out: list[tuple[str, Contract, str]] = []
    for i, p in enumerate(parts):
        tp = traceparent(1000 + i)
        out.append((STREAM["enriched"], p.enriched, tp))
        out.append((STREAM["prediction"], p.prediction, tp))
        if p.transaction_id not in without_decision:
            out.append((STREAM["decision"], p.decision, tp))
    return out


def produce(
    tenant: Tenant,
    items: list[tuple[str, Contract, str]],
    *,
    rate: float = 0,
    sent: dict[int, float] | None = None,
) -> None:
    """Send ``items`` in order (at ``rate`` per second if given); ``sent`` gets each item's
    wall-clock send time (its ``ce_time`` within a millisecond)."""
    producer = EventProducer(producer_config(KafkaSettings()), source="tests/audit")
    start = time.perf_counter()
    for i, (stream, event, tp) in enumerate(items):
        if rate:
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        if sent is not None:
            sent[i] = time.time()
        producer.send(tenant.topic(stream), event, trace={"traceparent": tp})
    producer.flush(60)


def stalled_joins(
    items: list[tuple[str, Contract, str]], sent: dict[int, float], timeout_s: float
) -> set[str]:
    """Transactions whose parts were sent further apart than the join timeout (first copies):
    their join may legitimately time out before the last part arrives (the timeout is in event
    time), making the first revision of the record ``incomplete`` and the late part a second
    revision (or, past the amend window, a ``late_for_audit`` dead letter).
    At 300 records/s the parts of a transaction are < 0.5 s apart; only a stalled feeder (CI
    saw the test process and the broker get no CPU for 21 s) spreads them further."""
    first: dict[tuple[str, str], float] = {}
    for i, (stream, event, _) in enumerate(items):
        first.setdefault((stream, transaction_id_of(event)), sent[i])  # type: ignore[arg-type]
    span: dict[str, list[float]] = {}
    for (_, txid), at in first.items():
        span.setdefault(txid, []).append(at)
    return {txid for txid, ats in span.items() if max(ats) - min(ats) > timeout_s - 0.25}


def audit_records(
    bootstrap: str, tenant: Tenant, expected: int, timeout: float = 60, linger: float = 0
) -> list[tuple[Message, AuditRecord]]:
    """Read ``expected`` audit records (read_committed, no consumer group), then ``linger``
    seconds more to catch any extra (duplicate) record."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "unused",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    topic = tenant.topic("audit")
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(6)])
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if len(out) >= expected:
                deadline = min(deadline, time.monotonic() + linger)
            for msg in consumer.consume(num_messages=500, timeout=0.2):
                assert msg.error() is None, msg.error()
                out.append(msg)
    finally:
        consumer.close()
    return [(m, decode_message(m, accept=[AuditRecord]).event) for m in out]


def high_watermarks(bootstrap: str, topic: str) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "audit-test-wm"})
    try:
        return sum(
            c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(6)
        )
    finally:
        c.close()


def scorestream(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scorestream", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=os.environ | (env or {}),
    )


@pytest.fixture
def tenant(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Tenant]:
    t = new_tenant(tmp_path)
    yield t
    t.stop_all()


def test_one_record_per_transaction_across_a_sigkill(kafka_bootstrap: str, tenant: Tenant) -> None:
    rng = random.Random(5)
    n = 500
    txs = list(generate_transactions(n, tenant=tenant.name, seed=11, accounts=80))
    parts = [parts_for(e, score=rng.random()) for e in enrich(txs)]
    no_decision = {p.transaction_id for p in rng.sample(parts, 40)}
    items: list[tuple[str, Contract, str]] = []
    for i in range(0, n, 50):  # any arrival order across the three topics, within live traffic
        chunk = items_for(parts[i : i + 50], without_decision=no_decision)
        rng.shuffle(chunk)
        items += chunk
    for at, dup in sorted(rng.sample(list(enumerate(items)), 30), reverse=True):
        items.insert(at + 5, dup)  # duplicates of some parts, shortly after the original

    port = free_port()
    start_audit(tenant, "audit-a", health_port=port)
    wait_until(lambda: http_get(port, "/readyz")[0] == 200, 30, "the audit service ready")
    audit_topic = tenant.topic("audit")
    sent: dict[int, float] = {}
    feeder = threading.Thread(
        target=produce, args=(tenant, items), kwargs={"rate": 300, "sent": sent}
    )
    feeder.start()
    # SIGKILL mid-stream: records are being produced while the service dies
    wait_until(lambda: high_watermarks(kafka_bootstrap, audit_topic) > 20, 30, "first records")
    tenant.procs[0].send_signal(signal.SIGKILL)
    tenant.procs[0].wait(10)
    assert feeder.is_alive()
    start_audit(tenant, "audit-a")  # same instance id: its transactional.id fences the old one
    feeder.join(60)
    assert not feeder.is_alive()
    stalled = stalled_joins(items, sent, JOIN_TIMEOUT_S)
    print(f"{len(stalled)} transaction(s) with parts sent more than the join timeout apart")

    read = audit_records(kafka_bootstrap, tenant, n, timeout=60, linger=2)
    # a stalled transaction's late part writes a second revision of its record (never a
    # second record): count the latest revision of each
    latest = {id(r) for r in latest_revisions(r for _, r in read)}
    for _, record in read:
        if id(record) not in latest:
            assert record.transaction_id in stalled, record
    records = [(m, r) for m, r in read if id(r) in latest]
    ids = Counter(r.transaction_id for _, r in records)
    assert len(records) == n, tenant.worker_logs()
    assert set(ids) == {p.transaction_id for p in parts}
    assert max(ids.values()) == 1
    by_id = {p.transaction_id: p for p in parts}
    for msg, record in records:
        p = by_id[record.transaction_id]
        tx = p.enriched.transaction
        assert msg.key() == tx.account_id.encode()
        assert record.trace_id is not None
        header = dict(msg.headers() or [])["traceparent"]
        assert isinstance(header, bytes)
        assert header.decode().split("-")[1] == record.trace_id
        if record.transaction_id in stalled and record.status is AuditStatus.INCOMPLETE:
            # timed out before a part that was sent too late: what it has is right
            assert record.missing
            if "transaction" not in record.missing:
                assert record.features == p.enriched.features
            if "prediction" not in record.missing:
                assert record.model_sha256 == p.prediction.model_sha256
            continue
        assert msg.timestamp()[1] == int(tx.timestamp.timestamp() * 1000)
        assert record.features == p.enriched.features
        assert record.score == p.prediction.score
        assert record.model_sha256 == p.prediction.model_sha256
        if record.transaction_id in no_decision:
            assert record.status is AuditStatus.INCOMPLETE
            assert record.missing == ("decision",)
            assert record.outcome is None
        else:
            assert record.status is AuditStatus.COMPLETE, record
            assert record.outcome is p.decision.outcome
            assert record.policy_version == p.decision.policy_version
            assert set(record.hop_ms) == {"score", "decide"}
    # nothing went to the DLQs (duplicates are ignored, not late) but the late parts of stalled
    # transactions (and their duplicates), as late_for_audit
    for stream in STREAM.values():
        dead = read_messages(kafka_bootstrap, tenant.topic(f"{stream}.dlq"), 10_000, timeout=1)
        for msg in dead:
            headers = dict(msg.headers() or [])
            assert headers.get("dlq.reason") == b"late_for_audit", headers
            txid = transaction_id_of(decode_message(msg).event)  # original bytes and headers
            assert txid in stalled, (stream, txid)


# -- the audit trail by time: Kafka CLI recipes and replay -----------------------------------------
@dataclass
class Window:
    tenant: Tenant
    a: list[Parts]
    b: list[Parts]
    b_start: datetime
    b_end: datetime
    a_start: datetime
    records: list[tuple[Message, AuditRecord]]


@pytest.fixture(scope="module")
def window(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Window]:
    """Two batches of live transactions, the second stamped after the first was audited (and
    its Kafka transactions committed: commit markers carry the commit time, so a window
    starting before them would start at them). Scored for real by model v1, audited."""
    tenant = new_tenant(tmp_path_factory.mktemp("audit-window"))
    tenant.publish_model("1", seed=0)
    tenant.publish_model("2", seed=1)
    model = load_serving_model(tenant.repo, tenant.model, "1", ModelAlias.CHAMPION)

    def batch(seed: int) -> list[Parts]:
        start = datetime.now(UTC) - timedelta(milliseconds=50)
        txs = [  # live traffic: stamped now, 1 ms apart
            tx.model_copy(update={"timestamp": start + timedelta(milliseconds=i)})
            for i, tx in enumerate(generate_transactions(40, tenant=tenant.name, seed=seed))
        ]
        enriched = enrich(txs)
        X = np.array(
            [[e.features[n] for n in model.metadata.feature_names] for e in enriched],
            dtype=np.float32,
        )
        scores = model.score(X).tolist()
        return [
            parts_for(e, float(s), sha256=model.metadata.sha256)
            for e, s in zip(enriched, scores, strict=True)
        ]

    start_audit(tenant, "audit-w")
    try:
        a = batch(seed=21)
        produce(tenant, items_for(a))
        wait_until(
            lambda: len(audit_records(kafka_bootstrap, tenant, len(a), timeout=2)) == len(a),
            60,
            "the audit records of the first batch",
        )
        time.sleep(0.05)
        b = batch(seed=22)
        produce(tenant, items_for(b))
        records = audit_records(kafka_bootstrap, tenant, len(a) + len(b), timeout=60, linger=1)
        assert len(records) == len(a) + len(b), tenant.worker_logs()
        yield Window(
            tenant,
            a,
            b,
            b_start=min(p.enriched.transaction.timestamp for p in b),
            b_end=max(p.enriched.transaction.timestamp for p in b),
            a_start=min(p.enriched.transaction.timestamp for p in a),
            records=records,
        )
    finally:
        tenant.stop_all()


def _b_ids(w: Window) -> set[str]:
    return {p.transaction_id for p in w.b}


def test_cli_read_a_time_window(window: Window) -> None:
    """kafka-get-offsets --time, then kafka-console-consumer --partition --offset."""
    topic = window.tenant.topic("audit")
    start_ms = int(window.b_start.timestamp() * 1000)
    got = scorestream("kafka", "kafka-get-offsets", "--topic", topic, "--time", str(start_ms))
    assert got.returncode == 0, got.stderr
    offsets = {int(p): int(o) for _, p, o in (line.rsplit(":", 2) for line in got.stdout.split())}
    # expected: per partition, the B records in offset order
    expected: dict[int, list[str]] = {}
    for msg, record in sorted(window.records, key=lambda mr: (mr[0].partition(), mr[0].offset())):
        if record.transaction_id in _b_ids(window):
            expected.setdefault(msg.partition() or 0, []).append(record.transaction_id)
            assert offsets[msg.partition() or 0] <= (msg.offset() or 0)
    partition = max(expected, key=lambda p: len(expected[p]))
    first_b = min(
        m.offset() or 0
        for m, r in window.records
        if m.partition() == partition and r.transaction_id in _b_ids(window)
    )
    assert offsets[partition] == first_b
    consumed = scorestream(
        "kafka",
        "kafka-console-consumer",
        "--topic",
        topic,
        "--partition",
        str(partition),
        "--offset",
        str(offsets[partition]),
        "--max-messages",
        str(len(expected[partition])),
        "--isolation-level",
        "read_committed",
        "--timeout-ms",
        "30000",
    )
    assert consumed.returncode == 0, consumed.stderr
    lines = [line for line in consumed.stdout.splitlines() if line.strip()]
    assert [AuditRecord.model_validate_json(x).transaction_id for x in lines] == expected[partition]


def test_cli_reset_a_group_to_a_datetime(kafka_bootstrap: str, window: Window) -> None:
    """kafka-consumer-groups --reset-offsets --to-datetime, then the group re-reads from there."""
    topic = window.tenant.topic("audit")
    group = f"{window.tenant.name}.retrain-{uuid.uuid4().hex[:6]}"
    conf = {
        "bootstrap.servers": kafka_bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
    }

    def consume_all(expected: int) -> list[Message]:
        c = Consumer(conf)
        c.subscribe([topic])
        out: list[Message] = []
        deadline = time.monotonic() + 30
        while len(out) < expected and time.monotonic() < deadline:
            out += [m for m in c.consume(500, 0.5) if m.error() is None]
        time.sleep(1)
        out += [m for m in c.consume(500, 0.5) if m.error() is None]  # nothing more expected
        c.commit(asynchronous=False)
        c.close()
        return out

    assert len(consume_all(len(window.records))) == len(window.records)
    when = (
        window.b_start.strftime("%Y-%m-%dT%H:%M:%S.") + f"{window.b_start.microsecond // 1000:03d}"
    )
    reset = scorestream(
        "kafka",
        "kafka-consumer-groups",
        "--group",
        group,
        "--topic",
        topic,
        "--reset-offsets",
        "--to-datetime",
        when + "Z",
        "--execute",
    )
    assert reset.returncode == 0, reset.stderr + reset.stdout
    again = consume_all(len(window.b))
    assert {decode_message(m, accept=[AuditRecord]).event.transaction_id for m in again} == _b_ids(
        window
    )


def _replay(window: Window, start: datetime, end: datetime, *extra: str) -> dict[str, object]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "consumers.audit",
            "replay",
            "--tenant",
            window.tenant.name,
            "--from",
            start.isoformat(),
            "--to",
            end.isoformat(),
            "--json",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=os.environ | {"SCORESTREAM_MODELS_URL": str(window.tenant.repo_dir)},
    )
    assert out.returncode == 0, out.stderr
    report: dict[str, object] = json.loads(out.stdout)
    return report


def test_replay_rescoring(window: Window) -> None:
    end = window.b_end + timedelta(milliseconds=1)
    same = _replay(window, window.b_start, end, "--model", "1")
    assert same["records"] == same["rescored"] == len(window.b)
    assert same["max_abs_delta"] == 0.0
    assert same["decisions_changed"] == 0
    other = _replay(window, window.b_start, end, "--model", "2")
    assert other["records"] == len(window.b)
    assert isinstance(other["max_abs_delta"], float)
    assert other["max_abs_delta"] > 0
    assert other["versions"] == {"2": len(window.b)}
    # default: each record's own version; and the window is by transaction time
    earlier = _replay(window, window.a_start, window.b_start)
    assert earlier["records"] == len(window.a)
    assert earlier["max_abs_delta"] == 0.0
