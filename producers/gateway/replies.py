"""Request-reply over Kafka for the gateway: one reply partition per replica.

Each gateway replica owns ONE partition ``P`` of ``<tenant>.replies``. Before publishing a
transaction for synchronous scoring it generates a **request id** (random, never chosen by a
client), registers a future under it and sets the CloudEvents extensions
``replyto=<tenant>.replies/P`` and ``requestid=<id>``. Every hop carries the extensions forward;
the decision service, seeing ``replyto``, also writes the ``DecisionEvent`` (with the extensions)
to that topic and partition (in the same Kafka transaction as its ``decisions`` output). This
replica reads only partition ``P``, with ``assign()`` (no consumer group, no rebalances, no
commits), ``read_committed``, starting at the partition's end when it starts, and completes the
future of the reply's request id. A reply is matched **only** by its request id, never by its
``transaction_id``: another client that sends the same transaction id (or publishes to Kafka with a
``replyto`` of its own) cannot receive, or overwrite, someone else's decision. Replies without a
request id are counted and dropped. Replies that find no waiter (deadline passed, another
replica's earlier life on this partition) are kept briefly, by request id, so a retry of the same
request finds them.

The same consumer also follows the tenant's compacted ``<tenant>.model-events`` topic from its
beginning, to know which model version is the tenant's champion (for the V2 model metadata and
readiness); an event there that names another tenant is ignored, logged and counted.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict

from confluent_kafka import OFFSET_END, Consumer, KafkaException, Message, TopicPartition

from producers.gateway.http import REPLIES
from schemas.catalog import MODEL_EVENT_TYPES
from schemas.errors import DecodeError
from schemas.events import DecisionEvent, ModelAlias
from scorestream.errors import ConfigError, KafkaClientError
from scorestream.kafka_config import reader_config
from scorestream.model_events import ModelState, promotions_topic
from scorestream.partitioning import partition_for
from scorestream.replay import offsets_for_times, watermarks
from scorestream.serde import decode_message
from scorestream.settings import KafkaSettings
from scorestream.topics import REGISTRY

log = logging.getLogger("scorestream.gateway.replies")


REQUEST_ID = "requestid"
"""The CloudEvents extension (``ce_requestid`` header) that correlates a reply with its request."""


class ReplyRouter:
    """Matches ``DecisionEvent`` replies to waiting requests by request id (``ce_requestid``).

    ``register``/``unregister``/``recent`` run on the event loop; the consumer thread hands each
    reply to the loop with ``call_soon_threadsafe``, so the waiter maps need no lock.
    """

    def __init__(
        self,
        *,
        kafka: KafkaSettings,
        tenant: str,
        partition: int,
        model_name: str,
        client_id: str,
        recent_max: int = 10_000,
        recent_ttl_s: float = 600.0,
    ) -> None:
        self.tenant = tenant
        self.topic = REGISTRY.topic("replies", tenant)
        self.partition = partition
        self.model_name = model_name
        self.replyto = f"{self.topic}/{partition}"
        self._conf = reader_config(
            kafka, group_id=f"{tenant}.gateway.replies", client_id=client_id
        ) | {"auto.offset.reset": "latest"}
        self._waiters: dict[str, list[asyncio.Future[DecisionEvent]]] = {}
        self._recent: OrderedDict[str, tuple[float, DecisionEvent]] = OrderedDict()
        self.recent_max = recent_max
        self.recent_ttl_s = recent_ttl_s
        self.models = ModelState(tenant, service="gateway")
        self.models_topic = promotions_topic(tenant)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.assigned = False
        self.error: str | None = None
        self.last_poll = time.monotonic()

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop, timeout: float = 30.0) -> None:
        """Assign the reply partition at its current end (and model-events from the start)."""
        self._loop = loop
        consumer = Consumer(self._conf)
        try:
            md = consumer.list_topics(timeout=timeout)
            meta = md.topics.get(self.topic)
            if meta is None or meta.error is not None:
                raise KafkaClientError(
                    f"reply topic {self.topic} does not exist; create the tenant's topics with "
                    f"`scorestream topics create --tenant {self.tenant}`"
                )
            if self.partition not in meta.partitions:
                raise ConfigError(
                    f"reply partition {self.partition} does not exist: {self.topic} has "
                    f"{len(meta.partitions)} partitions (0..{len(meta.partitions) - 1}); set "
                    "SCORESTREAM_GATEWAY_REPLY_PARTITION to one of them"
                )
            # an explicit offset, not OFFSET_END: a reply produced after this instant is never
            # skipped, because readiness (and so the first request) waits for this assignment
            _, high = watermarks(
                consumer, TopicPartition(self.topic, self.partition), timeout=timeout
            )
            assignment = [TopicPartition(self.topic, self.partition, high)]
            events = md.topics.get(self.models_topic)
            if events is not None and events.error is None:
                assignment += [
                    TopicPartition(self.models_topic, p, -2)  # OFFSET_BEGINNING
                    for p in events.partitions
                ]
            else:
                log.warning("topic %s not found: model metadata unavailable", self.models_topic)
            consumer.assign(assignment)
        except BaseException:
            consumer.close()
            raise
        self.assigned = True
        log.info("reading replies from %s at offset %d", self.replyto, high)
        self._thread = threading.Thread(
            target=self._run, args=(consumer,), name="gateway-replies", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self.error is None

    def champion_version(self) -> str | None:
        promoted = self.models.serving(self.tenant, self.model_name, ModelAlias.CHAMPION)
        return promoted.model_version if promoted is not None else None

    # -- the consumer thread -----------------------------------------------------------------------
    def _run(self, consumer: Consumer) -> None:
        try:
            while not self._stopping.is_set():
                self.last_poll = time.monotonic()
                # block for the first record only, then drain what is fetched: consume(500,
                # 0.1) held every reply back until the 100 ms timeout (bench/e2e.py)
                batch = consumer.consume(num_messages=1, timeout=0.1)
                if batch:
                    batch += consumer.consume(num_messages=499, timeout=0)
                for msg in batch:
                    err = msg.error()
                    if err is not None:
                        if err.fatal():
                            raise KafkaException(err)
                        log.warning("reply consumer: %s", err.str())
                        continue
                    if msg.topic() == self.models_topic:
                        self._model_event(msg)
                    else:
                        self._reply(msg)
        except Exception as exc:  # the thread must report, not vanish
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("reply consumer failed")
        finally:
            consumer.close()

    def _model_event(self, msg: Message) -> None:
        try:
            event = decode_message(msg, accept=MODEL_EVENT_TYPES).event
            self.models.apply(event, topic=self.models_topic)
        except DecodeError:
            self.models.invalid += 1

    def _reply(self, msg: Message) -> None:
        try:
            env = decode_message(msg, accept=[DecisionEvent])
        except DecodeError as exc:
            REPLIES.labels(self.tenant, "invalid").inc()
            log.warning("undecodable reply skipped: %s", exc.describe())
            return
        decision = env.event
        request_id = env.extensions.get(REQUEST_ID)
        if not request_id:
            REPLIES.labels(self.tenant, "uncorrelated").inc()
            return
        if decision.tenant_id != self.tenant:
            REPLIES.labels(self.tenant, "invalid").inc()
            log.warning("reply of tenant %s skipped", decision.tenant_id)
            return
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._deliver, request_id, decision)

    # -- on the event loop ------------------------------------------------------------------------
    def _deliver(self, request_id: str, decision: DecisionEvent) -> None:
        now = time.monotonic()
        self._recent[request_id] = (now, decision)
        self._recent.move_to_end(request_id)
        while self._recent:
            oldest_at, _ = next(iter(self._recent.values()))
            if len(self._recent) <= self.recent_max and now - oldest_at < self.recent_ttl_s:
                break
            self._recent.popitem(last=False)
        waiters = self._waiters.pop(request_id, [])
        matched = False
        for future in waiters:
            if not future.done():
                future.set_result(decision)
                matched = True
        REPLIES.labels(self.tenant, "matched" if matched else "late").inc()

    def register(self, request_id: str) -> asyncio.Future[DecisionEvent]:
        """A future for the decision of the request ``request_id``. Register BEFORE publishing."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[DecisionEvent] = loop.create_future()
        known = self.recent(request_id)
        if known is not None:
            future.set_result(known)
        else:
            self._waiters.setdefault(request_id, []).append(future)
        return future

    def unregister(self, request_id: str, future: asyncio.Future[DecisionEvent]) -> None:
        waiters = self._waiters.get(request_id)
        if waiters is None:
            return
        if future in waiters:
            waiters.remove(future)
        if not waiters:
            del self._waiters[request_id]

    def recent(self, request_id: str) -> DecisionEvent | None:
        item = self._recent.get(request_id)
        if item is None or time.monotonic() - item[0] >= self.recent_ttl_s:
            return None
        return item[1]

    @property
    def waiting(self) -> int:
        return sum(len(w) for w in self._waiters.values())


def find_decision(
    kafka: KafkaSettings,
    tenant: str,
    account_id: str,
    request_id: str,
    *,
    since_ms: int,
    until: float,
    stop: threading.Event,
    client_id: str,
) -> DecisionEvent | None:
    """The decision of request ``request_id`` from ``<tenant>.decisions``, for a retry that
    reaches a replica other than the one that published it (the reply went to that replica's
    partition). Reads the account's partition (``read_committed``) from ``since_ms`` and follows
    it until the decision appears, ``until`` (``time.monotonic``) or ``stop``; None otherwise.
    The decision carries the request's extensions, so it is matched by ``ce_requestid`` alone."""
    topic = REGISTRY.topic("decisions", tenant)
    consumer = Consumer(
        reader_config(
            kafka,
            group_id=f"{tenant}.gateway.decision-lookup",
            client_id=f"{client_id}.decision-lookup",
        )
    )
    wanted = request_id.encode()
    try:
        timeout = max(0.5, until - time.monotonic())
        meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            return None
        partition = partition_for(account_id.encode(), len(meta.partitions))
        [start] = offsets_for_times(
            consumer, [TopicPartition(topic, partition, max(0, since_ms))], timeout=timeout
        )
        offset = start.offset if start.offset >= 0 else OFFSET_END
        consumer.assign([TopicPartition(topic, partition, offset)])
        while not stop.is_set() and time.monotonic() < until:
            for msg in consumer.consume(500, timeout=min(0.2, max(0.0, until - time.monotonic()))):
                if msg.error() is not None:
                    continue
                if dict(msg.headers() or []).get(f"ce_{REQUEST_ID}") != wanted:
                    continue
                try:
                    decision = decode_message(msg, accept=[DecisionEvent]).event
                except DecodeError:
                    continue
                if decision.tenant_id == tenant:
                    return decision
        return None
    except KafkaException as exc:
        log.warning("looking up the decision of request %s: %s", request_id, exc)
        return None
    finally:
        consumer.close()
