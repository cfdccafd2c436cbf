"""``retrain``'s audit window and the streamed rows: latest complete revision, bounded."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import pytest

from pipelines import cli as pipelines_cli
from pipelines import sources
from schemas.events import AuditRecord, AuditStatus
from scorestream.features import FEATURE_SPEC
from tests.factories import every_contract


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    pipelines_cli.register(parser.add_subparsers())
    return parser.parse_args(["retrain", *argv])


def test_the_default_window_is_the_last_days() -> None:
    window = pipelines_cli.retrain_window(parse("--days", "10"))
    assert window.until is None
    assert window.since is not None
    assert abs(datetime.now(UTC) - timedelta(days=10) - window.since) < timedelta(seconds=5)
    assert window.max_rows == sources.DEFAULT_MAX_ROWS == pipelines_cli.DEFAULT_MAX_ROWS


def test_since_and_until_are_utc_unless_zoned() -> None:
    window = pipelines_cli.retrain_window(
        parse("--since", "2026-11-01", "--until", "2026-11-20T12:00+01:00", "--max-rows", "5")
    )
    assert window.since == datetime(2026, 11, 1, tzinfo=UTC)
    assert window.until == datetime(2026, 11, 20, 11, tzinfo=UTC)
    assert window.max_rows == 5


@pytest.mark.parametrize(
    "argv",
    [
        ("--since", "yesterday"),
        ("--max-rows", "0"),
        ("--days", "-3"),
    ],
)
def test_bad_window_arguments_are_refused(argv: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit):
        parse(*argv)


@pytest.mark.parametrize(
    "argv",
    [
        ("--since", "2026-11-01", "--days", "3"),
        ("--since", "2026-11-02", "--until", "2026-11-01"),
    ],
)
def test_contradicting_windows_are_refused(argv: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit):
        pipelines_cli.retrain_window(parse(*argv))


def _audit() -> AuditRecord:
    return next(e for e in every_contract() if isinstance(e, AuditRecord))


def test_rows_keep_the_latest_complete_revision_once() -> None:
    base = _audit()
    assert base.features is not None
    features = {name: 0.0 for name in FEATURE_SPEC.names}
    complete = base.model_copy(
        update={"features": features, "feature_spec_hash": FEATURE_SPEC.hash}
    )
    incomplete = complete.model_copy(update={"status": AuditStatus.INCOMPLETE})
    rows = sources._Rows()
    assert rows.add(incomplete, 10)
    assert len(rows.result()[0]) == 0
    amended = complete.model_copy(update={"revision": 2, "supersedes": 1})
    assert rows.add(amended, 10)
    assert rows.add(complete, 10)  # an older revision read later changes nothing
    txs, matrix = rows.result()
    assert len(txs) == 1
    assert matrix.shape == (1, len(FEATURE_SPEC))
    other = complete.model_copy(update={"transaction_id": "tx-0002"})
    assert not rows.add(other, 1)  # the cap
    stale = complete.model_copy(update={"feature_spec_hash": "0" * 64, "revision": 3})
    assert rows.add(stale, 10)  # a later revision that is unusable withdraws the row
    assert len(rows.result()[0]) == 0
