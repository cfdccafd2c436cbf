"""The performance table (docs/performance.md) and the README's headline figures are exactly what
bench/results/*.json say."""

from __future__ import annotations

import re
from pathlib import Path

from bench.common import percentiles
from bench.readme import (
    BEGIN,
    DOC,
    END,
    HEADLINE_BEGIN,
    HEADLINE_END,
    README,
    block,
    headline,
    headline_rows,
    rows,
    write,
)

ROOT = Path(__file__).resolve().parents[2]


def test_performance_table_matches_the_result_files() -> None:
    assert DOC == ROOT / "docs" / "performance.md"
    doc = DOC.read_text()
    assert BEGIN in doc
    assert END in doc
    current = doc[doc.index(BEGIN) : doc.index(END) + len(END)]
    assert current == block(), "rerun: .venv/bin/python -m bench.readme --write"


def test_readme_headline_matches_the_result_files() -> None:
    assert README == ROOT / "README.md"
    readme = README.read_text()
    current = readme[readme.index(HEADLINE_BEGIN) : readme.index(HEADLINE_END) + len(HEADLINE_END)]
    assert current == headline(), "rerun: .venv/bin/python -m bench.readme --write"
    assert len(headline_rows()) == 3
    assert "docs/performance.md" in readme


def test_write_replaces_only_the_generated_blocks(tmp_path: Path) -> None:
    doc, readme = tmp_path / "performance.md", tmp_path / "README.md"
    doc.write_text(f"before\n{BEGIN}\nold table\n{END}\nafter\n")
    readme.write_text(f"top\n{HEADLINE_BEGIN}\nold\n{HEADLINE_END}\nbottom\n")
    write(doc, readme)
    assert doc.read_text() == f"before\n{block()}\nafter\n"
    assert readme.read_text() == f"top\n{headline()}\nbottom\n"


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
