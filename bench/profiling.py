"""Where the worker's time goes: the pure Python path per stage (no Kafka) and a cProfile of
the worker's best configuration in a fresh interpreter."""

from __future__ import annotations

import contextlib
import cProfile
import gc
import json
import pstats
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    Message,
    TopicPartition,
)

from bench import common
from bench.data import (
    MODEL_NAME,
    PLACEHOLDER,
    ROOT,
    WORKER_SOURCE,
    Payload,
    partitions_of,
    preload,
)
from bench.housekeeping import Cleanup
from bench.worker_bench import Plan, new_tenant, settings_for
from inference_worker.handler import score_batch
from inference_worker.model import ServingModel, load_serving_model
from inference_worker.worker import Worker
from pipelines.repository import ModelRepository
from schemas.cloudevents import encode_many
from schemas.events import EnrichedTransaction, ModelAlias
from scorestream.codec import BatchDecoder
from scorestream.kafka_config import (
    common_config,
)
from scorestream.settings import KafkaSettings
from scorestream.topics import REGISTRY


# -- the pure path, per stage, without Kafka -------------------------------------------------------
def _stage_pass(messages: Sequence[Message], model: ServingModel, batch: int) -> dict[str, float]:
    """What the worker's processor does to each batch besides Kafka calls: the batch codec's
    decode, the scoring handler, the batch encode of the outputs."""
    t: dict[str, float] = defaultdict(float)
    clock = time.perf_counter
    decoder = BatchDecoder([EnrichedTransaction], keyed=[EnrichedTransaction])
    for i in range(0, len(messages), batch):
        chunk = messages[i : i + batch]
        t0 = clock()
        decoded, dead, _ = decoder.decode(chunk)
        t1 = clock()
        out = score_batch(decoded, tenant=PLACEHOLDER, champion=model)
        t2 = clock()
        encoded = encode_many(
            (
                (s.prediction, s.envelope.trace, s.envelope.extensions, None)
                for s in out.predictions
            ),
            source=WORKER_SOURCE,
        )
        t3 = clock()
        _ = [list(e.headers) for e in encoded]  # the worker copies headers for produce()
        t4 = clock()
        ort_s = out.inference_s.get("champion", 0.0)
        t["batch codec decode (headers + contract fast path)"] += t1 - t0
        t["score_batch minus ORT (rows, events)"] += (t2 - t1) - ort_s
        t["onnxruntime (inside score_batch)"] += ort_s
        t["encode_many (CloudEvents headers + JSON)"] += t3 - t2
        t["header list copies"] += t4 - t3
        if dead or out.dead_letters or len(out.predictions) != len(chunk):
            raise RuntimeError("stage breakdown: unexpected dead letters")
    return {k: v / len(messages) * 1e6 for k, v in t.items()}


def stage_breakdown(
    kafka: KafkaSettings, src: str, repo_url: str, version: str, batch: int, plan: Plan
) -> dict[str, Any]:
    """µs/event of what the worker does to a batch besides Kafka calls, on real records.

    Best of three passes (other processes on a 2-core machine add noise), with the garbage
    collector on as in the worker, and again with it off to show what collections cost."""
    consumer = Consumer(
        common_config(kafka, client_id="bench-stages")
        | {"group.id": common.rand("bench-stages-"), "enable.auto.commit": False}
    )
    parts = partitions_of(kafka, src)
    consumer.assign([TopicPartition(src, p, OFFSET_BEGINNING) for p in range(parts)])
    messages: list[Message] = []
    deadline = time.monotonic() + 30
    while len(messages) < plan.stage_events and time.monotonic() < deadline:
        messages += [m for m in consumer.consume(10_000, 0.5) if m.error() is None]
    consumer.close()
    messages = messages[: plan.stage_events]
    model = load_serving_model(ModelRepository(repo_url), MODEL_NAME, version, ModelAlias.CHAMPION)
    gc.collect()
    passes = [_stage_pass(messages, model, batch) for _ in range(3)]
    best = min(passes, key=lambda p: sum(p.values()))
    gc.disable()
    try:
        no_gc = min(sum(_stage_pass(messages, model, batch).values()) for _ in range(3))
    finally:
        gc.enable()
    total = sum(best.values())
    return {
        "batch": batch,
        "events": len(messages),
        "us_per_event": best,
        "total_us_per_event": total,
        "events_per_s_one_core": 1e6 / total if total else None,
        "total_us_per_event_gc_disabled": no_gc,
        "passes_total_us": [sum(p.values()) for p in passes],
    }


# -- profile of the best configuration, in-process -------------------------------------------------
HOOKED = "score_batch"
"""The worker module's name for the scoring handler (imported from inference_worker.handler)."""


class ScoreHook:
    """Wraps ``score_batch`` as the worker module sees it: starts cProfile in the worker's thread
    at the first batch (so start-up is excluded) and counts the events scored."""

    def __init__(self) -> None:
        import inference_worker.worker as worker_module  # noqa: PLC0415

        self.module = worker_module
        self.original: Callable[..., Any] = getattr(worker_module, HOOKED)
        self.profiler = cProfile.Profile()
        self.events = 0
        self.started: float | None = None
        self.finished: float | None = None
        self.stop_requested = False

    def __call__(self, batch: list[Any], **kwargs: Any) -> Any:
        if self.started is None:
            self.started = time.perf_counter()
            self.profiler.enable()
        out = self.original(batch, **kwargs)
        self.events += len(batch)
        return out

    def __enter__(self) -> ScoreHook:
        setattr(self.module, HOOKED, self)
        return self

    def __exit__(self, *_: object) -> None:
        setattr(self.module, HOOKED, self.original)

    def finish(self) -> None:
        """Called in the worker's thread: between two batches, or once its loop returned."""
        if self.started is not None and self.finished is None:
            self.profiler.disable()
            self.finished = time.perf_counter()


def hooked_worker(hook: ScoreHook, target: int) -> type[Worker]:
    """A Worker that ends the profile between batches, once ``target`` events were scored or
    ``hook.stop_requested`` is set, so neither idle polls nor the shutdown are profiled.

    ``_apply_swaps`` runs in the worker's thread before every ``consume``."""

    class _Hooked(Worker):
        def _apply_swaps(self) -> None:
            if hook.started is not None and (hook.events >= target or hook.stop_requested):
                hook.finish()
            super()._apply_swaps()

    return _Hooked


def _profile_rows(prof: pstats.StatsProfile, wall: float, events: int) -> list[dict[str, Any]]:
    rows = []
    for name, fp in prof.func_profiles.items():
        where = fp.file_name
        with contextlib.suppress(ValueError):
            where = str(Path(where).resolve().relative_to(ROOT))
        where = where.split("site-packages/")[-1]
        rows.append(
            {
                "function": name,
                "where": f"{where}:{fp.line_number}" if fp.line_number else where,
                "ncalls": fp.ncalls,
                "tottime_s": round(fp.tottime, 4),
                "cumtime_s": round(fp.cumtime, 4),
                "tottime_pct_of_wall": round(100 * fp.tottime / wall, 1),
                "cumtime_pct_of_wall": round(100 * fp.cumtime / wall, 1),
                "tottime_us_per_event": round(fp.tottime / max(1, events) * 1e6, 2),
            }
        )
    return rows


OWN_CODE = ("inference_worker/", "scorestream/", "schemas/")


def profile_worker(
    kafka: KafkaSettings,
    repo: ModelRepository,
    version: str,
    payloads: Sequence[Payload],
    cleanup: Cleanup,
    *,
    mode: str,
    batch: int,
    plan: Plan,
) -> dict[str, Any]:
    tenant = new_tenant(kafka, repo, version, cleanup)
    n = min(plan.profile_events, len(payloads))
    preload(kafka, REGISTRY.topic("transactions.enriched", tenant), payloads[:n], tenant)
    args = {"tenant": tenant, "repo_url": repo.url, "n": n, "mode": mode, "batch": batch}
    return run_child(
        "profile", args, plan, timeout=plan.startup_timeout_s + plan.profile_cap_s + 60
    )


def profile_in_process(
    kafka: KafkaSettings, tenant: str, repo_url: str, n: int, mode: str, batch: int, plan: Plan
) -> dict[str, Any]:
    """In a fresh interpreter (so the heap, hence the garbage collector's work, is a worker's)."""
    repo = ModelRepository(repo_url)
    settings = settings_for(tenant, common.rand("bench-prof-"), mode, batch, plan)
    failure: list[BaseException] = []
    with ScoreHook() as hook:
        worker = hooked_worker(hook, n)(settings, kafka=kafka, repo=repo)

        def run() -> None:
            try:
                worker.run(install_signals=False)
            except BaseException as exc:  # noqa: BLE001  (reported below)
                failure.append(exc)
            finally:
                hook.finish()

        thread = threading.Thread(target=run, name="profiled-worker", daemon=True)
        thread.start()
        deadline = time.monotonic() + plan.startup_timeout_s
        capped = False
        while thread.is_alive() and hook.finished is None:
            if hook.started is not None and not capped:
                deadline, capped = time.monotonic() + plan.profile_cap_s, True
            if time.monotonic() > deadline:
                hook.stop_requested = True
            if time.monotonic() > deadline + 10:
                break
            time.sleep(0.05)
        worker.stop()
        thread.join(60)
    if failure:
        raise RuntimeError(f"profiled worker failed: {failure[0]!r}")
    if hook.started is None or hook.finished is None:
        raise RuntimeError("profiled worker scored nothing (is score_batch still used?)")
    wall = hook.finished - hook.started
    rows = _profile_rows(pstats.Stats(hook.profiler).get_stats_profile(), wall, hook.events)
    by_self = sorted(rows, key=lambda r: float(r["tottime_s"]), reverse=True)[:15]
    own = [r for r in rows if any(str(r["where"]).startswith(d) for d in OWN_CODE)]
    by_cum = sorted(own, key=lambda r: float(r["cumtime_s"]), reverse=True)[:20]
    return {
        "mode": mode,
        "batch": batch,
        "events": hook.events,
        "wall_s": wall,
        "events_per_s_profiled": hook.events / wall if wall else None,
        "profiler": (
            "cProfile in the worker's thread from its first batch to its stop; deterministic, "
            "so many small Python calls are inflated while C calls (ORT, librdkafka, "
            "pydantic-core) count once"
        ),
        "top_self": by_self,
        "top_cumulative_own_code": by_cum,
    }


def run_child(kind: str, args: dict[str, Any], plan: Plan, *, timeout: float) -> dict[str, Any]:
    """Run ``kind`` in a fresh interpreter: its heap is a worker's, not this benchmark's (the
    50k preloaded payloads here would make every full garbage collection several times dearer)."""
    cmd = [sys.executable, "-m", "bench.worker_bench", "--child", kind, json.dumps(args)]
    cmd += ["--quick"] if plan.quick else []
    done = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"child {kind} failed ({done.returncode}): {done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def child_main(kind: str, raw: str, plan: Plan) -> int:
    import inference_worker.worker  # noqa: F401, PLC0415  (the modules a worker process holds)

    args = json.loads(raw)
    kafka = KafkaSettings()
    if kind == "stages":
        out = stage_breakdown(kafka, plan=plan, **args)
    elif kind == "profile":
        out = profile_in_process(kafka, plan=plan, **args)
    else:
        raise SystemExit(f"unknown child {kind!r}")
    print(json.dumps(out, default=str))
    return 0
