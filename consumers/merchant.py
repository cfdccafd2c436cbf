"""The merchant stage: merchant aggregates from transactions and fraud labels, as a table.

Merchant aggregates are not keyed like the transactions (key = account), so they cannot live in
the enricher's partitioned store; they are computed here, off the transaction's path, and
replicated to every enricher (the GlobalKTable pattern, docs/adr/0004-one-hop-feature-stage.md).
One exactly-once processor (group ``<tenant>.merchant``, one transaction per batch) runs two
steps on whatever partitions it is assigned:

1. **re-key** ``<tenant>.transactions`` and ``<tenant>.labels`` (fraud labels) into
   :class:`~schemas.events.MerchantActivity` records keyed by merchant on
   ``<tenant>.merchant-activity``; after each batch (and between batches when an input becomes
   caught up) a *watermark* record to every partition of it says how far each input partition
   has been read in event time and whether it is caught up;
2. **aggregate** ``merchant-activity`` into a :class:`~scorestream.features.MerchantState` per
   merchant in the kernel's keyed state store (``<tenant>.merchant.state``), and write every
   merchant changed by a batch to ``<tenant>.merchant-features`` (compacted, same partition),
   followed by that partition's **clock**: the time before which every merchant's activity on
   the partition is in the table = the smallest event time reached by the inputs that are not
   caught up (minus ``allowed_lateness_s``), rounded down to the spec's ``step``.

An activity record older than its partition's clock arrives *late*: it is still counted (from
the next snapshot on) and counted in ``scorestream_merchant_late_total``; the features served
in between did not include it.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import orjson
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client import Counter, Gauge
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from consumers.enricher import CLOCK_KEY
from schemas.cloudevents import Envelope
from schemas.events import LabelEvent, MerchantActivity, TransactionEvent, WatermarkSource
from scorestream.admin import require_topics
from scorestream.dlq import DeadLetter
from scorestream.entrypoint import run_service
from scorestream.errors import TopicError
from scorestream.event_time import REASON as EVENT_TIME
from scorestream.event_time import EventTimeSettings, out_of_window
from scorestream.features import ENGINE, Engine, MerchantState, id_hash
from scorestream.features.engine import StepChangedError
from scorestream.kafka_config import admin_config
from scorestream.processor import Emit, OutRecord, Processor, ProcessorConfig, Result
from scorestream.settings import KafkaSettings, ProcessingSettings
from scorestream.state import PartitionStore, StateStore
from scorestream.topics import REGISTRY

log = logging.getLogger("scorestream.merchant")
SERVICE = "merchant"
SOURCES_KEY = "__sources__"
FUTURE_TOLERANCE_MS = 5 * 60 * 1000
"""An event time further ahead of the wall clock moves no watermark beyond it."""

LATE = Counter(
    "scorestream_merchant_late_total",
    "Merchant activity that arrived after its partition's clock had passed its time",
    ["tenant", "kind"],
)
SNAPSHOTS = Counter(
    "scorestream_merchant_snapshots_total", "Merchant states written to the table", ["tenant"]
)
CLOCK = Gauge(
    "scorestream_merchant_clock_seconds",
    "The time (epoch s) up to which a partition of the merchant table is complete",
    ["tenant", "partition"],
)
MERCHANTS = Gauge("scorestream_merchant_merchants", "Merchants in the local store", ["tenant"])


class MerchantSettings(ProcessingSettings):
    """Env: ``SCORESTREAM_MERCHANT_*`` (plus ``SCORESTREAM_KAFKA_*``)."""

    model_config = SettingsConfigDict(
        use_attribute_docstrings=True,
        env_prefix="SCORESTREAM_MERCHANT_",
        frozen=True,
        extra="ignore",
    )

    service: ClassVar[str] = "merchant"

    max_wait_ms: int = Field(default=200, ge=1, le=10_000)
    """How long a poll waits for a full batch, in ms. This service is off the decision's path, so
    under light load it commits a transaction at most this often (each transaction costs the
    broker markers on every partition it touched; the services a request waits for get the
    CPU)."""
    adaptive_batching: bool = False
    """False here: wait up to max_wait_ms for a full batch (fewer, larger transactions). True
    takes what is already fetched as soon as the first record arrives."""
    max_batch: int = Field(default=2000, ge=1, le=10_000)
    """Most records handled and committed together as one batch (full batches under heavy
    load)."""

    instance_id: str = "merchant-0"
    """Names this instance: its ``transactional.id`` is ``<tenant>.merchant.<instance_id>``.
    Unique per running instance and stable across restarts (a restart fences the previous
    one's open transaction)."""
    allowed_lateness_s: float = Field(default=5.0, ge=0)
    """How far behind the slowest input an event may arrive and still be in time (clock skew
    between upstream producers writing one partition)."""
    watermark_interval_ms: int = Field(default=500, ge=10)
    """How often, with no input, the step checks whether an input became idle."""
    idle_after_ms: int = Field(default=1000, ge=0)
    """An input partition stops holding the clock back once it is caught up and has had no
    record for this long (a partition caught up between two fetches is not idle)."""
    state_dir: Path = Field(
        default_factory=lambda: Path(tempfile.gettempdir()) / "scorestream" / "merchant-state"
    )
    """Where checkpoints of the merchant store are written on a clean shutdown (optional:
    without one, the store is rebuilt from its changelog)."""
    restore_timeout_s: float = Field(default=120.0, gt=0)
    """Longest a restore of the merchant store from its changelog may take on assignment, then
    the service stops with an error. Keep it above ``transaction_timeout_s``: a dead instance's
    open transaction can hold the restore back that long."""


@dataclass(slots=True)
class Sources:
    """Per partition of merchant-activity: each input partition's progress and the clock."""

    sources: dict[str, list[Any]] = field(default_factory=dict)
    """``<topic>/<partition>`` → ``[event time ms, caught up]``."""
    clock: int | None = None

    def to_bytes(self) -> bytes:
        return orjson.dumps({"sources": self.sources, "clock": self.clock})


Value = MerchantState | Sources


class MerchantStoreCodec:
    """Merchant states (tiled by the spec's step) and the per-partition progress, as JSON."""

    def __init__(self, step_ms: int | None = None) -> None:
        self.step_ms = step_ms

    def encode(self, value: Value) -> bytes:
        if isinstance(value, MerchantState):
            return value.to_bytes(self.step_ms)
        return value.to_bytes()

    def decode(self, data: bytes) -> Value:
        try:
            raw = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"not JSON: {exc}") from exc
        if isinstance(raw, dict) and "sources" in raw:
            sources, clock = raw["sources"], raw.get("clock")
            if not isinstance(sources, dict) or not all(
                isinstance(v, list) and len(v) == 2 for v in sources.values()
            ):
                raise ValueError("'sources': not a mapping of [time, idle] pairs")
            if clock is not None and type(clock) is not int:
                raise ValueError("'clock': not an integer")
            return Sources(dict(sources), clock)
        try:
            return MerchantState.from_bytes(data, self.step_ms)
        except StepChangedError as exc:
            log.warning("merchant state dropped (%s): it is rebuilt from new activity", exc)
            return MerchantState()


def closed_time(sources: dict[str, list[Any]], expected: set[str]) -> int | None:
    """The event time before which every expected input has delivered everything it holds:
    the smallest time of the inputs not caught up; with all caught up, the largest time seen.
    None while an expected input has not reported, or reads without having reached a record."""
    if not expected:
        return None
    for src in expected:
        progress = sources.get(src)
        if progress is None or (progress[0] < 0 and not progress[1]):
            return None  # not reported, or reading without having reached any record yet
    active = [int(t) for src, (t, idle) in sources.items() if src in expected and not idle]
    if active:
        return min(active)
    seen = [int(t) for src, (t, _) in sources.items() if src in expected and t >= 0]
    return max(seen) if seen else None


class MerchantStage:
    def __init__(
        self,
        settings: MerchantSettings,
        *,
        kafka: KafkaSettings | None = None,
        engine: Engine = ENGINE,
    ) -> None:
        self.settings = settings
        self.kafka = kafka or KafkaSettings()
        self.engine = engine
        t = settings.tenant
        self.tenant = t
        self.tx_topic = REGISTRY.topic("transactions", t)
        self.label_topic = REGISTRY.topic("labels", t)
        self.activity_topic = REGISTRY.topic("merchant-activity", t)
        self.table_topic = REGISTRY.topic("merchant-features", t)
        require_topics(
            AdminClient(admin_config(self.kafka, client_id=settings.instance_id)),
            [
                self.tx_topic,
                self.label_topic,
                self.activity_topic,
                self.table_topic,
                REGISTRY.topic("merchant.state", t),
            ],
            tenant=t,
        )
        self.lateness_ms = int(settings.allowed_lateness_s * 1000)
        self.window = EventTimeSettings()
        """The enricher's event-time window: what no account counts, no merchant counts."""
        self._max_age_ms = int(self.window.max_event_age.total_seconds() * 1000)
        self._max_skew_ms = int(self.window.max_event_skew.total_seconds() * 1000)
        self.store: StateStore[Value] = StateStore(
            "merchants",
            source=self.activity_topic,
            changelog=REGISTRY.topic("merchant.state", t),
            codec=MerchantStoreCodec(engine.step_ms),
            kafka=self.kafka,
            group_id=settings.group_id,
            checkpoint_dir=settings.state_dir / t / settings.instance_id,
            restore_timeout_s=settings.restore_timeout_s,
        )
        self.progress: dict[str, int] = {}
        """Re-key step: input partition → largest event time read (ms) since assignment."""
        self.last_read: dict[str, float] = {}
        """Re-key step: input partition → when (monotonic) its last record was read."""
        self.reported: dict[str, tuple[int, bool]] = {}
        self.expected: set[str] = set()
        self.activity_partitions = 0
        self._next_tick = 0.0
        self.at_end: set[str] = set()
        """Re-key step: input partitions read to their end since their last record."""
        config = ProcessorConfig.for_service(
            settings,
            service=SERVICE,
            inputs=(self.tx_topic, self.label_topic, self.activity_topic),
            accept=(TransactionEvent, LabelEvent, MerchantActivity),
            dlq_topics={
                self.tx_topic: REGISTRY.dlq_topic("transactions", t),
                self.label_topic: REGISTRY.dlq_topic("labels", t),
                self.activity_topic: REGISTRY.dlq_topic("merchant-activity", t),
            },
            consumer_overrides={"enable.partition.eof": True},
        )
        self.processor = Processor(
            config,
            self.handle,
            kafka=self.kafka,
            stores=(self.store,),
            on_assigned=self._on_assigned,
            on_revoked=self._on_revoked,
            on_lost=self._on_revoked,
            tick=self._tick,
            ready=self._ready,
            on_eof=self._on_eof,
        )
        self._m_late_tx = LATE.labels(t, "transaction")
        self._m_late_fraud = LATE.labels(t, "fraud")
        self._m_snapshots = SNAPSHOTS.labels(t)
        self._m_merchants = MERCHANTS.labels(t)

    # -- lifecycle --------------------------------------------------------------------------------
    def _on_assigned(self, partitions: list[TopicPartition]) -> None:
        self._refresh_metadata()
        for tp in partitions:
            if tp.topic in (self.tx_topic, self.label_topic):
                self.progress.setdefault(f"{tp.topic}/{tp.partition}", -1)
        self._m_merchants.set(len(self.store))

    def _on_revoked(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            for memo in (self.progress, self.reported, self.last_read):
                memo.pop(f"{tp.topic}/{tp.partition}", None)
            self.at_end.discard(f"{tp.topic}/{tp.partition}")

    def _refresh_metadata(self) -> None:
        consumer = self.processor.consumer
        if consumer is None:
            return
        expected: set[str] = set()
        for topic in (self.tx_topic, self.label_topic, self.activity_topic, self.table_topic):
            meta = consumer.list_topics(topic, timeout=30).topics.get(topic)
            if meta is None or meta.error is not None:
                raise TopicError(f"{topic} does not exist (run `scorestream topics create`)")
            if topic == self.activity_topic:
                self.activity_partitions = len(meta.partitions)
            elif topic == self.table_topic:
                if len(meta.partitions) != self.activity_partitions:
                    raise TopicError(
                        f"{topic} has {len(meta.partitions)} partitions and "
                        f"{self.activity_topic} {self.activity_partitions}: they must be equal "
                        "(a merchant's state and its clock share the partition number)"
                    )
            else:
                expected |= {f"{topic}/{p}" for p in meta.partitions}
        self.expected = expected

    def _ready(self) -> tuple[bool, str]:
        clocks = {
            p: s.clock
            for p, store in self.store.partitions.items()
            if isinstance(s := store.get(SOURCES_KEY), Sources)
        }
        return True, f"{len(self.store)} merchants; clocks {clocks}"

    # -- step 1: re-key ---------------------------------------------------------------------------
    def _rekey(self, env: Envelope[Any], result: Result, now_ms: int) -> None:
        raw = env.raw
        src = f"{raw.topic}/{raw.partition}" if raw is not None else "?"
        event = env.event
        if (dead := DeadLetter.other_tenant(env, event.tenant_id, self.tenant)) is not None:
            result.dead_letters.append(dead)
            return
        if isinstance(event, TransactionEvent):
            if raw is not None and raw.key != event.account_id.encode():
                # the enricher refuses it too: a merchant never counts what no account does
                result.dead_letters.append(
                    DeadLetter.for_envelope(
                        env,
                        "key_mismatch",
                        "KeyMismatch",
                        f"key {raw.key!r} is not the account id {event.account_id!r}",
                    )
                )
                return
            t_ms = _ms(event.timestamp)
            if not now_ms - self._max_age_ms <= t_ms <= now_ms + self._max_skew_ms:
                self._out_of_window(env, event, now_ms, result)
                return
            activity = MerchantActivity.trusted(
                _activity(
                    "transaction",
                    event.tenant_id,
                    event.merchant_id,
                    event.transaction_id,
                    t_ms,
                    None,
                )
            )
        else:
            assert isinstance(event, LabelEvent)  # noqa: S101  (accept= allows only these)
            t_ms = _ms(event.labelled_at)
            activity = None
            if event.is_fraud:
                activity = MerchantActivity.trusted(
                    _activity(
                        "fraud",
                        event.tenant_id,
                        event.merchant_id,
                        event.transaction_id,
                        _ms(event.transaction_time),
                        t_ms,
                    )
                )
        self.progress[src] = max(
            self.progress.get(src, -1), min(t_ms, now_ms + FUTURE_TOLERANCE_MS)
        )
        if activity is not None:
            result.emits.append(Emit(self.activity_topic, activity))

    def _out_of_window(
        self, env: Envelope[Any], event: TransactionEvent, now_ms: int, result: Result
    ) -> None:
        """The enricher refuses it too (same reason): a merchant never counts what no account
        does."""
        now = datetime.fromtimestamp(now_ms / 1000, UTC)
        why = out_of_window(event.timestamp, now, self.window) or "outside the window"
        result.dead_letters.append(
            DeadLetter.for_envelope(env, EVENT_TIME, "EventTimeOutOfWindow", why)
        )

    def _watermarks(self, result: Result) -> None:
        """Report each owned input's progress to every activity partition when it changed."""
        idle = self._caught_up()
        now = {src: (t, src in idle) for src, t in self.progress.items()}
        changed = {src: v for src, v in now.items() if self.reported.get(src) != v}
        if not changed or not self.activity_partitions:
            return
        sources = {src: WatermarkSource(time_ms=t, idle=i) for src, (t, i) in changed.items()}
        record = MerchantActivity.trusted(
            {
                "kind": "watermark",
                "tenant_id": self.tenant,
                "merchant_id": None,
                "transaction_id": None,
                "event_ms": None,
                "known_ms": None,
                "sources": sources,
            }
        )
        for q in range(self.activity_partitions):
            result.emits.append(Emit(self.activity_topic, record, partition=q))
        pending = dict(changed)
        previous = result.on_commit

        def settle() -> None:
            if previous is not None:
                previous()
            self.reported.update(pending)

        result.on_commit = settle

    def _caught_up(self) -> set[str]:
        """Owned inputs read to their end (the consumer's end-of-partition event since their
        last record) and quiet for ``idle_after_ms``. No broker round trip: a request on the
        consumer's connection would wait behind its long-polling fetch."""
        quiet_since = time.monotonic() - self.settings.idle_after_ms / 1000
        return {src for src in self.at_end if self.last_read.get(src, 0.0) <= quiet_since} & set(
            self.progress
        )

    def _on_eof(self, topic: str, partition: int) -> None:
        if topic in (self.tx_topic, self.label_topic):
            self.at_end.add(f"{topic}/{partition}")

    # -- step 2: aggregate ------------------------------------------------------------------------
    def _aggregate(self, env: Envelope[Any], touched: dict[int, set[str]]) -> None:
        act: MerchantActivity = env.event
        raw = env.raw
        q = raw.partition if raw is not None and raw.partition is not None else 0
        store = self.store.partition(q)
        changed = touched.setdefault(q, set())
        if act.kind == "watermark":
            sources = self._sources(store)
            for src, progress in act.sources.items():
                old = sources.sources.get(src)
                t = progress.time_ms if old is None else max(int(old[0]), progress.time_ms)
                sources.sources[src] = [t, progress.idle]
            store.put(SOURCES_KEY, sources)
            changed.add(SOURCES_KEY)
            return
        if act.merchant_id is None or act.event_ms is None or act.transaction_id is None:
            return
        state = store.get(act.merchant_id)
        if not isinstance(state, MerchantState):
            state = MerchantState()
        clock = self._sources(store).clock
        step = self.engine.step_ms
        h = id_hash(act.transaction_id)
        if act.kind == "transaction":
            if clock is not None and act.event_ms < clock:
                self._m_late_tx.inc()
            updated = state.observe_transaction(act.event_ms, h, step, self.engine.merchant_max_ids)
        else:
            known = act.known_ms if act.known_ms is not None else act.event_ms
            if clock is not None and known < clock:
                self._m_late_fraud.inc()
            updated = state.observe_fraud(act.event_ms, known, h, step)
        if updated:
            store.put(act.merchant_id, state)
            changed.add(act.merchant_id)

    def _sources(self, store: PartitionStore[Value]) -> Sources:
        value = store.get(SOURCES_KEY)
        return value if isinstance(value, Sources) else Sources()

    def _publish(self, touched: dict[int, set[str]], result: Result) -> None:
        """Changed merchants to the table, then each partition's clock when it moved on."""
        step = self.engine.step_ms
        for q, keys in touched.items():
            store = self.store.partition(q)
            sources = self._sources(store)
            closed = closed_time(sources.sources, self.expected)
            clock = sources.clock
            if closed is not None:
                candidate = ((closed - self.lateness_ms) // step) * step
                if clock is None or candidate > clock:
                    clock = candidate
            horizon = None if clock is None else clock // step - self.engine.merchant_horizon_steps
            for key in sorted(keys):
                if key == SOURCES_KEY:
                    continue
                state = store.get(key)
                if not isinstance(state, MerchantState):
                    continue
                if horizon is not None:
                    state.prune(horizon)
                data = state.to_bytes(step)
                result.records.append(OutRecord(self.table_topic, key.encode(), data, partition=q))
                self._m_snapshots.inc()
            if clock is not None and clock != sources.clock:
                sources.clock = clock
                store.put(SOURCES_KEY, sources)
                result.records.append(
                    OutRecord(
                        self.table_topic, CLOCK_KEY.encode(), str(clock).encode(), partition=q
                    )
                )
                CLOCK.labels(self.tenant, str(q)).set(clock / 1000)

    # -- the handler and the tick -------------------------------------------------------------
    def handle(self, batch: list[Envelope[Any]]) -> Result:
        result = Result()
        touched: dict[int, set[str]] = {}
        now_ms = int(time.time() * 1000)
        for env in batch:
            if isinstance(env.event, MerchantActivity):
                self._aggregate(env, touched)
            else:
                self._rekey(env, result, now_ms)
        self._publish(touched, result)
        self._watermarks(result)
        self._m_merchants.set(len(self.store))
        return result

    def _tick(self) -> Result | None:
        mono = time.monotonic()
        if mono < self._next_tick or self.processor.consumer is None:
            return None
        self._next_tick = mono + self.settings.watermark_interval_ms / 1000
        result = Result()
        self._watermarks(result)
        return result if result.emits else None

    # -- run ---------------------------------------------------------------------------------------
    def run(self, *, install_signals: bool = True) -> int:
        log.info(
            "starting: group %s, transactional.id %s, table %s, step %ss",
            self.settings.group_id,
            self.settings.transactional_id,
            self.table_topic,
            self.engine.spec.merchant_step_s,
        )
        return self.processor.run(install_signals=install_signals)

    def stop(self, *_: Any) -> None:
        self.processor.stop()


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _activity(
    kind: str, tenant: str, merchant: str, txid: str, event_ms: int, known_ms: int | None
) -> dict[str, Any]:
    return {
        "kind": kind,
        "tenant_id": tenant,
        "merchant_id": merchant,
        "transaction_id": txid,
        "event_ms": event_ms,
        "known_ms": known_ms,
        "sources": {},
    }


def main(
    argv: list[str] | None = None, *, on_ready: Callable[[MerchantStage], None] | None = None
) -> int:
    """Entry point of ``scorestream merchant`` and of the container: every setting of
    :class:`MerchantSettings` from ``SCORESTREAM_MERCHANT_*`` or as a flag."""
    return run_service(SERVICE, MerchantSettings, MerchantStage, argv, on_ready=on_ready)


if __name__ == "__main__":
    import sys

    sys.exit(main())
