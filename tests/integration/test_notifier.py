"""The notifier as a real process against the real broker and a real local webhook server."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from schemas.events import DecisionEvent, Outcome
from tests.consumer_support import (
    decisions,
    headers,
    predictions,
    publish,
    read_events,
    start_service,
)
from tests.kafka_helpers import read_messages
from tests.webhook_server import WebhookServer
from tests.worker_support import Tenant, new_tenant

pytestmark = pytest.mark.integration

FAST_RETRIES = {
    "SCORESTREAM_NOTIFIER_WEBHOOK_ATTEMPTS": "3",
    "SCORESTREAM_NOTIFIER_WEBHOOK_BACKOFF_S": "0.05",
    "SCORESTREAM_NOTIFIER_WEBHOOK_READ_TIMEOUT_S": "1",
    # a failed delivery goes to the DLQ at once (the retry topic: test_notifier_retry.py)
    "SCORESTREAM_NOTIFIER_RETRY_ATTEMPTS": "0",
}


@pytest.fixture
def tenant(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Tenant]:
    t = new_tenant(tmp_path)
    yield t
    t.stop_all()


def test_alerts_webhooks_and_the_dlq_add_up(kafka_bootstrap: str, tenant: Tenant) -> None:
    events = decisions(tenant.name, 400)
    alerting = [d for d in events if d.outcome in (Outcome.REVIEW, Outcome.DECLINE)]
    failing = {
        alerting[3].transaction_id,
        alerting[50].transaction_id,
        alerting[150].transaction_id,
    }
    stranger = decisions("someone-else", 1, seed=9)[0].model_copy(
        update={"outcome": Outcome.DECLINE}
    )
    with WebhookServer(fail_keys=failing) as server:
        start_service(
            tenant,
            "consumers.notifier",
            "n-1",
            "--webhook-url",
            server.url("/hooks/acme"),
            **FAST_RETRIES,
        )
        publish(
            tenant.topic("decisions"),
            [*events, stranger],
            extensions={0: {"replyto": f"{tenant.name}.replies/1"}, 2: {"replyto": "x/1"}},
        )
        alerts = read_events(
            kafka_bootstrap, tenant.topic("alerts"), len(alerting), DecisionEvent, settle=1.0
        )
        dlq = read_messages(kafka_bootstrap, tenant.topic("decisions.dlq"), len(failing) + 1)
        received = server.requests("/hooks/acme")
        keys = server.keys("/hooks/acme")

    # the alerts topic gets exactly the review / decline decisions, once each, unchanged
    assert sorted(d.transaction_id for _, d in alerts) == sorted(d.transaction_id for d in alerting)
    by_id = {d.transaction_id: (i, d) for i, d in enumerate(events)}
    for msg, d in alerts:
        i, original = by_id[d.transaction_id]
        assert d == original
        h = headers(msg)
        assert h["traceparent"] == f"00-0af7651916cd43dd8448eb211c80319c-{i + 1:016x}-01"
        assert h["ce_source"] == "scorestream/notifier"
        assert h.get("ce_replyto") == ("x/1" if i == 2 else None)  # extensions carried on

    # the webhook received each alert with its Idempotency-Key; the failing ones 3 times
    assert set(keys) == {d.transaction_id for d in alerting}
    assert {k: n for k, n in keys.items() if n != 1} == dict.fromkeys(failing, 3)
    for req in received:
        key = req.headers["idempotency-key"]
        assert DecisionEvent.model_validate_json(json.dumps(req.body)) == by_id[key][1]
        assert req.headers["traceparent"].startswith("00-0af7651916cd43dd")

    # the failing webhook ends in the DLQ with reason headers; the stranger too
    reasons = Counter(headers(m)["dlq.reason"] for m in dlq)
    assert reasons == {"webhook_failed": len(failing), "unknown_tenant": 1}
    for m in dlq:
        h = headers(m)
        assert h["dlq.service"] == "notifier"
        assert h["dlq.source.topic"] == tenant.topic("decisions")
        if h["dlq.reason"] == "webhook_failed":
            d = DecisionEvent.model_validate_json(m.value() or b"")
            assert d.transaction_id in failing
            assert h["dlq.error"] == "HTTPStatus"
            assert h["dlq.message"] == (
                f"webhook 127.0.0.1:{server.port} failed after 3 attempt(s): HTTP 500"
            )

    # counts add up: in = alerts + approvals + dlq(other than webhook), and every alert was
    # either delivered or dead-lettered
    approvals = sum(d.outcome is Outcome.APPROVE for d in events)
    assert len(events) + 1 == len(alerts) + approvals + reasons["unknown_tenant"]
    delivered = {k for k, n in keys.items() if k not in failing}
    assert len(delivered) + reasons["webhook_failed"] == len(alerts)


def test_decision_and_notifier_chained(
    kafka_bootstrap: str, tenant: Tenant, tmp_path: Path
) -> None:
    """predictions → decision → decisions → notifier → alerts + webhook, two real processes."""
    policy = tmp_path / "policy.yaml"
    policy.write_text('version: "chain-1"\nthresholds: {review: 0.5, decline: 0.9}\n')
    preds = predictions(tenant.name, 300, seed=11)
    expected = {p.transaction_id for p in preds if p.score >= 0.5}
    with WebhookServer() as server:
        start_service(
            tenant,
            "consumers.decision",
            "d-chain",
            SCORESTREAM_DECISION_POLICY_FILE=str(policy),
        )
        start_service(
            tenant, "consumers.notifier", "n-chain", "--webhook-url", server.url(), **FAST_RETRIES
        )
        publish(tenant.topic("predictions"), preds)
        alerts = read_events(
            kafka_bootstrap, tenant.topic("alerts"), len(expected), DecisionEvent, settle=1.0
        )
        keys = server.keys()
    assert sorted(d.transaction_id for _, d in alerts) == sorted(expected)
    assert {d.policy_version for _, d in alerts} == {"chain-1"}
    assert set(keys) == expected
    for msg, _ in alerts:
        assert headers(msg)["traceparent"].startswith("00-0af7651916cd43dd")
