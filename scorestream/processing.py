"""What a service hands the processor and gets back: its configuration, the handler's
:class:`Result` (events to :class:`Emit`, raw :class:`OutRecord`\\ s, dead letters) and the
hooks' types (:mod:`scorestream.processor` runs them)."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from confluent_kafka import TopicPartition

from schemas.cloudevents import Envelope
from schemas.events import Contract
from scorestream import metrics, tracing
from scorestream.dlq import DeadLetter
from scorestream.topics import MAX_MESSAGE_BYTES

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

    @classmethod
    def derived(
        cls,
        topic: str,
        event: Contract,
        source: Envelope[Any],
        *,
        partition: int | None = None,
        value: bytes | None = None,
        extensions: Mapping[str, str] | None = None,
    ) -> Emit:
        """An event made from ``source``: its trace context and its CloudEvents extensions
        travel on (request-reply's ``replyto`` and ``requestid`` among them, so the decision
        finds its way back to the gateway that asked), with ``extensions`` added."""
        carried = carried_extensions(source)
        if extensions:
            carried |= extensions
        return cls(topic, event, source.trace, carried, partition, value)


def carried_extensions(env: Envelope[Any]) -> dict[str, str]:
    """The CloudEvents extensions to carry on: those ``encode`` accepts (lower-case alphanumeric).
    An envelope built in-process may hold any name; re-encoding a malformed one would raise
    inside the transaction on every replay, so it is dropped here instead."""
    return {k: v for k, v in env.extensions.items() if k.isalnum() and k.islower()}


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
    created since. Measured in bench/: see docs/performance.md."""
    gc.collect()
    gc.freeze()


BACKGROUND_FETCH_MIN_BYTES = 1 << 20


def fetch_settings(c: ProcessorConfig) -> dict[str, int]:
    """How the broker answers this consumer's fetches. Adaptive batching (a service a request
    waits for): at once, with whatever arrived. Fixed batches (a service off the request's
    path): when 1 MiB is there or ``max_wait_ms`` passed, so the broker sends one response per
    batch interval instead of one per transaction committed upstream (measured: broker CPU and
    every hop's commit time drop; docs/performance.md)."""
    if c.adaptive_batching:
        return {"fetch.wait.max.ms": min(100, c.max_wait_ms * 2)}
    return {"fetch.wait.max.ms": c.max_wait_ms, "fetch.min.bytes": BACKGROUND_FETCH_MIN_BYTES}


def count_batch(c: ProcessorConfig, result: Result, n: int, started: float) -> None:
    """A committed batch's metrics: its size and time, events out per stream, dead letters."""
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
