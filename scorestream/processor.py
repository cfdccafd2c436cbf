"""Consume → handle → produce, exactly once: the Kafka loop every consuming service shares.

A service supplies a *handler* — a function from a batch of decoded envelopes to a
:class:`Result` (events to emit, dead letters) — and the processor does the rest, as in
confluent-kafka's ``eos_transactions.py``: batch consume with cooperative-sticky rebalancing and
``read_committed``; one Kafka transaction per batch holding the outputs, the dead letters and
the consumer offsets; abort and rewind on abortable errors; recreate the producer when fenced.
At-least-once is a setting (idempotent producer, offsets committed after delivery).

One batch is in flight, so the producer queue is bounded by one batch (should it fill anyway,
the assigned partitions are paused until it drains). Records that cannot be decoded (or keyed
otherwise than their event, for the contracts a service declares ``keyed``) go to the input's
DLQ with the reason, never to the handler; a dead letter too large to be copied is written as a
pointer (:mod:`scorestream.dlq`): it never fails its batch. ``/livez``, ``/readyz``, ``/metrics``
are served on the health port. SIGTERM commits the current batch, leaves the group, returns.

Services extend it through public hooks only (no subclass overrides a private method):
``stores`` (keyed state stores restored on assignment, whose changes join each transaction),
``on_assigned`` / ``on_revoked`` / ``on_lost``, ``before_batch``, ``tick`` (a transaction of its
own between batches, e.g. timeouts while no input arrives), ``on_eof`` (an input partition read
to its end), ``assignment`` (every partition of the inputs, positioned by time, instead of the
group's share: :mod:`scorestream.partitions`), :meth:`Processor.pause_until` (a partition not
fetched until a time) and :class:`OutRecord` outputs (raw bytes with an explicit partition,
timestamp or a tombstone).

The loop is here; what it hands around is in :mod:`scorestream.processing` (configuration,
:class:`Result`, :class:`Emit`), the consuming side in :mod:`scorestream.intake` and the writing
of a batch's outputs in :mod:`scorestream.output`.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from scorestream import metrics, tracing
from scorestream.admin import require_topics
from scorestream.codec import BatchDecoder
from scorestream.errors import KafkaClientError, TopicError
from scorestream.health import HealthServer
from scorestream.intake import Intake, update_lag
from scorestream.kafka_config import consumer_config, producer_config, transactional_producer_config
from scorestream.logs import redact
from scorestream.output import OutputWriter
from scorestream.partitions import ExplicitAssignment, Marks, Paused, assign_new
from scorestream.processing import (
    BACKGROUND_FETCH_MIN_BYTES,
    MAX_DLQ_LOG_LINES,
    Check,
    Delivery,
    Emit,
    Handler,
    OutRecord,
    PartitionsHook,
    ProcessorConfig,
    Result,
    count_batch,
    fetch_settings,
    freeze_startup_heap,
    log_dead_letters,
)
from scorestream.settings import KafkaSettings
from scorestream.stall_guard import StallGuard
from scorestream.state import StateStore

__all__ = [
    "BACKGROUND_FETCH_MIN_BYTES",
    "MAX_DLQ_LOG_LINES",
    "Check",
    "Delivery",
    "Emit",
    "ExplicitAssignment",
    "Handler",
    "OutRecord",
    "PartitionsHook",
    "Processor",
    "ProcessorConfig",
    "Result",
    "count_batch",
    "fetch_settings",
    "freeze_startup_heap",
    "log_dead_letters",
]
from scorestream.topics import REGISTRY

log = logging.getLogger("scorestream.processor")


class Processor:
    def __init__(
        self,
        config: ProcessorConfig,
        handle: Handler,
        *,
        kafka: KafkaSettings | None = None,
        before_batch: Callable[[], None] | None = None,
        ready: Check | None = None,
        live: Check | None = None,
        wait_until_ready: Callable[[threading.Event], bool] | None = None,
        stores: Sequence[StateStore[Any]] = (),
        on_assigned: PartitionsHook | None = None,
        on_revoked: PartitionsHook | None = None,
        on_lost: PartitionsHook | None = None,
        tick: Callable[[], Result | None] | None = None,
        on_eof: Callable[[str, int], None] | None = None,
        assignment: ExplicitAssignment | None = None,
    ) -> None:
        self.config = config
        self.kafka = kafka or KafkaSettings()
        self.handle = handle
        self.before_batch = before_batch
        self.extra_ready = ready
        self.extra_live = live
        self.wait_until_ready = wait_until_ready
        self.stores = tuple(stores)
        """Restored when their source's partitions are assigned (before any record of them is
        handled); their changes are written to their changelogs in each batch's transaction."""
        self.on_assigned = on_assigned
        """Called after the stores of newly assigned partitions are restored."""
        self.on_revoked = on_revoked
        """Called when partitions are revoked (their last batch is committed)."""
        self.on_lost = on_lost
        """Called when partitions are lost (session expired; an open transaction is fenced)."""
        self.on_eof = on_eof
        """Called with (topic, partition) when an input partition has been read to its end
        (needs ``enable.partition.eof`` in ``consumer_overrides``)."""
        self.assignment = assignment
        """Read every partition of the inputs, positioned by time, instead of the consumer
        group's share (:mod:`scorestream.partitions`)."""
        self.marks = Marks()
        """With ``assignment``: the committed offsets below which dead letters were written."""
        self.tick = tick
        """Called between batches; a returned :class:`Result` is committed in a transaction of
        its own (no input offsets), e.g. timeouts that fire while no input arrives."""
        self.restoring = False
        self.preparing = False
        """In ``wait_until_ready`` (e.g. reading a table, waiting for a model): live, and ready
        as the service's own check says."""
        self._phase = {
            name: metrics.PHASE_SECONDS.labels(config.service, name)
            for name in ("wait", "decode", "handle", "produce", "send_offsets", "commit")
        }
        """Where a batch's time goes (the per-hop latency budget of docs/performance.md)."""
        self.decoder = BatchDecoder(config.accept, keyed=config.keyed)
        """The batch codec: envelopes and dead letters from a consumed batch."""
        self.intake = Intake(config, self.decoder, on_eof)
        self.stopping = threading.Event()
        self.stall_guard = StallGuard()
        """Ends the process when a transactional call outlives its timeout by 30 s (librdkafka
        can block forever there when a broker leaves; :mod:`scorestream.stall_guard`)."""
        self.last_poll = time.monotonic()
        self.assigned: set[tuple[str, int]] = set()
        self.joined = False
        """Set by the assignment callback; /readyz reads it without touching the client (the
        consumer must not be called from the health thread while the loop polls)."""
        self.consumer: Consumer | None = None
        self.producer: Producer | None = None
        self.batches = 0
        self._spans: tracing.BatchTrace | None = None
        """The spans of the batch being produced (None when tracing is off)."""
        self.paused = Paused()
        """Partitions paused by :meth:`pause_until`."""
        self.output = OutputWriter(
            config, self.stores, delivery_reports=config.delivery != "exactly_once"
        )

    # -- health ----------------------------------------------------------------------------------
    def live(self) -> tuple[bool, str]:
        if self.restoring or self.preparing:
            # rebuilding state (or reading a table) does not poll; it has its own timeout
            self.last_poll = time.monotonic()
            return True, "restoring state"
        idle = time.monotonic() - self.last_poll
        if idle >= self.config.live_after_s:
            return False, f"no poll for {idle:.1f}s"
        if self.extra_live is not None:
            return self.extra_live()
        return True, f"last poll {idle:.1f}s ago"

    def ready(self) -> tuple[bool, str]:
        if self.restoring:
            return False, "restoring state"
        if self.preparing and self.extra_ready is None:
            return False, "preparing"
        if self.extra_ready is not None:
            ok, detail = self.extra_ready()
            if not ok:
                return ok, detail
        else:
            detail = ""
        if not self.joined:
            return False, f"{detail}; not in the consumer group yet".lstrip("; ")
        parts = sorted(f"{t}[{p}]" for t, p in self.assigned)
        # a member without partitions is ready too: more replicas than partitions is legal
        return True, f"{detail}; assigned {', '.join(parts) or 'nothing (idle)'}".lstrip("; ")

    def stop(self, *_: Any) -> None:
        self.stopping.set()

    # -- flow control ------------------------------------------------------------------------------
    def pause_until(self, topic: str, until: Mapping[int, float]) -> None:
        """Stop fetching these partitions of ``topic`` until the wall-clock times (epoch s)
        given per partition; each is resumed before the first batch after its time. Safe from a
        handler: should the batch abort, its input partitions are rewound and their records come
        back once resumed. A partition revoked or lost meanwhile is forgotten (it comes back
        unpaused)."""
        if self.consumer is not None:
            self.paused.pause(self.consumer, topic, until)

    # -- clients ---------------------------------------------------------------------------------
    def _p(self) -> Producer:
        if self.producer is None:
            raise KafkaClientError("the producer is not started")
        return self.producer

    def _c(self) -> Consumer:
        if self.consumer is None:
            raise KafkaClientError("the consumer is not started")
        return self.consumer

    def _make_producer(self) -> Producer:
        c = self.config
        if c.delivery == "exactly_once":
            conf = transactional_producer_config(
                self.kafka, transactional_id=c.transactional_id, client_id=c.instance_id
            )
            conf["transaction.timeout.ms"] = int(c.transaction_timeout_s * 1000)
            conf["delivery.timeout.ms"] = int(c.transaction_timeout_s * 1000)
            producer = Producer(conf)
            with self.stall_guard.call("init_transactions", c.transaction_timeout_s):
                producer.init_transactions(c.transaction_timeout_s)
            return producer
        return Producer(producer_config(self.kafka, client_id=c.instance_id))

    def _make_consumer(self) -> Consumer:
        c = self.config
        conf = consumer_config(self.kafka, group_id=c.group_id, client_id=c.instance_id) | {
            "max.poll.interval.ms": c.max_poll_interval_ms,
            "session.timeout.ms": c.session_timeout_ms,
            "heartbeat.interval.ms": max(1000, c.session_timeout_ms // 5),
            **fetch_settings(c),
        }
        conf |= dict(c.consumer_overrides)
        # what this instance connects with, for whoever reads the logs (secrets masked)
        log.info(
            "kafka consumer of group %s",
            c.group_id,
            extra={"kafka": redact({k: v for k, v in conf.items() if not callable(v)})},
        )
        return Consumer(conf)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self.stores and partitions:
            self.restoring = True
            try:
                for store in self.stores:
                    wanted = [p.partition for p in partitions if p.topic == store.source]
                    if wanted:
                        store.check_partitions(consumer)
                        store.restore(wanted)
            finally:
                self.restoring = False
        if self.on_assigned is not None:
            self.on_assigned(partitions)
        self.joined = True
        self.assigned |= {(p.topic, p.partition) for p in partitions}
        log.info("assigned %s", sorted(f"{p.topic}[{p.partition}]" for p in partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Called from consume(): the previous batch is already committed; nothing is in flight.
        self.assigned -= {(p.topic, p.partition) for p in partitions}
        self.intake.revoked |= {(p.topic, p.partition) for p in partitions}
        for p in partitions:
            with contextlib.suppress(KeyError):
                metrics.CONSUMER_LAG.remove(self.config.service, p.topic, str(p.partition))
        self._release(partitions, checkpoint=True)
        self.paused.forget(partitions)
        if self.on_revoked is not None:
            self.on_revoked(partitions)
        log.info("revoked %s", sorted(f"{p.topic}[{p.partition}]" for p in partitions))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.assigned -= {(p.topic, p.partition) for p in partitions}
        self.intake.revoked |= {(p.topic, p.partition) for p in partitions}
        self.joined = False
        self._release(partitions, checkpoint=False)
        self.paused.forget(partitions)
        if self.on_lost is not None:
            self.on_lost(partitions)
        log.warning("lost %s (session expired): an open transaction will be fenced", partitions)

    def _assign_explicit(self, *, initial: bool) -> None:
        if self.assignment is None:
            return
        consumer = self._c()
        new = assign_new(
            consumer,
            self.config.inputs,
            self.assigned,
            self.assignment,
            self.marks,
            initial=initial,
        )
        if new or initial:
            self._on_assign(consumer, new)

    def _release(self, partitions: list[TopicPartition], *, checkpoint: bool) -> None:
        for store in self.stores:
            gone = [p.partition for p in partitions if p.topic == store.source]
            if gone:
                store.release(gone, checkpoint=checkpoint)

    # -- run ---------------------------------------------------------------------------------------
    def run(self, *, install_signals: bool = True) -> int:
        if install_signals:
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        health = None
        clean = False
        if self.config.health_port:
            health = HealthServer(
                port=self.config.health_port, live=self.live, ready=self.ready
            ).start()
        try:
            if not self._prepare():
                return 0
            self._start()
            freeze_startup_heap()
            self._loop()
            clean = True
            return 0
        finally:
            if not clean:  # the last batch's outcome may be unknown: no checkpoint of it
                for store in self.stores:
                    store.release(list(store.partitions), checkpoint=False)
            if self.consumer is not None:
                self.consumer.close()  # leaves the group (revoke: stores checkpoint)
            for store in self.stores:
                store.close()  # what the revocation did not checkpoint (none if unclean)
            if self.producer is not None:
                try:
                    self.producer.flush(5)
                except KafkaException as exc:  # a fatal producer: keep the error that ended us
                    log.warning("producer flush at shutdown failed: %s", exc)
            if health is not None:
                health.stop()
            tracing.flush(5)
            self.stall_guard.close()

    def _start(self) -> None:
        """The clients, the topics checked, and the inputs subscribed (or assigned)."""
        self.producer = self._make_producer()
        self.consumer = self._make_consumer()
        require_topics(self.consumer, self.required_topics(), tenant=self.config.tenant)
        if self.assignment is not None:
            self._assign_explicit(initial=True)
            return
        self.consumer.subscribe(
            list(self.config.inputs),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )

    def required_topics(self) -> list[str]:
        """Inputs, their DLQs and every stream the registry says this service writes: all must
        exist before it starts (services have no Create ACL; the deploy step provisions them)."""
        c = self.config
        written = [s.topic(c.tenant) for s in REGISTRY.written_by(c.service)]
        return list(dict.fromkeys([*c.inputs, *c.dlq_topics.values(), *written]))

    def _prepare(self) -> bool:
        """The service's own preparation (e.g. reading a table): live, not ready, meanwhile.
        False: stopped during it."""
        if self.wait_until_ready is None:
            return True
        self.preparing = True
        try:
            return self.wait_until_ready(self.stopping)
        finally:
            self.preparing = False

    def _loop(self) -> None:
        c = self.config
        wait = c.max_wait_ms / 1000
        next_lag = time.monotonic()
        refresh = self.assignment.refresh_s if self.assignment is not None else 0.0
        next_refresh = time.monotonic() + refresh
        while not self.stopping.is_set():
            self.paused.resume_due(self._c(), self.assigned)
            if self.before_batch is not None:
                self.before_batch()  # e.g. swap models: atomic from the batch's point of view
            if self.tick is not None:
                self._run_tick(self.tick)
            t0 = time.perf_counter()
            messages = self._next_batch(wait)
            self.last_poll = time.monotonic()
            if messages:
                self._phase["wait"].observe(time.perf_counter() - t0)
            if messages:
                self.process(messages)
            if self.last_poll >= next_lag:
                update_lag(self._c(), self.assigned, self.config.service)
                metrics.READY.labels(c.service).set(1 if self.ready()[0] else 0)
                next_lag = self.last_poll + 5.0
            if refresh and self.last_poll >= next_refresh:
                with contextlib.suppress(KafkaException, TopicError):
                    self._assign_explicit(initial=False)
                next_refresh = self.last_poll + refresh

    def _next_batch(self, wait: float) -> list[Message]:
        return self.intake.next_batch(self._c(), wait, self.assigned)

    def _run_tick(self, tick: Callable[[], Result | None]) -> None:
        result = tick()
        if result is None:
            return
        if self.config.delivery == "exactly_once":
            committed = self._commit_transaction(result, [], {})
        else:
            committed = self._commit_at_least_once(result, [], {})
        self._settle(result, committed)

    def _settle(self, result: Result, committed: bool) -> None:
        """After a transaction: stores and the service's callbacks follow its outcome."""
        for store in self.stores:
            if committed:
                store.commit()
            else:
                store.rollback()
        if committed:
            if result.on_commit is not None:
                result.on_commit()
        elif result.on_abort is not None:
            result.on_abort()

    def process(self, messages: Sequence[Message]) -> bool:
        """Decode, handle, produce and commit one batch. False if it was aborted and rewound."""
        messages = self.intake.take_eofs(messages)
        if not messages:
            return True
        started = time.perf_counter()
        spans = tracing.batch(self.config.inputs, self.config.group_id, len(messages))
        batch = self.intake.decode(messages, spans)
        metrics.EVENTS_IN.labels(self.config.service, self.config.tenant).inc(len(messages))
        committed = False
        self._spans = spans
        result = Result()
        try:
            t_handle = time.perf_counter()
            self._phase["decode"].observe(t_handle - started)
            result = self.handle(batch.decoded) if batch.decoded else result
            self._phase["handle"].observe(time.perf_counter() - t_handle)
            result.dead_letters[:0] = batch.dead
            if self.assignment is not None:  # read again from before the committed offset
                result.dead_letters = self.marks.keep(result.dead_letters)
            offsets = [TopicPartition(t, p, o + 1) for (t, p), o in batch.last.items()]
            if self.config.delivery == "exactly_once":
                committed = self._commit_transaction(result, offsets, batch.first)
            else:
                committed = self._commit_at_least_once(result, offsets, batch.first)
        finally:
            self._spans = None
            self._settle(result, committed)
            if spans is not None:
                spans.end(committed=committed)
            if log.isEnabledFor(logging.DEBUG):  # SCORESTREAM_LOG_LEVEL=DEBUG: every batch
                log.debug(
                    "batch %s: %s",
                    "committed" if committed else "NOT committed",
                    ", ".join(
                        f"{t}[{p}]@{batch.first[(t, p)]}-{o}" for (t, p), o in batch.last.items()
                    ),
                )
        if committed:
            log_dead_letters(self.config.service, result.dead_letters)
            self.batches += 1
            count_batch(self.config, result, len(messages), started)
        return committed

    def _rewind(self, first: dict[tuple[str, int], int]) -> None:
        for (topic, partition), offset in first.items():
            if (topic, partition) in self.assigned:
                self._c().seek(TopicPartition(topic, partition, offset))

    def _commit_transaction(
        self,
        result: Result,
        offsets: list[TopicPartition],
        first: dict[tuple[str, int], int],
    ) -> bool:
        timeout = self.config.transaction_timeout_s
        committing = False
        try:
            t0 = time.perf_counter()
            self._p().begin_transaction()
            self.output.write(self._p(), self._c(), result, self._spans)
            t1 = time.perf_counter()
            with self.stall_guard.call("send_offsets_to_transaction", timeout):
                self._p().send_offsets_to_transaction(
                    offsets, self._c().consumer_group_metadata(), timeout
                )
            t2 = time.perf_counter()
            committing = True
            self._commit_with_retry()
            phase = self._phase
            phase["produce"].observe(t1 - t0)
            phase["send_offsets"].observe(t2 - t1)
            phase["commit"].observe(time.perf_counter() - t2)
            metrics.TRANSACTIONS.labels(self.config.service, "committed").inc()
            return True
        except KafkaException as exc:
            err: KafkaError = exc.args[0]
            metrics.TRANSACTIONS.labels(self.config.service, "aborted").inc()
            if err.fatal():
                self._recover_fatal(err)
                return False
            if err.txn_requires_abort() or (err.retriable() and not committing):
                # a timeout before the commit (the coordinator moving to another broker, say):
                # nothing is committed yet, so abort and replay the batch instead of exiting.
                # After a commit timeout the outcome is unknown: that one is raised.
                log.warning("aborting transaction: %s", err.str())
                try:
                    with self.stall_guard.call("abort_transaction", timeout):
                        self._p().abort_transaction(timeout)
                except KafkaException as abort_exc:
                    abort_err: KafkaError = abort_exc.args[0]
                    if not abort_err.fatal():
                        raise
                    self._recover_fatal(abort_err)  # e.g. INVALID_TXN_STATE after a node kill
                    return False
            else:
                raise
            self._rewind(first)
            return False

    def _recover_fatal(self, err: KafkaError) -> None:
        """A fatal producer error: the batch's outcome may be unknown (it fails the commit or
        the abort). A new producer with the same transactional.id fences the old one and its
        open transaction is completed or aborted before ``init_transactions`` returns; the
        group's committed offsets then say where to resume (past the batch if it committed).
        A service with keyed state exits instead (exit 1, restarted by its supervisor)."""
        if self.stores:
            # state, its changelog and the offsets agree in Kafka: a restart rebuilds from there
            raise KafkaClientError(f"fatal producer error with keyed state: {err.str()}")
        log.error("fatal producer error (%s): recreating the producer", err.str())
        self.producer = self._make_producer()
        consumer = self._c()
        assigned = [TopicPartition(t, p) for t, p in sorted(self.assigned)]
        if not assigned:
            return
        for tp in consumer.committed(assigned, timeout=self.config.transaction_timeout_s):
            offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            consumer.seek(TopicPartition(tp.topic, tp.partition, offset))

    def _commit_with_retry(self) -> None:
        for attempt in range(5):
            try:
                timeout = self.config.transaction_timeout_s
                with self.stall_guard.call("commit_transaction", timeout):
                    self._p().commit_transaction(timeout)
                return
            except KafkaException as exc:
                err: KafkaError = exc.args[0]
                if err.retriable() and attempt < 4:
                    continue
                raise

    def _commit_at_least_once(
        self,
        result: Result,
        offsets: list[TopicPartition],
        first: dict[tuple[str, int], int],
    ) -> bool:
        self.output.delivery_errors.clear()
        self.output.write(self._p(), self._c(), result, self._spans)
        remaining = self._p().flush(self.config.transaction_timeout_s)
        if remaining or self.output.delivery_errors:
            log.warning(
                "delivery failed (%s); replaying the batch", self.output.delivery_errors[:3]
            )
            self._rewind(first)
            return False
        self._c().commit(offsets=offsets, asynchronous=False)
        return True
