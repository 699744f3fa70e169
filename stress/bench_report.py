#!/usr/bin/env python3
"""Turns one `make bench` run (the JSON lines of stress/reports/bench.jsonl with its run id) into
stress/reports/bench-<date>.md and a PNG chart beside it: throughput and latency p50/p99 against
concurrent clients per model and setup, then the preprocessing comparison.

    .venv/bin/python stress/bench_report.py RUN_ID [stress/reports/bench.jsonl]
"""
import json
import os
import pathlib
import platform
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    run = sys.argv[1]
    src = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else "stress/reports/bench.jsonl")
    lines = [json.loads(l) for l in src.read_text().splitlines() if l.strip()]
    mine = [r for r in lines if r.get("run") == run]
    if not mine:
        sys.exit(f"bench_report: no lines of run {run} in {src}")
    date = run.split("-")[0]
    out_md = src.parent / f"bench-{date}.md"
    out_png = src.parent / f"bench-{date}.png"

    series = defaultdict(list)
    for r in mine:
        if r.get("kind") == "e2e" and "clients" in r:
            series[(r["model"], r.get("setup") or "")].append(r)
    md = [
        f"# Benchmark {run}",
        "",
        f"{cpu_model()}, {os.cpu_count()} logical CPUs, one run (`make bench`, "
        f"BENCH_SECONDS={os.environ.get('BENCH_SECONDS', '20')}); client, API, Redis and "
        "workers share this machine. Unique uploads (a JPEG comment per request).",
        "",
        "## End to end",
        "",
        "| model | setup | clients | img/s | p50 ms | p99 ms | raw session.run img/s (batch 1) | img/s / raw |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (model, setup), rows in sorted(series.items()):
        for r in sorted(rows, key=lambda r: r["clients"]):
            md.append(
                f"| {model} | {setup} | {r['clients']} | {r['e2e_img_per_s']:.1f} | "
                f"{r['e2e_p50_ms']:.0f} | {r.get('e2e_p99_ms', float('nan')):.0f} | "
                f"{r['raw_img_per_s']:.1f} | {r['e2e_img_per_s'] / r['raw_img_per_s']:.2f} |"
            )
    md += [
        "",
        "Engine layouts (1 x N threads, N x 1 thread, the executor's choice) are measured in one "
        "process by `worker bench-executor` (stress/reports/bench-executor.jsonl), not by this run.",
        "",
    ]
    for r in mine:
        if r.get("kind") == "preprocess":
            md += [
                "## Preprocessing (one thread, bytes to input tensor, median)",
                "",
                "| image | file | plain decode + resize | worker path | speed-up | JPEG decoded at |",
                "|---|---:|---:|---:|---:|---:|",
            ]
            for p in r["rows"]:
                md.append(
                    f"| {p['image']} | {p['bytes'] / 1e6:.1f} MB | {p['plain_ms']:.1f} ms | "
                    f"{p['fast_ms']:.1f} ms | {p['plain_ms'] / p['fast_ms']:.1f}x | 1/{p['jpeg_scale']} |"
                )
            md.append("")
    md.append(f"![throughput and latency against clients]({out_png.name})")
    out_md.write_text("\n".join(md) + "\n")

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for (model, setup), rows in sorted(series.items()):
        rows = sorted(rows, key=lambda r: r["clients"])
        c = [r["clients"] for r in rows]
        label = f"{model}, {setup}"
        ax1.plot(c, [r["e2e_img_per_s"] for r in rows], marker="o", label=label)
        (line,) = ax2.plot(c, [r["e2e_p50_ms"] for r in rows], marker="o", label=f"{label} p50")
        ax2.plot(c, [r.get("e2e_p99_ms", 0) for r in rows], marker="x", linestyle="--",
                 color=line.get_color(), label=f"{label} p99")
    for ax, title, unit in ((ax1, "throughput", "img/s"), (ax2, "latency", "ms")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    print(f"bench_report: wrote {out_md} and {out_png}")


if __name__ == "__main__":
    main()
