"""The machine's limits for the worker, each measured alone in one run.

* ONNX Runtime on prebuilt float32 batches of the production model (1 intra-op thread);
* Kafka consume → produce → commit with the worker's own client settings, no decoding or scoring
  (exactly-once: a transaction per batch; at-least-once: flush + synchronous commit);
* the event contracts' codec alone: decode an ``EnrichedTransaction`` CloudEvent, encode a
  ``PredictionEvent`` CloudEvent (what the worker must do per event whatever the model), with
  pydantic and with the fast path side by side, and the candidates (:mod:`bench.codec`).

The worker benchmark (:mod:`bench.worker_bench`) divides its events/s by the smaller of the first
two at the same batch size.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import codec as bench_codec
from bench import common
from bench import data as bd
from bench import housekeeping as hk
from bench import worker_bench as wb
from inference_worker.model import load_serving_model
from pipelines.repository import ModelRepository
from schemas.events import ModelAlias
from scorestream.settings import KafkaSettings


def run(
    smoke_s: float | None,
    results_dir: Path,
    name: str = "limits",
    command: str = "scorestream bench limits",
) -> dict[str, Any]:
    plan = wb.make_plan(quick=smoke_s is not None, smoke_s=smoke_s)
    kafka = KafkaSettings()
    cleanup = hk.Cleanup(kafka)
    workdir = Path(tempfile.mkdtemp(prefix="scorestream-bench-limits-"))
    cleanup.dirs.append(workdir)
    ctx = wb.Context(plan, kafka, cleanup, workdir, ModelRepository(str(workdir / "models")))
    results = common.header(name, command, plan=dataclasses.asdict(plan))
    t0 = time.perf_counter()
    try:
        results["model"] = bd.prepare_model(ctx.repo, retrain=False)
        ctx.version = str(results["model"]["version"])
        model = load_serving_model(ctx.repo, bd.MODEL_NAME, ctx.version, ModelAlias.CHAMPION)
        ctx.payloads, X = bd.make_payloads(plan.events)
        print("  ONNX Runtime only", flush=True)
        results["ort_only"] = {str(b): r for b, r in wb.bench_ort(model, X, plan).items()}
        print("  contracts' codec alone (pydantic vs the fast path, candidates)", flush=True)
        results["codec"] = bench_codec.run(ctx.payloads[:2000], seconds=1.0 if smoke_s else 6.0)
        print("  Kafka passthrough (the worker's client settings)", flush=True)
        results["passthrough"] = wb.run_passthrough(ctx)
    finally:
        cleanup.close()
    results["peaks"] = {
        "ort_rows_per_s": max(r["rows_per_s"] for r in results["ort_only"].values()),
        "passthrough_records_per_s": {
            bd.SHORT[m]: max(
                ((r["records_per_s"] or 0) for r in results["passthrough"] if r["mode"] == m),
                default=None,
            )
            for m in plan.modes
        },
        "codec_events_per_s_one_core": results["codec"]["paths"]["fast"]["events_per_s_one_core"],
        "codec_pydantic_events_per_s_one_core": results["codec"]["paths"]["pydantic"][
            "events_per_s_one_core"
        ],
    }
    results["elapsed_s"] = round(time.perf_counter() - t0, 1)
    common.finish(results, results_dir, name)
    plot(results, results_dir / f"{name}.png")
    print(f"  peaks: {results['peaks']}")
    return results


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    ort = results["ort_only"]
    xs = sorted(int(b) for b in ort)
    ax.plot(xs, [ort[str(b)]["rows_per_s"] for b in xs], "-o", label="ONNX Runtime only (rows/s)")
    for mode in bd.MODES:
        pts = [r for r in results["passthrough"] if r["mode"] == mode and r["records_per_s"]]
        if pts:
            ax.plot(
                [r["batch"] for r in pts],
                [r["records_per_s"] for r in pts],
                "-x",
                label=f"Kafka passthrough {bd.SHORT[mode]} (records/s)",
            )
    paths = results["codec"]["paths"]
    c, ref = paths["fast"]["events_per_s_one_core"], paths["pydantic"]["events_per_s_one_core"]
    ax.axhline(c, color="gray", linestyle="-.", label=f"codec alone, fast path: {c:,.0f} ev/s")
    ax.axhline(ref, color="silver", linestyle=":", label=f"codec alone, pydantic: {ref:,.0f} ev/s")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("per second (log)")
    m = results["machine"]
    ax.set_title(
        f"limits — {m['cpu_model']}, {m['nproc']} cores, load {m['loadavg_before'][0]:.2f}",
        fontsize=9,
    )
    ax.grid(visible=True, which="both", alpha=0.25)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
