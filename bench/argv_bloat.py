#!/usr/bin/env python3
"""Issue 19, bounded argv and env: what 40 workers started with the largest
arguments the API accepts cost the daemon.

  python3 bench/argv_bloat.py [--bin build/bin] [--workers 40] [--floor]

Starts forkwatchd on 127.0.0.1:0 under a temp dir, then 40 times
POST /api/workers {"program":"exit-with","args":[...]} with as many bytes of
arguments as the daemon accepts (it probes: 256 x 4096 bytes first, the cap
of older builds, then halves until a start is accepted). Prints the daemon's
VmRSS before and after, the size of one GET /api/workers reply and how long
it took, then stops the daemon and removes the dir. --floor starts the
same workers with no arguments: what 40 workers cost without them. Loopback only; it ends
by itself.
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fw_daemon  # noqa: E402
from supervisor_peers import proc_rss_kib as vmrss_kib  # noqa: E402


def request(port, token, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    data = json.dumps(body).encode() if body is not None else None
    c.request(method, path, body=data, headers={"Authorization": "Bearer " + token})
    r = c.getresponse()
    payload = r.read()
    c.close()
    return r.status, payload


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/bin")
    ap.add_argument("--workers", type=int, default=40)
    ap.add_argument("--floor", action="store_true")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="fw-argv-")
    d, port, token = fw_daemon.start(a.bin, tmp, "--workers-dir", a.bin)
    try:
        before = vmrss_kib(d.pid)
        count, size = (1, 0) if a.floor else (255, 4096)  # exit-with itself is argv[0]
        while True:
            args = ["--sleep"] + ["a" * size] * (count - 1)
            st, body = request(port, token, "POST", "/api/workers", {"program": "exit-with", "args": args,
                                                                    "restart": "no"})
            if st == 201:
                break
            if a.floor:
                raise SystemExit("a start with no arguments was refused: " + body.decode())
            if size > 64:
                size //= 2
            else:
                count //= 2
            if count < 2:
                raise SystemExit("no argument list accepted: " + body.decode())
        arg_bytes = sum(len(x) for x in args)
        refused = 0
        for _ in range(a.workers - 1):
            st, _ = request(port, token, "POST", "/api/workers", {"program": "exit-with", "args": args,
                                                                 "restart": "no"})
            refused += st != 201
        t0 = time.perf_counter()
        st, listing = request(port, token, "GET", "/api/workers")
        list_ms = (time.perf_counter() - t0) * 1000
        after = vmrss_kib(d.pid)
        print(f"workers {a.workers} (refused {refused}), args per worker {len(args)} x {size} B = "
              f"{arg_bytes / 1024:.1f} KiB")
        print(f"VmRSS before {before / 1024:.1f} MiB, after {after / 1024:.1f} MiB "
              f"(+{(after - before) / 1024:.1f} MiB)")
        print(f"GET /api/workers: {len(listing) / 1e6:.2f} MB in {list_ms:.1f} ms (status {st})")
    finally:
        d.send_signal(signal.SIGTERM)
        try:
            d.wait(timeout=30)
        except subprocess.TimeoutExpired:
            d.kill()
            d.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
