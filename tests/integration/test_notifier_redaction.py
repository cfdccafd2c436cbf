"""No webhook secret in the notifier's logs or spans (issue 15, item 5).

The attack: a tenant's webhook URL carries its credentials the way real webhooks do — basic-auth
user-info, a token in the path, a signature in the query string. httpx's INFO log line quoted the
whole URL into the notifier's log, and the webhook's client span recorded it as ``url.full``.

A real notifier process delivers to a real receiver at such a URL (made of canaries), some
deliveries failing (500: retried, then a dead letter and its log line), and exports its spans over
OTLP/HTTP to a real receiver; then no canary may appear in its stdout/stderr (its log) or in any
exported byte, while the client spans are there and still name the receiver's host and port.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from schemas.events import DecisionEvent, Outcome
from tests.consumer_support import decisions, publish, read_events, start_service
from tests.otlp_receiver import OtlpReceiver
from tests.webhook_server import WebhookServer
from tests.worker_support import Tenant, new_tenant, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def tenant(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Tenant]:
    t = new_tenant(tmp_path)
    yield t
    t.stop_all()


def test_webhook_credentials_path_token_and_signature_never_reach_logs_or_spans(
    kafka_bootstrap: str, tenant: Tenant
) -> None:
    tag = uuid.uuid4().hex[:12].upper()
    canaries = {
        "password": f"CANARYPASS{tag}",
        "path token": f"CANARYTOKEN{tag}",
        "query signature": f"CANARYSIG{tag}",
    }
    events = decisions(tenant.name, 40, seed=5)
    alerting = [d for d in events if d.outcome in (Outcome.REVIEW, Outcome.DECLINE)]
    failing = {alerting[0].transaction_id, alerting[7].transaction_id}
    with WebhookServer(fail_keys=failing) as hook, OtlpReceiver() as otlp:
        url = (
            f"http://hookuser:{canaries['password']}@127.0.0.1:{hook.port}"
            f"/hooks/{canaries['path token']}/x?sig={canaries['query signature']}"
        )
        proc = start_service(
            tenant,
            "consumers.notifier",
            "n-redact",
            "--webhook-url",
            url,
            SCORESTREAM_NOTIFIER_WEBHOOK_ATTEMPTS="2",
            SCORESTREAM_NOTIFIER_WEBHOOK_BACKOFF_S="0.05",
            SCORESTREAM_NOTIFIER_RETRY_ATTEMPTS="0",
            SCORESTREAM_TRACING_ENDPOINT=otlp.url,
            SCORESTREAM_TRACING_SCHEDULE_DELAY_MS="100",
            SCORESTREAM_LOG_LEVEL="INFO",
        )
        publish(tenant.topic("decisions"), events)
        read_events(kafka_bootstrap, tenant.topic("alerts"), len(alerting), DecisionEvent)
        wait_until(lambda: set(hook.keys()) >= {d.transaction_id for d in alerting}, 60, "webhooks")
        # the receiver saw the credentials: the URL really carried them
        first = hook.requests()[0]
        assert first.path == f"/hooks/{canaries['path token']}/x?sig={canaries['query signature']}"
        assert first.headers["authorization"].startswith("Basic ")
        wait_until(
            lambda: sum(s.name == "POST" for s in otlp.spans()) >= len(alerting),
            60,
            "the webhook client spans",
        )
        proc.terminate()  # shutdown lines and the last span export too
        proc.wait(30)
        exported = otlp.raw().decode("utf-8", errors="replace")
        clients = [s for s in otlp.spans() if s.name == "POST"]

    log = (tenant.repo_dir.parent / "n-redact.log").read_text(errors="replace")
    assert f"127.0.0.1:{hook.port}" in log  # the service does say which receiver it calls
    assert "dead-lettered" in log  # the failure path was logged too
    leaks = {
        f"{what} in {where}": True
        for what, canary in canaries.items()
        for where, text in (("the log", log), ("the exported spans", exported))
        if canary in text
    }
    assert leaks == {}
    # the client spans are exported, naming the receiver without the secrets
    assert {s.attributes["url.full"] for s in clients} == {f"http://127.0.0.1:{hook.port}/***?***"}
    assert {s.attributes["server.port"] for s in clients} == {str(hook.port)}
