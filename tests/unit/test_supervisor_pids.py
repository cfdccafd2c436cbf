"""The supervisor never signals a recycled pid: a record matches only its own process."""

from __future__ import annotations

import os

from scorestream.dev.supervisor import _same_process, _start_ticks


def test_a_record_matches_only_the_process_that_was_started() -> None:
    me = os.getpid()
    start = _start_ticks(me)
    assert start is not None
    assert _same_process({"pid": me, "start": start})
    assert not _same_process({"pid": me, "start": start + 1})  # same pid, another process
    assert _same_process({"pid": me})  # records written before start times were kept


def test_dead_or_missing_pids_never_match() -> None:
    assert not _same_process({"pid": 0})
    assert not _same_process({"pid": None})
    assert not _same_process({"pid": 2**22 + 12345, "start": 1})
