#!/usr/bin/env bash
# The dashboard's browser tests: playwright-core (pinned in package-lock.json)
# drives Debian's headless chromium against real forkwatchd processes.
# FORKWATCH_BIN_DIR names the build's bin/ (default build/bin); exits non-zero
# when any test fails.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [[ ! -f node_modules/playwright-core/package.json ]]; then
  echo "== npm ci (playwright-core, no browser download)"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
fi

chromium="${FORKWATCH_CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$chromium" ]]; then
  echo "tests/web/run.sh: $chromium is missing (apt-get install chromium, or set FORKWATCH_CHROMIUM)" >&2
  exit 1
fi

export FORKWATCH_BIN_DIR="${FORKWATCH_BIN_DIR:-$PWD/build/bin}"
# No --test-concurrency: Debian 12's node 18 does not know it.
exec node --test tests/web/
