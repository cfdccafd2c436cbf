"""What every benchmark of the suite shares: machine facts, result files, names, percentiles.

The machine is shared and its load drifts, so every result file records the CPU, the core count
and the load average before and after the run next to the figures; comparisons are made inside
one run and reported as ratios as well as absolute numbers.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from scorestream.settings import default_cache_dir

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
VENVS = default_cache_dir() / "bench-venvs"
"""The peers' virtualenvs: outside the checkout (like the Kafka jars), so a fresh clone or a CI
run reuses them instead of spending minutes in pip. Never the project's .venv."""


def process_cpu_s(pid: int, *, main_thread: bool = False) -> float:
    """User + system CPU seconds of process ``pid`` so far (all its threads, or only its main
    thread: the Python loop, librdkafka's threads being the others), 0 once it is gone."""
    stat = f"/proc/{pid}/task/{pid}/stat" if main_thread else f"/proc/{pid}/stat"
    try:
        fields = Path(stat).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rand(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    import confluent_kafka  # noqa: PLC0415
    import onnxruntime  # noqa: PLC0415
    import pydantic  # noqa: PLC0415

    from scorestream.versions import KAFKA_VERSION  # noqa: PLC0415

    mem_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    return {
        "cpu_model": cpu_model(),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "memory_gib": round(mem_kb / 2**20, 1),
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "confluent_kafka": importlib.metadata.version("confluent-kafka"),
        "librdkafka": confluent_kafka.libversion()[0],
        "numpy": np.__version__,
        "pydantic": pydantic.__version__,
        "kafka": KAFKA_VERSION,
    }


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
            )
            return done.stdout.strip()
        return ""

    dirty = git("status", "--porcelain", "--", "inference_worker", "scorestream", "schemas")
    return {"head": git("rev-parse", "HEAD"), "uncommitted_changes": dirty.splitlines()}


def header(name: str, command: str, **extra: Any) -> dict[str, Any]:
    """The common head of a result file: what ran, where, when, on which code."""
    return {
        "benchmark": name,
        "command": command,
        "started_at": datetime.now(UTC).isoformat(),
        "machine": machine_info(),
        "code": git_state(),
        **extra,
    }


def finish(results: dict[str, Any], results_dir: Path, name: str) -> Path:
    """Stamp the end (load average after) and write ``<name>.json``."""
    results["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    results["finished_at"] = datetime.now(UTC).isoformat()
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{name}.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return path


def percentiles(values_ms: list[float]) -> dict[str, float | None]:
    """p50/p90/p99/p99.9 and max of ``values_ms`` (None when empty)."""
    keys = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p99_9": 99.9}
    if not values_ms:
        return dict.fromkeys([*keys, "max", "mean"], None)
    arr = np.asarray(values_ms, dtype=np.float64)
    out: dict[str, float | None] = {
        k: round(float(np.percentile(arr, q)), 2) for k, q in keys.items()
    }
    out["max"] = round(float(arr.max()), 2)
    out["mean"] = round(float(arr.mean()), 2)
    return out


def fmt(x: float | None, digits: int = 0) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"
