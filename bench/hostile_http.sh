#!/usr/bin/env bash
# Issue 19's fuzz figure: the suite's seeded fuzz test with 20,000 mutated
# requests instead of 3,000 (with and without a token; asserts 0 crashes,
# 0 5xx, every reply well-formed, workers unchanged).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/bin}
time FORKWATCH_FUZZ_REQUESTS=${FORKWATCH_FUZZ_REQUESTS:-20000} "$bin/forkwatch_integration_tests" "fuzz:*" --durations yes
