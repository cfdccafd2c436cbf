"""Dead letters that cannot fail their batch: a full copy when it fits, else a pointer."""

from __future__ import annotations

import json
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from schemas.errors import RawRecord
from schemas.events import PredictionEvent
from scorestream.dlq import DeadLetter, fits, record_size
from scorestream.processor import Emit, OutRecord, Result
from scorestream.topics import MAX_MESSAGE_BYTES, REGISTRY
from tests.factories import every_contract
from tests.unit.test_processor_fatal import TOPIC, FakeProducer, processor

LIMIT = MAX_MESSAGE_BYTES


def _dead(value_bytes: int, *, key: bytes = b"acct-1", headers: int = 3) -> DeadLetter:
    raw = RawRecord(
        key=key,
        value=b"x" * value_bytes,
        headers=[(f"h{i}", f"v{i}".encode()) for i in range(headers)],
        topic=TOPIC,
        partition=4,
        offset=1234,
    )
    return DeadLetter(raw, "malformed_payload", "MalformedPayloadError", "not JSON")


def test_a_record_that_fits_is_copied_byte_for_byte() -> None:
    dl = _dead(1000)
    rec = dl.record("enricher", max_bytes=LIMIT)
    assert not rec.pointer
    assert (rec.key, rec.value) == (dl.raw.key, dl.raw.value)
    assert rec.headers[:3] == dl.raw.headers
    assert dict(rec.headers)["dlq.reason"] == "malformed_payload"


def test_a_record_the_broker_accepted_but_too_large_to_copy_becomes_a_pointer() -> None:
    # accepted on the input (just under the limit), but the dlq.* headers push the copy over
    dl = _dead(LIMIT - 200)
    assert not fits(dl.raw.key, dl.raw.value, dl.headers("worker"), LIMIT)
    rec = dl.record("worker", max_bytes=LIMIT)
    assert rec.pointer
    assert rec.key == b"acct-1"
    headers = dict(rec.headers)
    assert headers["dlq.pointer"] == "true"
    assert headers["dlq.reason"] == "malformed_payload"
    assert (headers["dlq.source.topic"], headers["dlq.source.partition"]) == (TOPIC, "4")
    assert headers["dlq.source.offset"] == "1234"
    assert int(str(headers["dlq.source.size"])) > LIMIT - 200
    assert [h for h in rec.headers if h[0].startswith("h")] == dl.raw.headers
    assert rec.value is not None
    body = json.loads(rec.value)
    assert (body["topic"], body["partition"], body["offset"]) == (TOPIC, 4, 1234)
    assert body["value_bytes"] == LIMIT - 200
    assert body["reason"] == "malformed_payload"
    assert record_size(rec.key, rec.value, rec.headers) < 16 * 1024
    assert fits(rec.key, rec.value, rec.headers, LIMIT)


def test_a_pointer_keeps_the_headers_that_fit_and_drops_a_huge_key() -> None:
    raw = RawRecord(
        key=b"k" * 5000,
        value=b"v",
        headers=[("small", b"1"), ("big", b"b" * LIMIT), ("after", b"2")],
        topic="t.predictions",
        partition=0,
        offset=7,
    )
    rec = DeadLetter(raw, "schema_violation", "SchemaViolationError", "bad").record(
        "monitor", max_bytes=LIMIT
    )
    assert rec.pointer
    assert rec.key is None
    names = [name for name, _ in rec.headers]
    assert names[0] == "small"
    assert "big" not in names
    assert "after" not in names  # headers are kept as an in-order prefix
    assert rec.value is not None
    assert json.loads(rec.value)["key_bytes"] == 5000
    assert fits(rec.key, rec.value, rec.headers, LIMIT)


def test_fits_leaves_room_for_compression_overhead() -> None:
    assert fits(None, b"x" * 900_000, [], LIMIT)
    assert not fits(None, b"x" * (LIMIT - 100), [], LIMIT)


def test_every_topic_declares_the_producers_limit() -> None:
    for spec in REGISTRY.streams:
        assert spec.topic_config()["max.message.bytes"] == str(LIMIT)
        assert spec.max_message_bytes <= MAX_MESSAGE_BYTES


def _prediction() -> PredictionEvent:
    return next(e for e in every_contract() if isinstance(e, PredictionEvent))


class SmallLimitProducer(FakeProducer):
    """A producer whose ``message.max.bytes`` is smaller than the processor was told."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.records: list[tuple[str, bytes | None, list[Any]]] = []

    def produce(self, topic: str, **kw: Any) -> None:  # type: ignore[override]
        value = kw.get("value")
        if value is not None and len(value) > self.limit:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        self.records.append((topic, value, kw.get("headers") or []))


def test_a_dead_letter_refused_by_the_producer_becomes_a_pointer_and_the_batch_commits() -> None:
    producer = SmallLimitProducer(limit=500_000)
    p, _ = processor(producer)
    dl = _dead(600_000)  # fits the registry's limit, not this producer's
    assert p._commit_transaction(Result(dead_letters=[dl]), [], {}) is True
    [(topic, value, headers)] = producer.records
    assert topic == "acme.predictions.dlq"
    assert dict(headers)["dlq.pointer"] == "true"
    assert value is not None
    assert json.loads(value)["offset"] == 1234


def test_other_produce_errors_still_fail_the_batch() -> None:
    producer = SmallLimitProducer(limit=500_000)
    p, _ = processor(producer)
    big = Emit(TOPIC, _prediction(), value=b"x" * 600_000)
    with pytest.raises(KafkaException):
        p._commit_transaction(Result(emits=[big]), [], {})


def test_an_output_too_large_for_its_topic_is_replaced_by_its_fallback_dead_letter() -> None:
    producer = SmallLimitProducer(limit=MAX_MESSAGE_BYTES)
    p, _ = processor(producer)
    dl = _dead(LIMIT - 150)
    moved = OutRecord(TOPIC, dl.raw.key, dl.raw.value, [("moved", b"1" * 100)], 1, fallback=dl)
    small = OutRecord(TOPIC, b"k", b"v", fallback=_dead(10))
    result = Result(records=[moved, small])
    assert p._commit_transaction(result, [], {}) is True
    [(t1, v1, h1), (t2, v2, _)] = producer.records
    assert (t1, dict(h1)["dlq.pointer"]) == ("acme.predictions.dlq", "true")
    assert json.loads(v1 or b"")["offset"] == 1234
    assert (t2, v2) == (TOPIC, b"v")  # one that fits is produced as is
    assert result.dead_letters == [dl]  # counted and logged as a dead letter
