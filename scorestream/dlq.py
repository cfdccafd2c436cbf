"""Dead letters: the original record plus why it could not be processed.

A DLQ record keeps the original key, value and headers byte for byte, and adds ``dlq.*``
headers: reason (a low-cardinality code), error class, message, source topic/partition/offset,
service and time. ``scorestream kafka kafka-console-consumer --property print.headers=true`` shows
them; a fixed record can be re-published from the DLQ as is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

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
