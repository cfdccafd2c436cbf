"""The order the xdist workers take the test files in (tests/conftest.py): the longest kinds
first, ``exclusive`` files last, path order kept within a kind."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import pytest

from tests.conftest import pytest_collection_modifyitems


@dataclass
class _Mark:
    name: str


@dataclass
class _Item:
    nodeid: str
    marks: tuple[str, ...] = ()

    def iter_markers(self) -> list[_Mark]:
        return [_Mark(m) for m in self.marks]


def test_files_are_ordered_by_kind_and_kept_whole() -> None:
    items = [
        _Item("tests/e2e/test_tracing.py::test_a", ("e2e", "slow")),
        _Item("tests/integration/test_a.py::test_x", ("integration",)),
        _Item("tests/integration/test_b.py::test_slow", ("integration", "slow")),
        _Item("tests/integration/test_b.py::test_fast", ("integration",)),
        _Item("tests/integration/test_overload.py::test_o", ("slow", "exclusive")),
        _Item("tests/unit/test_u.py::test_1"),
        _Item("tests/chaos/test_chaos_run.py::test_schedule"),
        _Item("tests/chaos/test_chaos_run.py::test_run", ("chaos", "slow")),
        _Item("tests/e2e/test_demo.py::test_demo", ("e2e",)),
        _Item("tests/unit/test_u.py::test_2"),
    ]
    pytest_collection_modifyitems(cast("list[pytest.Item]", items))
    assert [cast("Any", i).nodeid for i in items] == [
        "tests/chaos/test_chaos_run.py::test_schedule",  # a file is ranked by all its tests
        "tests/chaos/test_chaos_run.py::test_run",
        "tests/e2e/test_tracing.py::test_a",
        "tests/e2e/test_demo.py::test_demo",
        "tests/integration/test_b.py::test_slow",
        "tests/integration/test_b.py::test_fast",
        "tests/integration/test_a.py::test_x",
        "tests/unit/test_u.py::test_1",
        "tests/unit/test_u.py::test_2",
        "tests/integration/test_overload.py::test_o",
    ]
