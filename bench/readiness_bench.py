#!/usr/bin/env python3
"""Issue 14's readiness figures, from the daemon's own stored events.

  python3 bench/readiness_bench.py [--bin build/bin] [--rounds 1000] [--chains 3]

1. READY=1 received -> dependent exec'd: one notify program `db`
   (notify-ready) and a dependent `app` (exit-with --sleep, part_of db).
   Each round restarts db through the API; part_of stops app with it, app
   waits, and starts once db's READY=1 is read. The figure is app's spawn
   event (exec confirmed) minus db's `running` state event (the loop round
   that read READY=1), over --rounds rounds: p50, p99, max.
2. 100 programs in a 10-deep chain of `ready` dependencies (10 chains, each
   level depends on the one before), each ready at once, against the same 100
   without dependencies, in the same run, alternating, --chains times each:
   first spawn -> last worker `running`, from the events.

3. 200 workers (exit-with --sleep) with http health checks at 1 Hz against
   one threaded python http server the bench runs: the daemon's CPU over
   --health-seconds, as % of one core (/proc/PID/stat utime+stime), split
   into user and kernel time; then the floor: a minimal client making the
   same 200 checks a second for as long, its own user and kernel time.
4. A worker flooding its notify socket (notify-ready --flood 100000) beside
   a worker restarted through the API --flood-rounds times: its exit ->
   respawn latency (stored events) with and without the flood, and the
   datagrams the daemon read (/metrics).

Loopback only; one temp dir, removed at the end; every wait has a deadline.
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import sqlite3
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fw_daemon  # noqa: E402


def request(port, token, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, path, body=body, headers={"Authorization": f"Bearer {token}"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def workers(port, token):
    return {w["name"]: w for w in json.loads(request(port, token, "GET", "/api/workers")[1])["workers"]}


def wait(pred, timeout_s, what):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.001)  # polls under the deadline above
    raise RuntimeError(f"timed out waiting for {what}")


def run_daemon(bin_dir, config, fn):
    tmp = tempfile.mkdtemp(prefix="fw-ready-bench-")
    try:
        path = os.path.join(tmp, "c.json")
        with open(path, "w") as f:
            json.dump(config, f)
        proc, port, token = fw_daemon.start(bin_dir, os.path.join(tmp, "s"), "--config", path,
                                            "--workers-dir", bin_dir, "--max-workers", "1000")
        try:
            return fn(port, token, os.path.join(tmp, "s", "forkwatch.db"))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except Exception:
                proc.kill()
                proc.wait()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def events(db, sql, args=()):
    # The store writes in batches: read once it has caught up.
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def ready_to_exec(bin_dir, rounds):
    config = {"programs": [
        {"name": "db", "command": ["notify-ready"], "ready": {"notify": True}, "stop_timeout_ms": 2000},
        {"name": "app", "command": ["exit-with", "--sleep"],
         "depends_on": [{"program": "db", "condition": "ready", "part_of": True}]}]}

    def body(port, token, db):
        wait(lambda: workers(port, token)["app"]["state"] == "running", 10, "app running")
        ids = workers(port, token)
        db_id, app_id = ids["db"]["id"], ids["app"]["id"]
        for i in range(rounds):
            before = workers(port, token)["app"]["started_at_ns"]
            st, _ = request(port, token, "POST", f"/api/workers/{db_id}/restart")
            assert st == 200, st
            wait(lambda: (lambda a: a["state"] == "running" and a["started_at_ns"] != before)(
                workers(port, token)["app"]), 10, f"app running again (round {i})")
        # Pair each `running` of db with app's next spawn.
        def count():
            return events(db, "SELECT COUNT(*) FROM events WHERE worker_id = ? AND kind = 'spawn'", (app_id,))[0][0]
        wait(lambda: count() >= rounds + 1, 20, "the store to catch up")
        ready = [r[0] for r in events(db, "SELECT ts_ns FROM events WHERE worker_id = ? AND kind = 'state' "
                                          "AND state = 'running' ORDER BY id", (db_id,))]
        spawns = [r[0] for r in events(db, "SELECT ts_ns FROM events WHERE worker_id = ? AND kind = 'spawn' "
                                           "ORDER BY id", (app_id,))]
        waits = [r[0] for r in events(db, "SELECT ts_ns FROM events WHERE worker_id = ? AND kind = 'state' "
                                          "AND state = 'waiting' ORDER BY id", (app_id,))]
        lat, lat_waiting = [], []
        prev = 0
        for t in ready:
            nxt = [s for s in spawns if s >= t]
            if not nxt:
                continue
            lat.append((nxt[0] - t) / 1e6)
            # Was app already waiting when READY=1 came (its stop finished), or
            # did its own stop still hold it up?
            if any(prev <= w <= t for w in waits):
                lat_waiting.append((nxt[0] - t) / 1e6)
            prev = t
        return lat, lat_waiting

    return run_daemon(bin_dir, config, body)


def chain_config(deps):
    programs = []
    for level in range(10):
        for chain in range(10):
            p = {"name": f"p{level}-{chain}", "command": ["notify-ready"], "ready": {"notify": True}}
            if deps and level > 0:
                p["depends_on"] = [f"p{level - 1}-{chain}"]
            programs.append(p)
    return {"programs": programs}


def all_ready_ms(bin_dir, deps):
    def body(port, token, db):
        wait(lambda: all(w["state"] == "running" and w["ready"] for w in workers(port, token).values()), 30,
             "all 100 ready")
        def rows():
            return events(db, "SELECT MIN(CASE WHEN kind = 'spawn' THEN ts_ns END), "
                              "MAX(CASE WHEN kind = 'state' AND state = 'running' THEN ts_ns END), "
                              "SUM(kind = 'state' AND state = 'running') FROM events")[0]
        wait(lambda: (rows()[2] or 0) >= 100, 20, "the store to catch up")
        first, last, _ = rows()
        return (last - first) / 1e6
    return run_daemon(bin_dir, chain_config(deps), body)


def cpu_split(pid):
    """(utime, stime) of a process, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def cpu_ticks(pid):
    return sum(cpu_split(pid))


# The floor beside the daemon's figure: a minimal client making the same
# checks (connect, the same GET, read the status line, close with RST), 200
# a second spread evenly, with blocking calls. Its kernel time is what the
# checks cost the kernel in whoever makes them (on loopback the handshake and
# the server's half of it run in the connecting process's context too).
HEALTH_FLOOR = ("import os, socket, struct, sys, time\n"
                "port, n, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])\n"
                "req = ('GET / HTTP/1.0\\r\\nHost: 127.0.0.1:%d\\r\\nUser-Agent: forkwatch-probe\\r\\n'\n"
                "       'Connection: close\\r\\n\\r\\n' % port).encode()\n"
                "t0 = time.monotonic(); c0 = os.times()\n"
                "i = 0\n"
                "while time.monotonic() - t0 < seconds:\n"
                "    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))\n"
                "    s.connect(('127.0.0.1', port)); s.sendall(req); s.recv(512); s.close()\n"
                "    i += 1\n"
                "    pause = t0 + i / n - time.monotonic()\n"
                "    if pause > 0: time.sleep(pause)\n"
                "c1 = os.times(); wall = time.monotonic() - t0\n"
                "print(i, (c1.user - c0.user) / wall * 100, (c1.system - c0.system) / wall * 100)\n")


def health_cpu(bin_dir, seconds):
    import socket
    import subprocess
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    # The checks' target: a threaded server with a listen backlog for 200
    # (http.server's is 5: a burst of connects overflows it, SYNs are
    # retransmitted after 1 s and checks time out for the server's sake).
    target = ("import http.server, sys\n"
              "class H(http.server.BaseHTTPRequestHandler):\n"
              "    def do_GET(self):\n"
              "        self.send_response(200); self.send_header('Content-Length', '2'); self.end_headers()\n"
              "        self.wfile.write(b'ok')\n"
              "    def log_message(self, *a): pass\n"
              "class S(http.server.ThreadingHTTPServer):\n"
              "    request_queue_size = 256\n"
              "S(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n")
    server = subprocess.Popen(["/usr/bin/python3", "-c", target, str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        config = {"programs": [{"name": "h", "command": ["exit-with", "--sleep"], "instances": 200,
                                "health": {"http": f"http://127.0.0.1:{port}/", "interval_ms": 1000,
                                           "timeout_ms": 500, "failures": 3}}]}
        result = {}

        def body_cpu(port_, token, db):
            wait(lambda: all(w.get("health") == "healthy" for w in workers(port_, token).values()), 30,
                 "200 healthy")
            # The daemon: the process whose command line names this state dir.
            state_dir = os.path.dirname(db)
            pid = None
            for p in os.listdir("/proc"):
                if p.isdigit():
                    try:
                        if state_dir in open(f"/proc/{p}/cmdline").read():
                            pid = int(p)
                    except OSError:
                        pass
            hz = os.sysconf("SC_CLK_TCK")
            t0, (u0, s0) = time.time(), cpu_split(pid)
            time.sleep(seconds)  # the measured interval itself
            t1, (u1, s1) = time.time(), cpu_split(pid)
            result["cpu"] = ((u1 - u0) + (s1 - s0)) / hz / (t1 - t0) * 100
            result["user"] = (u1 - u0) / hz / (t1 - t0) * 100
            result["kernel"] = (s1 - s0) / hz / (t1 - t0) * 100
            result["healthy"] = sum(w.get("health") == "healthy" for w in workers(port_, token).values())
        run_daemon(bin_dir, config, body_cpu)
        floor = subprocess.run(["/usr/bin/python3", "-c", HEALTH_FLOOR, str(port), "200", str(seconds)],
                               capture_output=True, text=True, timeout=seconds + 30, check=True).stdout.split()
        result["floor_checks"] = int(floor[0])
        result["floor_user"], result["floor_kernel"] = float(floor[1]), float(floor[2])
        return result
    finally:
        server.terminate()
        server.wait()


def restart_latency(bin_dir, flood, rounds):
    programs = [{"name": "victim", "command": ["exit-with", "--sleep"], "restart": "always"}]
    if flood:
        programs.append({"name": "flood", "command": ["notify-ready", "--flood", "100000"],
                         "ready": {"notify": True}})

    def body(port, token, db):
        wait(lambda: workers(port, token)["victim"]["state"] == "running", 10, "victim running")
        victim = workers(port, token)["victim"]["id"]
        t0 = time.time()
        for i in range(rounds):
            before = workers(port, token)["victim"]["started_at_ns"]
            st, _ = request(port, token, "POST", f"/api/workers/{victim}/restart")
            assert st == 200, st
            wait(lambda: (lambda v: v["state"] == "running" and v["started_at_ns"] != before)(
                workers(port, token)["victim"]), 10, f"victim running again (round {i})")
        elapsed = time.time() - t0
        body = request(port, token, "GET", "/metrics")[1].decode()
        read = [l for l in body.splitlines() if l.startswith("forkwatch_notify_datagrams_total ")]

        def rows():
            return events(db, "SELECT kind, ts_ns FROM events WHERE worker_id = ? AND kind IN ('exit', 'spawn') "
                              "ORDER BY id", (victim,))
        wait(lambda: sum(k == "spawn" for k, _ in rows()) >= rounds + 1, 20, "the store to catch up")
        r = rows()
        lat = [(t2 - t1) / 1e6 for (k1, t1), (k2, t2) in zip(r, r[1:]) if k1 == "exit" and k2 == "spawn"]
        return lat, (int(float(read[0].split()[1])) if read else 0), elapsed
    return run_daemon(bin_dir, {"programs": programs}, body)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/bin")
    ap.add_argument("--rounds", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=3)
    ap.add_argument("--health-seconds", type=int, default=20)
    ap.add_argument("--flood-rounds", type=int, default=300)
    ap.add_argument("--only", default="", help="ready,chain,health,flood (default: all)")
    a = ap.parse_args()
    bin_dir = os.path.abspath(a.bin)
    only = set(a.only.split(",")) if a.only else {"ready", "chain", "health", "flood"}
    if "health" in only:
        r = health_cpu(bin_dir, a.health_seconds)
        print(f"200 workers, http health checks at 1 Hz: daemon CPU {r['cpu']:.2f}% of one core over "
              f"{a.health_seconds} s (user {r['user']:.2f}, kernel {r['kernel']:.2f}); {r['healthy']} healthy at the end")
        print(f"  floor, a minimal blocking client making the same checks: {r['floor_checks']} checks, "
              f"user {r['floor_user']:.2f}%, kernel {r['floor_kernel']:.2f}% of one core")
    if "flood" in only:
        quiet, _, _ = restart_latency(bin_dir, False, a.flood_rounds)
        loud, read, secs = restart_latency(bin_dir, True, a.flood_rounds)
        print(f"restart exit -> respawn: without a flood p50 {pct(quiet, 50):.3f} ms p99 {pct(quiet, 99):.3f} ms "
              f"({len(quiet)} restarts); beside a notify flood p50 {pct(loud, 50):.3f} ms p99 {pct(loud, 99):.3f} ms "
              f"({len(loud)} restarts); the flood: {read} datagrams read in {secs:.1f} s ({read / secs:.0f}/s)")
    if "ready" not in only and "chain" not in only:
        return
    lat, lat_waiting = ready_to_exec(bin_dir, a.rounds)
    print(f"READY=1 read -> dependent exec'd, all {len(lat)} rounds: p50 {pct(lat, 50):.3f} ms, "
          f"p99 {pct(lat, 99):.3f} ms, max {max(lat):.3f} ms")
    if lat_waiting:
        print(f"  the {len(lat_waiting)} rounds where the dependent was already waiting: p50 {pct(lat_waiting, 50):.3f} ms, "
              f"p99 {pct(lat_waiting, 99):.3f} ms, max {max(lat_waiting):.3f} ms")
    with_deps, without = [], []
    for _ in range(a.chains):
        without.append(all_ready_ms(bin_dir, False))
        with_deps.append(all_ready_ms(bin_dir, True))
    print("100 notify programs, first spawn -> all ready (ms): without deps " +
          ", ".join(f"{x:.1f}" for x in without) + "; 10-deep chains " + ", ".join(f"{x:.1f}" for x in with_deps))
    print(f"median: without {pct(without, 50):.1f} ms, chained {pct(with_deps, 50):.1f} ms, "
          f"ratio {pct(with_deps, 50) / pct(without, 50):.2f}x")


if __name__ == "__main__":
    main()
