"""The retry topic ``<tenant>.alerts.retry``: the ``retry.*`` headers a parked decision carries
and the policy that says when it is due and when it is exhausted."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from consumers.notifier.webhook import WebhookResult
from schemas.errors import Headers, RawRecord
from scorestream.errors import ScorestreamError

log = logging.getLogger("scorestream.notifier")

# -- the retry topic -----------------------------------------------------------------------------
ATTEMPT = "retry.attempt"
NOT_BEFORE = "retry.not_before"
FIRST_FAILURE = "retry.first_failure"
HISTORY = "retry.history"
RETRY_HEADERS = frozenset({ATTEMPT, NOT_BEFORE, FIRST_FAILURE, HISTORY})
MAX_HISTORY_ERROR = 60
"""Characters of one round's error in ``retry.history`` (11 rounds fit ``dlq.message``)."""
CLOCK_SKEW_S = 60.0
"""How far another notifier pod's clock may be ahead: a ``retry.not_before`` later than
``retry_backoff_max_s`` plus this from now was not written by a notifier with these settings
(it would pause its partition for that long): it is dead-lettered instead."""


class RetryRecordError(ScorestreamError):
    """A record of the retry topic without valid ``retry.*`` headers."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Where and how often a transiently failed delivery is tried again."""

    topic: str
    attempts: int
    backoff_s: float
    backoff_max_s: float
    max_delay_s: float

    def delay(self, failed_rounds: int) -> float:
        """Wait before the next round after ``failed_rounds`` failed ones (1-based)."""
        return min(self.backoff_max_s, self.backoff_s * 2.0 ** (failed_rounds - 1))


@dataclass(frozen=True, slots=True)
class RetryState:
    """What a retry record carries in its ``retry.*`` headers."""

    attempt: int
    """Delivery rounds failed so far."""
    not_before_ms: int
    first_failure_ms: int
    history: tuple[str, ...] = ()

    @classmethod
    def from_headers(cls, headers: Headers) -> RetryState:
        found: dict[str, str] = {}
        for name, value in headers:
            if name in RETRY_HEADERS and value is not None:
                found[name] = value.decode("utf-8", errors="replace")
        try:
            state = cls(
                attempt=int(found[ATTEMPT]),
                not_before_ms=int(found[NOT_BEFORE]),
                first_failure_ms=int(found[FIRST_FAILURE]),
                history=tuple(h for h in found.get(HISTORY, "").split("; ") if h),
            )
        except (KeyError, ValueError) as exc:
            raise RetryRecordError(f"missing or invalid retry header: {exc}") from None
        if state.attempt < 1:
            raise RetryRecordError(f"invalid {ATTEMPT}: {state.attempt}")
        return state

    def headers(self) -> list[tuple[str, bytes | None]]:
        return [
            (ATTEMPT, str(self.attempt).encode()),
            (NOT_BEFORE, str(self.not_before_ms).encode()),
            (FIRST_FAILURE, str(self.first_failure_ms).encode()),
            (HISTORY, "; ".join(self.history).encode()),
        ]

    def failed(self, result: WebhookResult, now_s: float) -> RetryState:
        """This state after one more failed round (``not_before`` is set by the caller)."""
        when = datetime.fromtimestamp(now_s, UTC).isoformat(timespec="seconds")
        error = (result.error or result.error_type or "failed").replace(";", ",")
        entry = f"{self.attempt + 1} {when.replace('+00:00', 'Z')} {error[:MAX_HISTORY_ERROR]}"
        return replace(self, attempt=self.attempt + 1, history=(*self.history, entry))


FIRST = RetryState(attempt=0, not_before_ms=0, first_failure_ms=0)
"""The state of a decision never tried before."""


def with_retry_headers(raw: RawRecord, state: RetryState) -> list[tuple[str, bytes | None]]:
    kept = [(n, v) for n, v in raw.headers if n not in RETRY_HEADERS and not n.startswith("dlq.")]
    return [*kept, *state.headers()]
