"""Dispatch for ``scorestream bench <name>``: one benchmark, or ``all`` of them in one run.

Every benchmark needs a broker: ``KAFKA_BOOTSTRAP_SERVERS`` if set, else the local development
broker (started when it is not running, as the tests do). ``--smoke`` runs a seconds-long
version (for CI) and writes to ``var/bench/smoke`` so the committed results stay untouched.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import RESULTS, ROOT

SMOKE_DIR = ROOT / "var" / "bench" / "smoke"


def ensure_broker() -> str:
    """The bootstrap address the benchmarks (and the processes they start) use."""
    existing = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if existing:
        return existing
    from scorestream.dev.broker import LocalBroker  # noqa: PLC0415

    state = LocalBroker().start(progress=print)
    os.environ["KAFKA_BOOTSTRAP_SERVERS"] = state.bootstrap
    return state.bootstrap


def _limits(smoke: float | None, out: Path, name: str, cmd: str) -> Any:
    from bench import limits  # noqa: PLC0415

    return limits.run(smoke, out, name=name, command=cmd)


def _worker(smoke: float | None, out: Path, name: str, cmd: str) -> Any:
    from bench import worker_bench  # noqa: PLC0415

    plan = worker_bench.make_plan(quick=smoke is not None, smoke_s=smoke)
    results = worker_bench.run(plan, retrain=False, results_dir=out, name=name, command=cmd)
    from bench.worker_report import print_tables  # noqa: PLC0415

    print_tables(results)
    return results


def _enricher(smoke: float | None, out: Path, name: str, cmd: str) -> Any:
    from bench import enricher  # noqa: PLC0415

    return enricher.run(smoke, out, name=name, command=cmd)


def _e2e(smoke: float | None, out: Path, name: str, cmd: str) -> Any:
    from bench import e2e  # noqa: PLC0415

    return e2e.run(smoke, out, name=name, command=cmd)


def _latency(smoke: float | None, out: Path, name: str, cmd: str) -> Any:
    from bench import latency  # noqa: PLC0415

    return latency.run(smoke, out, name=name, command=cmd)


def _peers(smoke: float | None, out: Path, name: str, cmd: str) -> Any:
    from bench import peers  # noqa: PLC0415

    return peers.run(smoke, out, name=name, command=cmd)


def _services(smoke: float | None, out: Path, name: str, cmd: str) -> Any:
    from bench import services  # noqa: PLC0415

    return services.run(smoke, out, name=name, command=cmd)


BENCHMARKS: dict[str, Callable[[float | None, Path, str, str], Any]] = {
    "limits": _limits,
    "worker": _worker,
    "enricher": _enricher,
    "services": _services,
    "e2e": _e2e,
    "latency": _latency,
    "peers": _peers,
}


def run_suite(
    name: str, *, smoke_s: float | None, results_dir: Path | None, out: str | None
) -> int:
    bootstrap = ensure_broker()
    target = results_dir or (SMOKE_DIR if smoke_s is not None else RESULTS)
    names = list(BENCHMARKS) if name == "all" else [name]
    t0 = time.perf_counter()
    for n in names:
        cmd = f"scorestream bench {n}" + (f" --smoke {smoke_s:g}" if smoke_s is not None else "")
        file_name = out if out and name != "all" else n
        if out and name != "all":
            cmd += f" --out {out}"
        print(f"== {n} (broker {bootstrap}) -> {target / file_name}.json", flush=True)
        t1 = time.perf_counter()
        BENCHMARKS[n](smoke_s, target, file_name, cmd)
        print(f"== {n} done in {time.perf_counter() - t1:.0f}s", flush=True)
    print(f"bench {name}: {time.perf_counter() - t0:.0f}s, results in {target}/")
    return 0
