"""The monitor as a real process against the real broker: gauges equal sklearn on the same data."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka import Message, Producer
from prometheus_client.parser import text_string_to_metric_families
from sklearn.metrics import average_precision_score, precision_score, recall_score

from consumers.monitor_stats import psi
from schemas.cloudevents import encode
from schemas.events import (
    Contract,
    LabelEvent,
    LabelSource,
    ModelAlias,
    PredictionEvent,
    PredictionTimings,
)
from scorestream.features import FEATURE_SPEC
from tests.kafka_helpers import produce_raw, read_messages
from tests.worker_support import Tenant, free_port, http_get, new_tenant, wait_until

pytestmark = pytest.mark.integration

N = 300
UNLABELLED = 30
SHA = "ab" * 32


@pytest.fixture
def tenant(kafka_bootstrap: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    t = new_tenant(tmp_path)
    yield t
    t.stop_all()


def _prediction(
    tenant: str, i: int, score: float, version: str, alias: ModelAlias
) -> PredictionEvent:
    now = datetime.now(UTC)
    return PredictionEvent(
        transaction_id=f"tx-{i}",
        tenant_id=tenant,
        account_id=f"acct-{i % 37}",
        score=score,
        model_name="fraud-gbt",
        model_version=version,
        model_sha256=SHA,
        feature_spec_hash=FEATURE_SPEC.hash,
        alias=alias,
        event_time=now,
        predicted_at=now,
        timings=PredictionTimings(queue_ms=0.1, inference_ms=0.2, batch_size=1),
    )


def _label(tenant: str, i: int, is_fraud: bool) -> LabelEvent:
    now = datetime.now(UTC)
    return LabelEvent(
        transaction_id=f"tx-{i}",
        tenant_id=tenant,
        account_id=f"acct-{i % 37}",
        merchant_id="m-1",
        is_fraud=is_fraud,
        source=LabelSource.CHARGEBACK,
        transaction_time=now - timedelta(days=1),
        labelled_at=now,
    )


def _send(bootstrap: str, items: Sequence[tuple[str, Contract]], *, age_s: float = 0) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    stamp = int((time.time() - age_s) * 1000)
    for topic, event in items:
        m = encode(event, source="tests/monitor")
        producer.produce(topic, key=m.key, value=m.value, headers=list(m.headers), timestamp=stamp)
    assert producer.flush(30) == 0


def _headers(headers: Sequence[tuple[str, bytes | None]]) -> list[tuple[str, bytes]]:
    return [(k, v) for k, v in headers if v is not None]


def _header(msg: Message, name: str) -> str:
    value = dict(msg.headers() or []).get(name)
    return value.decode() if isinstance(value, bytes) else str(value)


def _start(tenant: Tenant, port: int) -> subprocess.Popen[bytes]:
    log = (tenant.repo_dir.parent / "monitor.log").open("ab")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scorestream",
            "monitor",
            "--tenant",
            tenant.name,
            "--health-port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=os.environ
        | {
            "SCORESTREAM_MODELS_URL": str(tenant.repo_dir),
            "SCORESTREAM_MONITOR_PUBLISH_INTERVAL_S": "0.3",
            "SCORESTREAM_MONITOR_WINDOW_S": "3600",
        },
    )
    log.close()
    tenant.procs.append(proc)
    return proc


def _gauges(port: int, tenant: str) -> dict[tuple[str, str, str], float]:
    """(metric name, version, alias) → value, for this tenant's monitor gauges."""
    _, text = http_get(port, "/metrics")
    out: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("tenant") == tenant and "version" in sample.labels:
                out[(sample.name, sample.labels["version"], sample.labels["alias"])] = sample.value
    return out


def test_gauges_match_sklearn_and_survive_a_restart(kafka_bootstrap: str, tenant: Tenant) -> None:
    tenant.publish_model("1")
    meta = tenant.repo.metadata("fraud-gbt", "1")
    t = tenant.name
    rng = np.random.default_rng(5)
    truth = rng.random(N) < 0.2
    champion = np.round(np.clip(0.35 * truth + rng.beta(1.5, 6, N), 0, 1), 3)
    challenger = np.round(np.clip(0.5 * truth + rng.beta(2, 5, N), 0, 1), 3)
    preds, shadow, labels = (
        tenant.topic(s) for s in ("predictions", "predictions.shadow", "labels")
    )

    # before the window: seen by no computation (a restart seeks past them)
    _send(
        kafka_bootstrap,
        [(preds, _prediction(t, 10_000 + i, 0.99, "1", ModelAlias.CHAMPION)) for i in range(20)]
        + [(labels, _label(t, 10_000 + i, False)) for i in range(20)],
        age_s=7200,
    )
    port = free_port()
    proc = _start(tenant, port)
    wait_until(lambda: http_get(port, "/readyz")[0] == 200, 30, "/readyz (window rebuilt)")

    # labels of the first third arrive before their predictions, the rest after; 30 never arrive
    first = N // 3
    _send(kafka_bootstrap, [(labels, _label(t, i, bool(truth[i]))) for i in range(first)])
    _send(
        kafka_bootstrap,
        [(preds, _prediction(t, i, float(champion[i]), "1", ModelAlias.CHAMPION)) for i in range(N)]
        + [
            (shadow, _prediction(t, i, float(challenger[i]), "2", ModelAlias.CHALLENGER))
            for i in range(N)
        ],
    )
    _send(
        kafka_bootstrap,
        [(labels, _label(t, i, bool(truth[i]))) for i in range(first, N - UNLABELLED)],
    )
    good = encode(_prediction(t, 0, 0.5, "1", ModelAlias.CHAMPION), source="tests/monitor")
    produce_raw(kafka_bootstrap, preds, [(b"k", b"\x00not json", _headers(good.headers))])
    other = encode(_label("someone-else", 1, True), source="tests/monitor")
    produce_raw(kafka_bootstrap, labels, [(other.key, other.value, _headers(other.headers))])

    labelled = N - UNLABELLED

    def complete() -> bool:
        g = _gauges(port, t)
        return (
            g.get(("scorestream_monitor_labelled_predictions", "1", "champion")) == labelled
            and g.get(("scorestream_monitor_labelled_predictions", "2", "challenger")) == labelled
        )

    wait_until(complete, 30, "all labelled predictions joined")
    g = _gauges(port, t)
    y = truth[:labelled]
    for version, alias, scores in (("1", "champion", champion), ("2", "challenger", challenger)):
        s = scores[:labelled]
        assert g[("scorestream_monitor_precision", version, alias)] == pytest.approx(
            precision_score(y, s >= 0.5), abs=1e-12
        )
        assert g[("scorestream_monitor_recall", version, alias)] == pytest.approx(
            recall_score(y, s >= 0.5), abs=1e-12
        )
        assert g[("scorestream_monitor_average_precision", version, alias)] == pytest.approx(
            average_precision_score(y, s), abs=1e-12
        )
        assert g[("scorestream_monitor_predictions", version, alias)] == N
    # PSI for the version in the repository (over all live scores, labelled or not); none for v2
    assert g[("scorestream_score_psi", "1", "champion")] == pytest.approx(
        psi(champion, meta.score_reference), abs=1e-9
    )
    assert g[("scorestream_score_psi", "1", "champion")] > 0.25  # far from the tiny reference
    assert ("scorestream_score_psi", "2", "challenger") not in g

    # bad records: dead-lettered with the reason, by the monitor
    dlq = read_messages(kafka_bootstrap, tenant.topic("predictions.dlq"), 1, timeout=15)
    dlq += read_messages(kafka_bootstrap, tenant.topic("labels.dlq"), 1, timeout=15)
    reasons = sorted(_header(m, "dlq.reason") for m in dlq)
    assert reasons == ["malformed_payload", "unknown_tenant"]

    # a restart rebuilds the same window from Kafka, and does not dead-letter twice
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    port2 = free_port()
    _start(tenant, port2)
    wait_until(lambda: http_get(port2, "/readyz")[0] == 200, 30, "/readyz after restart")
    wait_until(lambda: _gauges(port2, t) == g, 10, "the same gauges after the rebuild")
    assert len(read_messages(kafka_bootstrap, tenant.topic("predictions.dlq"), 2, timeout=3)) == 1
    assert len(read_messages(kafka_bootstrap, tenant.topic("labels.dlq"), 2, timeout=3)) == 1
