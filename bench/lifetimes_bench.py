#!/usr/bin/env python3
"""Issue 15's figures for the kernel's process events: stress-ng --fork and
--pthread at full rate under one worker for --seconds (10) each.

  python3 bench/lifetimes_bench.py [--bin build/bin] [--seconds 10] [--workers 2]
                                   [--stressor fork|pthread|both] [--watch] [--runs N]

For each stressor: how many processes (or threads) stress-ng made (its
bogo-ops, from --yaml), the lifetimes stored in forkwatch.db, the events the
kernel reported and those it dropped (process_events_lost: each missed event
is counted), the lifetimes stored per second of the run, and the daemon's CPU
(utime+stime from /proc/PID/stat) per 1,000 process events. "Every process
recorded or counted" holds when stored + lost >= made (a lost process costs at
least one event). With --pthread, the thread lifetimes stored
(thread_lifetimes, schema v6) beside the threads made and the threads
counted; a daemon without that table (an older build, for a before/after
figure) shows null. Loopback only; bounded by --seconds plus a drain of at most
60 s; one temp dir, removed at the end. Needs root and stress-ng (Debian
package stress-ng).
"""

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fw_daemon  # noqa: E402


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def thread_ticks(pid):
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                text = f.read()
        except OSError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        key = "loop" if tid == str(pid) else name
        out[key] = out.get(key, 0) + int(fields[11]) + int(fields[12])
    return out


def request(port, token, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    h = {"Authorization": "Bearer " + token}
    if body is not None:
        h["Content-Type"] = "application/json"
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, json.loads(data) if data else None


def run_one(args, stressor):
    tmp = tempfile.mkdtemp(prefix="fw-lifetimes-bench-")
    state = os.path.join(tmp, "state")
    os.makedirs(state)
    yaml = os.path.join(tmp, "metrics.yaml")
    daemon, port, token = fw_daemon.start(args.bin, state, "--allow-commands",
                                          stderr=open(os.path.join(tmp, "daemon.log"), "w"))
    try:
        if args.watch:
            # As a dashboard would: the sampler runs at full rate and the live
            # tree takes every fork, exec and exit between samples.
            request(port, token, "GET", "/api/tree")
        _, h0 = request(port, token, "GET", "/api/health")
        t0 = cpu_ticks(daemon.pid)
        th0 = thread_ticks(daemon.pid)
        start = time.time()
        status, w = request(port, token, "POST", "/api/workers", {
            "command": ["/usr/bin/stress-ng", "--" + stressor, str(args.workers), "--timeout", f"{args.seconds}s",
                        "--yaml", yaml, "--quiet", "--metrics-brief"], "restart": "no"})
        assert status == 201, w
        wid = w["id"]
        while time.time() < start + args.seconds + 30:
            _, wk = request(port, token, "GET", f"/api/workers/{wid}")
            if wk["state"] not in ("starting", "running", "stopping"):
                break
            time.sleep(0.2)
        ran = time.time() - start
        # Until the tracker and the store have written everything.
        drain_deadline = time.time() + 60
        while time.time() < drain_deadline:
            _, h = request(port, token, "GET", "/api/health")
            if h["store"]["queue_depth"] == 0:
                break
            time.sleep(0.2)
        time.sleep(0.5)
        t1 = cpu_ticks(daemon.pid)
        th1 = thread_ticks(daemon.pid)
        _, h1 = request(port, token, "GET", "/api/health")
        db = sqlite3.connect(os.path.join(state, "forkwatch.db"))
        rows, threads = db.execute("SELECT count(*), coalesce(sum(threads), 0) FROM lifetimes WHERE worker_id = ?",
                                   (wid,)).fetchone()
        has_threads = db.execute("SELECT count(*) FROM sqlite_schema WHERE name = 'thread_lifetimes'").fetchone()[0]
        thread_rows = thread_named = None
        if has_threads:
            thread_rows, thread_named = db.execute(
                "SELECT count(*), coalesce(sum(t.exited_ns IS NOT NULL AND t.name != ''), 0) FROM thread_lifetimes t "
                "JOIN lifetimes l ON l.id = t.lifetime_id WHERE l.worker_id = ?", (wid,)).fetchone()
        span = db.execute("SELECT (max(exited_ns) - min(forked_ns)) / 1e9 FROM lifetimes WHERE worker_id = ?",
                          (wid,)).fetchone()[0] or ran
        db.close()
        made = 0
        if os.path.exists(yaml):
            m = re.search(r"bogo-ops:\s*(\d+)", open(yaml).read())
            made = int(m.group(1)) if m else 0
        ev0, ev1 = h0["process_events_stats"]["events"], h1["process_events_stats"]["events"]
        events = ev1 - ev0
        lost = h1["process_events_lost"] - h0["process_events_lost"]
        hz = os.sysconf("SC_CLK_TCK")
        cpu_ms = (t1 - t0) * 1000 / hz
        recorded = threads if stressor == "pthread" else rows
        print(json.dumps({
            "stressor": stressor, "seconds": round(ran, 1), "made_by_stress_ng": made,
            "lifetimes_stored": rows, "threads_counted": threads,
            "thread_lifetimes_stored": thread_rows, "thread_lifetimes_ended_with_name": thread_named, "events": events, "events_lost": lost,
            "gaps": h1["process_events_stats"]["gaps"], "rcvbuf_bytes": h1["process_events_stats"]["rcvbuf_bytes"],
            "lifetimes_per_s": round(rows / span, 0), "daemon_cpu_ms": round(cpu_ms, 1),
            "cpu_ms_per_1000_events": round(cpu_ms / max(1, events) * 1000, 2),
            "recorded_or_counted": recorded + lost >= made,
            "store_dropped": h1["store"]["dropped"],
            "cpu_ms_by_thread": {k: (v - th0.get(k, 0)) * 1000 // hz for k, v in th1.items() if v - th0.get(k, 0) > 0},
            "lifetimes_per_s_of_stress_ng": round(made / ran, 0)}))
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(20)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "build", "bin"))
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--stressor", choices=["fork", "pthread", "both"], default="both")
    ap.add_argument("--watch", action="store_true", help="request /api/tree first, as a watching dashboard does")
    ap.add_argument("--runs", type=int, default=1, help="repeat each stressor this many times")
    args = ap.parse_args()
    for _ in range(args.runs):
        for s in (["fork", "pthread"] if args.stressor == "both" else [args.stressor]):
            run_one(args, s)


if __name__ == "__main__":
    main()
