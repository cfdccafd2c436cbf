"""The one-hop enricher and the merchant stage against the real broker, as real processes.

Served features equal the offline path's bit for bit under the declared semantics (the spec's
as-of rule when the merchant table is fresh, the served as-of otherwise) on a 6-partition
tenant; SIGKILL + restart of both services (local state kept or lost) loses and duplicates
nothing; a re-published transaction counts once; a record on the wrong partition is moved, not
dropped; bad records go to the DLQ with their reasons; growing the input's partitions stops the
enricher with a clear error, and the documented rescale gets it going with nothing lost.
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
from collections import Counter
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka.admin import AdminClient, NewPartitions

from producers.simulate_cli import interleaved
from producers.simulator import Simulation, SimulatorConfig, simulate
from schemas.cloudevents import Envelope, encode
from schemas.events import EnrichedTransaction, LabelEvent, TransactionEvent
from scorestream.admin import ensure_tenant_topics
from scorestream.features import ENGINE, FEATURE_NAMES, FEATURE_SPEC, compute_offline
from scorestream.kafka_config import common_config, producer_config
from scorestream.partitioning import partition_for
from scorestream.replay import read_to_end
from scorestream.serde import EventProducer, decode_message
from scorestream.settings import KafkaSettings
from scorestream.topics import REGISTRY
from tests.kafka_helpers import produce_raw, read_messages
from tests.worker_support import free_port, http_get, wait_until

pytestmark = pytest.mark.integration

Event = TransactionEvent | LabelEvent
RESCALE = (sys.executable, "-m", "scorestream", "state", "rescale")


@functools.cache
def sim() -> Simulation:
    return simulate(
        SimulatorConfig(seed=11, tenant="acme", n_customers=300, n_terminals=600, days=21)
    )


def _tenant() -> str:
    name = f"t{uuid.uuid4().hex[:10]}"
    ensure_tenant_topics(name)  # 6 transaction partitions, 3 label partitions
    return name


def _events(tenant: str, limit: int | None = None) -> list[Event]:
    """The simulation's transactions and labels for ``tenant``, interleaved in event time as a
    live feed publishes them (labels when they become known)."""
    items = [e.model_copy(update={"tenant_id": tenant}) for _, e in interleaved(sim())]
    if limit is not None:
        txs = [e for e in items if isinstance(e, TransactionEvent)][:limit]
        last = txs[-1].timestamp
        items = [
            e
            for e in items
            if (isinstance(e, TransactionEvent) and e.timestamp <= last)
            or (isinstance(e, LabelEvent) and e.labelled_at <= last)
        ]
    return items  # type: ignore[return-value]


def _start(
    service: str,
    tenant: str,
    tmp_path: Path,
    *,
    instance: str | None = None,
    state: str = "state",
    health_port: int = 0,
) -> subprocess.Popen[bytes]:
    instance = instance or f"{service}-0"
    with (tmp_path / f"{instance}.log").open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "scorestream",
                service,
                "--tenant",
                tenant,
                "--instance-id",
                instance,
                "--health-port",
                str(health_port),
                "--state-dir",
                str(tmp_path / state),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(60)


def _traceparent(i: int) -> str:
    return f"00-{i:032x}-{i:016x}-01"


def _send(tenant: str, events: list[Event], rate: float = 0.0) -> dict[str, str]:
    """Publish (transactions with a traceparent); returns transaction id → traceparent."""
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


def _enriched(
    bootstrap: str, tenant: str, n: int, timeout: float = 180
) -> list[Envelope[EnrichedTransaction]]:
    messages = read_messages(
        bootstrap, REGISTRY.topic("transactions.enriched", tenant), n, timeout=timeout
    )
    out = []
    for msg in messages:
        env = decode_message(msg, accept=[EnrichedTransaction])
        assert msg.key() == env.event.transaction.account_id.encode(), "keyed by account"
        out.append(env)
    return out


def _once(got: list[Envelope[EnrichedTransaction]]) -> dict[str, EnrichedTransaction]:
    ids = Counter(e.event.transaction.transaction_id for e in got)
    dup = [i for i, n in ids.items() if n > 1]
    assert dup == [], f"{len(dup)} transactions enriched more than once, e.g. {dup[:3]}"
    return {e.event.transaction.transaction_id: e.event for e in got}


def _mismatches(
    txs: list[TransactionEvent], labels: list[LabelEvent], got: dict[str, EnrichedTransaction]
) -> list[str]:
    """Cells where the served features differ from the offline path at the served as-of."""
    assert set(got) == {t.transaction_id for t in txs}, "every transaction enriched"
    as_of = [got[t.transaction_id].merchant_as_of for t in txs]
    offline = compute_offline(txs, labels, as_of=as_of)
    out = []
    for row, tx in zip(offline, txs, strict=True):
        live = got[tx.transaction_id]
        assert live.feature_spec_hash == FEATURE_SPEC.hash
        assert live.transaction == tx
        assert list(live.features) == list(FEATURE_NAMES), "features in spec order"
        served = np.array(list(live.features.values()), dtype=np.float32)
        out += [
            f"{tx.transaction_id}:{FEATURE_NAMES[i]} {served[i]} != {row[i]}"
            for i in range(len(FEATURE_NAMES))
            if served[i] != row[i]
        ]
    return out


def _table_clock(tenant: str) -> int | None:
    """The merchant table's closed time (min over partitions of the clock), None if any
    partition has none yet."""
    topic = REGISTRY.topic("merchant-features", tenant)
    conf = common_config(KafkaSettings(), client_id="tests") | {
        "group.id": f"tests-{uuid.uuid4().hex[:6]}",
        "isolation.level": "read_committed",
    }
    clocks: dict[int, int] = {}
    for msg in read_to_end(conf, topic):
        if msg.key() == b"__clock__" and msg.value() is not None:
            clocks[msg.partition() or 0] = int(msg.value() or b"0")
    if len(clocks) < REGISTRY.get("merchant-features").partitions:
        return None
    return min(clocks.values())


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def test_served_features_equal_the_offline_path_on_six_partitions(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A fresh merchant table: every as-of is the spec's rule, and the served features are the
    offline path's bit for bit (account windows, merchant aggregates, labels known by then)."""
    tenant = _tenant()
    events = _events(tenant)
    txs = [e for e in events if isinstance(e, TransactionEvent)]
    labels = [e for e in events if isinstance(e, LabelEvent)]
    assert len(txs) >= 3000
    assert sum(lbl.is_fraud for lbl in labels) > 20
    traces = _send(tenant, events)
    merchant = _start("merchant", tenant, tmp_path)
    enricher = None
    try:
        last = max(_ms(t.timestamp) for t in txs)
        expected_clock = ((last - 5000) // ENGINE.step_ms) * ENGINE.step_ms
        wait_until(
            lambda: (_table_clock(tenant) or 0) >= expected_clock, 180, "merchant table complete"
        )
        port = free_port()
        enricher = _start("enricher", tenant, tmp_path, health_port=port)
        wait_until(lambda: http_get(port, "/readyz")[0] == 200, 120, "enricher ready")
        got = _once(_enriched(kafka_bootstrap, tenant, len(txs)))
        status, body = http_get(port, "/metrics")
    finally:
        for proc in (merchant, enricher):
            if proc is not None:
                assert _stop(proc) == 0
    assert status == 200
    assert f'scorestream_events_in_total{{service="enricher",tenant="{tenant}"}}' in body
    rule = [ENGINE.target_as_of_ms(_ms(t.timestamp)) for t in txs]
    served = [got[t.transaction_id].merchant_as_of for t in txs]
    assert all(a is not None for a in served)
    on_time = sum(_ms(a) == r for a, r in zip(served, rule, strict=True) if a)
    assert on_time >= 0.999 * len(txs)
    assert _mismatches(txs, labels, got) == []
    on_rule = [i for i, (a, r) in enumerate(zip(served, rule, strict=True)) if a and _ms(a) == r]
    by_rule = compute_offline(txs, labels)
    as_served = np.array([list(got[t.transaction_id].features.values()) for t in txs], np.float32)
    assert (by_rule[on_rule] == as_served[on_rule]).all(), "equal to training's features too"
    assert any(f.features["merchant_frauds_30d"] > 0 for f in got.values()), "labels count"
    # CloudEvents attributes, trace and ingest time carried through the hop
    inputs = read_messages(kafka_bootstrap, REGISTRY.topic("transactions", tenant), len(txs))
    ingest = {
        env.event.transaction_id: env.time.isoformat()
        for env in (decode_message(m, accept=[TransactionEvent]) for m in inputs)
    }
    for env in _enriched(kafka_bootstrap, tenant, len(txs)):
        tx_id = env.event.transaction.transaction_id
        assert env.source == "scorestream/enricher"
        assert env.type == "scorestream.transaction.enriched.v1"
        assert env.trace["traceparent"] == traces[tx_id]
        assert env.extensions["ingesttime"] == ingest[tx_id]


@pytest.mark.slow
@pytest.mark.parametrize("keep_state", [True, False], ids=["state-kept", "state-lost"])
def test_sigkill_of_both_stages_loses_and_duplicates_nothing(
    kafka_bootstrap: str, tmp_path: Path, keep_state: bool
) -> None:
    """Both stages SIGKILLed mid-stream and restarted (local state kept, or a new empty state
    dir: rebuilt from the changelogs): every transaction enriched exactly once, features still
    the offline path's at the served as-of."""
    tenant = _tenant()
    events = _events(tenant, limit=6000)
    txs = [e for e in events if isinstance(e, TransactionEvent)]
    labels = [e for e in events if isinstance(e, LabelEvent)]
    procs = {s: _start(s, tenant, tmp_path) for s in ("merchant", "enricher")}
    sender = threading.Thread(target=_send, args=(tenant, events, 1500.0))
    sender.start()
    try:
        topic = REGISTRY.topic("transactions.enriched", tenant)
        wait_until(lambda: len(read_messages(kafka_bootstrap, topic, 1500, 5)) >= 1500, 120, "1/4")
        procs["enricher"].send_signal(signal.SIGKILL)
        procs["enricher"].wait(10)
        time.sleep(1.0)
        procs["merchant"].send_signal(signal.SIGKILL)
        procs["merchant"].wait(10)
        state = "state" if keep_state else "fresh-state"
        procs = {s: _start(s, tenant, tmp_path, state=state) for s in ("merchant", "enricher")}
        sender.join(120)
        got = _once(_enriched(kafka_bootstrap, tenant, len(txs), timeout=240))
    finally:
        sender.join(120)
        for proc in procs.values():
            _stop(proc)
    assert len(got) == len(txs)
    assert _mismatches(txs, labels, got) == []


def test_republished_misrouted_and_bad_records(kafka_bootstrap: str, tmp_path: Path) -> None:
    """A transaction published twice counts once; one on a partition its key does not hash to
    (a producer without the Java partitioner) is moved and enriched with its account's state;
    undecodable, mis-keyed and foreign records go to the DLQ with their reasons."""
    tenant = _tenant()
    account = sim().transactions[0].event.account_id
    mine = [t.event for t in sim().transactions if t.event.account_id == account][:6]
    mine = [t.model_copy(update={"tenant_id": tenant}) for t in mine]
    assert len(mine) == 6
    tx_topic = REGISTRY.topic("transactions", tenant)
    home = partition_for(account.encode(), 6)
    elsewhere = (home + 1) % 6
    stranger = mine[0].model_copy(update={"tenant_id": "someone-else", "transaction_id": "x-1"})
    mis_keyed = mine[1].model_copy(update={"transaction_id": "x-2"})
    proc = _start("enricher", tenant, tmp_path)
    try:
        _send(tenant, mine[:3])
        _send(tenant, [mine[2]])  # re-published: the same id and body
        m = encode(mine[3], source="tests")  # a kcat-style producer picked another partition
        produce_raw_to(kafka_bootstrap, tx_topic, elsewhere, m.key, m.value, list(m.headers))
        # the copy joins its home partition when the enricher moves it: wait for it, so that it is
        # the account's 4th transaction there whatever the timing (CI once saw it 6th)
        _enriched(kafka_bootstrap, tenant, 5)
        _send(tenant, mine[4:])
        garbage = (b"k", b"{not json", [("ce_type", b"scorestream.transaction.v1")])
        m = encode(mis_keyed, source="tests")
        wrong_key = (b"not-the-account", m.value, list(m.headers))
        m = encode(stranger, source="tests")
        foreign = (m.key, m.value, list(m.headers))
        produce_raw(kafka_bootstrap, tx_topic, [garbage, wrong_key, foreign])
        got = _enriched(kafka_bootstrap, tenant, 7)
        dlq = read_messages(kafka_bootstrap, REGISTRY.dlq_topic("transactions", tenant), 3)
        moved = read_messages(kafka_bootstrap, tx_topic, 11)
    finally:
        _stop(proc)
    ids = [e.event.transaction.transaction_id for e in got]
    assert sorted(ids) == sorted([t.transaction_id for t in mine] + [mine[2].transaction_id])
    counts = [e.event.features["acc_count_30d"] for e in got]
    first, again = (i for i, tx_id in enumerate(ids) if tx_id == mine[2].transaction_id)
    assert counts[first] == counts[again] == 3.0, "the re-publication is not counted again"
    by_id = {e.event.transaction.transaction_id: e.event for e in got}
    assert by_id[mine[3].transaction_id].features["acc_count_30d"] == 4.0, "moved, not lost"
    assert by_id[mine[5].transaction_id].features["acc_count_30d"] == 6.0
    copies = [m for m in moved if m.key() == account.encode() and m.partition() == home]
    assert any(h == "scorestream.rerouted-from" for m in copies for h, _ in m.headers() or []), (
        "the moved copy says where it came from"
    )
    reasons = {m.key(): dict(m.headers() or [])["dlq.reason"] for m in dlq}
    assert reasons == {
        b"k": b"missing_header",
        b"not-the-account": b"key_mismatch",
        stranger.account_id.encode(): b"unknown_tenant",
    }
    for msg in dlq:
        assert dict(msg.headers() or [])["dlq.service"] == b"enricher"


def produce_raw_to(
    bootstrap: str,
    topic: str,
    partition: int,
    key: bytes,
    value: bytes,
    headers: list[tuple[str, bytes]],
) -> None:
    from confluent_kafka import Producer  # noqa: PLC0415

    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, key=key, value=value, headers=headers, partition=partition)
    assert producer.flush(30) == 0


@pytest.mark.slow
def test_growing_the_input_stops_the_enricher_and_the_rescale_loses_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """transactions 6 → 8 partitions while running: the enricher stops with a clear error,
    `scorestream state rescale` moves its state, and after a restart every transaction is
    enriched once with its account's full history counted (docs/operations.md)."""
    tenant = _tenant()
    events = _events(tenant, limit=3000)
    txs = [e for e in events if isinstance(e, TransactionEvent)]
    half = len(events) // 2
    procs = {s: _start(s, tenant, tmp_path) for s in ("merchant", "enricher")}
    try:
        _send(tenant, events[:half])
        topic = REGISTRY.topic("transactions", tenant)
        admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
        for future in admin.create_partitions([NewPartitions(topic, 8)]).values():
            future.result()
        _send(tenant, events[half:])  # a new producer: murmur2 over 8 partitions
        assert procs["enricher"].wait(120) == 2, "stops once it sees the new partitions"
        log = (tmp_path / "enricher-0.log").read_text()
        assert "scorestream state rescale" in log
        assert f"{tenant}.transactions has 8 partitions" in log
        env = os.environ | {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
        rescale = subprocess.run(
            [*RESCALE, "--tenant", tenant, "--store", "enricher"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert rescale.returncode == 0, rescale.stderr
        assert "changelog 6 → 8 partitions" in rescale.stdout
        procs["enricher"] = _start("enricher", tenant, tmp_path, instance="enricher-0")
        got = _once(_enriched(kafka_bootstrap, tenant, len(txs), timeout=240))
        assert procs["merchant"].poll() is None, "the merchant stage kept running"
    finally:
        for proc in procs.values():
            _stop(proc)
    assert len(got) == len(txs)
    # every transaction is in its account's state exactly once, wherever the state moved (an
    # account's records from both sides of the move may be processed out of order, so no single
    # record's windows need to hold them all; the state does)
    assert _account_totals(tenant) == dict(Counter(t.account_id for t in txs))


def _account_totals(tenant: str) -> dict[str, int]:
    """Per account, the transactions its state counts (the daily tiles hold all 21 days)."""
    from scorestream.features import AccountState  # noqa: PLC0415

    topic = REGISTRY.topic("enricher.state", tenant)
    conf = common_config(KafkaSettings(), client_id="tests") | {
        "group.id": f"tests-{uuid.uuid4().hex[:6]}",
        "isolation.level": "read_committed",
    }
    # the latest record of every key on every partition: a moved key has a live value at its new
    # home and a tombstone at its old one, and the partitions are read in no particular order
    latest: dict[tuple[bytes, int], bytes | None] = {}
    for msg in read_to_end(conf, topic):
        latest[(msg.key() or b"", msg.partition() or 0)] = msg.value()
    daily = next(i for i, g in enumerate(ENGINE.groups) if g.hop_s == 86400 and not g.where)
    out: dict[str, int] = {}
    for (key, partition), value in latest.items():
        if value is None:
            continue
        assert partition == partition_for(key, 8), "the state lives at its new home only"
        state = AccountState.from_bytes(value, ENGINE.signatures)
        out[key.decode()] = sum(count for count, _ in state.tiles[daily].values())
    return out


def test_a_tenant_without_topics_is_refused(kafka_bootstrap: str) -> None:
    from consumers.enricher import Enricher, EnricherSettings  # noqa: PLC0415
    from consumers.merchant import MerchantSettings, MerchantStage  # noqa: PLC0415
    from scorestream.errors import MissingTopicError  # noqa: PLC0415

    tenant = f"t{uuid.uuid4().hex[:10]}"
    # the kernel's one check, naming the provisioning command
    with pytest.raises(MissingTopicError, match=f"topics create --tenant {tenant}"):
        Enricher(EnricherSettings(tenant=tenant, health_port=0))
    with pytest.raises(MissingTopicError, match=f"topics create --tenant {tenant}"):
        MerchantStage(MerchantSettings(tenant=tenant, health_port=0))
