"""``scorestream dlq list|show|redrive``: inspect a tenant's dead letters and re-drive them.

An operator tool (a layer above the kernel): it reads the ``<tenant>.<stream>.dlq`` topics of the
topic registry with ``read_committed`` and the dead-letter headers of :mod:`scorestream.dlq`.

* ``list`` counts dead letters by DLQ topic and ``dlq.reason`` (counts only: memory does not grow
  with the topic), from the beginning or from ``--since`` (``offsets_for_times``).
* ``show`` prints records' headers and payloads through the log redaction of
  :mod:`scorestream.logs` (secret-looking headers, ``key=value`` secrets, URLs' secret parts,
  card numbers). A pointer dead letter is shown as a pointer, with the command that reads the
  original.
* ``redrive`` re-publishes selected dead letters to the topic they came from (``dlq.source.topic``,
  which must be the DLQ's own stream of the same tenant) with their original key, value and
  headers minus the ``dlq.*`` ones, plus ``dlq.redrive.count`` (one more than the record's own).
  A record already re-driven ``max_redrives`` times is refused. Exactly once: the produce and
  the DLQ positions it moved past are committed in one Kafka transaction
  (``transactional.id = <tenant>.dlq-redrive``), per reason in the consumer group
  ``<tenant>.dlq-redrive.<reason>``, so a second run (or a run for another reason) never moves a
  record twice, and a run that fails moves nothing of its unfinished batch.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from scorestream import dlq
from scorestream.deploy.acl import AclRule
from scorestream.errors import ConfigError, KafkaClientError
from scorestream.kafka_config import consumer_config, transactional_producer_config
from scorestream.logs import redact, redact_text
from scorestream.reader import offsets_for_times, watermarks
from scorestream.settings import KafkaSettings
from scorestream.topics import MAX_MESSAGE_BYTES, REGISTRY, validate_tenant

Progress = Callable[[str], None]
Headers = list[tuple[str, bytes | None]]

CLIENT_ID = "scorestream-dlq"
PROGRESS_EVERY_S = 2.0
STALL_TIMEOUT_S = 120.0
"""A read that makes no progress for this long fails (an open transaction holds
``read_committed`` readers back for at most the writer's ``transaction.timeout.ms``, 60 s)."""
MAX_REASONS = 200
"""Distinct reasons counted per topic; more are counted as ``(other)`` (memory stays bounded)."""
MAX_REFUSED_LISTED = 50
BATCH_BYTES = 16 * 1024 * 1024
"""A re-drive transaction holds at most this many bytes of records (and ``batch_records``)."""

REDIRECTS: dict[str, tuple[str, str]] = {
    "alerts.retry": ("decisions", "retry."),
}
"""Streams whose dead letters are re-driven elsewhere: source stream → (target stream, header
prefix to drop). A notifier retry record that spent its rounds is sent to ``decisions`` again
(webhook and alert), never back to the retry topic, whose spent ``retry.*`` headers would send
it straight back to the DLQ (docs/operations.md, "Webhook outages")."""

_DENIED = {
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
}


class DlqSettings(BaseSettings):
    """``scorestream dlq`` settings. Env: ``SCORESTREAM_DLQ_*``; flags override."""

    model_config = SettingsConfigDict(
        env_prefix="SCORESTREAM_DLQ_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    max_redrives: int = Field(3, ge=1, le=1000)
    """A dead letter whose ``dlq.redrive.count`` is this already is refused."""
    batch_records: int = Field(500, ge=1, le=100_000)
    """Records per re-drive transaction."""


class AccessDeniedError(KafkaClientError):
    """The broker refused an operation (ACLs): the message names the resource and the rights."""


class NothingMatchedError(ConfigError):
    """No dead letter matches the selection."""


def _denied(err: object) -> bool:
    return isinstance(err, KafkaError) and err.code() in _DENIED


def _access(what: str, err: object) -> AccessDeniedError:
    return AccessDeniedError(
        f"not authorized to {what} ({err}): the operator's principal needs Read+Describe on the "
        "tenant's *.dlq topics and Read on groups '<tenant>.dlq-' (prefix); redrive also needs "
        "Write on the original topics and on transactional ids '<tenant>.dlq-redrive' (prefix)"
    )


# -- selection -----------------------------------------------------------------------------------
def dlq_streams() -> list[str]:
    """Names of the DLQ streams of the registry (``predictions.dlq``, ...), tenant-scoped ones."""
    return [s.name for s in REGISTRY.tenant_streams() if s.is_dlq]


def resolve_topics(tenant: str, names: Sequence[str] | None) -> list[str]:
    """DLQ topic names of ``tenant``: all of them, or the named ones (``predictions``,
    ``predictions.dlq`` or ``<tenant>.predictions.dlq``)."""
    validate_tenant(tenant)
    streams = dlq_streams()
    if not names:
        return [f"{tenant}.{s}" for s in streams]
    out: list[str] = []
    for name in names:
        stream = name.removeprefix(f"{tenant}.")
        if not stream.endswith(".dlq"):
            stream += ".dlq"
        if stream not in streams:
            raise ConfigError(
                f"no DLQ topic {name!r} for tenant {tenant}: one of "
                f"{', '.join(s.removesuffix('.dlq') for s in streams)}"
            )
        topic = f"{tenant}.{stream}"
        if topic not in out:
            out.append(topic)
    return out


_RELATIVE = re.compile(r"^(\d+)([smhd])$")


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """An ISO 8601 time (no offset: UTC) or an age such as ``30m``, ``2h``, ``7d``."""
    m = _RELATIVE.match(text.strip())
    if m:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m.group(2)]
        return (now or datetime.now(UTC)) - timedelta(**{unit: int(m.group(1))})
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"--since {text!r}: use an ISO 8601 time (2026-12-05T04:00:00Z) or an age (30m, 2h, 7d)"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


@dataclass(frozen=True, slots=True)
class Selection:
    tenant: str
    topics: tuple[str, ...]
    reasons: frozenset[str] = frozenset()
    since: datetime | None = None
    explicit: bool = False
    """Topics named by the operator (a missing one is an error, not skipped)."""

    @classmethod
    def of(
        cls,
        tenant: str,
        topics: Sequence[str] | None = None,
        reasons: Sequence[str] | None = None,
        since: str | datetime | None = None,
    ) -> Selection:
        when = parse_since(since) if isinstance(since, str) else since
        return cls(
            tenant,
            tuple(resolve_topics(tenant, topics)),
            frozenset(reasons or ()),
            when,
            explicit=bool(topics),
        )

    def matches(self, reason: str) -> bool:
        return not self.reasons or reason in self.reasons


# -- one dead letter -----------------------------------------------------------------------------
def _text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


def last_header(headers: Headers, name: str) -> str | None:
    """The last value of ``name``: a service appends its ``dlq.*`` headers after the record's
    own, so a ``dlq.*`` header a producer smuggled into the original never wins."""
    found: str | None = None
    for key, value in headers:
        if key == name:
            found = _text(value)
    return found


def redrive_count(headers: Headers) -> int:
    raw = last_header(headers, dlq.REDRIVE_COUNT)
    try:
        return max(0, int(raw or 0))
    except ValueError:
        return 0


@dataclass(frozen=True, slots=True)
class DeadLetterView:
    """One record of a DLQ topic."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: Headers

    @classmethod
    def of(cls, msg: Message) -> DeadLetterView:
        raw = msg.headers() or []
        items = raw.items() if isinstance(raw, dict) else raw  # a list from the consumer
        headers: Headers = [
            (str(k), v if isinstance(v, bytes | None) else str(v).encode()) for k, v in items
        ]
        _, ts = msg.timestamp()
        return cls(
            msg.topic() or "",
            msg.partition() or 0,
            msg.offset() or 0,
            int(ts),
            msg.key(),
            msg.value(),
            headers,
        )

    @property
    def reason(self) -> str:
        return last_header(self.headers, dlq.REASON) or "(none)"

    @property
    def pointer(self) -> bool:
        return last_header(self.headers, dlq.POINTER) == "true"

    @property
    def coordinates(self) -> str:
        return f"{self.topic}/{self.partition}@{self.offset}"

    def source(self) -> tuple[str, int | None, int | None]:
        def _int(name: str) -> int | None:
            try:
                return int(last_header(self.headers, name) or "")
            except ValueError:
                return None

        return (
            last_header(self.headers, dlq.SOURCE_TOPIC) or "",
            _int(dlq.SOURCE_PARTITION),
            _int(dlq.SOURCE_OFFSET),
        )

    def pointer_target(self) -> tuple[str, int, int] | None:
        """(topic, partition, offset) of a pointer's original, from its JSON value."""
        try:
            data = json.loads(self.value or b"")
            return str(data["topic"]), int(data["partition"]), int(data["offset"])
        except (ValueError, KeyError, TypeError):
            return None


# -- reading -------------------------------------------------------------------------------------
@dataclass(slots=True)
class _Throttle:
    progress: Progress
    total: int
    label: str
    read: int = 0
    last: float = field(default_factory=time.monotonic)

    def tick(self, n: int = 1) -> None:
        self.read += n
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            self.progress(f"{self.label}: read {self.read} of at most {self.total} records")


def _consumer(kafka: KafkaSettings, group: str) -> Consumer:
    conf = consumer_config(kafka, group_id=group, client_id=CLIENT_ID)
    return Consumer(conf | {"enable.partition.eof": False})


def existing_topics(consumer: Consumer, sel: Selection) -> list[str]:
    """The selected DLQ topics that exist; unknown tenant / topic and ACL refusals are errors."""
    found: list[str] = []
    for topic in sel.topics:
        try:
            meta = consumer.list_topics(topic, timeout=30).topics.get(topic)
        except KafkaException as exc:
            if _denied(exc.args[0]):
                raise _access(f"describe {topic}", exc.args[0]) from exc
            raise KafkaClientError(f"cannot describe {topic}: {exc}") from exc
        if meta is not None and meta.error is not None and _denied(meta.error):
            raise _access(f"describe {topic}", meta.error)
        if meta is not None and meta.error is None and meta.partitions:
            found.append(topic)
        elif sel.explicit:
            raise ConfigError(
                f"topic {topic} does not exist: unknown tenant {sel.tenant}, or its topics were "
                f"never created ('scorestream topics create --tenant {sel.tenant}')"
            )
    if not found:
        raise ConfigError(
            f"unknown tenant {sel.tenant}: none of its dead-letter topics ({sel.tenant}.*.dlq) "
            "exists on the cluster"
        )
    return found


def ranges(
    consumer: Consumer, topics: Sequence[str], since: datetime | None
) -> dict[tuple[str, int], tuple[int, int]]:
    """``(topic, partition) → [start, end)``: from the low watermark (or the first offset at or
    after ``since``) to the current high watermark."""
    out: dict[tuple[str, int], tuple[int, int]] = {}
    try:
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=30).topics[topic]
            for p in sorted(meta.partitions):
                low, high = watermarks(consumer, TopicPartition(topic, p))
                start = low
                if since is not None:
                    ms = int(since.timestamp() * 1000)
                    [tp] = offsets_for_times(consumer, [TopicPartition(topic, p, ms)])
                    start = high if tp.offset < 0 else max(low, tp.offset)
                out[(topic, p)] = (start, high)
    except KafkaException as exc:
        if _denied(exc.args[0]):
            raise _access(f"read {', '.join(topics)}", exc.args[0]) from exc
        raise KafkaClientError(f"cannot read the offsets of {', '.join(topics)}: {exc}") from exc
    return out


def read(
    consumer: Consumer,
    spans: dict[tuple[str, int], tuple[int, int]],
    *,
    progress: Progress,
    label: str,
) -> Iterator[DeadLetterView]:
    """The committed records of each ``[start, end)``, partition by partition in offset order."""
    pending = {tp: r for tp, r in spans.items() if r[1] > r[0]}
    if not pending:
        return
    throttle = _Throttle(progress, sum(e - s for s, e in pending.values()), label)
    consumer.assign([TopicPartition(t, p, start) for (t, p), (start, _) in pending.items()])
    stalled = time.monotonic() + STALL_TIMEOUT_S
    try:
        while pending:
            if time.monotonic() > stalled:
                raise KafkaClientError(
                    f"reading {', '.join(sorted({t for t, _ in pending}))} made no progress for "
                    f"{STALL_TIMEOUT_S:.0f}s"
                )
            batch = consumer.consume(num_messages=500, timeout=0.5)
            for msg in batch:
                err = msg.error()
                if err is not None:
                    if _denied(err):
                        raise _access(f"read {msg.topic()}", err)
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaClientError(f"reading {msg.topic()}: {err}")
                key = (msg.topic() or "", msg.partition() or 0)
                if key in pending and (msg.offset() or 0) < pending[key][1]:
                    throttle.tick()
                    yield DeadLetterView.of(msg)
            if batch:
                stalled = time.monotonic() + STALL_TIMEOUT_S
            for tp in consumer.position([TopicPartition(t, p) for t, p in pending]):
                if tp.offset >= pending[(tp.topic, tp.partition)][1]:
                    pending.pop((tp.topic, tp.partition))
                    stalled = time.monotonic() + STALL_TIMEOUT_S
    finally:
        consumer.unassign()


def _quiet(_: str) -> None:
    pass


def stderr_progress(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


# -- list ----------------------------------------------------------------------------------------
@dataclass(slots=True)
class Count:
    records: int = 0
    first_ms: int = 0
    last_ms: int = 0

    def add(self, ts: int) -> None:
        self.records += 1
        self.first_ms = ts if not self.first_ms else min(self.first_ms, ts)
        self.last_ms = max(self.last_ms, ts)


@dataclass(slots=True)
class Listing:
    topics: list[str]
    counts: dict[tuple[str, str], Count]

    @property
    def total(self) -> int:
        return sum(c.records for c in self.counts.values())


def list_dead_letters(
    sel: Selection, *, kafka: KafkaSettings | None = None, progress: Progress = _quiet
) -> Listing:
    kafka = kafka or KafkaSettings()
    consumer = _consumer(kafka, f"{sel.tenant}.dlq-inspect")
    try:
        topics = existing_topics(consumer, sel)
        counts: dict[tuple[str, str], Count] = {}
        reasons: dict[str, set[str]] = {}
        spans = ranges(consumer, topics, sel.since)
        for view in read(consumer, spans, progress=progress, label="list"):
            reason = view.reason
            if not sel.matches(reason):
                continue
            seen = reasons.setdefault(view.topic, set())
            if reason not in seen:
                if len(seen) >= MAX_REASONS:
                    reason = "(other)"
                seen.add(reason)
            counts.setdefault((view.topic, reason), Count()).add(view.timestamp_ms)
        return Listing(topics, counts)
    finally:
        consumer.close()


# -- show ----------------------------------------------------------------------------------------
def select(
    sel: Selection,
    *,
    kafka: KafkaSettings | None = None,
    partition: int | None = None,
    offset: int | None = None,
    limit: int = 10,
    progress: Progress = _quiet,
) -> list[DeadLetterView]:
    """Up to ``limit`` matching dead letters, oldest first per partition; or the one at
    ``partition``/``offset`` of the (single) selected topic."""
    kafka = kafka or KafkaSettings()
    consumer = _consumer(kafka, f"{sel.tenant}.dlq-inspect")
    try:
        topics = existing_topics(consumer, sel)
        spans = ranges(consumer, topics, sel.since)
        if offset is not None:
            if len(topics) != 1:
                raise ConfigError("--offset needs one --topic")
            key = (topics[0], partition or 0)
            if key not in spans:
                raise ConfigError(f"{topics[0]} has no partition {partition}")
            start, end = spans[key]
            if not start <= offset < end:
                raise NothingMatchedError(
                    f"nothing matched: {topics[0]}/{key[1]} holds offsets {start}..{end - 1}"
                    f"{' from --since' if sel.since else ''}, not {offset}"
                )
            spans = {key: (offset, offset + 1)}
        elif partition is not None:
            spans = {k: v for k, v in spans.items() if k[1] == partition}
        out: list[DeadLetterView] = []
        for view in read(consumer, spans, progress=progress, label="show"):
            if sel.matches(view.reason):
                out.append(view)
                if len(out) >= limit:
                    break
        if not out:
            raise NothingMatchedError(f"nothing matched: {describe(sel)}")
        return out
    finally:
        consumer.close()


def describe(sel: Selection) -> str:
    parts = [f"tenant {sel.tenant}", f"topics {', '.join(sel.topics)}"]
    if sel.reasons:
        parts.append(f"reason {', '.join(sorted(sel.reasons))}")
    if sel.since:
        parts.append(f"since {sel.since.isoformat()}")
    return "; ".join(parts)


def _shown(value: bytes | None, max_bytes: int) -> str:
    if value is None:
        return "(null)"
    text = redact_text(value[:max_bytes].decode("utf-8", errors="replace"))
    more = len(value) - max_bytes
    return text + (f"\n... ({more} more bytes not shown)" if more > 0 else "")


def read_original_command(topic: str, partition: int, offset: int) -> str:
    return (
        f"scorestream kafka kafka-console-consumer --topic {topic} --partition {partition} "
        f"--offset {offset} --max-messages 1 --property print.headers=true "
        f"--consumer-property max.partition.fetch.bytes={MAX_MESSAGE_BYTES} "
        "--consumer-property isolation.level=read_committed"
    )


def render(view: DeadLetterView, *, max_bytes: int = 4096) -> str:
    """A dead letter for a terminal: secrets redacted (header values under secret-looking names,
    secrets in text, URLs' secret parts, card numbers)."""
    when = datetime.fromtimestamp(view.timestamp_ms / 1000, UTC).isoformat(timespec="seconds")
    src_topic, src_p, src_o = view.source()
    lines = [
        f"== {view.coordinates}  reason={redact_text(view.reason)}  time={when}  "
        f"source={redact_text(src_topic)}/{src_p}@{src_o}  "
        f"re-driven={redrive_count(view.headers)}",
        f"key: {_shown(view.key, 256)}",
        "headers:",
    ]
    for name, value in view.headers:
        shown = redact(_text(value), name) if value is not None else "(null)"
        lines.append(f"  {redact_text(name)}: {shown}")
    target = view.pointer_target() if view.pointer else None
    if view.pointer:
        if target is None:
            lines.append("pointer: (unreadable pointer value)")
        else:
            topic, partition, offset = target
            lines.append(
                f"pointer: the original ({last_header(view.headers, dlq.SOURCE_SIZE)} bytes) was "
                f"too large to copy; it is at {topic}/{partition}@{offset} for that topic's "
                "retention. Read it with:"
            )
            lines.append(f"  {read_original_command(topic, partition, offset)}")
    size = len(view.value) if view.value is not None else 0
    lines.append(f"{'pointer value' if view.pointer else 'payload'} ({size} bytes):")
    lines.extend(f"  {line}" for line in _shown(view.value, max_bytes).splitlines() or [""])
    return "\n".join(lines)


# -- redrive -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Refusal:
    coordinates: str
    reason: str
    why: str


@dataclass(slots=True)
class RedriveReport:
    dry_run: bool
    moved: dict[tuple[str, str, str], int] = field(default_factory=dict)
    """(DLQ topic, reason, target topic) → records (would be) re-driven."""
    refused: list[Refusal] = field(default_factory=list)
    refused_count: int = 0
    already: int = 0
    """Matching dead letters at positions a previous re-drive already moved past."""
    transactions: int = 0
    committed: int = 0
    """Records re-driven by the transactions committed so far."""
    skipped_offsets: int = 0
    """Offsets not read at all because every selected reason's group is past them."""

    @property
    def moved_total(self) -> int:
        return sum(self.moved.values())

    @property
    def matched(self) -> int:
        return self.moved_total + self.refused_count + self.already

    def refuse(self, view: DeadLetterView, why: str) -> None:
        self.refused_count += 1
        if len(self.refused) < MAX_REFUSED_LISTED:
            self.refused.append(Refusal(view.coordinates, view.reason, why))


def redrive_group(tenant: str, reason: str) -> str:
    """The consumer group holding how far ``reason``'s dead letters of ``tenant`` were moved."""
    return f"{tenant}.dlq-redrive.{re.sub(r'[^A-Za-z0-9_.-]', '_', reason)[:100]}"


def transactional_id(tenant: str) -> str:
    return f"{tenant}.dlq-redrive"


def operator_acl_rules(tenant: str) -> list[AclRule]:
    """What a principal needs to run ``scorestream dlq`` for ``tenant`` (and nothing of another
    tenant): read the DLQs and their source streams (a pointer dead letter is re-driven from the
    original's coordinates), write the streams back (``decisions`` for the retry topic's), the
    tool's groups and its transactional id."""
    dlqs = [f"{tenant}.{s}" for s in dlq_streams()]
    sources = sorted({t.removesuffix(".dlq") for t in dlqs})
    targets = sorted({_target(tenant, t.removesuffix(".dlq"))[0] for t in dlqs})
    rules = [AclRule("topic", t, "literal", ("Read", "Describe")) for t in (*dlqs, *sources)]
    rules += [AclRule("topic", t, "literal", ("Write", "Describe")) for t in targets]
    rules.append(AclRule("group", f"{tenant}.dlq-", "prefix", ("Read",)))
    rules.append(
        AclRule("transactionalId", transactional_id(tenant), "prefix", ("Write", "Describe"))
    )
    return rules


@dataclass(frozen=True, slots=True)
class Planned:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers


class _Cursors:
    """Per reason, the committed positions of its group on the selected partitions."""

    def __init__(self, kafka: KafkaSettings, tenant: str, tps: list[tuple[str, int]]) -> None:
        self.kafka, self.tenant, self.tps = kafka, tenant, tps
        self.consumers: dict[str, Consumer] = {}
        self.positions: dict[str, dict[tuple[str, int], int]] = {}

    def of(self, reason: str) -> dict[tuple[str, int], int]:
        if reason not in self.positions:
            if len(self.positions) >= MAX_REASONS:
                raise ConfigError(
                    f"more than {MAX_REASONS} distinct reasons: re-drive them with --reason"
                )
            group = redrive_group(self.tenant, reason)
            consumer = _consumer(self.kafka, group)
            self.consumers[reason] = consumer
            try:
                got = consumer.committed([TopicPartition(t, p) for t, p in self.tps], timeout=30)
            except KafkaException as exc:
                if _denied(exc.args[0]):
                    raise _access(f"read the offsets of group {group}", exc.args[0]) from exc
                raise KafkaClientError(f"cannot read group {group}'s offsets: {exc}") from exc
            self.positions[reason] = {(tp.topic, tp.partition): tp.offset for tp in got}
        return self.positions[reason]

    def close(self) -> None:
        for consumer in self.consumers.values():
            consumer.close()


class _Batch:
    def __init__(self) -> None:
        self.records: list[Planned] = []
        self.bytes = 0
        self.upto: dict[str, dict[tuple[str, int], int]] = {}
        """reason → (topic, partition) → the position to commit."""

    def passed(self, reason: str, view: DeadLetterView) -> None:
        self.upto.setdefault(reason, {})[(view.topic, view.partition)] = view.offset + 1

    def add(self, out: Planned) -> None:
        self.records.append(out)
        self.bytes += len(out.value or b"") + len(out.key or b"")


def _expected_source(dlq_topic: str) -> str:
    return dlq_topic.removesuffix(".dlq")


def _target(tenant: str, source: str) -> tuple[str, str | None]:
    stream = source.removeprefix(f"{tenant}.")
    if stream in REDIRECTS:
        target, drop = REDIRECTS[stream]
        return f"{tenant}.{target}", drop
    return source, None


def _fetch(consumer: Consumer, topic: str, partition: int, offset: int) -> Message | None:
    """The committed record at ``topic/partition@offset``, or None when it is gone."""
    try:
        low, high = watermarks(consumer, TopicPartition(topic, partition))
    except KafkaException as exc:
        if _denied(exc.args[0]):
            raise _access(f"read {topic}", exc.args[0]) from exc
        return None
    if not low <= offset < high:
        return None
    consumer.assign([TopicPartition(topic, partition, offset)])
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1, timeout=0.5):
                err = msg.error()
                if err is not None:
                    if _denied(err):
                        raise _access(f"read {topic}", err)
                    continue
                return msg if msg.offset() == offset else None
            [pos] = consumer.position([TopicPartition(topic, partition)])
            if pos.offset > offset:
                return None  # aborted or a control record
        return None
    finally:
        consumer.unassign()


def plan(
    view: DeadLetterView,
    tenant: str,
    max_redrives: int,
    fetch: Callable[[str, int, int], DeadLetterView | None],
    report: RedriveReport,
) -> Planned | None:
    """The record to re-publish for ``view``, or None (refused, reported)."""
    expected = _expected_source(view.topic)
    source, _, _ = view.source()
    if source != expected:
        report.refuse(view, f"its source topic is {source!r}, not {expected} (the DLQ's stream)")
        return None
    count = redrive_count(view.headers)
    key, value, headers = view.key, view.value, view.headers
    if view.pointer:
        target = view.pointer_target()
        if target is None or target[0] != expected:
            report.refuse(view, "pointer value unreadable or naming another topic")
            return None
        orig = fetch(*target)
        if orig is None:
            report.refuse(view, f"the original {target[0]}/{target[1]}@{target[2]} is gone")
            return None
        key, value, headers = orig.key, orig.value, orig.headers
        count = max(count, redrive_count(orig.headers))
    if count >= max_redrives:
        report.refuse(view, f"re-driven {count} times already (max {max_redrives})")
        return None
    topic, drop = _target(tenant, source)
    kept = [
        (n, v)
        for n, v in headers
        if not n.startswith(dlq.PREFIX) and not (drop and n.startswith(drop))
    ]
    return Planned(topic, key, value, [*kept, (dlq.REDRIVE_COUNT, str(count + 1).encode())])


def redrive(
    sel: Selection,
    *,
    kafka: KafkaSettings | None = None,
    settings: DlqSettings | None = None,
    dry_run: bool = False,
    progress: Progress = _quiet,
) -> RedriveReport:
    kafka = kafka or KafkaSettings()
    settings = settings or DlqSettings()
    report = RedriveReport(dry_run)
    reader = _consumer(kafka, f"{sel.tenant}.dlq-redrive")
    originals = _consumer(kafka, f"{sel.tenant}.dlq-redrive")
    cursors: _Cursors | None = None
    producer: Producer | None = None
    try:
        topics = existing_topics(reader, sel)
        spans = ranges(reader, topics, sel.since)
        if not dry_run:
            # fence any other run first (same transactional id): the positions read next are
            # then final (a run that committed before is seen, one still open is aborted)
            producer = _producer(kafka, sel.tenant)
        cursors = _Cursors(kafka, sel.tenant, sorted(spans))
        skipped = _skip_moved(spans, cursors, sel.reasons)
        report.skipped_offsets = sum(e - s for s, e in spans.values()) - sum(
            e - s for s, e in skipped.values()
        )
        spans = skipped
        batch = _Batch()

        def fetch(topic: str, partition: int, offset: int) -> DeadLetterView | None:
            msg = _fetch(originals, topic, partition, offset)
            return None if msg is None else DeadLetterView.of(msg)

        for view in read(reader, spans, progress=progress, label="redrive"):
            reason = view.reason
            if not sel.matches(reason):
                continue
            if view.offset < cursors.of(reason).get((view.topic, view.partition), -1):
                report.already += 1
                continue
            batch.passed(reason, view)
            out = plan(view, sel.tenant, settings.max_redrives, fetch, report)
            if out is not None:
                key = (view.topic, reason, out.topic)
                report.moved[key] = report.moved.get(key, 0) + 1
                if not dry_run:
                    batch.add(out)
            if producer is not None and (
                len(batch.records) >= settings.batch_records or batch.bytes >= BATCH_BYTES
            ):
                _commit(producer, batch, cursors, report)
                batch = _Batch()
        if producer is not None and batch.upto:
            _commit(producer, batch, cursors, report)
    finally:
        reader.close()
        originals.close()
        if cursors is not None:
            cursors.close()
        if producer is not None:
            producer.flush(10)
    if not report.matched and not report.skipped_offsets:
        raise NothingMatchedError(f"nothing matched: {describe(sel)}")
    return report


def _skip_moved(
    spans: dict[tuple[str, int], tuple[int, int]], cursors: _Cursors, reasons: frozenset[str]
) -> dict[tuple[str, int], tuple[int, int]]:
    """With a reason filter, start where the earliest of the selected reasons' groups is (with
    none, any reason can be new: read from the start)."""
    if not reasons:
        return spans
    out = {}
    for tp, (start, end) in spans.items():
        floor = min(max(cursors.of(r).get(tp, -1), start) for r in reasons)
        out[tp] = (min(floor, end), end)
    return out


def _producer(kafka: KafkaSettings, tenant: str) -> Producer:
    conf = transactional_producer_config(
        kafka, transactional_id=transactional_id(tenant), client_id=CLIENT_ID
    )
    producer = Producer(conf)
    try:
        producer.init_transactions(60)
    except KafkaException as exc:
        if _denied(exc.args[0]):
            raise _access(f"use transactional id {transactional_id(tenant)}", exc.args[0]) from exc
        raise KafkaClientError(f"cannot start a re-drive transaction: {exc}") from exc
    return producer


def _commit(producer: Producer, batch: _Batch, cursors: _Cursors, report: RedriveReport) -> None:
    """One transaction: the batch's records and, per reason, the positions it moved past."""
    delivery_errors: list[str] = []

    def on_delivery(err: KafkaError | None, _: Message) -> None:
        if err is not None:
            delivery_errors.append(str(err))

    try:
        producer.begin_transaction()
        for out in batch.records:
            while True:
                try:
                    producer.produce(
                        out.topic,
                        key=out.key,
                        value=out.value,
                        headers=list(out.headers),
                        on_delivery=on_delivery,
                    )
                    break
                except BufferError:
                    producer.poll(0.1)
            producer.poll(0)
        for reason, upto in batch.upto.items():
            positions = cursors.of(reason)
            offsets = [
                TopicPartition(t, p, max(o, positions.get((t, p), -1)))
                for (t, p), o in upto.items()
            ]
            producer.send_offsets_to_transaction(
                offsets, cursors.consumers[reason].consumer_group_metadata(), 60
            )
        producer.commit_transaction(120)
    except KafkaException as exc:
        err: Any = exc.args[0]
        with contextlib.suppress(KafkaException):
            producer.abort_transaction(60)
        if _denied(err):
            raise _access("write the re-driven records and their positions", err) from exc
        raise KafkaClientError(
            f"re-drive transaction failed, nothing of its batch moved ({report.committed} "
            f"records re-driven by this run's earlier transactions): {exc}"
        ) from exc
    if delivery_errors:  # cannot happen after a successful commit; checked all the same
        raise KafkaClientError(f"re-drive delivery failed: {delivery_errors[0]}")
    report.transactions += 1
    report.committed += len(batch.records)
    for reason, upto in batch.upto.items():
        positions = cursors.positions[reason]
        for tp, o in upto.items():
            positions[tp] = max(o, positions.get(tp, -1))
