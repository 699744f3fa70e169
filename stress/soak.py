#!/usr/bin/env python3
"""Soak test: mixed load against a running stack for a configurable time (stdlib only).

Each simulated user registers and logs in once, then loops until the time is up over a mix of
  - upload:  POST /predictions (mostly unique bytes, some repeats that hit the result cache),
             then GET /predictions/{id}?wait=10 until the job is done or failed,
  - predict: POST /predict (synchronous),
  - history: GET /predictions?per_page=20,
  - info:    GET /info.

At the end it re-checks every accepted upload that had not finished yet (for --settle
seconds); a job that never finishes is "lost". It reports total requests, errors by status,
p50/p95/p99 latency per kind, lost jobs and each process's RSS (VmRSS from /proc) at start,
after the warm-up and at the end, and writes stress/reports/soak-<date>.json + .md.

    python3 stress/soak.py --api http://127.0.0.1:8000 --minutes 10 --users 8 \
        --pid api=1234 --pid worker-1=1235 --pid worker-2=1236

Without --pid, processes are found with `pgrep -f target/release/api` (and worker, ui).
Exit status: 0 when there was no 5xx, no transport error and no lost job; 1 otherwise.
"""

import argparse
import datetime as dt
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from pathlib import Path

from imagetag import tagged

HERE = Path(__file__).resolve().parent
# Mixed sizes and formats (each upload picks one): 517x606, 1289x1100 with an EXIF rotation
# and 2100x2461 JPEGs (the last two take the reduced-scale decode), a 512x560 PNG.
DEFAULT_IMAGES = [
    HERE.parent.parent / "shared" / "testdata" / "grace_hopper.jpg",
    *(HERE.parent / "tests" / "fixtures" / "photos" / f
      for f in ("grace_hopper_1100_exif6.jpg", "grace_hopper_2100.jpg", "grace_hopper_crop.png")),
]

# (kind, weight) of the mix.
MIX = [("upload", 50), ("predict", 15), ("history", 20), ("info", 15)]


class Stats:
    """Thread-safe counters and latency samples."""

    def __init__(self):
        self.lock = threading.Lock()
        self.latency = defaultdict(list)  # kind -> [seconds]
        self.status = Counter()  # (kind, status) -> n
        self.transport = Counter()  # kind -> n (no HTTP answer at all)
        self.jobs = {}  # job_id -> final status or None
        self.accepted = 0
        self.cached = 0

    def record(self, kind, status, seconds):
        with self.lock:
            self.latency[kind].append(seconds)
            if status is None:
                self.transport[kind] += 1
            else:
                self.status[(kind, status)] += 1


class Http:
    """Minimal JSON/multipart client on urllib."""

    def __init__(self, base, stats, timeout):
        self.base = base.rstrip("/")
        self.stats = stats
        self.timeout = timeout
        self.token = None

    def request(self, kind, method, path, body=None, headers=None):
        """Returns (status or None, parsed JSON or None); records latency under `kind`."""
        h = dict(headers or {})
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.base + path, data=body, method=method, headers=h)
        started = time.monotonic()
        status, raw = None, b""
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        except Exception:  # noqa: BLE001  timeouts, refused connections, resets
            status = None
        elapsed = time.monotonic() - started
        if kind:
            self.stats.record(kind, status, elapsed)
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = None
        return status, data

    def json(self, kind, method, path, payload):
        body = json.dumps(payload).encode()
        return self.request(kind, method, path, body, {"Content-Type": "application/json"})

    def multipart(self, kind, path, filename, data):
        boundary = uuid.uuid4().hex
        body = (
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
        return self.request(
            kind, "POST", path, body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        )


def user_loop(idx, args, images, stats, deadline, stop):
    rng = random.Random(args.seed * 1000 + idx)
    http = Http(args.api, stats, args.timeout)
    email = f"soak-{uuid.uuid4().hex}@example.com"
    password = "soak-test-password"
    for _ in range(30):
        st, _ = http.json("register", "POST", "/users", {"name": f"Soak {idx}", "email": email, "password": password})
        if st in (201, 409):
            break
        time.sleep(1)
    st, tok = http.json("login", "POST", "/login", {"email": email, "password": password})
    if st != 200 or not tok:
        print(f"soak: user {idx} could not log in ({st})", file=sys.stderr)
        return
    http.token = tok["access_token"]
    kinds = [k for k, _ in MIX]
    weights = [w for _, w in MIX]
    n = 0
    while time.monotonic() < deadline and not stop.is_set():
        kind = rng.choices(kinds, weights)[0]
        n += 1
        name, image = rng.choice(images)
        if kind == "upload":
            # One upload in five repeats a known one (result cache): bytes after the image's
            # end marker are dropped by the API, so these are the same image.
            if rng.random() < 0.2:
                data = image + f"#repeat-{rng.randrange(5)}".encode()
            else:
                data = tagged(image, f"soak-{idx}-{n}-{uuid.uuid4().hex}")
            st, body = http.multipart("upload", "/predictions", name, data)
            if st == 200 and body:
                with stats.lock:
                    stats.cached += 1
            if st == 202 and body:
                job_id = body["job_id"]
                with stats.lock:
                    stats.accepted += 1
                    stats.jobs[job_id] = None
                accepted = time.monotonic()
                final = None
                while time.monotonic() - accepted < args.job_limit:
                    st2, job = http.request("wait", "GET", f"/predictions/{job_id}?wait=10")
                    if st2 == 200 and job and job.get("status") in ("done", "failed"):
                        final = job["status"]
                        break
                    if st2 is not None and st2 != 200 and st2 < 500:
                        break
                    if st2 is None or st2 >= 500:
                        time.sleep(0.5)
                if final:
                    stats.record("job_total", 200, time.monotonic() - accepted)
                    with stats.lock:
                        stats.jobs[job_id] = final
        elif kind == "predict":
            data = tagged(image, f"sync-{idx}-{n}-{uuid.uuid4().hex}")
            http.multipart("predict", "/predict", name, data)
        elif kind == "history":
            http.request("history", "GET", "/predictions?per_page=20")
        else:
            http.request("info", "GET", "/info")
        if args.think > 0:
            time.sleep(rng.uniform(0, args.think))
    # Hand the token to the settle phase.
    with stats.lock:
        stats.tokens = getattr(stats, "tokens", [])
        stats.tokens.append(http.token)


def settle(args, stats):
    """Re-checks unfinished jobs; returns the ids that never finished."""
    tokens = getattr(stats, "tokens", [])
    pending = [j for j, s in stats.jobs.items() if s is None]
    if not pending:
        return []
    deadline = time.monotonic() + args.settle
    lost = []
    for job_id in pending:
        final = None
        while final is None and time.monotonic() < deadline:
            for tok in tokens:  # whichever user owns it answers 200
                http = Http(args.api, stats, args.timeout)
                http.token = tok
                st, job = http.request(None, "GET", f"/predictions/{job_id}?wait=5")
                if st == 200 and job:
                    if job.get("status") in ("done", "failed"):
                        final = job["status"]
                    break
            else:
                time.sleep(1)
        if final:
            stats.jobs[job_id] = final
        else:
            lost.append(job_id)
    return lost


def find_pids():
    found = {}
    for name in ("api", "worker", "ui"):
        try:
            out = subprocess.run(
                ["pgrep", "-f", f"target/release/{name}"], capture_output=True, text=True, check=False
            ).stdout.split()
        except FileNotFoundError:
            out = []
        for i, pid in enumerate(sorted(out, key=int)):
            found[name if len(out) == 1 else f"{name}-{i + 1}"] = int(pid)
    return found


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def pct(values, p):
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--api", default=os.environ.get("API_URL", "http://127.0.0.1:8000"))
    ap.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", "10")))
    ap.add_argument("--users", type=int, default=8)
    ap.add_argument("--image", action="append", default=[], help="an image to upload (repeatable; default: four photos of mixed sizes, or $IMAGE)")
    ap.add_argument("--pid", action="append", default=[], metavar="NAME=PID", help="a process to watch (repeatable)")
    ap.add_argument("--think", type=float, default=0.2, help="max seconds a user pauses between requests")
    ap.add_argument("--timeout", type=float, default=60, help="client timeout per request, seconds")
    ap.add_argument("--job-limit", type=float, default=120, help="seconds a user waits for one job")
    ap.add_argument("--settle", type=float, default=120, help="seconds to wait for unfinished jobs at the end")
    ap.add_argument("--warmup", type=float, default=60, help="seconds after which the warm RSS baseline is taken")
    ap.add_argument("--reports", default=str(HERE / "reports"))
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    paths = [Path(p) for p in args.image] or ([Path(os.environ["IMAGE"])] if os.environ.get("IMAGE") else DEFAULT_IMAGES)
    for p in paths:
        if not p.is_file():
            sys.exit(f"soak: image {p} not found (--image)")
    images = [(p.name, p.read_bytes()) for p in paths]
    pids = {}
    for spec in args.pid:
        name, _, pid = spec.partition("=")
        pids[name] = int(pid)
    if not pids:
        pids = find_pids()
    if not pids:
        print("soak: no process to watch (pass --pid name=PID); RSS will not be reported", file=sys.stderr)

    probe = Http(args.api, Stats(), 10)
    st, _ = probe.request(None, "GET", "/health")
    if st != 200:
        sys.exit(f"soak: {args.api}/health answered {st}; is the stack running?")

    stats = Stats()
    rss_start = {n: rss_kb(p) for n, p in pids.items()}
    rss_warm = {}
    rss_max = dict(rss_start)
    started_wall = dt.datetime.now()
    started = time.monotonic()
    deadline = started + args.minutes * 60
    stop = threading.Event()
    threads = [
        threading.Thread(target=user_loop, args=(i, args, images, stats, deadline, stop), daemon=True)
        for i in range(args.users)
    ]
    for t in threads:
        t.start()
    print(f"soak: {args.users} users against {args.api} for {args.minutes} min; watching {pids}", flush=True)
    last_print = started
    try:
        while any(t.is_alive() for t in threads):
            time.sleep(1)
            now = time.monotonic()
            for n, p in pids.items():
                r = rss_kb(p)
                if r is not None:
                    rss_max[n] = max(rss_max.get(n) or 0, r)
            if not rss_warm and now - started >= min(args.warmup, args.minutes * 30):
                rss_warm = {n: rss_kb(p) for n, p in pids.items()}
            if now - last_print >= 30:
                last_print = now
                with stats.lock:
                    total = sum(stats.status.values()) + sum(stats.transport.values())
                    e5 = sum(v for (k, s), v in stats.status.items() if s >= 500)
                print(
                    f"soak: {int(now - started)} s, {total} requests, {e5} 5xx, "
                    f"{stats.accepted} jobs accepted, rss {{{', '.join(f'{n}: {rss_kb(p)} kB' for n, p in pids.items())}}}",
                    flush=True,
                )
    except KeyboardInterrupt:
        stop.set()
        for t in threads:
            t.join(timeout=15)
    load_seconds = time.monotonic() - started
    lost = settle(args, stats)
    rss_end = {n: rss_kb(p) for n, p in pids.items()}

    total = sum(stats.status.values()) + sum(stats.transport.values())
    by_status = Counter()
    for (_, s), v in stats.status.items():
        by_status[s] += v
    errors = {str(s): v for s, v in sorted(by_status.items()) if s >= 400}
    transport = sum(stats.transport.values())
    if transport:
        errors["no_response"] = transport
    five_xx = sum(v for s, v in by_status.items() if s >= 500)
    kinds = {}
    for kind, lat in sorted(stats.latency.items()):
        statuses = {str(s): v for (k, s), v in sorted(stats.status.items()) if k == kind}
        if stats.transport.get(kind):
            statuses["no_response"] = stats.transport[kind]
        kinds[kind] = {
            "count": len(lat),
            "statuses": statuses,
            "p50_ms": round(pct(lat, 50) * 1000, 1),
            "p95_ms": round(pct(lat, 95) * 1000, 1),
            "p99_ms": round(pct(lat, 99) * 1000, 1),
            "mean_ms": round(statistics.fmean(lat) * 1000, 1),
            "max_ms": round(max(lat) * 1000, 1),
        }

    def growth(a, b):
        return round((b - a) / a * 100, 1) if a and b else None

    rss = {
        n: {
            "pid": pids[n],
            "start_kb": rss_start.get(n),
            "warm_kb": rss_warm.get(n),
            "end_kb": rss_end.get(n),
            "max_kb": rss_max.get(n),
            "growth_pct": growth(rss_start.get(n), rss_end.get(n)),
            "growth_after_warmup_pct": growth(rss_warm.get(n), rss_end.get(n)),
        }
        for n in pids
    }
    finished = Counter(s for s in stats.jobs.values() if s)
    report = {
        "started": started_wall.isoformat(timespec="seconds"),
        "api": args.api,
        "minutes": args.minutes,
        "load_seconds": round(load_seconds, 1),
        "users": args.users,
        "images": [f"{n} ({len(b) // 1024} KiB)" for n, b in images],
        "mix": dict(MIX),
        "total_requests": total,
        "requests_per_second": round(total / load_seconds, 1) if load_seconds else None,
        "statuses": {str(s): v for s, v in sorted(by_status.items())},
        "errors": errors,
        "five_xx": five_xx,
        "uploads_accepted": stats.accepted,
        "uploads_cached": stats.cached,
        "jobs_finished": dict(finished),
        "lost_jobs": len(lost),
        "lost_job_ids": lost[:50],
        "kinds": kinds,
        "rss": rss,
    }
    out_dir = Path(args.reports)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = started_wall.strftime("%Y%m%d-%H%M%S")
    json_path = out_dir / f"soak-{stamp}.json"
    md_path = out_dir / f"soak-{stamp}.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path.write_text(markdown(report))
    print(md_path.read_text())
    print(f"soak: report written to {md_path} and {json_path}")
    ok = five_xx == 0 and transport == 0 and not lost
    return 0 if ok else 1


def markdown(r):
    lines = [
        f"# Soak run {r['started']}",
        "",
        f"- target: {r['api']}, {r['users']} users, {r['minutes']} min ({r['load_seconds']} s of load)",
        f"- mix (weights): {', '.join(f'{k} {v}' for k, v in r['mix'].items())}",
        f"- images (each upload picks one, made unique by a tag): {', '.join(r.get('images', []))}",
        f"- requests: {r['total_requests']} ({r['requests_per_second']}/s); statuses: "
        + ", ".join(f"{s}: {n}" for s, n in r["statuses"].items()),
        f"- errors by status: {r['errors'] or 'none'}; 5xx: {r['five_xx']}",
        f"- uploads accepted as jobs: {r['uploads_accepted']} (plus {r['uploads_cached']} answered from the cache); "
        f"finished: {r['jobs_finished']}; **lost jobs: {r['lost_jobs']}**",
        "",
        "| kind | count | statuses | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for k, v in r["kinds"].items():
        st = ", ".join(f"{s}: {n}" for s, n in v["statuses"].items())
        lines.append(f"| {k} | {v['count']} | {st} | {v['p50_ms']} | {v['p95_ms']} | {v['p99_ms']} | {v['max_ms']} |")
    lines += [
        "",
        "`wait` is each `GET /predictions/{id}?wait=10` call; `job_total` is upload accepted -> job finished.",
        "",
        "| process | pid | RSS start kB | RSS after warm-up kB | RSS end kB | max kB | growth | growth after warm-up |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, v in r["rss"].items():
        g = f"{v['growth_pct']} %" if v["growth_pct"] is not None else "-"
        gw = f"{v['growth_after_warmup_pct']} %" if v["growth_after_warmup_pct"] is not None else "-"
        lines.append(
            f"| {n} | {v['pid']} | {v['start_kb']} | {v['warm_kb']} | {v['end_kb']} | {v['max_kb']} | {g} | {gw} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
