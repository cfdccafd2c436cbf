"""Every ``scorestream ...`` command the runbook (docs/slo.md) names exists (issue 17).

The runbook told on-call operators to use ``scorestream dlq``, which did not exist. Each command
quoted in docs/slo.md (inline code or a code block) must parse with the CLI's real parser, with
placeholders such as ``<tenant>`` filled in, and its subcommand's ``--help`` must work.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from scorestream.cli import build_parser, main
from scorestream.services import NAMES as SERVICES

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = (ROOT / "docs" / "slo.md",)
_INLINE = re.compile(r"`(scorestream [^`]+)`")
_BLOCK = re.compile(r"```[a-z]*\n(.*?)```", re.DOTALL)
_PLACEHOLDER = re.compile(r"<[^>]+>")


def commands(text: str) -> list[str]:
    """``scorestream ...`` commands in inline code and in code blocks (one per line, ``\\``
    continuations joined)."""
    found = [m.group(1) for m in _INLINE.finditer(text)]
    for block in _BLOCK.findall(text):
        for raw in block.replace("\\\n", " ").splitlines():
            line = raw.strip().removeprefix("$ ")
            if line.startswith("scorestream "):
                found.append(line)
    return found


def _params() -> list[object]:
    out = []
    for path in RUNBOOKS:
        for command in commands(path.read_text()):
            out.append(pytest.param(command, id=f"{path.name}: {command}"))
    return out


PARAMS = _params()


def test_the_runbook_names_the_dlq_commands() -> None:
    named = {shlex.split(c)[1:3][-1] for c in commands(RUNBOOKS[0].read_text())}
    assert {"list", "show", "redrive"} <= named


@pytest.mark.parametrize("command", PARAMS)
def test_runbook_command_exists(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = shlex.split(_PLACEHOLDER.sub("demo", command))[1:]
    assert argv, command
    if argv[0] not in SERVICES:  # a service's own main parses its flags
        build_parser().parse_args(argv)  # exits 2 on an unknown command or option
    with pytest.raises(SystemExit) as info:
        main([argv[0], "--help"] if argv[0] in SERVICES else [*argv[:1], "--help"])
    assert info.value.code == 0, command
    assert "usage:" in capsys.readouterr().out
