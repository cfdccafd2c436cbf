"""The ``scorestream dlq`` subcommand (:mod:`scorestream.ops.dlq` does the work)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from scorestream.errors import ConfigError

if TYPE_CHECKING:
    from scorestream.ops.dlq import Listing, RedriveReport

DESCRIPTION = """\
Dead letters of a tenant (the <tenant>.<stream>.dlq topics; docs/operations.md, "Re-driving
dead letters").
  list     counts by DLQ topic and dlq.reason (read_committed; from the beginning or --since)
  show     records' headers and payloads, secrets redacted (--limit; or --topic,
           --partition and --offset for one record)
  redrive  re-publish selected dead letters to their original topic with their original key and
           headers plus dlq.redrive.count, exactly once (positions kept per reason in the
           consumer group <tenant>.dlq-redrive.<reason>); --dry-run prints what would move
Progress of long reads goes to stderr."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dlq = sub.add_parser(
        "dlq",
        help="dead letters: 'list' by reason, 'show' records, 'redrive' them once fixed",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dlq.add_argument("action", choices=("list", "show", "redrive"), help="what to do")
    dlq.add_argument("--tenant", required=True, help="the tenant whose dead letters to read")
    dlq.add_argument(
        "--topic",
        action="append",
        metavar="STREAM",
        help="a DLQ by its stream (predictions, decisions, ...; repeatable; default: all)",
    )
    dlq.add_argument(
        "--reason",
        action="append",
        help="only dead letters with this dlq.reason (repeatable; default: any)",
    )
    dlq.add_argument(
        "--since",
        help="only records written at or after this time: ISO 8601 (UTC if no offset) or an "
        "age such as 30m, 2h, 7d",
    )
    dlq.add_argument("--partition", type=int, help="show: only this partition of the DLQ")
    dlq.add_argument(
        "--offset", type=int, help="show: the record at this offset (with --topic, --partition)"
    )
    dlq.add_argument(
        "--limit", type=int, default=10, help="show: at most this many records (default 10)"
    )
    dlq.add_argument(
        "--max-bytes",
        type=int,
        default=4096,
        help="show: payload bytes printed per record (default 4096)",
    )
    dlq.add_argument(
        "--max-redrives",
        type=int,
        help="redrive: refuse a record re-driven this many times already (default "
        "SCORESTREAM_DLQ_MAX_REDRIVES, 3)",
    )
    dlq.add_argument(
        "--dry-run", action="store_true", help="redrive: print what would move, change nothing"
    )
    dlq.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from scorestream.ops import dlq  # noqa: PLC0415  (keep `--help` fast)

    sel = dlq.Selection.of(args.tenant, args.topic, args.reason, args.since)
    if args.action == "list":
        listing = dlq.list_dead_letters(sel, progress=dlq.stderr_progress)
        _print_listing(listing)
        return 0
    if args.action == "show":
        if args.limit < 1:
            raise ConfigError("--limit must be at least 1")
        views = dlq.select(
            sel,
            partition=args.partition,
            offset=args.offset,
            limit=args.limit,
            progress=dlq.stderr_progress,
        )
        for view in views:
            _out(dlq.render(view, max_bytes=max(0, args.max_bytes)))
        return 0
    if args.action == "redrive":
        overrides = {} if args.max_redrives is None else {"max_redrives": args.max_redrives}
        settings = dlq.DlqSettings(**overrides)
        report = dlq.redrive(
            sel, settings=settings, dry_run=args.dry_run, progress=dlq.stderr_progress
        )
        _print_report(report, settings.max_redrives)
        return 0
    raise AssertionError(args.action)


def _out(*parts: object) -> None:
    sys.stdout.write(" ".join(str(p) for p in parts) + "\n")


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def _print_listing(listing: Listing) -> None:
    rows = sorted(listing.counts.items())
    width = max([len("topic"), *(len(t) for (t, _), _ in rows)])
    rwidth = max([len("reason"), *(len(r) for (_, r), _ in rows)])
    _out(f"{'topic':{width}} {'reason':{rwidth}} {'records':>8}  first / last")
    for (topic, reason), count in rows:
        _out(
            f"{topic:{width}} {reason:{rwidth}} {count.records:>8}  "
            f"{_time(count.first_ms)} / {_time(count.last_ms)}"
        )
    _out(f"{listing.total} dead letters in {len(listing.topics)} DLQ topics")


def _print_report(report: RedriveReport, max_redrives: int) -> None:
    verb = "would re-drive" if report.dry_run else "re-drove"
    if report.moved_total:
        _out(f"{verb} {report.moved_total} dead letters:")
        for (topic, reason, target), n in sorted(report.moved.items()):
            _out(f"  {topic} {reason}: {n} -> {target}")
    else:
        _out(
            "nothing to re-drive: every matching dead letter was re-driven (or refused) by an "
            f"earlier run ({report.refused_count} refused now)"
        )
    if report.refused_count:
        _out(f"refused {report.refused_count} (left in the DLQ):")
        for r in report.refused:
            _out(f"  {r.coordinates} {r.reason}: {r.why}")
        if report.refused_count > len(report.refused):
            _out(f"  ... and {report.refused_count - len(report.refused)} more")
    if report.already and report.moved_total:
        _out(f"skipped {report.already} re-driven by an earlier run")
    if not report.dry_run and report.moved_total:
        _out(f"committed in {report.transactions} transaction(s); max re-drives {max_redrives}")
