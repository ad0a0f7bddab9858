#!/usr/bin/env python3
"""Issue 13's figures: a cgroup per worker against process groups, in the same run.

  sudo python3 bench/cgroup_bench.py [--bin build/bin] [--rounds 3]

For each round, each containment (--containment cgroup, then process-group):
  spawn    200 workers started by one SIGHUP; rate from the first to the last
           `spawn` event (each stamped once execve has succeeded)
  restart  100 workers that exit at once, restart_delay_ms 0, one restart each
           (later ones are paced, issue 20): reaped (wait_status ts_ns) -> the
           next spawn event (exec'd), p50 and p90
  single   the same, but the 100 exit one at a time, 20 ms apart (each sleeps
           20 ms times its worker id modulo 100 first): a lone crash's restart
  stop     200 workers whose trees ignore SIGTERM (the main shell and a setsid
           grandchild), stop_timeout_ms 0, all removed by one SIGHUP: from the
           SIGHUP until every one of their 400 processes is dead
  rss      the daemon's VmRSS with 100 workers running
  floor    the stop figure's floor, no daemon: the same 200 trees in 200
           cgroups the bench makes, all ended by cgroup.kill, same polling
Everything is on loopback and in one temp dir; daemons are stopped and the
dir removed at the end. Bounded: every wait has a deadline.
"""

import argparse
import json
import os
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fw_daemon import start  # noqa: E402
from supervisor_peers import proc_rss_kib  # noqa: E402


def wait_for(pred, timeout_s, what):
    deadline = time.time() + timeout_s
    while not pred():
        if time.time() > deadline:
            raise RuntimeError("timed out waiting for " + what)
        time.sleep(0.005)  # polls a condition under the deadline above


def db_rows(state, sql, args=()):
    con = sqlite3.connect(os.path.join(state, "forkwatch.db"), timeout=5)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def dead(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


class Run:
    def __init__(self, bin_dir, root, containment, config):
        self.state = tempfile.mkdtemp(dir=root, prefix=containment + "-")
        self.config = os.path.join(self.state, "programs.json")
        self.write(config)
        self.proc, self.port, _ = start(bin_dir, self.state, "--config", self.config, "--no-auth", "--containment",
                                        containment, "--no-socket")

    def write(self, programs):
        tmp = self.config + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"programs": programs}, f)
        os.replace(tmp, self.config)

    def count(self, kind):
        return db_rows(self.state, "SELECT count(*) FROM events WHERE kind = ?", (kind,))[0][0]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


def quiet(name, command, **extra):
    p = {"name": name, "command": command, "output": "discard", "restart": "no"}
    p.update(extra)
    return p


def spawn_rate(bin_dir, root, containment):
    r = Run(bin_dir, root, containment, [])
    try:
        r.write([quiet("s", ["/bin/sleep", "3600"], instances=200)])
        r.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: r.count("spawn") >= 200, 60, "200 spawns")
        lo, hi = db_rows(r.state, "SELECT min(ts_ns), max(ts_ns) FROM events WHERE kind = 'spawn'")[0]
        rss = proc_rss_kib(r.proc.pid)  # 200 running
        return 199 / ((hi - lo) / 1e9), rss
    finally:
        r.stop()


STAGGERED = "sleep $(( FORKWATCH_WORKER_ID % 100 * 2 ))e-2; exit 1"


def restart_latency(bin_dir, root, containment, staggered=False):
    # One restart each: from the second on, the crash-loop pacing (issue 20) adds its delay.
    command = ["/bin/sh", "-c", STAGGERED] if staggered else ["/bin/false"]
    r = Run(bin_dir, root, containment, [quiet("r", command, instances=100, restart="always", restart_delay_ms=0,
                                               max_restarts=1)])
    try:
        wait_for(lambda: r.count("spawn") >= 200, 60, "200 spawns")
        exits = db_rows(r.state, "SELECT worker_id, min(ts_ns) FROM wait_status WHERE adopted = 0 GROUP BY worker_id")
        spawns = db_rows(r.state, "SELECT worker_id, ts_ns FROM events WHERE kind = 'spawn' ORDER BY ts_ns")
        lat = []
        for wid, t in exits:
            nxt = [s for w, s in spawns if w == wid and s > t]
            if nxt:
                lat.append((nxt[0] - t) / 1e6)
        lat.sort()
        return statistics.median(lat), lat[int(len(lat) * 0.9)], len(lat)
    finally:
        r.stop()


TREE = "trap '' TERM; setsid sh -c \"trap '' TERM; exec sleep 3600\" & exec sleep 3600"


def stop_all(bin_dir, root, containment):
    r = Run(bin_dir, root, containment, [quiet("t", ["/bin/sh", "-c", TREE], instances=200, stop_timeout_ms=0)])
    try:
        wait_for(lambda: r.count("spawn") >= 200, 60, "200 spawns")
        # Every process of the 200 trees: the main (exec'd sleep) and its setsid child.
        pids = []

        def all_there():
            nonlocal pids
            pids = []
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    env = open(f"/proc/{pid}/environ", "rb").read()
                    cmd = open(f"/proc/{pid}/cmdline", "rb").read()
                except OSError:
                    continue
                if b"FORKWATCH_WORKER_ID=" in env and cmd.startswith(b"sleep\0"):
                    pids.append(int(pid))
            return len(pids) >= 400

        wait_for(all_there, 30, "400 processes")
        r.write([])
        t0 = time.monotonic()
        r.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: all(dead(p) for p in pids), 30, "every process dead")
        return (time.monotonic() - t0) * 1000, len(pids)
    finally:
        r.stop()


def cgroup2_here():
    """This process's cgroup in the cgroup2 hierarchy, as a directory."""
    mount = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            if right.split()[0] == "cgroup2":
                mount = left.split()[4]
                break
    with open("/proc/self/cgroup") as f:
        own = next(line.split("::", 1)[1].strip() for line in f if line.startswith("0::"))
    return mount + own


def stop_floor():
    """The machine's floor for the stop figure, no supervisor: the same 200
    trees, each in a cgroup the bench makes, ended by writing cgroup.kill to
    all 200 and timed to the last of the 400 processes dead, polled the same way."""
    import subprocess
    base = os.path.join(cgroup2_here(), f"fw-bench-floor-{os.getpid()}")
    os.mkdir(base)
    dirs = [os.path.join(base, f"w-{i}") for i in range(200)]
    children = []
    try:
        for d in dirs:
            os.mkdir(d)
            procs = os.path.join(d, "cgroup.procs")

            def join(path=procs):
                with open(path, "w") as f:
                    f.write("0")
            children.append(subprocess.Popen(["/bin/sh", "-c", TREE], preexec_fn=join, start_new_session=True))
        pids = []

        def all_there():
            nonlocal pids
            pids = []
            for d in dirs:
                with open(os.path.join(d, "cgroup.procs")) as f:
                    pids += [int(x) for x in f.read().split()]
            return len(pids) >= 400 and all(open(f"/proc/{p}/cmdline", "rb").read().startswith(b"sleep\0")
                                            for p in pids)

        wait_for(all_there, 30, "400 processes")
        t0 = time.monotonic()
        for d in dirs:
            with open(os.path.join(d, "cgroup.kill"), "w") as f:
                f.write("1")
        wait_for(lambda: all(dead(p) for p in pids), 30, "every process dead")
        return (time.monotonic() - t0) * 1000
    finally:
        for c in children:
            c.kill()
            c.wait()
        for d in dirs:
            if os.path.isdir(d):
                wait_for(lambda: open(os.path.join(d, "cgroup.procs")).read() == "", 10, "an empty cgroup")
                os.rmdir(d)
        os.rmdir(base)


def rss_100(bin_dir, root, containment):
    r = Run(bin_dir, root, containment, [quiet("m", ["/bin/sleep", "3600"], instances=100)])
    try:
        wait_for(lambda: r.count("spawn") >= 100, 60, "100 spawns")
        time.sleep(2.5)  # two samples of the tree, as a watched daemon would have taken
        return proc_rss_kib(r.proc.pid) / 1024
    finally:
        r.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/bin")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="fw-bench-cg-")
    out = {c: {"spawn": [], "restart": [], "single": [], "stop": [], "rss": []} for c in ("cgroup", "process-group")}
    floors = []
    try:
        for rnd in range(args.rounds):
            floors.append(stop_floor())
            print(f"round {rnd} floor         stop 400 procs {floors[-1]:6.1f} ms (200 cgroup.kill writes, no supervisor)",
                  flush=True)
            for c in ("cgroup", "process-group"):
                rate, _ = spawn_rate(args.bin, root, c)
                p50, p90, n = restart_latency(args.bin, root, c)
                s50, s90, sn = restart_latency(args.bin, root, c, staggered=True)
                ms, procs = stop_all(args.bin, root, c)
                rss = rss_100(args.bin, root, c)
                out[c]["spawn"].append(rate)
                out[c]["restart"].append(p50)
                out[c]["single"].append(s50)
                out[c]["stop"].append(ms)
                out[c]["rss"].append(rss)
                print(f"round {rnd} {c:13s} spawn {rate:7.0f}/s  restart p50 {p50:.3f} ms p90 {p90:.3f} ms (n={n})"
                      f"  one at a time p50 {s50:.3f} ms p90 {s90:.3f} ms (n={sn})"
                      f"  stop {procs} procs {ms:6.1f} ms  VmRSS(100) {rss:.1f} MiB  load {os.getloadavg()[0]:.2f}",
                      flush=True)
        med = {c: {k: statistics.median(v) for k, v in d.items()} for c, d in out.items()}
        print("medians:", json.dumps(med, indent=1))
        print(f"spawn ratio cgroup/process-group: {med['cgroup']['spawn'] / med['process-group']['spawn']:.1%}")
        print(f"restart p50 difference: {med['cgroup']['restart'] - med['process-group']['restart']:+.3f} ms")
        print(f"one-at-a-time restart p50 difference: {med['cgroup']['single'] - med['process-group']['single']:+.3f} ms")
        print(f"stop floor (no supervisor), median: {statistics.median(floors):.1f} ms")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
