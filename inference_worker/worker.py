"""The inference worker's Kafka loop: consume a batch → score → produce → commit, exactly once.

Exactly-once (default), as in confluent-kafka's ``eos_transactions.py``: a transactional producer
with a stable ``transactional.id`` per instance; each batch's predictions, shadow predictions,
dead letters *and* the consumer offsets are committed in one Kafka transaction. On an abortable
error the transaction is aborted and the consumer rewound to the batch start; on a fatal error
(fenced by a newer instance) the producer is recreated. Readers use ``read_committed``.

At-least-once (a setting): idempotent producer, offsets committed after every record of the batch
is acknowledged.

There is exactly one batch in flight, so the producer queue is bounded by one batch; should it
fill anyway, the assigned partitions are paused until it drains.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from inference_worker.handler import BatchOutput, score_batch
from inference_worker.model import ServingModel
from inference_worker.settings import WorkerSettings
from inference_worker.watcher import ModelWatcher
from pipelines.repository import ModelRepository
from schemas.cloudevents import Envelope, encode
from schemas.errors import DecodeError
from schemas.events import EnrichedTransaction, ModelAlias
from scorestream import metrics
from scorestream.dlq import DeadLetter
from scorestream.errors import KafkaClientError
from scorestream.health import HealthServer
from scorestream.kafka_config import (
    consumer_config,
    producer_config,
    transactional_producer_config,
)
from scorestream.serde import decode_message
from scorestream.settings import KafkaSettings
from scorestream.topics import REGISTRY

log = logging.getLogger("scorestream.worker")
SERVICE = "worker"
SOURCE = "scorestream/worker"


class Worker:
    def __init__(
        self,
        settings: WorkerSettings,
        *,
        kafka: KafkaSettings | None = None,
        repo: ModelRepository,
    ) -> None:
        self.settings = settings
        self.kafka = kafka or KafkaSettings()
        self.repo = repo
        t = settings.tenant
        self.input_topic = REGISTRY.topic("transactions.enriched", t)
        self.output_topic = REGISTRY.topic("predictions", t)
        self.shadow_topic = REGISTRY.topic("predictions.shadow", t)
        self.dlq_topic = REGISTRY.dlq_topic("transactions.enriched", t)
        self.models: dict[ModelAlias, ServingModel] = {}
        self.assigned: set[int] = set()
        self.joined = False
        """Set on the first assignment callback; read by /readyz without touching the client
        (the consumer must not be called from the health thread while the loop polls)."""
        self.stopping = threading.Event()
        self.last_poll = time.monotonic()
        self.batches = 0
        self.watcher = ModelWatcher(
            kafka=self.kafka,
            repo=repo,
            tenant=t,
            model_name=settings.model_name,
            instance=settings.instance_id,
            intra_op_threads=settings.intra_op_threads,
        )
        self.consumer: Consumer | None = None
        self.producer: Producer | None = None
        self._delivery_errors: list[str] = []

    def _p(self) -> Producer:
        if self.producer is None:
            raise KafkaClientError("the producer is not started")
        return self.producer

    def _c(self) -> Consumer:
        if self.consumer is None:
            raise KafkaClientError("the consumer is not started")
        return self.consumer

    # -- health ----------------------------------------------------------------------------------
    def live(self) -> tuple[bool, str]:
        idle = time.monotonic() - self.last_poll
        ok = idle < self.settings.live_after_s and self.watcher.error is None
        return ok, f"last poll {idle:.1f}s ago"

    def ready(self) -> tuple[bool, str]:
        champion = self.models.get(ModelAlias.CHAMPION)
        if champion is None:
            return False, "no champion model loaded yet"
        if not self.joined:
            return False, f"model {champion.name}/{champion.version}; not in the group yet"
        # a member without partitions is ready too: more replicas than partitions is legal
        return True, f"model {champion.name}/{champion.version}; partitions {sorted(self.assigned)}"

    # -- lifecycle ---------------------------------------------------------------------------------
    def stop(self, *_: Any) -> None:
        self.stopping.set()

    def _make_producer(self) -> Producer:
        s = self.settings
        if s.delivery == "exactly_once":
            conf = transactional_producer_config(
                self.kafka, transactional_id=s.transactional_id, client_id=s.instance_id
            )
            conf["transaction.timeout.ms"] = int(s.transaction_timeout_s * 1000)
            conf["delivery.timeout.ms"] = int(s.transaction_timeout_s * 1000)
            producer = Producer(conf)
            producer.init_transactions(s.transaction_timeout_s)
        else:
            producer = Producer(producer_config(self.kafka, client_id=s.instance_id))
        return producer

    def _make_consumer(self) -> Consumer:
        s = self.settings
        conf = consumer_config(self.kafka, group_id=s.group_id, client_id=s.instance_id) | {
            "max.poll.interval.ms": s.max_poll_interval_ms,
            "session.timeout.ms": s.session_timeout_ms,
            "heartbeat.interval.ms": max(1000, s.session_timeout_ms // 5),
            "fetch.wait.max.ms": min(100, s.max_wait_ms * 2),
        }
        return Consumer(conf)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.joined = True
        self.assigned |= {p.partition for p in partitions}
        log.info("assigned %s", sorted(p.partition for p in partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Called from consume(): the previous batch is already committed; nothing in flight.
        self.assigned -= {p.partition for p in partitions}
        for p in partitions:
            with contextlib.suppress(KeyError):
                metrics.CONSUMER_LAG.remove(SERVICE, p.topic, str(p.partition))
        log.info("revoked %s", sorted(p.partition for p in partitions))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.assigned -= {p.partition for p in partitions}
        self.joined = False
        log.warning("lost %s (session expired): a fenced transaction will abort", partitions)

    def wait_for_model(self, timeout: float | None = None) -> bool:
        """Block until the watcher replayed model-events and a champion is available."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.stopping.is_set():
            self._apply_swaps()
            if self.watcher.error is not None:
                raise KafkaClientError(f"model watcher failed: {self.watcher.error}")
            if ModelAlias.CHAMPION in self.models:
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            self.last_poll = time.monotonic()
            time.sleep(0.2)
        return False

    def _apply_swaps(self) -> None:
        for alias, model in self.watcher.take_pending().items():
            old = self.models.get(alias)
            if old is not None:
                metrics.MODEL_LOADED.labels(
                    self.settings.tenant, old.name, old.version, alias.value
                ).set(0)
            self.models[alias] = model
            metrics.MODEL_LOADED.labels(
                self.settings.tenant, model.name, model.version, alias.value
            ).set(1)
            log.info("now serving %s/%s as %s", model.name, model.version, alias.value)

    def run(self, *, install_signals: bool = True) -> int:
        if install_signals:
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        self.watcher.start()
        health = None
        if self.settings.health_port:
            health = HealthServer(
                port=self.settings.health_port, live=self.live, ready=self.ready
            ).start()
        try:
            log.info("waiting for a champion model for tenant %s", self.settings.tenant)
            if not self.wait_for_model():
                return 0
            self.producer = self._make_producer()
            self.consumer = self._make_consumer()
            self._c().subscribe(
                [self.input_topic],
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
            self._loop()
            return 0
        finally:
            self._shutdown(health)

    def _shutdown(self, health: HealthServer | None) -> None:
        self.watcher.stop()
        if self.consumer is not None:
            self._c().close()  # leaves the group: partitions move at once
        if self.producer is not None:
            self._p().flush(5)
        if health is not None:
            health.stop()
        self.watcher.join(timeout=5)

    # -- the loop ----------------------------------------------------------------------------------
    def _loop(self) -> None:
        s = self.settings
        wait = s.max_wait_ms / 1000
        lag_every, next_lag = 5.0, time.monotonic()
        while not self.stopping.is_set():
            self._apply_swaps()  # between batches: atomic from the batch's point of view
            messages = self._c().consume(num_messages=s.max_batch, timeout=wait)
            self.last_poll = time.monotonic()
            if self.watcher.error is not None:
                raise KafkaClientError(f"model watcher failed: {self.watcher.error}")
            if messages:
                self._process(messages)
            if self.last_poll >= next_lag:
                self._update_lag()
                next_lag = self.last_poll + lag_every

    def _process(self, messages: list[Message]) -> None:
        started = time.perf_counter()
        batch_start = datetime.now(UTC)
        tenant = self.settings.tenant
        decoded: list[Envelope[EnrichedTransaction]] = []
        dead: list[DeadLetter] = []
        first: dict[int, int] = {}
        last: dict[int, int] = {}
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(err)
            p, o = msg.partition() or 0, msg.offset() or 0
            first.setdefault(p, o)
            last[p] = o
            try:
                decoded.append(decode_message(msg, accept=[EnrichedTransaction]))
            except DecodeError as exc:
                dead.append(DeadLetter.from_decode_error(exc))
        metrics.EVENTS_IN.labels(SERVICE, tenant).inc(len(messages))
        champion = self.models[ModelAlias.CHAMPION]
        challenger = self.models.get(ModelAlias.CHALLENGER) if self.settings.shadow else None
        out = score_batch(
            decoded,
            tenant=tenant,
            champion=champion,
            challenger=challenger,
            batch_start=batch_start,
        )
        out.dead_letters[:0] = dead
        offsets = [TopicPartition(self.input_topic, p, o + 1) for p, o in last.items()]
        if self.settings.delivery == "exactly_once":
            committed = self._commit_transaction(out, offsets, first)
        else:
            committed = self._commit_at_least_once(out, offsets, first)
        if committed:
            self._count(out, champion, challenger, len(messages), started)

    # -- producing ---------------------------------------------------------------------------------
    def _produce(
        self, topic: str, key: bytes | None, value: bytes | None, headers: list[Any]
    ) -> None:
        try:
            self._p().produce(topic, value=value, key=key, headers=headers, on_delivery=self._dr)
        except BufferError:
            paused = self._c().assignment()
            self._c().pause(paused)  # stop fetching while the queue drains
            try:
                while True:
                    self._p().poll(0.05)
                    try:
                        self._p().produce(
                            topic, value=value, key=key, headers=headers, on_delivery=self._dr
                        )
                        break
                    except BufferError:
                        continue
            finally:
                self._c().resume(paused)

    def _dr(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._delivery_errors.append(f"{msg.topic()}: {err.str()}")

    def _produce_outputs(self, out: BatchOutput) -> None:
        for scored, topic in [(x, self.output_topic) for x in out.predictions] + [
            (x, self.shadow_topic) for x in out.shadow
        ]:
            env = scored.envelope
            msg = encode(scored.prediction, source=SOURCE, trace=env.trace)
            self._produce(topic, msg.key, msg.value, list(msg.headers))
        for dl in out.dead_letters:
            self._produce(self.dlq_topic, dl.raw.key, dl.raw.value, dl.headers(SERVICE))

    def _rewind(self, first: dict[int, int]) -> None:
        for p, o in first.items():
            if p in self.assigned:
                self._c().seek(TopicPartition(self.input_topic, p, o))

    def _commit_transaction(
        self, out: BatchOutput, offsets: list[TopicPartition], first: dict[int, int]
    ) -> bool:
        try:
            self._p().begin_transaction()
            self._produce_outputs(out)
            self._p().send_offsets_to_transaction(
                offsets,
                self._c().consumer_group_metadata(),
                self.settings.transaction_timeout_s,
            )
            self._commit_with_retry()
            metrics.TRANSACTIONS.labels(SERVICE, "committed").inc()
            return True
        except KafkaException as exc:
            err: KafkaError = exc.args[0]
            metrics.TRANSACTIONS.labels(SERVICE, "aborted").inc()
            if err.fatal():
                log.error("fatal producer error (%s): recreating the producer", err.str())
                self.producer = self._make_producer()
            elif err.txn_requires_abort():
                log.warning("aborting transaction: %s", err.str())
                self._p().abort_transaction(self.settings.transaction_timeout_s)
            else:
                raise
            self._rewind(first)
            return False

    def _commit_with_retry(self) -> None:
        for attempt in range(5):
            try:
                self._p().commit_transaction(self.settings.transaction_timeout_s)
                return
            except KafkaException as exc:
                err: KafkaError = exc.args[0]
                if err.retriable() and attempt < 4:
                    continue
                raise

    def _commit_at_least_once(
        self, out: BatchOutput, offsets: list[TopicPartition], first: dict[int, int]
    ) -> bool:
        self._delivery_errors.clear()
        self._produce_outputs(out)
        remaining = self._p().flush(self.settings.transaction_timeout_s)
        if remaining or self._delivery_errors:
            log.warning("delivery failed (%s); replaying the batch", self._delivery_errors[:3])
            self._rewind(first)
            return False
        self._c().commit(offsets=offsets, asynchronous=False)
        return True

    # -- metrics -----------------------------------------------------------------------------------
    def _count(
        self,
        out: BatchOutput,
        champion: ServingModel,
        challenger: ServingModel | None,
        n: int,
        started: float,
    ) -> None:
        t = self.settings.tenant
        self.batches += 1
        metrics.BATCH_SIZE.labels(SERVICE).observe(n)
        metrics.BATCH_SECONDS.labels(SERVICE).observe(time.perf_counter() - started)
        metrics.EVENTS_OUT.labels(SERVICE, t, "predictions").inc(len(out.predictions))
        metrics.EVENTS_OUT.labels(SERVICE, t, "predictions.shadow").inc(len(out.shadow))
        metrics.PREDICTIONS.labels(t, champion.name, champion.version, "champion").inc(
            len(out.predictions)
        )
        if challenger is not None and out.shadow:
            metrics.PREDICTIONS.labels(t, challenger.name, challenger.version, "challenger").inc(
                len(out.shadow)
            )
        for alias, seconds in out.inference_s.items():
            metrics.INFERENCE_SECONDS.labels(t, champion.name, alias).observe(seconds)
        for dl in out.dead_letters:
            metrics.DLQ.labels(SERVICE, t, dl.reason).inc()
        now = datetime.now(UTC)
        hist = metrics.EVENT_TO_PREDICTION_SECONDS.labels(t)
        for scored in out.predictions:
            hist.observe(max(0.0, (now - scored.envelope.event.enriched_at).total_seconds()))

    def _update_lag(self) -> None:
        try:
            positions = self._c().position(
                [TopicPartition(self.input_topic, p) for p in self.assigned]
            )
        except KafkaException:
            return
        for tp in positions:
            _, high = self._c().get_watermark_offsets(tp, cached=True)
            if tp.offset >= 0 and high >= 0:
                metrics.CONSUMER_LAG.labels(SERVICE, tp.topic, str(tp.partition)).set(
                    max(0, high - tp.offset)
                )


def main(argv: list[str] | None = None, *, on_ready: Callable[[Worker], None] | None = None) -> int:
    """Entry point of ``scorestream worker`` and of the container."""
    import argparse  # noqa: PLC0415

    from scorestream.logs import configure_logging  # noqa: PLC0415
    from scorestream.settings import ModelRepoSettings  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="scorestream worker")
    parser.add_argument("--tenant")
    parser.add_argument("--instance-id")
    parser.add_argument("--delivery", choices=("exactly_once", "at_least_once"))
    parser.add_argument("--max-batch", type=int)
    parser.add_argument("--max-wait-ms", type=int)
    parser.add_argument("--health-port", type=int)
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    settings = WorkerSettings(**overrides)
    configure_logging(SERVICE, settings.tenant)
    repo_settings = ModelRepoSettings()
    repo = ModelRepository(repo_settings.url, repo_settings.storage_options())
    worker = Worker(settings, repo=repo)
    if on_ready is not None:
        on_ready(worker)
    return worker.run()
