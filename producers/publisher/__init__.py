"""The publisher library: how upstream Python services put ``TransactionEvent``s on Kafka.

::

    from producers.publisher import Publisher

    with Publisher(tenant="acme", source="payments-api") as pub:
        report = pub.publish(event, traceparent=incoming_traceparent)   # blocks until acks=all
        reports = pub.publish_many(events)                               # one wait for a batch
        future = pub.send(event)                                         # concurrent.futures
        report = await pub.apublish(event)                               # asyncio

What it guarantees:

* **Contract**: every event is validated against ``TransactionEvent`` exactly as a consumer will
  decode it (JSON, strict types), and its ``tenant_id`` must be the publisher's tenant. A
  violation raises :class:`ContractViolationError` naming the fields; nothing is sent.
* **Envelope**: CloudEvents binary mode (``ce_*`` headers, ``content-type``), key =
  ``account_id`` (one account's events stay ordered), W3C ``traceparent`` passed through or,
  without a valid one, a new trace started (:func:`trace_headers`).
* **Delivery**: idempotent producer with ``acks=all`` (no duplicates or reordering from
  retries); a :class:`DeliveryReport` (topic, partition, offset) only once the broker has the
  record, or a typed :class:`DeliveryFailedError` / :class:`PublishTimeoutError`.
* **Back-pressure**: at most ``max_pending`` unacknowledged records; beyond that ``send`` waits
  up to ``enqueue_timeout_s`` and then raises :class:`QueueFullError` instead of growing memory.

The gateway publishes through this same class.

Layout: :mod:`~producers.publisher.client` (:class:`Publisher`, its settings and metrics) over
:mod:`~producers.publisher.contract` (what may be sent), :mod:`~producers.publisher.trace_context`
(W3C ``traceparent``) and :mod:`~producers.publisher.outcomes` (the delivery report and the
errors).
"""

from __future__ import annotations

from producers.publisher.client import Publisher, PublisherSettings
from producers.publisher.contract import (
    TransactionInput,
    validate_extensions,
    validate_transaction,
)
from producers.publisher.outcomes import (
    BatchPublishError,
    ContractViolationError,
    DeliveryFailedError,
    DeliveryReport,
    PublisherClosedError,
    PublisherError,
    PublishTimeoutError,
    QueueFullError,
)
from producers.publisher.trace_context import (
    TraceParent,
    child_traceparent,
    new_traceparent,
    parse_traceparent,
    trace_headers,
    trace_id_of,
)

__all__ = [
    "BatchPublishError",
    "ContractViolationError",
    "DeliveryFailedError",
    "DeliveryReport",
    "PublishTimeoutError",
    "Publisher",
    "PublisherClosedError",
    "PublisherError",
    "PublisherSettings",
    "QueueFullError",
    "TraceParent",
    "TransactionInput",
    "child_traceparent",
    "new_traceparent",
    "parse_traceparent",
    "trace_headers",
    "trace_id_of",
    "validate_extensions",
    "validate_transaction",
]
