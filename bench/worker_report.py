"""The worker benchmark's report: plot, tables, summary rows and ratios."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.data import MODES, SHORT

if TYPE_CHECKING:
    from bench.worker_bench import Plan

# -- report ----------------------------------------------------------------------------------------
COLORS = {"exactly_once": "tab:blue", "at_least_once": "tab:orange"}


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(10, 6.2), dpi=110)
    ort = results["ort_only"]
    xs = sorted(int(b) for b in ort)
    ort_label = "(a) ONNX Runtime only, 1 thread (rows/s)"
    ax.plot(xs, [ort[str(b)]["rows_per_s"] for b in xs], "--", color="tab:green", label=ort_label)
    rates = {
        (r["mode"], r["batch"]): r["events_per_s"]
        for r in results["worker"]
        if r.get("events_per_s")
    }
    for mode in MODES:
        color = COLORS[mode]
        # the higher of the two worker curves is labelled above its points, the lower below
        peer = {b: v for (m, b), v in rates.items() if m != mode}
        pt = [r for r in results["passthrough"] if r["mode"] == mode and r["records_per_s"]]
        if pt:
            ax.plot(
                [r["batch"] for r in pt],
                [r["records_per_s"] for r in pt],
                ":",
                marker="x",
                color=color,
                alpha=0.7,
                label=f"(b) Kafka passthrough {SHORT[mode]} (records/s)",
            )
        wk = [r for r in results["worker"] if r["mode"] == mode and r.get("events_per_s")]
        if wk:
            ax.plot(
                [r["batch"] for r in wk],
                [r["events_per_s"] for r in wk],
                "-o",
                color=color,
                linewidth=2.2,
                label=f"(c) worker {SHORT[mode]} (events/s)",
            )
            for r in wk:
                ax.annotate(
                    f"{r['events_per_s']:,.0f}",
                    (r["batch"], r["events_per_s"]),
                    textcoords="offset points",
                    xytext=(5, 6 if r["events_per_s"] >= peer.get(r["batch"], 0) else -13),
                    fontsize=7.5,
                    color=color,
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8},
                )
    tuned = [r for r in results["passthrough_eos_short_backoff"] if r["records_per_s"]]
    if tuned:
        ax.plot(
            [r["batch"] for r in tuned],
            [r["records_per_s"] for r in tuned],
            ":",
            marker="+",
            color="tab:purple",
            alpha=0.7,
            label="(b') Kafka passthrough EOS, retry.backoff.ms=10 (records/s)",
        )
    limits = results["limits"]
    a, b = limits["ort_peak_rows_per_s"], limits["passthrough_eos_peak_records_per_s"]
    ax.axhline(a, color="tab:green", linewidth=1.3, label=f"limit (a): ORT peak {a:,.0f} rows/s")
    ax.axhline(
        b, color="tab:red", linewidth=1.3, label=f"limit (b): EOS passthrough peak {b:,.0f} rec/s"
    )
    stage = results.get("pure_path")
    if stage and stage.get("events_per_s_one_core"):
        c = stage["events_per_s_one_core"]
        ax.axhline(
            c,
            color="gray",
            linestyle="-.",
            linewidth=1,
            label=f"pure Python path decode→score→encode, 1 core: {c:,.0f} ev/s",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("batch size (records per consume() and per transaction)")
    ax.set_ylabel("throughput per second (log scale)")
    m = results["machine"]
    ax.set_title(
        f"scorestream worker throughput: {m['cpu_model']}, {m['nproc']} cores, "
        f"Kafka {m['kafka']}, librdkafka {m['librdkafka']}, ORT {m['onnxruntime']}",
        fontsize=9.5,
    )
    ax.grid(visible=True, which="both", alpha=0.25)
    ax.legend(fontsize=7.5, loc="lower right", framealpha=0.92)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def fmt(x: float | None, digits: int = 0) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def print_tables(results: dict[str, Any]) -> None:
    print("\n(a) ONNX Runtime only, 1 intra-op thread")
    print(f"{'batch':>6} {'rows/s':>12} {'us/call':>10}")
    for b, r in sorted(results["ort_only"].items(), key=lambda kv: int(kv[0])):
        print(f"{b:>6} {fmt(r['rows_per_s']):>12} {fmt(r['us_per_call'], 1):>10}")
    print("\n(b) Kafka passthrough and (c) worker by batch size; ratio = c / min(a, b same mode)")
    cols = (
        "batch",
        "ORT rows/s",
        "pt EOS",
        "pt EOS 10ms",
        "worker EOS",
        "ratio",
        "pt ALO",
        "worker ALO",
        "ratio",
    )
    widths = (6, 11, 9, 12, 11, 6, 9, 11, 6)
    print(" ".join(f"{c:>{w}}" for c, w in zip(cols, widths, strict=True)))
    for row in results["summary"]:
        cells = (
            str(row["batch"]),
            fmt(row["ort_rows_per_s"]),
            fmt(row["passthrough_eos"]),
            fmt(row["passthrough_eos_short_backoff"]),
            fmt(row["worker_eos"]),
            fmt(row["ratio_eos"], 2),
            fmt(row["passthrough_alo"]),
            fmt(row["worker_alo"]),
            fmt(row["ratio_alo"], 2),
        )
        print(" ".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True)))
    stage = results.get("pure_path")
    if stage:
        print(f"\npure Python path at batch {stage['batch']} (us/event, no Kafka)")
        for k, v in stage["us_per_event"].items():
            print(f"  {k:<42} {v:8.1f}")
        rate = fmt(stage["events_per_s_one_core"])
        print(f"  {'total':<42} {stage['total_us_per_event']:8.1f}  = {rate} events/s on 1 core")
        print(
            f"  {'total with the GC disabled':<42} {stage['total_us_per_event_gc_disabled']:8.1f}"
        )
    busy = {
        k: v
        for k, v in results.get("foreign_cpu", {}).items()
        if (v["foreign_cores_mean"] or 0) >= 0.15
    }
    if busy:
        print("\nWARNING: other processes used CPU during these phases (cores, mean):")
        for k, v in busy.items():
            print(f"  {k:<44} {v['foreign_cores_mean']:.2f}  {v['top_foreign']}")
    prof = results.get("profile")
    if prof:
        print(
            f"\nprofile: worker {SHORT[prof['mode']]} batch {prof['batch']}, {prof['events']:,} "
            f"events in {prof['wall_s']:.1f}s under cProfile "
            f"({fmt(prof['events_per_s_profiled'])} ev/s); top self time:"
        )
        for r in prof["top_self"]:
            print(
                f"  {r['tottime_pct_of_wall']:5.1f}%  {r['tottime_us_per_event']:8.1f} us/ev  "
                f"{r['function']}  ({r['where']})"
            )


def summarise(results: dict[str, Any], plan: Plan) -> list[dict[str, Any]]:
    ort = results["ort_only"]
    pt = {(r["mode"], r["batch"]): r["records_per_s"] for r in results["passthrough"]}
    wk = {(r["mode"], r["batch"]): r.get("events_per_s") for r in results["worker"]}
    tuned = {r["batch"]: r["records_per_s"] for r in results["passthrough_eos_short_backoff"]}
    rows = []
    for b in plan.worker_batches:
        row: dict[str, Any] = {
            "batch": b,
            "ort_rows_per_s": ort.get(str(b), {}).get("rows_per_s"),
            "passthrough_eos_short_backoff": tuned.get(b),
        }
        for mode in MODES:
            s = SHORT[mode].lower()
            p, w = pt.get((mode, b)), wk.get((mode, b))
            row[f"passthrough_{s}"] = p
            row[f"worker_{s}"] = w
            known = [x for x in (row["ort_rows_per_s"], p) if x]
            limit = min(known) if known else None
            row[f"limit_{s}"] = limit
            row[f"ratio_{s}"] = w / limit if w and limit else None
        t, w = row["passthrough_eos_short_backoff"], row["worker_eos"]
        known = [x for x in (row["ort_rows_per_s"], t) if x]
        row["ratio_eos_vs_short_backoff"] = w / min(known) if w and known else None
        rows.append(row)
    return rows
