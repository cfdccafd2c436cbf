"""The enricher: transactions (+ labels) in, transactions with their served features out.

Features come from the one feature module (:class:`scorestream.features.FeatureState`), the
same code training replays, so served and trained features are identical.

Per-merchant windows span every account, and transactions are keyed by account, so the state
of a tenant cannot be split by partition without a repartition by merchant. The enricher
therefore runs one active instance per tenant that consumes every partition of
``<tenant>.transactions`` and ``<tenant>.labels`` (``assign_all``), with the shared exactly-once
Processor. Its state is a pure function of the input log: on start it rebuilds the windows by
replaying both topics up to the committed offsets (``transactions`` is kept 35 days for that),
then continues — after a crash the replayed state equals the lost one, so outputs after the
committed offsets are recomputed identically (exactly-once end to end). Scaling out per tenant
needs a merchant-keyed repartition stage; see the README.

Within a batch, records are processed in event-time order (a batch interleaves partitions), and a
fraud label counts from its ``labelled_at`` on, whenever it is processed.
"""

from __future__ import annotations

import argparse
import logging
import time
from datetime import UTC, datetime
from typing import Any, ClassVar

from confluent_kafka import Consumer, TopicPartition
from pydantic_settings import SettingsConfigDict

from schemas.cloudevents import Envelope
from schemas.errors import DecodeError
from schemas.events import Contract, EnrichedTransaction, LabelEvent, TransactionEvent
from scorestream.dlq import DeadLetter
from scorestream.features import FEATURE_SPEC, FeatureState
from scorestream.kafka_config import common_config
from scorestream.processor import Emit, Processor, ProcessorConfig, Result
from scorestream.replay import read_ranges, watermarks
from scorestream.serde import decode_message
from scorestream.settings import KafkaSettings, ProcessingSettings
from scorestream.topics import REGISTRY

log = logging.getLogger("scorestream.enricher")
SERVICE = "enricher"


class EnricherSettings(ProcessingSettings):
    model_config = SettingsConfigDict(
        env_prefix="SCORESTREAM_ENRICHER_", frozen=True, extra="ignore"
    )

    service: ClassVar[str] = "enricher"

    instance_id: str = "enricher-0"
    """Stable per tenant: it is the transactional.id suffix that fences a previous instance."""


def enrich_batch(
    batch: list[Envelope[Any]], *, state: FeatureState, tenant: str, enriched_topic: str
) -> Result:
    """Pure: labels update the state; transactions get features (in event-time order)."""
    result = Result()
    now = datetime.now(UTC)
    labels = [e for e in batch if isinstance(e.event, LabelEvent)]
    txs = sorted(
        (e for e in batch if isinstance(e.event, TransactionEvent)),
        key=lambda e: e.event.timestamp,
    )
    for env in labels + txs:
        event = env.event
        if event.tenant_id != tenant:
            raw = env.raw
            if raw is not None:
                result.dead_letters.append(
                    DeadLetter(
                        raw,
                        "unknown_tenant",
                        "TenantMismatch",
                        f"tenant {event.tenant_id!r} on a topic of tenant {tenant!r}",
                    )
                )
            continue
        if isinstance(event, LabelEvent):
            state.observe_label(event)
            continue
        enriched = EnrichedTransaction(
            transaction=event,
            features=state.features_for(event),
            feature_spec_hash=FEATURE_SPEC.hash,
            enriched_at=now,
        )
        # the transaction's own ce_time travels on, so the audit can measure the enrich hop
        extensions = {**env.extensions, "ingesttime": env.time.isoformat()}
        result.emits.append(Emit(enriched_topic, enriched, env.trace, extensions))
    return result


class Enricher:
    def __init__(self, settings: EnricherSettings, *, kafka: KafkaSettings | None = None) -> None:
        self.settings = settings
        self.kafka = kafka or KafkaSettings()
        t = settings.tenant
        self.state = FeatureState()
        self.tx_topic = REGISTRY.topic("transactions", t)
        self.label_topic = REGISTRY.topic("labels", t)
        self.out_topic = REGISTRY.topic("transactions.enriched", t)
        self.rebuilt = 0
        config = ProcessorConfig.for_service(
            settings,
            service=SERVICE,
            inputs=(self.tx_topic, self.label_topic),
            accept=(TransactionEvent, LabelEvent),
            dlq_topics={
                self.tx_topic: REGISTRY.dlq_topic("transactions", t),
                self.label_topic: REGISTRY.dlq_topic("labels", t),
            },
            assign_all=True,
        )
        self.processor = Processor(config, self.handle, kafka=self.kafka, on_start=self.rebuild)

    def handle(self, batch: list[Envelope[Any]]) -> Result:
        return enrich_batch(
            batch, state=self.state, tenant=self.settings.tenant, enriched_topic=self.out_topic
        )

    def rebuild(self, positions: dict[tuple[str, int], int]) -> None:
        """Replay both inputs from their beginning up to the committed positions into the state."""
        started = time.perf_counter()
        conf = common_config(self.kafka, client_id=f"{self.settings.instance_id}-rebuild") | {
            "group.id": f"{self.settings.tenant}.enricher.rebuild",  # assign() only, no commits
            "isolation.level": "read_committed",
        }
        probe = Consumer(conf)
        try:
            ranges = {}
            for (topic, partition), position in positions.items():
                low, _ = watermarks(probe, TopicPartition(topic, partition))
                ranges[(topic, partition)] = (low, max(low, position))  # never committed: none
        finally:
            probe.close()
        labels: list[LabelEvent] = []
        accept: list[type[Contract]] = [TransactionEvent, LabelEvent]
        for msg in read_ranges(conf, ranges):
            try:
                event = decode_message(msg, accept=accept).event
            except DecodeError:
                continue  # it went to the DLQ when it was first processed
            if event.tenant_id != self.settings.tenant:  # type: ignore[attr-defined]
                continue
            if isinstance(event, LabelEvent):
                labels.append(event)
            elif isinstance(event, TransactionEvent):
                self.state.observe_transaction(event)
                self.rebuilt += 1
        for label in labels:
            self.state.observe_label(label)
        log.info(
            "rebuilt state from %d transactions and %d labels in %.1fs",
            self.rebuilt,
            len(labels),
            time.perf_counter() - started,
        )

    def run(self) -> int:
        return self.processor.run()


def main(argv: list[str] | None = None) -> int:
    from scorestream.logs import configure_logging  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="scorestream enricher")
    parser.add_argument("--tenant")
    parser.add_argument("--instance-id")
    parser.add_argument("--max-batch", type=int)
    parser.add_argument("--max-wait-ms", type=int)
    parser.add_argument("--health-port", type=int)
    args = parser.parse_args(argv)
    settings = EnricherSettings(**{k: v for k, v in vars(args).items() if v is not None})
    configure_logging(SERVICE, settings.tenant)
    return Enricher(settings).run()


if __name__ == "__main__":
    import sys

    sys.exit(main())
