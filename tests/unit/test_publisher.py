"""The publisher library without a broker: contract checks, trace context, the bounded queue."""

from __future__ import annotations

import json
import re

import pytest

from producers.publisher import (
    ContractViolationError,
    DeliveryReport,
    Publisher,
    PublisherClosedError,
    PublisherError,
    PublisherSettings,
    QueueFullError,
    child_traceparent,
    new_traceparent,
    parse_traceparent,
    trace_headers,
    validate_extensions,
    validate_transaction,
)
from schemas.events import TransactionEvent
from scorestream.errors import ConfigError, ScorestreamError
from scorestream.settings import KafkaSettings
from tests.factories import transaction, transaction_json

TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-01$")
VALID = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


# -- contract validation -------------------------------------------------------------------------


def test_valid_inputs_in_every_form_give_the_same_event() -> None:
    tx = transaction()
    assert validate_transaction(tx, tenant="acme") == tx
    assert validate_transaction(transaction_json(), tenant="acme") == tx
    assert validate_transaction(json.dumps(transaction_json()), tenant="acme") == tx
    assert validate_transaction(tx.model_dump(), tenant="acme") == tx  # datetimes, enums


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"amount_minor": "12"}, "amount_minor", "int_type"),  # strict: no string → int
        ({"amount_minor": -1}, "amount_minor", "greater_than_equal"),
        ({"currency": "XXQ"}, "currency", "value_error"),
        ({"timestamp": "2026-11-24T12:00:00"}, "timestamp", "timezone_aware"),
        ({"channel": "telepathy"}, "channel", "enum"),
        ({"mcc": "54"}, "mcc", "string_pattern_mismatch"),
        ({"tenant_id": "other"}, "tenant_id", "tenant_mismatch"),
    ],
)
def test_contract_violations_name_the_field(
    change: dict[str, object], field: str, code: str
) -> None:
    with pytest.raises(ContractViolationError) as info:
        validate_transaction(transaction_json(**change), tenant="acme")
    assert info.value.fields == (field,)
    assert info.value.errors[0].code == code
    assert isinstance(info.value, PublisherError)
    assert isinstance(info.value, ScorestreamError)


def test_missing_fields_malformed_json_and_wrong_types_are_rejected() -> None:
    data = transaction_json()
    del data["account_id"], data["mcc"]
    with pytest.raises(ContractViolationError) as info:
        validate_transaction(data, tenant="acme")
    assert set(info.value.fields) == {"account_id", "mcc"}
    with pytest.raises(ContractViolationError) as info:
        validate_transaction(b"{not json", tenant="acme")
    assert info.value.errors[0].code == "json_invalid"
    with pytest.raises(ContractViolationError, match="got int"):
        validate_transaction(42, tenant="acme")  # type: ignore[arg-type]


def test_an_unvalidated_model_construct_is_caught() -> None:
    bogus = TransactionEvent.model_construct(**(transaction_json() | {"amount_minor": -5}))  # type: ignore[arg-type]
    with pytest.raises(ContractViolationError) as info:
        validate_transaction(bogus, tenant="acme")
    assert "amount_minor" in info.value.fields


def test_extensions_are_checked() -> None:
    assert validate_extensions({"replyto": "acme.replies/3"}) == {"replyto": "acme.replies/3"}
    assert validate_extensions(None) == {}
    with pytest.raises(ContractViolationError, match="replyto"):
        validate_extensions({"replyto": "acme.replies"})
    with pytest.raises(ContractViolationError):
        validate_extensions({"Reply_To": "x/1"})


# -- trace context -------------------------------------------------------------------------------


def test_new_traceparent_is_w3c_and_random() -> None:
    values = {new_traceparent() for _ in range(200)}
    assert len(values) == 200
    for value in values:
        assert TRACEPARENT.match(value), value
        assert parse_traceparent(value) is not None
    assert new_traceparent(sampled=False).endswith("-00")


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "garbage",
        "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",  # upper case
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",  # zero trace id
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  # zero span id
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # forbidden version
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",  # v00 has 4 fields
        "00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01",  # short trace id
    ],
)
def test_invalid_traceparents_start_a_new_trace(bad: str) -> None:
    assert parse_traceparent(bad) is None
    headers = trace_headers(bad, "vendor=1")
    assert TRACEPARENT.match(headers["traceparent"])
    assert "tracestate" not in headers  # W3C: tracestate is dropped with an invalid parent


def test_valid_traceparent_passes_through_and_children_keep_the_trace() -> None:
    assert trace_headers(VALID, "congo=t61rcWkgMzE") == {
        "traceparent": VALID,
        "tracestate": "congo=t61rcWkgMzE",
    }
    assert trace_headers(None) != trace_headers(None)
    future_version = "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-more"
    assert parse_traceparent(future_version) is not None  # higher versions may add fields
    child = child_traceparent(VALID)
    assert child.startswith("00-0af7651916cd43dd8448eb211c80319c-")
    assert child != VALID
    assert child.endswith("-01")
    assert TRACEPARENT.match(child_traceparent(None))


# -- the bounded queue and typed errors (a client, but no broker) ------------------------------


def unreachable() -> KafkaSettings:
    return KafkaSettings(bootstrap_servers="127.0.0.1:1")


def test_settings_and_construction_errors() -> None:
    with pytest.raises(ValueError, match="tenant"):
        PublisherSettings(tenant="Not A Tenant")
    with pytest.raises(ConfigError):
        Publisher(PublisherSettings(tenant="acme"), kafka=unreachable(), source="x")


def test_full_queue_fails_fast_with_a_clear_error_and_close_fails_the_rest() -> None:
    pub = Publisher(
        tenant="acme",
        source="tests",
        max_pending=2,
        kafka=unreachable(),
        config_overrides={"log_level": 0},  # connection refused is the point: keep quiet
    )
    try:
        first = pub.send(transaction(transaction_id="a"))
        second = pub.send(transaction(transaction_id="b"))
        assert pub.pending == 2
        with pytest.raises(QueueFullError, match=r"max_pending=2"):
            pub.send(transaction(transaction_id="c"))
        with pytest.raises(QueueFullError):
            pub.send(transaction(transaction_id="c"), enqueue_timeout_s=0.1)
        with pytest.raises(ContractViolationError):
            pub.send(transaction(tenant_id="other"))
        assert pub.pending == 2  # rejected records take no room
    finally:
        pub.close(timeout=0.2)
    for future in (first, second):
        with pytest.raises(PublisherClosedError):
            future.result(1)
    assert pub.pending == 0
    with pytest.raises(PublisherClosedError):
        pub.send(transaction())


def test_delivery_report_trace_id() -> None:
    report = DeliveryReport("e", "tx", "acme.transactions", 1, 7, VALID, 0.01)
    assert report.trace_id == "0af7651916cd43dd8448eb211c80319c"
