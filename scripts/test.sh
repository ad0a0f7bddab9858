#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: unit and integration
# tests (ctest), the systemd unit checks, the dashboard in headless Chromium,
# then the C++ tests again under AddressSanitizer and UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
jobs=$(nproc)
# Each phase's wall time, so a slow CI run says where the time went.
phase_start=0  # SECONDS counts from the start of this script
took() { echo "   ($1: $((SECONDS - phase_start)) s)"; phase_start=$SECONDS; }
took "dependencies"

echo "== build (warnings are errors)"
cmake -S . -B build -DFORKWATCH_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
took "build"

echo "== unit and integration tests"
ctest --test-dir build --output-on-failure -j2 --timeout 300
took "tests"

if [[ -x tests/web/run.sh ]]; then
  echo "== dashboard tests (headless Chromium)"
  FORKWATCH_BIN_DIR="$PWD/build/bin" tests/web/run.sh
  took "dashboard tests"
fi

echo "== the same tests under AddressSanitizer + UndefinedBehaviorSanitizer"
cmake -S . -B build-asan -DFORKWATCH_SANITIZE=ON -DFORKWATCH_WERROR=ON -DFORKWATCH_BENCH=OFF >/dev/null
cmake --build build-asan -j"$jobs"
took "sanitizer build"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j2 --timeout 600
took "sanitizer tests"
echo "== all tests passed"
