#!/usr/bin/env python3
"""Issue 18's API figures, bounded, on loopback.

  python3 bench/fds_api_bench.py [--bin build/bin] [--sockets 1000] [--requests 50]

1. GET /api/processes/{pid}/fds for a worker holding N sockets (a listener,
   N/2-1 clients connected to it and the N/2 accepted ends): server time as
   the mean of forkwatch_api_request_duration_seconds over these requests
   (/metrics, read before and after), and client time p50/p95.
2. Unwatched daemon: the same daemon with nobody watching for 30 s after the
   watch window: its CPU time from /proc/PID/stat (should be about nothing).
"""

import argparse
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HOLDER = r'''
import socket, signal, sys
n = int(sys.argv[1])
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(n)
keep = [l]
for i in range(n // 2 - 1):
    c = socket.create_connection(l.getsockname()); a, _ = l.accept(); keep += [c, a]
print("holding", len(keep), flush=True)
signal.pause()
'''


def get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


def histogram(port):
    _, body = get(port, "/metrics")
    text = body.decode()
    s = float(re.search(r"^forkwatch_api_request_duration_seconds_sum (\S+)", text, re.M).group(1))
    n = float(re.search(r"^forkwatch_api_request_duration_seconds_count (\S+)", text, re.M).group(1))
    return s, n


def cpu_ticks(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/bin")
    ap.add_argument("--sockets", type=int, default=1000)
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--idle-s", type=int, default=30)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="fw-fds-bench-")
    cfg = {"programs": [{"name": "holder", "command": [sys.executable, "-c", HOLDER, str(a.sockets)], "restart": "no"}]}
    open(f"{tmp}/config.json", "w").write(json.dumps(cfg))
    d = subprocess.Popen([f"{a.bin}/forkwatchd", "--listen", "127.0.0.1:0", "--port-file", f"{tmp}/port",
                          "--state-dir", tmp, "--no-auth", "--config", f"{tmp}/config.json"],
                         stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 20
        while not (os.path.exists(f"{tmp}/port") and open(f"{tmp}/port").read().strip()):
            if time.time() > deadline:
                sys.exit("forkwatchd did not start")
            time.sleep(0.05)
        port = int(open(f"{tmp}/port").read())
        pid = None
        while time.time() < deadline:
            w = json.loads(get(port, "/api/workers")[1])["workers"]
            if w and w[0]["state"] == "running":
                logs = json.loads(get(port, f"/api/workers/{w[0]['id']}/logs")[1])["lines"]
                if any("holding" in l["text"] for l in logs):
                    pid = w[0]["pid"]
                    break
            time.sleep(0.05)
        if pid is None:
            sys.exit("the holder did not start")
        get(port, f"/api/processes/{pid}/fds")  # warm: the first sample
        s0, n0 = histogram(port)
        client = []
        count = 0
        for _ in range(a.requests):
            t0 = time.perf_counter()
            st, body = get(port, f"/api/processes/{pid}/fds")
            client.append((time.perf_counter() - t0) * 1000)
            assert st == 200, body
            count = len(json.loads(body)["fds"])
        s1, n1 = histogram(port)
        # The /metrics read between is counted once in n1 - n0 (the "after" one is counted after).
        server_ms = (s1 - s0) / max(1, n1 - n0) * 1000
        client.sort()
        print(f"GET /api/processes/{{pid}}/fds, {count} descriptors ({a.sockets} sockets): "
              f"server mean {server_ms:.2f} ms, client p50 {client[len(client)//2]:.2f} ms "
              f"p95 {client[int(len(client)*0.95)]:.2f} ms ({a.requests} requests)")
        # Unwatched: the watch window (60 s) must pass first.
        print(f"waiting out the 60 s watch window, then {a.idle_s} s unwatched ...", flush=True)
        time.sleep(62)
        c0 = cpu_ticks(d.pid)
        time.sleep(a.idle_s)
        c1 = cpu_ticks(d.pid)
        hz = os.sysconf("SC_CLK_TCK")
        print(f"unwatched daemon with the {count}-descriptor worker: {(c1 - c0) * 1000 / hz:.0f} ms CPU in {a.idle_s} s")
    finally:
        d.terminate()
        d.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
