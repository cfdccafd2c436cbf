"""What bounds synchronous latency, measured as an A/B inside one run.

On a shared machine whose load swings from 1 to 30 within minutes, a "before" run and an "after"
run minutes apart compare the neighbours, not the code. So both variants run at the same time:
two stacks (gateway, enricher, worker, decision of two fresh tenants), identical except for the
settings under test, and the load alternates between them round by round (A, B, A, B, ...):

* ``fixed_wait``: ``SCORESTREAM_<SERVICE>_ADAPTIVE_BATCHING=false`` — every consume waits for a
  full batch or ``max_wait_ms`` (the behaviour before this change);
* ``adaptive``: the default — block for the first record only, then drain what is fetched.

Each round: the async path at a constant rate (event time → decision, split per hop from the
events' own stamps) and open-loop sync requests; per variant the figures of every round are
pooled.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from bench import common
from bench.e2e import async_path
from bench.loadgen import StepResult, open_loop
from bench.stack import running_stack

PATH_SERVICES = ("enricher", "worker", "decision", "gateway")
PROCESSOR_SERVICES = ("WORKER", "DECISION", "NOTIFIER", "AUDIT", "ENRICHER")
VARIANTS: dict[str, dict[str, str]] = {
    "fixed_wait": {f"SCORESTREAM_{s}_ADAPTIVE_BATCHING": "false" for s in PROCESSOR_SERVICES},
    "adaptive": {},
}


def _pool(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each round's percentile (rounds are short: their own p99 are noisy)."""
    import numpy as np  # noqa: PLC0415

    def med(path: tuple[str, ...]) -> float | None:
        vals = []
        for r in runs:
            v: Any = r
            for k in path:
                v = v.get(k) if isinstance(v, dict) else None
            if v is not None:
                vals.append(float(v))
        return round(float(np.median(vals)), 1) if vals else None

    out: dict[str, Any] = {"rounds": len(runs)}
    for q in ("p50", "p90", "p99"):
        out[f"event_to_decision_{q}_ms"] = med(("event_to_decision_ms", q))
        for hop in ("enricher", "worker", "decision", "visible"):
            out.setdefault("per_hop_p50_ms", {})[hop] = med(("per_hop_ms", hop, "p50"))
    return out


def run(
    smoke_s: float | None,
    results_dir: Path,
    name: str = "latency",
    command: str = "scorestream bench latency",
) -> dict[str, Any]:
    rounds = 1 if smoke_s is not None else 3
    seconds = max(2.0, smoke_s / 4) if smoke_s is not None else 8.0
    async_rate, sync_rate = 50.0, 20.0
    results = common.header(
        name,
        command,
        variants=VARIANTS,
        services=PATH_SERVICES,
        rounds=rounds,
        round_seconds=seconds,
        async_rate=async_rate,
        sync_rate=sync_rate,
    )
    t0 = time.perf_counter()
    per: dict[str, dict[str, list[Any]]] = {v: {"async": [], "sync": []} for v in VARIANTS}
    with contextlib.ExitStack() as stack_of_stacks:
        stacks = {
            v: stack_of_stacks.enter_context(running_stack(env=env, services=PATH_SERVICES))
            for v, env in VARIANTS.items()
        }
        for v, st in stacks.items():  # warm both chains
            open_loop(f"{st.base_url}/v1/transactions:score", _bodies(st.tenant, 10), 10.0)
            print(f"  {v}: tenant {st.tenant} warm", flush=True)
        for i in range(rounds):
            for v, st in stacks.items():
                a = async_path(st, async_rate, seconds)
                bodies = _bodies(st.tenant, int(sync_rate * seconds))
                s = open_loop(f"{st.base_url}/v1/transactions:score", bodies, sync_rate)
                per[v]["async"].append(a)
                per[v]["sync"].append(s)
                e2d, lat = a["event_to_decision_ms"], s.summary()["latency_ms"]
                print(
                    f"    round {i + 1} {v:>10}: async p50 {common.fmt(e2d['p50'], 1)} ms "
                    f"(hops {_hops(a)}), sync p50 {common.fmt(lat['p50'], 1)} "
                    f"p99 {common.fmt(lat['p99'], 1)} ms",
                    flush=True,
                )
    results["raw"] = {
        v: {"async": d["async"], "sync": [s.summary() for s in d["sync"]]} for v, d in per.items()
    }
    results["summary"] = {
        v: {"async": _pool(d["async"]), "sync": _sync_pool(d["sync"])} for v, d in per.items()
    }
    results["elapsed_s"] = round(time.perf_counter() - t0, 1)
    common.finish(results, results_dir, name)
    plot(results, results_dir / f"{name}.png")
    for v, s in results["summary"].items():
        print(f"  {v}: {s}")
    return results


def _hops(a: dict[str, Any]) -> str:
    return " ".join(f"{k} {common.fmt(v['p50'], 0)}" for k, v in a["per_hop_ms"].items())


def _sync_pool(steps: list[StepResult]) -> dict[str, Any]:
    merged: list[float] = []
    errors = sent = 0
    for s in steps:
        merged += s.latencies_ms
        sent += s.sent
        errors += s.sent - s.ok
    return {
        "requests": sent,
        "error_rate": round(errors / sent, 4) if sent else None,
        "latency_ms": common.percentiles(merged),
    }


def _bodies(tenant: str, n: int) -> list[bytes]:
    from bench.e2e import _bodies as make  # noqa: PLC0415

    return make(tenant, max(1, n), seed=int(time.time()))


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.8), dpi=110)
    hops = ["enricher", "worker", "decision", "visible"]
    variants = list(results["summary"])
    width = 0.8 / len(variants)
    for i, v in enumerate(variants):
        vals = [results["summary"][v]["async"]["per_hop_p50_ms"][h] or 0 for h in hops]
        ax.bar([j + i * width for j in range(len(hops))], vals, width, label=v)
    ax.set_xticks([j + width / 2 for j in range(len(hops))], hops)
    ax.set_ylabel("p50 ms per hop (median of rounds)")
    ax.set_title("async path per hop, A/B in one run", fontsize=10)
    ax.legend()
    qs = ["p50", "p90", "p99"]
    for i, v in enumerate(variants):
        lat = results["summary"][v]["sync"]["latency_ms"]
        bx.bar([j + i * width for j in range(3)], [lat[q] or 0 for q in qs], width, label=v)
    bx.set_xticks([j + width / 2 for j in range(3)], qs)
    bx.set_ylabel("ms")
    bx.set_title(f"sync :score at {results['sync_rate']:.0f} req/s (open loop)", fontsize=10)
    bx.legend()
    m = results["machine"]
    fig.suptitle(
        f"{m['cpu_model']}, {m['nproc']} cores, load {m['loadavg_before'][0]:.1f} before / "
        f"{m['loadavg_after'][0]:.1f} after",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
