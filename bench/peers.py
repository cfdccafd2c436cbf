"""Peers on the same broker, the same ONNX model, the same machine, in the same run.

* **scorestream**: the real worker process (exactly-once, batch 500) on preloaded enriched
  CloudEvents, as :mod:`bench.worker_bench` runs it.
* **MLServer** (its current release, in its own virtualenv ``var/bench/venvs/mlserver``) in
  Kafka mode (``kafka_enabled``): a custom runtime (``bench/peer_apps/mlserver_runtime.py``)
  running the same ONNX file with onnxruntime; requests are V2 inference requests, one record
  each (what its Kafka server consumes: JSON ``InferenceRequest`` value, ``mlserver-model``
  header), one feature row per request.
* **faust-streaming** (own virtualenv ``var/bench/venvs/faust``): a naive agent scoring one
  event at a time (``bench/peer_apps/faust_agent.py``) on the same enriched CloudEvents.

Throughput is output records per second between the first and the last output record (their
CreateTime), start-up excluded; the ratio is scorestream's events/s divided by the peer's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from bench import common
from bench import data as bd
from bench import housekeeping as hk
from bench import worker_bench as wb
from pipelines.repository import ModelRepository
from scorestream.kafka_config import common_config, producer_config, resolve_bootstrap
from scorestream.settings import KafkaSettings
from scorestream.topics import REGISTRY

APPS = Path(__file__).resolve().parent / "peer_apps"
PEER_PACKAGES = {
    "mlserver": ["mlserver", "onnxruntime", "numpy", "cramjam"],
    "faust": ["faust-streaming", "onnxruntime", "numpy", "cramjam"],
}
"""cramjam: the benchmark's records are lz4-compressed (scorestream's producer setting) and
aiokafka >= 0.11 decompresses with cramjam (without it: UnsupportedCodecError)."""
MODEL_HEADER = [("mlserver-model", b"fraud")]
"""MLServer's Kafka server routes a record to the model named in this header."""


def _pip(venv: Path) -> list[str]:
    return [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]


def ensure_venv(name: str) -> tuple[Path, dict[str, Any]]:
    """The peer's own virtualenv (created once, cached in ~/.cache/scorestream/bench-venvs)
    and its versions."""
    venv = common.VENVS / name
    marker = venv / ".bench-installed"
    t0 = time.perf_counter()
    created = False
    spec = " ".join(PEER_PACKAGES[name])
    if not marker.is_file():
        shutil.rmtree(venv, ignore_errors=True)
        venv.parent.mkdir(parents=True, exist_ok=True)
        print(f"  creating {venv} (pip install {spec})", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([*_pip(venv), "--upgrade", "pip"], check=True, timeout=600)
        created = True
    if created or marker.read_text().strip() != spec:
        done = subprocess.run(
            [*_pip(venv), *PEER_PACKAGES[name]],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"pip install {spec} failed: {done.stderr[-3000:]}")
        marker.write_text(spec + "\n")
    probe = (
        "import importlib.metadata as m, json, sys; print(json.dumps({p: m.version(p) for p in "
        "sys.argv[1:]}))"
    )
    dists = {"mlserver": ["mlserver", "onnxruntime", "aiokafka"], "faust": ["faust-streaming"]}
    dists["faust"] += ["aiokafka", "onnxruntime"]
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe, *dists[name]],
        capture_output=True,
        text=True,
        check=True,
    )
    info = {
        "venv": str(venv),
        "versions": json.loads(out.stdout),
        "created_now": created,
        "setup_s": round(time.perf_counter() - t0, 1),
    }
    return venv, info


def _topics(kafka: KafkaSettings, cleanup: hk.Cleanup, partitions: int) -> tuple[str, str]:
    src, dst = common.rand("bench-peer-in-"), common.rand("bench-peer-out-")
    cleanup.topics |= {src, dst}
    bd.create_topics(kafka, [src, dst], partitions)
    return src, dst


def _produce(kafka: KafkaSettings, topic: str, records: Sequence[tuple[bytes, bytes, Any]]) -> None:
    producer = Producer(producer_config(kafka, client_id="bench-peer-load"))
    for i, (key, value, headers) in enumerate(records):
        while True:
            try:
                producer.produce(topic, value=value, key=key, headers=headers)
                break
            except BufferError:
                producer.poll(0.1)
        if i % 1000 == 0:
            producer.poll(0)
    if producer.flush(60):
        raise RuntimeError(f"preloading {topic} failed")


def _high(kafka: KafkaSettings, topic: str) -> int:
    c = Consumer(common_config(kafka, client_id="bench-peer-wm") | {"group.id": "bench-wm"})
    try:
        md = c.list_topics(topic, timeout=10).topics[topic]
        return sum(
            c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in md.partitions
        )
    finally:
        c.close()


def _output_rate(kafka: KafkaSettings, topic: str, since: float = 0.0) -> dict[str, Any]:
    """Records/s from the first to the last output record's CreateTime (records written before
    ``since``, e.g. replies to start-up probes, are left out)."""
    stamps = sorted(t for m in bd.read_all(kafka, topic) if (t := m.timestamp()[1] / 1000) >= since)
    if len(stamps) < 2:
        return {"outputs": len(stamps), "events_per_s": None}
    span = stamps[-1] - stamps[0]
    return {
        "outputs": len(stamps),
        "seconds": round(span, 3),
        "events_per_s": round((len(stamps) - 1) / span, 1) if span > 0 else None,
    }


def _scores(kafka: KafkaSettings, topic: str) -> dict[str, float]:
    """transaction id → score from a scorestream prediction, a faust output or an MLServer V2
    response (``id`` = the record key = the transaction id; output ``score``)."""
    out: dict[str, float] = {}
    for m in bd.read_all(kafka, topic):
        body = json.loads(m.value() or b"{}")
        if "outputs" in body:
            out[str(body["id"])] = float(body["outputs"][0]["data"][0])
        elif "transaction_id" in body:
            out[str(body["transaction_id"])] = float(body["score"])
    return out


def score_check(ours: dict[str, float], theirs: dict[str, float]) -> dict[str, Any]:
    """Same model, same features: the peers' scores must equal the worker's (float32 ONNX)."""
    common_ids = ours.keys() & theirs.keys()
    diffs = [abs(ours[t] - theirs[t]) for t in common_ids]
    return {
        "compared": len(diffs),
        "max_abs_diff": max(diffs) if diffs else None,
        "equal_within_1e-6": bool(diffs) and max(diffs) <= 1e-6,
    }


def _await_outputs(
    kafka: KafkaSettings,
    proc: subprocess.Popen[bytes],
    dst: str,
    n: int,
    cap_s: float,
    start_s: float,
) -> str | None:
    """Wait until ``n`` outputs exist, ``cap_s`` after the first, or an error."""
    t0, first = time.monotonic(), None
    while True:
        time.sleep(0.5)
        if proc.poll() is not None:
            return f"exited with {proc.returncode}"
        done = _high(kafka, dst)
        now = time.monotonic()
        if done and first is None:
            first = now
        if done >= n or (first is not None and now - first > cap_s):
            return None
        if first is None and now - t0 > start_s:
            return f"no output within {start_s:.0f}s"


def _model_files(ctx: wb.Context, workdir: Path) -> dict[str, Any]:
    loaded = ctx.repo.load(bd.MODEL_NAME, ctx.version)
    path = workdir / "model.onnx"
    path.write_bytes(loaded.onnx_bytes)
    meta = loaded.metadata
    io = {
        "input": meta.input.name,
        "output": meta.score_output,
        "features": list(meta.feature_names),
    }
    (workdir / "io.json").write_text(json.dumps(io))
    return {"model": str(path), "io": str(workdir / "io.json"), **io}


def run_mlserver(
    ctx: wb.Context, files: dict[str, Any], n: int, workdir: Path, cap_s: float
) -> dict[str, Any]:
    from scorestream.dev.supervisor import free_port  # noqa: PLC0415

    venv, info = ensure_venv("mlserver")
    src, dst = _topics(ctx.kafka, ctx.cleanup, 1)
    home = workdir / "mlserver"
    model_dir = home / "fraud"
    model_dir.mkdir(parents=True)
    shutil.copy(APPS / "mlserver_runtime.py", home / "mlserver_runtime.py")
    settings = {
        "kafka_enabled": True,
        "kafka_servers": resolve_bootstrap(ctx.kafka),
        "kafka_topic_input": src,
        "kafka_topic_output": dst,
        "http_port": free_port(),
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "parallel_workers": 0,
        "load_models_at_startup": True,
    }
    (home / "settings.json").write_text(json.dumps(settings))
    model_settings = {
        "name": "fraud",
        "implementation": "mlserver_runtime.OnnxScorer",
        "parameters": {"uri": files["model"]},
    }
    (model_dir / "model-settings.json").write_text(json.dumps(model_settings))
    records = []
    for row in _rows(ctx, files, n):
        shape = [1, len(row.features)]
        request = {
            "inputs": [{"name": "input", "shape": shape, "datatype": "FP32", "data": row.features}]
        }
        records.append((row.transaction_id.encode(), json.dumps(request).encode(), MODEL_HEADER))
    log = (workdir / "mlserver.log").open("ab")
    proc = subprocess.Popen(
        [str(venv / "bin" / "mlserver"), "start", str(home)],
        cwd=home,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=os.environ | {"PYTHONPATH": str(home)},
    )
    ctx.cleanup.procs.append(proc)
    result: dict[str, Any] = {"peer": "mlserver", **info, "settings": settings}
    try:
        # its consumer has no group and starts at the end: probe until a reply comes back
        probe_deadline = time.monotonic() + 120
        while _high(ctx.kafka, dst) == 0:
            if proc.poll() is not None or time.monotonic() > probe_deadline:
                tail = (workdir / "mlserver.log").read_text(errors="replace")[-3000:]
                return result | {"error": "MLServer did not start consuming", "log_tail": tail}
            _produce(ctx.kafka, src, records[:1])
            time.sleep(1.0)
        time.sleep(1.0)  # the last probe's reply is written
        warm = _high(ctx.kafka, dst)
        since = time.time()
        t0 = time.perf_counter()
        _produce(ctx.kafka, src, records)
        result["preload_s"] = round(time.perf_counter() - t0, 2)
        err = _await_outputs(ctx.kafka, proc, dst, warm + n, cap_s, 60)
    finally:
        hk.stop_process(proc)
        log.close()
    if err:
        return result | {"error": err}
    rate = _output_rate(ctx.kafka, dst, since)
    result["scores"] = _scores(ctx.kafka, dst)
    return result | rate | {"requests": n, "probes": warm}


class _Row:
    __slots__ = ("features", "transaction_id")

    def __init__(self, transaction_id: str, features: list[float]) -> None:
        self.transaction_id = transaction_id
        self.features = features


def _rows(ctx: wb.Context, files: dict[str, Any], n: int) -> list[_Row]:
    out = []
    for p in ctx.payloads[:n]:
        body = json.loads(p.value)
        feats = [float(body["features"][name]) for name in files["features"]]
        out.append(_Row(body["transaction"]["transaction_id"], feats))
    return out


def run_faust(
    ctx: wb.Context, files: dict[str, Any], n: int, workdir: Path, cap_s: float
) -> dict[str, Any]:
    venv, info = ensure_venv("faust")
    parts = REGISTRY.get("transactions.enriched").partitions
    src, dst = _topics(ctx.kafka, ctx.cleanup, parts)
    _produce(ctx.kafka, src, [(p.key, p.value, p.headers) for p in ctx.payloads[:n]])
    app_id = common.rand("bench-faust-")
    ctx.cleanup.groups.add(app_id)
    env = os.environ | {
        "BENCH_IN": src,
        "BENCH_OUT": dst,
        "BENCH_APP_ID": app_id,
        "BENCH_BOOTSTRAP": resolve_bootstrap(ctx.kafka),
        "BENCH_MODEL": files["model"],
        "BENCH_IO": files["io"],
        "PYTHONPATH": str(APPS),
    }
    data = workdir / "faust-data"
    log = (workdir / "faust.log").open("ab")
    cmd = [str(venv / "bin" / "faust"), "-A", "faust_agent", "--datadir", str(data)]
    proc = subprocess.Popen(
        [*cmd, "worker", "-l", "warn", "--without-web"],
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    ctx.cleanup.procs.append(proc)
    result: dict[str, Any] = {"peer": "faust", **info, "agent": "one event at a time"}
    try:
        err = _await_outputs(ctx.kafka, proc, dst, n, cap_s, 120)
    finally:
        hk.stop_process(proc)
        log.close()
    if err:
        tail = (workdir / "faust.log").read_text(errors="replace")[-3000:]
        return result | {"error": err, "log_tail": tail}
    result["scores"] = _scores(ctx.kafka, dst)
    return result | _output_rate(ctx.kafka, dst) | {"events": n}


def run(
    smoke_s: float | None,
    results_dir: Path,
    name: str = "peers",
    command: str = "scorestream bench peers",
) -> dict[str, Any]:
    plan = wb.make_plan(quick=smoke_s is not None, smoke_s=smoke_s)
    n_peer = 300 if smoke_s is not None else 5_000
    n_worker = plan.events if smoke_s is not None else 30_000
    cap = max(2.0, smoke_s / 3) if smoke_s is not None else 20.0
    kafka = KafkaSettings()
    cleanup = hk.Cleanup(kafka)
    workdir = Path(tempfile.mkdtemp(prefix="scorestream-bench-peers-"))
    cleanup.dirs.append(workdir)
    ctx = wb.Context(plan, kafka, cleanup, workdir, ModelRepository(str(workdir / "models")))
    results = common.header(
        name,
        command,
        counts={"scorestream_events": n_worker, "peer_events": n_peer, "cap_s": cap},
    )
    t0 = time.perf_counter()
    try:
        results["model"] = bd.prepare_model(ctx.repo, retrain=False)
        ctx.version = str(results["model"]["version"])
        ctx.payloads, _ = bd.make_payloads(max(n_worker, n_peer))
        files = _model_files(ctx, workdir)
        print("  scorestream worker (EOS, batch 500)", flush=True)
        worker_plan = dataclasses.replace(plan, worker_max_events=n_worker, worker_cap_s=cap)
        results["scorestream"] = wb.worker_run(
            kafka,
            ctx.repo,
            ctx.version,
            ctx.payloads,
            cleanup,
            workdir,
            mode="exactly_once",
            batch=500,
            plan=worker_plan,
        )
        print(f"    {common.fmt(results['scorestream'].get('events_per_s'))} events/s", flush=True)
        tenant = results["scorestream"]["tenant"]
        worker_scores = _scores(kafka, REGISTRY.topic("predictions", tenant))
        for peer, fn in (("mlserver", run_mlserver), ("faust", run_faust)):
            print(f"  {peer}", flush=True)
            try:
                results[peer] = fn(ctx, files, n_peer, workdir, cap)
            except Exception as exc:  # noqa: BLE001  (a peer that cannot run is a result)
                results[peer] = {"peer": peer, "error": f"{type(exc).__name__}: {exc}"}
            r = results[peer]
            r["score_check"] = score_check(worker_scores, r.pop("scores", {}))
            print(f"    {common.fmt(r.get('events_per_s'))} events/s {r.get('error') or ''}")
    finally:
        logs = common.ROOT / "var" / "bench" / "logs" / name
        with contextlib.suppress(OSError):
            logs.mkdir(parents=True, exist_ok=True)
            for f in workdir.glob("*.log"):
                shutil.copy(f, logs / f.name)
        with contextlib.suppress(Exception):
            cleanup.close()
    ours = results["scorestream"].get("events_per_s")
    results["ratios"] = {
        f"scorestream_over_{p}": round(ours / results[p]["events_per_s"], 2)
        if ours and results[p].get("events_per_s")
        else None
        for p in ("mlserver", "faust")
    }
    ratio = results["ratios"]["scorestream_over_mlserver"]
    results["targets"] = {
        "ge_20x_mlserver_kafka_mode": {"measured": ratio, "met": bool(ratio and ratio >= 20)}
    }
    results["elapsed_s"] = round(time.perf_counter() - t0, 1)
    common.finish(results, results_dir, name)
    plot(results, results_dir / f"{name}.png")
    print(f"  ratios: {results['ratios']}")
    return results


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    labels, values = [], []
    for key, label in (
        ("scorestream", "scorestream worker\nEOS, batch 500"),
        ("mlserver", "MLServer Kafka mode\ncustom ONNX runtime"),
        ("faust", "faust-streaming\nnaive agent"),
    ):
        r = results.get(key, {})
        labels.append(label + ("\n(failed)" if r.get("error") else ""))
        values.append(r.get("events_per_s") or 0)
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    bars = ax.bar(labels, values, color=["tab:blue", "tab:orange", "tab:green"])
    for bar, v in zip(bars, values, strict=True):
        ax.annotate(f"{v:,.0f}", (bar.get_x() + bar.get_width() / 2, v), ha="center", va="bottom")
    ax.set_ylabel("events/s (one process each, same broker, model and machine)")
    ratios = ", ".join(f"{k.split('_')[-1]} x{v}" for k, v in results["ratios"].items() if v)
    m = results["machine"]
    ax.set_title(
        f"peers — scorestream ratio: {ratios or 'n/a'}\n{m['cpu_model']}, {m['nproc']} cores, "
        f"load {m['loadavg_before'][0]:.2f}→{m['loadavg_after'][0]:.2f}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
