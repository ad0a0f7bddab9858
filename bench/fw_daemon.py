"""Starting forkwatchd for a benchmark: one helper instead of a copy per bench.

  proc, port, token = start(bin_dir, state_dir, "--allow-commands", stderr=f)

The daemon listens on 127.0.0.1:0; start() waits (bounded) for its port file
and reads the token it made in state_dir. The caller stops it.
"""

import os
import subprocess
import time


def start(bin_dir, state_dir, *args, stderr=subprocess.DEVNULL, env=None, timeout_s=30):
    port_file = os.path.join(state_dir, "port")
    proc = subprocess.Popen([os.path.join(bin_dir, "forkwatchd"), "--listen", "127.0.0.1:0", "--state-dir", state_dir,
                             "--port-file", port_file, *args],
                            stdin=subprocess.DEVNULL, stderr=stderr, env=env)
    deadline = time.time() + timeout_s
    while not os.path.exists(port_file):
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise RuntimeError(f"forkwatchd did not start (exit {proc.poll()})")
        time.sleep(0.02)  # polls the port file under the deadline above
    port = int(open(port_file).read())
    token_file = os.path.join(state_dir, "token")
    token = open(token_file).read().strip() if os.path.exists(token_file) else (env or {}).get("FORKWATCH_TOKEN", "")
    return proc, port, token
