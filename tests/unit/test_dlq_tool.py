"""The pure parts of ``scorestream dlq`` (scorestream/ops/dlq/): selection, what a re-drive
publishes for a dead letter (built by the kernel's own :class:`~scorestream.dlq.DeadLetter`),
refusals, and redacted rendering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas.errors import RawRecord
from scorestream import dlq
from scorestream.errors import ConfigError
from scorestream.ops.dlq import (
    DeadLetterView,
    RedriveReport,
    Selection,
    parse_since,
    plan,
    redrive_count,
    redrive_group,
    render,
    resolve_topics,
)

T = "acme"


def _view(
    record: dlq.DlqRecord, topic: str = f"{T}.predictions.dlq", offset: int = 7
) -> DeadLetterView:
    headers = [(k, v.encode() if isinstance(v, str) else v) for k, v in record.headers]
    return DeadLetterView(topic, 0, offset, 1_764_900_000_000, record.key, record.value, headers)


def _dead(
    headers: list[tuple[str, bytes | None]] | None = None,
    topic: str = f"{T}.predictions",
    value: bytes = b'{"x": 1}',
) -> dlq.DeadLetter:
    raw = RawRecord(b"acc-1", value, headers or [("ce_id", b"id-1")], topic, 3, 41)
    return dlq.DeadLetter(raw, "unknown_tenant", "TenantMismatch", "tenant 'x'")


def _never(topic: str, partition: int, offset: int) -> DeadLetterView | None:
    raise AssertionError("only a pointer reads its original")


def test_topics_by_stream_dlq_or_full_name() -> None:
    assert resolve_topics(T, ["predictions", "decisions.dlq", f"{T}.labels.dlq"]) == [
        f"{T}.predictions.dlq",
        f"{T}.decisions.dlq",
        f"{T}.labels.dlq",
    ]
    every = resolve_topics(T, None)
    assert f"{T}.transactions.dlq" in every
    assert all(t.endswith(".dlq") for t in every)
    with pytest.raises(ConfigError, match="nosuch"):
        resolve_topics(T, ["nosuch"])
    with pytest.raises(ConfigError, match="invalid tenant"):
        resolve_topics("Not A Tenant", None)


def test_since_as_a_time_or_an_age() -> None:
    now = datetime(2026, 12, 5, 6, 0, tzinfo=UTC)
    assert parse_since("2h", now) == now - timedelta(hours=2)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("2026-12-05T04:00:00Z") == datetime(2026, 12, 5, 4, tzinfo=UTC)
    assert parse_since("2026-12-05T04:00") == datetime(2026, 12, 5, 4, tzinfo=UTC)
    with pytest.raises(ConfigError, match="ISO 8601"):
        parse_since("yesterday")
    sel = Selection.of(T, reasons=["a"])
    assert sel.matches("a")
    assert not sel.matches("b")
    assert Selection.of(T).matches("anything")


def test_redrive_publishes_the_original_without_dlq_headers_and_counts() -> None:
    view = _view(
        _dead([("ce_id", b"id-1"), ("traceparent", b"00-ab")]).record("d", max_bytes=10**6)
    )
    report = RedriveReport(dry_run=False)
    out = plan(view, T, 3, _never, report)
    assert out is not None
    assert (out.topic, out.key, out.value) == (f"{T}.predictions", b"acc-1", b'{"x": 1}')
    assert out.headers == [
        ("ce_id", b"id-1"),
        ("traceparent", b"00-ab"),
        (dlq.REDRIVE_COUNT, b"1"),
    ]
    # dead-lettered again: the service copies the count with the raw headers; it counts on
    again = _view(_dead(out.headers).record("d", max_bytes=10**6))
    assert redrive_count(again.headers) == 1
    out2 = plan(again, T, 3, _never, report)
    assert out2 is not None
    assert out2.headers[-1] == (dlq.REDRIVE_COUNT, b"2")
    assert [n for n, _ in out2.headers].count(dlq.REDRIVE_COUNT) == 1


def test_a_record_re_driven_too_often_is_refused() -> None:
    view = _view(_dead([(dlq.REDRIVE_COUNT, b"3")]).record("d", max_bytes=10**6))
    report = RedriveReport(dry_run=False)
    assert plan(view, T, 3, _never, report) is None
    assert report.refused_count == 1
    assert "re-driven 3 times already (max 3)" in report.refused[0].why
    assert plan(view, T, 4, _never, RedriveReport(dry_run=False)) is not None


def test_smuggled_dlq_headers_cannot_redirect_a_redrive() -> None:
    """A producer puts ``dlq.source.topic`` (another tenant's topic) and a low count into the
    original: the service's own headers come last and win; a source that is not the DLQ's own
    stream is refused."""
    smuggled = [(dlq.SOURCE_TOPIC, b"victim.transactions"), (dlq.REDRIVE_COUNT, b"0")]
    record = _dead([*smuggled, (dlq.REDRIVE_COUNT, b"3")]).record("d", max_bytes=10**6)
    view = _view(record)
    assert view.source()[0] == f"{T}.predictions"
    assert redrive_count(view.headers) == 3
    # a DLQ record claiming another stream as its source (written by hand) is refused
    other = _view(_dead(topic="victim.transactions").record("d", max_bytes=10**6))
    report = RedriveReport(dry_run=False)
    assert plan(other, T, 3, _never, report) is None
    assert "not acme.predictions" in report.refused[0].why


def test_retry_topic_dead_letters_go_back_to_decisions_without_retry_headers() -> None:
    headers: list[tuple[str, bytes | None]] = [("ce_id", b"d-1"), ("retry.attempt", b"5")]
    record = _dead(headers, topic=f"{T}.alerts.retry").record("notifier", max_bytes=10**6)
    out = plan(_view(record, f"{T}.alerts.retry.dlq"), T, 3, _never, RedriveReport(False))
    assert out is not None
    assert out.topic == f"{T}.decisions"
    assert out.headers == [("ce_id", b"d-1"), (dlq.REDRIVE_COUNT, b"1")]


def test_a_pointer_is_re_driven_from_its_original() -> None:
    big = b"v" * 5000
    dead = _dead([("ce_id", b"id-1"), (dlq.REDRIVE_COUNT, b"1")], value=big)
    pointer = dead.pointer("d", max_bytes=10**6)
    view = _view(pointer)
    assert view.pointer
    original = _view(dlq.DlqRecord(b"acc-1", big, [("ce_id", b"id-1"), (dlq.REDRIVE_COUNT, b"1")]))
    asked: list[tuple[str, int, int]] = []

    def fetch(topic: str, partition: int, offset: int) -> DeadLetterView | None:
        asked.append((topic, partition, offset))
        return original

    out = plan(view, T, 3, fetch, RedriveReport(False))
    assert asked == [(f"{T}.predictions", 3, 41)]
    assert out is not None
    assert (out.key, out.value) == (b"acc-1", big)
    assert out.headers == [("ce_id", b"id-1"), (dlq.REDRIVE_COUNT, b"2")]
    gone = RedriveReport(False)
    assert plan(view, T, 3, lambda *_: None, gone) is None
    assert "is gone" in gone.refused[0].why
    assert "kafka-console-consumer --topic acme.predictions --partition 3 --offset 41" in render(
        view
    )


def test_render_redacts_headers_and_payload() -> None:
    value = b'{"card": "4111 1111 1111 1111", "api_key": "sk-123456", "u": "https://a:b@h.io/t"}'
    record = _dead([("authorization", b"Bearer tok-999999")], value=value).record(
        "d", max_bytes=10**6
    )
    text = render(_view(record))
    for secret in ("tok-999999", "4111 1111 1111 1111", "sk-123456", "a:b@", "/t"):
        assert secret not in text
    assert "authorization: ***" in text
    assert "411111******1111" in text
    assert "https://h.io/***" in text
    assert "dlq.reason: unknown_tenant" in text
    assert redrive_group(T, "unknown_tenant") == "acme.dlq-redrive.unknown_tenant"
