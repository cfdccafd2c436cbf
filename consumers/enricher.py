"""The enricher: transactions (+ labels) in, transactions with their served features out.

Features come from the one feature module (:mod:`scorestream.features`), the same code
training replays, so served and trained features are identical. It runs on **Quix Streams**
(exactly-once, changelog-backed RocksDB state): faust-streaming lost and double-counted on our
Kafka 4.4 broker (docs/adr/0001-enricher-state.md).

Per-merchant windows span every account while transactions and labels are keyed by account, so
the topology has two keyed stages (consumer group ``<tenant>.enricher``)::

    <tenant>.transactions ─ decode ─┬─ bad ──────────────────────────► <tenant>.transactions.dlq
                                    └─ account stage (state keyed by account) ─┐
    <tenant>.labels ─────── decode ─┬─ bad ──────────────────────────► <tenant>.labels.dlq
                                    └──────────────────────────────────────────┤ concat
             group_by(merchant): repartition__<tenant>.enricher--<tenant>.labels--…--merchant
                   merchant stage (state keyed by merchant) ─► <tenant>.transactions.enriched

Stage 1 keeps each account's windows under the input key (transactions are keyed by account and
read in partition order, so an account's transactions arrive in the order they were published).
Stage 2 receives every transaction and label of a merchant on one partition of the repartition
topic; labels update the fraud windows there. Outputs, dead letters, repartition records,
changelog writes and input offsets of a checkpoint commit in one Kafka transaction. The stage
arithmetic is in :mod:`consumers.enricher_stages` (pure), the Quix plumbing in
:mod:`consumers.enricher_quix`.

Exactness: account features always equal the offline path's (per-key order is the publish
order). Merchant features equal it when each merchant's transactions reach the merchant stage in
event-time order and a label reaches it before the first transaction at or after its
``labelled_at`` — true on a one-partition tenant and whenever publish order follows event time
closely; across partitions two accounts' transactions at one merchant can interleave
differently, which shifts that merchant's counts by the swapped records (documented in the ADR).

Metrics (``scorestream_events_in_total``, ``_events_out_total``, ``_dlq_total`` with
``service="enricher"``) count records as they are processed: unlike the shared Processor there is
no per-batch commit callback in Quix, so records reprocessed after a crash are counted again.

Flags: ``--max-batch`` commits a checkpoint (one transaction) after that many input records
(Quix ``commit_every``); ``--max-wait-ms`` is the longest a processed record waits for its
checkpoint to commit (Quix ``commit_interval``, also the poll timeout).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from confluent_kafka.admin import AdminClient
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from quixstreams import State, message_context
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.models import Topic

from consumers.enricher_quix import (
    EnricherApplication,
    OutgoingValue,
    connection,
    consumer_extra,
    producer_extra,
)
from consumers.enricher_stages import (
    Outgoing,
    Record,
    account_stage,
    dead_letter,
    decode_input,
    enriched_output,
    merchant_stage,
    raw_record,
)
from schemas.events import LabelEvent, TransactionEvent
from scorestream import metrics
from scorestream.dlq import DeadLetter
from scorestream.errors import KafkaClientError
from scorestream.health import HealthServer
from scorestream.kafka_config import admin_config
from scorestream.settings import KafkaSettings, ProcessingSettings
from scorestream.topics import REGISTRY

log = logging.getLogger("scorestream.enricher")
SERVICE = "enricher"
MERCHANT_GROUP_BY = "merchant"
"""The name of the repartition operation (the suffix of the repartition topic)."""


class EnricherSettings(ProcessingSettings):
    model_config = SettingsConfigDict(
        env_prefix="SCORESTREAM_ENRICHER_", frozen=True, extra="ignore"
    )

    service: ClassVar[str] = "enricher"

    instance_id: str = "enricher-0"
    """Stable per tenant: it is the transactional.id suffix that fences a previous instance."""
    state_dir: Path = Field(
        default_factory=lambda: Path(tempfile.gettempdir()) / "scorestream" / "enricher-state"
    )
    """RocksDB state root; the instance keeps ``<state_dir>/<tenant>/<instance_id>`` so two
    instances on one host never share files. Losing it only costs a changelog replay. The
    default is under the temp dir, writable in the pods (read-only root, ``/tmp`` emptyDir)."""

    def resolved_state_dir(self) -> Path:
        return self.state_dir / self.tenant / self.instance_id


def _now_ms(*_: Any) -> int:
    return int(time.time() * 1000)


def _headers(value: Outgoing, *_: Any) -> list[tuple[str, str | bytes]]:
    # confluent-kafka accepts None header values too; Quix's annotation is narrower
    return value.headers  # type: ignore[return-value]


def _key(value: Outgoing) -> bytes | None:
    return value.key


class Enricher:
    def __init__(self, settings: EnricherSettings, *, kafka: KafkaSettings | None = None) -> None:
        self.settings = settings
        self.kafka = kafka or KafkaSettings()
        t = settings.tenant
        self.tx_topic = REGISTRY.topic("transactions", t)
        self.label_topic = REGISTRY.topic("labels", t)
        self.out_topic = REGISTRY.topic("transactions.enriched", t)
        self.dlq_topics = {
            self.tx_topic: REGISTRY.dlq_topic("transactions", t),
            self.label_topic: REGISTRY.dlq_topic("labels", t),
        }
        self._require_topics()
        conn, _ = connection(self.kafka, client_id=settings.instance_id)
        self.app = EnricherApplication(
            broker_address=conn,
            consumer_group=settings.group_id,
            processing_guarantee="exactly-once",
            auto_offset_reset="earliest",
            commit_interval=settings.max_wait_ms / 1000,
            commit_every=settings.max_batch,
            consumer_poll_timeout=settings.max_wait_ms / 1000,
            state_dir=settings.resolved_state_dir(),
            producer_extra_config=producer_extra(
                self.kafka,
                transactional_id=settings.transactional_id,
                client_id=settings.instance_id,
                timeout_s=settings.transaction_timeout_s,
            ),
            consumer_extra_config=consumer_extra(
                self.kafka,
                group_id=settings.group_id,
                client_id=settings.instance_id,
                session_timeout_ms=settings.session_timeout_ms,
                max_poll_interval_ms=settings.max_poll_interval_ms,
            ),
            loglevel=None,  # quixstreams logs through our JSON root handler
            service=SERVICE,
            live_after_s=settings.live_after_s,
        )
        self._build()

    def _require_topics(self) -> None:
        """Quix would create a missing topic with one partition; refuse instead."""
        admin = AdminClient(admin_config(self.kafka, client_id=self.settings.instance_id))
        existing = admin.list_topics(timeout=30).topics
        wanted = [self.tx_topic, self.label_topic, self.out_topic, *self.dlq_topics.values()]
        missing = [name for name in wanted if name not in existing]
        if missing:
            raise KafkaClientError(f"topics missing (run `scorestream topics create`): {missing}")

    # -- topology ----------------------------------------------------------------------------------
    def _input(self, name: str) -> Topic:
        return self.app.topic(name, key_deserializer="bytes", value_deserializer="bytes")

    def _output(self, name: str) -> Topic:
        return self.app.topic(name, key_serializer="bytes", value_serializer=OutgoingValue())

    def _decoder(
        self, accept: type[TransactionEvent] | type[LabelEvent]
    ) -> Callable[[Any, Any, int, Any], Record | Outgoing]:
        tenant = self.settings.tenant
        events_in = metrics.EVENTS_IN.labels(SERVICE, tenant)

        def decode(value: Any, key: Any, _ts: int, headers: Any) -> Record | Outgoing:
            ctx = message_context()
            events_in.inc()
            raw = raw_record(
                key, value, headers, topic=ctx.topic, partition=ctx.partition, offset=ctx.offset
            )
            decoded = decode_input(raw, tenant=tenant, accept=accept)
            if isinstance(decoded, DeadLetter):
                return dead_letter(decoded, SERVICE)
            return decoded

        return decode

    def _dead_letters(self, sdf: StreamingDataFrame, topic: Topic) -> StreamingDataFrame:
        """Branch: undecodable / foreign records to the input's DLQ, in the same transaction."""
        tenant = self.settings.tenant

        def count(value: Outgoing) -> None:
            metrics.DLQ.labels(SERVICE, tenant, value.reason or "unknown").inc()

        bad = sdf.filter(lambda v: isinstance(v, Outgoing))
        bad = bad.set_timestamp(_now_ms).set_headers(_headers)
        bad.to_topic(topic, key=_key).update(count)
        return sdf.filter(lambda v: not isinstance(v, Outgoing))

    def _build(self) -> None:
        app = self.app
        out = self._output(self.out_topic)
        dlq = {name: self._output(topic) for name, topic in self.dlq_topics.items()}

        txs = app.dataframe(self._input(self.tx_topic))
        txs = txs.apply(self._decoder(TransactionEvent), metadata=True)
        txs = self._dead_letters(txs, dlq[self.tx_topic]).apply(_account, stateful=True)

        labels = app.dataframe(self._input(self.label_topic))
        labels = labels.apply(self._decoder(LabelEvent), metadata=True)
        labels = self._dead_letters(labels, dlq[self.label_topic])

        merged = txs.concat(labels).group_by(_merchant_key, name=MERCHANT_GROUP_BY)
        enriched = merged.apply(_merchant, stateful=True).filter(lambda v: v is not None)
        enriched = enriched.apply(enriched_output)
        enriched = enriched.set_timestamp(_now_ms).set_headers(_headers)
        stream = self.out_topic.removeprefix(f"{self.settings.tenant}.")
        events_out = metrics.EVENTS_OUT.labels(SERVICE, self.settings.tenant, stream)
        enriched.to_topic(out, key=_key).update(lambda _: events_out.inc())

    # -- run ---------------------------------------------------------------------------------------
    def internal_topics(self) -> list[str]:
        """The repartition and changelog topics Quix uses for this tenant (ACLs, ops)."""
        manager = self.app._topic_manager  # no public accessor in quixstreams 3.28
        return sorted(
            [*manager.repartition_topics, *(t.name for t in manager.changelog_topics_list)]
        )

    def run(self) -> int:
        health = None
        if self.settings.health_port:
            health = HealthServer(
                port=self.settings.health_port, live=self.app.live, ready=self.app.ready
            ).start()
        try:
            log.info(
                "starting: group %s, transactional.id %s, state %s, internal topics %s",
                self.settings.group_id,
                self.settings.transactional_id,
                self.settings.resolved_state_dir(),
                ", ".join(self.internal_topics()),
            )
            self.app.run()  # installs SIGTERM/SIGINT → app.stop(): commit, leave the group
            return 0
        finally:
            if health is not None:
                health.stop()


def _merchant_key(record: Record) -> str:
    return str(record["merchant"])


def _account(record: Record, state: State[str, Any]) -> Record:
    new, windows = account_stage(record, state.get("windows"))
    state.set("windows", windows)
    return new


def _merchant(record: Record, state: State[str, Any]) -> Record | None:
    new, windows, labelled = merchant_stage(record, state.get("windows"), state.get("labelled"))
    if windows is not None:
        state.set("windows", windows)
    if labelled is not None:
        state.set("labelled", labelled)
    return new


def main(argv: list[str] | None = None) -> int:
    from scorestream.logs import configure_logging  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="scorestream enricher")
    parser.add_argument("--tenant")
    parser.add_argument("--instance-id")
    parser.add_argument(
        "--max-batch", type=int, help="commit a transaction after this many input records"
    )
    parser.add_argument(
        "--max-wait-ms", type=int, help="longest a processed record waits for its commit"
    )
    parser.add_argument("--health-port", type=int)
    parser.add_argument("--state-dir", type=Path, help="RocksDB state root")
    args = parser.parse_args(argv)
    settings = EnricherSettings(**{k: v for k, v in vars(args).items() if v is not None})
    configure_logging(SERVICE, settings.tenant)
    return Enricher(settings).run()


if __name__ == "__main__":
    import sys

    sys.exit(main())
