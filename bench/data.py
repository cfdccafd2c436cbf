"""The benchmarks' inputs: the production model (reused or trained once and cached), real
enriched CloudEvent payloads, and the Kafka helpers that preload and read topics."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from bench import common
from pipelines import training
from pipelines.repository import ModelRepository
from schemas.cloudevents import encode, utc_time
from scorestream.features import FEATURE_SPEC
from scorestream.kafka_config import (
    admin_config,
    common_config,
    producer_config,
)
from scorestream.settings import KafkaSettings, scorestream_home
from tests.worker_support import TRACEPARENT, enriched_events

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
PLACEHOLDER = "tzzzzzzzzzz"
"""Tenant the payloads are generated for; replaced byte-for-byte (same length) per run."""
MODEL_NAME = "fraud-gbt"
WORKER_SOURCE = "scorestream/worker"
MODES = ("exactly_once", "at_least_once")
SHORT = {"exactly_once": "EOS", "at_least_once": "ALO"}

Matrix = npt.NDArray[np.float32]


# -- the model -------------------------------------------------------------------------------------
MODEL_CACHE = RESULTS / "model-cache"
"""Models this benchmark trained, one per feature-spec hash (training takes ~30 s)."""


def _reuse(source: Path, repo: ModelRepository) -> dict[str, Any] | None:
    """Copy the newest model of ``source`` computed with this code's feature spec into ``repo``."""
    with contextlib.suppress(Exception):
        models = ModelRepository(str(source))
        for version in reversed(models.versions(MODEL_NAME)):
            if models.metadata(MODEL_NAME, version).feature_spec_hash != FEATURE_SPEC.hash:
                continue
            loaded = models.load(MODEL_NAME, version)
            repo.publish(loaded.onnx_bytes, loaded.metadata)
            where = source.relative_to(ROOT) if source.is_relative_to(ROOT) else source
            return _model_info(loaded.metadata, f"reused {where}/{MODEL_NAME}/{version}")
    return None


def prepare_model(repo: ModelRepository, *, retrain: bool) -> dict[str, Any]:
    """The newest production model with this feature spec (``$SCORESTREAM_HOME/models``, the
    clone's old ``var/models``, then this benchmark's cache), else train one the production way
    and cache it."""
    if not retrain:
        home_models = scorestream_home() / "models"
        for source in (home_models, ROOT / "var" / "models", MODEL_CACHE / FEATURE_SPEC.hash):
            info = _reuse(source, repo)
            if info is not None:
                return info
    from producers.simulator import SimulatorConfig, simulate  # noqa: PLC0415

    print("training the production model (simulate 45 days, LightGBM 300 trees)...", flush=True)
    sim = simulate(SimulatorConfig(days=45))
    result = training.run(
        [t.event for t in sim.transactions],
        sim.labels,
        version="1",
        config=training.TrainConfig(model_name=MODEL_NAME, n_estimators=300),
    )
    repo.publish(result.onnx_bytes, result.metadata)
    cache = ModelRepository(str(MODEL_CACHE / FEATURE_SPEC.hash))
    with contextlib.suppress(Exception):  # a cache: never fails the run
        if not cache.versions(MODEL_NAME):
            cache.publish(result.onnx_bytes, result.metadata)
    return _model_info(result.metadata, "trained: simulate(days=45), n_estimators=300")


def _model_info(meta: Any, source: str) -> dict[str, Any]:
    return {
        "source": source,
        "name": meta.name,
        "version": meta.version,
        "size_bytes": meta.size_bytes,
        "features": len(meta.feature_names),
        "feature_spec_hash": meta.feature_spec_hash,
        "params": meta.framework.get("params"),
        "average_precision": meta.metrics.get("average_precision"),
    }


# -- payloads --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Payload:
    key: bytes
    value: bytes
    headers: list[tuple[str, str | bytes | None]]


ENRICHER_BATCH = 500
"""Records the payloads share a ``ce_time`` with, as an enricher batch's outputs do."""


def make_payloads(n: int) -> tuple[list[Payload], Matrix]:
    """Real EnrichedTransaction CloudEvents (the tests' generator) and their feature rows."""
    events = list(enriched_events(PLACEHOLDER, n))
    X = np.array(
        [[e.features[name] for name in FEATURE_SPEC.names] for e in events], dtype=np.float32
    )
    payloads = []
    when = utc_time()
    for i, event in enumerate(events):
        if i % ENRICHER_BATCH == 0:  # the enricher stamps its outputs once per batch
            when = utc_time()
        trace = {"traceparent": TRACEPARENT.format(span=f"{i:016x}")}
        # as the enricher publishes them: the transaction's own ce_time as an extension
        ext = {"ingesttime": event.transaction.timestamp.isoformat()}
        msg = encode(event, source="tests/enricher", trace=trace, extensions=ext, time=when)
        payloads.append(Payload(msg.key, msg.value, list(msg.headers)))
    return payloads, X


def preload(kafka: KafkaSettings, topic: str, payloads: Sequence[Payload], tenant: str) -> None:
    producer = Producer(producer_config(kafka, client_id="bench-preload"))
    failures: list[str] = []

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            failures.append(err.str())

    old, new = PLACEHOLDER.encode(), tenant.encode()
    for i, p in enumerate(payloads):
        value = p.value.replace(old, new)
        while True:
            try:
                producer.produce(
                    topic, value=value, key=p.key, headers=p.headers, on_delivery=on_delivery
                )
                break
            except BufferError:
                producer.poll(0.1)
        if i % 1000 == 0:
            producer.poll(0)
    if producer.flush(60) or failures:
        raise RuntimeError(f"preload of {topic} failed: {failures[:3]}")


def partitions_of(kafka: KafkaSettings, topic: str) -> int:
    admin = AdminClient(admin_config(kafka, client_id="bench-meta"))
    meta = admin.list_topics(topic, timeout=15).topics[topic]
    return len(meta.partitions)


def read_all(kafka: KafkaSettings, topic: str, timeout: float = 60.0) -> list[Message]:
    """Every committed record of ``topic``, to the end of each partition (read_committed)."""
    consumer = Consumer(
        common_config(kafka, client_id="bench-reader")
        | {
            "group.id": common.rand("bench-reader-"),
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        }
    )
    n = partitions_of(kafka, topic)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(n)])
    out: list[Message] = []
    eof: set[int] = set()
    deadline = time.monotonic() + timeout
    try:
        while len(eof) < n and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=10_000, timeout=0.5):
                err = msg.error()
                if err is None:
                    out.append(msg)
                elif err.code() == KafkaError._PARTITION_EOF:
                    eof.add(msg.partition() or 0)
                else:
                    raise KafkaException(err)
    finally:
        consumer.close()
    if len(eof) < n:
        raise TimeoutError(f"reading {topic}: {len(eof)}/{n} partitions to the end in {timeout}s")
    return out


def create_topics(kafka: KafkaSettings, names: Sequence[str], partitions: int) -> None:
    admin = AdminClient(admin_config(kafka, client_id="bench-admin"))
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names],
        operation_timeout=30,
    )
    for fut in futures.values():
        fut.result(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # metadata of new topics propagates
        md = admin.list_topics(timeout=10).topics
        if all(n in md and len(md[n].partitions) == partitions for n in names):
            return
        time.sleep(0.1)
    raise TimeoutError(f"topics {names} not visible")
