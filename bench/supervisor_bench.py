#!/usr/bin/env python3
"""Supervisor-core figures of issue 2, forkwatchd side by side with
supervisord and PM2 where they can do the same work.

  python3 bench/supervisor_bench.py [--bin build-bench/bin] [--peers forkwatchd,supervisord,pm2]
                                    [SCENARIO ...]
  scenarios: restart spawn idle kill storm   (default: all)

Every supervisor runs the same probe (bench-restart-probe), which appends its
own start and exit CLOCK_REALTIME to a file, so end-to-end figures mean the
same thing for all three. forkwatchd's own view (events and wait_status rows
in its SQLite file, /metrics) is reported beside it. Everything runs in one
temp dir on loopback and is stopped and removed at the end.
"""

import argparse
import atexit
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from supervisor_peers import (BenchRun, PEERS, Forkwatch, KernelExecTrace, ProbeFile, kill_leftovers, now_ns, percentile,  # noqa: E402
                              proc_cpu_s, proc_rss_kib, summary_ms, wait_for)

RESULTS = []  # (scenario, peer, figure, value) for the closing ratio table


def record(scenario, peer, figure, value):
    RESULTS.append((scenario, peer, figure, value))


def load():
    return "load %.2f %.2f %.2f" % os.getloadavg()


def raise_nofile():
    # 10,000 workers hold ~3 fds each (stdout, stderr, pidfd); as a unit
    # would with LimitNOFILE=, give the daemon room.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


class Bench(BenchRun):
    def __init__(self, args):
        super().__init__(args, "fw-bench-sup-")

    def peer(self, name):
        p = PEERS[name](self.root, self.args.bin)
        self.live.append(p)
        return p

    def probe_file(self, tag):
        return ProbeFile(os.path.join(self.root, f"{tag}-{now_ns()}.txt"))

    def sleepers(self, pf, n, name="sleep"):
        return [{"name": name, "argv": [self.probe, "--out", pf.path, "--sleep"], "instances": n,
                 "restart": "always"}]

    # ---- restart latency ----

    def floor(self, n):
        """What a minimal parent costs: posix_spawn + waitpid in a loop."""
        pf = self.probe_file("floor")
        kt = self.kernel_trace_start()
        for _ in range(n + 1):
            pid = os.posix_spawn(self.probe, [self.probe, "--out", pf.path, "--code", "1"], os.environ)
            os.waitpid(pid, 0)
        lines = pf.lines()
        e2e = [b[1] - a[2] for a, b in zip(lines, lines[1:])]
        print(f"  floor (python posix_spawn+waitpid loop): exit->next start {summary_ms(e2e)}")
        record("restart", "floor", "e2e p50 ms", percentile(e2e, 50) / 1e6)
        self.kernel_trace_report(kt, "floor")

    def kernel_trace_start(self):
        kt = KernelExecTrace()
        if not kt.available():
            print("    (no tracefs here: the kernel's exit -> exec'd figure is skipped)")
            return None
        kt.start()
        return kt

    def kernel_trace_report(self, kt, name):
        if kt is None:
            return
        gaps = kt.stop()
        print(f"    kernel (ftrace): probe exit -> replacement exec'd {summary_ms(gaps)}")
        if gaps:
            record("restart", name, "kernel exit->exec'd p50 ms", percentile(gaps, 50) / 1e6)
            record("restart", name, "kernel exit->exec'd p99 ms", percentile(gaps, 99) / 1e6)

    def spawn_floor(self, n):
        """What a minimal parent costs: posix_spawn n sleepers back to back, time until all run."""
        pf = self.probe_file("spawn-floor")
        t0 = now_ns()
        pids = [os.posix_spawn(self.probe, [self.probe, "--out", pf.path, "--sleep"], os.environ) for _ in range(n)]
        try:
            wait_for(lambda: pf.count() >= n, 120, 0.002, f"{n} floor probes started")
            span = (max(l[1] for l in pf.lines()) - t0) / 1e9
            print(f"  floor (python posix_spawn loop): {n} started in {span * 1000:.1f} ms -> {n / span:.0f}/s  "
                  f"[{load()}]")
            record(f"spawn{n}", "floor", "ms to all started", span * 1000)
        finally:
            self.kill_floor(pids)

    def kill_floor(self, pids):
        """What a minimal parent costs: SIGKILL its own children, waitpid each."""
        t0 = now_ns()
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        for pid in pids:
            os.waitpid(pid, 0)
        ms = (now_ns() - t0) / 1e6
        print(f"  floor (python kill + waitpid): {len(pids)} SIGKILLed and reaped in {ms:.1f} ms  [{load()}]")
        record(f"kill{len(pids)}", "floor", "all reaped ms", ms)

    def restart(self, name):
        n = self.args.restarts if name != "supervisord" else self.args.sd_restarts
        pf = self.probe_file("restart")
        p = self.peer(name)
        kt = self.kernel_trace_start()
        t0 = time.monotonic()
        p.start([{"name": "probe", "argv": [self.probe, "--out", pf.path, "--code", "1"], "restart": "always"}])
        try:
            wait_for(lambda: pf.count() >= n + 1, self.args.restart_timeout, 0.005, f"{n} restarts")
        except TimeoutError:
            pass
        elapsed = time.monotonic() - t0
        self.done(p)
        lines = sorted(pf.lines(), key=lambda l: l[1])[: n + 1]
        e2e = [b[1] - a[2] for a, b in zip(lines, lines[1:])]
        print(f"  {name}: {len(e2e)} restarts in {elapsed:.1f} s; exit->next probe start {summary_ms(e2e)}")
        self.kernel_trace_report(kt, name)
        if not e2e:
            return
        record("restart", name, "e2e p50 ms", percentile(e2e, 50) / 1e6)
        record("restart", name, "e2e p99 ms", percentile(e2e, 99) / 1e6)
        if isinstance(p, Forkwatch):
            self.restart_events(p, lines)

    def restart_events(self, p, lines):
        """forkwatchd's own view of the issue's figure, child exit to
        replacement exec'd, cut into stages by pid: probe exit -> reaped
        (kernel exit, SIGCHLD, wake-up), reaped -> restart decision, reaped ->
        the replacement's spawn event (stamped when the vfork returns: execve
        past its point of no return), spawn event -> that probe's main (the
        rest of execve, the probe's start-up). An exit event's ts_ns is its
        reap time."""
        db = p.db()
        rows = db.execute("SELECT kind, ts_ns, pid FROM events WHERE kind IN ('exit','spawn','restart') "
                          "ORDER BY id").fetchall()
        db.close()
        exit_ns = {pid: ex for pid, _, ex in lines}
        start_ns = {pid: st for pid, st, _ in lines}
        to_reap, to_restart, to_exec, exec_to_main, e2e_exec = [], [], [], [], []
        unmatched = 0
        reaped = None  # (probe exit ns or None, reap ns) of the last exit not yet followed by a spawn
        for kind, ts, pid in rows:
            if kind == "exit":
                if reaped is not None:
                    unmatched += 1
                reaped = (exit_ns.get(pid), ts)
                if reaped[0] is not None:
                    to_reap.append(ts - reaped[0])
            elif reaped is None:
                continue
            elif kind == "restart":
                to_restart.append(ts - reaped[1])
            else:  # spawn
                to_exec.append(ts - reaped[1])
                if reaped[0] is not None:
                    e2e_exec.append(ts - reaped[0])
                if pid in start_ns:
                    exec_to_main.append(start_ns[pid] - ts)
                reaped = None
        print(f"    stages: probe exit -> reaped {summary_ms(to_reap)}")
        print(f"            reaped -> restart event {summary_ms(to_restart)}")
        print(f"            reaped -> replacement exec'd (spawn event) {summary_ms(to_exec)}")
        print(f"            exec'd -> probe main {summary_ms(exec_to_main)}")
        print(f"    probe exit -> replacement exec'd {summary_ms(e2e_exec)}")
        spawns = sum(1 for r in rows if r[0] == "spawn")
        exits = sum(1 for r in rows if r[0] == "exit")
        print(f"    events: {exits} exit, {spawns} spawn; exits followed by another exit with no spawn "
              f"event between: {unmatched}; probe runs recorded: {len(lines)}")
        for figure, values in (("reap->spawn", to_exec), ("exit->exec'd", e2e_exec)):
            if values:
                record("restart", "forkwatchd", f"{figure} p50 ms", percentile(values, 50) / 1e6)
                record("restart", "forkwatchd", f"{figure} p99 ms", percentile(values, 99) / 1e6)

    # ---- spawn throughput ----

    def spawn(self, name, n):
        pf = self.probe_file("spawn")
        p = self.peer(name)
        p.start([], max_workers=max(n, 1000))
        progs = [{"name": f"s{i}", "argv": [self.probe, "--out", pf.path, "--sleep"],
                  "instances": min(1000, n - i * 1000), "restart": "always"} for i in range((n + 999) // 1000)]
        if name == "supervisord":  # one group of numprocs=n, the analogue of instances
            progs = self.sleepers(pf, n, "s")
        p.set_programs(progs)
        if name == "pm2":
            t0 = p.start_via_api()
            how = "pm2.start() over the Node API, connected beforehand"
        else:
            t0 = now_ns()
            p.reload()
            how = "SIGHUP reload" if name == "forkwatchd" else "XML-RPC reloadConfig + addProcessGroup"
        try:
            wait_for(lambda: pf.count() >= n, 300, 0.002, f"{n} probes started")
        except TimeoutError as e:
            print(f"  {name}: {e}")
        lines = pf.lines()
        starts = sorted(l[1] for l in lines)
        span = (starts[-1] - t0) / 1e9 if starts else float("nan")
        print(f"  {name}: {len(starts)}/{n} started ({how}); first {(starts[0] - t0) / 1e6:.1f} ms, "
              f"last {span * 1000:.1f} ms after the trigger -> {len(starts) / span:.0f}/s  [{load()}]")
        record(f"spawn{n}", name, "ms to all started", span * 1000)
        record(f"spawn{n}", name, "per s", len(starts) / span)
        if isinstance(p, Forkwatch):
            def spawn_events():
                db = p.db()
                r = db.execute("SELECT count(*), max(ts_ns) FROM events WHERE kind='spawn'").fetchone()
                db.close()
                return r if r[0] >= n else None
            try:
                c, last = wait_for(spawn_events, 60, 0.05, "spawn events")
                print(f"    forkwatchd events: {c} spawn events, last {(last - t0) / 1e6:.1f} ms after SIGHUP")
            except TimeoutError as e:
                print(f"    {e}")
            rss = proc_rss_kib(p.daemon_pid())
            print(f"    daemon VmRSS with {n} workers: {rss / 1024:.1f} MiB")
        self.done(p)

    # ---- RSS and idle CPU ----

    def idle(self, name):
        n, secs = 100, self.args.idle_s
        pf = self.probe_file("idle")
        p = self.peer(name)
        p.start(self.sleepers(pf, n))
        wait_for(lambda: pf.count() >= n, 120, 0.01, f"{n} sleepers")
        time.sleep(5)  # let start-up work (PM2's, supervisord's) settle
        pid = p.daemon_pid()
        rss0, cpu0 = proc_rss_kib(pid), proc_cpu_s(pid)
        time.sleep(secs)
        rss1, cpu1 = proc_rss_kib(pid), proc_cpu_s(pid)
        extra = ""
        if isinstance(p, Forkwatch):
            m = p.metrics()
            extra = (f"; loop wake-ups {m.get('forkwatch_loop_wakeups_total', 0):.0f}, "
                     f"samples {m.get('forkwatch_samples_total', 0):.0f}")
        print(f"  {name} (pid {pid}): VmRSS {rss0 / 1024:.1f} -> {rss1 / 1024:.1f} MiB, CPU over {secs} s idle "
              f"{cpu1 - cpu0:.2f} s{extra}  [{load()}]")
        record("idle100", name, "VmRSS MiB", rss1 / 1024)
        record("idle100", name, f"CPU s / {secs} s", cpu1 - cpu0)
        self.done(p)

    # ---- 200 SIGKILLed at once ----

    def kill(self, name):
        n = 200
        pf = self.probe_file("kill")
        p = self.peer(name)
        p.start(self.sleepers(pf, n))
        wait_for(lambda: pf.count() >= n, 120, 0.01, f"{n} sleepers")
        time.sleep(3)
        victims = [l[0] for l in pf.lines()[:n]]
        fds = {pid: os.pidfd_open(pid) for pid in victims}
        t0 = now_ns()
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        t_sent = now_ns()
        remaining = dict(fds)
        deadline = time.monotonic() + 60
        while remaining and time.monotonic() < deadline:
            for pid, fd in list(remaining.items()):
                try:
                    signal.pidfd_send_signal(fd, 0)  # succeeds on a zombie, fails once reaped
                except ProcessLookupError:
                    os.close(fd)
                    del remaining[pid]
            if remaining:
                time.sleep(0.0002)
        t_reaped = now_ns()
        for fd in remaining.values():
            os.close(fd)
        try:
            wait_for(lambda: pf.count() >= 2 * n, 60, 0.001, f"{n} replacements")
        except TimeoutError as e:
            print(f"  {name}: {e}")
        new = pf.lines()[n:]
        t_run = max(l[1] for l in new) if new else 0
        print(f"  {name}: SIGKILL to {n} took {(t_sent - t0) / 1e6:.2f} ms to send; all reaped "
              f"{(t_reaped - t0) / 1e6:.1f} ms (pidfd poll, {len(remaining)} left); all {len(new)} running again "
              f"{(t_run - t0) / 1e6:.1f} ms  [{load()}]")
        record("kill200", name, "all reaped ms", (t_reaped - t0) / 1e6)
        record("kill200", name, "all running ms", (t_run - t0) / 1e6)
        if isinstance(p, Forkwatch):
            db = p.db()

            def counted():
                c, last = db.execute("SELECT count(*), max(ts_ns) FROM wait_status WHERE ts_ns >= ?",
                                     (t0,)).fetchone()
                sc, slast = db.execute("SELECT count(*), max(ts_ns) FROM events WHERE kind='spawn' AND ts_ns >= ?",
                                       (t0,)).fetchone()
                return c, last, sc, slast

            def all_counted():
                c, _, sc, _ = counted()
                return c >= n and sc >= n

            # The rows trail the processes by a loop round and a commit.
            try:
                wait_for(all_counted, 10, 0.01, f"{n} rows")
            except TimeoutError as e:
                print(f"    {e}")
            c, last, sc, slast = counted()
            db.close()
            print(f"    forkwatchd rows: {c} reaped, last reap {(last - t0) / 1e6:.1f} ms; {sc} spawn events, "
                  f"last {((slast or t0) - t0) / 1e6:.1f} ms")
        self.done(p)

    # ---- exit storm (forkwatchd only) ----

    def storm(self):
        progs, per = self.args.storm_programs, 1000
        n = progs * per
        p = Forkwatch(self.root, self.args.bin)
        self.live.append(p)
        t_at_ms = int(time.time() * 1000) + self.args.storm_lead_s * 1000
        t_at = t_at_ms * 1_000_000
        # Quiet programs: with output captured each worker holds two of the
        # daemon's fds, and 10,000 would need more than a hard RLIMIT_NOFILE
        # of 20,000 allows.
        programs = [{"name": f"storm{i}", "argv": ["exit-with", "--at-ms", str(t_at_ms)], "instances": per,
                     "restart": "no", "output": "discard"} for i in range(progs)]
        t0 = now_ns()
        old = resource.getrlimit(resource.RLIMIT_NOFILE)
        raise_nofile()  # inherited by the daemon
        try:
            p.start(programs, max_workers=n)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, old)
        db = p.db()

        def spawned():
            c, last = db.execute("SELECT count(*), max(ts_ns) FROM events WHERE kind='spawn'").fetchone()
            return (c, last) if c >= n else None
        try:
            c, last_spawn = wait_for(spawned, self.args.storm_lead_s + 30, 0.1, f"{n} spawn events")
            print(f"  forkwatchd: {n} workers spawned in {(last_spawn - t0) / 1e6:.0f} ms from daemon start "
                  f"({n / ((last_spawn - t0) / 1e9):.0f}/s); exit instant is "
                  f"{(t_at - last_spawn) / 1e6:.0f} ms after the last spawn  [{load()}]")
        except TimeoutError as e:
            print(f"  forkwatchd: {e}")
        m0 = p.metrics()
        while now_ns() < t_at - 50_000_000:
            time.sleep(0.02)
        t_complete = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if db.execute("SELECT count(*) FROM wait_status").fetchone()[0] >= n:
                t_complete = now_ns()
                break
            time.sleep(0.002)
        cnt, first, last = db.execute("SELECT count(*), min(ts_ns), max(ts_ns) FROM wait_status").fetchone()
        db.close()
        m = p.metrics()
        zombies = 0
        dpid = p.daemon_pid()
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/stat") as f:
                        rest = f.read().rsplit(")", 1)[1].split()
                    if rest[0] == "Z" and int(rest[1]) == dpid:
                        zombies += 1
                except OSError:
                    pass
        print(f"  forkwatchd: {cnt}/{n} rows; reaps from {(first - t_at) / 1e6:.1f} to {(last - t_at) / 1e6:.1f} ms "
              f"after the exit instant; all {n} rows visible to a reader "
              f"{((t_complete or 0) - last) / 1e6:.1f} ms after the last reap "
              f"({((t_complete or 0) - t_at) / 1e6:.1f} ms after the exit instant); zombies left {zombies}  "
              f"[{load()}]")
        wake = m.get("forkwatch_sigchld_wakeups_total", 0) - m0.get("forkwatch_sigchld_wakeups_total", 0)
        batches = m.get("forkwatch_store_batches_total", 0) - m0.get("forkwatch_store_batches_total", 0)
        print(f"    /metrics: SIGCHLD wake-ups during the storm {wake:.0f} for {n} exits; store batches {batches:.0f}")
        buckets = [(k.split('le="')[1].rstrip('"}'), v) for k, v in m.items()
                   if k.startswith("forkwatch_reap_to_record_seconds_bucket")]
        print("    reap_to_record histogram (cumulative, s): " + ", ".join(f"<={le}: {v:.0f}" for le, v in buckets))
        record("storm", "forkwatchd", "rows", cnt)
        record("storm", "forkwatchd", "last row visible after last reap ms", ((t_complete or 0) - last) / 1e6)
        record("storm", "forkwatchd", "last row visible after exit instant ms", ((t_complete or 0) - t_at) / 1e6)
        self.done(p)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build-bench",
                                                  "bin"))
    ap.add_argument("--peers", default="forkwatchd,supervisord,pm2")
    ap.add_argument("--restarts", type=int, default=1000)
    ap.add_argument("--sd-restarts", type=int, default=60, help="supervisord restarts (each takes about 1 s)")
    ap.add_argument("--restart-timeout", type=float, default=120)
    ap.add_argument("--idle-s", type=int, default=60)
    ap.add_argument("--storm-programs", type=int, default=10)
    ap.add_argument("--storm-lead-s", type=int, default=40)
    ap.add_argument("--spawn-big", type=int, default=2000, help="a second, forkwatchd-only spawn run (0: skip)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("scenarios", nargs="*", default=["restart", "spawn", "idle", "kill", "storm"])
    args = ap.parse_args()
    args.bin = os.path.abspath(args.bin)
    peers = args.peers.split(",")
    b = Bench(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    print(f"supervisor bench: {os.cpu_count()} cores, {load()}, temp dir {b.root}")
    for sc in args.scenarios:
        print(f"== {sc}")
        if sc == "restart":
            b.floor(args.restarts)
            for name in peers:
                b.restart(name)
        elif sc == "spawn":
            b.spawn_floor(200)
            for name in peers:
                b.spawn(name, 200)
            if "forkwatchd" in peers and args.spawn_big:
                b.spawn("forkwatchd", args.spawn_big)
        elif sc == "idle":
            for name in peers:
                b.idle(name)
        elif sc == "kill":
            if "spawn" not in args.scenarios:
                b.spawn_floor(200)  # its kill_floor is this scenario's floor
            for name in peers:
                b.kill(name)
        elif sc == "storm":
            b.storm()
        else:
            sys.exit(f"unknown scenario {sc}")
    print("== ratios (peer / forkwatchd; > 1 means forkwatchd is better)")
    base = {(s, f): v for s, pe, f, v in RESULTS if pe == "forkwatchd"}
    for s, pe, f, v in RESULTS:
        if pe not in ("forkwatchd", "floor") and (s, f) in base and base[(s, f)]:
            r = v / base[(s, f)]
            if "per s" in f:
                r = 1 / r if r else float("inf")
            print(f"  {s:8} {f:22} {pe:12} {v:10.3f} vs {base[(s, f)]:10.3f} -> x{r:.1f}")


if __name__ == "__main__":
    main()
