"""The README's Performance table is exactly what bench/results/*.json say."""

from __future__ import annotations

import re
from pathlib import Path

from bench.common import percentiles
from bench.readme import BEGIN, END, block, rows

ROOT = Path(__file__).resolve().parents[2]


def test_readme_performance_table_matches_the_result_files() -> None:
    readme = (ROOT / "README.md").read_text()
    assert BEGIN in readme
    assert END in readme
    current = readme[readme.index(BEGIN) : readme.index(END) + len(END)]
    assert current == block(), "rerun: .venv/bin/python -m bench.readme --write"


def test_every_figure_names_its_command_and_file() -> None:
    for row in rows()[2:]:
        assert "bench/results/" in row
        if "`scorestream bench " in row:
            continue
        # the A/B of two commits is a module of bench/ (it checks out worktrees; no CLI verb)
        match = re.search(r"`python -m bench\.(\w+) ", row)
        assert match, row
        assert (ROOT / "bench" / f"{match.group(1)}.py").is_file(), row


def test_percentiles() -> None:
    p = percentiles([float(i) for i in range(1, 1001)])
    assert p["p50"] == 500.5
    assert p["max"] == 1000.0
    assert p["p99_9"] is not None
    assert p["p99"] is not None
    assert p["p99"] < p["p99_9"] < 1000.0
    assert percentiles([])["p50"] is None
