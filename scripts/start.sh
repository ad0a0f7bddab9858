#!/usr/bin/env bash
# Installs what is missing, builds, and starts forkwatchd in the foreground
# with a small example config. The dashboard link (with its token) is printed
# on stderr; Ctrl-C stops the daemon and every worker.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFORKWATCH_TESTS=OFF -DFORKWATCH_BENCH=OFF >/dev/null
cmake --build build -j"$(nproc)"
exec build/bin/forkwatchd --config docs/examples/programs.json "$@"
