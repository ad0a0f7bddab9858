#!/usr/bin/env bash
# Installs the Debian 12 packages forkwatch needs, only those that are missing.
#   scripts/install-deps.sh          what building and running need
#   scripts/install-deps.sh --test   also what the tests need (Chromium, systemd tools, node, PostgreSQL)
set -euo pipefail

# libssl-dev: HTTPS (--tls-cert), built into forkwatch-tls.so only.
packages=(build-essential cmake pkg-config libcpp-httplib-dev nlohmann-json3-dev catch2 libsqlite3-dev libssl-dev)
if [[ "${1:-}" == "--test" ]]; then
  # chromium: dashboard tests; systemd: systemd-analyze for the unit checks;
  # curl: the API docs' examples are run as written; procps: ps/top for benchmarks;
  # prometheus: a real Prometheus scrapes two daemons, promtool checks /metrics and the rules;
  # openssl: the HTTPS tests make their certificate with it;
  # redis-server: a real service speaking sd_notify (--supervised systemd) for readiness,
  # and a real daemonizing program kept in its worker's cgroup (issue 13);
  # python3: its http.server is the target of the http health check test;
  # postgresql: a real PostgreSQL runs as "user": "postgres" (and its user has a supplementary group).
  packages+=(chromium systemd curl procps sqlite3 dpkg-dev file prometheus openssl redis-server python3 postgresql)
  command -v node >/dev/null || packages+=(nodejs)
  command -v npm >/dev/null || packages+=(npm)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo=sudo
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
