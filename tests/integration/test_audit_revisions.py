"""The audit log across outages and reused transaction ids, with the real services as processes:
worker, decision service and audit against the real broker (issue 15, items 8 and 10).

* A decision-service outage longer than the join timeout: the audit writes the transaction's
  record ``incomplete``; when the decision service comes back, the late decision writes a second
  *revision* of the same record (complete, ``supersedes`` 1), never a contradicting record and
  never only a dead letter. Past the amend window, a late decision goes to the DLQ with a reason
  and a pointer to the record, and no second record appears.
* Two different transactions published with the same ``transaction_id``: the first is audited,
  the second (and its prediction and decision) land in the DLQs with reason
  ``transaction_id_reused`` instead of vanishing; identical copies are still deduplicated.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Message

from pipelines.sources import from_audit
from producers.generator import generate_transactions
from schemas.events import (
    AuditRecord,
    AuditStatus,
    DecisionEvent,
    EnrichedTransaction,
    PredictionEvent,
    latest_revisions,
)
from scorestream.serde import decode_message
from tests.consumer_support import headers, publish, read_events, start_service
from tests.kafka_helpers import read_messages
from tests.worker_support import (
    Tenant,
    enriched_events,
    free_port,
    http_get,
    new_tenant,
    publish_enriched,
    wait_until,
)

pytestmark = pytest.mark.integration

JOIN_TIMEOUT_S = "2"


@pytest.fixture
def tenant(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Tenant]:
    t = new_tenant(tmp_path)
    t.publish_model("1")
    t.promote("1")
    yield t
    t.stop_all()


def _ready(port: int, what: str) -> None:
    wait_until(lambda: http_get(port, "/readyz")[0] == 200, 60, f"the {what} ready")


def start_worker(tenant: Tenant) -> None:
    port = free_port()
    tenant.start_worker("w-1", health_port=port)
    _ready(port, "worker")


def start_decision(tenant: Tenant) -> subprocess.Popen[bytes]:
    port = free_port()
    proc = start_service(tenant, "consumers.decision", "d-1", "--health-port", str(port))
    _ready(port, "decision service")
    return proc


def start_audit(
    tenant: Tenant, *, amend_window_s: str, done_retention_s: str = "600", port: int = 0
) -> subprocess.Popen[bytes]:
    port = port or free_port()
    proc = start_service(
        tenant,
        "consumers.audit",
        "a-1",
        "--health-port",
        str(port),
        SCORESTREAM_AUDIT_JOIN_TIMEOUT_S=JOIN_TIMEOUT_S,
        SCORESTREAM_AUDIT_AMEND_WINDOW_S=amend_window_s,
        SCORESTREAM_AUDIT_DONE_RETENTION_S=done_retention_s,
    )
    _ready(port, "audit")
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)


def records(
    bootstrap: str, tenant: Tenant, expected: int, settle: float = 0.0
) -> list[AuditRecord]:
    got = read_events(
        bootstrap, tenant.topic("audit"), expected, AuditRecord, timeout=90, settle=settle
    )
    return [r for _, r in got]


def dead(bootstrap: str, tenant: Tenant, stream: str, expected: int = 0) -> list[Message]:
    return read_messages(
        bootstrap, tenant.topic(f"{stream}.dlq"), expected, timeout=60 if expected else 2
    )


def batch(tenant: Tenant, n: int, seed: int) -> list[EnrichedTransaction]:
    return list(enriched_events(tenant.name, n, seed=seed, accounts=30))


def ids(events: list[EnrichedTransaction]) -> set[str]:
    return {e.transaction.transaction_id for e in events}


@pytest.mark.slow
def test_a_decision_outage_is_amended_by_a_revision_never_contradicted(
    kafka_bootstrap: str, tenant: Tenant
) -> None:
    start_worker(tenant)
    decision = start_decision(tenant)
    audit = start_audit(tenant, amend_window_s="3600")

    # A: normal traffic, one complete record each
    a = batch(tenant, 20, seed=1)
    publish_enriched(tenant, a)
    assert len(records(kafka_bootstrap, tenant, 20)) == 20

    # B: the decision service is down for longer than the join timeout
    stop(decision)
    b = batch(tenant, 20, seed=2)
    publish_enriched(tenant, b)
    got = records(kafka_bootstrap, tenant, 40)
    incomplete_b = [r for r in got if r.transaction_id in ids(b)]
    assert len(incomplete_b) == 20, tenant.worker_logs()
    assert all(r.status is AuditStatus.INCOMPLETE for r in incomplete_b)
    assert all(r.missing == ("decision",) and r.revision == 1 for r in incomplete_b)
    decision = start_decision(tenant)  # back: its decisions for B are late for the audit

    got = records(kafka_bootstrap, tenant, 60, settle=2)
    assert len(got) == 60, tenant.worker_logs()
    by_tx: dict[str, list[AuditRecord]] = {}
    for r in got:
        by_tx.setdefault(r.transaction_id, []).append(r)
    for txid in ids(a):
        (only,) = by_tx[txid]
        assert (only.status, only.revision, only.supersedes) == (AuditStatus.COMPLETE, 1, None)
    decisions = {
        d.transaction_id: d
        for _, d in read_events(kafka_bootstrap, tenant.topic("decisions"), 40, DecisionEvent)
    }
    for txid in ids(b):
        first, second = by_tx[txid]  # same key: one partition, in revision order
        assert (first.revision, first.status, first.missing) == (
            1,
            AuditStatus.INCOMPLETE,
            ("decision",),
        )
        assert (second.revision, second.supersedes, second.amends) == (2, 1, ("decision",))
        assert (second.status, second.missing) == (AuditStatus.COMPLETE, ())
        assert second.outcome is decisions[txid].outcome
        assert second.policy_version == decisions[txid].policy_version
        # never a contradiction: every field the first revision has, the second has unchanged
        revision_fields = {"revision", "supersedes", "amends", "status", "missing", "recorded_at"}
        old = first.model_dump(exclude=revision_fields | {"hop_ms"})
        new = second.model_dump(exclude=revision_fields | {"hop_ms"})
        assert {k: v for k, v in old.items() if v is not None} == {
            k: new[k] for k, v in old.items() if v is not None
        }
        assert first.hop_ms.items() <= second.hop_ms.items()
    latest = latest_revisions(got)
    assert len(latest) == 40
    assert all(r.status is AuditStatus.COMPLETE for r in latest)
    for stream in ("transactions.enriched", "predictions", "decisions"):
        assert dead(kafka_bootstrap, tenant, stream) == []
    # retraining from the audit log reads each transaction once, from its complete revision
    data = from_audit(tenant.name)
    assert sorted(t.transaction_id for t in data.transactions) == sorted(ids(a) | ids(b))

    # C: an outage longer than the amend window. Restart the audit with a short window and
    # retention (its state comes back from the changelog), so that the join state of C is
    # forgotten before the decisions come: the "longer outage" that wrote a second,
    # contradicting record. Stop the decision service, wait past the window.
    stop(audit)
    port = free_port()
    start_audit(tenant, amend_window_s="3", done_retention_s="1", port=port)
    stop(decision)
    c = batch(tenant, 10, seed=3)
    publish_enriched(tenant, c)
    got = records(kafka_bootstrap, tenant, 70)
    assert len(got) == 70
    accounts = {e.transaction.transaction_id: e.transaction.account_id for e in c}
    assert all(r.status is AuditStatus.INCOMPLETE for r in got if r.transaction_id in ids(c))
    time.sleep(3 + float(JOIN_TIMEOUT_S) + 1)  # past the amend window (event time: idle = now)
    start_decision(tenant)
    late = dead(kafka_bootstrap, tenant, "decisions", expected=10)
    assert len(late) == 10, tenant.worker_logs()
    for msg in late:
        h = headers(msg)
        assert h["dlq.reason"] == "late_for_audit"
        event = decode_message(msg, accept=[DecisionEvent]).event  # the original, intact
        assert event.transaction_id in ids(c)
        pointer = f"{tenant.topic('audit')} key {accounts[event.transaction_id]!r}"
        assert pointer in h["dlq.message"], h["dlq.message"]
        assert f"transaction_id {event.transaction_id!r}" in h["dlq.message"]
    # no second, contradicting record: C keeps its one incomplete revision
    got = records(kafka_bootstrap, tenant, 70, settle=2)
    assert len(got) == 70
    counts = Counter(r.transaction_id for r in got)
    assert all(counts[t] == 1 for t in ids(c))
    assert dead(kafka_bootstrap, tenant, "predictions") == []
    assert dead(kafka_bootstrap, tenant, "transactions.enriched") == []
    # the counts add up (this audit instance saw C only): 10 transactions and 10 predictions
    # joined into 10 incomplete records, 10 decisions dead-lettered (late while the state
    # still knew the record, orphaned once it was forgotten), none lost, nothing else
    m = metric_values(http_get(port, "/metrics")[1], tenant.name)
    parts = {k[1:]: v for k, v in m.items() if k[0] == "scorestream_audit_parts_total"}
    assert parts.pop(("joined", "transaction")) == 10
    assert parts.pop(("joined", "prediction")) == 10
    dead_decisions = parts.pop(("late", "decision"), 0) + parts.pop(("orphaned", "decision"), 0)
    assert dead_decisions == 10
    assert parts.pop(("joined", "decision"), 0) in (0, 10)  # the orphans arrived as joined
    assert parts == {}
    assert m[("scorestream_audit_records_total", "incomplete")] == 10
    assert m[("scorestream_dlq_total", "late_for_audit")] == 10
    # the operator's view with the Kafka CLI (docs/audit.md): the last line of a transaction
    # is its latest revision, and the documented jq recipe keeps exactly those
    text = console(tenant.topic("audit"), 70)
    shown = [AuditRecord.model_validate_json(x) for x in text.splitlines() if x.strip()]
    last = {(r.account_id, r.transaction_id): r for r in shown}
    assert sorted(last.values(), key=_order) == sorted(latest_revisions(got), key=_order)
    if shutil.which("jq"):
        jq = subprocess.run(
            ["jq", "-c", "-s", JQ_LATEST], input=text, capture_output=True, text=True, check=True
        )
        picked = [AuditRecord.model_validate_json(x) for x in jq.stdout.splitlines()]
        assert sorted(picked, key=_order) == sorted(latest_revisions(got), key=_order)


def metric_values(text: str, tenant: str) -> dict[tuple[str, ...], float]:
    """The audit's counters of ``tenant``: (name, outcome, part) / (name, status) /
    (name, reason) -> value."""
    out: dict[tuple[str, ...], float] = {}
    for line in text.splitlines():
        if line.startswith("#") or f'tenant="{tenant}"' not in line or "{" not in line:
            continue
        name, rest = line.split("{", 1)
        labels_text, value = rest.rsplit("}", 1)
        labels = dict(
            (kv.split("=", 1)[0], kv.split("=", 1)[1].strip('"')) for kv in labels_text.split(",")
        )
        keys = [labels[k] for k in ("outcome", "part", "status", "reason") if k in labels]
        if name.endswith("_total"):
            out[(name, *keys)] = float(value)
    return out


JQ_LATEST = "group_by([.account_id, .transaction_id]) | map(max_by(.revision // 1)) | .[]"
"""The recipe of docs/audit.md."""


def _order(r: AuditRecord) -> tuple[str, str, int]:
    return (r.account_id, r.transaction_id, r.revision)


def console(topic: str, n: int) -> str:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "scorestream",
            "kafka",
            "kafka-console-consumer",
            "--topic",
            topic,
            "--from-beginning",
            "--isolation-level",
            "read_committed",
            "--max-messages",
            str(n),
            "--timeout-ms",
            "30000",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_a_reused_transaction_id_is_dead_lettered_not_dropped(
    kafka_bootstrap: str, tenant: Tenant
) -> None:
    """The issue's attack: two different transactions with the same id published straight to
    ``<tenant>.transactions``; enricher, worker and decision handle both, the audit used to
    keep the first and count the second as a duplicate, silently."""
    port = free_port()
    state = tenant.repo_dir.parent / "enricher-state"
    start_service(
        tenant,
        "consumers.enricher",
        "e-1",
        "--health-port",
        str(port),
        "--state-dir",
        str(state),
    )
    _ready(port, "enricher")
    start_worker(tenant)
    start_decision(tenant)
    start_audit(tenant, amend_window_s="3600")
    now = datetime.now(UTC)
    first, other, copy_of = [
        tx.model_copy(update={"timestamp": now + timedelta(milliseconds=i)})
        for i, tx in enumerate(generate_transactions(3, tenant=tenant.name, seed=4))
    ]
    # a second, different transaction with the same id (same account, later, another amount)
    reused = other.model_copy(
        update={
            "transaction_id": first.transaction_id,
            "account_id": first.account_id,
            "amount_minor": first.amount_minor + 12_345,
            "timestamp": first.timestamp + timedelta(seconds=1),
        }
    )
    # and a third transaction published twice, identical: still deduplicated by the audit
    publish(tenant.topic("transactions"), [first, reused, copy_of, copy_of])
    decided = read_events(kafka_bootstrap, tenant.topic("decisions"), 4, DecisionEvent)
    assert len(decided) == 4, tenant.worker_logs()  # every copy scored and decided
    got = records(kafka_bootstrap, tenant, 2, settle=4)
    assert sorted(r.transaction_id for r in got) == sorted(
        [first.transaction_id, copy_of.transaction_id]
    )
    (record,) = [r for r in got if r.transaction_id == first.transaction_id]
    assert record.transaction == first
    assert record.status is AuditStatus.COMPLETE
    # the reused id's transaction, prediction and decision: each in its DLQ, with the reason
    # and a pointer to the record it collided with, the original record intact
    contracts = {
        "transactions.enriched": EnrichedTransaction,
        "predictions": PredictionEvent,
        "decisions": DecisionEvent,
    }
    for stream, contract in contracts.items():
        msgs = dead(kafka_bootstrap, tenant, stream, expected=1)
        assert len(msgs) == 1, (stream, tenant.worker_logs())
        h = headers(msgs[0])
        assert h["dlq.reason"] == "transaction_id_reused", h
        assert h["dlq.service"] == "audit"
        assert f"transaction_id {first.transaction_id!r}" in h["dlq.message"]
        event = decode_message(msgs[0], accept=[contract]).event  # type: ignore[list-item]
        if isinstance(event, EnrichedTransaction):
            assert event.transaction == reused
        else:
            assert event.event_time == reused.timestamp
