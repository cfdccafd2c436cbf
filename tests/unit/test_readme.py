"""The README stays short and a way in (issue 19): at most 200 lines, the two set-up commands
first, every document under docs/ reachable from it, and every relative link in the README and
docs/ pointing at a file (and heading) that exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from urllib.parse import unquote

import pytest

from scorestream.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_LINES = 200
COMMANDS = ("make demo", "make check")
"""The two commands that do all the set-up on a fresh machine: the demo, then the test suite
(.ci/run runs "the README's test command")."""

_FENCE = re.compile(r"^(```|~~~)")
_LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")
_INLINE_CODE = re.compile(r"`[^`]*`")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def documents() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def prose(text: str) -> list[str]:
    """The lines outside fenced code blocks, with inline code removed."""
    out, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line.strip()):
            fenced = not fenced
            continue
        out.append("" if fenced else _INLINE_CODE.sub("", line))
    return out


def links(path: Path) -> list[str]:
    """Every link target in a document's prose (images included)."""
    found = []
    for line in prose(path.read_text(encoding="utf-8")):
        found += _LINK.findall(line) + _IMAGE.findall(line)
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = re.sub(r"[^\w\- ]", "", text.replace("`", "").strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors GitHub gives a document's headings (repeats get -1, -2, ...)."""
    seen: dict[str, int] = {}
    out = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line.strip()):
            fenced = not fenced
            continue
        match = _HEADING.match(line)
        if fenced or not match:
            continue
        base = slug(match.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def resolve(source: Path, target: str) -> tuple[Path, str] | None:
    """The file and anchor a relative link points at; None for an external link."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
        return None
    file, _, anchor = target.partition("#")
    path = (source.parent / unquote(file)).resolve() if file else source
    return path, unquote(anchor)


def reachable(start: Path) -> set[Path]:
    """Every document reachable from ``start`` by following relative links between .md files."""
    seen, todo = {start}, [start]
    while todo:
        current = todo.pop()
        for target in links(current):
            hit = resolve(current, target)
            if hit is None:
                continue
            path = hit[0]
            if path.suffix == ".md" and path.is_file() and path not in seen:
                seen.add(path)
                todo.append(path)
    return seen


def test_the_readme_is_at_most_200_lines() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_LINES, f"README.md has {len(lines)} lines (at most {MAX_LINES})"


def test_the_readme_starts_with_the_two_set_up_commands() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# "), "the title first"
    body = [line for line in lines[1:] if line.strip()]
    assert body[0].startswith("```"), "then the commands, before anything else"
    end = body.index("```", 1)
    commands = [line.split("#", 1)[0].strip() for line in body[1:end]]
    assert tuple(commands) == COMMANDS


@pytest.mark.parametrize("doc", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_every_document_is_linked_from_the_readme(doc: Path) -> None:
    linked = {hit[0] for t in links(README) if (hit := resolve(README, t))}
    assert doc.resolve() in linked, f"README.md does not link to docs/{doc.name}"


def test_every_document_under_docs_is_reachable_from_the_readme() -> None:
    found = reachable(README.resolve())
    missing = [p.relative_to(ROOT) for p in DOCS.rglob("*.md") if p.resolve() not in found]
    assert not missing, f"not reachable from README.md: {missing}"


def broken_links(doc: Path) -> list[str]:
    """The relative links of ``doc`` whose file, or heading in a markdown file, does not exist."""
    broken = []
    for target in links(doc):
        hit = resolve(doc, target)
        if hit is None:
            continue
        path, anchor = hit
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target}: no heading #{anchor} in {path.name}")
    return broken


@pytest.mark.parametrize("doc", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(doc: Path) -> None:
    broken = broken_links(doc)
    assert not broken, f"{doc.relative_to(ROOT)}: {broken}"


def test_broken_links_are_found(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other\n\n## A `code` heading: yes\n\n## A\n\n## A\n")
    doc = tmp_path / "doc.md"
    doc.write_text(
        "[ok](other.md) [ok](other.md#a-code-heading-yes) [ok](other.md#a-1) [ok](#top)\n"
        "# Top\n[gone](missing.md) [no anchor](other.md#nope) [web](https://example.com/x)\n"
        "`[in code](missing.md)`\n```\n[in a block](missing.md)\n```\n"
    )
    assert broken_links(doc) == [
        "missing.md: no such file",
        "other.md#nope: no heading #nope in other.md",
    ]


def readme_commands() -> list[str]:
    """The ``$ scorestream ...`` lines of the README's console blocks (``\\`` lines joined)."""
    text = README.read_text(encoding="utf-8").replace("\\\n", " ")
    return [
        line.removeprefix("$ ").split("  #", 1)[0].strip()
        for line in text.splitlines()
        if line.startswith("$ scorestream ")
    ]


def test_the_readmes_commands_exist() -> None:
    found = readme_commands()
    assert {"scorestream up --tenant demo", "scorestream down --tenant demo"} <= set(found)
    for command in found:
        build_parser().parse_args(shlex.split(command)[1:])  # exits 2 on an unknown command


def test_slugs_follow_github() -> None:
    assert slug("`scorestream up`: ready, or why not") == "scorestream-up-ready-or-why-not"
    assert slug("Open Inference Protocol (KServe V2)") == "open-inference-protocol-kserve-v2"
    assert slug("Score a transaction: `POST /v1/transactions:score`") == (
        "score-a-transaction-post-v1transactionsscore"
    )
    assert slug("Strimzi topics and users") == "strimzi-topics-and-users"
