"""Issue 15, item 6 (downstream): a copy of one publish cannot become a second decision.

A producer whose delivery timed out although the broker stored the record, and that sent it again
under the same event id (the gateway derives it from the request), leaves two identical records
in ``<tenant>.transactions``. The real enricher process passes one of them on (so the worker,
decision and audit see the transaction once) and drops the copy; a re-publication under a new
event id is still enriched (and, as before, not counted twice in the windows).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer

from schemas.cloudevents import encode
from scorestream.admin import ensure_tenant_topics
from scorestream.topics import REGISTRY
from tests.factories import transaction
from tests.integration.test_enricher import _start, _stop
from tests.kafka_helpers import read_messages

pytestmark = pytest.mark.integration


def test_a_copy_is_enriched_once_and_a_republication_again(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    tenant = f"t{uuid.uuid4().hex[:10]}"
    ensure_tenant_topics(tenant)
    account = f"acc-{uuid.uuid4().hex[:6]}"
    base = transaction().model_copy(update={"tenant_id": tenant, "account_id": account})
    copied = base.model_copy(update={"transaction_id": "tx-copied"})
    marker = base.model_copy(update={"transaction_id": "tx-marker"})
    record = encode(copied, source="tests/timed-out-producer", event_id=str(uuid.uuid4()))
    republished = encode(copied, source="tests/timed-out-producer", event_id=str(uuid.uuid4()))
    last = encode(marker, source="tests")
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "partitioner": "murmur2_random"})
    topic = REGISTRY.topic("transactions", tenant)
    for m in (record, record, republished, last):  # the copy: the very same record twice
        producer.produce(topic, key=m.key, value=m.value, headers=list(m.headers))
    assert producer.flush(30) == 0

    proc = _start("enricher", tenant, tmp_path)
    try:
        enriched = read_messages(
            kafka_bootstrap, REGISTRY.topic("transactions.enriched", tenant), 3, timeout=120
        )
        more = read_messages(
            kafka_bootstrap, REGISTRY.topic("transactions.enriched", tenant), 4, timeout=5
        )
    finally:
        _stop(proc)
    assert len(more) == 3, "the copy was enriched too"
    ids = [json.loads(m.value() or b"{}")["transaction"]["transaction_id"] for m in enriched]
    assert ids == ["tx-copied", "tx-copied", "tx-marker"]
