#!/usr/bin/env python3
"""REST API figures of issue 3 and the daemon-side process-tree figures of
issue 4, forkwatchd against supervisord and PM2 where they can do the same.

  python3 bench/api_bench.py [--bin build-bench/bin] [SCENARIO ...]
  scenarios: wrk post sse status tree metrics  (default: all but metrics)

  wrk     GET /api/workers with 100 workers, wrk on loopback (-t2, 10 s, a few
          connection counts)
  post    N spawns through POST /api/workers (keep-alive clients in threads):
          201 replies per second, and probes actually running per second
  sse     100 SSE clients on /api/events during a 1,000-exit storm: every
          client must see every exit event
  status  full status of 200 workers, p50: forkwatchd GET /api/workers
          (in-process client and `forkwatch --json status`), supervisord
          getAllProcessInfo over XML-RPC and `supervisorctl status`, PM2
          pm2.list() over its Node API and `pm2 jlist`
  tree    one worker holding 1,000 processes x 10 threads (bench-tree-load),
          one SSE client watching, --sample-ms 1000: daemon CPU per second
          and GET /api/tree server time (from the request-duration histogram
          of /metrics) and client time

  metrics GET /metrics with 1,000 workers (issue 17): body size, samples,
          client time and server time (request-duration histogram), as
          Prometheus text and as OpenMetrics

Everything runs on 127.0.0.1 under one temp dir, is stopped at the end (pm2
kill for PM2) and the dir removed.
"""

import argparse
import atexit
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import xmlrpc.client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from supervisor_peers import (BenchRun, PM2_MODULE, Forkwatch, Pm2, ProbeFile, Supervisord, kill_leftovers,  # noqa: E402
                              now_ns, percentile, proc_cpu_s, wait_for)


def load():
    return "load %.2f %.2f %.2f" % os.getloadavg()


def ms(v):
    return f"{v:.3f}"


class Conn:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, port):
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def req(self, method, path, body=None):
        headers = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif method == "POST":
            headers["Content-Length"] = "0"
        self.c.request(method, path, body=data, headers=headers)
        r = self.c.getresponse()
        return r.status, r.read()

    def close(self):
        self.c.close()


def hist(m, name):
    """{le: cumulative count} of a Prometheus histogram (first label set)."""
    out = {}
    for k, v in m.items():
        if k.startswith(name + "_bucket"):
            le = re.search(r'le="([^"]+)"', k).group(1)
            out[le] = out.get(le, 0) + v
    return out


def hist_delta_quantiles(m0, m1, name, qs=(0.5, 0.99)):
    h0, h1 = hist(m0, name), hist(m1, name)
    les = sorted(h1, key=lambda s: float("inf") if s == "+Inf" else float(s))
    d = [(le, h1[le] - h0.get(le, 0)) for le in les]
    total = d[-1][1] if d else 0
    res = {}
    for q in qs:
        for le, c in d:
            if total and c >= q * total:
                res[q] = le
                break
    c = m1.get(name + "_count", 0) - m0.get(name + "_count", 0)
    s = m1.get(name + "_sum", 0) - m0.get(name + "_sum", 0)
    return res, c, s


class Bench(BenchRun):
    def __init__(self, args):
        super().__init__(args, "fw-bench-api-")
        self.rows = []

    def fw(self, programs, extra=(), max_workers=1000):
        p = Forkwatch(self.root, self.args.bin)
        self.live.append(p)
        p.start(programs, max_workers=max_workers, extra=extra)
        return p

    def sleepers(self, n, name="sleep", autostart=True):
        pf = ProbeFile(os.path.join(self.root, f"{name}-{now_ns()}.txt"))
        return pf, [{"name": name, "argv": [self.probe, "--out", pf.path, "--sleep"], "instances": n,
                     "restart": "always", "autostart": autostart}]

    def record(self, what, value):
        self.rows.append((what, value))
        print(f"    -> {what}: {value}")

    # ---- wrk ----

    def wrk(self):
        pf, progs = self.sleepers(100)
        p = self.fw(progs)
        wait_for(lambda: pf.count() >= 100, 60, 0.01, "100 sleepers")
        st, body = Conn(p.port).req("GET", "/api/workers")
        print(f"  GET /api/workers: {st}, {len(body)} bytes, {len(json.loads(body).get('workers', json.loads(body)))} "
              f"workers")
        for conns in self.args.wrk_conns:
            for rep in range(self.args.wrk_reps):
                m0 = p.metrics()
                out = subprocess.run(["wrk", "-t2", f"-c{conns}", f"-d{self.args.wrk_s}s", "--latency",
                                      f"http://127.0.0.1:{p.port}/api/workers"],
                                     capture_output=True, text=True, timeout=self.args.wrk_s + 60).stdout
                m1 = p.metrics()
                rps = re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)
                lat = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M))
                errs = re.search(r"(Non-2xx.*|Socket errors.*)", out)
                q, c, s = hist_delta_quantiles(m0, m1, "forkwatch_api_request_duration_seconds")
                print(f"  wrk -t2 -c{conns} {self.args.wrk_s}s #{rep + 1}: {rps} req/s, p50 {lat.get('50')}, "
                      f"p90 {lat.get('90')}, p99 {lat.get('99')}{'; ' + errs.group(1) if errs else ''}; server time "
                      f"mean {s / c * 1e6 if c else 0:.0f} us, p99 <= {q.get(0.99)} s  [{load()}]")
                self.record(f"wrk c{conns} #{rep + 1} req/s | p99", f"{rps} | {lat.get('99')}")
        self.done(p)

    # ---- POST spawns ----

    def post(self):
        n, par = self.args.post_n, self.args.post_par
        pf, progs = self.sleepers(1, "sleeper", autostart=False)
        p = self.fw(progs, max_workers=n + 10)
        codes = {}
        lock = threading.Lock()
        counter = iter(range(n))

        def worker():
            c = Conn(p.port)
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    break
                st, _ = c.req("POST", "/api/workers", {"program": "sleeper", "restart": "no"})
                with lock:
                    codes[st] = codes.get(st, 0) + 1
            c.close()
        ths = [threading.Thread(target=worker) for _ in range(par)]
        cpu0 = proc_cpu_s(p.daemon_pid())
        t0 = now_ns()
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        t_replies = now_ns()
        cpu = proc_cpu_s(p.daemon_pid()) - cpu0  # the daemon's own threads, not its children's exec
        try:
            wait_for(lambda: pf.count() >= n, 60, 0.005, f"{n} probes")
        except TimeoutError as e:
            print(f"  {e}")
        starts = sorted(l[1] for l in pf.lines())
        t_last = starts[-1] if starts else t_replies
        print(f"  {n} POST /api/workers over {par} keep-alive connections: replies {codes}; all replies in "
              f"{(t_replies - t0) / 1e6:.0f} ms = {n / ((t_replies - t0) / 1e9):.0f}/s; daemon CPU {cpu * 1e3 / n:.2f} ms "
              f"per spawn; {len(starts)} probes running, "
              f"last {(t_last - t0) / 1e6:.0f} ms after the first request = {len(starts) / ((t_last - t0) / 1e9):.0f}/s"
              f"  [{load()}]")
        self.record("POST spawns/s (replies | probes running)",
                    f"{n / ((t_replies - t0) / 1e9):.0f} | {len(starts) / ((t_last - t0) / 1e9):.0f}")
        self.done(p)

    # ---- SSE ----

    def sse(self):
        nclients, nexit = self.args.sse_clients, self.args.sse_exits
        lead_s = self.args.sse_lead_s
        t_at_ms = int(time.time() * 1000) + lead_s * 1000
        # A program has at most 1,000 instances (docs/config.md): a bigger storm is several programs.
        progs = [{"name": f"storm{k}", "argv": ["exit-with", "--at-ms", str(t_at_ms)],
                  "instances": min(1000, nexit - k * 1000), "restart": "no"} for k in range((nexit + 999) // 1000)]
        p = self.fw(progs, extra=("--max-sse-clients", str(nclients + 8)), max_workers=min(nexit + 10, 10_000))
        # The clients are bench-sse-clients (C++, one epoll thread): Python
        # could not read 1,000 streams of a 10,000-exit storm as fast as the
        # daemon writes them.
        cl = subprocess.Popen([os.path.join(self.args.bin, "bench-sse-clients"), "--port", str(p.port),
                               "--clients", str(nclients), "--exits", str(nexit), "--seconds", str(lead_s + 90)],
                              stdout=subprocess.PIPE, text=True)
        print(f"  {cl.stdout.readline().strip()} SSE clients at +{time.time() - (t_at_ms / 1000 - lead_s):.1f} s")
        out = cl.communicate(timeout=lead_s + 120)[0].strip()
        t_end = time.time()
        db = p.db()
        rows = db.execute("SELECT count(*) FROM wait_status").fetchone()[0]
        db.close()
        print(f"  {out}; {nexit}-exit storm at +{lead_s} s; wait_status rows {rows}; done "
              f"{t_end - t_at_ms / 1000:.2f} s after the exit instant  [{load()}]")
        self.record("SSE clients with every exit event", out)
        self.done(p)

    # ---- full status ----

    def status(self):
        n, reps = 200, self.args.status_reps
        fw_cli = os.path.join(self.args.bin, "forkwatch")
        res = {}
        # forkwatchd
        pf, progs = self.sleepers(n)
        p = self.fw(progs)
        wait_for(lambda: pf.count() >= n, 60, 0.01, f"{n} sleepers")
        c = Conn(p.port)
        c.req("GET", "/api/workers")
        ts = []
        for _ in range(reps):
            t = time.perf_counter_ns()
            st, body = c.req("GET", "/api/workers")
            ts.append(time.perf_counter_ns() - t)
        c.close()
        assert st == 200
        res["forkwatchd GET /api/workers (keep-alive)"] = percentile(ts, 50) / 1e6
        if os.path.exists(fw_cli):
            ts = []
            for _ in range(max(5, reps // 20)):
                t = time.perf_counter_ns()
                subprocess.run([fw_cli, "--url", f"http://127.0.0.1:{p.port}", "--json", "status"],
                               capture_output=True, check=True, timeout=30)
                ts.append(time.perf_counter_ns() - t)
            res["forkwatch --json status (CLI)"] = percentile(ts, 50) / 1e6
            # The same CLI over the daemon's Unix socket (issue 16): no token,
            # no TCP handshake; the table as a user reads it, and the JSON.
            sock = os.path.join(p.state, "forkwatch.sock")
            for label, extra in (("forkwatch status (CLI, Unix socket)", []),
                                 ("forkwatch --json status (CLI, Unix socket)", ["--json"])):
                ts = []
                for _ in range(max(20, reps // 10)):
                    t = time.perf_counter_ns()
                    subprocess.run([fw_cli, "--socket", sock, *extra, "status"], capture_output=True, check=True,
                                   timeout=30)
                    ts.append(time.perf_counter_ns() - t)
                res[label] = percentile(ts, 50) / 1e6
                res[label + " p99"] = percentile(ts, 99) / 1e6
        self.done(p)
        # supervisord
        sd = Supervisord(self.root)
        self.live.append(sd)
        pf, progs = self.sleepers(n)
        sd.start(progs)
        wait_for(lambda: pf.count() >= n, 120, 0.02, f"{n} sleepers (supervisord)")
        rpc = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{sd.port}/RPC2")
        info = rpc.supervisor.getAllProcessInfo()
        ts = []
        for _ in range(max(20, reps // 5)):
            t = time.perf_counter_ns()
            info = rpc.supervisor.getAllProcessInfo()
            ts.append(time.perf_counter_ns() - t)
        assert len(info) == n
        res["supervisord getAllProcessInfo (XML-RPC)"] = percentile(ts, 50) / 1e6
        ts = []
        for _ in range(5):
            t = time.perf_counter_ns()
            subprocess.run(["supervisorctl", "-c", sd.conf, "status"], capture_output=True, timeout=60)
            ts.append(time.perf_counter_ns() - t)
        res["supervisorctl status"] = percentile(ts, 50) / 1e6
        sd.stop()
        self.live.remove(sd)
        # PM2
        pm = Pm2(self.root)
        self.live.append(pm)
        pf, progs = self.sleepers(n)
        pm.start(progs)
        wait_for(lambda: pf.count() >= n, 180, 0.05, f"{n} sleepers (pm2)")
        k = max(20, reps // 5)
        js = ("const pm2=require(%s);pm2.connect(e=>{if(e)throw e;const ts=[];let i=0;const go=()=>{"
              "const t=process.hrtime.bigint();pm2.list((err,l)=>{if(err)throw err;ts.push(Number(process.hrtime.bigint()-t)/1e6);"
              "if(l.length!==%d)console.error('list length',l.length);if(++i<%d)go();else{"
              "process.stdout.write(JSON.stringify(ts));pm2.disconnect();}});};go();});"
              % (json.dumps(PM2_MODULE), n, k))
        out = subprocess.run(["node", "-e", js], env=pm.env, capture_output=True, timeout=120, text=True)
        try:
            ts = json.loads(out.stdout)
            res["PM2 pm2.list() (Node API, connected)"] = percentile(ts[2:] or ts, 50)
        except ValueError:
            print(f"  pm2 api: {out.stderr[-500:]}")
        ts = []
        for _ in range(5):
            t = time.perf_counter_ns()
            pm.cli("jlist", timeout=60)
            ts.append(time.perf_counter_ns() - t)
        res["pm2 jlist"] = percentile(ts, 50) / 1e6
        pm.stop()
        self.live.remove(pm)
        base = res["forkwatchd GET /api/workers (keep-alive)"]
        cli = res.get("forkwatch --json status (CLI)")
        print(f"  full status of {n} workers, p50 ms  [{load()}]")
        for k2, v in res.items():
            ratio = v / cli if ("ctl" in k2 or "jlist" in k2) and cli else v / base
            against = "forkwatch CLI" if ("ctl" in k2 or "jlist" in k2) and cli else "GET /api/workers"
            print(f"    {k2:45} {v:9.3f}   x{ratio:.1f} vs {against}")
            self.record(f"status p50 ms: {k2}", f"{v:.3f}")

    # ---- tree / sampler ----

    def tree(self):
        procs, threads, secs = self.args.tree_procs, self.args.tree_threads, self.args.tree_s
        ready = os.path.join(self.root, f"tree-ready-{now_ns()}")
        progs = [{"name": "load", "argv": [os.path.join(self.args.bin, "bench-tree-load"), "--procs", str(procs),
                                           "--threads", str(threads), "--ready", ready], "restart": "no"}]
        p = self.fw(progs, extra=("--sample-ms", "1000"))
        wait_for(lambda: os.path.exists(ready), 120, 0.05, "bench-tree-load ready")
        with open(ready) as f:
            print(f"  bench-tree-load: {f.read().strip()} children x {threads} threads")
        pid = p.daemon_pid()
        # unwatched first: what does the daemon cost with nobody looking?
        time.sleep(3)
        c0 = proc_cpu_s(pid)
        time.sleep(secs / 2)
        idle = (proc_cpu_s(pid) - c0) / (secs / 2)
        print(f"  unwatched: daemon CPU {idle * 100:.2f} % of one core over {secs / 2:.0f} s")
        # one SSE client keeps the sampler at full rate
        s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
        s.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        s.setblocking(False)
        stop = threading.Event()
        got = {"bytes": 0, "samples": 0}

        def drain():
            while not stop.is_set():
                r, _, _ = select.select([s], [], [], 0.2)
                if r:
                    try:
                        d = s.recv(1 << 20)
                    except BlockingIOError:
                        continue
                    if not d:
                        return
                    got["bytes"] += len(d)
                    got["samples"] += d.count(b"event: sample")
        th = threading.Thread(target=drain)
        th.start()
        time.sleep(3)
        m0 = p.metrics()
        c0, t0 = proc_cpu_s(pid), time.monotonic()
        time.sleep(secs)
        c1, t1 = proc_cpu_s(pid), time.monotonic()
        m1 = p.metrics()
        watched = (c1 - c0) / (t1 - t0)
        samples = m1.get("forkwatch_samples_total", 0) - m0.get("forkwatch_samples_total", 0)
        scpu = m1.get("forkwatch_sample_cpu_seconds_total", 0) - m0.get("forkwatch_sample_cpu_seconds_total", 0)
        print(f"  watched (1 SSE client): daemon CPU {watched * 100:.2f} % of one core over {t1 - t0:.0f} s; "
              f"{samples:.0f} samples, sampler's own CPU {scpu * 1000 / max(samples, 1):.1f} ms per sample "
              f"({scpu / (t1 - t0) * 100:.2f} %); processes watched {m1.get('forkwatch_processes_watched', 0):.0f}, "
              f"threads {m1.get('forkwatch_threads_watched', 0):.0f}; SSE got {got['samples']} sample events, "
              f"{got['bytes'] / 1024:.0f} KiB  [{load()}]")
        self.record("sampler CPU, 1 Hz, watched, % of one core (daemon total | sampler)",
                    f"{watched * 100:.2f} | {scpu / (t1 - t0) * 100:.2f}")
        self.record("one sample in the daemon, CPU ms", f"{scpu * 1000 / max(samples, 1):.1f}")
        # GET /api/tree
        for scope in ("supervised", "all"):
            c = Conn(p.port)
            st, body = c.req("GET", f"/api/tree?scope={scope}")
            nodes = body.count(b'"pid"')
            ts = []
            m0 = p.metrics()
            for _ in range(self.args.tree_reqs):
                t = time.perf_counter_ns()
                st, body = c.req("GET", f"/api/tree?scope={scope}")
                ts.append(time.perf_counter_ns() - t)
            m1 = p.metrics()
            c.close()
            q, cnt, ssum = hist_delta_quantiles(m0, m1, "forkwatch_api_request_duration_seconds")
            print(f"  GET /api/tree?scope={scope}: {st}, {len(body) / 1024:.0f} KiB, ~{nodes} pid fields; "
                  f"client p50 {percentile(ts, 50) / 1e6:.2f} ms p99 {percentile(ts, 99) / 1e6:.2f} ms; server "
                  f"(histogram, {cnt:.0f} requests incl. 1 /metrics) mean {ssum / max(cnt, 1) * 1000:.2f} ms, "
                  f"p50 <= {q.get(0.5)} s, p99 <= {q.get(0.99)} s  [{load()}]")
            self.record(f"GET /api/tree {scope} ms (client p50 | server mean)",
                        f"{percentile(ts, 50) / 1e6:.2f} | {ssum / max(cnt, 1) * 1000:.2f}")
        stop.set()
        th.join()
        s.close()
        self.done(p)

    # ---- /metrics with many workers (issue 17) ----

    def metrics(self):
        n, reps = self.args.metrics_workers, self.args.metrics_reqs
        pf, progs = self.sleepers(n)
        p = self.fw(progs, max_workers=n + 10)
        wait_for(lambda: pf.count() >= n, 120, 0.01, f"{n} sleepers")
        c = Conn(p.port)
        for accept in ("text/plain", "application/openmetrics-text;version=1.0.0"):
            c.c.request("GET", "/metrics", headers={"Accept": accept})
            body = c.c.getresponse().read()  # warm: the first scrape may wait for a /proc sample
            m0 = p.metrics()
            ts = []
            for _ in range(reps):
                t = time.perf_counter_ns()
                c.c.request("GET", "/metrics", headers={"Accept": accept})
                body = c.c.getresponse().read()
                ts.append(time.perf_counter_ns() - t)
            m1 = p.metrics()
            q, cnt, ssum = hist_delta_quantiles(m0, m1, "forkwatch_api_request_duration_seconds")
            lines = [l for l in body.decode().splitlines() if l and not l.startswith("#")]
            per_worker = sum(1 for l in lines if l.startswith("forkwatch_worker_"))
            print(f"  GET /metrics ({accept.split(';')[0]}), {n} workers: {len(body)} bytes, {len(lines)} samples "
                  f"({per_worker} per-worker); client p50 {percentile(ts, 50) / 1e6:.2f} ms p99 "
                  f"{percentile(ts, 99) / 1e6:.2f} ms; server (histogram, {cnt:.0f} requests) mean "
                  f"{ssum / max(cnt, 1) * 1000:.2f} ms, p99 <= {q.get(0.99)} s  [{load()}]")
            self.record(f"GET /metrics {accept.split(';')[0]} {n} workers (bytes | client p50 ms | server mean ms)",
                        f"{len(body)} | {percentile(ts, 50) / 1e6:.2f} | {ssum / max(cnt, 1) * 1000:.2f}")
        c.close()
        self.done(p)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build-bench",
                                                  "bin"))
    ap.add_argument("--wrk-s", type=int, default=10)
    ap.add_argument("--wrk-reps", type=int, default=2)
    ap.add_argument("--wrk-conns", type=lambda s: [int(x) for x in s.split(",")], default=[8, 32])
    ap.add_argument("--post-n", type=int, default=1000)
    ap.add_argument("--post-par", type=int, default=8)
    ap.add_argument("--sse-clients", type=int, default=100)
    ap.add_argument("--sse-exits", type=int, default=1000)
    ap.add_argument("--sse-lead-s", type=int, default=20, help="exit instant after daemon start; must exceed spawn time")
    ap.add_argument("--status-reps", type=int, default=200)
    ap.add_argument("--tree-procs", type=int, default=1000)
    ap.add_argument("--tree-threads", type=int, default=10)
    ap.add_argument("--tree-s", type=int, default=20)
    ap.add_argument("--tree-reqs", type=int, default=50)
    ap.add_argument("--metrics-workers", type=int, default=1000)
    ap.add_argument("--metrics-reqs", type=int, default=50)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("scenarios", nargs="*", default=["wrk", "post", "sse", "status", "tree"])
    args = ap.parse_args()
    args.bin = os.path.abspath(args.bin)
    b = Bench(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    print(f"api bench: {os.cpu_count()} cores, {load()}, temp dir {b.root}")
    for sc in args.scenarios:
        print(f"== {sc}")
        getattr(b, sc)()
    print("== summary")
    for what, v in b.rows:
        print(f"  {what}: {v}")


if __name__ == "__main__":
    main()
