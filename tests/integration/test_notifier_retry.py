"""Webhook outages do not lose alerts: the retry topic (issue 15, item 15).

The attack: the tenant's receiver is down for ~20 s. The notifier's in-batch retries and circuit
breaker gave up within seconds and the alerts of the outage went to the DLQ, never redelivered.

Now a delivery that fails for a transient reason (connection error, timeout, 408/425/429/5xx,
circuit open) goes to ``<tenant>.alerts.retry`` with its attempt count and not-before time, and
comes back after a backoff — in the same Kafka transaction as the input offsets, so nothing is
lost or doubled by the move. Real processes: a notifier, a receiver that is down and then up, or
that answers 500 (transient, for ever) and 404 (permanent) — short backoff settings.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from schemas.events import DecisionEvent, Outcome
from tests.consumer_support import decisions, headers, publish, read_events, start_service
from tests.kafka_helpers import read_messages
from tests.webhook_server import WebhookServer
from tests.worker_support import Tenant, free_port, new_tenant, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAST = {
    "SCORESTREAM_NOTIFIER_WEBHOOK_ATTEMPTS": "2",
    "SCORESTREAM_NOTIFIER_WEBHOOK_BACKOFF_S": "0.05",
    "SCORESTREAM_NOTIFIER_WEBHOOK_CONNECT_TIMEOUT_S": "1",
    "SCORESTREAM_NOTIFIER_WEBHOOK_READ_TIMEOUT_S": "1",
    "SCORESTREAM_NOTIFIER_WEBHOOK_CIRCUIT_COOLDOWN_S": "1",
}


@pytest.fixture
def tenant(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Tenant]:
    t = new_tenant(tmp_path)
    yield t
    t.stop_all()


def alerting(events: list[DecisionEvent]) -> set[str]:
    return {d.transaction_id for d in events if d.outcome in (Outcome.REVIEW, Outcome.DECLINE)}


def test_alerts_of_a_receiver_outage_are_delivered_exactly_once_when_it_is_back(
    kafka_bootstrap: str, tenant: Tenant
) -> None:
    port = free_port()  # nobody listens: connection refused, as for a receiver that is down
    start_service(
        tenant,
        "consumers.notifier",
        "n-outage",
        "--webhook-url",
        f"http://127.0.0.1:{port}/hook",
        **FAST,
        SCORESTREAM_NOTIFIER_RETRY_ATTEMPTS="8",
        SCORESTREAM_NOTIFIER_RETRY_BACKOFF_S="1",
        SCORESTREAM_NOTIFIER_RETRY_BACKOFF_MAX_S="3",
        SCORESTREAM_NOTIFIER_RETRY_MAX_DELAY_S="120",
    )
    down_since = time.monotonic()
    first, second = decisions(tenant.name, 60, seed=21), decisions(tenant.name, 60, seed=22)
    expected = alerting(first) | alerting(second)
    publish(tenant.topic("decisions"), first)
    time.sleep(5)
    publish(tenant.topic("decisions"), second)  # a second wave in the middle of the outage
    # the alerts topic does not wait for the webhook: every alert is there during the outage
    alerts = read_events(kafka_bootstrap, tenant.topic("alerts"), len(expected), DecisionEvent)
    assert {d.transaction_id for _, d in alerts} == expected
    time.sleep(max(0.0, down_since + 12 - time.monotonic()))
    with WebhookServer(port=port) as server:  # the receiver is back after ~12 s
        wait_until(lambda: set(server.keys()) >= expected, 90, "every alert delivered")
        time.sleep(3)  # would a retry be sent twice?
        keys = server.keys()
    assert keys == dict.fromkeys(expected, 1)  # each alert delivered once, none else
    retried = read_messages(kafka_bootstrap, tenant.topic("alerts.retry"), 10**6, timeout=5)
    assert retried, "the outage's alerts went through the retry topic"
    # read before they were due, records were written back (parked), not waited for
    copies = Counter((m.key(), m.value(), headers(m)["retry.attempt"]) for m in retried)
    assert max(copies.values()) > 1
    for dlq in ("decisions.dlq", "alerts.retry.dlq"):
        assert read_messages(kafka_bootstrap, tenant.topic(dlq), 1, timeout=3) == []
    # the retries redo the webhook only: each alert is on the alerts topic once
    again = read_events(kafka_bootstrap, tenant.topic("alerts"), len(expected), DecisionEvent)
    assert Counter(d.transaction_id for _, d in again) == dict.fromkeys(expected, 1)


def test_a_receiver_that_keeps_failing_ends_in_the_dlq_with_the_attempt_history(
    kafka_bootstrap: str, tenant: Tenant
) -> None:
    events = decisions(tenant.name, 40, seed=23)
    ids = sorted(alerting(events))
    failing, rejecting = set(ids[:3]), set(ids[3:5])
    with WebhookServer(fail_keys=failing, reject_keys=rejecting) as server:
        start_service(
            tenant,
            "consumers.notifier",
            "n-fails",
            "--webhook-url",
            server.url("/hook"),
            **FAST,
            SCORESTREAM_NOTIFIER_WEBHOOK_CIRCUIT_THRESHOLD="0",
            SCORESTREAM_NOTIFIER_RETRY_ATTEMPTS="2",
            SCORESTREAM_NOTIFIER_RETRY_BACKOFF_S="0.5",
            SCORESTREAM_NOTIFIER_RETRY_BACKOFF_MAX_S="1",
        )
        publish(tenant.topic("decisions"), events)
        exhausted = read_messages(kafka_bootstrap, tenant.topic("alerts.retry.dlq"), 3, timeout=60)
        refused = read_messages(kafka_bootstrap, tenant.topic("decisions.dlq"), 2, timeout=30)
        time.sleep(2)  # no further attempt after the DLQ
        keys = server.keys()
        sent_at: dict[str, list[float]] = {k: [] for k in failing}
        for r in server.requests():
            sent_at.get(r.headers.get("idempotency-key", ""), []).append(r.at)

    # 404 is final: one round (2 HTTP attempts would be a retry of a permanent error: 1), no retry
    assert {k: keys[k] for k in rejecting} == dict.fromkeys(rejecting, 1)
    assert sorted(DecisionEvent.model_validate_json(m.value() or b"").transaction_id
                  for m in refused) == sorted(rejecting)  # fmt: skip
    for m in refused:
        h = headers(m)
        assert h["dlq.reason"] == "webhook_failed"
        assert h["dlq.message"].endswith("failed after 1 attempt(s): HTTP 404")
        assert "retry.attempt" not in h

    # 500 is transient: 1 + 2 retry rounds of 2 HTTP attempts each, then the DLQ with the history
    assert {k: keys[k] for k in failing} == dict.fromkeys(failing, 6)
    assert sorted(DecisionEvent.model_validate_json(m.value() or b"").transaction_id
                  for m in exhausted) == sorted(failing)  # fmt: skip
    for m in exhausted:
        h = headers(m)
        assert h["dlq.reason"] == "webhook_failed"
        assert h["dlq.source.topic"] == tenant.topic("alerts.retry")
        assert h["retry.attempt"] == "3"
        history = h["retry.history"].split("; ")
        assert [entry.split(" ", 1)[0] for entry in history] == ["1", "2", "3"]
        assert all(entry.endswith("HTTP 500") for entry in history)
        assert "3 delivery rounds" in h["dlq.message"]
        assert "HTTP 500" in h["dlq.message"]
    # each round waited for its not-before time: 0.5 s after the first, 1 s after the second
    for times in sent_at.values():
        times.sort()
        assert times[2] - times[1] >= 0.45
        assert times[4] - times[3] >= 0.95
    # the others were delivered once
    delivered = set(ids) - failing - rejecting
    assert {k: keys[k] for k in delivered} == dict.fromkeys(delivered, 1)
