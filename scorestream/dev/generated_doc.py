"""The command line of a generated document (``docs/metrics.md``, ``docs/configuration.md``):
write it, or with ``--check`` fail when the committed one is stale."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path


def doc_main(
    argv: Sequence[str] | None,
    *,
    render: Callable[[], str],
    default: Path,
    module: str,
    description: str | None,
) -> int:
    """0: written (or current with ``--check``); 1: stale with ``--check``. ``description``: the
    generator's module docstring (``--help`` shows its first paragraph)."""
    summary = " ".join(description.split("\n\n")[0].split()) if description else None
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=summary)
    parser.add_argument("--check", action="store_true", help="fail if the document is stale")
    parser.add_argument("--output", type=Path, default=default)
    args = parser.parse_args(argv)
    text = render()
    output: Path = args.output
    if args.check:
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current != text:
            sys.stderr.write(f"{output} is stale: run python -m {module}\n")
            return 1
        return 0
    output.write_text(text, encoding="utf-8")
    sys.stdout.write(f"wrote {output}\n")
    return 0
