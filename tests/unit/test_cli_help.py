"""Every option and argument of the ``scorestream`` command line says what it is for."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from scorestream.cli import build_parser


def _walk(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.Action]]:
    for action in parser._actions:  # argparse has no public API to list a parser's actions
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction | argparse._VersionAction):
            yield path, action


def test_every_option_has_help_text() -> None:
    missing = sorted(
        f"{path} {'/'.join(action.option_strings) or action.dest}"
        for path, action in _walk(build_parser(), "scorestream")
        if not (action.help or "").strip() or action.help == argparse.SUPPRESS
    )
    assert missing == []


def test_the_walk_sees_the_whole_tree() -> None:
    paths = {path for path, _ in _walk(build_parser(), "scorestream")}
    for command in ("up", "down", "retrain", "models", "train", "broker", "chaos", "simulate"):
        assert f"scorestream {command}" in paths
