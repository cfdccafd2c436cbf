"""The notifier's webhook delivery against a real local HTTP server: retries, backoff, timeouts."""

from __future__ import annotations

import itertools
import json
import random
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from consumers.notifier import (
    NotifierSettings,
    RetryPolicy,
    RetryRecordError,
    RetryState,
    Webhook,
    notify_batch,
    retryable_status,
)
from schemas.cloudevents import Envelope
from schemas.errors import RawRecord
from schemas.events import DecisionEvent, Outcome
from tests.webhook_server import WebhookServer

T0 = datetime(2026, 11, 24, 12, 30, tzinfo=UTC)
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def decision(tx: str = "tx-1", outcome: Outcome = Outcome.REVIEW, **kw: object) -> DecisionEvent:
    fields: dict[str, object] = {
        "transaction_id": tx,
        "tenant_id": "acme",
        "account_id": "acc-1",
        "outcome": outcome,
        "score": 0.7,
        "model_name": "fraud-gbt",
        "model_version": "2",
        "policy_version": "p1",
        "reasons": ("threshold:review",),
        "event_time": T0,
        "decided_at": T0,
    }
    fields.update(kw)
    return DecisionEvent.model_validate(fields)


def envelope(d: DecisionEvent) -> Envelope[DecisionEvent]:
    return Envelope(
        event=d,
        id=f"ce-{d.transaction_id}",
        source="tests",
        time=T0,
        type=d.ce_type,
        trace={"traceparent": TRACEPARENT},
        raw=RawRecord(key=d.account_id.encode(), value=d.model_dump_json().encode()),
    )


@pytest.fixture
def server() -> Iterator[WebhookServer]:
    with WebhookServer() as s:
        yield s


def webhook(url: str, **kw: object) -> Webhook:
    options: dict[str, object] = {
        "connect_timeout_s": 0.5,
        "read_timeout_s": 0.3,
        "attempts": 3,
        "backoff_s": 0.1,
        "backoff_max_s": 0.15,
        "circuit_threshold": 0,
        "rng": random.Random(7),
    }
    options.update(kw)
    return Webhook(url, tenant="unit", **options)  # type: ignore[arg-type]


def test_success_sends_the_decision_with_an_idempotency_key(server: WebhookServer) -> None:
    d = decision("tx-ok")
    with webhook(server.url("/ok")) as hook:
        result = hook.deliver(d, trace={"traceparent": TRACEPARENT})
    assert (result.ok, result.attempts, result.status) == (True, 1, 200)
    [req] = server.requests()
    assert req.headers["idempotency-key"] == "tx-ok"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["traceparent"] == TRACEPARENT
    assert req.headers["user-agent"].startswith("scorestream-notifier")
    assert req.body == json.loads(d.model_dump_json())
    assert DecisionEvent.model_validate_json(json.dumps(req.body)) == d


def test_a_500_is_retried_with_exponential_backoff_then_fails(server: WebhookServer) -> None:
    with webhook(server.url("/fail"), backoff_max_s=1.0) as hook:
        result = hook.deliver(decision("tx-500"))
    assert not result.ok
    assert (result.attempts, result.status, result.error_type) == (3, 500, "HTTPStatus")
    assert result.error == "HTTP 500"
    reqs = server.requests("/fail")
    assert len(reqs) == 3
    assert {r.headers["idempotency-key"] for r in reqs} == {"tx-500"}
    gaps = [b.at - a.at for a, b in itertools.pairwise(reqs)]
    # equal jitter: retry n waits between half and all of 0.1 * 2**(n-1)
    assert 0.05 <= gaps[0] < 0.1 + 0.2
    assert 0.1 <= gaps[1] < 0.2 + 0.2


def test_a_flaky_endpoint_succeeds_on_a_retry(server: WebhookServer) -> None:
    with webhook(server.url("/flaky")) as hook:
        result = hook.deliver(decision("tx-flaky"))
    assert (result.ok, result.attempts) == (True, 3)
    assert server.keys("/flaky") == {"tx-flaky": 3}


def test_a_hanging_endpoint_times_out_each_attempt(server: WebhookServer) -> None:
    started = time.monotonic()
    with webhook(server.url("/hang"), read_timeout_s=0.3) as hook:
        result = hook.deliver(decision("tx-hang"))
    elapsed = time.monotonic() - started
    assert not result.ok
    assert (result.attempts, result.status, result.error_type) == (3, None, "ReadTimeout")
    assert result.error.startswith("ReadTimeout")
    assert len(server.requests("/hang")) == 3
    assert 0.9 <= elapsed < 3.0  # three 0.3 s timeouts plus short backoffs, not the hang


def test_client_errors_are_not_retried(server: WebhookServer) -> None:
    with webhook(server.url("/missing")) as hook:
        result = hook.deliver(decision())
    assert (result.ok, result.attempts, result.status) == (False, 1, 404)
    assert len(server.requests()) == 1


def test_503_with_retry_after_is_retried(server: WebhookServer) -> None:
    with webhook(server.url("/busy"), attempts=2) as hook:
        result = hook.deliver(decision())
    assert (result.ok, result.attempts, result.status) == (False, 2, 503)


def test_connection_refused_is_retried_and_reported() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    with webhook(f"http://127.0.0.1:{port}/hook") as hook:
        result = hook.deliver(decision())
    assert (result.ok, result.attempts, result.error_type) == (False, 3, "ConnectError")


def test_the_circuit_opens_after_consecutive_failures_then_half_opens(
    server: WebhookServer,
) -> None:
    with webhook(
        server.url("/fail"), attempts=1, circuit_threshold=2, circuit_cooldown_s=0.3
    ) as hook:
        assert hook.deliver(decision("a")).error_type == "HTTPStatus"
        assert hook.deliver(decision("b")).error_type == "HTTPStatus"
        fast = hook.deliver(decision("c"))
        assert (fast.ok, fast.attempts, fast.error_type) == (False, 0, "CircuitOpen")
        assert len(server.requests()) == 2
        time.sleep(0.35)
        assert hook.deliver(decision("d")).attempts == 1  # trial request after the cooldown
        assert hook.circuit_open()  # failed again: open again
        hook.url = server.url("/ok")
        time.sleep(0.35)
        assert hook.deliver(decision("e")).ok
        assert hook.deliver(decision("f")).ok
        assert not hook.circuit_open()


def test_no_attempt_starts_after_the_deadline(server: WebhookServer) -> None:
    with webhook(server.url("/fail")) as hook:
        result = hook.deliver(decision(), deadline=time.monotonic() - 1)
        assert (result.ok, result.attempts, result.error_type) == (False, 0, "BudgetExceeded")
        assert server.requests() == []
        # a deadline during the retries stops them
        result = hook.deliver(decision(), deadline=time.monotonic() + 0.05)
    assert result.attempts == 1
    assert result.error == "HTTP 500; batch time budget spent"


def test_backoff_is_exponential_capped_and_jittered() -> None:
    hook = webhook("http://127.0.0.1:1/x", backoff_s=0.2, backoff_max_s=1.0)
    with hook:
        for retry, full in [(1, 0.2), (2, 0.4), (3, 0.8), (4, 1.0), (8, 1.0)]:
            delays = [hook.backoff(retry) for _ in range(50)]
            assert all(full / 2 <= d <= full for d in delays)
            assert len(set(delays)) > 1


def test_notify_batch_alerts_reviews_and_declines_and_dead_letters_failed_webhooks() -> None:
    batch = [
        envelope(decision("tx-approve", Outcome.APPROVE)),
        envelope(decision("tx-review", Outcome.REVIEW)),
        envelope(decision("tx-decline", Outcome.DECLINE)),
        envelope(decision("tx-fails", Outcome.DECLINE)),
        envelope(decision("tx-other", Outcome.DECLINE, tenant_id="other")),
    ]
    with (
        WebhookServer(fail_keys={"tx-fails"}) as server,
        webhook(server.url()) as hook,
        ThreadPoolExecutor(4) as pool,
    ):
        out = notify_batch(batch, tenant="acme", webhook=hook, pool=pool, budget_s=10)
    assert [e.event.transaction_id for e in out.alerts] == ["tx-review", "tx-decline", "tx-fails"]
    assert out.approved == 1
    assert [(dl.reason, dl.raw.value) for dl in out.dead_letters] == [
        ("unknown_tenant", batch[4].raw.value if batch[4].raw else None),
        ("webhook_failed", batch[3].raw.value if batch[3].raw else None),
    ]
    failed = out.dead_letters[1]
    assert failed.error == "HTTPStatus"
    assert failed.message == (
        f"webhook 127.0.0.1:{server.port} failed after 3 attempt(s): HTTP 500"
    )
    assert server.keys() == {"tx-review": 1, "tx-decline": 1, "tx-fails": 3}
    # without a webhook: alerts only
    plain = notify_batch(batch, tenant="acme", webhook=None)
    assert len(plain.alerts) == 3
    assert [dl.reason for dl in plain.dead_letters] == ["unknown_tenant"]


def test_settings_keep_the_batch_budget_below_the_poll_interval() -> None:
    NotifierSettings(tenant="acme")
    with pytest.raises(ValidationError, match="half of max_poll_interval_ms"):
        NotifierSettings(tenant="acme", webhook_batch_budget_s=100)
    ok = NotifierSettings(
        tenant="acme",
        webhook_batch_budget_s=100,
        max_poll_interval_ms=300_000,
        live_after_s=120,
        webhook_url="https://hooks.example.com/T0/secret",
    )
    assert ok.webhook_url is not None
    assert ok.webhook_url.get_secret_value() == "https://hooks.example.com/T0/secret"


def test_the_webhook_url_is_a_secret_never_echoed() -> None:
    url = "https://hookuser:CANARYPASS@hooks.example.com/T0/CANARYTOKEN?sig=CANARYSIG"
    settings = NotifierSettings(tenant="acme", webhook_url=url)
    assert "CANARY" not in repr(settings)
    assert "CANARY" not in str(settings)
    for bad in ("ftp://u:CANARYPASS@host/CANARYTOKEN", "CANARYPASS not a url"):
        with pytest.raises(ValidationError, match="http:// or https:// URL") as err:
            NotifierSettings(tenant="acme", webhook_url=bad)
        assert "CANARY" not in str(err.value)


# -- the retry topic -----------------------------------------------------------------------------
RETRY = RetryPolicy("acme.alerts.retry", attempts=2, backoff_s=10, backoff_max_s=15, max_delay_s=60)
NOW = 1_800_000_000.0


def retried(d: DecisionEvent, state: RetryState, *, partition: int = 1) -> Envelope[DecisionEvent]:
    env = envelope(d)
    assert env.raw is not None
    headers = [("ce_id", b"ce-1"), *state.headers()]
    raw = RawRecord(env.raw.key, env.raw.value, headers, RETRY.topic, partition, 7)
    return Envelope(env.event, env.id, env.source, env.time, env.type, env.trace, raw=raw)


def test_retryable_statuses() -> None:
    assert [s for s in (200, 301, 400, 401, 403, 404, 409, 410, 422) if retryable_status(s)] == []
    assert all(retryable_status(s) for s in (408, 425, 429, 500, 501, 502, 503, 504, 599))


def test_retry_policy_backoff_doubles_and_is_capped() -> None:
    assert [RETRY.delay(n) for n in (1, 2, 3, 4)] == [10, 15, 15, 15]
    defaults = NotifierSettings(tenant="acme")
    policy = RetryPolicy(
        "t",
        defaults.retry_attempts,
        defaults.retry_backoff_s,
        defaults.retry_backoff_max_s,
        defaults.retry_max_delay_s,
    )
    total = sum(policy.delay(n) for n in range(1, policy.attempts + 1))
    assert (policy.attempts, total) == (5, 620.0)  # 5 rounds over ~10 minutes
    assert total <= policy.max_delay_s
    with pytest.raises(ValidationError, match="no retry round could ever start"):
        NotifierSettings(tenant="acme", retry_backoff_s=60, retry_max_delay_s=30)
    NotifierSettings(tenant="acme", retry_attempts=0, retry_backoff_s=60, retry_max_delay_s=30)


def test_retry_headers_round_trip_and_bad_ones_are_refused() -> None:
    state = RetryState(2, 1234, 1000, ("1 2026-01-01T00:00:00Z HTTP 503", "2 x HTTP 500"))
    assert RetryState.from_headers(state.headers()) == state
    for bad in ([], [("retry.attempt", b"x")], [*state.headers()[1:], ("retry.attempt", b"0")]):
        with pytest.raises(RetryRecordError):
            RetryState.from_headers(bad)


def test_a_transient_failure_is_scheduled_a_permanent_one_dead_lettered() -> None:
    batch = [envelope(decision("tx-503")), envelope(decision("tx-404")), envelope(decision("ok"))]
    with (
        WebhookServer(fail_keys={"tx-503"}, reject_keys={"tx-404"}) as server,
        webhook(server.url(), attempts=1) as hook,
    ):
        out = notify_batch(batch, tenant="acme", webhook=hook, retry=RETRY, wall=lambda: NOW)
    assert [dl.raw.value for dl in out.dead_letters] == [batch[1].raw.value if batch[1].raw else 0]
    assert out.dead_letters[0].message.endswith("failed after 1 attempt(s): HTTP 404")
    [rec] = out.retries
    assert (rec.topic, rec.key, rec.value) == (RETRY.topic, b"acc-1", batch[0].raw.value)  # type: ignore[union-attr]
    state = RetryState.from_headers(list(rec.headers))
    assert (state.attempt, state.first_failure_ms, state.not_before_ms) == (
        1,
        NOW * 1000,
        (NOW + 10) * 1000,
    )
    assert state.history == ("1 2027-01-15T08:00:00Z HTTP 500",)
    assert len(out.alerts) == 3  # the alerts are produced whatever the webhook did


def test_retry_records_not_yet_due_are_parked_due_ones_delivered_or_exhausted() -> None:
    first = int(NOW * 1000) - 20_000
    early = RetryState(1, int(NOW * 1000) + 5_000, first, ("1 t HTTP 503",))
    later = RetryState(1, int(NOW * 1000) + 9_000, first, ("1 t HTTP 503",))
    due = RetryState(1, int(NOW * 1000), first, ("1 t HTTP 503",))
    last = RetryState(2, int(NOW * 1000), first, ("1 t HTTP 503", "2 t HTTP 503"))
    batch = [
        retried(decision("wait-1"), later, partition=2),
        retried(decision("wait-2"), early, partition=2),
        retried(decision("again"), due),
        retried(decision("spent"), last),
        retried(decision("fine"), due),
    ]
    with (
        WebhookServer(fail_keys={"again", "spent"}) as server,
        webhook(server.url(), attempts=1) as hook,
    ):
        out = notify_batch(batch, tenant="acme", webhook=hook, retry=RETRY, wall=lambda: NOW)
        keys = server.keys()
    assert keys == {"again": 1, "spent": 1, "fine": 1}  # not-due records are not sent
    assert out.alerts == []  # a retry redoes the webhook only
    assert [(r.value, r.partition) for r in out.parked] == [
        (batch[0].raw.value, 2),  # type: ignore[union-attr]
        (batch[1].raw.value, 2),  # type: ignore[union-attr]
    ]
    assert out.resume_at == {2: NOW + 5}
    [again] = out.retries
    state = RetryState.from_headers(list(again.headers))
    assert (state.attempt, state.first_failure_ms) == (2, first)
    assert state.not_before_ms == (NOW + 15) * 1000
    assert [h.split(" ")[0] for h in state.history] == ["1", "2"]
    assert sum(1 for n, _ in again.headers if n == "retry.attempt") == 1
    [spent] = out.dead_letters
    assert (spent.reason, spent.error, spent.raw.offset) == ("webhook_failed", "HTTPStatus", 7)
    assert spent.message.startswith(f"webhook 127.0.0.1:{server.port} failed in 3 delivery rounds")
    assert "its retry rounds spent" in spent.message
    assert RetryState.from_headers(spent.raw.headers).attempt == 3
    assert (out.redelivered, out.exhausted) == (3, 1)


def test_the_total_retry_delay_is_bounded() -> None:
    first = int(NOW * 1000) - 50_000  # the next round would start 60 s after the first failure
    batch = [retried(decision("late"), RetryState(1, int(NOW * 1000), first, ("1 t x",)))]
    with WebhookServer(fail_keys={"late"}) as server, webhook(server.url(), attempts=1) as hook:
        out = notify_batch(batch, tenant="acme", webhook=hook, retry=RETRY, wall=lambda: NOW + 1)
    assert out.retries == []
    assert "its retry time spent" in out.dead_letters[0].message


def test_a_retry_record_without_its_headers_is_dead_lettered() -> None:
    env = retried(decision("x"), RetryState(1, 0, 0))
    assert env.raw is not None
    bad = Envelope(
        env.event, env.id, env.source, env.time, env.type, raw=replace(env.raw, headers=[])
    )
    with WebhookServer() as server, webhook(server.url()) as hook:
        out = notify_batch([bad], tenant="acme", webhook=hook, retry=RETRY)
        assert server.requests() == []
    assert [dl.reason for dl in out.dead_letters] == ["invalid_retry_record"]


def test_a_not_before_beyond_the_longest_backoff_does_not_pause_its_partition() -> None:
    far = RetryState(1, int((NOW + 15 + 61) * 1000), int(NOW * 1000))
    near = RetryState(1, int((NOW + 15 + 59) * 1000), int(NOW * 1000))  # a clock ahead: fine
    batch = [retried(decision("far"), far), retried(decision("near"), near)]
    with WebhookServer() as server, webhook(server.url()) as hook:
        out = notify_batch(batch, tenant="acme", webhook=hook, retry=RETRY, wall=lambda: NOW)
    assert [dl.reason for dl in out.dead_letters] == ["invalid_retry_record"]
    assert "beyond the longest backoff" in out.dead_letters[0].message
    assert out.resume_at == {1: NOW + 74}
