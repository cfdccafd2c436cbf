"""The notifier: review / decline decisions → ``<tenant>.alerts`` and the tenant's HTTP webhook.

``<tenant>.decisions`` → :func:`notify_batch` → ``<tenant>.alerts`` (the same ``DecisionEvent``
contract, trace context and CloudEvents extensions carried on). Approve decisions produce nothing.
Alerts, dead letters and input offsets commit in one Kafka transaction per batch (exactly once).

The webhook (``SCORESTREAM_NOTIFIER_WEBHOOK_URL``, optional) receives each review / decline
decision as a JSON body (``DecisionEvent`` fields) by POST, with connect and read timeouts,
retries with exponential backoff and jitter (timeouts, connection errors, 408/425/429/5xx; other
statuses are final), over one shared ``httpx.Client`` used by a small thread pool. A decision whose
webhook fails for good goes to a DLQ with reason ``webhook_failed`` and the HTTP status or error
in ``dlq.message`` (transient failures first go through the retry topic, below); its alert is
produced all the same (analysts still see it).
Re-publishing such a DLQ record to ``decisions`` re-sends the webhook and the alert.

**The webhook is at-least-once.** HTTP calls are side effects outside the Kafka transaction: a
batch that aborts or a process that dies before the commit is processed again, and its webhooks are
sent again. Every request therefore carries ``Idempotency-Key: <transaction_id>`` so the receiver
can drop repeats (as well as ``traceparent`` when the decision had one).

**Outages: the retry topic.** A delivery that fails for a transient reason (no answer: a
connection error or timeout; 408, 425, 429 or any 5xx; the circuit open; the batch's time budget
spent) is not dead-lettered at once: the decision goes to ``<tenant>.alerts.retry`` — its key,
value and headers as consumed, plus ``retry.attempt`` (delivery rounds failed so far),
``retry.not_before`` and ``retry.first_failure`` (epoch ms) and ``retry.history`` (one
``<round> <time> <error>`` entry per failed round) — written in the batch's transaction with the
input offsets, like a dead letter. The notifier consumes that topic too: a record not yet due is
written back to its partition (same transaction) and the partition is paused until it is due,
so waiting never blocks the decisions or another partition; a due one is delivered again (the
webhook only: its alert was produced the first time). Round *n* waits ``retry_backoff_s *
2**(n-1)`` (capped at ``retry_backoff_max_s``); after ``retry_attempts`` retry rounds, or when
the next round would start more than ``retry_max_delay_s`` after the first failure, it goes to
``<tenant>.alerts.retry.dlq`` with reason ``webhook_failed``, the whole history in
``dlq.message`` and ``retry.*`` headers. A permanent failure (any other 4xx, a 3xx) goes to
``<tenant>.decisions.dlq`` at once, as before. Defaults: 5 retry rounds over ~10 minutes.
A partition's records are in arrival order, not due order: a record due sooner may wait behind
one due later in the same partition (never longer than ``retry_backoff_max_s``).

Bounded time: each batch has a time budget (``webhook_batch_budget_s``, well below
``max.poll.interval.ms``); no attempt starts after it, and unsent decisions go to the retry topic
(the DLQ with ``retry_attempts=0``). After ``webhook_circuit_threshold`` consecutive failed
deliveries the circuit opens for ``webhook_circuit_cooldown_s``: decisions fail fast to the retry
topic instead of waiting out timeouts, then one trial delivery decides whether it closes again.

Layout: :mod:`~consumers.notifier.service` (the processor, ``main``) runs
:mod:`~consumers.notifier.handler` (the batch logic) over :mod:`~consumers.notifier.webhook` and
:mod:`~consumers.notifier.retry`; :mod:`~consumers.notifier.settings` holds the settings and
metrics.
"""

from consumers.notifier.handler import NotifyOutput, notify_batch
from consumers.notifier.retry import RetryPolicy, RetryRecordError, RetryState
from consumers.notifier.service import Notifier, main
from consumers.notifier.settings import NotifierSettings, retryable_status
from consumers.notifier.webhook import Webhook, WebhookResult

__all__ = [
    "Notifier",
    "NotifierSettings",
    "NotifyOutput",
    "RetryPolicy",
    "RetryRecordError",
    "RetryState",
    "Webhook",
    "WebhookResult",
    "main",
    "notify_batch",
    "retryable_status",
]
