"""The Quix Streams enricher against the real broker, as real processes.

Live features equal the training path's exactly (one-partition tenant); SIGKILL + restart (with
the local state kept or lost) loses and duplicates nothing; a rebalance between two instances
enriches every transaction exactly once; bad records go to the DLQs with their reasons.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from producers.simulate_cli import interleaved
from producers.simulator import Simulation, SimulatorConfig, simulate
from schemas.cloudevents import Envelope
from schemas.events import EnrichedTransaction, LabelEvent, TransactionEvent
from scorestream.admin import ensure_tenant_topics
from scorestream.features import FEATURE_NAMES, FEATURE_SPEC, compute_offline, to_vector
from scorestream.kafka_config import producer_config
from scorestream.serde import EventProducer, decode_message
from scorestream.settings import KafkaSettings, TopicSettings
from scorestream.topics import REGISTRY
from tests.kafka_helpers import produce_raw, read_messages
from tests.worker_support import free_port, http_get, wait_until

pytestmark = pytest.mark.integration

ONE_PARTITION = TopicSettings(partitions_scale=0.01)  # one total order for exact comparisons
ACCOUNT_FEATURES = [i for i, n in enumerate(FEATURE_NAMES) if not n.startswith("merchant_")]


@functools.cache
def sim() -> Simulation:
    return simulate(
        SimulatorConfig(seed=11, tenant="acme", n_customers=300, n_terminals=600, days=21)
    )


def _tenant(partitions: TopicSettings | None = None) -> str:
    name = f"t{uuid.uuid4().hex[:10]}"
    ensure_tenant_topics(name, topics=partitions)
    return name


def _start(
    tenant: str,
    log: Path,
    state: Path,
    instance: str = "enricher-0",
    health_port: int = 0,
) -> subprocess.Popen[bytes]:
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
                str(health_port),
                "--max-batch",
                "200",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=os.environ | {"SCORESTREAM_ENRICHER_STATE_DIR": str(state)},
        )


def _stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(60)


def _traceparent(i: int) -> str:
    return f"00-{i:032x}-{i:016x}-01"


def _send(
    tenant: str, events: list[TransactionEvent | LabelEvent], rate: float = 0.0
) -> dict[str, str]:
    """Publish; transactions carry a traceparent. Returns transaction id → traceparent."""
    traces: dict[str, str] = {}
    start = time.perf_counter()
    with EventProducer(producer_config(KafkaSettings()), source="tests/sim") as producer:
        for i, event in enumerate(events):
            if rate:
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            if isinstance(event, LabelEvent):
                producer.send(REGISTRY.topic("labels", tenant), event)
                continue
            traces[event.transaction_id] = _traceparent(i + 1)
            producer.send(
                REGISTRY.topic("transactions", tenant),
                event,
                trace={"traceparent": traces[event.transaction_id]},
            )
    return traces


def _retenant(events: list, tenant: str) -> list:  # type: ignore[type-arg]
    out = []
    for e in events:
        if isinstance(e, TransactionEvent | LabelEvent):
            out.append(e.model_copy(update={"tenant_id": tenant}))
    return out


def _committed(tenant: str, stream: str) -> int:
    from confluent_kafka import Consumer, TopicPartition  # noqa: PLC0415

    topic = REGISTRY.topic(stream, tenant)
    c = Consumer(
        {
            "bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"],
            "group.id": f"{tenant}.enricher",
        }
    )
    try:
        partitions = c.list_topics(topic, timeout=10).topics[topic].partitions
        tps = c.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return sum(max(0, tp.offset) for tp in tps)
    finally:
        c.close()


def _enriched(
    bootstrap: str, tenant: str, n: int, timeout: float = 180
) -> dict[str, Envelope[EnrichedTransaction]]:
    """Every enriched record (read_committed); fails on a duplicate transaction id."""
    messages = read_messages(
        bootstrap, REGISTRY.topic("transactions.enriched", tenant), n, timeout=timeout
    )
    out: dict[str, Envelope[EnrichedTransaction]] = {}
    for msg in messages:
        env = decode_message(msg, accept=[EnrichedTransaction])
        tx_id = env.event.transaction.transaction_id
        assert tx_id not in out, f"duplicate enriched record {tx_id}"
        assert msg.key() == env.event.transaction.account_id.encode(), "keyed by account"
        out[tx_id] = env
    return out


def _mismatches(
    txs: list[TransactionEvent],
    got: dict[str, Envelope[EnrichedTransaction]],
    labels: list[LabelEvent] = (),  # type: ignore[assignment]
    columns: list[int] | None = None,
) -> list[str]:
    offline = compute_offline(txs, labels)
    assert set(got) == {t.transaction_id for t in txs}, "every transaction exactly once"
    out = []
    for row, tx in zip(offline, txs, strict=True):
        live = got[tx.transaction_id].event
        assert live.feature_spec_hash == FEATURE_SPEC.hash
        assert live.transaction == tx
        live_row = np.array(to_vector(live.features), dtype=np.float32)
        cols = columns if columns is not None else range(len(FEATURE_NAMES))
        out += [f"{tx.transaction_id}:{FEATURE_NAMES[i]}" for i in cols if live_row[i] != row[i]]
    return out


def test_live_features_equal_the_offline_computation(kafka_bootstrap: str, tmp_path: Path) -> None:
    tenant = _tenant(ONE_PARTITION)
    events = _retenant([e for _, e in interleaved(sim())], tenant)
    txs = [e for e in events if isinstance(e, TransactionEvent)][:3000]
    last = txs[-1].timestamp
    labels = [e for e in events if isinstance(e, LabelEvent) and e.labelled_at <= last]
    port = free_port()
    proc = _start(tenant, tmp_path / "enricher.log", tmp_path / "state", health_port=port)
    try:
        wait_until(lambda: http_get(port, "/readyz")[0] == 200, 120, "enricher ready")
        _send(tenant, labels)  # labels first: all known to the state before any transaction
        wait_until(lambda: _committed(tenant, "labels") >= len(labels), 120, "labels consumed")
        traces = _send(tenant, txs)
        got = _enriched(kafka_bootstrap, tenant, len(txs))
        status, body = http_get(port, "/metrics")
    finally:
        assert _stop(proc) == 0
    assert status == 200
    assert f'scorestream_events_in_total{{service="enricher",tenant="{tenant}"}}' in body
    assert sum(1 for lbl in labels if lbl.is_fraud) > 0
    assert any(e.event.features["merchant_frauds_30d"] > 0 for e in got.values()), "labels count"
    assert _mismatches(txs, got, labels) == []
    # CloudEvents headers as every scorestream producer writes them; trace and ingest time carried
    inputs = read_messages(kafka_bootstrap, REGISTRY.topic("transactions", tenant), len(txs))
    ingest = {
        env.event.transaction_id: env.time.isoformat()
        for env in (decode_message(m, accept=[TransactionEvent]) for m in inputs)
    }
    for tx_id, env in got.items():
        assert env.source == "scorestream/enricher"
        assert env.type == "scorestream.transaction.enriched.v1"
        assert env.trace["traceparent"] == traces[tx_id]
        assert env.extensions["ingesttime"] == ingest[tx_id]


@pytest.mark.parametrize("keep_state", [True, False], ids=["state-kept", "state-lost"])
def test_sigkill_and_restart_loses_and_duplicates_nothing(
    kafka_bootstrap: str, tmp_path: Path, keep_state: bool
) -> None:
    tenant = _tenant(ONE_PARTITION)
    txs = _retenant([t.event for t in sim().transactions[:4000]], tenant)
    log = tmp_path / "enricher.log"
    proc = _start(tenant, log, tmp_path / "state")
    _send(tenant, txs[:2500])
    wait_until(lambda: _committed(tenant, "transactions") >= 800, 120, "first transactions")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    _send(tenant, txs[2500:])
    # a lost state dir (pod rescheduled elsewhere) is rebuilt from the changelog topics
    proc = _start(tenant, log, tmp_path / ("state" if keep_state else "fresh-state"))
    try:
        got = _enriched(kafka_bootstrap, tenant, len(txs))
    finally:
        _stop(proc)
    # no loss, no duplicate, and the windows as if never interrupted
    assert _mismatches(txs, got) == []


def test_rebalance_enriches_every_transaction_exactly_once(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    tenant = _tenant()  # 6 transaction partitions, 3 label partitions
    events = _retenant([e for _, e in interleaved(sim())], tenant)
    txs = [e for e in events if isinstance(e, TransactionEvent)][:4000]
    last = txs[-1].timestamp
    items = [
        e for e in events if not isinstance(e, LabelEvent) or e.labelled_at <= last
    ]  # interleaved in event time, as a live feed publishes them
    items = [e for e in items if not isinstance(e, TransactionEvent) or e.timestamp <= last]
    labels = [e for e in items if isinstance(e, LabelEvent)]
    ports = [free_port(), free_port()]
    procs = [
        _start(tenant, tmp_path / f"e{i}.log", tmp_path / "state", f"enricher-{i}", ports[i])
        for i in range(2)
    ]
    try:
        for port in ports:
            wait_until(lambda p=port: http_get(p, "/readyz")[0] == 200, 180, "both ready")
        sender = threading.Thread(target=_send, args=(tenant, items, 400.0))
        sender.start()
        wait_until(lambda: _committed(tenant, "transactions") >= 1200, 180, "mid-stream")
        assert _stop(procs[1]) == 0  # its partitions move to enricher-0
        sender.join(120)
        got = _enriched(kafka_bootstrap, tenant, len(txs), timeout=300)
    finally:
        for proc in procs:
            if proc.poll() is None:
                _stop(proc)
    assert len(got) == len(txs)
    # the internal topic names the ADR gives for ACLs
    started = (tmp_path / "e0.log").read_text()
    assert (
        f"repartition__{tenant}.enricher--{tenant}.labels--{tenant}.transactions--merchant"
        in started
    )
    assert f"changelog__{tenant}.enricher--{tenant}.transactions--default" in started
    assert f"repartition__{tenant}.enricher--{tenant}.transactions--account" in started
    # per account, enriched records come out in the order its transactions were produced
    # (read_committed, each partition in offset order; an account is on one partition)
    produced: dict[str, list[str]] = {}
    for tx in txs:
        produced.setdefault(tx.account_id, []).append(tx.transaction_id)
    emitted: dict[str, list[str]] = {}
    for env in got.values():
        t = env.event.transaction
        emitted.setdefault(t.account_id, []).append(t.transaction_id)
    out_of_order = [a for a, ids in produced.items() if emitted[a] != ids]
    assert out_of_order == [], f"{len(out_of_order)} accounts out of order"
    # account windows are keyed like the input: exact across partitions and the rebalance
    assert _mismatches(txs, got, labels, ACCOUNT_FEATURES) == []
    merchant = _mismatches(txs, got, labels)
    print(
        f"merchant feature cells differing from offline (ordering across partitions): "
        f"{len(merchant)} of {len(txs) * 10}"
    )


def test_bad_records_go_to_the_dlqs(kafka_bootstrap: str, tmp_path: Path) -> None:
    tenant = _tenant()
    good = _retenant([t.event for t in sim().transactions[:50]], tenant)
    stranger = good[0].model_copy(update={"tenant_id": "someone-else", "transaction_id": "x-1"})
    wrong_key = good[1].model_copy(update={"transaction_id": "x-2"})
    label = next(e for _, e in interleaved(sim()) if isinstance(e, LabelEvent))
    proc = _start(tenant, tmp_path / "enricher.log", tmp_path / "state")
    try:
        from schemas.cloudevents import encode  # noqa: PLC0415

        tx_topic = REGISTRY.topic("transactions", tenant)
        garbage = (b"k", b"{not json", [("ce_type", b"scorestream.transaction.v1")])
        m = encode(wrong_key, source="tests")
        mis_keyed = (b"not-the-account", m.value, list(m.headers))
        m = encode(stranger, source="tests")
        foreign = (m.key, m.value, list(m.headers))
        produce_raw(kafka_bootstrap, tx_topic, [garbage, mis_keyed, foreign])
        m = encode(label, source="tests")  # tenant "acme" on this tenant's labels topic
        produce_raw(
            kafka_bootstrap, REGISTRY.topic("labels", tenant), [(m.key, m.value, m.headers)]
        )
        _send(tenant, good)
        got = _enriched(kafka_bootstrap, tenant, 50)
        tx_dlq = read_messages(kafka_bootstrap, REGISTRY.dlq_topic("transactions", tenant), 3)
        label_dlq = read_messages(kafka_bootstrap, REGISTRY.dlq_topic("labels", tenant), 1)
    finally:
        _stop(proc)
    assert set(got) == {t.transaction_id for t in good}
    reasons = {}
    originals = {r[0]: r for r in (garbage, mis_keyed, foreign)}
    assert len(tx_dlq) == 3
    for msg in tx_dlq:
        headers = dict(msg.headers() or [])
        original = originals[msg.key()]
        assert msg.value() == original[1], "original bytes kept"
        assert [h for h in msg.headers() or [] if not h[0].startswith("dlq.")] == original[2]
        assert headers["dlq.service"] == b"enricher"
        assert headers["dlq.source.topic"] == tx_topic.encode()
        reasons[original[0]] = headers["dlq.reason"]
    assert reasons == {
        b"k": b"missing_header",
        b"not-the-account": b"key_mismatch",
        stranger.account_id.encode(): b"unknown_tenant",
    }
    assert len(label_dlq) == 1
    assert dict(label_dlq[0].headers() or [])["dlq.reason"] == b"unknown_tenant"


def test_a_tenant_without_topics_is_refused(kafka_bootstrap: str) -> None:
    """Quix would create missing topics with one partition; the enricher refuses instead."""
    from consumers.enricher import Enricher, EnricherSettings  # noqa: PLC0415
    from scorestream.errors import KafkaClientError  # noqa: PLC0415

    with pytest.raises(KafkaClientError, match="topics missing"):
        Enricher(EnricherSettings(tenant=f"t{uuid.uuid4().hex[:10]}", health_port=0))
