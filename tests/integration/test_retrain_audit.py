"""``scorestream retrain --source audit`` on a tenant whose audit log holds the history.

The audit log is kept forever; the retraining CronJob must read only a time window of it (by
Kafka record timestamp, through the broker's time index), keep only the latest revision of
each complete record, bound and report its memory, and feed the champion/challenger gate.
Realistic records: simulated transactions with the features the serving path computes,
written as the audit service writes them (revisions included), and their labels.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Producer

from pipelines.repository import ModelRepository
from pipelines.sources import AuditWindow, from_audit
from producers.simulator import SimulatorConfig, simulate
from schemas.cloudevents import encode
from schemas.events import AuditRecord, AuditStatus, ModelAlias, TransactionEvent
from scorestream.admin import ensure_topics
from scorestream.features import FEATURE_SPEC, compute_offline
from scorestream.model_events import read_model_events
from scorestream.topics import REGISTRY

pytestmark = [pytest.mark.integration, pytest.mark.slow]

START = datetime.fromisoformat("2026-09-01T00:00:00+00:00")
SINCE = START + timedelta(days=4)
UNTIL = START + timedelta(days=48)


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _record(
    tx: TransactionEvent, row: list[float], *, complete: bool, revision: int = 1
) -> AuditRecord:
    return AuditRecord(
        transaction_id=tx.transaction_id,
        tenant_id=tx.tenant_id,
        account_id=tx.account_id,
        status=AuditStatus.COMPLETE if complete else AuditStatus.INCOMPLETE,
        missing=() if complete else ("decision",),
        transaction=tx,
        features=dict(zip(FEATURE_SPEC.names, row, strict=True)),
        feature_spec_hash=FEATURE_SPEC.hash,
        recorded_at=tx.timestamp + timedelta(seconds=revision),
        revision=revision,
        supersedes=revision - 1 if revision > 1 else None,
        amends=("decision",) if revision > 1 else (),
    )


def audit_history(bootstrap: str, tenant: str) -> set[str]:
    """Write 50 days of audit history and labels; the transaction ids a retrain over
    ``[SINCE, UNTIL)`` must use."""
    sim = simulate(
        SimulatorConfig(
            seed=5, tenant=tenant, n_customers=400, n_terminals=800, days=50, start=START
        )
    )
    txs = [t.event for t in sim.transactions]
    features = compute_offline(txs, list(sim.labels)).tolist()
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50})
    audit, labels = REGISTRY.topic("audit", tenant), REGISTRY.topic("labels", tenant)

    def send(topic: str, event: AuditRecord | object, when: datetime) -> None:
        msg = encode(event, source="scorestream/test")  # type: ignore[arg-type]
        producer.produce(
            topic, key=msg.key, value=msg.value, headers=list(msg.headers), timestamp=_ms(when)
        )
        producer.poll(0)

    expected: set[str] = set()
    for i, (tx, row) in enumerate(zip(txs, features, strict=True)):
        inside = SINCE <= tx.timestamp < UNTIL
        if i % 53 == 0:  # amended by a late decision: only the complete revision 2 counts
            send(audit, _record(tx, row, complete=False), tx.timestamp)
            send(audit, _record(tx, row, complete=True, revision=2), tx.timestamp)
        elif i % 71 == 0:  # never completed: not a training row
            send(audit, _record(tx, row, complete=False), tx.timestamp)
            continue
        else:
            send(audit, _record(tx, row, complete=True), tx.timestamp)
        if inside:
            expected.add(tx.transaction_id)
    for label in sim.labels:
        send(labels, label, label.labelled_at)
    assert producer.flush(60) == 0
    return expected


def retrain(tenant: str, models: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "scorestream",
            "retrain",
            "--tenant",
            tenant,
            "--source",
            "audit",
            "--since",
            SINCE.isoformat(),
            "--until",
            UNTIL.isoformat(),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=os.environ | {"SCORESTREAM_MODELS_URL": str(models), "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


ROWS = re.compile(r"audit read: ([\d,]+) records in window .* → ([\d,]+) rows used")
MEMORY = re.compile(r"memory: training arrays ([\d.]+) MiB, peak RSS (\d+) MiB")


def test_retrain_reads_a_window_of_the_audit_log_and_gates_the_candidate(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    tenant = f"t{uuid.uuid4().hex[:10]}"
    name = "fraud-gbt"
    ensure_topics(
        {
            REGISTRY.topic(k, tenant): REGISTRY.get(k)
            for k in ("audit", "labels", "model-events", "model-rejections")
        }
    )
    expected = audit_history(kafka_bootstrap, tenant)
    models = tmp_path / "models"

    # a weak candidate first: no champion yet, so it becomes champion
    weak = retrain(tenant, models, "--n-estimators", "1", "--margin", "0")
    rows = ROWS.search(weak.stdout)
    assert rows is not None, weak.stdout
    used = int(rows.group(2).replace(",", ""))
    assert used == len(expected)  # only the window's complete records, each once
    memory = MEMORY.search(weak.stdout)
    assert memory is not None, weak.stdout
    assert float(memory.group(1)) == pytest.approx(used * len(FEATURE_SPEC) * 4 / 2**20, abs=0.1)
    assert int(memory.group(2)) > 0
    repo = ModelRepository(str(models))
    window = repo.metadata(name, "1").training_window
    assert window is not None
    assert window.start >= SINCE
    assert window.label_cutoff <= UNTIL
    assert _champion(tenant, name) == "1"

    # a better candidate replaces it
    better = retrain(tenant, models, "--n-estimators", "40")
    assert _champion(tenant, name) == "2", better.stdout
    # a worse one only shadows: the champion stays
    worse = retrain(tenant, models, "--n-estimators", "1")
    assert _champion(tenant, name) == "2", worse.stdout
    state = read_model_events(tenant)
    assert state.promoted[(tenant, name, ModelAlias.CHALLENGER)].model_version == "3"

    # a long read shows progress; --max-rows caps the rows held and the report says so
    said: list[str] = []
    capped = from_audit(
        tenant,
        window=AuditWindow(since=SINCE, until=UNTIL, max_rows=1000),
        progress=said.append,
        progress_every_s=0.0,
    )
    assert len(capped.transactions) == 1000
    assert capped.features is not None
    assert capped.features.shape == (1000, len(FEATURE_SPEC))
    assert "stopped at --max-rows 1,000" in capped.report
    assert any(re.match(r"audit: read [\d,]+/[\d,]+ records \(\d+%\)", line) for line in said)
    assert {t.transaction_id for t in capped.transactions} <= expected


def _champion(tenant: str, name: str) -> str | None:
    event = read_model_events(tenant).promoted.get((tenant, name, ModelAlias.CHAMPION))
    return None if event is None else event.model_version
