// Words and numbers for people: wait statuses, signal names, sizes, durations.
// Pure functions, no DOM, so node's test runner checks them directly.

// Linux signal numbers (signal(7), x86 and arm; the daemon runs on Linux only).
const kSignalNames = [
  null, 'SIGHUP', 'SIGINT', 'SIGQUIT', 'SIGILL', 'SIGTRAP', 'SIGABRT', 'SIGBUS', 'SIGFPE',
  'SIGKILL', 'SIGUSR1', 'SIGSEGV', 'SIGUSR2', 'SIGPIPE', 'SIGALRM', 'SIGTERM', 'SIGSTKFLT',
  'SIGCHLD', 'SIGCONT', 'SIGSTOP', 'SIGTSTP', 'SIGTTIN', 'SIGTTOU', 'SIGURG', 'SIGXCPU',
  'SIGXFSZ', 'SIGVTALRM', 'SIGPROF', 'SIGWINCH', 'SIGIO', 'SIGPWR', 'SIGSYS',
];
const kSigRtMin = 34;  // glibc's SIGRTMIN (the kernel's 32 and 33 are taken by NPTL)

export function signalName(n) {
  if (Number.isInteger(n) && n > 0 && n < kSignalNames.length) return kSignalNames[n];
  if (Number.isInteger(n) && n >= kSigRtMin && n <= 64) {
    return n === kSigRtMin ? 'SIGRTMIN' : `SIGRTMIN+${n - kSigRtMin}`;
  }
  return `signal ${n}`;
}

// The signals the worker menu offers, most useful first.
export const kMenuSignals = [
  'SIGSTOP', 'SIGCONT', 'SIGTERM', 'SIGINT', 'SIGHUP', 'SIGUSR1', 'SIGUSR2',
  'SIGQUIT', 'SIGABRT', 'SIGSEGV', 'SIGKILL',
];

// A wait-status record (the eight macros) in words: "exited 12",
// "killed by SIGSEGV, core dumped", "stopped by SIGSTOP", "continued".
export function describeWait(w) {
  if (!w) return '';
  if (w.wifexited) return `exited ${w.wexitstatus}`;
  if (w.wifsignaled) {
    return `killed by ${signalName(w.wtermsig)}${w.wcoredump ? ', core dumped' : ''}`;
  }
  if (w.wifstopped) return `stopped by ${signalName(w.wstopsig)}`;
  if (w.wifcontinued) return 'continued';
  return `status ${w.raw_status}`;
}

// Why it ended (the row's `cause`), in words, with the status: "stopped by
// request (killed by SIGTERM)", "killed by SIGKILL after its stop timeout".
// The causes the status alone tells need no more words than describeWait's.
const kCauseWords = {
  stop_requested: (st) => `stopped by request (${st})`,
  stop_timeout_killed: () => 'killed by SIGKILL after its stop timeout',
  shutdown: (st) => `stopped at daemon shutdown (${st})`,
  memory_restart: (st) => `restarted: over its memory_restart (${st})`,
  oom_kill: () => 'OOM killed',
  health_check: (st) => `restarted: health check failed (${st})`,
  watchdog: (st) => `killed: no watchdog keep-alive in time (${st})`,
  start_timeout: (st) => `killed: not ready within its start timeout (${st})`,
};

export function describeCause(w) {
  if (!w) return '';
  const words = kCauseWords[w.cause];
  return words ? words(describeWait(w)) : describeWait(w);
}

// "ok", "bad" or "paused": how a status should be coloured.
export function waitTone(w) {
  if (!w) return 'none';
  if (w.wifexited) return w.wexitstatus === 0 ? 'ok' : 'bad';
  if (w.wifsignaled) return 'bad';
  if (w.wifstopped) return 'paused';
  return 'ok';
}

const kUnits = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

// 1536 -> "1.5 KiB"; three significant digits at most.
export function formatBytes(n) {
  if (!Number.isFinite(n) || n < 0) return '';
  let u = 0;
  while (n >= 1024 && u < kUnits.length - 1) {
    n /= 1024;
    u += 1;
  }
  const digits = u === 0 || n >= 100 ? 0 : n >= 10 ? 1 : 2;
  return `${n.toFixed(digits)} ${kUnits[u]}`;
}

export function formatPercent(p) {
  if (!Number.isFinite(p)) return '';
  return p.toFixed(1);
}

// 3725 s -> "1h 02m"; shortest form that still says enough.
export function formatDuration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return '';
  const s = Math.floor(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d ${String(h % 24).padStart(2, '0')}h`;
}

// Microseconds of CPU time as seconds with three decimals.
export function formatMicros(us) {
  if (!Number.isFinite(us)) return '';
  return (us / 1e6).toFixed(3);
}

// CLOCK_REALTIME nanoseconds -> "14:03:07.123" (local time), with the date
// in front when it is not today.
export function formatTime(ns, now = Date.now()) {
  if (!Number.isFinite(ns) || ns <= 0) return '';
  const d = new Date(Math.floor(ns / 1e6));
  const pad = (v, n = 2) => String(v).padStart(n, '0');
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  const today = new Date(now);
  if (d.toDateString() === today.toDateString()) return time;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}

// /proc state letters (proc(5)) in words, for tooltips.
const kStates = {
  R: 'running', S: 'sleeping', D: 'disk sleep', T: 'stopped', t: 'tracing stop',
  Z: 'zombie', X: 'dead', I: 'idle', P: 'parked', W: 'waking', K: 'wakekill',
};
export function stateWord(letter) {
  return kStates[letter] ?? letter ?? '';
}

// Splits an argument line the way a shell would for plain words: spaces
// separate, '…' and "…" group, a backslash escapes the next character.
// Returns {args} or {error}.
export function splitArgs(line) {
  const args = [];
  let cur = '';
  let inWord = false;
  let quote = null;
  for (let i = 0; i < line.length; i += 1) {
    const c = line[i];
    if (quote) {
      if (c === quote) {
        quote = null;
      } else if (c === '\\' && quote === '"' && i + 1 < line.length && '"\\'.includes(line[i + 1])) {
        i += 1;
        cur += line[i];
      } else {
        cur += c;
      }
      continue;
    }
    if (c === '\'' || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === '\\') {
      if (i + 1 < line.length) {
        i += 1;
        cur += line[i];
      }
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) args.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quote) return { error: `unclosed ${quote} quote` };
  if (inWord) args.push(cur);
  return { args };
}

// A stable hue (0..359) for a worker id, so its rows, blocks and lines match.
export function workerHue(id) {
  // Golden-angle steps keep neighbouring ids apart.
  return Math.round((Number(id) * 137.508) % 360);
}

// One argv element as a person would type it back: bare when plain,
// otherwise in single quotes (the inverse of splitArgs).
export function quoteArg(a) {
  const s = String(a);
  if (s !== '' && /^[\w@%+=:,./-]+$/.test(s)) return s;
  return `'${s.replace(/'/g, '\'\\\'\'')}'`;
}

export function formatArgv(argv) {
  return Array.isArray(argv) ? argv.map(quoteArg).join(' ') : '';
}
