"""Consume → handle → produce, exactly once: the Kafka loop every consuming service shares.

A service supplies a *handler* — a function from a batch of decoded envelopes to a
:class:`Result` (events to emit, dead letters) — and the processor does the rest, as in
confluent-kafka's ``eos_transactions.py``: batch consume with cooperative-sticky rebalancing and
``read_committed``; one Kafka transaction per batch holding the outputs, the dead letters and
the consumer offsets; abort and rewind on abortable errors; recreate the producer when fenced.
At-least-once is a setting (idempotent producer, offsets committed after delivery).

Exactly one batch is in flight, so the producer queue is bounded by one batch; should it fill
anyway, the assigned partitions are paused until it drains. Records that cannot be decoded (or
whose key is not their event's key, for the contracts a service declares ``keyed``) never reach
the handler: they go to the input's DLQ with the reason. A dead letter never fails its batch:
one too large to be copied is written as a pointer to the original (:mod:`scorestream.dlq`).
``/livez``, ``/readyz`` and ``/metrics`` are served when a health port is set. SIGTERM finishes
and commits the current batch, leaves the group and returns.

Services extend it through public hooks only (no subclass overrides a private method):
``stores`` (keyed state stores restored on assignment, whose changes join each transaction),
``on_assigned`` / ``on_revoked`` / ``on_lost``, ``before_batch``, ``tick`` (a transaction of its
own between batches, e.g. timeouts while no input arrives) and :class:`OutRecord` outputs (raw
bytes with an explicit partition, timestamp or a tombstone).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from schemas.cloudevents import Envelope, Outgoing, encode_many, utc_time
from schemas.events import Contract
from scorestream import metrics, tracing
from scorestream.admin import require_topics
from scorestream.codec import BatchDecoder
from scorestream.dlq import DeadLetter, fits
from scorestream.errors import KafkaClientError
from scorestream.health import HealthServer
from scorestream.kafka_config import consumer_config, producer_config, transactional_producer_config
from scorestream.logs import redact
from scorestream.settings import KafkaSettings
from scorestream.stall_guard import StallGuard
from scorestream.state import StateStore
from scorestream.topics import MAX_MESSAGE_BYTES, REGISTRY

log = logging.getLogger("scorestream.processor")

Delivery = Literal["exactly_once", "at_least_once"]
Check = Callable[[], tuple[bool, str]]


@dataclass(frozen=True, slots=True)
class Emit:
    """One event to produce; ``trace`` carries the W3C context of the event it derives from.

    With tracing on, the processor starts a ``send`` span under that input's ``process`` span
    and puts the send span's context on the record instead, so the next hop is its child."""

    topic: str
    event: Contract
    trace: Mapping[str, str] | None = None
    extensions: Mapping[str, str] | None = None
    """CloudEvents extensions (``ce_<name>`` headers), e.g. ``replyto`` for request-reply."""
    partition: int | None = None
    """Explicit partition (request-reply); ``None`` partitions by the event's key."""
    value: bytes | None = None
    """The event's JSON when the service built it already (must decode to ``event``)."""


@dataclass(frozen=True, slots=True)
class OutRecord:
    """A record produced as is: bytes decided by the service, an explicit partition and record
    timestamp when set, ``value=None`` for a tombstone."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes | None]] = ()
    partition: int | None = None
    timestamp_ms: int | None = None
    fallback: DeadLetter | None = None
    """Written instead when the record cannot be produced because it is too large (e.g. a
    copy of an input record with a header added: the input's own limit let it in), so that it
    never fails its batch."""


@dataclass(slots=True)
class Result:
    emits: list[Emit] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    records: list[OutRecord] = field(default_factory=list)
    """Raw outputs (written after ``emits``, in order)."""
    on_commit: Callable[[], None] | None = None
    """Called once the batch's transaction committed (count metrics here, not before)."""
    on_abort: Callable[[], None] | None = None
    """Called when the batch's transaction aborted (roll back in-memory state here)."""


@dataclass(frozen=True, slots=True)
class ProcessorConfig:
    service: str
    tenant: str
    group_id: str
    instance_id: str
    inputs: tuple[str, ...]
    accept: tuple[type[Contract], ...]
    dlq_topics: Mapping[str, str]
    """Input topic → its dead-letter topic."""
    delivery: Delivery = "exactly_once"
    max_batch: int = 500
    max_wait_ms: int = 20
    adaptive_batching: bool = True
    """Wait up to ``max_wait_ms`` for the first record only, then take what is fetched;
    False: wait for a full ``max_batch`` or ``max_wait_ms`` (the old behaviour, for A/B)."""
    transaction_timeout_s: float = 30.0
    session_timeout_ms: int = 10_000
    max_poll_interval_ms: int = 120_000
    health_port: int = 0
    live_after_s: float = 60.0
    consumer_overrides: Mapping[str, Any] = field(default_factory=dict)
    """Extra consumer settings, e.g. ``partition.assignment.strategy=range`` for co-partitioned
    joins."""
    keyed: tuple[type[Contract], ...] = ()
    """Contracts whose record key must equal the event's key (``partition_key()``, e.g. the
    account id): a record keyed otherwise goes to its input's DLQ as ``key_mismatch`` in the
    decode step, before the handler (``scorestream.serde.check_key``)."""
    max_message_bytes: int = MAX_MESSAGE_BYTES
    """The DLQ topics' ``max.message.bytes``: a dead letter whose copy would not fit is written
    as a pointer to the original (``scorestream.dlq``)."""

    @classmethod
    def for_service(
        cls,
        settings: object,
        *,
        service: str,
        inputs: tuple[str, ...],
        accept: tuple[type[Contract], ...],
        dlq_topics: Mapping[str, str],
        **overrides: Any,
    ) -> ProcessorConfig:
        """Build the config from a service's settings object: the tuning fields every service
        settings class shares (tenant, instance_id, group_id, delivery, max_batch, max_wait_ms,
        transaction/session/poll timeouts, health_port, live_after_s) are read by name; absent
        ones keep the defaults."""
        fields = (
            "delivery",
            "max_batch",
            "max_wait_ms",
            "adaptive_batching",
            "transaction_timeout_s",
            "session_timeout_ms",
            "max_poll_interval_ms",
            "health_port",
            "live_after_s",
        )
        tenant: str = getattr(settings, "tenant")  # noqa: B009  (settings is duck-typed)
        values: dict[str, Any] = {f: getattr(settings, f) for f in fields if hasattr(settings, f)}
        values |= overrides
        return cls(
            service=service,
            tenant=tenant,
            group_id=getattr(settings, "group_id", f"{tenant}.{service}"),
            instance_id=getattr(settings, "instance_id", f"{service}-0"),
            inputs=inputs,
            accept=accept,
            dlq_topics=dlq_topics,
            **values,
        )

    @property
    def transactional_id(self) -> str:
        return f"{self.tenant}.{self.service}.{self.instance_id}"

    @property
    def source(self) -> str:
        return f"scorestream/{self.service}"


Handler = Callable[[list[Envelope[Any]]], Result]
PartitionsHook = Callable[[list[TopicPartition]], None]


MAX_DLQ_LOG_LINES = 20
"""Dead letters logged one by one per batch; the rest are counted in one line (and metrics)."""


def log_dead_letters(service: str, dead: Sequence[DeadLetter]) -> None:
    """One warning per dead letter with where it came from, its event and trace ids and the
    reason — never its payload (the key is logged through the redaction layer)."""
    for dl in dead[:MAX_DLQ_LOG_LINES]:
        raw = dl.raw
        trace_id, span_id = tracing.trace_ids(raw.headers)
        event_id = tracing.GETTER.get(raw.headers, "ce_id")
        log.warning(
            "dead-lettered %s[%s]@%s: %s",
            raw.topic,
            raw.partition,
            raw.offset,
            dl.reason,
            extra={
                "event_id": event_id[0] if event_id else None,
                "trace_id": trace_id,
                "span_id": span_id,
                "reason": dl.reason,
                "error": dl.error,
                "detail": dl.message[:500],
                "key": raw.key,
            },
        )
    if len(dead) > MAX_DLQ_LOG_LINES:
        log.warning(
            "%d more dead letters in this batch",
            len(dead) - MAX_DLQ_LOG_LINES,
            extra={"service_name": service},
        )


def freeze_startup_heap() -> None:
    """Move every object alive now (modules, contract schemas, the model, the clients) out of
    the garbage collector's reach. Each batch allocates thousands of short-lived containers, so
    full collections run often, and each walked this whole start-up heap although none of it is
    garbage; after ``gc.freeze()`` (documented for pre-fork servers) they walk only what was
    created since. Measured in bench/: see the README's Performance section."""
    gc.collect()
    gc.freeze()


BACKGROUND_FETCH_MIN_BYTES = 1 << 20


def fetch_settings(c: ProcessorConfig) -> dict[str, int]:
    """How the broker answers this consumer's fetches. Adaptive batching (a service a request
    waits for): at once, with whatever arrived. Fixed batches (a service off the request's
    path): when 1 MiB is there or ``max_wait_ms`` passed, so the broker sends one response per
    batch interval instead of one per transaction committed upstream (measured: broker CPU and
    every hop's commit time drop; README, Performance)."""
    if c.adaptive_batching:
        return {"fetch.wait.max.ms": min(100, c.max_wait_ms * 2)}
    return {"fetch.wait.max.ms": c.max_wait_ms, "fetch.min.bytes": BACKGROUND_FETCH_MIN_BYTES}


@dataclass(slots=True)
class _Batch:
    """A consumed batch: the decoded events, the undecodable ones, and each input partition's
    first and last offset in it."""

    decoded: list[Envelope[Any]] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    first: dict[tuple[str, int], int] = field(default_factory=dict)
    last: dict[tuple[str, int], int] = field(default_factory=dict)


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
        """Where a batch's time goes (the per-hop latency budget of the README)."""
        self.decoder = BatchDecoder(config.accept, keyed=config.keyed)
        """The batch codec: envelopes and dead letters from a consumed batch."""
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
        self._delivery_errors: list[str] = []
        self._spans: tracing.BatchTrace | None = None
        """The spans of the batch being produced (None when tracing is off)."""
        self._revoked_during_consume: set[tuple[str, int]] = set()
        """Partitions revoked or lost by rebalance callbacks while the current batch is fetched."""
        self._on_delivery: Callable[[KafkaError | None, Message], None] | None = (
            None if config.delivery == "exactly_once" else self._dr
        )
        """Per-record delivery reports are needed at least once only: in a transaction, a record
        the broker refuses fails ``commit_transaction`` (and the batch is replayed), so a Python
        callback per record would only cost time."""

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
        self._revoked_during_consume |= {(p.topic, p.partition) for p in partitions}
        for p in partitions:
            with contextlib.suppress(KeyError):
                metrics.CONSUMER_LAG.remove(self.config.service, p.topic, str(p.partition))
        self._release(partitions, checkpoint=True)
        if self.on_revoked is not None:
            self.on_revoked(partitions)
        log.info("revoked %s", sorted(f"{p.topic}[{p.partition}]" for p in partitions))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.assigned -= {(p.topic, p.partition) for p in partitions}
        self._revoked_during_consume |= {(p.topic, p.partition) for p in partitions}
        self.joined = False
        self._release(partitions, checkpoint=False)
        if self.on_lost is not None:
            self.on_lost(partitions)
        log.warning("lost %s (session expired): an open transaction will be fenced", partitions)

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
            self.producer = self._make_producer()
            self.consumer = self._make_consumer()
            require_topics(self.consumer, self.required_topics(), tenant=self.config.tenant)
            self.consumer.subscribe(
                list(self.config.inputs),
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
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
        while not self.stopping.is_set():
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
                self._update_lag()
                metrics.READY.labels(c.service).set(1 if self.ready()[0] else 0)
                next_lag = self.last_poll + 5.0

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

    def _take_eofs(self, messages: Sequence[Message]) -> Sequence[Message]:
        """End-of-partition events (``enable.partition.eof``) go to ``on_eof``, not into the
        batch: "this input partition has nothing more to read right now"."""
        if not any(m.error() is not None for m in messages):
            return messages
        kept = []
        for msg in messages:
            err = msg.error()
            if err is not None and err.code() == KafkaError._PARTITION_EOF:
                if self.on_eof is not None:
                    self.on_eof(msg.topic() or "", msg.partition() or 0)
                continue
            kept.append(msg)
        return kept

    def _next_batch(self, wait: float) -> list[Message]:
        """The next batch; never a record of a partition revoked while it was being fetched.

        Adaptive batching: block up to ``max_wait`` for the first record only, then take what
        is already fetched without waiting (low load: no batching delay; under load the queue
        fills while a batch is processed, so batches grow to ``max_batch``).
        ``consume(max_batch, wait)`` instead holds every record back for the whole wait unless
        a full batch is queued (measured: ~20 ms per hop).

        Exactly-once needs care here: rebalance callbacks run inside ``consume()``. Within one
        call librdkafka drops from the batch it builds the records of a partition revoked
        during that call, but the record returned by the *first* call cannot be recalled when a
        callback of the *second* revokes its partition. Processing it anyway committed it twice
        (its new owner, or this consumer re-assigned, re-read it from the committed offset).
        So the callbacks record what they revoke while the batch is assembled, and those
        partitions' records are dropped (``_drop_revoked``;
        docs/adr/0002-no-record-of-a-revoked-partition.md)."""
        c = self.config
        consumer = self._c()
        self._revoked_during_consume.clear()
        if c.adaptive_batching:
            messages = consumer.consume(num_messages=1, timeout=wait)
            if messages and c.max_batch > 1:
                messages += consumer.consume(num_messages=c.max_batch - 1, timeout=0)
        else:
            messages = consumer.consume(num_messages=c.max_batch, timeout=wait)
        if self._revoked_during_consume and messages:
            messages = self._drop_revoked(messages)
        return messages

    def _drop_revoked(self, messages: list[Message]) -> list[Message]:
        """Leave out the records of partitions revoked or lost while this batch was fetched:
        they are not ours to process (their owner reads them from the committed offset). A
        partition re-assigned to us meanwhile is rewound to its committed offset, so that
        nothing of it is skipped."""
        revoked = self._revoked_during_consume
        kept = [m for m in messages if (m.topic() or "", m.partition() or 0) not in revoked]
        dropped = {(m.topic() or "", m.partition() or 0) for m in messages} & revoked
        log.warning(
            "dropped %d record(s) of %s: revoked while the batch was fetched",
            len(messages) - len(kept),
            sorted(f"{t}[{p}]" for t, p in dropped),
        )
        again = [TopicPartition(t, p) for t, p in sorted(dropped & self.assigned)]
        if again:
            for tp in self._c().committed(again, timeout=30):
                offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
                self._c().seek(TopicPartition(tp.topic, tp.partition, offset))
        return kept

    def process(self, messages: Sequence[Message]) -> bool:
        """Decode, handle, produce and commit one batch. False if it was aborted and rewound."""
        messages = self._take_eofs(messages)
        if not messages:
            return True
        started = time.perf_counter()
        spans = tracing.batch(self.config.inputs, self.config.group_id, len(messages))
        batch = self._decode(messages, spans)
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
            self._count(result, len(messages), started)
        return committed

    def _decode(self, messages: Sequence[Message], spans: tracing.BatchTrace | None) -> _Batch:
        batch = _Batch()
        first, last = batch.first, batch.last
        for msg in messages:
            err = msg.error()
            if err is not None:
                raise KafkaException(err)
            tp = (msg.topic() or "", msg.partition() or 0)
            if tp not in first:
                first[tp] = msg.offset() or 0
            last[tp] = msg.offset() or 0
        batch.decoded, batch.dead, positions = self.decoder.decode(messages)
        if spans is not None:
            for env, i in zip(batch.decoded, positions, strict=True):
                msg = messages[i]
                spans.consumed(
                    env.trace,
                    topic=msg.topic(),
                    partition=msg.partition(),
                    offset=msg.offset(),
                    key=msg.key(),
                    message_id=env.id,
                )
        return batch

    # -- producing ---------------------------------------------------------------------------------
    def _produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[Any],
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        extra: dict[str, Any] = {} if partition is None else {"partition": partition}
        if timestamp_ms is not None:
            extra["timestamp"] = timestamp_ms
        if self._on_delivery is not None:
            extra["on_delivery"] = self._on_delivery
        try:
            self._p().produce(topic, value=value, key=key, headers=headers, **extra)
        except BufferError:
            paused = self._c().assignment()
            self._c().pause(paused)  # stop fetching while the queue drains
            try:
                while True:
                    self._p().poll(0.05)
                    try:
                        self._p().produce(topic, value=value, key=key, headers=headers, **extra)
                        break
                    except BufferError:
                        continue
            finally:
                self._c().resume(paused)

    def _dr(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._delivery_errors.append(f"{msg.topic()}: {err.str()}")

    def _produce_result(self, result: Result) -> None:
        """Encode every output first, then hand them to the producer in one tight loop: the
        producer registers a transaction's partitions with the coordinator when the first
        record of a partition arrives and allows one registration request in flight, so
        partitions that trickle in while records are still being encoded cost a second
        registration round trip (on which ``send_offsets_to_transaction`` then waits)."""
        source = self.config.source
        spans = self._spans
        when = utc_time()  # the batch's events are stamped (ce_time) once
        emits = result.emits
        if spans is None:
            items: list[Outgoing] = [(e.event, e.trace, e.extensions, e.value) for e in emits]
        else:  # a send span under the message each output derives from
            items = [
                (
                    e.event,
                    spans.sending(
                        e.topic,
                        e.trace,
                        key=e.event.partition_key().encode(),
                        partition=e.partition,
                    ),
                    e.extensions,
                    e.value,
                )
                for e in emits
            ]
        out: list[tuple[str, bytes | None, bytes | None, list[Any], int | None, int | None]] = [
            (e.topic, m.key, m.value, m.headers, e.partition, None)
            for e, m in zip(emits, encode_many(items, source=source, time=when), strict=True)
        ]
        service = self.config.service
        max_bytes = self.config.max_message_bytes
        records = self._divert_oversized(result)
        dead: dict[int, DeadLetter] = {}
        for dl in result.dead_letters:
            topic = self._dlq_topic(dl)
            if spans is not None:
                spans.dead_letter(dl.raw.headers, topic, dl.reason)
            copy = dl.record(service, max_bytes=max_bytes)
            dead[len(out)] = dl
            out.append((topic, copy.key, copy.value, copy.headers, None, None))
        for rec in records:
            if rec.fallback is not None:
                dead[len(out)] = rec.fallback
            out.append(
                (rec.topic, rec.key, rec.value, list(rec.headers), rec.partition, rec.timestamp_ms)
            )
        for store in self.stores:
            for ch in store.changelog_records():
                out.append((ch.topic, ch.key, ch.value, [], ch.partition, None))
        self._produce_all(out, dead, result)

    def _divert_oversized(self, result: Result) -> list[OutRecord]:
        """The raw outputs to produce; one too large for its topic, with a fallback, is replaced
        by that dead letter (added to ``result.dead_letters``)."""
        max_bytes = self.config.max_message_bytes
        records: list[OutRecord] = []
        for rec in result.records:
            if rec.fallback is not None and not fits(rec.key, rec.value, rec.headers, max_bytes):
                result.dead_letters.append(rec.fallback)
            else:
                records.append(rec)
        result.records = records
        return records

    def _produce_all(
        self,
        out: list[tuple[str, bytes | None, bytes | None, list[Any], int | None, int | None]],
        dead: dict[int, DeadLetter],
        result: Result,
    ) -> None:
        service = self.config.service
        max_bytes = self.config.max_message_bytes
        produce = self._produce
        # the common record (partitioned by key, no timestamp, no delivery callback) goes to
        # the client directly; a full queue and every other record take ``_produce``
        direct = self._p().produce if self._on_delivery is None else None
        for i, record in enumerate(out):
            try:
                if direct is not None and record[4] is None and record[5] is None:
                    try:
                        direct(record[0], value=record[2], key=record[1], headers=record[3])
                    except BufferError:
                        produce(*record)
                else:
                    produce(*record)
            except KafkaException as exc:
                # a dead letter must never fail its batch: should the producer still find the
                # copy (or an output with a fallback) too large, write the pointer
                refused = dead.get(i)
                if refused is None or exc.args[0].code() != KafkaError.MSG_SIZE_TOO_LARGE:
                    raise
                ptr = refused.pointer(service, max_bytes=max_bytes)
                produce(self._dlq_topic(refused), ptr.key, ptr.value, ptr.headers)
                if refused not in result.dead_letters:
                    result.dead_letters.append(refused)

    def _dlq_topic(self, dl: DeadLetter) -> str:
        return self.config.dlq_topics.get(dl.raw.topic or "") or next(
            iter(self.config.dlq_topics.values())
        )

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
            self._produce_result(result)
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
        self._delivery_errors.clear()
        self._produce_result(result)
        remaining = self._p().flush(self.config.transaction_timeout_s)
        if remaining or self._delivery_errors:
            log.warning("delivery failed (%s); replaying the batch", self._delivery_errors[:3])
            self._rewind(first)
            return False
        self._c().commit(offsets=offsets, asynchronous=False)
        return True

    # -- metrics -----------------------------------------------------------------------------------
    def _count(self, result: Result, n: int, started: float) -> None:
        c = self.config
        metrics.BATCH_SIZE.labels(c.service).observe(n)
        metrics.BATCH_SECONDS.labels(c.service).observe(time.perf_counter() - started)
        per_topic: dict[str, int] = {}
        for emit in result.emits:
            per_topic[emit.topic] = per_topic.get(emit.topic, 0) + 1
        for topic, count in per_topic.items():
            stream = topic.removeprefix(f"{c.tenant}.")
            metrics.EVENTS_OUT.labels(c.service, c.tenant, stream).inc(count)
        for dl in result.dead_letters:
            metrics.DLQ.labels(c.service, c.tenant, dl.reason).inc()

    def _update_lag(self) -> None:
        try:
            positions = self._c().position([TopicPartition(t, p) for t, p in self.assigned])
        except KafkaException:
            return
        for tp in positions:
            _, high = self._c().get_watermark_offsets(tp, cached=True)
            if tp.offset >= 0 and high >= 0:
                metrics.CONSUMER_LAG.labels(self.config.service, tp.topic, str(tp.partition)).set(
                    max(0, high - tp.offset)
                )
