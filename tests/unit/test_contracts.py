from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from schemas import (
    CONTRACTS,
    Contract,
    DecodeError,
    MalformedPayloadError,
    RawRecord,
    SchemaViolationError,
    TransactionEvent,
    decode,
    encode,
)
from tests.factories import every_contract, transaction, transaction_json


def test_every_contract_has_an_example_and_a_unique_ce_type() -> None:
    examples = every_contract()
    assert {type(e) for e in examples} == set(CONTRACTS)
    assert len({c.ce_type for c in CONTRACTS}) == len(CONTRACTS)
    assert all(c.ce_type.startswith("scorestream.") and ".v" in c.ce_type for c in CONTRACTS)


@pytest.mark.parametrize("event", every_contract(), ids=lambda e: type(e).__name__)
def test_json_round_trip_is_lossless(event: object) -> None:
    cls = type(event)
    assert cls.model_validate_json(event.model_dump_json()) == event  # type: ignore[attr-defined]


@pytest.mark.parametrize("event", every_contract(), ids=lambda e: type(e).__name__)
def test_trusted_construction_equals_validation(event: Contract) -> None:
    cls = type(event)
    values = dict(event)  # every field, defaults included
    trusted = cls.trusted(dict(values))
    assert trusted == cls.model_validate(values)
    assert trusted.model_dump_json() == event.model_dump_json()
    assert trusted.model_fields_set == set(cls.model_fields)
    with pytest.raises(ValidationError):  # still frozen
        trusted.__setattr__(next(iter(values)), None)


def test_timestamps_are_normalised_to_utc() -> None:
    cet = timezone(timedelta(hours=1))
    tx = transaction(timestamp=datetime(2026, 11, 24, 13, 0, tzinfo=cet))
    assert tx.timestamp == datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    assert tx.timestamp.utcoffset() == timedelta(0)


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    data = transaction_json(added_in_a_later_minor_version="x")
    assert TransactionEvent.model_validate_json(json.dumps(data)) == transaction()


def _decode_tx(payload: bytes) -> DecodeError:
    good = encode(transaction(), source="test")
    raw = RawRecord(key=b"acc-42", value=payload, headers=good.headers, topic="t", offset=7)
    with pytest.raises(DecodeError) as info:
        decode(raw)
    assert info.value.raw is raw  # the DLQ gets the original bytes and headers
    assert info.value.raw.value == payload
    return info.value


BAD_PAYLOADS = [
    ("invalid json", b'{"transaction_id": ', MalformedPayloadError, "<root>"),
    ("not utf8", b"\xff\xfe\x00garbage", MalformedPayloadError, "<root>"),
    ("amount as string", transaction_json(amount_minor="12"), SchemaViolationError, "amount_minor"),
    ("amount as float", transaction_json(amount_minor=12.5), SchemaViolationError, "amount_minor"),
    ("negative amount", transaction_json(amount_minor=-1), SchemaViolationError, "amount_minor"),
    (
        "naive timestamp",
        transaction_json(timestamp="2026-11-24T12:00:00"),
        SchemaViolationError,
        "timestamp",
    ),
    ("unknown currency", transaction_json(currency="XYZ"), SchemaViolationError, "currency"),
    ("lower-case currency", transaction_json(currency="eur"), SchemaViolationError, "currency"),
    ("unknown country", transaction_json(country="ZZ"), SchemaViolationError, "country"),
    ("bad channel", transaction_json(channel="carrier_pigeon"), SchemaViolationError, "channel"),
    ("bad mcc", transaction_json(mcc="54"), SchemaViolationError, "mcc"),
    ("bad tenant", transaction_json(tenant_id="Acme Corp"), SchemaViolationError, "tenant_id"),
]


@pytest.mark.parametrize(
    ("payload", "error", "field"), [b[1:] for b in BAD_PAYLOADS], ids=[b[0] for b in BAD_PAYLOADS]
)
def test_bad_payloads_raise_typed_errors_naming_the_field(
    payload: bytes | dict[str, object], error: type[DecodeError], field: str
) -> None:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    exc = _decode_tx(raw)
    assert type(exc) is error
    assert field in exc.fields, exc.fields
    assert field in str(exc)


@pytest.mark.parametrize("missing", ["transaction_id", "amount_minor", "timestamp", "currency"])
def test_missing_fields_are_named(missing: str) -> None:
    data = transaction_json()
    del data[missing]
    exc = _decode_tx(json.dumps(data).encode())
    assert isinstance(exc, SchemaViolationError)
    assert exc.fields == (missing,)
    assert exc.errors[0].code == "missing"


def test_far_future_event_times_are_schema_violations() -> None:
    data = transaction_json()
    data["timestamp"] = "9999-12-31T23:59:59Z"
    exc = _decode_tx(json.dumps(data).encode())
    assert isinstance(exc, SchemaViolationError)
    assert exc.fields == ("timestamp",)
    soon = datetime.now(UTC) + timedelta(days=30)  # simulations run some weeks ahead: fine
    data["timestamp"] = soon.isoformat()
    good = encode(transaction(), source="test")
    raw = RawRecord(key=b"acc-42", value=json.dumps(data).encode(), headers=good.headers, topic="t")
    assert decode(raw).event.timestamp == soon


def test_nested_field_paths_are_dotted() -> None:
    from schemas import EnrichedTransaction  # noqa: PLC0415

    good = every_contract()[1]
    data = good.model_dump(mode="json")
    data["transaction"]["amount_minor"] = -5
    raw = RawRecord(
        key=b"k",
        value=json.dumps(data).encode(),
        headers=encode(good, source="t").headers,
    )
    with pytest.raises(SchemaViolationError) as info:
        decode(raw, accept=[EnrichedTransaction])
    assert info.value.fields == ("transaction.amount_minor",)


def test_non_finite_feature_values_are_rejected() -> None:
    good = every_contract()[1]
    text = good.model_dump_json().replace("123.45", "NaN")
    raw = RawRecord(key=b"k", value=text.encode(), headers=encode(good, source="t").headers)
    with pytest.raises(DecodeError) as info:
        decode(raw)
    assert any(f.startswith("features") for f in info.value.fields) or isinstance(
        info.value, MalformedPayloadError
    )


def test_decode_error_describe_never_contains_the_payload() -> None:
    exc = _decode_tx(
        json.dumps(transaction_json(amount_minor=-1, account_id="SECRET-PAN")).encode()
    )
    assert "SECRET-PAN" not in json.dumps(exc.describe())
