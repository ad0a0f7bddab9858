#!/usr/bin/env python3
"""The output ring's memory (issue 20): forkwatchd's VmRSS while N workers
print 16 KiB lines for S seconds, and the size of a logs?tail=2000 reply.

  python3 bench/output_rss.py [--bin build/bin] [--workers 20] [--seconds 30] [--rate 100]

Each worker is `sh -c` echoing one 16,383-byte line `rate` times a second
(about 1.6 MB/s each). The daemon runs on 127.0.0.1:0 with a temporary state
dir and --allow-commands; the script stops it at the end (bounded, loopback).
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fw_daemon  # noqa: E402
from supervisor_peers import proc_rss_kib as vm_rss_kib  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/bin")
    ap.add_argument("--workers", type=int, default=20)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--rate", type=int, default=100)
    a = ap.parse_args()
    state = tempfile.mkdtemp(prefix="fw-rss-")
    d, port, token = fw_daemon.start(a.bin, state, "--allow-commands", "--sample-ms", "1000")
    try:
        url = f"http://127.0.0.1:{port}"

        def call(method, path, body=None):
            req = urllib.request.Request(url + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                         headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.read()

        rss_idle = vm_rss_kib(d.pid)
        pause = 1.0 / a.rate
        script = (f"l=$(head -c 16383 /dev/zero | tr '\\0' x); while :; do echo \"$l\"; sleep {pause:.4f}; done")
        ids = [json.loads(call("POST", "/api/workers", {"command": ["/bin/sh", "-c", script], "restart": "no"}))["id"]
               for _ in range(a.workers)]
        peak = 0
        end = time.time() + a.seconds
        while time.time() < end:
            peak = max(peak, vm_rss_kib(d.pid))
            time.sleep(0.5)
        rings = [json.loads(call("GET", f"/api/workers/{i}"))["output"] for i in ids]
        t0 = time.time()
        reply = call("GET", f"/api/workers/{ids[0]}/logs?tail=2000")
        reply_ms = (time.time() - t0) * 1000
        final = vm_rss_kib(d.pid)
        lines = sum(r["lines"] for r in rings)
        print(f"{a.workers} workers x 16 KiB lines at {a.rate}/s for {a.seconds} s: {lines} lines, "
              f"{sum(r['bytes'] for r in rings) / 2**20:.0f} MiB printed")
        print(f"VmRSS idle {rss_idle / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB, at the end {final / 1024:.1f} MiB")
        print(f"ring per worker: max {max(r['ring_bytes'] for r in rings) / 2**20:.3f} MiB, "
              f"sum {sum(r['ring_bytes'] for r in rings) / 2**20:.1f} MiB; rotated away "
              f"{sum(r['rotated_bytes'] for r in rings) / 2**20:.0f} MiB (counted)")
        print(f"logs?tail=2000: {len(reply) / 1024:.0f} KiB in {reply_ms:.1f} ms, "
              f"{len(json.loads(reply)['lines'])} lines, truncated={json.loads(reply)['truncated']}")
    finally:
        d.send_signal(signal.SIGTERM)
        try:
            d.wait(timeout=30)
        except subprocess.TimeoutExpired:
            d.kill()
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
