from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from schemas import (
    InvalidHeaderError,
    MissingHeaderError,
    PredictionEvent,
    RawRecord,
    TransactionEvent,
    UnknownEventTypeError,
    decode,
    encode,
)
from schemas.cloudevents import _parse_time, encode_many, new_event_id, utc_time
from tests.factories import every_contract, transaction

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _raw(headers: list[tuple[str, bytes | None]], value: bytes) -> RawRecord:
    return RawRecord(key=b"acc-42", value=value, headers=headers)


def test_binary_mode_headers_and_key() -> None:
    when = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    msg = encode(
        transaction(),
        source="scorestream/gateway",
        event_id="evt-1",
        time=when,
        trace={"traceparent": TRACEPARENT, "tracestate": "vendor=1"},
        extensions={"tenant": "acme"},
    )
    headers = dict(msg.headers)
    assert headers == {
        "ce_specversion": b"1.0",
        "ce_id": b"evt-1",
        "ce_source": b"scorestream/gateway",
        "ce_type": b"scorestream.transaction.v1",
        "ce_time": b"2026-11-24T10:00:00Z",
        "content-type": b"application/json",
        "ce_tenant": b"acme",
        "traceparent": TRACEPARENT.encode(),
        "tracestate": b"vendor=1",
    }
    assert msg.key == b"acc-42"  # key = account_id: per-account ordering
    env = decode(_raw(msg.headers, msg.value))
    assert env.event == transaction()
    assert (env.id, env.source, env.time, env.type) == (
        "evt-1",
        "scorestream/gateway",
        when,
        "scorestream.transaction.v1",
    )
    assert env.trace == {"traceparent": TRACEPARENT, "tracestate": "vendor=1"}
    assert env.extensions == {"tenant": "acme"}


def test_event_ids_are_unique_by_default() -> None:
    a = dict(encode(transaction(), source="s").headers)["ce_id"]
    b = dict(encode(transaction(), source="s").headers)["ce_id"]
    assert a != b


def test_event_ids_are_version_4_uuids_unique_per_process_and_after_fork() -> None:
    ids = [new_event_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 4 and str(uuid.UUID(i)) == i for i in ids[:100])
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a new random prefix, so its ids never collide with the parent's
        os.write(write, new_event_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 100).decode()
    os.close(read)
    os.close(write)
    assert child[:24] != new_event_id()[:24]
    assert uuid.UUID(child).version == 4


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)
    ),
    st.booleans(),
)
def test_fast_ce_time_parse_agrees_with_pydantic(when: datetime, micros: bool) -> None:
    text = when.replace(microsecond=when.microsecond if micros else 0).isoformat()
    text = text.replace("+00:00", "Z")
    fast = _parse_time(text)
    slow = TypeAdapter(datetime).validate_python(text)
    assert fast == slow
    assert fast.utcoffset() == slow.utcoffset()


@pytest.mark.parametrize(
    "text",
    ["2026-02-30T10:00:00Z", "2026-11-24T24:00:00Z", "2026-11-24T10:00:60Z", "2026-11-24T10:00Z"],
)
def test_ce_time_the_fast_parser_refuses_goes_to_pydantic(text: str) -> None:
    try:
        want: datetime | None = TypeAdapter(datetime).validate_python(text)
    except ValidationError:
        want = None
    if want is None:
        with pytest.raises(ValidationError):
            _parse_time(text)
    else:
        assert _parse_time(text) == want


def test_one_time_stamps_a_whole_batch() -> None:
    when = utc_time()
    stamps = {dict(encode(transaction(), source="s", time=when).headers)["ce_time"] for _ in "ab"}
    assert stamps == {when.isoformat().replace("+00:00", "Z").encode()}


@pytest.mark.parametrize("header", ["ce_specversion", "ce_id", "ce_type", "ce_source"])
def test_missing_required_header(header: str) -> None:
    msg = encode(transaction(), source="s")
    headers = [(k, v) for k, v in msg.headers if k != header]
    with pytest.raises(MissingHeaderError) as info:
        decode(_raw(headers, msg.value))
    assert info.value.fields == (f"headers.{header}",)
    assert info.value.raw.headers == headers


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("ce_specversion", b"0.3"),
        ("content-type", b"text/plain"),
        ("ce_time", b"yesterday"),
        ("ce_time", b"2026-11-24T10:00:00"),
    ],
)
def test_invalid_header_values(header: str, value: bytes) -> None:
    msg = encode(transaction(), source="s")
    headers = [(k, v) for k, v in msg.headers if k != header] + [(header, value)]
    with pytest.raises(InvalidHeaderError) as info:
        decode(_raw(headers, msg.value))
    assert info.value.fields == (f"headers.{header}",)


def test_content_type_parameters_are_accepted() -> None:
    msg = encode(transaction(), source="s")
    headers = [(k, v) for k, v in msg.headers if k != "content-type"]
    headers.append(("content-type", b"application/json; charset=utf-8"))
    assert decode(_raw(headers, msg.value)).event == transaction()


def test_unknown_and_unaccepted_types() -> None:
    msg = encode(transaction(), source="s")
    headers = [(k, v) for k, v in msg.headers if k != "ce_type"] + [
        ("ce_type", b"com.example.unknown.v1")
    ]
    with pytest.raises(UnknownEventTypeError):
        decode(_raw(headers, msg.value))
    with pytest.raises(UnknownEventTypeError):
        decode(_raw(msg.headers, msg.value), accept=[PredictionEvent])
    assert decode(_raw(msg.headers, msg.value), accept=[TransactionEvent]).event == transaction()


def test_empty_value_is_malformed() -> None:
    from schemas import MalformedPayloadError  # noqa: PLC0415

    msg = encode(transaction(), source="s")
    with pytest.raises(MalformedPayloadError):
        decode(_raw(msg.headers, b""))


def test_bad_extension_name_and_source() -> None:
    with pytest.raises(ValueError, match="lower-case"):
        encode(transaction(), source="s", extensions={"Bad-Name": "x"})
    with pytest.raises(ValueError, match="source"):
        encode(transaction(), source="")


def test_malformed_extension_headers_are_not_carried_on() -> None:
    msg = encode(transaction(), source="s", extensions={"replyto": "acme.replies/2"})
    headers = [*msg.headers, ("ce_Bad-Name", b"x")]
    env = decode(_raw(headers, msg.value))
    assert env.extensions == {"replyto": "acme.replies/2"}
    encode(env.event, source="s2", extensions=env.extensions)  # re-encoding never fails


def test_encode_many_writes_what_encode_writes() -> None:
    """The batch encoder the processor uses: same key, value and headers as ``encode`` of each
    event (ids aside: unique per record, well-formed and in sequence)."""
    when = datetime(2026, 11, 24, 12, 0, 0, 123456, tzinfo=UTC)
    trace = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    items = [
        (e, trace if i % 2 else None, {"replyto": "acme.replies/1"} if i % 3 == 0 else None, None)
        for i, e in enumerate(every_contract())
    ]
    items.append((items[0][0], None, None, b'{"as":"given"}'))
    many = encode_many(items, source="tests/many", time=when)
    assert len(many) == len(items)
    ids = []
    for (event, tr, ext, value), got in zip(items, many, strict=True):
        want = encode(event, source="tests/many", time=when, trace=tr, extensions=ext, value=value)
        assert got.key == want.key
        assert got.value == want.value
        strip = [(k, v) for k, v in got.headers if k != "ce_id"]
        assert strip == [(k, v) for k, v in want.headers if k != "ce_id"]
        (ce_id,) = [v for k, v in got.headers if k == "ce_id"]
        assert uuid.UUID(ce_id.decode()).version == 4
        ids.append(ce_id)
    assert len(set(ids)) == len(ids)
    with pytest.raises(ValueError, match="lower-case"):
        encode_many([(items[0][0], None, {"Bad-Name": "x"}, None)], source="tests/many")
    with pytest.raises(ValueError, match="source"):
        encode_many([], source="")
