"""Typed decode errors. Each keeps the raw record so a dead-letter queue can store it as is."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scorestream.errors import ScorestreamError

Headers = list[tuple[str, bytes | None]]


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A Kafka record exactly as received: what a DLQ entry must carry."""

    key: bytes | None
    value: bytes | None
    headers: Headers = field(default_factory=list)
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    timestamp_ms: int | None = None
    """The record's Kafka timestamp (ms since the epoch), when it has one."""


_new_object = object.__new__
_SET_RAW = tuple(
    RawRecord.__dict__[f].__set__
    for f in ("key", "value", "headers", "topic", "partition", "offset", "timestamp_ms")
)


def new_raw_record(
    key: bytes | None,
    value: bytes | None,
    headers: Headers,
    topic: str | None,
    partition: int | None,
    offset: int | None,
    timestamp_ms: int | None = None,
) -> RawRecord:
    """``RawRecord(key, value, ...)`` without the frozen dataclass's ``__init__`` (the batch
    codec builds one per consumed record). Equal to the constructor's."""
    raw: RawRecord = _new_object(RawRecord)
    s_key, s_value, s_headers, s_topic, s_partition, s_offset, s_timestamp = _SET_RAW
    s_key(raw, key)
    s_value(raw, value)
    s_headers(raw, headers)
    s_topic(raw, topic)
    s_partition(raw, partition)
    s_offset(raw, offset)
    s_timestamp(raw, timestamp_ms)
    return raw


@dataclass(frozen=True, slots=True)
class FieldError:
    """One validation failure: the dotted field path, a machine code and a message."""

    path: str
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message} [{self.code}]"


class DecodeError(ScorestreamError):
    """A record could not be turned into a contract object. ``raw`` is the untouched record."""

    reason: str = "decode_error"

    def __init__(self, message: str, raw: RawRecord, errors: tuple[FieldError, ...] = ()) -> None:
        self.raw = raw
        self.errors = errors
        detail = "; ".join(str(e) for e in errors)
        super().__init__(f"{message}: {detail}" if detail else message)

    @property
    def fields(self) -> tuple[str, ...]:
        """The dotted paths of the offending fields."""
        return tuple(e.path for e in self.errors)

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly description for DLQ headers and logs (never the payload itself)."""
        return {
            "reason": self.reason,
            "error": type(self).__name__,
            "message": str(self),
            "fields": list(self.fields),
        }


class MissingHeaderError(DecodeError):
    """A required CloudEvents header is absent or empty."""

    reason = "missing_header"


class InvalidHeaderError(DecodeError):
    """A header is present but its value is not acceptable (spec version, content type, time)."""

    reason = "invalid_header"


class UnknownEventTypeError(DecodeError):
    """``ce_type`` names no contract this consumer knows."""

    reason = "unknown_event_type"


class MalformedPayloadError(DecodeError):
    """The value is not valid UTF-8 JSON (or is empty)."""

    reason = "malformed_payload"


class SchemaViolationError(DecodeError):
    """The JSON is well formed but breaks the contract: wrong type, missing field, bad value."""

    reason = "schema_violation"


class KeyMismatchError(DecodeError):
    """The record's Kafka key is not the event's own key (:meth:`Contract.partition_key`, e.g.
    the account id): processed anyway, it would land in another key's state and order."""

    reason = "key_mismatch"
