"""CloudEvents 1.0 binary content mode over Kafka, written once.

The payload is the contract as JSON; the event's attributes travel in headers
(``ce_specversion``, ``ce_id``, ``ce_type``, ``ce_source``, ``ce_time``, ``content-type``),
as the CloudEvents Kafka protocol binding specifies. W3C ``traceparent`` / ``tracestate``
headers are passed through untouched. The Kafka key is the contract's partition key.

The ``cloudevents`` SDK's Kafka binding was not used: it adds a dependency for a mapping of a
dozen lines, works on its own event class rather than on our pydantic contracts, and its
decode errors do not keep the raw record, which our DLQs need.
"""

from __future__ import annotations

import itertools
import os
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Generic, NamedTuple, TypeVar

from pydantic import TypeAdapter, ValidationError

from schemas.catalog import BY_CE_TYPE
from schemas.errors import (
    DecodeError,
    FieldError,
    Headers,
    InvalidHeaderError,
    MalformedPayloadError,
    MissingHeaderError,
    RawRecord,
    SchemaViolationError,
    UnknownEventTypeError,
)
from schemas.events import Contract
from schemas.fast import dump_json

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
SPEC_VERSION_B = SPEC_VERSION.encode()
CONTENT_TYPE_B = CONTENT_TYPE.encode()
TRACE_HEADERS = ("traceparent", "tracestate")
REQUIRED_HEADERS = ("ce_specversion", "ce_id", "ce_type", "ce_source")

C = TypeVar("C", bound=Contract)

_TIME = TypeAdapter(datetime)


class KafkaMessage(NamedTuple):
    """What a producer sends: key, value and headers, all bytes. (A named tuple: built once per
    produced record, it costs a fifth of a frozen dataclass.)"""

    key: bytes
    value: bytes
    headers: Headers


@dataclass(frozen=True, slots=True)
class Envelope(Generic[C]):
    """A decoded event: the contract plus its CloudEvents attributes and trace headers."""

    event: C
    id: str
    source: str
    time: datetime
    type: str
    trace: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, str] = field(default_factory=dict)
    raw: RawRecord | None = None


_new_object = object.__new__
_SET_ENV = tuple(
    Envelope.__dict__[f].__set__
    for f in ("event", "id", "source", "time", "type", "trace", "extensions", "raw")
)


def new_envelope(
    event: C,
    id: str,
    source: str,
    time: datetime,
    type: str,
    trace: dict[str, str],
    extensions: dict[str, str],
    raw: RawRecord | None,
) -> Envelope[C]:
    """``Envelope(event, id, ...)`` for the batch codec's hot path: the slots are set directly,
    without the frozen dataclass's ``__init__`` (half its cost). Equal to the constructor's."""
    env: Envelope[C] = _new_object(Envelope)
    s_event, s_id, s_source, s_time, s_type, s_trace, s_ext, s_raw = _SET_ENV
    s_event(env, event)
    s_id(env, id)
    s_source(env, source)
    s_time(env, time)
    s_type(env, type)
    s_trace(env, trace)
    s_ext(env, extensions)
    s_raw(env, raw)
    return env


class _EventIds:
    """Unique CloudEvents ids, cheaply: a random UUIDv4 per process whose last 48 bits count.

    ``str(uuid.uuid4())`` per event cost ~2 µs (``os.urandom`` + formatting) on the worker's hot
    path. Every id is still a well-formed version-4 UUID string; ids are unique within a process
    by the counter (2^48 of them) and across processes by the 74 random bits of the prefix, which
    is what the spec asks of ``source`` + ``id``. A forked child draws a new prefix."""

    def __init__(self) -> None:
        self._state = self._fresh()
        os.register_at_fork(after_in_child=self.reset)

    @staticmethod
    def _fresh() -> tuple[str, itertools.count[int]]:
        return str(uuid.uuid4())[:24], itertools.count()

    def reset(self) -> None:
        self._state = (
            self._fresh()
        )  # one attribute: a thread never pairs a prefix with another count

    def next(self) -> str:
        prefix, count = self._state
        return f"{prefix}{next(count) & 0xFFFF_FFFF_FFFF:012x}"

    def state(self) -> tuple[str, itertools.count[int]]:
        """(prefix, counter): a batch encoder formats ids as :meth:`next` does."""
        return self._state


_IDS = _EventIds()
new_event_id = _IDS.next
"""A new, unique CloudEvents id (a version-4 UUID string)."""


@lru_cache(maxsize=256)
def _static_headers(source: str, ce_type: str) -> tuple[tuple[str, bytes], ...]:
    return (
        ("ce_specversion", SPEC_VERSION_B),
        ("ce_source", source.encode()),
        ("ce_type", ce_type.encode()),
        ("content-type", CONTENT_TYPE_B),
    )


class _TimeHeader:
    """``ce_time`` bytes, formatted once for a run of events stamped with the same datetime.

    One attribute holds the (datetime, bytes) pair, so threads sharing it never mix them up."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: tuple[datetime | None, bytes] = (None, b"")

    def __call__(self, when: datetime) -> bytes:
        last = self._last
        if last[0] is when:
            return last[1]
        text = when.isoformat().replace("+00:00", "Z").encode()
        self._last = (when, text)
        return text


_time_header = _TimeHeader()


def utc_time(when: datetime | None = None) -> datetime:
    """``when`` (default: now) in UTC; pass the result as ``time=`` to stamp a batch once."""
    if when is None:
        return datetime.now(UTC)
    return when if when.tzinfo is UTC else when.astimezone(UTC)


def encode(
    event: Contract,
    *,
    source: str,
    event_id: str | None = None,
    time: datetime | None = None,
    trace: Mapping[str, str] | None = None,
    extensions: Mapping[str, str] | None = None,
    value: bytes | None = None,
) -> KafkaMessage:
    """Encode ``event`` as a binary-mode CloudEvent. ``extensions`` become ``ce_<name>`` headers;
    ``value`` is the event's JSON when the caller has it already (it must decode to ``event``).

    Hot path (the worker encodes every prediction): the constant headers come from a cache per
    (source, type), a batch stamped with one ``time`` formats it once, ids are cheap (see
    :class:`_EventIds`)."""
    if not source:
        raise ValueError("source must be a non-empty URI-reference, e.g. 'scorestream/gateway'")
    when = utc_time(time)
    headers: Headers = [
        *_static_headers(source, event.ce_type),
        ("ce_id", (event_id or _IDS.next()).encode()),
        ("ce_time", _time_header(when)),
    ]
    if extensions:
        for name, text in extensions.items():
            if not name.isalnum() or not name.islower():
                raise ValueError(
                    f"CloudEvents extension names are lower-case alphanumeric: {name!r}"
                )
            headers.append((f"ce_{name}", text.encode()))
    if trace:
        for name in TRACE_HEADERS:
            carried = trace.get(name)
            if carried:
                headers.append((name, carried.encode()))
    return KafkaMessage(
        key=event.partition_key().encode(),
        value=dump_json(event) if value is None else value,
        headers=headers,
    )


Outgoing = tuple[Contract, Mapping[str, str] | None, Mapping[str, str] | None, bytes | None]
"""What :func:`encode_many` encodes per event: (event, trace, extensions, value or None)."""


def encode_many(
    items: Iterable[Outgoing], *, source: str, time: datetime | None = None
) -> list[KafkaMessage]:
    """:func:`encode` of each ``(event, trace, extensions, value)``, stamped with one ``time``:
    the same records (``tests/unit/test_cloudevents.py`` checks it), with the per-call work —
    argument checks, the header templates' cache, the time header, the id generator's state —
    done once per batch instead of once per event (every service's outputs go through it)."""
    if not source:
        raise ValueError("source must be a non-empty URI-reference, e.g. 'scorestream/gateway'")
    time_b = _time_header(utc_time(time))
    prefix, count = _IDS.state()
    templates: dict[str, tuple[tuple[str, bytes], ...]] = {}
    ext_headers: dict[str, str] = {}  # extension name → its header, checked once per batch
    out: list[KafkaMessage] = []
    for event, trace, extensions, value in items:
        ce_type = event.ce_type
        static = templates.get(ce_type)
        if static is None:
            static = templates[ce_type] = _static_headers(source, ce_type)
        headers: Headers = [
            *static,
            ("ce_id", f"{prefix}{next(count) & 0xFFFF_FFFF_FFFF:012x}".encode()),
            ("ce_time", time_b),
        ]
        if extensions:
            for name, text in extensions.items():
                header = ext_headers.get(name)
                if header is None:
                    if not name.isalnum() or not name.islower():
                        raise ValueError(
                            f"CloudEvents extension names are lower-case alphanumeric: {name!r}"
                        )
                    header = ext_headers[name] = f"ce_{name}"
                headers.append((header, text.encode()))
        if trace:
            carried = trace.get("traceparent")
            if carried:
                headers.append(("traceparent", carried.encode()))
            carried = trace.get("tracestate")
            if carried:
                headers.append(("tracestate", carried.encode()))
        out.append(
            KafkaMessage(
                event.partition_key().encode(),
                dump_json(event) if value is None else value,
                headers,
            )
        )
    return out


def _header_map(headers: Sequence[tuple[str, bytes | str | None]] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in headers or ():
        if value is None:
            continue
        text = value if isinstance(value, str) else value.decode("utf-8", errors="replace")
        out[name] = text  # the last occurrence wins, as in most Kafka header readers
    return out


def _field_errors(exc: ValidationError) -> tuple[FieldError, ...]:
    return tuple(
        FieldError(
            path=".".join(str(p) for p in err["loc"]) or "<root>",
            code=err["type"],
            message=err["msg"],
        )
        for err in exc.errors(include_url=False)
    )


def decode(
    raw: RawRecord,
    accept: Iterable[type[C]] | None = None,
) -> Envelope[C]:
    """Decode a raw Kafka record. Raises a :class:`~schemas.errors.DecodeError` subclass.

    ``accept`` limits which contracts this consumer handles; an event of another known type is
    an :class:`UnknownEventTypeError` for this consumer. Every error carries ``raw`` unchanged.
    """
    headers = _header_map(raw.headers)
    missing = [h for h in REQUIRED_HEADERS if not headers.get(h)]
    if missing:
        raise MissingHeaderError(
            "missing CloudEvents headers",
            raw,
            tuple(FieldError(f"headers.{h}", "missing", "header is required") for h in missing),
        )
    if headers["ce_specversion"] != SPEC_VERSION:
        raise InvalidHeaderError(
            "unsupported CloudEvents spec version",
            raw,
            (
                FieldError(
                    "headers.ce_specversion",
                    "unsupported",
                    f"expected {SPEC_VERSION!r}, got {headers['ce_specversion']!r}",
                ),
            ),
        )
    content_type = headers.get("content-type", CONTENT_TYPE)
    if content_type != CONTENT_TYPE:
        content_type = content_type.split(";")[0].strip().lower()
    if content_type != CONTENT_TYPE:
        raise InvalidHeaderError(
            "unsupported content type",
            raw,
            (
                FieldError(
                    "headers.content-type",
                    "unsupported",
                    f"expected {CONTENT_TYPE!r}, got {content_type!r}",
                ),
            ),
        )
    ce_type = headers["ce_type"]
    allowed = (
        _allowed(accept if isinstance(accept, tuple) else tuple(accept)) if accept else BY_CE_TYPE
    )
    contract = allowed.get(ce_type)
    if contract is None:
        raise UnknownEventTypeError(
            "event type not handled here",
            raw,
            (
                FieldError(
                    "headers.ce_type", "unknown", f"{ce_type!r} is not one of {sorted(allowed)}"
                ),
            ),
        )
    try:
        time = _parse_time(headers["ce_time"]) if "ce_time" in headers else None
    except ValidationError as exc:
        raise InvalidHeaderError(
            "invalid ce_time", raw, (FieldError("headers.ce_time", "datetime", str(exc)),)
        ) from exc
    if time is not None and time.tzinfo is None:
        raise InvalidHeaderError(
            "invalid ce_time",
            raw,
            (FieldError("headers.ce_time", "timezone_aware", "ce_time needs a UTC offset"),),
        )
    if not raw.value:
        raise MalformedPayloadError(
            "empty payload", raw, (FieldError("<root>", "empty", "record has no value"),)
        )
    try:
        event = contract.model_validate_json(raw.value)
    except ValidationError as exc:
        errors = _field_errors(exc)
        if any(e.code == "json_invalid" for e in errors):
            raise MalformedPayloadError("payload is not valid JSON", raw, errors) from exc
        raise SchemaViolationError(f"payload violates {ce_type}", raw, errors) from exc
    # only well-formed extension names survive (lower-case alphanumeric, as the spec requires),
    # so a stray ``ce_Bad-Name`` header can never make a re-encode fail downstream
    extensions = {
        k[3:]: v
        for k, v in headers.items()
        if k.startswith("ce_") and k[3:] not in _CORE_ATTRS and k[3:].isalnum() and k[3:].islower()
    }
    return Envelope(
        event=event,  # type: ignore[arg-type]  # narrowed by the ce_type lookup above
        id=headers["ce_id"],
        source=headers["ce_source"],
        time=utc_time(time),
        type=ce_type,
        trace={h: headers[h] for h in TRACE_HEADERS if h in headers},
        extensions=extensions,
        raw=raw,
    )


_CORE_ATTRS = frozenset({"specversion", "id", "type", "source", "time"})


@lru_cache(maxsize=64)
def _allowed(accept: tuple[type[Contract], ...]) -> dict[str, type[Contract]]:
    return {c.ce_type: c for c in accept}


_COMMON_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{6})?Z")


def parse_ce_time(header: bytes) -> datetime:
    """A ``ce_time`` header's value as :func:`decode` reads it (in UTC); ``ValueError`` when
    :func:`decode` would refuse it (then :func:`decode` gives the reason)."""
    time = _parse_time(header.decode("utf-8", errors="replace"))
    if time.tzinfo is None:
        raise ValueError("ce_time needs a UTC offset")
    return utc_time(time)


def _parse_time(text: str) -> datetime:
    """``ce_time`` as pydantic parses a datetime. The two shapes every scorestream producer writes
    (``2026-01-02T03:04:05Z``, ``2026-01-02T03:04:05.123456Z``) take the C parser, which reads
    them exactly as pydantic does, at a fraction of the cost; anything else (and anything the C
    parser refuses, such as 30 February) goes to pydantic, which decides."""
    if _COMMON_TIME.fullmatch(text):
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            pass
    return _TIME.validate_python(text)


__all__ = [
    "CONTENT_TYPE",
    "SPEC_VERSION",
    "DecodeError",
    "Envelope",
    "KafkaMessage",
    "decode",
    "encode",
    "encode_many",
    "new_envelope",
    "parse_ce_time",
]
