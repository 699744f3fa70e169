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


def ms(v):
    """A duration cell: empty for records written before the column existed."""
    return "" if v is None else f"{v:.1f} ms"


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
    engine = {r["model"]: r for r in mine if r.get("kind") == "engine"}

    def best(model):
        """The engine's best throughput layout of this run (executor points excluded)."""
        pts = [p for p in engine.get(model, {}).get("points", []) if not p["layout"].startswith("executor")]
        return max(pts, key=lambda p: p["img_per_s"]) if pts else None

    md = [
        f"# Benchmark {run}",
        "",
        f"{cpu_model()}, {os.cpu_count()} logical CPUs, one run (`make bench`, "
        f"BENCH_SECONDS={os.environ.get('BENCH_SECONDS', '20')}); client, API, Redis and "
        "workers share this machine. Unique uploads (a JPEG comment per request).",
        "",
    ]
    if engine:
        md += [
            "## Engine layouts (one process, `cargo xtask bench-executor`, no HTTP or Redis)",
            "",
            "| model | layout | img/s | p50 ms |",
            "|---|---|---:|---:|",
        ]
        for model, r in sorted(engine.items()):
            b = best(model)
            for p in r["points"]:
                mark = " (best)" if b is p else ""
                md.append(f"| {model} | {p['layout']}{mark} | {p['img_per_s']:.1f} | {p['p50_ms']:.1f} |")
        md.append("")
    md += [
        "## End to end",
        "",
        "Sync `POST /predict`, one request per image. In the worker: the median of the job's own "
        "time (`elapsed_ms`: decode, preprocessing, inference, thumbnail); the rest of p50 is HTTP, "
        "the API, Redis and the wait in the queue.",
        "",
        "| model | setup | clients | img/s | p50 ms | p99 ms | in the worker p50 ms | raw session.run img/s (batch 1) | img/s / raw | img/s / engine best |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (model, setup), rows in sorted(series.items()):
        b = best(model)
        for r in sorted(rows, key=lambda r: r["clients"]):
            vs_best = f"{r['e2e_img_per_s'] / b['img_per_s']:.2f}" if b else ""
            in_worker = f"{r['worker_p50_ms']:.0f}" if "worker_p50_ms" in r else ""
            md.append(
                f"| {model} | {setup} | {r['clients']} | {r['e2e_img_per_s']:.1f} | "
                f"{r['e2e_p50_ms']:.0f} | {r.get('e2e_p99_ms', float('nan')):.0f} | {in_worker} | "
                f"{r['raw_img_per_s']:.1f} | {r['e2e_img_per_s'] / r['raw_img_per_s']:.2f} | {vs_best} |"
            )
    cpu_rows = [
        (model, setup, r)
        for (model, setup), rows in sorted(series.items())
        for r in sorted(rows, key=lambda r: r["clients"])
        if r.get("cpu_ms_per_image")
    ]
    if cpu_rows:
        names = sorted({n for _, _, r in cpu_rows for n in r["cpu_ms_per_image"]},
                       key=lambda n: (not n.startswith("worker"), n))
        md += [
            "",
            "## CPU time per image, by process",
            "",
            "CPU milliseconds (user + system, from /proc) each process of the stack spent per "
            "finished image at each point; `client` is the load generator. The workers' share "
            "is what the engine measurement had to itself.",
            "",
            "| model | setup | clients | " + " | ".join(names) + " | all | workers' share |",
            "|---|---|---:|" + "---:|" * (len(names) + 2),
        ]
        for model, setup, r in cpu_rows:
            c = r["cpu_ms_per_image"]
            total = sum(c.values())
            workers = sum(v for n, v in c.items() if n.startswith("worker"))
            md.append(
                f"| {model} | {setup} | {r['clients']} | "
                + " | ".join(f"{c[n]:.1f}" if n in c else "" for n in names)
                + f" | {total:.1f} | {workers / total * 100 if total else 0:.0f} % |"
            )
    md += [
        "",
        "",
    ]
    for r in mine:
        if r.get("kind") == "preprocess":
            md += [
                "## Preprocessing (one thread, bytes to input tensor, median)",
                "",
                "Plain: the `image` crate's decode and its own resize (`imageops::resize`, Triangle) "
                "of the whole picture, then the crop. Full decode: the worker's decode at full size "
                "and its SIMD resize of the crop only. Worker: the reduced-scale JPEG decode "
                "(libjpeg-turbo) where it applies, then the same resize. Thumbnail: the history's "
                "320 px JPEG from the decoded picture, plain (`imageops::resize` + the `image` "
                "crate's encoder) and the worker's (SIMD resize + libjpeg-turbo's encoder).",
                "",
                "| image | file | plain | full decode + SIMD resize | worker path | worker vs plain | worker vs full decode | JPEG decoded at | thumbnail: plain | thumbnail: worker |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            ]
            for p in r["rows"]:
                full = p.get("full_decode_ms", float("nan"))
                md.append(
                    f"| {p['image']} | {p['bytes'] / 1e6:.1f} MB | {p['plain_ms']:.1f} ms | {full:.1f} ms | "
                    f"{p['fast_ms']:.1f} ms | {p['plain_ms'] / p['fast_ms']:.1f}x | {full / p['fast_ms']:.1f}x | "
                    f"1/{p['jpeg_scale']} | {ms(p.get('plain_thumb_ms'))} | {ms(p.get('thumb_ms'))} |"
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
