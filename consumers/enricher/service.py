"""The enricher service on the kernel's processor: the account store restored on assignment, the
merchant table followed between batches, :class:`EnrichHandler` per batch; ``main``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from consumers.enricher.handler import AccountCodec, EnrichHandler
from consumers.enricher.merchant_table import MerchantTable
from consumers.enricher.settings import SERVICE, EnricherSettings
from schemas.events import TransactionEvent
from scorestream.admin import require_topics
from scorestream.entrypoint import run_service
from scorestream.event_time import EventTimeSettings
from scorestream.features import (
    ENGINE,
    FEATURE_SPEC,
    AccountState,
    Engine,
)
from scorestream.kafka_config import admin_config
from scorestream.processor import Processor, ProcessorConfig
from scorestream.settings import KafkaSettings
from scorestream.state import StateStore
from scorestream.table import GlobalTable
from scorestream.topics import REGISTRY

log = logging.getLogger("scorestream.enricher")


class Enricher:
    """The service: the handler on the shared processor, the account store, the merchant
    table followed between batches."""

    def __init__(
        self,
        settings: EnricherSettings,
        *,
        kafka: KafkaSettings | None = None,
        engine: Engine = ENGINE,
    ) -> None:
        self.settings = settings
        self.kafka = kafka or KafkaSettings()
        t = settings.tenant
        self.tx_topic = REGISTRY.topic("transactions", t)
        require_topics(
            AdminClient(admin_config(self.kafka, client_id=settings.instance_id)),
            [self.tx_topic, REGISTRY.topic("transactions.enriched", t)]
            + [REGISTRY.topic(s, t) for s in ("enricher.state", "merchant-features")],
            tenant=t,
        )
        self.accounts: StateStore[AccountState] = StateStore(
            "accounts",
            source=self.tx_topic,
            changelog=REGISTRY.topic("enricher.state", t),
            codec=AccountCodec(engine),
            kafka=self.kafka,
            group_id=settings.group_id,
            checkpoint_dir=settings.state_dir / t / settings.instance_id,
            restore_timeout_s=settings.restore_timeout_s,
        )
        self.merchants = MerchantTable(engine, t)
        self.handler = EnrichHandler(
            tenant=t,
            engine=engine,
            accounts=self.accounts,
            merchants=self.merchants,
            partition_count=self._check_partition_count,
            window=EventTimeSettings(),
        )
        self.table = GlobalTable(
            REGISTRY.topic("merchant-features", t),
            self.merchants.apply,
            kafka=self.kafka,
            client_id=f"{settings.instance_id}-table",
            group_id=f"{settings.group_id}.table",
        )
        config = ProcessorConfig.for_service(
            settings,
            service=SERVICE,
            inputs=(self.tx_topic,),
            accept=(TransactionEvent,),
            dlq_topics={self.tx_topic: REGISTRY.dlq_topic("transactions", t)},
            keyed=(TransactionEvent,),  # key = account_id, checked in the decode step
        )
        self.processor = Processor(
            config,
            self.handler.handle,
            kafka=self.kafka,
            before_batch=self._before_batch,
            ready=self._ready,
            wait_until_ready=self._bootstrap,
            stores=(self.accounts,),
            on_assigned=self._on_assigned,
        )

    # -- lifecycle hooks -------------------------------------------------------------------------
    def _bootstrap(self, stopping: Any) -> bool:
        self.table.bootstrap(self.settings.table_timeout_s, stopping=stopping.is_set)
        self.merchants.partitions = self.table.partitions
        closed = self.merchants.closed_ms()
        log.info(
            "merchant table: %d merchants, complete up to %s",
            len(self.merchants.states),
            "nothing yet" if closed is None else datetime.fromtimestamp(closed / 1000, UTC),
        )
        return not stopping.is_set()

    def _before_batch(self) -> None:
        self.table.poll()

    def _ready(self) -> tuple[bool, str]:
        if not self.table.bootstrapped:
            return False, "reading the merchant table"
        closed = self.merchants.closed_ms()
        when = "incomplete" if closed is None else datetime.fromtimestamp(closed / 1000, UTC)
        return True, f"{len(self.accounts)} accounts; merchant table as of {when}"

    def _on_assigned(self, partitions: list[TopicPartition]) -> None:
        consumer = self.processor.consumer
        if consumer is not None and partitions:
            meta = consumer.list_topics(self.tx_topic, timeout=30).topics.get(self.tx_topic)
            if meta is not None:
                self.handler.input_partitions = len(meta.partitions)

    def _check_partition_count(self) -> None:
        """Raise :class:`PartitionCountMismatchError` when the input has grown since the store
        was restored (librdkafka notices new partitions only at its next metadata refresh)."""
        consumer = self.processor.consumer
        if consumer is not None:
            self.accounts.check_partitions(consumer)

    # -- run -------------------------------------------------------------------------------------
    def run(self, *, install_signals: bool = True) -> int:
        log.info(
            "starting: spec %s (%s), group %s, transactional.id %s, state %s",
            FEATURE_SPEC.hash,
            FEATURE_SPEC.source,
            self.settings.group_id,
            self.settings.transactional_id,
            self.accounts.changelog,
        )
        try:
            return self.processor.run(install_signals=install_signals)
        finally:
            self.table.close()

    def stop(self, *_: Any) -> None:
        self.processor.stop()


def main(
    argv: list[str] | None = None, *, on_ready: Callable[[Enricher], None] | None = None
) -> int:
    """Entry point of ``scorestream enricher`` and of the container: every setting of
    :class:`EnricherSettings` from ``SCORESTREAM_ENRICHER_*`` or as a flag."""
    return run_service(SERVICE, EnricherSettings, Enricher, argv, on_ready=on_ready)


if __name__ == "__main__":
    import sys

    sys.exit(main())
