"""Issue 15 item 17, the Kafka side: a transaction whose event time is outside the window around
now (a year-1900 timestamp, one a day ahead), published straight to ``<tenant>.transactions`` by
a producer that is not the gateway, goes to the enricher's DLQ with the reason
``event_time_out_of_window``; transactions inside the window are enriched as before."""

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
    proc = _start("enricher", tenant, tmp_path)
    try:
        produce_raw(kafka_bootstrap, REGISTRY.topic("transactions", tenant), records)
        got = _enriched(kafka_bootstrap, tenant, 2, timeout=90)
        dlq = read_messages(kafka_bootstrap, REGISTRY.dlq_topic("transactions", tenant), 2)
    finally:
        _stop(proc)
    assert sorted(e.event.transaction.transaction_id for e in got) == ["ok-history", "ok-now"]
    assert len(dlq) == 2
    by_key = {m.key(): dict(m.headers() or []) for m in dlq}
    assert set(by_key) == {b"acc-2", b"acc-3"}
    for headers in by_key.values():
        assert headers["dlq.reason"] == b"event_time_out_of_window"
        assert headers["dlq.service"] == b"enricher"
    assert b"in the past" in by_key[b"acc-2"]["dlq.message"]
    assert b"in the future" in by_key[b"acc-3"]["dlq.message"]
    originals = {key: value for key, value, _ in records}
    for msg in dlq:
        assert msg.value() == originals[msg.key()], "the raw record is kept"
