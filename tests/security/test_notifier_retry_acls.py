"""The notifier's retry topic works under the notifier's own least-privilege principal.

The registry entry ``alerts.retry`` gives the ``<tenant>-notifier`` principal Read and Write on
``<tenant>.alerts.retry`` and Write on ``<tenant>.alerts.retry.dlq`` (derived, like every ACL, by
:func:`scorestream.deploy.acl.service_acl_rules`): a real notifier process connected over SCRAM
moves a failing delivery through the retry topic to its DLQ and refuses nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.events import Outcome
from scorestream.deploy.acl import service_acl_rules
from tests.consumer_support import decisions, headers, publish, start_service
from tests.kafka_helpers import read_messages
from tests.security.conftest import Provision
from tests.webhook_server import WebhookServer
from tests.worker_support import Tenant, wait_until

pytestmark = [pytest.mark.security, pytest.mark.integration]


def test_the_retry_topic_needs_nothing_beyond_the_notifiers_acls(
    kafka_bootstrap: str, sasl_bootstrap: str, private_tenant: Provision, tmp_path: Path
) -> None:
    name, principals = private_tenant(["notifier"])
    rules = {(r.name, r.operations) for r in service_acl_rules(name, "notifier")}
    assert (f"{name}.alerts.retry", ("Read", "Describe")) in rules
    assert (f"{name}.alerts.retry", ("Write", "Describe")) in rules
    assert (f"{name}.alerts.retry.dlq", ("Write", "Describe")) in rules
    tenant = Tenant(name, tmp_path / "models")
    events = decisions(name, 12, seed=31)
    alerting = sorted(d.transaction_id for d in events if d.outcome is not Outcome.APPROVE)
    failing = alerting[0]
    try:
        with WebhookServer(fail_keys={failing}) as server:
            start_service(
                tenant,
                "consumers.notifier",
                "n-acl",
                "--webhook-url",
                server.url(),
                SCORESTREAM_NOTIFIER_WEBHOOK_ATTEMPTS="1",
                SCORESTREAM_NOTIFIER_RETRY_ATTEMPTS="1",
                SCORESTREAM_NOTIFIER_RETRY_BACKOFF_S="0.3",
                **principals["notifier"].client_env(sasl_bootstrap),
            )
            publish(tenant.topic("decisions"), events)
            dlq = read_messages(kafka_bootstrap, tenant.topic("alerts.retry.dlq"), 1, timeout=60)
            wait_until(lambda: set(server.keys()) >= set(alerting), 30, "the deliveries")
            keys = server.keys()
    finally:
        tenant.stop_all()
    assert [headers(m)["retry.attempt"] for m in dlq] == ["2"]
    assert keys[failing] == 2  # the first round and one retry round
    log = (tmp_path / "n-acl.log").read_text(errors="replace")
    assert "AUTHORIZATION_FAILED" not in log.upper().replace(" ", "_")
