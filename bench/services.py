"""CPU per event of every consuming service, each alone on a fixed backlog, before and after.

One fresh tenant per arm: simulated transactions and labels are preloaded, the champion model
promoted; then the services run **one at a time**, in the flow's order, each on the backlog the
previous one left (so every input is real: the enricher's output feeds the worker, the worker's
the decision service, ...): merchant stage (to build the table the enricher reads; reported, not
in the table) → enricher → worker → decision → notifier → audit (enriched transactions,
predictions and decisions: three records per transaction) → monitor (predictions and labels).
For each: µs of CPU (user + system of the process, ``/proc/<pid>/stat``; and of its main thread,
the Python loop, apart from librdkafka's threads) per input record, from
its ``/readyz`` answering to its consumer group's committed offsets reaching the end of its
inputs — the start-up (imports, model load, table) is excluded (and so are the records the
group had committed when ``/readyz`` was first seen, polled every 10 ms: the CPU span does not
hold them). The monitor keeps no committed
offsets: it is measured from its ``/livez`` answering to its ``/readyz`` (its window rebuilt:
every input record read).

With ``SCORESTREAM_BENCH_BASELINE_TREE=<dir>`` (a worktree of another commit with its own
``.venv``, e.g. ``main`` before the batch codec), that tree's services run the same events on a
tenant of their own, the arms alternating round by round, and the table shows before/after.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench import data as bd
from bench.common import RESULTS, ROOT, finish, fmt, header, process_cpu_s, rand
from bench.enricher import (
    _cleanup,
    _committed,
    _ends,
    _events,
    _free_port,
    _preload,
    _ready,
    _stop,
    _until,
    _until_stable,
)
from pipelines import lifecycle
from pipelines.repository import ModelRepository
from scorestream.admin import ensure_tenant_topics
from scorestream.settings import KafkaSettings
from scorestream.topics import REGISTRY

SERVICES: dict[str, tuple[str, ...]] = {
    "enricher": ("transactions",),
    "worker": ("transactions.enriched",),
    "decision": ("predictions",),
    "notifier": ("decisions",),
    "audit": ("transactions.enriched", "predictions", "decisions"),
    "monitor": ("predictions", "labels"),
}
"""The services of the table and the streams each consumes (in the flow's order)."""

TARGET = 0.5
"""Each service's CPU per event after, as a fraction of before (issue 16)."""


def _live(port: int) -> bool:
    with (
        contextlib.suppress(OSError),
        urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=2) as r,
    ):
        return bool(r.status == 200)
    return False


def _start(
    python: str, cwd: Path, service: str, tenant: str, port: int, workdir: Path, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    cmd = [python, "-m", "scorestream", service, "--tenant", tenant, "--health-port", str(port)]
    if service in ("enricher", "merchant"):
        cmd += ["--state-dir", str(workdir / "state")]
    log = (workdir / f"{tenant}-{service}.log").open("ab")
    return subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env)


def _merchant(
    python: str, cwd: Path, tenant: str, kafka: KafkaSettings, workdir: Path, env: dict[str, str]
) -> dict[str, Any]:
    inputs = [REGISTRY.topic(s, tenant) for s in ("transactions", "labels")]
    total = _ends(kafka, inputs)
    port = _free_port()
    proc = _start(python, cwd, "merchant", tenant, port, workdir, env)
    try:
        _until(lambda: _ready(port), 180, "merchant ready")
        t0, cpu0 = time.monotonic(), process_cpu_s(proc.pid)
        group = f"{tenant}.merchant"
        _until(lambda: _committed(kafka, group, inputs) >= total, 600, "merchant re-keyed")
        activity = [REGISTRY.topic("merchant-activity", tenant)]
        _until_stable(lambda: _committed(kafka, group, activity), 2.0, 600, "aggregated")
        seconds, cpu = time.monotonic() - t0, process_cpu_s(proc.pid) - cpu0
    finally:
        _stop(proc)
    return {"input_records": total, "seconds": round(seconds, 2), "cpu_s": round(cpu, 2)}


def _one_service(
    service: str,
    python: str,
    cwd: Path,
    tenant: str,
    kafka: KafkaSettings,
    workdir: Path,
    env: dict[str, str],
) -> dict[str, Any]:
    inputs = [REGISTRY.topic(s, tenant) for s in SERVICES[service]]
    total = _ends(kafka, inputs)  # transactional topics: + commit markers (see records)
    port = _free_port()
    proc = _start(python, cwd, service, tenant, port, workdir, env)
    try:
        if service == "monitor":
            _poll(lambda: _live(port), 180, "monitor live")
            t0, cpu0, main0 = (
                time.monotonic(),
                process_cpu_s(proc.pid),
                process_cpu_s(proc.pid, main_thread=True),
            )
            _until(lambda: _ready(port), 600, "monitor window rebuilt")
            share = 1.0
        else:
            _poll(lambda: _ready(port), 180, f"{service} ready")
            t0, cpu0, main0 = (
                time.monotonic(),
                process_cpu_s(proc.pid),
                process_cpu_s(proc.pid, main_thread=True),
            )
            group = f"{tenant}.{service}"
            before = _committed(kafka, group, inputs)
            # a transactional input ends with a commit marker per partition, which no consumer
            # commits past: done when within that of the end and no longer moving
            markers = sum(bd.partitions_of(kafka, t) for t in inputs)
            _until(lambda: _committed(kafka, group, inputs) >= total - markers, 900, service)
            _until_stable(lambda: _committed(kafka, group, inputs), 1.0, 120, f"{service} done")
            end = _committed(kafka, group, inputs)
            # records committed before /readyz was seen (a batch or so) are not in the CPU span
            share = (end - before) / end if end else 1.0
        seconds, cpu = time.monotonic() - t0, process_cpu_s(proc.pid) - cpu0
        main = process_cpu_s(proc.pid, main_thread=True) - main0
    finally:
        _stop(proc)
    return {
        "offsets": total,
        "share_measured": round(share, 4),
        "seconds": round(seconds, 2),
        "cpu_s": round(cpu, 3),
        "main_thread_cpu_s": round(main, 3),
    }


def _poll(cond: Any, timeout: float, what: str) -> None:
    """Until ``cond()``, checking every 10 ms (the span measured starts when it holds)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.01)


def one_arm(
    arm: str,
    python: str,
    cwd: Path,
    items: list[tuple[str, Any]],
    kafka: KafkaSettings,
    repo: ModelRepository,
    version: str,
    workdir: Path,
) -> dict[str, Any]:
    tenant = rand("bs")
    ensure_tenant_topics(tenant)
    lifecycle.promote(repo, tenant=tenant, name=bd.MODEL_NAME, version=version, kafka=kafka)
    n = _preload(tenant, items, kafka)
    labels = len(items) - n
    env = os.environ | {"SCORESTREAM_MODELS_URL": str(repo.url), "SCORESTREAM_LOG_LEVEL": "WARNING"}
    out: dict[str, Any] = {"arm": arm, "tenant": tenant, "transactions": n, "labels": labels}
    try:
        out["merchant_stage"] = _merchant(python, cwd, tenant, kafka, workdir, env)
        per: dict[str, Any] = {}
        for service, streams in SERVICES.items():
            r = _one_service(service, python, cwd, tenant, kafka, workdir, env)
            records = round(
                sum(n if s != "labels" else labels for s in streams) * r["share_measured"]
            )
            r["input_records"] = records
            r["cpu_us_per_input_record"] = round(r["cpu_s"] / records * 1e6, 1)
            # the Python loop's share; the rest is librdkafka's threads (fetch, produce, commit)
            r["main_thread_cpu_us_per_input_record"] = round(
                r["main_thread_cpu_s"] / records * 1e6, 1
            )
            r["cpu_us_per_transaction"] = round(r["cpu_s"] / n * 1e6, 1)
            r["records_per_s"] = round(records / r["seconds"]) if r["seconds"] else None
            per[service] = r
            print(
                f"    {arm:>8} {service:>9}: {r['cpu_us_per_input_record']:>7} us CPU/record, "
                f"main thread {r['main_thread_cpu_us_per_input_record']} "
                f"({fmt(records)} records, {r['seconds']} s)",
                flush=True,
            )
        out["services"] = per
    finally:
        _cleanup(kafka, tenant)
    return out


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per service: the best (lowest) CPU per record of each arm, and after/before."""
    table: dict[str, Any] = {}
    for service in SERVICES:
        best: dict[str, float] = {}
        for run in runs:
            r = run.get("services", {}).get(service)
            if r is not None:
                us = float(r["cpu_us_per_input_record"])
                best[run["arm"]] = min(best.get(run["arm"], us), us)
        after, before = best.get("after"), best.get("before")
        ratio = round(after / before, 2) if after is not None and before else None
        main: dict[str, float] = {}  # the best of each arm, as for the process
        for run in runs:
            r = run.get("services", {}).get(service)
            if r is not None:
                us = float(r["main_thread_cpu_us_per_input_record"])
                main[run["arm"]] = min(main.get(run["arm"], us), us)
        table[service] = {
            "main_thread_us_per_record": main,
            "after_us_per_record": after,
            "before_us_per_record": before,
            "after_over_before": ratio,
            "halved": None if ratio is None else ratio <= TARGET,
        }
    return table


def run(
    smoke_s: float | None,
    results_dir: Path = RESULTS,
    name: str = "services",
    command: str = "scorestream bench services",
) -> dict[str, Any]:
    n = 1000 if smoke_s is not None else 20_000
    rounds = 1 if smoke_s is not None else 2
    baseline = os.environ.get("SCORESTREAM_BENCH_BASELINE_TREE")
    arms: list[tuple[str, str, Path]] = [("after", sys.executable, ROOT)]
    if baseline:
        tree = Path(baseline)
        arms.insert(0, ("before", str(tree / ".venv" / "bin" / "python"), tree))
    kafka = KafkaSettings()
    items = _events(n)
    results = header(name, command, transactions=n, rounds=rounds, baseline_tree=baseline)
    if baseline:
        results["baseline_commit"] = subprocess.run(
            ["git", "-C", baseline, "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    workdir = ROOT / "var" / "bench" / "services-run"
    workdir.mkdir(parents=True, exist_ok=True)
    repo = ModelRepository(tempfile.mkdtemp(prefix="scorestream-bench-services-"))
    results["model"] = bd.prepare_model(repo, retrain=False)
    version = str(results["model"]["version"])
    runs = []
    for r in range(rounds):
        for arm, python, cwd in arms:
            one = one_arm(arm, python, cwd, items, kafka, repo, version, workdir)
            one["round"] = r
            runs.append(one)
    results["runs"] = runs
    results["table"] = summarise(runs)
    finish(results, results_dir, name)
    plot(results, results_dir / f"{name}.png")
    return results


def plot(results: dict[str, Any], path: Path) -> None:
    """µs of CPU per input record per service, the arms side by side."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    table = results["table"]
    names = list(table)
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=110)
    width = 0.38
    xs = range(len(names))
    for offset, arm, color in (
        (-width / 2, "before", "tab:gray"),
        (width / 2, "after", "tab:blue"),
    ):
        values = [table[s][f"{arm}_us_per_record"] or 0 for s in names]
        if any(values):
            ax.bar([x + offset for x in xs], values, width, label=arm, color=color)
    ax.set_xticks(list(xs), names)
    ax.set_ylabel("µs CPU per input record")
    ax.legend(fontsize=8)
    m = results["machine"]
    ax.set_title(
        f"services alone on a backlog of {results['transactions']:,} transactions — "
        f"{m['nproc']} cores, load {m['loadavg_before'][0]:.2f} before",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
