#!/bin/sh
# Checks of the systemd units, the install layout and the Debian package.
# Registered with ctest by systemd/install.cmake, which sets the environment:
#   FORKWATCH_SOURCE_DIR, FORKWATCH_BUILD_DIR,
#   FORKWATCH_INSTALLED_BINS (e.g. "forkwatchd forkwatch"),
#   FORKWATCH_INSTALLED_WORKERS (e.g. "exit-with orphan-maker").
# Usage: check_units.sh verify DAEMON | security DAEMON | staged | deb
# Exits 0 when every check passed; otherwise prints "FAIL: ..." lines.
set -u

# The highest exposure `systemd-analyze security` may report for the service
# (3.8 when written, systemd 252: 3.6, and 0.2 for Delegate=yes with a
# writable cgroup file system); a hardening option lost pushes it above.
max_exposure=3.9

src=${FORKWATCH_SOURCE_DIR:?FORKWATCH_SOURCE_DIR is not set}
build=${FORKWATCH_BUILD_DIR:-}
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

work=$(mktemp -d "${TMPDIR:-/tmp}/forkwatch-units.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
trap 'exit 1' INT TERM

need_systemd_analyze() {
  if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "FAIL: systemd-analyze not found; install Debian's systemd package" \
      "(apt-get install -y systemd), as the README's test command does"
    exit 1
  fi
}

# Renders the units as an install would, with ExecStart in $1's directory.
render_for() {
  daemon=$1
  if [ ! -x "$daemon" ]; then
    echo "FAIL: $daemon is not built (build the forkwatchd target first);" \
      "systemd-analyze verify needs ExecStart to exist"
    exit 1
  fi
  bindir=$(cd "$(dirname "$daemon")" && pwd) || exit 1
  cmake -DFORKWATCH_BINDIR="$bindir" -DFORKWATCH_DOCDIR="$src/docs" \
    -DFORKWATCH_CONFIG=/etc/forkwatch/programs.json \
    -DFORKWATCH_UNITS_OUT="$work/units" -P "$src/systemd/render_units.cmake" || exit 1
}

check_verify() {
  need_systemd_analyze
  render_for "$1"
  # verify exits 0 on unknown keys and bad values (they are only warnings),
  # so any output at all is a failure.
  out=$(cd "$work/units" && systemd-analyze verify forkwatchd.service forkwatchd.socket forkwatchd-unix.socket 2>&1)
  status=$?
  [ $status -eq 0 ] || fail "systemd-analyze verify exited $status"
  if [ -n "$out" ]; then
    fail "systemd-analyze verify printed:"
    printf '%s\n' "$out" | sed 's/^/    /'
  fi
  grep -q "^ExecStart=$bindir/forkwatchd --config /etc/forkwatch/programs.json\$" \
    "$work/units/forkwatchd.service" || fail "ExecStart was not rendered with the daemon's path"
  if grep -q '@[A-Z_]*@' "$work/units/forkwatchd.service" "$work/units/forkwatchd.socket" "$work/units/forkwatchd-unix.socket"; then
    fail "a @VARIABLE@ was left unrendered"
  fi
}

check_security() {
  need_systemd_analyze
  render_for "$1"
  out=$(systemd-analyze security --offline=yes --threshold="$(echo "$max_exposure" | tr -d .)" \
    "$work/units/forkwatchd.service" 2>&1)
  status=$?
  # The score line: "→ Overall exposure level for forkwatchd.service: 3.8 OK 🙂"
  score=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for forkwatchd.service: \([0-9.]*\).*/\1/p')
  if [ -z "$score" ]; then
    fail "systemd-analyze security printed no exposure level:"
    printf '%s\n' "$out" | tail -n 20 | sed 's/^/    /'
    return
  fi
  echo "forkwatchd.service exposure: $score (at most $max_exposure allowed)"
  if ! awk -v s="$score" -v m="$max_exposure" 'BEGIN { exit !(s <= m) }'; then
    fail "exposure $score is above $max_exposure: a hardening option was lost"
    printf '%s\n' "$out" | grep '✗' | sed 's/^/    /'
  elif [ $status -ne 0 ]; then
    fail "systemd-analyze security exited $status"
  fi
}

# Checks the files an install at $root with prefix $prefix must hold.
# $etc is the directory holding forkwatch/programs.json (/etc for prefix /usr).
check_layout() {
  root=$1 prefix=$2 etc=$3
  for bin in ${FORKWATCH_INSTALLED_BINS:-}; do
    [ -x "$root$prefix/bin/$bin" ] || fail "$prefix/bin/$bin missing"
  done
  for worker in ${FORKWATCH_INSTALLED_WORKERS:-}; do
    [ -x "$root$prefix/libexec/forkwatch/$worker" ] || fail "$prefix/libexec/forkwatch/$worker missing"
  done
  [ -d "$root$prefix/share/forkwatch/web" ] || fail "$prefix/share/forkwatch/web missing"
  if [ -f "$src/web/index.html" ]; then
    cmp -s "$src/web/index.html" "$root$prefix/share/forkwatch/web/index.html" ||
      fail "$prefix/share/forkwatch/web/index.html differs from web/index.html"
  fi
  [ -f "$root$prefix/share/doc/forkwatch/operations.md" ] || fail "operations.md not installed"
  cmp -s "$src/systemd/programs.json" "$root$etc/forkwatch/programs.json" ||
    fail "$etc/forkwatch/programs.json is not the example config"
  unit=$root$prefix/lib/systemd/system/forkwatchd.service
  [ -f "$root$prefix/lib/systemd/system/forkwatchd.socket" ] || fail "forkwatchd.socket missing"
  [ -f "$root$prefix/lib/systemd/system/forkwatchd-unix.socket" ] || fail "forkwatchd-unix.socket missing"
  if [ -f "$unit" ]; then
    grep -q "^ExecStart=$prefix/bin/forkwatchd --config $etc/forkwatch/programs.json\$" "$unit" ||
      fail "ExecStart in the installed unit is not $prefix/bin/forkwatchd --config $etc/...:" \
        "$(grep ^ExecStart= "$unit")"
    grep -q "^Documentation=file:$prefix/share/doc/forkwatch/operations.md\$" "$unit" ||
      fail "Documentation= in the installed unit does not point at $prefix/share/doc"
  else
    fail "forkwatchd.service missing"
  fi
}

# An install copies what the build made: missing programs mean "build first".
need_built() {
  [ -n "$build" ] || { echo "FAIL: FORKWATCH_BUILD_DIR is not set"; exit 1; }
  for program in ${FORKWATCH_INSTALLED_BINS:-} ${FORKWATCH_INSTALLED_WORKERS:-}; do
    if [ ! -x "$build/bin/$program" ]; then
      echo "FAIL: $build/bin/$program is not built; build every target" \
        "(cmake --build $build) before running this test"
      exit 1
    fi
  done
}

check_staged() {
  need_built
  stage=$work/stage
  if ! out=$(cmake --install "$build" --prefix "$stage" 2>&1); then
    fail "cmake --install --prefix $stage failed:"
    printf '%s\n' "$out" | tail -n 20 | sed 's/^/    /'
    return
  fi
  check_layout "" "$stage" "$stage/etc"
  # Installing again over an edited config keeps the edit.
  echo '{"programs": []}' >"$stage/etc/forkwatch/programs.json"
  cmake --install "$build" --prefix "$stage" >/dev/null 2>&1 || fail "second install failed"
  [ "$(cat "$stage/etc/forkwatch/programs.json")" = '{"programs": []}' ] ||
    fail "a second install overwrote an edited programs.json"
  cmp -s "$src/systemd/programs.json" "$stage/etc/forkwatch/programs.json.example" ||
    fail "a second install did not leave programs.json.example beside the edited config"
  case " ${FORKWATCH_INSTALLED_BINS:-} " in
    *" forkwatchd "*) run_staged "$stage" ;;
  esac
}

# Runs the installed daemon from the staging dir with the example config:
# it must find its workers in libexec/forkwatch and serve its dashboard from
# share/forkwatch/web (GET / answers the installed index.html).
run_staged() {
  stage=$1
  command -v curl >/dev/null 2>&1 || { fail "curl not found (apt-get install -y curl)"; return; }
  cp "$src/systemd/programs.json" "$stage/etc/forkwatch/programs.json"
  # The example's echo server wants port 7421, which may be taken here: 0
  # picks a free one; nothing else changes.
  sed -i 's/"--port", "7421"/"--port", "0"/' "$stage/etc/forkwatch/programs.json"
  state=$work/state
  # Run from an unrelated directory with an empty PATH for workers: only the
  # staged libexec/forkwatch can provide them.
  (cd / && exec env PATH=/usr/bin:/bin "$stage/bin/forkwatchd" --listen 127.0.0.1:0 \
    --state-dir "$state" --port-file "$work/port" \
    --config "$stage/etc/forkwatch/programs.json" 2>"$work/daemon.err") &
  daemon=$!
  tries=0
  while [ ! -s "$work/port" ] && [ $tries -lt 600 ] && kill -0 $daemon 2>/dev/null; do
    sleep 0.1
    tries=$((tries + 1))
  done
  if [ ! -s "$work/port" ]; then
    fail "the installed forkwatchd did not start listening:"
    sed 's/^/    /' "$work/daemon.err"
    kill -KILL $daemon 2>/dev/null
    wait $daemon 2>/dev/null
    return
  fi
  url=http://127.0.0.1:$(cat "$work/port")
  token=$(cat "$state/token")
  code=$(curl -sS -o "$work/index.html" -w '%{http_code}' "$url/") || code=none
  [ "$code" = 200 ] || fail "GET / from the installed daemon answered $code"
  cmp -s "$work/index.html" "$stage/share/forkwatch/web/index.html" ||
    fail "GET / did not serve the installed share/forkwatch/web/index.html"
  grep -qi '<html' "$work/index.html" || fail "GET / is not HTML"
  # Both example programs run: their binaries came from libexec/forkwatch.
  tries=0
  running=0
  while [ $tries -lt 300 ]; do
    running=$(curl -sS -H "Authorization: Bearer $token" "$url/api/workers" |
      grep -o '"state": *"running"' | wc -l)
    [ "$running" -ge 2 ] && break
    sleep 0.1
    tries=$((tries + 1))
  done
  if [ "$running" -lt 2 ]; then
    fail "the example programs are not running from $stage/libexec/forkwatch:"
    curl -sS -H "Authorization: Bearer $token" "$url/api/workers" | sed 's/^/    /'
    echo
  fi
  kill -TERM $daemon
  wait $daemon
  status=$?
  [ $status -eq 0 ] || { fail "the installed forkwatchd exited $status on SIGTERM:"; sed 's/^/    /' "$work/daemon.err"; }
}

check_deb() {
  need_built
  for tool in cpack dpkg dpkg-deb; do
    command -v $tool >/dev/null 2>&1 || { echo "FAIL: $tool not found"; exit 1; }
  done
  if ! out=$(cpack --config "$build/CPackConfig.cmake" -G DEB -B "$work/pkg" 2>&1); then
    fail "cpack -G DEB failed:"
    printf '%s\n' "$out" | tail -n 20 | sed 's/^/    /'
    return
  fi
  set -- "$work"/pkg/forkwatch_*.deb
  [ $# -eq 1 ] && [ -f "$1" ] || { fail "expected one forkwatch_*.deb, got: $*"; return; }
  deb=$1

  [ "$(dpkg-deb -f "$deb" Package)" = forkwatch ] || fail "package name is not forkwatch"
  depends=$(dpkg-deb -f "$deb" Depends)
  echo "Depends: $depends"
  for dep in procps libc6; do
    printf '%s' "$depends" | grep -q "\\b$dep\\b" || fail "Depends lacks $dep"
  done
  case " ${FORKWATCH_INSTALLED_BINS:-} " in
    *" forkwatchd "*)
      for dep in libsqlite3-0 libssl3; do
        printf '%s' "$depends" | grep -q "\\b$dep\\b" || fail "Depends lacks $dep"
      done
      # Neither the daemon nor the client links cpp-httplib (only the tests do).
      if printf '%s' "$depends" | grep -q "libcpp-httplib"; then fail "Depends names cpp-httplib"; fi ;;
  esac
  dpkg-deb -I "$deb" conffiles | grep -qx /etc/forkwatch/programs.json ||
    fail "/etc/forkwatch/programs.json is not a conffile"
  if dpkg-deb -c "$deb" | grep -E -q "\./usr/local/|$build|$src"; then
    fail "the package holds /usr/local or build-tree paths:"
    dpkg-deb -c "$deb" | grep -E "\./usr/local/|$build|$src" | sed 's/^/    /'
  fi

  # Install, remove and purge into an empty root with its own dpkg database,
  # so the host is never touched. Maintainer scripts run unchrooted with
  # DPKG_ROOT set, and must not call systemctl then.
  root=$work/root
  mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" || return
  : >"$root/var/lib/dpkg/status"
  dpkg_root() {
    dpkg --root="$root" --log=/dev/null --force-script-chrootless --force-depends \
      --force-not-root "$@"
  }
  if ! out=$(dpkg_root -i "$deb" 2>&1); then
    fail "dpkg -i failed:"
    printf '%s\n' "$out" | sed 's/^/    /'
    return
  fi
  check_layout "$root" /usr /etc
  mkdir -p "$root/var/lib/forkwatch" "$root/etc/systemd/system/multi-user.target.wants"
  echo history >"$root/var/lib/forkwatch/forkwatch.db"
  ln -s /usr/lib/systemd/system/forkwatchd.service \
    "$root/etc/systemd/system/multi-user.target.wants/forkwatchd.service"

  out=$(dpkg_root -r forkwatch 2>&1) || fail "dpkg -r failed: $out"
  left=$(cd "$root" && if [ -d usr ]; then find usr ! -type d | sort; fi)
  [ -z "$left" ] && [ ! -d "$root/usr/libexec/forkwatch" ] ||
    fail "dpkg -r left files behind: $left"
  [ -f "$root/etc/forkwatch/programs.json" ] || fail "dpkg -r removed the conffile"
  [ -f "$root/var/lib/forkwatch/forkwatch.db" ] || fail "dpkg -r removed the recorded history"

  out=$(dpkg_root -P forkwatch 2>&1) || fail "dpkg -P failed: $out"
  [ ! -e "$root/etc/forkwatch" ] || fail "dpkg -P left /etc/forkwatch"
  [ ! -e "$root/var/lib/forkwatch" ] || fail "dpkg -P left /var/lib/forkwatch"
  [ ! -L "$root/etc/systemd/system/multi-user.target.wants/forkwatchd.service" ] ||
    fail "dpkg -P left the enablement symlink"
  dpkg --root="$root" -s forkwatch >/dev/null 2>&1 && fail "dpkg still knows forkwatch after purge"
}

case "${1:-}" in
  verify) check_verify "${2:?usage: check_units.sh verify DAEMON}" ;;
  security) check_security "${2:?usage: check_units.sh security DAEMON}" ;;
  staged) check_staged ;;
  deb) check_deb ;;
  *) echo "usage: check_units.sh verify DAEMON | security DAEMON | staged | deb" >&2; exit 2 ;;
esac
[ $failures -eq 0 ] || { echo "$failures check(s) failed"; exit 1; }
echo "ok"
