"""The kernel's batch codec (``scorestream.codec``) against the reference decoder it replaces.

For any batch of records (valid CloudEvents, damaged headers, damaged payloads, wrong keys) the
batch codec gives exactly what decoding each record with ``scorestream.serde.decode_message``
gave: equal envelopes, in order, and for every record the reference refuses a dead letter with
the same reason, error class and message, carrying the raw record unchanged — while the rest of
the batch proceeds. The common case must take the fast path (counted by the codec).
"""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_NOT_AVAILABLE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.cloudevents import Envelope, encode
from schemas.errors import DecodeError, Headers, RawRecord
from schemas.events import (
    Contract,
    DecisionEvent,
    EnrichedTransaction,
    LabelEvent,
    PredictionEvent,
    TransactionEvent,
)
from scorestream.codec import BatchDecoder, decode_raw_batch
from scorestream.dlq import DeadLetter
from scorestream.serde import decode_message
from tests.factories import every_contract, transaction

PROPERTY = settings(
    max_examples=int(os.environ.get("FAST_CODEC_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
ACCEPT: tuple[type[Contract], ...] = (
    TransactionEvent,
    EnrichedTransaction,
    PredictionEvent,
    DecisionEvent,
    LabelEvent,
)
KEYED: tuple[type[Contract], ...] = (EnrichedTransaction, PredictionEvent)
EXAMPLES = [e for e in every_contract() if isinstance(e, ACCEPT)]
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class _Msg:
    """The accessors of ``confluent_kafka.Message`` the codec reads."""

    def __init__(self, raw: RawRecord) -> None:
        self.raw = raw

    def key(self) -> bytes | None:
        return self.raw.key

    def value(self) -> bytes | None:
        return self.raw.value

    def headers(self) -> Headers:
        return self.raw.headers

    def topic(self) -> str | None:
        return self.raw.topic

    def partition(self) -> int | None:
        return self.raw.partition

    def offset(self) -> int | None:
        return self.raw.offset

    def timestamp(self) -> tuple[int, int]:
        ms = self.raw.timestamp_ms
        return (TIMESTAMP_NOT_AVAILABLE, -1) if ms is None else (TIMESTAMP_CREATE_TIME, ms)


def _record(event: Contract, offset: int, **trace: str) -> RawRecord:
    msg = encode(event, source="tests/codec", trace=trace or {"traceparent": TRACEPARENT})
    return RawRecord(
        msg.key, msg.value, list(msg.headers), "in", 0, offset, 1_764_000_000_000 + offset
    )


def _reference(raws: list[RawRecord]) -> list[Envelope[Any] | DeadLetter]:
    out: list[Envelope[Any] | DeadLetter] = []
    for raw in raws:
        try:
            out.append(decode_message(_Msg(raw), accept=ACCEPT, keyed=KEYED))  # type: ignore[arg-type]
        except DecodeError as exc:
            out.append(DeadLetter.from_decode_error(exc))
    return out


def _comparable(env: Envelope[Any]) -> Envelope[Any]:
    """The envelope, with the decode time in place of ``time`` when the record has no
    ``ce_time`` (both decoders stamp it with the clock then)."""
    stamped = env.raw is not None and any(k == "ce_time" and v for k, v in env.raw.headers)
    return env if stamped else dataclasses.replace(env, time=datetime(1970, 1, 1, tzinfo=UTC))


def _assert_same_as_reference(raws: list[RawRecord]) -> BatchDecoder:
    codec = BatchDecoder(ACCEPT, keyed=KEYED)
    envelopes, dead, positions = codec.decode([_Msg(r) for r in raws])  # type: ignore[misc]
    expected = _reference(raws)
    want_env = [e for e in expected if isinstance(e, Envelope)]
    want_dead = [d for d in expected if isinstance(d, DeadLetter)]
    assert [_comparable(e) for e in envelopes] == [_comparable(e) for e in want_env]
    for got, want in zip(envelopes, want_env, strict=True):
        assert got.event.model_fields_set == want.event.model_fields_set
        assert got.raw == want.raw
    assert [(d.reason, d.error, d.message) for d in dead] == [
        (d.reason, d.error, d.message) for d in want_dead
    ]
    assert [d.raw for d in dead] == [d.raw for d in want_dead]  # raw bytes preserved
    assert positions == [i for i, e in enumerate(expected) if isinstance(e, Envelope)]
    return codec


def test_valid_records_take_the_fast_path_and_equal_the_reference() -> None:
    raws = [_record(e, i) for i, e in enumerate(EXAMPLES)]
    codec = _assert_same_as_reference(raws)
    assert codec.fast_decoded == len(raws)
    assert codec.reference_decoded == 0


def test_a_bad_record_goes_to_the_dlq_and_the_rest_of_the_batch_proceeds() -> None:
    good = [_record(transaction(transaction_id=f"tx-{i}"), i) for i in range(5)]
    doc = json.loads(good[2].value or b"")
    doc["amount_minor"] = "12"
    bad = RawRecord(good[2].key, json.dumps(doc).encode(), good[2].headers, "in", 0, 2)
    raws = [*good[:2], bad, *good[3:]]
    codec = _assert_same_as_reference(raws)
    envelopes, dead = decode_raw_batch(raws, BatchDecoder(ACCEPT, keyed=KEYED))
    assert [e.event.transaction_id for e in envelopes] == ["tx-0", "tx-1", "tx-3", "tx-4"]
    assert [d.reason for d in dead] == ["schema_violation"]
    assert dead[0].raw == bad
    assert dead[0].raw.value is bad.value  # the very bytes consumed
    assert "amount_minor" in dead[0].message
    assert codec.fast_decoded == 4


def test_extensions_and_foreign_headers_stay_on_the_fast_path() -> None:
    tx = transaction()
    msg = encode(
        tx, source="tests/codec", extensions={"replyto": "acme.replies/3", "ingesttime": "t"}
    )
    headers = [*msg.headers, ("x-other", None), ("ce_Bad-Name", b"x"), ("dlq.redrive.count", b"1")]
    raws = [RawRecord(msg.key, msg.value, headers, "in", 0, 0)]
    codec = _assert_same_as_reference(raws)
    assert codec.fast_decoded == 1
    envelopes, _ = decode_raw_batch(raws, BatchDecoder(ACCEPT))
    assert envelopes[0].extensions == {"replyto": "acme.replies/3", "ingesttime": "t"}


def test_empty_trace_headers_none_values_and_other_shapes_take_the_reference_path() -> None:
    tx = transaction()
    msg = encode(tx, source="tests/codec", extensions={"replyto": "acme.replies/3"})
    odd_time = [(k, b"2026-11-24T12:00:00+01:00" if k == "ce_time" else v) for k, v in msg.headers]
    raws = [
        RawRecord(msg.key, msg.value, list(msg.headers), "in", 0, 0),
        RawRecord(msg.key, msg.value, [*msg.headers, ("traceparent", b"")], "in", 0, 1),
        RawRecord(msg.key, msg.value, [*msg.headers, ("ce_id", None)], "in", 0, 2),
        RawRecord(msg.key, msg.value, odd_time, "in", 0, 3),
        RawRecord(msg.key, msg.value, [h for h in msg.headers if h[0] != "ce_time"], "in", 0, 4),
    ]
    codec = _assert_same_as_reference(raws)
    assert codec.decode([_Msg(raws[0])])[0][0].extensions == {"replyto": "acme.replies/3"}  # type: ignore[list-item]


header_values = st.one_of(
    st.none(),
    st.binary(max_size=24),
    st.sampled_from(
        [
            b"1.0",
            b"0.3",
            b"application/json",
            b"application/json; charset=utf-8",
            b"text/plain",
            b"\xff\xfe",
            b"",
            b"2026-11-24T10:00:00Z",
            b"2026-11-24T10:00:00",
            b"2026-11-24T10:00:00.123456Z",
            b"9999-12-31T23:59:59Z",
            *(c.ce_type.encode() for c in ACCEPT),
        ]
    ),
)
HEADER_NAMES = ["ce_specversion", "ce_id", "ce_type", "ce_source", "ce_time", "content-type"]
OTHER_HEADERS = [
    "traceparent",
    "tracestate",
    "ce_replyto",
    "ce_ingesttime",
    "ce_Bad-Name",
    "ce_",
    "ce_x1",
    "x-other",
    "dlq.reason",
]


@st.composite
def damaged(draw: st.DrawFn, i: int) -> RawRecord:
    event = draw(st.sampled_from(EXAMPLES))
    raw = _record(event, i)
    headers: Headers = list(raw.headers)
    key = raw.key
    value = raw.value
    what = draw(st.sampled_from(["none", "header", "drop", "key", "value", "field"]))
    if what == "header":
        headers.append((draw(st.sampled_from([*HEADER_NAMES, "traceparent"])), draw(header_values)))
    elif what == "drop":
        name = draw(st.sampled_from(HEADER_NAMES))
        headers = [h for h in headers if h[0] != name]
    elif what == "key":
        key = draw(st.one_of(st.none(), st.binary(max_size=12)))
    elif what == "value":
        value = draw(st.one_of(st.none(), st.binary(max_size=40)))
    elif what == "field":
        doc = json.loads(value or b"")
        name = draw(st.sampled_from(sorted(doc)))
        doc[name] = draw(st.sampled_from([None, "", 1, -1, 2.5, "x" * 200, [], {}, "EUR"]))
        value = json.dumps(doc).encode()
    return RawRecord(key, value, headers, "in", 0, i)


@given(data=st.data(), n=st.integers(min_value=1, max_value=8))
@PROPERTY
def test_any_batch_decodes_as_the_reference_does(data: st.DataObject, n: int) -> None:
    _assert_same_as_reference([data.draw(damaged(i)) for i in range(n)])


def test_a_batch_stamped_once_parses_its_time_once() -> None:
    when = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    raws = []
    for i in range(3):
        msg = encode(transaction(transaction_id=f"tx-{i}"), source="tests/codec", time=when)
        raws.append(RawRecord(msg.key, msg.value, list(msg.headers), "in", 0, i))
    envelopes, dead = decode_raw_batch(raws, BatchDecoder(ACCEPT))
    assert not dead
    assert {e.time for e in envelopes} == {when}
    assert len({id(e.time) for e in envelopes}) == 1
