"""A replicated table: every instance reads a whole compacted topic and keeps following it.

Kafka Streams' GlobalKTable pattern for data not keyed like a service's input (the enricher's
merchant table): no consumer group, every partition assigned from the beginning, read to its
end once at start (:meth:`GlobalTable.bootstrap`, before the service takes input), then polled
without blocking between batches (:meth:`GlobalTable.poll`), so the table changes only between
batches and a batch sees one consistent version. ``read_committed``: only what the writer's
transactions committed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from scorestream.errors import KafkaClientError
from scorestream.kafka_config import consumer_config
from scorestream.reader import watermarks
from scorestream.settings import KafkaSettings

log = logging.getLogger("scorestream.table")


class GlobalTable:
    """Follows every partition of ``topic``; ``apply`` is called with each record in order."""

    def __init__(
        self,
        topic: str,
        apply: Callable[[Message], None],
        *,
        kafka: KafkaSettings,
        client_id: str,
        group_id: str,
    ) -> None:
        self.topic = topic
        self.apply = apply
        self.kafka = kafka
        self.client_id = client_id
        self.group_id = group_id
        self.consumer: Consumer | None = None
        self.partitions = 0
        self.records = 0
        self.errors = 0
        self.bootstrapped = False

    def bootstrap(
        self, timeout_s: float = 120.0, stopping: Callable[[], bool] | None = None
    ) -> int:
        """Assign every partition from the beginning and read to the current end."""
        conf = consumer_config(self.kafka, group_id=self.group_id, client_id=self.client_id) | {
            "enable.partition.eof": False,
            # the table is read between batches: one fetch response per 200 ms or 1 MiB, not
            # one per transaction of its writer (broker CPU)
            "fetch.wait.max.ms": 200,
            "fetch.min.bytes": 1 << 20,
        }
        consumer = Consumer(conf)
        self.consumer = consumer
        meta = consumer.list_topics(self.topic, timeout=30).topics.get(self.topic)
        if meta is None or meta.error is not None:
            raise KafkaClientError(f"table topic {self.topic} does not exist")
        self.partitions = len(meta.partitions)
        ends: dict[int, int] = {}
        for p in sorted(meta.partitions):
            low, high = watermarks(consumer, TopicPartition(self.topic, p), timeout=timeout_s)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in meta.partitions])
        started = time.monotonic()
        deadline = started + timeout_s
        while ends:
            if stopping is not None and stopping():
                return self.records
            if time.monotonic() > deadline:
                raise KafkaClientError(
                    f"reading the table {self.topic} to its end took longer than {timeout_s}s"
                )
            self._consume(consumer, 5000, 0.2)
            for tp in consumer.position([TopicPartition(self.topic, p) for p in ends]):
                if tp.offset >= ends[tp.partition]:
                    ends.pop(tp.partition)
        self.bootstrapped = True
        log.info(
            "table %s: %d records read in %.2fs",
            self.topic,
            self.records,
            time.monotonic() - started,
        )
        return self.records

    def poll(self, max_records: int = 5000) -> int:
        """Apply what has arrived since the last call, without waiting."""
        if self.consumer is None:
            return 0
        return self._consume(self.consumer, max_records, 0)

    def _consume(self, consumer: Consumer, n: int, timeout: float) -> int:
        messages = consumer.consume(num_messages=n, timeout=timeout)
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    self.errors += 1
                    log.warning("reading the table %s: %s", self.topic, err)
                continue
            self.apply(msg)
            self.records += 1
        return len(messages)

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer.close()
            self.consumer = None
