"""The notifier's batch logic: decisions (and due retries) in, alerts, webhook deliveries, retry
records and dead letters out (unit-tested without Kafka)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace

from consumers.notifier.retry import (
    CLOCK_SKEW_S,
    FIRST,
    NOT_BEFORE,
    RetryPolicy,
    RetryRecordError,
    RetryState,
    with_retry_headers,
)
from consumers.notifier.settings import ALERTING
from consumers.notifier.webhook import Webhook, WebhookResult
from schemas.cloudevents import Envelope
from schemas.errors import RawRecord
from schemas.events import DecisionEvent
from scorestream import tracing
from scorestream.dlq import DeadLetter, raw_of
from scorestream.processor import OutRecord

log = logging.getLogger("scorestream.notifier")


# -- the pure-ish part ---------------------------------------------------------------------------
@dataclass(slots=True)
class NotifyOutput:
    alerts: list[Envelope[DecisionEvent]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    approved: int = 0
    webhook: list[WebhookResult] = field(default_factory=list)
    retries: list[OutRecord] = field(default_factory=list)
    """Decisions (re)scheduled on the retry topic after a failed round."""
    parked: list[OutRecord] = field(default_factory=list)
    """Retry records read before they were due, written back to their partition."""
    resume_at: dict[int, float] = field(default_factory=dict)
    """Retry-topic partition → when (epoch s) its earliest parked record is due."""
    redelivered: int = 0
    exhausted: int = 0


def notify_batch(
    batch: list[Envelope[DecisionEvent]],
    *,
    tenant: str,
    webhook: Webhook | None,
    pool: Executor | None = None,
    budget_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    retry: RetryPolicy | None = None,
    wall: Callable[[], float] = time.time,
) -> NotifyOutput:
    """Select the alerts of a batch and send them to the webhook (concurrently with ``pool``).

    With ``retry``, records of ``retry.topic`` in the batch are due deliveries (sent again, no
    alert) or not yet due (parked), and transient failures are scheduled there."""
    out = NotifyOutput()
    now_s = wall()
    due: list[tuple[Envelope[DecisionEvent], RetryState]] = []
    for env in batch:
        d = env.event
        if (dead := DeadLetter.other_tenant(env, d.tenant_id, tenant)) is not None:
            out.dead_letters.append(dead)
        elif retry is not None and env.raw is not None and env.raw.topic == retry.topic:
            state = _triage_retry(out, env.raw, retry, now_s)
            if state is not None:
                due.append((env, state))
        elif d.outcome in ALERTING:
            out.alerts.append(env)
        else:
            out.approved += 1
    if webhook is None or not (out.alerts or due):
        return out
    deadline = None if budget_s is None else clock() + budget_s

    def send(env: Envelope[DecisionEvent]) -> WebhookResult:
        # a client span under the decision's process span; its context goes on the request
        parent = tracing.parent_of(env.trace)
        with tracing.client_span("POST", webhook.url, parent=parent) as (span, sent):
            result = webhook.deliver(env.event, trace=sent or env.trace, deadline=deadline)
            tracing.http_result(span, result.status, result.error_type, result.attempts)
            return result

    work = [*((env, FIRST) for env in out.alerts), *due]
    if pool is None:
        results = [send(env) for env, _ in work]
    else:
        results = list(pool.map(send, [env for env, _ in work]))
    out.webhook = results
    now_s = wall()
    for (env, state), r in zip(work, results, strict=True):
        if state is not FIRST:
            out.redelivered += 1
        if not r.ok:
            _after_failure(out, env, state, r, webhook=webhook, retry=retry, now_s=now_s)
    return out


def _triage_retry(
    out: NotifyOutput, raw: RawRecord, retry: RetryPolicy, now_s: float
) -> RetryState | None:
    """A record of the retry topic: its state when due; else parked (or dead-lettered when its
    ``retry.*`` headers are unreadable) and None."""
    try:
        state = RetryState.from_headers(raw.headers)
    except RetryRecordError as exc:
        out.dead_letters.append(
            DeadLetter(raw, "invalid_retry_record", type(exc).__name__, str(exc))
        )
        return None
    if state.not_before_ms <= now_s * 1000:
        return state
    if state.not_before_ms > (now_s + retry.backoff_max_s + CLOCK_SKEW_S) * 1000:
        wait = state.not_before_ms / 1000 - now_s
        message = f"{NOT_BEFORE} is {wait:.0f}s away, beyond the longest backoff"
        out.dead_letters.append(
            DeadLetter(raw, "invalid_retry_record", "RetryRecordError", message)
        )
        return None
    out.parked.append(OutRecord(retry.topic, raw.key, raw.value, list(raw.headers), raw.partition))
    p = raw.partition or 0
    until = state.not_before_ms / 1000
    out.resume_at[p] = min(out.resume_at.get(p, until), until)
    return None


def _after_failure(
    out: NotifyOutput,
    env: Envelope[DecisionEvent],
    state: RetryState,
    r: WebhookResult,
    *,
    webhook: Webhook,
    retry: RetryPolicy | None,
    now_s: float,
) -> None:
    """A failed round: schedule the next one, or dead-letter (with the history, if any)."""
    raw = raw_of(env)
    error_type = r.error_type or "WebhookError"
    if retry is None or (state is FIRST and not (r.transient and retry.attempts > 0)):
        # permanent (or no retries configured): the input's DLQ, as it always was
        out.dead_letters.append(
            DeadLetter(
                raw,
                "webhook_failed",
                error_type,
                f"webhook {webhook.host} failed after {r.attempts} attempt(s): {r.error}",
            )
        )
        return
    first_ms = state.first_failure_ms or int(now_s * 1000)
    state = replace(state.failed(r, now_s), first_failure_ms=first_ms)
    delay = retry.delay(state.attempt)
    within = (now_s + delay) * 1000 - first_ms <= retry.max_delay_s * 1000
    if r.transient and state.attempt <= retry.attempts and within:
        state = replace(state, not_before_ms=int((now_s + delay) * 1000))
        headers = with_retry_headers(raw, state)
        out.retries.append(OutRecord(retry.topic, raw.key, raw.value, headers))
        return
    if not r.transient:
        why = "a permanent error"
    elif state.attempt > retry.attempts:
        why = "its retry rounds spent"
    else:
        why = "its retry time spent"
    spent = max(0.0, now_s - first_ms / 1000)
    out.exhausted += 1
    out.dead_letters.append(
        DeadLetter(
            replace(raw, headers=with_retry_headers(raw, state)),
            "webhook_failed",
            error_type,
            f"webhook {webhook.host} failed in {state.attempt} delivery rounds over {spent:.0f}s "
            f"({why}): {'; '.join(state.history)}",
        )
    )
