#!/usr/bin/env python3
"""Issue 16, TLS: what HTTPS costs forkwatchd, in requests per second and memory.

Starts a plain-HTTP daemon and an HTTPS one (a self-signed certificate made
here with the openssl command), each supervising N sleeping workers, and
measures:
  - VmRSS of each, idle with N workers, and after the load;
  - GET /api/workers with keep-alive, wrk -c8 (wrk does not verify
    certificates, so the self-signed one works), alternating plain and TLS
    rounds so that both see the same machine;
  - optionally VmRSS of a daemon built with -DFORKWATCH_TLS=OFF (--notls-exe).

Bounded (a few rounds of --seconds each) and loopback only.

  python3 bench/tls_bench.py [--build build] [--notls-exe build-notls/bin/forkwatchd]
      [--workers 100] [--seconds 10] [--rounds 3]
"""
import argparse
import json
import os
import re
import shutil
import ssl
import statistics
import subprocess
import tempfile
import time
import urllib.request

TOKEN = "bench-token-0123456789abcdef"


def vmrss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def rss_by_file(pid):
    """KiB of resident memory per mapped file (anonymous memory as "[anon]")."""
    out, name = {}, "[anon]"
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            fields = line.split()
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                name = fields[5] if len(fields) > 5 and fields[5].startswith("/") else "[anon]"
            elif fields[0] == "Rss:":
                out[name] = out.get(name, 0) + int(fields[1])
    return out


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


class Daemon:
    def __init__(self, exe, workers_dir, tmp, name, workers, tls_pair=None):
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir)
        self.tls = tls_pair is not None
        config = {"programs": [{"name": "sleep", "command": ["exit-with", "--sleep"], "instances": workers}]}
        with open(os.path.join(self.dir, "programs.json"), "w") as f:
            json.dump(config, f)
        port_file = os.path.join(self.dir, "port")
        args = [exe, "--listen", "127.0.0.1:0", "--state-dir", self.dir, "--port-file", port_file,
                "--workers-dir", workers_dir, "--config", os.path.join(self.dir, "programs.json"), "--no-socket"]
        if tls_pair:
            args += ["--tls-cert", tls_pair[0], "--tls-key", tls_pair[1]]
        env = dict(os.environ, FORKWATCH_TOKEN=TOKEN)
        self.proc = subprocess.Popen(args, env=env, stderr=open(os.path.join(self.dir, "stderr"), "w"))
        wait_for(lambda: os.path.exists(port_file), 30, f"{name} to listen")
        self.port = int(open(port_file).read())
        self.ctx = None
        if tls_pair:
            self.ctx = ssl.create_default_context(cafile=tls_pair[0])
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"
        wait_for(lambda: self.running() >= workers, 60, f"{name}: {workers} workers running")

    def get(self, path):
        req = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(req, context=self.ctx, timeout=10) as r:
            return json.loads(r.read())

    def running(self):
        return sum(1 for w in self.get("/api/workers")["workers"] if w["state"] == "running")

    def rss_mib(self):
        return vmrss_kib(self.proc.pid) / 1024

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def wrk(url, seconds):
    out = subprocess.run(["wrk", "-t2", "-c8", f"-d{seconds}s", "-H", f"Authorization: Bearer {TOKEN}",
                          url + "/api/workers"], capture_output=True, text=True, timeout=seconds + 30).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if not m or errors:
        raise SystemExit("wrk failed:\n" + out)
    return float(m.group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--notls-exe", default="")
    ap.add_argument("--workers", type=int, default=100)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    bin_dir = os.path.abspath(os.path.join(a.build, "bin"))
    tmp = tempfile.mkdtemp(prefix="fw-tls-bench-")
    crt, key = os.path.join(tmp, "server.crt"), os.path.join(tmp, "server.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", crt], check=True, capture_output=True)
    daemons = []
    try:
        plain = Daemon(os.path.join(bin_dir, "forkwatchd"), bin_dir, tmp, "plain", a.workers)
        daemons.append(plain)
        tls = Daemon(os.path.join(bin_dir, "forkwatchd"), bin_dir, tmp, "tls", a.workers, (crt, key))
        daemons.append(tls)
        notls = None
        if a.notls_exe:
            notls = Daemon(os.path.abspath(a.notls_exe), bin_dir, tmp, "notls-build", a.workers)
            daemons.append(notls)
        time.sleep(5)  # start-up settles (sampler, first snapshots)
        idle = {d.dir.rsplit("/", 1)[1]: d.rss_mib() for d in daemons}
        for d in daemons:
            files = rss_by_file(d.proc.pid)
            top = sorted(files.items(), key=lambda kv: -kv[1])[:6]
            print(f"  {d.dir.rsplit('/', 1)[1]}: " + ", ".join(f"{os.path.basename(k)} {v / 1024:.2f}" for k, v in top)
                  + " MiB")
        rates = {"plain": [], "tls": []}
        for _ in range(a.rounds):
            rates["plain"].append(wrk(plain.url, a.seconds))
            rates["tls"].append(wrk(tls.url, a.seconds))
        after = {d.dir.rsplit("/", 1)[1]: d.rss_mib() for d in daemons}
        print(f"workers per daemon: {a.workers}; wrk -t2 -c8 -d{a.seconds}s, {a.rounds} rounds each, alternating")
        for name in idle:
            print(f"  VmRSS {name:12s} idle {idle[name]:5.1f} MiB, after the load {after[name]:5.1f} MiB")
        p, t = statistics.median(rates["plain"]), statistics.median(rates["tls"])
        print(f"  GET /api/workers plain: {', '.join(f'{r:.0f}' for r in rates['plain'])} req/s (median {p:.0f})")
        print(f"  GET /api/workers TLS:   {', '.join(f'{r:.0f}' for r in rates['tls'])} req/s (median {t:.0f})")
        print(f"  TLS / plain: {100 * t / p:.0f} %")
    finally:
        for d in daemons:
            d.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
