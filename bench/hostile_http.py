#!/usr/bin/env python3
"""Issue 19's figures: forkwatchd under hostile clients on loopback.

  python3 bench/hostile_http.py [--bin build/bin] [memory] [starve]

  memory  VmRSS of the daemon at the start (after 20 warm-up requests), then
          after 4 parallel connections each streaming 3,000,000 header lines
          (24 MB) and after one 512 MiB chunked body, with the peak sampled
          every 10 ms in between. Target: back within 2 MiB of the start.
  starve  p50/p99 of authenticated GET /api/workers (a new connection each,
          as curl does) alone (the floor), then during 300 slowloris
          connections (a byte every 3 s, from ten 127.0.0.x addresses, each
          reconnecting when the daemon drops it) plus 128 open event streams.
          Target: p99 <= 50 ms.

The fuzz figure (20,000 mutated requests) is bench/hostile_http.sh.
Everything runs under one temp dir on 127.0.0.1 and is stopped at the end.
"""

import argparse
import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fw_daemon  # noqa: E402

TOKEN = "bench-token-0123456789"


def vmrss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


class Daemon:
    def __init__(self, bin_dir, root):
        self.dir = tempfile.mkdtemp(prefix="fw-hostile-", dir=root)
        self.log = open(os.path.join(self.dir, "daemon.log"), "wb")
        self.proc, self.port, _ = fw_daemon.start(bin_dir, self.dir, "--workers-dir", bin_dir, "--max-sse-clients",
                                                  "200", stderr=self.log,
                                                  env=dict(os.environ, FORKWATCH_TOKEN=TOKEN))

    def get(self, path, auth=True, timeout=10):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        c.request("GET", path, headers={"Authorization": "Bearer " + TOKEN} if auth else {})
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, body

    def stop(self):
        self.proc.terminate()
        self.proc.wait(20)


def send_all_until_refused(port, head, filler, total, results, i):
    s = socket.create_connection(("127.0.0.1", port))
    sent = 0
    try:
        s.sendall(head)
        while sent < total:
            sent += s.send(filler)
    except OSError:
        pass
    s.settimeout(5)
    reply = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            reply += b
    except OSError:
        pass
    s.close()
    results[i] = (sent, reply.split(b"\r\n", 1)[0].decode("latin1"))


def memory(bin_dir, root):
    d = Daemon(bin_dir, root)
    try:
        for _ in range(20):
            d.get("/api/workers")
        start = vmrss_kib(d.proc.pid)
        peak = [start]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], vmrss_kib(d.proc.pid))
                time.sleep(0.01)  # the sampling rate of the VmRSS peak, not a wait

        sampler = threading.Thread(target=sample)
        sampler.start()
        # 4 x 3,000,000 header lines of 8 bytes ("X-a: b\r\n"), in parallel.
        line = b"X-a: b\r\n"
        filler = line * 8192
        results = [None] * 4
        t0 = time.monotonic()
        threads = [threading.Thread(target=send_all_until_refused,
                                    args=(d.port, b"GET /api/workers HTTP/1.1\r\nHost: 127.0.0.1\r\n", filler,
                                          3_000_000 * len(line), results, i)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        headers_s = time.monotonic() - t0
        after_headers = vmrss_kib(d.proc.pid)
        # One 512 MiB chunked body, authenticated.
        chunk = b"%x\r\n" % 65536 + b"a" * 65536 + b"\r\n"
        res = [None]
        t0 = time.monotonic()
        send_all_until_refused(d.port, ("POST /api/workers HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
                                        + TOKEN + "\r\nTransfer-Encoding: chunked\r\n\r\n").encode(),
                               chunk, 512 << 20, res, 0)
        body_s = time.monotonic() - t0
        stop.set()
        sampler.join()
        status, _ = d.get("/api/health", auth=False)
        after_body = vmrss_kib(d.proc.pid)
        print(f"memory: start VmRSS {start} KiB")
        for i, (sent, first) in enumerate(results):
            print(f"  header stream {i}: refused after {sent / 1e6:.2f} MB sent (of 24 MB): {first}")
        print(f"  after 4 x 3,000,000 header lines: {after_headers} KiB ({after_headers - start:+d} KiB), {headers_s:.2f} s")
        print(f"  512 MiB chunked body: refused after {res[0][0] / 1e6:.2f} MB sent: {res[0][1]}, {body_s:.2f} s")
        print(f"  after the body: {after_body} KiB ({after_body - start:+d} KiB); peak {peak[0]} KiB "
              f"({peak[0] - start:+d}); health {status}")
    finally:
        d.stop()


FAILED = [0]


def timed_gets(d, n, timeout=10):
    """p50, p99, max in ms of n GETs; a failed or timed-out one counts as `timeout` s."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        try:
            status, _ = d.get("/api/workers", timeout=timeout)
            ok = status == 200
        except OSError:
            ok = False
        times.append((time.perf_counter() - t0) * 1000 if ok else timeout * 1000)
        FAILED[0] += not ok
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.99) - 1], times[-1]


def starve(bin_dir, root, duration):
    d = Daemon(bin_dir, root)
    stop = threading.Event()
    try:
        for _ in range(20):
            d.get("/api/workers")
        floor = timed_gets(d, 500)
        # 128 event streams, authenticated and read by nobody but the kernel.
        streams = []
        for _ in range(128):
            s = socket.create_connection(("127.0.0.1", d.port))
            s.sendall(("GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + TOKEN +
                       "\r\n\r\n").encode())
            streams.append(s)
        drops = [0]

        def slowloris(k):
            src = f"127.0.0.{10 + k % 10}"
            s = None
            while not stop.is_set():
                try:
                    if s is None:
                        s = socket.create_connection(("127.0.0.1", d.port), timeout=5, source_address=(src, 0))
                        s.sendall(b"GET /api/workers HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                    s.sendall(b"X")
                except OSError:
                    drops[0] += 1
                    s = None
                    continue
                stop.wait(3)
            if s:
                s.close()

        loris = [threading.Thread(target=slowloris, args=(k,)) for k in range(300)]
        for t in loris:
            t.start()
        time.sleep(1)
        t_end = time.monotonic() + duration
        samples = []
        while time.monotonic() < t_end:
            samples.append(timed_gets(d, 50 if FAILED[0] == 0 else 2))
        all_p50 = sorted(s[0] for s in samples)[len(samples) // 2]
        worst_p99 = max(s[1] for s in samples)
        under = timed_gets(d, 500 if FAILED[0] == 0 else 5)
        print(f"starve: floor (no load) GET /api/workers p50 {floor[0]:.2f} ms, p99 {floor[1]:.2f} ms, max {floor[2]:.2f} ms")
        print(f"  with 300 slowloris + 128 event streams: p50 {under[0]:.2f} ms, p99 {under[1]:.2f} ms, max {under[2]:.2f} ms "
              f"(500 requests at the end of {duration} s; over the run: p50 {all_p50:.2f}, worst p99 of 50 {worst_p99:.2f} ms); "
              f"slowloris connections dropped by the daemon and reopened: {drops[0]}; requests failed or timed out: {FAILED[0]}")
        for s in streams:
            s.close()
    finally:
        stop.set()
        d.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "build", "bin"))
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("what", nargs="*", default=["memory", "starve"])
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="fw-bench-")
    try:
        print(f"{time.strftime('%Y-%m-%d %H:%M')} {os.uname().nodename} {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
        if "memory" in a.what:
            memory(os.path.abspath(a.bin), root)
        if "starve" in a.what:
            starve(os.path.abspath(a.bin), root, a.duration)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
