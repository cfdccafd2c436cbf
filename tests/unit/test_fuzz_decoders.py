"""Property tests: arbitrary bytes and headers never break a decoder with an untyped error.

Every entry point that turns outside bytes into a contract is covered: the CloudEvents codec
(``schemas.cloudevents.decode``), the Kafka-message decoder every service uses
(``scorestream.serde.decode_message``) and the gateway's request parsers (``/v1`` JSON bodies,
KServe V2 infer requests, the ``Prefer`` header). The property: the result is either a valid
event or the typed error the transport maps to a DLQ entry (``DecodeError``) or a 4xx
(``RequestInvalid`` → 422, ``V2RequestError`` → 400) — never a ``KeyError``, ``TypeError``,
``RecursionError`` or anything else that would crash a consumer loop or become a 500.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers.gateway import RequestInvalid, parse_transaction
from producers.gateway.http import parse_deadline
from producers.gateway.v2 import InferRequest, V2RequestError, parse_infer_request
from schemas.catalog import BY_CE_TYPE
from schemas.cloudevents import Envelope, decode, encode
from schemas.errors import DecodeError, RawRecord
from schemas.events import TransactionEvent
from scorestream.serde import decode_message
from tests.factories import transaction, transaction_json

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TENANT = "acme"
CE_TYPES = [*sorted(BY_CE_TYPE), "scorestream.bogus.v1", "", "scorestream.transaction.v1 "]
HEADER_NAMES = [
    "ce_specversion",
    "ce_id",
    "ce_type",
    "ce_source",
    "ce_time",
    "content-type",
    "traceparent",
    "ce_tenantid",
    "x-other",
]

header_values = st.one_of(
    st.none(),
    st.binary(max_size=64),
    st.sampled_from([b"1.0", b"0.3", b"application/json", b"text/plain", b"\xff\xfe"]),
    st.sampled_from([t.encode() for t in CE_TYPES]),
    st.sampled_from(
        [b"2026-11-24T10:00:00Z", b"2026-11-24T10:00:00", b"9999-12-31T23:59:59Z", b"nan"]
    ),
)
headers = st.lists(
    st.tuples(st.one_of(st.sampled_from(HEADER_NAMES), st.text(max_size=12)), header_values),
    max_size=12,
)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)


def _mutated_transaction(draw: st.DrawFn) -> bytes:
    """A valid transaction with one field replaced by an arbitrary JSON value (or removed)."""
    data: dict[str, Any] = transaction_json()
    name = draw(st.sampled_from(sorted(data)))
    if draw(st.booleans()):
        data.pop(name)
    else:
        data[name] = draw(json_values)
    text = json.dumps(data, allow_nan=True)
    if draw(st.booleans()):
        text = text[: draw(st.integers(min_value=0, max_value=len(text)))]
    return text.encode()


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["bytes", "json", "mutated"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "json":
        return json.dumps(draw(json_values), allow_nan=True).encode()
    return _mutated_transaction(draw)


def _assert_decodes_or_typed_error(raw: RawRecord) -> None:
    try:
        envelope: Envelope[Any] | DecodeError = decode(raw)
    except DecodeError as exc:
        envelope = exc
    if isinstance(envelope, DecodeError):
        assert envelope.raw is raw  # the DLQ gets the record unchanged
        assert envelope.reason
    else:
        assert isinstance(envelope.event, tuple(BY_CE_TYPE.values()))


@FUZZ
@given(key=st.one_of(st.none(), st.binary(max_size=40)), value=payloads(), hdrs=headers)
def test_cloudevents_decode_raises_only_decode_errors(
    key: bytes | None, value: bytes, hdrs: list[tuple[str, bytes | None]]
) -> None:
    _assert_decodes_or_typed_error(RawRecord(key=key, value=value, headers=hdrs))


@FUZZ
@given(value=payloads(), ce_type=st.sampled_from(CE_TYPES), ce_time=header_values)
def test_decode_with_valid_headers_reaches_the_payload(
    value: bytes, ce_type: str, ce_time: bytes | None
) -> None:
    """Valid CloudEvents headers, so the payload validation path is what gets fuzzed."""
    base = dict(encode(transaction(), source="tests/fuzz").headers)
    base["ce_type"] = ce_type.encode()
    hdrs: list[tuple[str, bytes | None]] = [
        (k, v if isinstance(v, bytes) else str(v).encode()) for k, v in base.items()
    ]
    hdrs.append(("ce_time", ce_time))
    _assert_decodes_or_typed_error(RawRecord(key=b"k", value=value, headers=hdrs))


class _Record:
    """The accessors of ``confluent_kafka.Message`` (whose instances only librdkafka can
    create), holding a record as a consumer would receive it."""

    def __init__(
        self, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes | None]]
    ) -> None:
        self._key, self._value, self._headers = key, value, headers

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes | None]] | None:
        return self._headers or None

    def topic(self) -> str:
        return "acme.transactions"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 42

    def timestamp(self) -> tuple[int, int]:

        return (1, 1_764_000_000_000)  # TIMESTAMP_CREATE_TIME, a fixed time


@FUZZ
@given(
    key=st.one_of(st.none(), st.binary(max_size=40)),
    value=st.one_of(st.none(), payloads()),
    hdrs=headers,
    accept_transactions_only=st.booleans(),
)
def test_decode_message_raises_only_decode_errors(
    key: bytes | None,
    value: bytes | None,
    hdrs: list[tuple[str, bytes | None]],
    accept_transactions_only: bool,
) -> None:
    accept = [TransactionEvent] if accept_transactions_only else None
    record = _Record(key, value, hdrs)
    try:
        result: Envelope[Any] | DecodeError = decode_message(record, accept=accept)  # type: ignore[arg-type]
    except DecodeError as exc:
        result = exc
    if isinstance(result, DecodeError):
        assert result.raw.value == value
        assert (result.raw.topic, result.raw.partition, result.raw.offset) == (
            "acme.transactions",
            0,
            42,
        )
    elif accept_transactions_only:
        assert isinstance(result.event, TransactionEvent)


def test_a_valid_record_still_decodes() -> None:
    """The property tests would pass vacuously if nothing ever decoded: anchor the happy path."""
    message = encode(transaction(), source="tests/fuzz")
    hdrs = [(k, v if isinstance(v, bytes) else str(v).encode()) for k, v in message.headers]
    envelope = decode_message(_Record(message.key, message.value, hdrs))  # type: ignore[arg-type]
    assert isinstance(envelope.event, TransactionEvent)


# -- the gateway ---------------------------------------------------------------------------------


@FUZZ
@given(body=payloads())
def test_gateway_body_parser_raises_only_request_invalid(body: bytes) -> None:
    try:
        tx: TransactionEvent | RequestInvalid = parse_transaction(body, TENANT)
    except RequestInvalid as exc:
        tx = exc
    if isinstance(tx, RequestInvalid):
        assert tx.detail
        assert all("loc" in d and "msg" in d and "type" in d for d in tx.detail)
        json.dumps(tx.detail)  # the 422 body must be serialisable
    else:
        assert tx.tenant_id == TENANT
        assert tx.amount_minor >= 0


tensor_names = st.sampled_from(
    ["transaction_id", "account_id", "merchant_id", "amount_minor", "currency", "x", ""]
)
datatypes = st.sampled_from(["BYTES", "INT64", "FP32", "BOOL", "UINT8", "bogus", ""])


@st.composite
def infer_bodies(draw: st.DrawFn) -> tuple[bytes, int | None]:
    inputs = draw(
        st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "name": tensor_names,
                    "datatype": datatypes,
                    "shape": st.lists(st.integers(-2, 2**40), max_size=3) | json_values,
                    "data": st.lists(json_scalars, max_size=4) | json_values,
                    "parameters": st.dictionaries(st.text(max_size=12), json_scalars),
                },
            ),
            max_size=4,
        )
        | json_values
    )
    request: Any = {"inputs": inputs}
    if draw(st.booleans()):
        request["parameters"] = draw(json_values)
    if draw(st.booleans()):
        request["outputs"] = draw(json_values)
    if draw(st.booleans()):
        request = draw(json_values)
    head = json.dumps(request, allow_nan=True).encode()
    if draw(st.booleans()):
        return head, None
    binary = draw(st.binary(max_size=64))
    length = draw(st.one_of(st.just(len(head)), st.integers(-5, len(head) + len(binary) + 5)))
    return head + binary, length


@FUZZ
@given(body=infer_bodies())
def test_v2_infer_parser_raises_only_v2_request_errors(body: tuple[bytes, int | None]) -> None:
    data, header_length = body
    now = datetime(2026, 11, 24, tzinfo=UTC)
    try:
        request: InferRequest | V2RequestError = parse_infer_request(data, header_length, now=now)
    except V2RequestError as exc:
        request = exc
    if isinstance(request, V2RequestError):
        assert str(request)
    else:
        assert all(isinstance(row, dict) for row in request.rows)


@FUZZ
@given(
    prefer=st.one_of(
        st.none(),
        st.text(max_size=40),
        st.text(alphabet="-+0123456789.eEinfa", max_size=8).map(lambda v: f"wait={v}"),
    ),
    default=st.floats(min_value=0.001, max_value=100),
    maximum=st.floats(min_value=0.001, max_value=100),
)
def test_prefer_header_always_gives_a_finite_deadline_within_the_maximum(
    prefer: str | None, default: float, maximum: float
) -> None:
    deadline = parse_deadline(prefer, default_s=default, max_s=maximum)
    assert math.isfinite(deadline)
    assert 0 < deadline <= maximum
    if prefer is None:
        assert deadline == min(default, maximum)
