"""Helpers for worker tests: tenants with a promoted model, enriched traffic, worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import Message

from pipelines import lifecycle, training
from pipelines.repository import ModelRepository
from producers.generator import generate_transactions
from schemas.events import EnrichedTransaction, ModelAlias, PredictionEvent
from scorestream.admin import ensure_tenant_topics
from scorestream.features import FEATURE_SPEC, feature_dicts
from scorestream.kafka_config import producer_config
from scorestream.serde import EventProducer, decode_message
from scorestream.settings import KafkaSettings
from scorestream.topics import REGISTRY
from tests.kafka_helpers import read_messages
from tests.model_factory import tiny_model

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-{span}-01"


@dataclass
class Tenant:
    name: str
    repo_dir: Path
    model: str = "fraud-gbt"
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def repo(self) -> ModelRepository:
        return ModelRepository(str(self.repo_dir))

    def topic(self, stream: str) -> str:
        return REGISTRY.topic(stream, self.name)

    def publish_model(self, version: str, seed: int = 0) -> None:
        data, meta = tiny_model(version, seed=seed, name=self.model)
        lifecycle.publish(self.repo, training.TrainingResult(meta, data, 0.0), tenant=self.name)

    def promote(self, version: str, alias: ModelAlias = ModelAlias.CHAMPION) -> None:
        lifecycle.promote(
            self.repo, tenant=self.name, name=self.model, version=version, alias=alias
        )

    def start_worker(
        self, instance: str, *, health_port: int = 0, delivery: str = "exactly_once", **env: str
    ) -> subprocess.Popen[bytes]:
        log = (self.repo_dir.parent / f"{instance}.log").open("ab")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "scorestream",
                "worker",
                "--tenant",
                self.name,
                "--instance-id",
                instance,
                "--health-port",
                str(health_port),
                "--delivery",
                delivery,
                "--max-batch",
                "200",
                "--max-wait-ms",
                "20",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=os.environ
            | {
                "SCORESTREAM_MODELS_URL": str(self.repo_dir),
                "SCORESTREAM_WORKER_SESSION_TIMEOUT_MS": "6000",
            }
            | env,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def worker_logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-4000:]
            for p in sorted(self.repo_dir.parent.glob("*.log"))
        )


def new_tenant(tmp_path: Path) -> Tenant:
    tenant = Tenant(f"t{uuid.uuid4().hex[:10]}", tmp_path / "models")
    ensure_tenant_topics(tenant.name)
    return tenant


def enriched_events(
    tenant: str, n: int, *, seed: int = 1, accounts: int = 200
) -> Iterator[EnrichedTransaction]:
    now = datetime.now(UTC)
    txs = list(generate_transactions(n, tenant=tenant, seed=seed, accounts=accounts, merchants=40))
    for tx, features in zip(txs, feature_dicts(txs), strict=True):
        yield EnrichedTransaction(
            transaction=tx,
            features=features,
            feature_spec_hash=FEATURE_SPEC.hash,
            enriched_at=now,
        )


def publish_enriched(tenant: Tenant, events: list[EnrichedTransaction], *, rate: float = 0) -> None:
    producer = EventProducer(producer_config(KafkaSettings()), source="tests/enricher")
    start = time.perf_counter()
    for i, event in enumerate(events):
        if rate:
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        producer.send(
            tenant.topic("transactions.enriched"),
            event,
            trace={"traceparent": TRACEPARENT.format(span=f"{i:016x}")},
        )
    producer.flush(60)


def read_predictions(
    bootstrap: str,
    tenant: Tenant,
    expected: int,
    *,
    stream: str = "predictions",
    timeout: float = 120,
) -> list[tuple[Message, PredictionEvent]]:
    messages = read_messages(bootstrap, tenant.topic(stream), expected, timeout=timeout)
    return [(m, decode_message(m, accept=[PredictionEvent]).event) for m in messages]


def free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(port: int, path: str) -> tuple[int, str]:
    import urllib.error  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def wait_until(predicate: object, timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def exactly_once(
    predictions: list[tuple[Message, PredictionEvent]], ids: set[str]
) -> tuple[int, int, int]:
    """(missing, duplicated, unexpected) counts of transaction ids."""
    from collections import Counter  # noqa: PLC0415

    seen = Counter(p.transaction_id for _, p in predictions)
    missing = len(ids - set(seen))
    duplicated = sum(1 for n in seen.values() if n > 1)
    unexpected = len(set(seen) - ids)
    return missing, duplicated, unexpected
