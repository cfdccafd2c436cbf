"""Explicit partitions: dead letters below the committed mark were written by an earlier run."""

from __future__ import annotations

from schemas.errors import RawRecord
from scorestream.dlq import DeadLetter
from scorestream.partitions import Marks


def _dead(topic: str, partition: int, offset: int | None) -> DeadLetter:
    return DeadLetter(RawRecord(b"k", b"v", [], topic, partition, offset), "r", "E", "m")


def test_only_dead_letters_below_the_mark_of_their_partition_are_dropped() -> None:
    marks = Marks({("in", 0): 10, ("in", 1): 0})
    dead = [
        _dead("in", 0, 9),  # below the mark: written by an earlier run
        _dead("in", 0, 10),  # at the mark: not yet written
        _dead("in", 1, 3),  # mark 0: nothing was written
        _dead("in", 2, 1),  # no mark (nothing committed): kept
        _dead("other", 0, 1),
        _dead("in", 0, None),  # no offset (built in-process): kept
    ]
    kept = marks.keep(dead)
    assert [(d.raw.topic, d.raw.partition, d.raw.offset) for d in kept] == [
        ("in", 0, 10),
        ("in", 1, 3),
        ("in", 2, 1),
        ("other", 0, 1),
        ("in", 0, None),
    ]


def test_without_marks_everything_is_kept() -> None:
    dead = [_dead("in", 0, 1)]
    assert Marks().keep(dead) == dead
