"""Kill real worker processes mid-stream: exactly one committed prediction per transaction."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest

from tests.kafka_helpers import read_messages
from tests.worker_support import (
    Tenant,
    enriched_events,
    exactly_once,
    new_tenant,
    publish_enriched,
    read_predictions,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAST_TXN = {"SCORESTREAM_WORKER_TRANSACTION_TIMEOUT_S": "10"}


@pytest.fixture
def tenant(kafka_bootstrap: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    t = new_tenant(tmp_path)
    t.publish_model("1")
    t.promote("1")
    yield t
    t.stop_all()


def _uncommitted(bootstrap: str, tenant: Tenant) -> int:
    """How far the worker got, including open transactions (a progress probe only)."""
    from confluent_kafka import Consumer, TopicPartition  # noqa: PLC0415

    c = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "probe", "isolation.level": "read_uncommitted"}
    )
    try:
        topic = tenant.topic("predictions")
        md = c.list_topics(topic, timeout=10).topics[topic]
        return sum(
            c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in md.partitions
        )
    finally:
        c.close()


def test_sigkill_twice_mid_stream_gives_exactly_once(kafka_bootstrap: str, tenant: Tenant) -> None:
    events = list(enriched_events(tenant.name, 20_000, accounts=500))
    sender = threading.Thread(target=publish_enriched, args=(tenant, events), kwargs={"rate": 5000})
    sender.start()
    kills = 0
    proc = tenant.start_worker("w-crash", **FAST_TXN)
    for threshold in (3000, 9000):
        wait_until(
            lambda t=threshold: _uncommitted(kafka_bootstrap, tenant) >= t,
            120,
            f"{threshold} predictions",
        )
        proc.send_signal(signal.SIGKILL)  # no drain, no commit, open transaction left behind
        proc.wait(10)
        kills += 1
        proc = tenant.start_worker("w-crash", **FAST_TXN)  # same transactional.id: fences
    sender.join(120)
    preds = read_predictions(kafka_bootstrap, tenant, len(events), timeout=180)
    assert kills == 2
    assert exactly_once(preds, {e.transaction.transaction_id for e in events}) == (0, 0, 0)
    assert len(preds) == len(events)


def test_killing_one_of_two_workers_moves_its_partitions(
    kafka_bootstrap: str, tenant: Tenant
) -> None:
    a = tenant.start_worker("w-a", **FAST_TXN)
    tenant.start_worker("w-b", **FAST_TXN)
    logs = tenant.repo_dir.parent
    wait_until(
        lambda: all("assigned [" in (logs / f"{w}.log").read_text() for w in ("w-a", "w-b")),
        60,
        "both workers assigned",
    )
    events = list(enriched_events(tenant.name, 8000, accounts=400))
    sender = threading.Thread(target=publish_enriched, args=(tenant, events), kwargs={"rate": 3000})
    sender.start()
    wait_until(lambda: _uncommitted(kafka_bootstrap, tenant) >= 2000, 60, "progress")
    a.send_signal(signal.SIGKILL)
    a.wait(10)
    sender.join(120)
    preds = read_predictions(kafka_bootstrap, tenant, len(events), timeout=180)
    assert exactly_once(preds, {e.transaction.transaction_id for e in events}) == (0, 0, 0)
    b_log = (logs / "w-b.log").read_text()
    assert b_log.count("assigned [") >= 2, "w-b was given w-a's partitions"


def test_sigterm_drains_within_10s_and_a_restart_loses_nothing(
    kafka_bootstrap: str, tenant: Tenant
) -> None:
    proc = tenant.start_worker("w-term", **FAST_TXN)
    events = list(enriched_events(tenant.name, 6000, accounts=300))
    sender = threading.Thread(target=publish_enriched, args=(tenant, events), kwargs={"rate": 3000})
    sender.start()
    wait_until(lambda: _uncommitted(kafka_bootstrap, tenant) >= 1500, 60, "progress")
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert time.monotonic() - started < 10
    # nothing is left open: every prediction written so far is committed and readable now
    topic = tenant.topic("predictions")
    written = read_messages(kafka_bootstrap, topic, 10**9, timeout=4, isolation="read_uncommitted")
    committed = read_messages(kafka_bootstrap, topic, len(written), timeout=10)
    assert len(committed) == len(written) > 0
    tenant.start_worker("w-term", **FAST_TXN)
    sender.join(60)
    preds = read_predictions(kafka_bootstrap, tenant, len(events), timeout=120)
    assert exactly_once(preds, {e.transaction.transaction_id for e in events}) == (0, 0, 0)
