"""The enricher against the real broker: live features equal the training path's, exactly."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from producers.simulate_cli import interleaved
from producers.simulator import Simulation, SimulatorConfig, simulate
from schemas.events import EnrichedTransaction, LabelEvent, TransactionEvent
from scorestream.admin import ensure_tenant_topics
from scorestream.features import FEATURE_NAMES, FEATURE_SPEC, compute_offline, to_vector
from scorestream.kafka_config import producer_config
from scorestream.serde import EventProducer, decode_message
from scorestream.settings import KafkaSettings, TopicSettings
from scorestream.topics import REGISTRY
from tests.kafka_helpers import read_messages
from tests.worker_support import wait_until

pytestmark = pytest.mark.integration

ONE_PARTITION = TopicSettings(partitions_scale=0.01)  # one total order for exact comparisons


@functools.cache
def sim() -> Simulation:
    return simulate(
        SimulatorConfig(seed=11, tenant="acme", n_customers=300, n_terminals=600, days=21)
    )


def _tenant(partitions: TopicSettings | None = None) -> str:
    name = f"t{uuid.uuid4().hex[:10]}"
    ensure_tenant_topics(name, topics=partitions)
    return name


def _start(tenant: str, log: Path, instance: str = "enricher-0") -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "scorestream",
                "enricher",
                "--tenant",
                tenant,
                "--instance-id",
                instance,
                "--health-port",
                "0",
                "--max-batch",
                "200",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
        )


def _send(tenant: str, events: list[TransactionEvent | LabelEvent]) -> None:
    with EventProducer(producer_config(KafkaSettings()), source="tests/sim") as producer:
        for event in events:
            stream = "labels" if isinstance(event, LabelEvent) else "transactions"
            producer.send(REGISTRY.topic(stream, tenant), event)


def _retenant(events: list, tenant: str) -> list:  # type: ignore[type-arg]
    out = []
    for e in events:
        if isinstance(e, TransactionEvent | LabelEvent):
            out.append(e.model_copy(update={"tenant_id": tenant}))
    return out


def _committed(tenant: str, stream: str) -> int:
    from confluent_kafka import Consumer, TopicPartition  # noqa: PLC0415

    c = Consumer(
        {
            "bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"],
            "group.id": f"{tenant}.enricher",
        }
    )
    try:
        tps = c.committed([TopicPartition(REGISTRY.topic(stream, tenant), 0)], timeout=10)
        return max(0, tps[0].offset)
    finally:
        c.close()


def _enriched(bootstrap: str, tenant: str, n: int) -> dict[str, EnrichedTransaction]:
    messages = read_messages(
        bootstrap, REGISTRY.topic("transactions.enriched", tenant), n, timeout=120
    )
    out: dict[str, EnrichedTransaction] = {}
    for msg in messages:
        event = decode_message(msg, accept=[EnrichedTransaction]).event
        assert event.transaction.transaction_id not in out, "duplicate enriched record"
        out[event.transaction.transaction_id] = event
    return out


def _assert_parity(
    txs: list[TransactionEvent], labels: list[LabelEvent], got: dict[str, EnrichedTransaction]
) -> None:
    offline = compute_offline(txs, labels)
    assert set(got) == {t.transaction_id for t in txs}
    for row, tx in zip(offline, txs, strict=True):
        live = got[tx.transaction_id]
        assert live.feature_spec_hash == FEATURE_SPEC.hash
        live_row = np.array(to_vector(live.features), dtype=np.float32)
        mismatch = [FEATURE_NAMES[i] for i in np.flatnonzero(live_row != row)]
        assert not mismatch, f"{tx.transaction_id}: {mismatch}"


def test_live_features_equal_the_offline_computation(kafka_bootstrap: str, tmp_path: Path) -> None:
    tenant = _tenant(ONE_PARTITION)
    events = _retenant([e for _, e in interleaved(sim())], tenant)
    txs = [e for e in events if isinstance(e, TransactionEvent)][:3000]
    last = txs[-1].timestamp
    labels = [e for e in events if isinstance(e, LabelEvent) and e.labelled_at <= last]
    proc = _start(tenant, tmp_path / "enricher.log")
    try:
        _send(tenant, labels)  # labels first: all known to the state before any transaction
        wait_until(lambda: _committed(tenant, "labels") >= len(labels), 60, "labels consumed")
        _send(tenant, txs)
        got = _enriched(kafka_bootstrap, tenant, len(txs))
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    assert sum(1 for lbl in labels if lbl.is_fraud) > 0
    assert any(e.features["merchant_frauds_30d"] > 0 for e in got.values()), "labels took effect"
    _assert_parity(txs, labels, got)


def test_sigkill_and_restart_rebuilds_state_exactly(kafka_bootstrap: str, tmp_path: Path) -> None:
    tenant = _tenant(ONE_PARTITION)
    txs = _retenant([t.event for t in sim().transactions[:4000]], tenant)
    log = tmp_path / "enricher.log"
    proc = _start(tenant, log)
    _send(tenant, txs[:2500])
    wait_until(lambda: _committed(tenant, "transactions") >= 800, 60, "first transactions")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    _send(tenant, txs[2500:])
    proc = _start(tenant, log)
    try:
        got = _enriched(kafka_bootstrap, tenant, len(txs))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    assert "rebuilt state from" in log.read_text()
    _assert_parity(txs, [], got)  # no loss, no duplicate, and windows as if never interrupted


def test_bad_records_go_to_the_dlq(kafka_bootstrap: str, tmp_path: Path) -> None:
    from tests.kafka_helpers import produce_raw  # noqa: PLC0415

    tenant = _tenant()
    proc = _start(tenant, tmp_path / "enricher.log")
    try:
        good = _retenant([t.event for t in sim().transactions[:50]], tenant)
        produce_raw(
            kafka_bootstrap,
            REGISTRY.topic("transactions", tenant),
            [(b"k", b"{not json", [("ce_type", b"scorestream.transaction.v1")])],
        )
        _send(tenant, good)
        got = _enriched(kafka_bootstrap, tenant, 50)
        dlq = read_messages(kafka_bootstrap, REGISTRY.dlq_topic("transactions", tenant), 1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    assert len(got) == 50
    assert len(dlq) == 1
    assert dict(dlq[0].headers() or [])["dlq.reason"] == b"missing_header"
