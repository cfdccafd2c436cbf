"""``scorestream bench <name>``: the benchmark suite of ``bench/`` from the command line.

The benchmarks live in the repository's ``bench/`` package (they use the test generators and are
not shipped in the wheel); this module only parses the command and puts the repository root on
``sys.path`` so a source checkout can run them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from scorestream.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
NAMES = ("limits", "worker", "enricher", "services", "e2e", "latency", "peers", "all")


def _cmd(args: argparse.Namespace) -> int:
    if not (ROOT / "bench" / "suite.py").is_file():
        raise ConfigError("'scorestream bench' needs a source checkout (bench/ not found)")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from bench.suite import run_suite  # noqa: PLC0415  (bench/ is not an installed package)

    return run_suite(args.name, smoke_s=args.smoke, results_dir=args.results_dir, out=args.out)


def register(sub: Any) -> None:
    """Add the ``bench`` subcommand to the CLI's subparsers."""
    p = sub.add_parser(
        "bench",
        help="benchmarks: limits, worker, enricher, services (CPU per event), e2e (sync + async), "
        "latency (A/B), peers, all",
        description="Writes bench/results/<name>.json (machine, load, versions, settings, raw "
        "figures) and <name>.png. Needs a broker: KAFKA_BOOTSTRAP_SERVERS, else the local one "
        "(started if needed). 'all' runs every benchmark in one run.",
    )
    p.add_argument("name", choices=NAMES, help="the benchmark to run")
    p.add_argument(
        "--smoke",
        type=float,
        nargs="?",
        const=10.0,
        default=None,
        metavar="SECONDS",
        help="a seconds-long version (CI); results go to var/bench/smoke unless --results-dir",
    )
    p.add_argument(
        "--results-dir",
        type=Path,
        default=None,
        help="where results go (default bench/results; var/bench/smoke with --smoke)",
    )
    p.add_argument(
        "--out", default=None, help="result file name instead of <name> (e.g. e2e-baseline)"
    )
    p.set_defaults(func=_cmd)
