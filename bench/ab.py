"""A/B of the inference worker between two commits, side by side in one run.

    .venv/bin/python -m bench.ab OLD_REF [NEW_REF] [--rounds 3] [--batches 500 2000]

Both commits are checked out as temporary git worktrees. The real worker process of each
(``python -m scorestream worker`` started in its tree) scores the same preloaded enriched events
on the same broker, exactly-once, at each batch size; the arms alternate round by round (old
first, then new first) so that drift in the machine's load hits both. The pure Python path
(decode → score_batch → encode, no Kafka; the tree's batch codec and batch encoder where it has
them, else a decode and an encode per event) of each tree is timed in a subprocess of its own.

Writes ``bench/results/<out>.json`` and ``.png``: medians per arm and batch size and the ratio
new / old. This is how an optimisation's before/after figure in docs/performance.md is measured.
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import common
from bench import data as bd
from bench import worker_bench as wb
from bench.housekeeping import Cleanup
from pipelines.repository import ModelRepository
from scorestream.settings import KafkaSettings

PURE_PATH = r"""
import json, pickle, sys, time
from typing import Any, cast
from bench import data as bd
from inference_worker.handler import score_batch
from inference_worker.model import load_serving_model
from pipelines.repository import ModelRepository
from schemas.cloudevents import encode
from schemas.events import EnrichedTransaction, ModelAlias
from scorestream.serde import decode_message

try:  # the tree's own path: the batch codec and batch encoder where the tree has them
    from schemas.cloudevents import encode_many
    from scorestream.codec import BatchDecoder
except ImportError:
    BatchDecoder = encode_many = None


class Raw:
    "The accessors of a consumed message over preloaded bytes."

    def __init__(self, p: Any, offset: int) -> None:
        self._k, self._v, self._o = p.key, p.value, offset
        self._h = [(k, v.encode() if isinstance(v, str) else v) for k, v in p.headers]

    def key(self) -> bytes:
        return self._k

    def value(self) -> bytes:
        return self._v

    def headers(self) -> list:
        return self._h

    def topic(self) -> str:
        return "bench"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._o


    def timestamp(self) -> tuple[int, int]:

        return (1, 1_764_000_000_000)  # TIMESTAMP_CREATE_TIME, a fixed time


class Payload:
    def __init__(self, key: bytes, value: bytes, headers: list) -> None:
        self.key, self.value, self.headers = key, value, headers


repo = ModelRepository(sys.argv[1])
model = load_serving_model(repo, bd.MODEL_NAME, sys.argv[2], ModelAlias.CHAMPION)
batch = int(sys.argv[3])
# the same records for both trees: made by the parent (its bench.data), read from a file
with open(sys.argv[4], "rb") as f:
    payloads = [Payload(k, v, h) for k, v, h in pickle.load(f)]
raws = [Raw(p, i) for i, p in enumerate(payloads)]
accept = (EnrichedTransaction,)
codec = BatchDecoder(accept, keyed=accept) if BatchDecoder is not None else None

def one_pass() -> dict[str, float]:
    t = {"decode": 0.0, "handler": 0.0, "onnxruntime": 0.0, "encode": 0.0}
    clock = time.perf_counter
    for i in range(0, len(raws), batch):
        chunk = raws[i : i + batch]
        t0 = clock()
        if codec is not None:
            dec = codec.decode(cast(Any, chunk))[0]
        else:
            dec = [decode_message(cast(Any, m), accept=accept, keyed=accept) for m in chunk]
        t1 = clock()
        out = score_batch(dec, tenant=bd.PLACEHOLDER, champion=model)
        t2 = clock()
        if encode_many is not None:
            items = (
                (s.prediction, s.envelope.trace, s.envelope.extensions, None)
                for s in out.predictions
            )
            encode_many(items, source=bd.WORKER_SOURCE)
        else:
            for s in out.predictions:
                env = s.envelope
                ext = env.extensions
                encode(s.prediction, source=bd.WORKER_SOURCE, trace=env.trace, extensions=ext)
        t3 = clock()
        ort = out.inference_s["champion"]
        t["decode"] += t1 - t0
        t["handler"] += t2 - t1 - ort
        t["onnxruntime"] += ort
        t["encode"] += t3 - t2
    return {k: v / len(raws) * 1e6 for k, v in t.items()}

best = min((one_pass() for _ in range(5)), key=lambda d: sum(d.values()))
print(json.dumps(best))
"""


def _short(ref: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(common.ROOT), "rev-parse", "--short", ref],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def _worktree(ref: str, where: Path) -> Path:
    path = where / ref.replace("/", "_")
    subprocess.run(
        ["git", "-C", str(common.ROOT), "worktree", "add", "--detach", str(path), ref],
        check=True,
        capture_output=True,
    )
    return path


def _remove_worktree(path: Path) -> None:
    subprocess.run(
        ["git", "-C", str(common.ROOT), "worktree", "remove", "--force", str(path)],
        check=False,
        capture_output=True,
    )


def _pure_path(
    tree: Path, repo_url: str, version: str, batch: int, payloads: Path
) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", PURE_PATH, repo_url, version, str(batch), str(payloads)],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    figures["total"] = sum(figures.values())
    return figures


def run(old: str, new: str, rounds: int, batches: list[int], out: str) -> dict[str, Any]:
    old, new = _short(old), _short(new)  # the commits themselves, not a moving HEAD
    sizes = " ".join(map(str, batches))
    cmd = f"python -m bench.ab {old} {new} --rounds {rounds} --batches {sizes}"
    results = common.header("ab", cmd, old=old, new=new, rounds=rounds, batches=batches)
    plan = wb.make_plan(quick=False)
    kafka = KafkaSettings()
    cleanup = Cleanup(kafka)
    tmp = Path(tempfile.mkdtemp(prefix="scorestream-ab-"))
    cleanup.dirs.append(tmp)
    trees = {"old": _worktree(old, tmp), "new": _worktree(new, tmp)}
    root = wb.WORKER_TREE
    try:
        repo = ModelRepository(str(tmp / "models"))
        version = str(bd.prepare_model(repo, retrain=False)["version"])
        payloads, _ = bd.make_payloads(plan.events)
        records = tmp / "payloads.pickle"
        with records.open("wb") as f:
            pickle.dump([(p.key, p.value, p.headers) for p in payloads[:4000]], f)
        results["pure_path_us_per_event"] = {
            arm: _pure_path(tree, str(repo.url), version, 500, records)
            for arm, tree in trees.items()
        }
        print(f"  pure path µs/event: {results['pure_path_us_per_event']}", flush=True)
        runs = []
        for r in range(rounds):
            order = ("old", "new") if r % 2 == 0 else ("new", "old")
            for batch in batches:
                for arm in order:
                    wb.WORKER_TREE = trees[arm]  # its worker process imports from its tree
                    res = wb.worker_run(
                        kafka,
                        repo,
                        version,
                        payloads,
                        cleanup,
                        tmp,
                        mode="exactly_once",
                        batch=batch,
                        plan=plan,
                    )
                    eps = res.get("events_per_s")
                    print(f"  round {r} batch {batch:>5} {arm}: {common.fmt(eps)} events/s")
                    runs.append({"round": r, "batch": batch, "arm": arm, **res})
        results["runs"] = runs
    finally:
        wb.WORKER_TREE = root
        for tree in trees.values():
            _remove_worktree(tree)
        cleanup.close()
    summary: dict[str, Any] = {}
    for batch in batches:
        med = {
            arm: statistics.median(
                x["events_per_s"]
                for x in results["runs"]
                if x["arm"] == arm and x["batch"] == batch and x.get("events_per_s")
            )
            for arm in ("old", "new")
        }
        summary[str(batch)] = med | {"ratio_new_over_old": med["new"] / med["old"]}
    pure = results["pure_path_us_per_event"]
    summary["pure_path_ratio_old_over_new"] = pure["old"]["total"] / pure["new"]["total"]
    results["summary"] = summary
    path = common.finish(results, bd.RESULTS, out)
    plot(results, path.with_suffix(".png"))
    return results


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    batches = [int(b) for b in results["batches"]]
    width = 0.38
    for i, arm in enumerate(("old", "new")):
        values = [results["summary"][str(b)][arm] for b in batches]
        ax1.bar([x + (i - 0.5) * width for x in range(len(batches))], values, width, label=arm)
        for run in results["runs"]:
            if run["arm"] == arm and run.get("events_per_s"):
                x = batches.index(run["batch"]) + (i - 0.5) * width
                ax1.plot(x, run["events_per_s"], "k.", markersize=4)
    ax1.set_xticks(range(len(batches)), [f"batch {b}" for b in batches])
    ax1.set_ylabel("events/s (EOS, 1 worker process)")
    ax1.set_title(f"worker: {results['old']} vs {results['new']} (medians, dots = runs)")
    ax1.legend()
    pure = results["pure_path_us_per_event"]
    stages = {"decode": "C0", "handler": "C1", "onnxruntime": "C2", "encode": "C3"}
    for i, arm in enumerate(("old", "new")):
        bottom = 0.0
        for stage, color in stages.items():
            label = stage if i == 0 else None
            ax2.bar(i, pure[arm][stage], 0.6, bottom=bottom, color=color, label=label)
            bottom += pure[arm][stage]
    ax2.set_xticks([0, 1], ["old", "new"])
    ax2.set_ylabel("µs per event (pure Python path, batch 500)")
    ax2.set_title("where the time goes")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__)
    parser.add_argument("old")
    parser.add_argument("new", nargs="?", default="HEAD")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--out", default="worker-ab")
    parser.add_argument("--plot-only", action="store_true", help="redraw the PNG from the JSON")
    args = parser.parse_args(argv)
    if args.plot_only:
        path = bd.RESULTS / f"{args.out}.json"
        plot(json.loads(path.read_text()), path.with_suffix(".png"))
        return 0
    from bench.suite import ensure_broker  # noqa: PLC0415

    ensure_broker()
    t0 = time.perf_counter()
    results = run(args.old, args.new, args.rounds, args.batches, args.out)
    for batch, figures in results["summary"].items():
        print(f"  {batch}: {figures}")
    print(f"bench ab: {time.perf_counter() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
