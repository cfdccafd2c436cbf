"""Issue 15 item 11: the audit refuses a record whose key is not its account (decode step).

Before, a mis-keyed enriched transaction joined under the wrong key: the audit wrote an
"incomplete" record for it (and, once the worker had scored it, a second one under the right
key). Now the kernel's decode step sends it to the audit's DLQ as ``key_mismatch``; a correctly
keyed transaction beside it is audited as usual. (The worker's half of the attack is in
``tests/integration/test_worker.py::test_poison_records_go_to_the_dlq_and_counts_add_up``.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from schemas.cloudevents import encode
from schemas.events import AuditRecord
from scorestream.kafka_config import producer_config
from scorestream.serde import EventProducer
from scorestream.settings import KafkaSettings
from tests.audit_support import enrich, parts_for
from tests.consumer_support import headers, read_events
from tests.factories import transaction
from tests.kafka_helpers import produce_raw, read_messages
from tests.worker_support import Tenant, new_tenant

pytestmark = pytest.mark.integration

JOIN_TIMEOUT_S = 2.0


def _start_audit(tenant: Tenant) -> subprocess.Popen[bytes]:
    log = (tenant.repo_dir.parent / "audit.log").open("ab")
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "consumers.audit", "--tenant", tenant.name),
            *("--instance-id", "audit-keys", "--health-port", "0"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=os.environ
        | {
            "SCORESTREAM_AUDIT_JOIN_TIMEOUT_S": str(JOIN_TIMEOUT_S),
            "SCORESTREAM_AUDIT_SESSION_TIMEOUT_MS": "6000",
        },
    )
    log.close()
    tenant.procs.append(proc)
    return proc


@pytest.fixture
def tenant(kafka_bootstrap: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    t = new_tenant(tmp_path)
    yield t
    t.stop_all()


def test_a_mis_keyed_enriched_record_goes_to_the_audit_dlq_not_the_audit(
    kafka_bootstrap: str, tenant: Tenant
) -> None:
    t = tenant.name
    good, bad = enrich(
        [
            transaction(tenant_id=t, transaction_id="tx-good", account_id="acc-good"),
            transaction(tenant_id=t, transaction_id="tx-miskeyed", account_id="acc-victim"),
        ]
    )
    _start_audit(tenant)
    m = encode(bad, source="tests/keys")
    enriched = tenant.topic("transactions.enriched")
    produce_raw(kafka_bootstrap, enriched, [(b"acc-attacker", m.value, list(m.headers))])  # type: ignore[list-item]
    parts = parts_for(good, 0.1)
    with EventProducer(producer_config(KafkaSettings()), source="tests/keys") as producer:
        producer.send(enriched, parts.enriched)
        producer.send(tenant.topic("predictions"), parts.prediction)
        producer.send(tenant.topic("decisions"), parts.decision)

    # then long enough for the mis-keyed one's join to time out (it was audited "incomplete")
    records = read_events(
        kafka_bootstrap, tenant.topic("audit"), 1, AuditRecord, settle=JOIN_TIMEOUT_S + 4
    )
    assert [r.transaction_id for _, r in records] == ["tx-good"]
    dlq = read_messages(kafka_bootstrap, f"{enriched}.dlq", 1, timeout=15)
    assert [(headers(x)["dlq.service"], headers(x)["dlq.reason"]) for x in dlq] == [
        ("audit", "key_mismatch")
    ]
    assert dlq[0].key() == b"acc-attacker"
    assert dlq[0].value() == m.value
