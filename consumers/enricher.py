"""The enricher: transactions (+ labels) in, transactions with their served features out.

Features come from the one feature module (:mod:`scorestream.features`), the same code
training replays, so served and trained features are identical. It runs on **Quix Streams**
(exactly-once, changelog-backed RocksDB state): faust-streaming lost and double-counted on our
Kafka 4.4 broker (docs/adr/0001-enricher-state.md).

Per-merchant windows span every account while transactions and labels are keyed by account, so
the topology has keyed stages on both keys (consumer group ``<tenant>.enricher``)::

    <tenant>.transactions ─ decode ─┬─ bad ──────────────────────────► <tenant>.transactions.dlq
                                    └─ account stage + seq (state keyed by account) ─┐
    <tenant>.labels ─────── decode ─┬─ bad ──────────────────────────► <tenant>.labels.dlq
                                    └────────────────────────────────────────────────┤ concat
             group_by(merchant): repartition__<tenant>.enricher--<tenant>.labels--…--merchant
             merchant stage (state keyed by merchant)
             → repartition__<tenant>.enricher--<tenant>.transactions--account (key = account)
             reorder stage (state keyed by account) ─► <tenant>.transactions.enriched

Stage 1 keeps each account's windows under the input key (transactions are keyed by account and
read in partition order, so an account's transactions arrive in the order they were published)
and numbers them (``seq``). Stage 2 receives every transaction and label of a merchant on one
partition of the repartition topic; labels update the fraud windows there. Stage 2 handles a
record when its *merchant's* partition gets to it, so an account's records leave it out of
order; stage 3, back on the account key, holds a record that overtook an earlier one of its
account until that one is emitted, and writes the output strictly in ``seq`` order (the per-key
order every later service keeps). Quix allows one ``group_by`` per pipeline, so the hop back to
the account is an explicit topic of this group, written and read like Quix's own repartition
topic. On a one-partition tenant there is no repartition at all and no stage 3 (order is kept).
Outputs, dead letters, hop records, changelog writes and input offsets of a checkpoint commit
in one Kafka transaction. The stage arithmetic is in :mod:`consumers.enricher_stages` (pure),
the Quix plumbing in :mod:`consumers.enricher_quix`.

Tracing (``SCORESTREAM_TRACING_*``, as every service): per transaction of a sampled (or new)
trace a ``process <tenant>.transactions`` span, a child of the input's context, from decode to
the output write, and a ``send <tenant>.transactions.enriched`` span under it whose context the
output carries. Unsampled traces cost nothing beyond passing their headers on.

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
from opentelemetry.trace import SpanKind
from prometheus_client import Counter, Histogram
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from quixstreams import State, message_context
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.models import Topic
from quixstreams.models.topics.exceptions import TopicNotFoundError

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
    reorder_stage,
    sampled,
    with_sequence,
)
from schemas.errors import RawRecord
from schemas.events import LabelEvent, TransactionEvent
from scorestream import metrics, tracing
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
ACCOUNT_HOP = "account"
"""The suffix of the topic back to the account for the reorder stage:
``repartition__<tenant>.enricher--<tenant>.transactions--account``."""
REORDERED = Counter(
    "scorestream_enricher_reordered_total",
    "Enriched records held back until an earlier record of the same account was emitted",
    ["tenant"],
)
REORDER_PENDING = Histogram(
    "scorestream_enricher_reorder_pending",
    "Records an account's reorder buffer holds, observed whenever a record is held back",
    ["tenant"],
    buckets=metrics.BATCH_BUCKETS,
)
TOPIC_ATTEMPTS = 5
"""Builds of the topology before a never-visible internal topic is an error."""
PENDING_WARN = 1000
"""Log a warning when one account's reorder buffer reaches this size (and each doubling)."""


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
    """RocksDB state root; the instance keeps ``<state_dir>/<cluster id>/<tenant>/<instance_id>``
    so two instances on one host never share files. Losing it only costs a changelog replay. The
    default is under the temp dir, writable in the pods (read-only root, ``/tmp`` emptyDir)."""

    def resolved_state_dir(self, cluster_id: str) -> Path:
        """Per Kafka cluster: local state holds changelog offsets of one cluster, and reusing it
        against a recreated broker makes Quix refuse to commit (InvalidChangelogOffset)."""
        return self.state_dir / cluster_id / self.tenant / self.instance_id


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
        self.cluster_id = self._require_topics()
        for attempt in range(1, TOPIC_ATTEMPTS + 1):
            self.app = self._application()
            try:
                self._build()
                break
            except TopicNotFoundError as exc:
                # Quix creates an internal topic and reads its config back at once; under load
                # the broker's metadata may not show it yet. A fresh Application finds it.
                if attempt == TOPIC_ATTEMPTS:
                    raise KafkaClientError(f"internal topic never became visible: {exc}") from exc
                log.warning("%s right after creating it; building again (%d)", exc, attempt)
                time.sleep(attempt)

    def _application(self) -> EnricherApplication:
        """The Quix application (Kafka clients are created lazily, on run)."""
        settings = self.settings
        conn, _ = connection(self.kafka, client_id=settings.instance_id)
        return EnricherApplication(
            broker_address=conn,
            consumer_group=settings.group_id,
            processing_guarantee="exactly-once",
            auto_offset_reset="earliest",
            commit_interval=settings.max_wait_ms / 1000,
            commit_every=settings.max_batch,
            consumer_poll_timeout=settings.max_wait_ms / 1000,
            state_dir=settings.resolved_state_dir(self.cluster_id),
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
                fetch_wait_max_ms=max(1, min(100, settings.max_wait_ms // 2)),
            ),
            loglevel=None,  # quixstreams logs through our JSON root handler
            service=SERVICE,
            live_after_s=settings.live_after_s,
        )

    def _require_topics(self) -> str:
        """Quix would create a missing topic with one partition; refuse instead. Returns the
        cluster id (it scopes the local state)."""
        admin = AdminClient(admin_config(self.kafka, client_id=self.settings.instance_id))
        metadata = admin.list_topics(timeout=30)
        existing = metadata.topics
        wanted = [self.tx_topic, self.label_topic, self.out_topic, *self.dlq_topics.values()]
        missing = [name for name in wanted if name not in existing]
        if missing:
            raise KafkaClientError(f"topics missing (run `scorestream topics create`): {missing}")
        return str(metadata.cluster_id or "unknown-cluster")

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
            if decoded["kind"] == "tx":
                mark_span_start(decoded, raw)
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

    def _by_account_topic(self, merchant: Topic) -> Topic:
        """The account hop: named under this group's ``repartition__`` prefix (the ACLs of
        scorestream/acl.py), configured like the merchant repartition topic Quix derived
        (partitions and retention of the inputs)."""
        name = f"repartition__{self.settings.group_id}--{self.tx_topic}--{ACCOUNT_HOP}"
        return self.app.topic(
            name,
            key_serializer="bytes",
            key_deserializer="bytes",
            value_serializer="json",
            value_deserializer="json",
            config=merchant.create_config,
        )

    def _reorder(self) -> Callable[[Record, State[str, Any]], list[Record]]:
        """Stage 3 (keyed by account): the reorder buffer of :func:`reorder_stage` in state."""
        tenant = self.settings.tenant
        reordered = REORDERED.labels(tenant)
        pending_size = REORDER_PENDING.labels(tenant)

        def reorder(record: Record, state: State[str, Any]) -> list[Record]:
            held = state.get("pending")
            out, nxt, pending = reorder_stage(record, state.get("next"), held)
            if nxt is not None:
                state.set("next", nxt)
            if pending is not None:
                if pending:
                    state.set("pending", pending)
                else:
                    state.delete("pending")
                if len(pending) > len(held or ()):  # this record was held back
                    reordered.inc()
                    pending_size.observe(len(pending))
                    if len(pending) >= PENDING_WARN and len(pending) & (len(pending) - 1) == 0:
                        log.warning(
                            "reorder buffer of account %s holds %d records (waiting for seq %s)",
                            record.get("account"),
                            len(pending),
                            nxt if nxt is not None else state.get("next", 0),
                        )
            elif not out:
                log.warning(
                    "dropped seq %s of account %s: already emitted",
                    record.get("seq"),
                    record.get("account"),
                )
            return out

        return reorder

    def _output_record(self) -> Callable[[Record], Outgoing]:
        group, out_topic = self.settings.group_id, self.out_topic
        return lambda record: traced_output(record, group=group, out_topic=out_topic)

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
        merchant_topics = list(app._topic_manager.repartition_topics.values())  # no accessor
        if merchant_topics:
            # back to the account: emit each account's records in its input order (stage 3).
            # Quix forbids a second group_by, so the hop is an explicit topic of this group,
            # written in the same transaction and read like an input (read_committed).
            by_account = self._by_account_topic(merchant_topics[0])
            enriched.to_topic(by_account, key=_account_key_bytes)
            enriched = app.dataframe(by_account)
            enriched = enriched.apply(self._reorder(), stateful=True, expand=True)
        # else one partition: Quix re-keyed in place, every record is already in input order
        enriched = enriched.apply(self._output_record())
        enriched = enriched.set_timestamp(_now_ms).set_headers(_headers)
        stream = self.out_topic.removeprefix(f"{self.settings.tenant}.")
        events_out = metrics.EVENTS_OUT.labels(SERVICE, self.settings.tenant, stream)
        enriched.to_topic(out, key=_key).update(lambda _: events_out.inc())

    # -- run ---------------------------------------------------------------------------------------
    def internal_topics(self) -> list[str]:
        """The repartition and changelog topics Quix uses for this tenant (ACLs, ops)."""
        manager = self.app._topic_manager  # no public accessor in quixstreams 3.28
        ours = [t for t in manager.topics if t.startswith("repartition__")]  # the account hop
        changelogs = [t.name for t in manager.changelog_topics_list]
        return sorted({*manager.repartition_topics, *ours, *changelogs})

    def run(self) -> int:
        health = None
        if self.settings.health_port:
            health = HealthServer(
                port=self.settings.health_port, live=self.app.live, ready=self.app.ready
            ).start()
        try:
            log.info(
                "starting: tracing %s, group %s, transactional.id %s, state %s, internal topics %s",
                "on" if tracing.active() else "off",
                self.settings.group_id,
                self.settings.transactional_id,
                self.settings.resolved_state_dir(self.cluster_id),
                ", ".join(self.internal_topics()),
            )
            self.app.run()  # installs SIGTERM/SIGINT → app.stop(): commit, leave the group
            return 0
        finally:
            self.app.stall_guard.close()
            if health is not None:
                health.stop()
            tracing.shutdown()  # flushes the spans still queued


def mark_span_start(record: Record, raw: RawRecord) -> None:
    """Note where and when the enricher's ``process`` span of a transaction starts (it ends
    when the output is written, stages and hops later); only with tracing on and a trace that
    may be sampled, so unsampled traffic carries nothing extra."""
    if tracing.active() and sampled(record["trace"]):
        ce_id = tracing.GETTER.get(raw.headers, "ce_id")
        record["span"] = [
            raw.topic,
            raw.partition,
            raw.offset,
            time.time_ns(),
            ce_id[0] if ce_id else None,
        ]


def traced_output(record: Record, *, group: str, out_topic: str) -> Outgoing:
    """The enriched record. For a transaction marked by :func:`mark_span_start`: the
    enricher's ``process <input topic>`` span (decode → now, a child of the input's context,
    messaging attributes of the consumed record) and a ``send <output topic>`` span under it,
    whose context the output carries — the worker's span is then a child of the enricher's."""
    where = record.get("span")
    if where is None or not tracing.active():
        return enriched_output(record)
    topic, partition, offset, start_ns, message_id = where
    account = record["account"]
    attrs = tracing.kafka_attributes(
        topic,
        operation="process",
        partition=partition,
        offset=offset,
        key=account,
        group=group,
        message_id=message_id,
    )
    span = tracing.tracer().start_span(
        f"process {topic}",
        context=tracing.extract(record["trace"]),
        kind=SpanKind.CONSUMER,
        attributes=attrs,
        start_time=start_ns,
    )
    try:
        with tracing.send_span(out_topic, parent=span, key=account) as w3c:
            return enriched_output({**record, "trace": w3c or record["trace"]})
    finally:
        span.end()


def _merchant_key(record: Record) -> str:
    return str(record["merchant"])


def _account_key_bytes(record: Record) -> bytes:
    return str(record["account"]).encode()


def _account(record: Record, state: State[str, Any]) -> Record:
    new, windows = account_stage(record, state.get("windows"))
    new, next_seq = with_sequence(new, state.get("seq"))
    state.set("windows", windows)
    state.set("seq", next_seq)
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
    tracing.setup(SERVICE, settings.tenant)
    return Enricher(settings).run()


if __name__ == "__main__":
    import sys

    sys.exit(main())
