"""Turns the CSVs of `make locust` (stress/reports/locust/w<W>-u<U>_stats.csv) into a chart
(PNG) and a Markdown summary: users x workers, classifications per second, latency
percentiles, failures, cache hits, and the machine they were measured on.

    .venv/bin/python stress/locust_report.py --dir stress/reports/locust --seconds 60 \\
        --chart stress/reports/locust.png --summary stress/reports/locust.md
"""

import argparse
import csv
import os
import platform
import re
import subprocess
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

CLASSIFY = ("POST /predict", "GET /predictions/{id}?wait")
SYNC = "POST /predict"


def read_point(path):
    """Rows of one point's stats CSV by name."""
    with open(path, newline="") as f:
        return {row["Name"]: row for row in csv.DictReader(f)}


def num(row, col):
    try:
        return float(row.get(col) or 0)
    except ValueError:
        return 0.0


def point_summary(rows, seconds):
    agg = rows.get("Aggregated", {})
    ok_classify = sum(num(rows[n], "Request Count") - num(rows[n], "Failure Count") for n in CLASSIFY if n in rows)
    cache_hits = sum(num(r, "Request Count") for n, r in rows.items() if n.endswith("(cache hit)"))
    sync = rows.get(SYNC, {})
    return {
        "classify_per_s": ok_classify / seconds,
        "requests": num(agg, "Request Count"),
        "req_per_s": num(agg, "Requests/s"),
        "failures": num(agg, "Failure Count"),
        "cache_hits": cache_hits,
        "p50": num(sync, "50%"),
        "p95": num(sync, "95%"),
        "p99": num(sync, "99%"),
        "agg_p50": num(agg, "50%"),
        "agg_p95": num(agg, "95%"),
        "agg_p99": num(agg, "99%"),
    }


def machine():
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f", {kb / 1024 / 1024:.1f} GiB RAM"
    except (OSError, AttributeError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{mem}, Linux {platform.release()}"


def commit():
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", required=True, type=Path)
    ap.add_argument("--seconds", required=True, type=float)
    ap.add_argument("--profile", default="release")
    ap.add_argument("--note", default="")
    ap.add_argument("--chart", required=True, type=Path)
    ap.add_argument("--summary", required=True, type=Path)
    args = ap.parse_args()

    points = {}
    for f in sorted(args.dir.glob("w*-u*_stats.csv")):
        m = re.fullmatch(r"w(\d+)-u(\d+)_stats\.csv", f.name)
        if m:
            w, u = int(m.group(1)), int(m.group(2))
            s = point_summary(read_point(f), args.seconds)
            load = args.dir / f"w{w}-u{u}.load"
            s["load"] = load.read_text().strip() if load.exists() else "?"
            points[(w, u)] = s
    if not points:
        raise SystemExit(f"no w*-u*_stats.csv in {args.dir}")
    workers = sorted({w for w, _ in points})
    users = sorted({u for _, u in points})

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    x = list(range(len(users)))
    for i, w in enumerate(workers):
        color = f"C{i}"
        ys = [points.get((w, u), {}).get("classify_per_s", float("nan")) for u in users]
        ax1.plot(x, ys, marker="o", color=color, label=f"{w} worker{'s' if w > 1 else ''}")
        for pct, style in (("p50", "-"), ("p95", "--"), ("p99", ":")):
            ys = [points.get((w, u), {}).get(pct, float("nan")) for u in users]
            ax2.plot(x, ys, style, marker="o", color=color, label=f"{pct}, {w} worker{'s' if w > 1 else ''}")
    for ax in (ax1, ax2):
        ax.set_xticks(x, [str(u) for u in users])
        ax.set_xlabel("Locust users")
        ax.grid(alpha=0.3)
    ax1.set_ylabel("classifications / s (successful)")
    ax1.set_title("Throughput")
    ax1.legend()
    ax2.set_ylabel("ms")
    ax2.set_yscale("log")
    ax2.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax2.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax2.set_title("POST /predict latency (upload to answer)")
    ax2.legend(fontsize=7, ncol=2)
    started = (args.dir / "started").read_text().strip() if (args.dir / "started").exists() else "?"
    fig.suptitle(f"Locust, {args.seconds:.0f} s per point, {started}, {machine()}", fontsize=8)
    fig.tight_layout()
    args.chart.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.chart, dpi=110)

    lines = [
        "# Locust report",
        "",
        f"- When: {started} (UTC), {args.seconds:.0f} s per point, commit {commit()}, "
        f"`{args.profile}` build",
        f"- Machine: {machine()}",
        "- Stack per worker count: `xtask stack` (private Redis, the api, SQLite, N workers "
        f"with INTRA_THREADS={os.environ.get('INTRA_THREADS', '1')}, "
        f"model {os.environ.get('MODELS', 'efficientnet-lite0')}), Locust on the same machine",
        "- Mix per user (think time 0.5-2 s): 6 x `POST /predictions` + `GET /predictions/{id}?wait`, "
        "2 x `POST /predict`, 1 x `GET /predictions`, 1 x `GET /info`; every upload new bytes "
        f"(REPEAT_SHARE={os.environ.get('REPEAT_SHARE', '0')})",
    ]
    if args.note:
        lines.append(f"- Conditions: {args.note}")
    lines += [
        "",
        "| workers | users | classifications/s | requests/s | POST /predict p50 / p95 / p99 (ms) "
        "| all requests p50 / p95 / p99 (ms) | failures | cache hits | load avg before |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for w in workers:
        for u in users:
            s = points.get((w, u))
            if not s:
                continue
            lines.append(
                f"| {w} | {u} | {s['classify_per_s']:.1f} | {s['req_per_s']:.1f} "
                f"| {s['p50']:.0f} / {s['p95']:.0f} / {s['p99']:.0f} "
                f"| {s['agg_p50']:.0f} / {s['agg_p95']:.0f} / {s['agg_p99']:.0f} "
                f"| {s['failures']:.0f} of {s['requests']:.0f} | {s['cache_hits']:.0f} | {s['load']} |"
            )
    lines += [
        "",
        "Classifications/s counts successful `POST /predict` answers and successful waits on "
        "`POST /predictions` jobs, over the run's length. Per-point CSV and HTML reports: "
        f"`{args.dir.name}/` beside this file.",
        "",
        f"![Locust chart]({args.chart.name})",
        "",
    ]
    args.summary.write_text("\n".join(lines))
    total_failures = sum(s["failures"] for s in points.values())
    print("\n".join(lines))
    if total_failures:
        print(f"locust_report: {total_failures:.0f} failures")


if __name__ == "__main__":
    main()
