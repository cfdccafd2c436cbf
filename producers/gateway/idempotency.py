"""Durable, cross-replica request identity for the gateway: Idempotency-Keys and transaction ids.

Every replica of a tenant's gateway follows the compacted ``<tenant>.gateway.idempotency`` topic
from ``horizon_s`` ago and applies its records, **in log order and by the same rule**, to an
in-memory table (bounded: ``max_entries``, oldest dropped first). Two entries per request:

* ``tx/<transaction_id>``: which request (route + body fingerprint) owns the transaction id, its
  state — ``pending`` (claimed, being published), ``unknown`` (Kafka's answer was a timeout: the
  record may or may not be written), ``done`` (the response to replay) or ``released`` (it never
  reached Kafka: a retry may publish) — and its deterministic event id;
* ``key/<sha256 of the Idempotency-Key>``: the fingerprint and transaction id the key was first
  used with (a different body under the same key is refused).

A request **claims** its entries by producing ``pending`` records (acks=all) and waiting until the
follower has applied them: the first claim in the log wins, on every replica alike, so two
replicas racing for one key cannot both publish. Later records of the winning claim (``c``) are
applied in their sequence order (``n``); a record naming the current claim as ``p`` (previous)
takes an abandoned claim over (a retry resolving an outcome its first replica never learnt).

The rule is pure (:func:`apply_record`), so the table is the same on every replica and after a
restart. Nothing here knows HTTP; :mod:`producers.gateway` decides what each state answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from producers.publisher import (
    DeliveryFailedError,
    PublisherClosedError,
    PublisherError,
    PublishTimeoutError,
)
from scorestream.errors import KafkaClientError, ScorestreamError
from scorestream.kafka_config import producer_config, reader_config
from scorestream.partitioning import partition_for
from scorestream.replay import offsets_for_times, watermarks
from scorestream.settings import KafkaSettings
from scorestream.topics import REGISTRY

log = logging.getLogger("scorestream.gateway.idempotency")

PENDING = "pending"
UNKNOWN = "unknown"
DONE = "done"
RELEASED = "released"
ALIAS = "alias"
STATES = frozenset({PENDING, UNKNOWN, DONE, RELEASED, ALIAS})


class IdempotencyStoreError(ScorestreamError):
    """The durable idempotency store could not record a claim or an outcome."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One applied record: what is known about a transaction id or an Idempotency-Key."""

    claim: str
    """The id of the request that owns the entry."""
    state: str
    fingerprint: str
    created: float
    """Wall-clock seconds of the winning claim (entries expire ``horizon_s`` after it)."""
    seq: int = 0
    transaction_id: str = ""
    route: str = ""
    """``accept`` or ``score``: what a replay of a resolved outcome answers."""
    event_id: str = ""
    request_id: str = ""
    account_id: str = ""
    response: dict[str, Any] | None = None
    """``{"status", "body", "headers", "awaiting"}``: what a replay answers (state ``done``)."""
    updated: float = 0.0
    prev: str | None = field(default=None, compare=False)

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "c": self.claim,
                "p": self.prev,
                "s": self.state,
                "f": self.fingerprint,
                "t": self.created,
                "u": self.updated or self.created,
                "n": self.seq,
                "x": self.transaction_id,
                "q": self.route,
                "e": self.event_id,
                "r": self.request_id,
                "a": self.account_id,
                "o": self.response,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Entry:
        d = json.loads(raw)
        if not isinstance(d, dict) or d.get("s") not in STATES or not isinstance(d.get("c"), str):
            raise ValueError("not an idempotency record")
        response = d.get("o")
        return cls(
            claim=d["c"],
            prev=d.get("p") if isinstance(d.get("p"), str) else None,
            state=d["s"],
            fingerprint=str(d.get("f", "")),
            created=float(d.get("t", 0.0)),
            updated=float(d.get("u") or d.get("t") or 0.0),
            seq=int(d.get("n", 0)),
            transaction_id=str(d.get("x", "")),
            route=str(d.get("q", "")),
            event_id=str(d.get("e", "")),
            request_id=str(d.get("r", "")),
            account_id=str(d.get("a", "")),
            response=response if isinstance(response, dict) else None,
        )


EVENT_ID_NAMESPACE = uuid.UUID("6f1c1e52-5d0e-4c53-9d8e-5a1f0c3b7e21")

POSSIBLY_WRITTEN_CODES = frozenset(
    {
        "_MSG_TIMED_OUT",
        "_TIMED_OUT",
        "_TIMED_OUT_QUEUE",
        "REQUEST_TIMED_OUT",
        "_TRANSPORT",
        "_PURGE_INFLIGHT",
        "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
    }
)
"""Delivery errors after which the broker may have the record all the same."""


def possibly_written(exc: PublisherError) -> bool:
    """Whether the record may be in Kafka although the publish failed: a timeout, a lost
    connection or a closed publisher with the request in flight. A refusal (contract, full
    queue, authorization, too large...) is definite: nothing was written."""
    if isinstance(exc, PublishTimeoutError | PublisherClosedError):
        return True
    return isinstance(exc, DeliveryFailedError) and exc.code in POSSIBLY_WRITTEN_CODES


def derive_event_id(tenant: str, key: str | None, transaction_id: str, fp: str) -> str:
    """The CloudEvents id of a request: the same for every retry of it (tenant + Idempotency-Key,
    or transaction id without one, + the request's fingerprint), so a copy that reaches Kafka
    twice carries the same ``ce_id`` and consumers can recognise it."""
    scope, name = ("key", key) if key is not None else ("tx", transaction_id)
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, "\0".join((tenant, scope, name, fp))))


def tx_key(transaction_id: str) -> str:
    return f"tx/{transaction_id}"


def key_key(idempotency_key: str) -> str:
    """The Idempotency-Key itself is never stored: a client's key may be a secret of theirs."""
    return "key/" + hashlib.sha256(idempotency_key.encode()).hexdigest()


def apply_record(
    current: Entry | None, record: Entry | None, *, horizon_s: float
) -> tuple[Entry | None, bool]:
    """The entry after ``record`` (``None``: a tombstone), and whether the record was applied.

    Deterministic in the log's order: a new claim (no ``prev``) wins only over nothing, a released
    entry or one older than the horizon (measured on the records' own clocks); the owner's later
    records apply in sequence order; a record whose ``prev`` is the current claim takes it over.
    """
    if record is None:
        return None, True
    if current is None or current.state == RELEASED:
        fresh = record.prev is None and record.state in (PENDING, ALIAS)
        return (record, True) if fresh else (current, False)
    if record.prev is None and record.state in (PENDING, ALIAS):
        if record.claim == current.claim:
            return current, False  # the claim itself, read again
        if record.created - current.created >= horizon_s:
            return record, True  # the old entry expired
        return current, False  # lost the race: the first claim in the log owns the entry
    if record.claim == current.claim:
        if record.seq > current.seq:
            return replace(record, created=current.created), True
        return current, False
    if record.prev == current.claim:
        return replace(record, created=current.created), True
    return current, False


class IdempotencyTable:
    """The applied entries, bounded by count (oldest first) and by age (``horizon_s``)."""

    def __init__(self, *, horizon_s: float, max_entries: int) -> None:
        self.horizon_s = horizon_s
        self.max_entries = max_entries
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self.invalid = 0

    def __len__(self) -> int:
        return len(self._entries)

    def apply(self, key: str, record: Entry | None) -> bool:
        current = self._entries.get(key)
        entry, applied = apply_record(current, record, horizon_s=self.horizon_s)
        if not applied:
            return False
        if entry is None:
            self._entries.pop(key, None)
        else:
            self._entries[key] = entry
            if current is None or entry.claim != current.claim or entry.prev is None:
                self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return True

    def get(self, key: str, now: float | None = None) -> Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if (time.time() if now is None else now) - entry.created >= self.horizon_s:
            return None
        return entry


@dataclass
class _Waiter:
    partition: int
    offset: int
    future: asyncio.Future[None]


class IdempotencyStore:
    """The table above, kept by following ``<tenant>.gateway.idempotency``; writes go through a
    producer of its own (acks=all, idempotent). ``start`` returns once the table has caught up."""

    def __init__(
        self,
        *,
        kafka: KafkaSettings,
        tenant: str,
        client_id: str,
        horizon_s: float,
        max_entries: int,
    ) -> None:
        self.tenant = tenant
        self.topic = REGISTRY.topic("gateway.idempotency", tenant)
        self.table = IdempotencyTable(horizon_s=horizon_s, max_entries=max_entries)
        self._kafka = kafka
        self._client_id = client_id
        self._consumer_conf = reader_config(
            kafka,
            group_id=f"{tenant}.gateway.idempotency",
            client_id=f"{client_id}.idempotency",
            fetch_wait_ms=10,
        ) | {"auto.offset.reset": "earliest"}
        self._producer: Producer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._positions: dict[int, int] = {}
        self._waiters: list[_Waiter] = []
        self.error: str | None = None
        self.caught_up = False

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop, timeout: float = 30.0) -> None:
        """Read the topic from ``horizon_s`` ago to its end, then follow it (blocking)."""
        self._loop = loop
        consumer = Consumer(self._consumer_conf)
        try:
            meta = consumer.list_topics(self.topic, timeout=timeout).topics.get(self.topic)
            if meta is None or meta.error is not None or not meta.partitions:
                raise KafkaClientError(
                    f"topic {self.topic} is not available; create the tenant's topics with "
                    f"`scorestream topics create --tenant {self.tenant}`"
                )
            since_ms = int((time.time() - self.table.horizon_s) * 1000)
            starts = offsets_for_times(
                consumer,
                [TopicPartition(self.topic, p, since_ms) for p in meta.partitions],
                timeout=timeout,
            )
            ends: dict[int, int] = {}
            assignment: list[TopicPartition] = []
            for tp in starts:
                _, high = watermarks(
                    consumer, TopicPartition(self.topic, tp.partition), timeout=timeout
                )
                start = tp.offset if tp.offset >= 0 else high
                ends[tp.partition] = high
                self._positions[tp.partition] = start
                assignment.append(TopicPartition(self.topic, tp.partition, start))
            consumer.assign(assignment)
            deadline = time.monotonic() + max(timeout, 120.0)
            while any(self._positions[p] < end for p, end in ends.items()):
                if time.monotonic() > deadline:
                    raise KafkaClientError(f"cannot read {self.topic} to its end")
                for msg in consumer.consume(500, timeout=1.0):
                    self._ingest(msg)
        except BaseException:
            consumer.close()
            raise
        self.caught_up = True
        self._producer = Producer(
            producer_config(self._kafka, client_id=f"{self._client_id}.idempotency")
            | {"linger.ms": 0, "delivery.timeout.ms": 30_000}
        )
        log.info("idempotency table: %d entries from %s", len(self.table), self.topic)
        for target, args, name in (
            (self._follow, (consumer,), "gateway-idempotency"),
            (self._poll, (), "gateway-idempotency-poll"),
        ):
            thread = threading.Thread(target=target, args=args, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=10)
        if self._producer is not None:
            self._producer.flush(5)

    def alive(self) -> bool:
        return self.caught_up and self.error is None and all(t.is_alive() for t in self._threads)

    # -- reading -----------------------------------------------------------------------------------
    def get(self, key: str) -> Entry | None:
        return self.table.get(key)

    def _ingest(self, msg: Message) -> None:
        """Apply one record (the startup read; then on the event loop, see ``_follow``)."""
        err = msg.error()
        if err is not None:
            if err.fatal():
                raise KafkaException(err)
            if err.code() != KafkaError._PARTITION_EOF:
                log.warning("idempotency follower: %s", err.str())
            return
        partition, offset = int(msg.partition() or 0), int(msg.offset() or 0)
        self._positions[partition] = max(self._positions.get(partition, 0), offset + 1)
        raw_key, value = msg.key(), msg.value()
        if raw_key is None:
            self.table.invalid += 1
            return
        try:
            record = None if value is None else Entry.from_json(value)
        except (ValueError, TypeError, KeyError):
            self.table.invalid += 1
            return
        self.table.apply(raw_key.decode(errors="replace"), record)

    def _follow(self, consumer: Consumer) -> None:
        try:
            while not self._stopping.is_set():
                batch = consumer.consume(num_messages=1, timeout=0.1)
                if batch:
                    batch += consumer.consume(num_messages=499, timeout=0)
                    loop = self._loop
                    if loop is not None and not loop.is_closed():
                        loop.call_soon_threadsafe(self._apply_batch, batch)
        except Exception as exc:  # the thread must report, not vanish
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("idempotency follower failed")
        finally:
            consumer.close()

    def _apply_batch(self, batch: list[Message]) -> None:
        for msg in batch:
            self._ingest(msg)
        still: list[_Waiter] = []
        for w in self._waiters:
            if self._positions.get(w.partition, 0) > w.offset:
                if not w.future.done():
                    w.future.set_result(None)
            else:
                still.append(w)
        self._waiters = still

    def _poll(self) -> None:
        while not self._stopping.is_set():
            if self._producer is not None:
                with contextlib.suppress(KafkaException):
                    self._producer.poll(0.05)

    # -- writing -----------------------------------------------------------------------------------
    async def write(self, key: str, entry: Entry) -> tuple[int, int]:
        """Produce ``entry`` under ``key`` and wait for acks=all: (partition, offset)."""
        producer = self._producer
        loop = asyncio.get_running_loop()
        if producer is None:
            raise IdempotencyStoreError("the idempotency store is not started")
        acked: asyncio.Future[tuple[int, int]] = loop.create_future()

        def settle(fut: asyncio.Future[tuple[int, int]], result: tuple[int, int] | str) -> None:
            if fut.done():
                return
            if isinstance(result, str):
                fut.set_exception(IdempotencyStoreError(result))
            else:
                fut.set_result(result)

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            result: tuple[int, int] | str = (
                f"not recorded in {self.topic}: {err.str()}"
                if err is not None
                else (int(msg.partition() or 0), int(msg.offset() or 0))
            )
            if not loop.is_closed():
                loop.call_soon_threadsafe(settle, acked, result)

        try:
            producer.produce(
                self.topic, key=key.encode(), value=entry.to_json(), on_delivery=on_delivery
            )
        except (BufferError, KafkaException) as exc:
            raise IdempotencyStoreError(f"cannot write to {self.topic}: {exc}") from exc
        return await acked

    async def record(self, key: str, entry: Entry) -> None:
        """An owner's update: applied here at once (the log applies it again, a no-op), then
        written; it is durable once this returns."""
        self.table.apply(key, entry)
        await self.write(key, entry)

    async def claim(self, claims: dict[str, Entry]) -> dict[str, Entry | None]:
        """Produce the claims, wait until the follower has applied them, and return the entries
        that won (each either the claim itself or whoever claimed first)."""
        loop = asyncio.get_running_loop()
        offsets = await asyncio.gather(*(self.write(k, e) for k, e in claims.items()))
        pending: list[asyncio.Future[None]] = []
        for partition, offset in offsets:
            if self._positions.get(partition, 0) > offset:
                continue
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.append(_Waiter(partition, offset, future))
            pending.append(future)
        if pending:
            await asyncio.gather(*pending)
        return {k: self.table.get(k) for k in claims}


def find_event(
    kafka: KafkaSettings,
    tenant: str,
    account_id: str,
    event_id: str,
    since_ms: int,
    client_id: str,
    timeout: float = 10.0,
) -> tuple[str, int, int, str] | None:
    """Whether event ``event_id`` (key ``account_id``) is in ``<tenant>.transactions``: its
    (topic, partition, offset, traceparent), or None when the partition, read from ``since_ms``
    to its end, does not hold it. Raises KafkaException while Kafka does not answer."""
    topic = REGISTRY.topic("transactions", tenant)
    consumer = Consumer(
        reader_config(kafka, group_id=f"{tenant}.gateway.resolve", client_id=f"{client_id}.resolve")
        | {"enable.partition.eof": True}
    )
    try:
        meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            raise KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, topic))
        partition = partition_for(account_id.encode(), len(meta.partitions))
        tp = TopicPartition(topic, partition)
        _, high = watermarks(consumer, tp, timeout=timeout)
        [start] = offsets_for_times(
            consumer, [TopicPartition(topic, partition, max(0, since_ms))], timeout=timeout
        )
        if start.offset < 0 or start.offset >= high:
            return None
        consumer.assign([TopicPartition(topic, partition, start.offset)])
        wanted = event_id.encode()
        while True:
            batch = consumer.consume(500, timeout=timeout)
            if not batch:
                raise KafkaException(KafkaError(KafkaError._TIMED_OUT, f"reading {topic}"))
            for msg in batch:
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        return None
                    raise KafkaException(err)
                headers = dict(msg.headers() or [])
                if headers.get("ce_id") == wanted:
                    trace = headers.get("traceparent") or b""
                    text = trace.decode() if isinstance(trace, bytes) else trace
                    return topic, partition, int(msg.offset() or 0), text
                if int(msg.offset() or 0) >= high - 1:
                    return None
    finally:
        consumer.close()
