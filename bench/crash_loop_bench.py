#!/usr/bin/env python3
"""Issue 20's crash-loop figure: 8 workers crash-looping with
restart_delay_ms 0 and an API command a second, for --seconds (60).

  python3 bench/crash_loop_bench.py [--bin build/bin] [--daemon PATH] [--seconds 60]
                                    [--command restart|stop-missing] [--nofile N]

Reports the daemon's CPU (% of one core, from /proc/PID/stat utime+stime over
the run), the API command's latency (p50, p99, max; a 503 or no answer counts
as its time) beside its floor (GET /api/health the same way, which the loop
does not answer), the daemon's fd count at the start and the end, the exits
recorded, and how long SIGTERM took to end the daemon (SIGKILL after 10 s:
the bench always stops).

--command restart (default) restarts one crasher a second, in turn: the
restart clears its start limit, so the storm goes on all run long instead of
ending at the start limit within a second. stop-missing stops a worker id
that does not exist: a command through the loop that changes nothing.
--daemon runs another forkwatchd binary (e.g. an older build) the same way.
Loopback only; everything under one temp dir, removed at the end.
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

CONFIG = {"programs": [{"name": "c", "command": ["exit-with", "--code", "1"], "instances": 8,
                        "restart": "always", "restart_delay_ms": 0, "max_restarts": 1000000}]}


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (proc(5) fields 14, 15)


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def percentile(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))] if s else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "build", "bin"))
    ap.add_argument("--daemon", help="forkwatchd to run (default: BIN/forkwatchd)")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--command", choices=["restart", "stop-missing"], default="restart")
    ap.add_argument("--nofile", type=int, help="RLIMIT_NOFILE (soft and hard) for the daemon")
    args = ap.parse_args()
    bin_dir = os.path.abspath(args.bin)
    daemon = os.path.abspath(args.daemon or os.path.join(bin_dir, "forkwatchd"))
    root = tempfile.mkdtemp(prefix="fw-crash-loop-")
    proc = None
    try:
        config = os.path.join(root, "programs.json")
        with open(config, "w") as f:
            json.dump(CONFIG, f)
        state, port_file = os.path.join(root, "state"), os.path.join(root, "port")
        argv = [daemon, "--listen", "127.0.0.1:0", "--state-dir", state, "--config", config,
                "--port-file", port_file, "--workers-dir", bin_dir]
        if args.nofile:
            argv = ["prlimit", f"--nofile={args.nofile}:{args.nofile}", "--"] + argv
        log = open(os.path.join(root, "daemon.log"), "wb")
        proc = subprocess.Popen(argv, stderr=log, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not os.path.exists(port_file):
            if time.monotonic() > deadline or proc.poll() is not None:
                sys.exit("forkwatchd did not start; see " + log.name)
            time.sleep(0.01)  # polls for the port file under the deadline above
        port = int(open(port_file).read())
        token = open(os.path.join(state, "token")).read().strip()
        pid = proc.pid
        hz = os.sysconf("SC_CLK_TCK")
        fds_start = fd_count(pid)
        ticks0, t0 = cpu_ticks(pid), time.monotonic()
        latencies, floor, failures, fds_max = [], [], 0, fds_start
        n = 0
        while time.monotonic() - t0 < args.seconds:
            path = (f"/api/workers/{n % 8 + 1}/restart" if args.command == "restart"
                    else "/api/workers/999999/stop")
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
            s = time.monotonic()
            try:
                c.request("POST", path, body="{}", headers={"Authorization": f"Bearer {token}",
                                                            "Content-Type": "application/json"})
                status = c.getresponse().status
            except OSError:
                status = 0
            latencies.append((time.monotonic() - s) * 1000)
            c.close()
            if status not in (200, 404):
                failures += 1
            # The floor: the same new-connection request, answered without the loop.
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
            s = time.monotonic()
            try:
                c.request("GET", "/api/health")
                c.getresponse().read()
            except OSError:
                pass
            floor.append((time.monotonic() - s) * 1000)
            c.close()
            fds_max = max(fds_max, fd_count(pid))
            n += 1
            time.sleep(max(0, t0 + n - time.monotonic()))
        ticks1, t1 = cpu_ticks(pid), time.monotonic()
        fds_end = fd_count(pid)
        s = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=10)
            term_s = f"{time.monotonic() - s:.3f} s (exit {rc})"
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            term_s = "> 10 s (ignored; SIGKILLed)"
        exits = "?"
        try:
            db = sqlite3.connect(f"file:{state}/forkwatch.db?mode=ro", uri=True)
            exits = db.execute("SELECT count(*) FROM wait_status").fetchone()[0]
            db.close()
        except sqlite3.Error as e:
            exits = f"? ({e})"
        cpu = (ticks1 - ticks0) / hz / (t1 - t0) * 100
        print(f"daemon {daemon}, {args.seconds:.0f} s, command {args.command}, nofile {args.nofile or 'inherited'}")
        print(f"  daemon CPU: {cpu:.1f} % of one core")
        print(f"  commands: {len(latencies)}, failed {failures}; latency p50 {percentile(latencies, 50):.1f} ms, "
              f"p99 {percentile(latencies, 99):.1f} ms, max {max(latencies):.1f} ms")
        print(f"  floor (GET /api/health, no loop): p50 {percentile(floor, 50):.1f} ms, "
              f"p99 {percentile(floor, 99):.1f} ms")
        print(f"  fds: start {fds_start}, end {fds_end}, max {fds_max}")
        print(f"  exits recorded: {exits}")
        print(f"  SIGTERM -> exit: {term_s}")
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
