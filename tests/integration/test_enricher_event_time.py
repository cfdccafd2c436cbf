"""Issue 15 item 17, the Kafka side: a transaction whose event time is outside the window around
now (a year-1900 timestamp, one a day ahead), published straight to ``<tenant>.transactions`` by
a producer that is not the gateway, goes to the DLQ with the reason ``event_time_out_of_window``
— from the enricher and from the merchant stage, the other consumer of the topic (a merchant
never counts what no account does); transactions inside the window are enriched as before."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schemas.cloudevents import encode
from scorestream.topics import REGISTRY
from tests.factories import T0, transaction
from tests.integration.test_enricher import _enriched, _start, _stop, _tenant
from tests.kafka_helpers import produce_raw, read_messages

pytestmark = pytest.mark.integration


def test_event_times_outside_the_window_go_to_the_dlq(kafka_bootstrap: str, tmp_path: Path) -> None:
    tenant = _tenant()
    now = datetime.now(UTC)
    when = {
        "ok-now": now - timedelta(seconds=5),
        "ok-history": T0,  # weeks old: replays and backfills are fine
        "bad-1900": datetime(1900, 1, 1, tzinfo=UTC),
        "bad-future": now + timedelta(days=1),
    }
    records = []
    for i, (name, stamp) in enumerate(when.items()):
        tx = transaction(
            tenant_id=tenant, transaction_id=name, account_id=f"acc-{i}", timestamp=stamp
        )
        m = encode(tx, source="tests/java-like-producer")
        records.append((m.key, m.value, list(m.headers)))
    procs = [_start(service, tenant, tmp_path) for service in ("enricher", "merchant")]
    try:
        produce_raw(kafka_bootstrap, REGISTRY.topic("transactions", tenant), records)
        got = _enriched(kafka_bootstrap, tenant, 2, timeout=90)
        dlq = read_messages(kafka_bootstrap, REGISTRY.dlq_topic("transactions", tenant), 4)
    finally:
        for proc in procs:
            _stop(proc)
    assert sorted(e.event.transaction.transaction_id for e in got) == ["ok-history", "ok-now"]
    assert len(dlq) == 4
    by_key = {
        (m.key(), dict(m.headers() or [])["dlq.service"]): dict(m.headers() or []) for m in dlq
    }
    services = (b"enricher", b"merchant")
    assert set(by_key) == {(k, s) for k in (b"acc-2", b"acc-3") for s in services}
    for headers in by_key.values():
        assert headers["dlq.reason"] == b"event_time_out_of_window"
    for service in services:
        assert b"in the past" in by_key[b"acc-2", service]["dlq.message"]
        assert b"in the future" in by_key[b"acc-3", service]["dlq.message"]
    originals = {key: value for key, value, _ in records}
    for msg in dlq:
        assert msg.value() == originals[msg.key()], "the raw record is kept"
