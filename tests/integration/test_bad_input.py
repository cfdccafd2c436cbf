"""Bad records on a real topic: typed errors naming the field, raw bytes preserved."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from schemas import (
    DecodeError,
    MalformedPayloadError,
    MissingHeaderError,
    SchemaViolationError,
    encode,
)
from scorestream.serde import decode_message
from tests.factories import transaction, transaction_json
from tests.kafka_helpers import produce_raw, read_messages

pytestmark = pytest.mark.integration

HEADERS = encode(transaction(), source="tests/bad").headers


def _json(**overrides: object) -> bytes:
    return json.dumps(transaction_json(**overrides)).encode()


def _without(field: str) -> bytes:
    data = transaction_json()
    del data[field]
    return json.dumps(data).encode()


CASES: dict[str, tuple[bytes, list[tuple[str, bytes]], type[DecodeError], str]] = {
    "invalid-json": (b'{"transaction_id": "tx-1", ', HEADERS, MalformedPayloadError, "<root>"),
    "wrong-type": (_json(amount_minor="100"), HEADERS, SchemaViolationError, "amount_minor"),
    "missing-field": (_without("merchant_id"), HEADERS, SchemaViolationError, "merchant_id"),
    "negative-amount": (_json(amount_minor=-100), HEADERS, SchemaViolationError, "amount_minor"),
    "naive-timestamp": (
        _json(timestamp="2026-11-24T10:00:00"),
        HEADERS,
        SchemaViolationError,
        "timestamp",
    ),
    "unknown-currency": (_json(currency="ABC"), HEADERS, SchemaViolationError, "currency"),
    "no-headers": (_json(), [], MissingHeaderError, "headers.ce_type"),
}


def test_bad_records_from_kafka_raise_typed_errors(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic("bad-input", partitions=1)
    records = [
        (name.encode(), value, [*headers, ("x-case", name.encode())])
        for name, (value, headers, _, _) in CASES.items()
    ]
    produce_raw(kafka_bootstrap, topic, records)
    messages = read_messages(kafka_bootstrap, topic, len(records))
    assert len(messages) == len(CASES)
    for msg in messages:
        name = (msg.key() or b"").decode()
        value, headers, error, field = CASES[name]
        with pytest.raises(DecodeError) as info:
            decode_message(msg)
        exc = info.value
        assert type(exc) is error, name
        assert field in exc.fields, (name, exc.fields)
        # the raw record is intact for the DLQ: original key, bytes, headers and position
        assert exc.raw.key == name.encode()
        assert exc.raw.value == value
        assert exc.raw.headers == [*headers, ("x-case", name.encode())]
        assert (exc.raw.topic, exc.raw.partition, exc.raw.offset) == (
            topic,
            msg.partition(),
            msg.offset(),
        )
