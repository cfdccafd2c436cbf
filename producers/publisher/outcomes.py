"""What a send ends in (:mod:`producers.publisher`): a :class:`DeliveryReport` once the broker has
the record, or an error of the :class:`PublisherError` tree."""

from __future__ import annotations

from dataclasses import dataclass

from producers.publisher.trace_context import trace_id_of
from schemas.errors import FieldError
from scorestream.errors import DeliveryError, ScorestreamError

# -- errors ------------------------------------------------------------------------------------


class PublisherError(ScorestreamError):
    """Root of the publisher's errors."""


class ContractViolationError(PublisherError):
    """The event is not a valid ``TransactionEvent`` for this publisher; nothing was sent."""

    def __init__(self, message: str, errors: tuple[FieldError, ...] = ()) -> None:
        self.errors = errors
        detail = "; ".join(str(e) for e in errors)
        super().__init__(f"{message}: {detail}" if detail else message)

    @property
    def fields(self) -> tuple[str, ...]:
        """Dotted paths of the offending fields (``amount_minor``, ``tenant_id`` ...)."""
        return tuple(e.path for e in self.errors)


class QueueFullError(PublisherError):
    """``max_pending`` records already await acknowledgement: the broker is slow or away."""


class PublishTimeoutError(PublisherError):
    """No delivery report in time. The record may still be delivered: do not assume either."""


class DeliveryFailedError(PublisherError, DeliveryError):
    """The broker did not accept the record (after the producer's own retries)."""

    def __init__(self, message: str, *, code: str, retriable: bool) -> None:
        super().__init__(message)
        self.code = code
        self.retriable = retriable


class PublisherClosedError(PublisherError):
    """The publisher is closed (or failed fatally) and sends nothing more."""


class BatchPublishError(PublisherError):
    """Some records of a ``publish_many`` batch failed; ``reports[i]`` is None for those."""

    def __init__(
        self, reports: list[DeliveryReport | None], failures: dict[int, PublisherError]
    ) -> None:
        self.reports = reports
        self.failures = failures
        first = next(iter(failures.items()))
        super().__init__(
            f"{len(failures)} of {len(reports)} record(s) not delivered; "
            f"first: #{first[0]}: {first[1]}"
        )


# -- delivery ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """The broker has the record (acks=all): where it is, and which event and trace it is."""

    event_id: str
    transaction_id: str
    topic: str
    partition: int
    offset: int
    traceparent: str
    latency_s: float

    @property
    def trace_id(self) -> str:
        return trace_id_of(self.traceparent)
