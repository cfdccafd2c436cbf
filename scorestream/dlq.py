"""Dead letters: the original record plus why it could not be processed.

A DLQ record keeps the original key, value and headers byte for byte, and adds ``dlq.*``
headers: reason (a low-cardinality code), error class, message, source topic/partition/offset,
service and time. ``scorestream kafka kafka-console-consumer --property print.headers=true`` shows
them; a fixed record can be re-published from the DLQ as is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemas.cloudevents import Envelope
from schemas.errors import DecodeError, RawRecord

MAX_MESSAGE = 1000


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
        raw = env.raw
        if raw is None:
            event = env.event
            raw = RawRecord(
                key=event.partition_key().encode(), value=event.model_dump_json().encode()
            )
        return cls(raw, reason, error, message)

    def headers(self, service: str) -> list[tuple[str, str | bytes | None]]:
        out: list[tuple[str, str | bytes | None]] = list(self.raw.headers)
        out += [
            ("dlq.reason", self.reason),
            ("dlq.error", self.error),
            ("dlq.message", self.message[:MAX_MESSAGE]),
            ("dlq.source.topic", self.raw.topic or ""),
            ("dlq.source.partition", str(self.raw.partition)),
            ("dlq.source.offset", str(self.raw.offset)),
            ("dlq.service", service),
            ("dlq.time", datetime.now(UTC).isoformat()),
        ]
        return out
