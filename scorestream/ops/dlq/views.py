"""One record of a DLQ topic (:mod:`scorestream.ops.dlq`) and its dead-letter headers."""

from __future__ import annotations

import json
from dataclasses import dataclass

from confluent_kafka import Message

from scorestream import dlq

Headers = list[tuple[str, bytes | None]]


# -- one dead letter -----------------------------------------------------------------------------
def _text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


def last_header(headers: Headers, name: str) -> str | None:
    """The last value of ``name``: a service appends its ``dlq.*`` headers after the record's
    own, so a ``dlq.*`` header a producer smuggled into the original never wins."""
    found: str | None = None
    for key, value in headers:
        if key == name:
            found = _text(value)
    return found


def redrive_count(headers: Headers) -> int:
    raw = last_header(headers, dlq.REDRIVE_COUNT)
    try:
        return max(0, int(raw or 0))
    except ValueError:
        return 0


@dataclass(frozen=True, slots=True)
class DeadLetterView:
    """One record of a DLQ topic."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: Headers

    @classmethod
    def of(cls, msg: Message) -> DeadLetterView:
        raw = msg.headers() or []
        items = raw.items() if isinstance(raw, dict) else raw  # a list from the consumer
        headers: Headers = [
            (str(k), v if isinstance(v, bytes | None) else str(v).encode()) for k, v in items
        ]
        _, ts = msg.timestamp()
        return cls(
            msg.topic() or "",
            msg.partition() or 0,
            msg.offset() or 0,
            int(ts),
            msg.key(),
            msg.value(),
            headers,
        )

    @property
    def reason(self) -> str:
        return last_header(self.headers, dlq.REASON) or "(none)"

    @property
    def pointer(self) -> bool:
        return last_header(self.headers, dlq.POINTER) == "true"

    @property
    def coordinates(self) -> str:
        return f"{self.topic}/{self.partition}@{self.offset}"

    def source(self) -> tuple[str, int | None, int | None]:
        def _int(name: str) -> int | None:
            try:
                return int(last_header(self.headers, name) or "")
            except ValueError:
                return None

        return (
            last_header(self.headers, dlq.SOURCE_TOPIC) or "",
            _int(dlq.SOURCE_PARTITION),
            _int(dlq.SOURCE_OFFSET),
        )

    def pointer_target(self) -> tuple[str, int, int] | None:
        """(topic, partition, offset) of a pointer's original, from its JSON value."""
        try:
            data = json.loads(self.value or b"")
            return str(data["topic"]), int(data["partition"]), int(data["offset"])
        except (ValueError, KeyError, TypeError):
            return None
