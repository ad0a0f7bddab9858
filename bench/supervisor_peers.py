"""The three supervisors the benchmarks compare, behind one small interface.

Forkwatch (forkwatchd), Supervisord (Debian's supervisor) and Pm2 (npm's pm2)
each run under their own temp dir with their own config, on loopback only, and
are started and stopped by the benchmark itself. Every process a benchmark
starts carries the run's temp dir in its command line (the probe's --out file),
so cleanup can find and end exactly those and nothing else.

A program is a plain dict: {"name", "argv", "instances", "restart"} with
restart one of "always", "no". Each class maps it to its own config.
"""

import atexit
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import xmlrpc.client

PM2_MODULE = "/usr/lib/node_modules/pm2"


def now_ns():
    return time.time_ns()


def wait_for(pred, timeout, interval=0.01, what="condition"):
    """Polls pred() until truthy or timeout seconds pass; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def proc_cpu_s(pid):
    """utime + stime of pid itself (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # stat fields 14 and 15, proc(5)
    return ticks / os.sysconf("SC_CLK_TCK")


def kill_leftovers(marker):
    """SIGKILLs every process whose command line contains marker (the run's
    unique temp dir): probes a supervisor left behind. Returns how many."""
    me = os.getpid()
    n = 0
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == me:
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if marker.encode() in cmd:
            try:
                os.kill(int(d), signal.SIGKILL)
                n += 1
            except OSError:
                pass
    return n


def _stop_popen(p, timeout=60):
    if p is None or p.poll() is not None:
        return
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(10)



class BenchRun:
    """A benchmark's scratch dir and the daemons it started, all cleaned up at exit."""

    def __init__(self, args, prefix):
        self.args = args
        self.root = tempfile.mkdtemp(prefix=prefix)
        self.probe = os.path.join(args.bin, "bench-restart-probe")
        self.live = []
        atexit.register(self.cleanup)

    def cleanup(self):
        for p in self.live:
            try:
                p.stop()
            except Exception as e:  # cleanup must go on
                print(f"  cleanup {p.label}: {e}", file=sys.stderr)
        self.live.clear()
        n = kill_leftovers(self.root)
        if n:
            print(f"  cleanup: killed {n} leftover processes", file=sys.stderr)
        if not self.args.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def done(self, p):
        p.stop()
        self.live.remove(p)

class Forkwatch:
    label = "forkwatchd"

    def __init__(self, root, bin_dir):
        self.root = os.path.join(root, "fw")
        self.bin_dir = bin_dir
        self.proc = None
        self.port = None
        self.runs = 0

    def _config(self, programs):
        return {"programs": [{
            "name": p["name"], "command": p["argv"], "instances": p.get("instances", 1),
            "restart": p.get("restart", "always"), "autostart": p.get("autostart", True), "restart_delay_ms": 0, "max_restarts": 1000000,
            "stop_timeout_ms": 2000, "output": p.get("output", "capture"),
            **p.get("fields", {})} for p in programs]}  # fields: any other program fields, as written

    def _write_config(self, programs):
        tmp = self.config + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self._config(programs), f)
        os.rename(tmp, self.config)

    def start(self, programs, max_workers=1000, extra=(), env=None):
        self.runs += 1
        d = os.path.join(self.root, f"run{self.runs}-{now_ns()}")
        os.makedirs(d)
        self.state = os.path.join(d, "state")
        self.config = os.path.join(d, "programs.json")
        self._write_config(programs)
        port_file = os.path.join(d, "port")
        self.log = open(os.path.join(d, "daemon.log"), "wb")
        self.proc = subprocess.Popen(
            [os.path.join(self.bin_dir, "forkwatchd"), "--listen", "127.0.0.1:0", "--port-file", port_file,
             "--state-dir", self.state, "--config", self.config, "--workers-dir", self.bin_dir, "--no-auth",
             "--max-workers", str(max_workers), *extra],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, start_new_session=True, env=env)
        wait_for(lambda: os.path.exists(port_file) or self.proc.poll() is not None, 30, what="forkwatchd port file")
        if self.proc.poll() is not None:
            raise RuntimeError(f"forkwatchd exited {self.proc.returncode}; see {self.log.name}")
        with open(port_file) as f:
            self.port = int(f.read())

    def set_programs(self, programs):
        """Rewrites the config; the caller triggers the reload with reload()."""
        self._write_config(programs)

    def reload(self):
        os.kill(self.proc.pid, signal.SIGHUP)

    def daemon_pid(self):
        return self.proc.pid

    def db(self):
        return sqlite3.connect(f"file:{self.state}/forkwatch.db?mode=ro", uri=True, timeout=10)

    def get(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def metrics(self):
        _, body = self.get("/metrics")
        out = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                try:
                    out[k] = float(v)
                except ValueError:
                    pass
        return out

    def stop(self):
        _stop_popen(self.proc)
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()


class Supervisord:
    label = "supervisord"

    def __init__(self, root, bin_dir=None):
        self.root = os.path.join(root, "sd")
        self.proc = None
        self.runs = 0

    def _conf(self, programs):
        lines = [
            "[supervisord]", "nodaemon=true", f"logfile={self.dir}/supervisord.log",
            f"pidfile={self.dir}/supervisord.pid", f"childlogdir={self.dir}", "loglevel=info",
            "minprocs=200", "minfds=4096",
            "[inet_http_server]", f"port=127.0.0.1:{self.port}",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        ]
        for p in programs:
            n = p.get("instances", 1)
            lines += [
                f"[program:{p['name']}]", "command=" + " ".join(p["argv"]),
                "process_name=%(program_name)s_%(process_num)04d", f"numprocs={n}",
                "autostart=true", "autorestart=" + ("true" if p.get("restart", "always") == "always" else "false"),
                "startsecs=0", "startretries=1000000", "stopwaitsecs=2",
                "stdout_logfile=NONE", "stderr_logfile=NONE",
            ]
        return "\n".join(lines) + "\n"

    def start(self, programs, **_):
        self.runs += 1
        self.dir = os.path.join(self.root, f"run{self.runs}-{now_ns()}")
        os.makedirs(self.dir)
        self.port = free_port()
        self.conf = os.path.join(self.dir, "supervisord.conf")
        self.programs = list(programs)
        with open(self.conf, "w") as f:
            f.write(self._conf(programs))
        self.log = open(os.path.join(self.dir, "stdout.log"), "wb")
        self.proc = subprocess.Popen(["supervisord", "-n", "-c", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log, start_new_session=True)
        self.rpc = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{self.port}/RPC2")

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"supervisord exited {self.proc.returncode}; see {self.dir}")
            try:
                return self.rpc.supervisor.getState()["statename"] == "RUNNING"
            except (OSError, xmlrpc.client.Error):
                return False
        wait_for(up, 30, 0.05, "supervisord XML-RPC")

    def set_programs(self, programs):
        with open(self.conf, "w") as f:
            f.write(self._conf(programs))
        self.programs = list(programs)

    def reload(self):
        """reloadConfig, then addProcessGroup for each new group (what
        `supervisorctl update` does), over one XML-RPC connection."""
        added, _changed, _removed = self.rpc.supervisor.reloadConfig()[0]
        for name in added:
            self.rpc.supervisor.addProcessGroup(name)

    def daemon_pid(self):
        return self.proc.pid

    def stop(self):
        _stop_popen(self.proc)
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()


class Pm2:
    label = "pm2"

    def __init__(self, root, bin_dir=None):
        self.home = os.path.join(root, "pm2home")
        self.root = root
        self.env = dict(os.environ, PM2_HOME=self.home, PM2_SILENT="true")
        self.running = False

    def _apps(self, programs):
        apps = []
        for p in programs:
            for i in range(p.get("instances", 1)):
                apps.append({
                    "name": f"{p['name']}-{i}", "script": p["argv"][0], "args": p["argv"][1:],
                    "interpreter": "none", "exec_mode": "fork",
                    "autorestart": p.get("restart", "always") == "always", "restart_delay": 0,
                    "max_restarts": 1000000, "min_uptime": 0, "out_file": "/dev/null",
                    "error_file": "/dev/null", "merge_logs": True, "watch": False, "vizion": False,
                    "kill_timeout": 2000})
        return apps

    def cli(self, *args, timeout=300):
        return subprocess.run(["pm2", *args], env=self.env, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout, check=True).stdout

    def start(self, programs, **_):
        os.makedirs(self.home, exist_ok=True)
        self.cli("ping")
        self.running = True
        wait_for(lambda: os.path.exists(os.path.join(self.home, "pm2.pid")), 30, what="PM2 God pid file")
        if programs:
            self.set_programs(programs)
            self.cli("start", self.eco)

    def set_programs(self, programs):
        self.eco = os.path.join(self.home, f"eco-{now_ns()}.json")
        with open(self.eco, "w") as f:
            json.dump({"apps": self._apps(programs)}, f)

    def node(self, script, **kw):
        """Runs a Node script against this PM2_HOME; pm2 is require()d from
        the global install."""
        return subprocess.Popen(["node", "-e", script], env=self.env, **kw)

    def start_via_api(self):
        """pm2.start(ecosystem) through the Node API, connected beforehand so
        the measured span is the God daemon's work, not Node's start-up.
        Returns the ns timestamp taken just before the go signal."""
        js = ("const pm2=require(%s);pm2.connect(e=>{if(e)throw e;process.stdout.write('ready\\n');"
              "process.stdin.once('data',()=>{pm2.start(%s,(err)=>{if(err)console.error(err);"
              "process.stdout.write('started\\n');pm2.disconnect();});});});"
              % (json.dumps(PM2_MODULE), json.dumps(self.eco)))
        p = self.node(js, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        if p.stdout.readline().strip() != b"ready":
            raise RuntimeError("pm2 API did not connect")
        t0 = now_ns()
        p.stdin.write(b"go\n")
        p.stdin.flush()
        line = p.stdout.readline()  # "started" once pm2.start() called back
        try:
            p.wait(5)  # node may linger on PM2's bus sockets after disconnect()
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
        if line.strip() != b"started":
            raise RuntimeError("pm2.start() over the API did not call back")
        return t0

    def daemon_pid(self):
        with open(os.path.join(self.home, "pm2.pid")) as f:
            return int(f.read())

    def stop(self):
        if not self.running:
            return
        pid = None
        try:
            pid = self.daemon_pid()
        except (OSError, ValueError):
            pass
        try:
            self.cli("kill", timeout=120)
        except (subprocess.SubprocessError, OSError):
            pass
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)  # our own God daemon, if `pm2 kill` left it
            except OSError:
                pass
        self.running = False
        # A fresh home per start: the next start must not resurrect old apps.
        self.home = os.path.join(self.root, f"pm2home-{now_ns()}")
        self.env["PM2_HOME"] = self.home


PEERS = {"forkwatchd": Forkwatch, "supervisord": Supervisord, "pm2": Pm2}


class ProbeFile:
    """Lines appended by bench-restart-probe: (pid, start_ns, exit_ns)."""

    def __init__(self, path):
        self.path = path
        open(path, "w").close()

    def lines(self):
        out = []
        with open(self.path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3:
                    out.append((int(parts[0]), int(parts[1]), int(parts[2])))
        return out

    def count(self):
        with open(self.path, "rb") as f:
            return f.read().count(b"\n")


def percentile(values, q):
    """Nearest-rank percentile of a non-empty list."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(q / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def summary_ms(values_ns):
    if not values_ns:
        return "n=0"
    ms = [v / 1e6 for v in values_ns]
    return (f"n={len(ms)} p50={percentile(ms, 50):.3f} p90={percentile(ms, 90):.3f} "
            f"p99={percentile(ms, 99):.3f} max={max(ms):.3f} mean={sum(ms) / len(ms):.3f} ms")


class KernelExecTrace:
    """The kernel's own view of "child exit to replacement exec'd": ftrace's
    sched_process_exit and sched_process_exec of the probe, in a trace
    instance of our own (its own buffer; the global trace is untouched).
    sched_process_exit fires inside do_exit; sched_process_exec once execve
    has loaded the new program and is about to return to it. Needs root and
    tracefs; without them available() is False and the figure is skipped."""

    TRACEFS = "/sys/kernel/tracing"
    PROBE_COMM = "bench-restart-p"  # the probe's name, cut to the kernel's 15 characters

    def __init__(self):
        self.dir = None

    def available(self):
        if not os.path.isdir(os.path.join(self.TRACEFS, "instances")):
            subprocess.run(["mount", "-t", "tracefs", "nodev", self.TRACEFS], capture_output=True)
        return os.path.isdir(os.path.join(self.TRACEFS, "events", "sched", "sched_process_exec"))

    def _write(self, rel, text):
        with open(os.path.join(self.dir, rel), "w") as f:
            f.write(text)

    def start(self):
        self.dir = os.path.join(self.TRACEFS, "instances", f"fw-bench-{os.getpid()}")
        os.mkdir(self.dir)
        self._write("buffer_size_kb", "4096")
        self._write("trace_clock", "mono")
        self._write("events/sched/sched_process_exit/filter", f'comm == "{self.PROBE_COMM}"')
        self._write("events/sched/sched_process_exec/filter", 'filename ~ "*bench-restart-probe"')
        self._write("events/sched/sched_process_exit/enable", "1")
        self._write("events/sched/sched_process_exec/enable", "1")

    def stop(self):
        """Exit -> next exec intervals (ns), in trace order; removes the instance."""
        for ev in ("sched_process_exit", "sched_process_exec"):
            self._write(f"events/sched/{ev}/enable", "0")
        with open(os.path.join(self.dir, "trace")) as f:
            text = f.read()
        os.rmdir(self.dir)
        self.dir = None
        events = []
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            for kind in ("sched_process_exit", "sched_process_exec"):
                if f" {kind}:" in line:
                    ts = line.split(f" {kind}:")[0].rsplit(None, 1)[1].rstrip(":")
                    sec, usec = ts.split(".")
                    events.append((int(sec) * 1_000_000_000 + int(usec.ljust(9, "0")[:9]), kind))
        events.sort()
        gaps, exited = [], None
        for ts, kind in events:
            if kind == "sched_process_exit":
                exited = ts
            elif exited is not None:
                gaps.append(ts - exited)
                exited = None
        return gaps
