"""``scorestream dlq list`` and ``show`` (:mod:`scorestream.ops.dlq`): counts by topic and
reason, and records rendered for a terminal with their secrets redacted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from scorestream import dlq
from scorestream.errors import ConfigError
from scorestream.logs import redact, redact_text
from scorestream.ops.dlq.clients import _consumer
from scorestream.ops.dlq.reading import Progress, _quiet, existing_topics, ranges, read
from scorestream.ops.dlq.selection import NothingMatchedError, Selection, describe
from scorestream.ops.dlq.views import DeadLetterView, _text, last_header, redrive_count
from scorestream.settings import KafkaSettings
from scorestream.topics import MAX_MESSAGE_BYTES

MAX_REASONS = 200
"""Distinct reasons counted per topic; more are counted as ``(other)`` (memory stays bounded)."""


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
