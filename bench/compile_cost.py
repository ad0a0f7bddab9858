#!/usr/bin/env python3
"""CPU seconds to compile the API's translation units, in two configured build trees.

Issue 16/20: what dropping cpp-httplib from forkwatchd saves in a clean build.
Each file of api/ (the client's forkwatch_main.cpp aside) is compiled from the
build's compile_commands.json, without ccache, --reps times, two at a time;
the figure is the child's user + system CPU time (wall time on a shared
machine says more about the neighbours than about the compiler).

  cmake -S OLD_SRC -B OLD_BUILD; cmake -S NEW_SRC -B NEW_BUILD   (configured, not built)
  python3 bench/compile_cost.py OLD_BUILD NEW_BUILD [--reps 2]
"""
import argparse
import concurrent.futures
import json
import os
import shlex
import statistics
import subprocess
import tempfile


def api_units(build):
    with open(os.path.join(build, "compile_commands.json")) as f:
        entries = json.load(f)
    out = {}
    for e in entries:
        path = e["file"]
        if "/api/" in path and not path.endswith("_main.cpp"):
            out[os.path.basename(path)] = e
    return out


def cpu_seconds(entry):
    args = shlex.split(entry["command"])
    if os.path.basename(args[0]) == "ccache":
        args = args[1:]
    with tempfile.TemporaryDirectory() as tmp:
        o = args.index("-o")
        args[o + 1] = os.path.join(tmp, "out.o")
        before = os.times()
        subprocess.run(args, cwd=entry["directory"], check=True, stdout=subprocess.DEVNULL)
        after = os.times()
    return (after.children_user - before.children_user) + (after.children_system - before.children_system)


def measure(build, reps):
    units = api_units(build)
    jobs = [(name, e) for name, e in sorted(units.items()) for _ in range(reps)]
    times = {}
    # Processes, not threads: os.times() counts the children of each worker alone.
    with concurrent.futures.ProcessPoolExecutor(max_workers=2) as pool:
        for (name, _), t in zip(jobs, pool.map(cpu_seconds, [e for _, e in jobs])):
            times.setdefault(name, []).append(t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--reps", type=int, default=2)
    a = ap.parse_args()
    old, new = measure(a.old, a.reps), measure(a.new, a.reps)
    print(f"{'file':22s} {'old s':>7s} {'new s':>7s}")
    for name in sorted(set(old) | set(new)):
        o, n = old.get(name), new.get(name)
        print(f"{name:22s} {o if o is not None else float('nan'):7.2f} {n if n is not None else float('nan'):7.2f}")
    print(f"{'total':22s} {sum(old.values()):7.2f} {sum(new.values()):7.2f}  "
          f"(saved {sum(old.values()) - sum(new.values()):.2f} CPU s)")


if __name__ == "__main__":
    main()
