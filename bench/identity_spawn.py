#!/usr/bin/env python3
"""Issue 13: what identity and limits cost a spawn. 200 instances started by
SIGHUP reload, with no identity fields ("plain") and with "user": "nobody"
plus four limits, umask, nice 0 (a setpriority call that leaves the
priority alone: a lower priority would slow the probes, not the spawns),
oom_score_adj and no_new_privs ("identity"),
alternating in the same run so both see the same machine.

  sudo python3 bench/identity_spawn.py [--bin build-bench/bin] [--n 200] [--rounds 5]

Each probe appends its own start time to a file; the figure is trigger ->
last probe's start. Runs as root (the daemon must be root to switch users),
on loopback, in one temp dir removed at the end; bounded by --rounds.
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from supervisor_peers import BenchRun, Forkwatch, ProbeFile, now_ns, wait_for  # noqa: E402

IDENTITY = {"user": "nobody", "umask": "0027", "nice": 0, "oom_score_adj": 100, "no_new_privs": True,
            "limits": {"nofile": [1024, 4096], "core": 0, "nproc": [4096, 8192], "stack": [8388608, "unlimited"]}}


def load():
    return "load %.2f %.2f %.2f" % os.getloadavg()


def one(bench, variant, n):
    pf = ProbeFile(os.path.join(bench.root, f"{variant}-{now_ns()}.txt"))
    os.chmod(pf.path, 0o666)  # the probes of "identity" run as nobody
    p = Forkwatch(bench.root, bench.args.bin)
    bench.live.append(p)
    p.start([], max_workers=max(n, 1000))
    prog = {"name": "s", "argv": [bench.probe, "--out", pf.path, "--sleep"], "instances": n}
    if variant == "identity":
        prog["fields"] = IDENTITY
    p.set_programs([prog])
    t0 = now_ns()
    p.reload()
    try:
        wait_for(lambda: pf.count() >= n, 60, 0.002, f"{n} probes started")
    finally:
        starts = sorted(l[1] for l in pf.lines())
        bench.done(p)
    span = (starts[-1] - t0) / 1e9
    rate = len(starts) / span
    print(f"  {variant:8}: {len(starts)}/{n} started in {span * 1000:.1f} ms -> {rate:.0f}/s  [{load()}]")
    return rate


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build-bench", "bin"))
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("identity_spawn.py: run as root (the daemon switches workers to nobody)")
    bench = BenchRun(args, "fw-bench-identity-")
    os.chmod(bench.root, 0o755)
    rates = {"plain": [], "identity": []}
    for r in range(args.rounds):
        order = ["plain", "identity"] if r % 2 == 0 else ["identity", "plain"]
        for variant in order:
            rates[variant].append(one(bench, variant, args.n))
            time.sleep(0.5)  # let the last run's probes be reaped before the next
    med = {k: statistics.median(v) for k, v in rates.items()}
    for k, v in rates.items():
        print(f"{k:8}: median {med[k]:.0f}/s over {len(v)} runs (min {min(v):.0f}, max {max(v):.0f})")
    print(f"identity / plain: {med['identity'] / med['plain'] * 100:.1f} %")


if __name__ == "__main__":
    main()
