"""Dead letters: the original record plus why it could not be processed.

A DLQ record keeps the original key, value and headers byte for byte, and adds ``dlq.*``
headers: reason (a low-cardinality code), error class, message, source topic/partition/offset,
service and time. ``scorestream kafka kafka-console-consumer --property print.headers=true`` shows
them; ``scorestream dlq list|show|redrive`` (an operator tool) counts, shows and
re-publishes them once the cause is fixed.

Writing a dead letter can never fail its batch. A record the broker accepted on an input may be
too large to be copied (its copy carries the ``dlq.*`` headers too, and the input's limit may be
larger than the DLQ's): :meth:`DeadLetter.record` then writes a *pointer* instead — no original
value, the ``dlq.*`` headers, ``dlq.pointer=true``, the original size and the original headers
that fit, and a small JSON value naming the source topic, partition, offset and sizes, where the
original stays readable for the topic's retention.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemas.cloudevents import Envelope
from schemas.errors import DecodeError, RawRecord

MAX_MESSAGE = 1000

PREFIX = "dlq."
"""Every dead-letter header starts with this (a re-drive strips them all)."""
REASON = "dlq.reason"
ERROR = "dlq.error"
MESSAGE = "dlq.message"
SOURCE_TOPIC = "dlq.source.topic"
SOURCE_PARTITION = "dlq.source.partition"
SOURCE_OFFSET = "dlq.source.offset"
SERVICE = "dlq.service"
TIME = "dlq.time"
POINTER = "dlq.pointer"
POINTER_CAUSE = "dlq.pointer.cause"
SOURCE_SIZE = "dlq.source.size"
REDRIVE_COUNT = "dlq.redrive.count"
"""Set by ``scorestream dlq redrive`` on a re-published record: how often it was re-driven. A
service that dead-letters it again copies it with the raw headers, so the next re-drive counts
on from it. The ``dlq.*`` headers a service adds come after the raw ones: a reader takes the
last occurrence of a name."""

BATCH_OVERHEAD = 61 + 31
"""A v2 record batch header plus one record's fixed fields (varints at their widest)."""
HEADER_OVERHEAD = 10
"""Two varint lengths per header."""
POINTER_KEY_BYTES = 1024
"""A pointer keeps the original key up to this size (keys are ids; larger ones are left out)."""
POINTER_HEADER_BYTES = 64 * 1024
"""A pointer keeps the original headers, in order, while they total at most this."""

Headers = Sequence[tuple[str, str | bytes | None]]

UNKNOWN_TENANT = "unknown_tenant"
"""The reason of an event of another tenant on a tenant's topic."""


def raw_of(env: Envelope[Any]) -> RawRecord:
    """The record an envelope was decoded from; for one built in-process (unit tests, events a
    service makes itself), its key and JSON value."""
    if env.raw is not None:
        return env.raw
    event = env.event
    return RawRecord(key=event.partition_key().encode(), value=event.model_dump_json().encode())


def _len(value: str | bytes | None) -> int:
    if value is None:
        return 0
    return len(value.encode()) if isinstance(value, str) else len(value)


def record_size(key: bytes | None, value: bytes | None, headers: Headers) -> int:
    """An upper bound of a record's size in a batch of its own, before compression."""
    size = BATCH_OVERHEAD + _len(key) + _len(value)
    for name, header in headers:
        size += HEADER_OVERHEAD + _len(name) + _len(header)
    return size


def fits(key: bytes | None, value: bytes | None, headers: Headers, max_bytes: int) -> bool:
    """Whether the broker accepts this record on a topic of ``max.message.bytes=max_bytes``,
    compressed or not (LZ4's worst case adds 1/255 + 16 bytes to incompressible data)."""
    size = record_size(key, value, headers)
    return size + size // 255 + 64 <= max_bytes


@dataclass(frozen=True, slots=True)
class DlqRecord:
    """What is produced to the DLQ for one dead letter."""

    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, str | bytes | None]]
    pointer: bool = False


@dataclass(frozen=True, slots=True)
class DeadLetter:
    raw: RawRecord
    reason: str
    error: str
    message: str

    @classmethod
    def from_decode_error(cls, exc: DecodeError) -> DeadLetter:
        return cls(exc.raw, exc.reason, type(exc).__name__, str(exc))

    @classmethod
    def for_envelope(cls, env: Envelope[Any], reason: str, error: str, message: str) -> DeadLetter:
        """A decoded event a handler refuses. Without the raw record (built in-process, as in
        unit tests) the payload is the event itself."""
        return cls(raw_of(env), reason, error, message)

    @classmethod
    def other_tenant(cls, env: Envelope[Any], found: str, tenant: str) -> DeadLetter | None:
        """The rule every service applies to each event it reads: an event of tenant ``found``
        on a topic of ``tenant`` is dead-lettered (``unknown_tenant``), never processed; None
        when it is the tenant's own."""
        if found == tenant:
            return None
        return cls(
            raw_of(env),
            UNKNOWN_TENANT,
            "TenantMismatch",
            f"tenant {found!r} on a topic of tenant {tenant!r}",
        )

    def headers(self, service: str) -> list[tuple[str, str | bytes | None]]:
        out: list[tuple[str, str | bytes | None]] = list(self.raw.headers)
        out += self._dlq_headers(service)
        return out

    def record(self, service: str, *, max_bytes: int) -> DlqRecord:
        """The full copy when it fits in ``max_bytes`` (the DLQ's ``max.message.bytes``), else a
        pointer to the original (never larger than a few tens of KiB)."""
        raw = self.raw
        headers = self.headers(service)
        if fits(raw.key, raw.value, headers, max_bytes):
            return DlqRecord(raw.key, raw.value, headers)
        return self.pointer(service, max_bytes=max_bytes)

    def pointer(self, service: str, *, max_bytes: int) -> DlqRecord:
        """A record that says where the original is and why it is not copied."""
        raw = self.raw
        size = record_size(raw.key, raw.value, self.headers(service))
        key = raw.key if raw.key is None or len(raw.key) <= POINTER_KEY_BYTES else None
        kept: list[tuple[str, str | bytes | None]] = []
        budget = min(POINTER_HEADER_BYTES, max_bytes // 4)
        for name, header in raw.headers:
            cost = HEADER_OVERHEAD + _len(name) + _len(header)
            if cost > budget:
                break  # keep a prefix: headers stay in their order
            kept.append((name, header))
            budget -= cost
        cause = (
            f"the record ({size} bytes with the dead-letter headers) exceeds the DLQ's "
            f"{max_bytes}-byte limit: a pointer to the original is written instead"
        )
        value = {
            "dlq_pointer": True,
            "topic": raw.topic,
            "partition": raw.partition,
            "offset": raw.offset,
            "size": size,
            "key_bytes": _len(raw.key),
            "value_bytes": _len(raw.value),
            "headers": len(raw.headers),
            "headers_kept": len(kept),
            "key_kept": key is not None or raw.key is None,
            "reason": self.reason,
            "cause": cause,
        }
        headers = kept + self._dlq_headers(service)
        headers += [
            (POINTER, "true"),
            (POINTER_CAUSE, cause),
            (SOURCE_SIZE, str(size)),
        ]
        return DlqRecord(key, json.dumps(value).encode(), headers, pointer=True)

    def _dlq_headers(self, service: str) -> list[tuple[str, str | bytes | None]]:
        return [
            (REASON, self.reason),
            (ERROR, self.error),
            (MESSAGE, self.message[:MAX_MESSAGE]),
            (SOURCE_TOPIC, self.raw.topic or ""),
            (SOURCE_PARTITION, str(self.raw.partition)),
            (SOURCE_OFFSET, str(self.raw.offset)),
            (SERVICE, service),
            (TIME, datetime.now(UTC).isoformat()),
        ]
