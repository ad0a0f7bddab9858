// What a worker's page says about a worker, as plain data: its exits'
// causes in words, and its identity, limits, readiness and health fields as
// [label, value] pairs. Fields that the daemon does not send (older
// daemons, features not configured) are left out, never shown as blanks.
// Pure functions, no DOM: node's test runner checks them directly.

import { formatBytes, formatTime } from './format.js';

// wait_status `cause` (CONTRACT.md, "Running services safely").
const kCauses = {
  exited: 'ended on its own',
  signaled: 'ended on its own, by a signal',
  stopped: 'stopped by a signal',
  continued: 'continued by a signal',
  stop_requested: 'stopped on request',
  stop_timeout_killed: 'killed after the stop timeout',
  shutdown: 'stopped by the daemon\'s shutdown',
  memory_restart: 'restarted: memory over its limit',
  oom_kill: 'killed by the kernel\'s OOM killer',
  health_check: 'restarted: health check failed',
  watchdog: 'restarted: watchdog not fed',
  start_timeout: 'not ready before its start timeout',
};

// A cause code in words; an unknown code is shown as it came, for a newer daemon.
export function causeWords(cause) {
  if (cause === null || cause === undefined || cause === '') return '';
  return kCauses[cause] ?? String(cause);
}

const present = (v) => v !== undefined && v !== null && v !== '';

// A limit as setrlimit sees it: a number (soft = hard), [soft, hard] or "unlimited".
export function limitText(v) {
  if (Array.isArray(v)) return v.map(limitText).join(' / ');
  return String(v);
}

function bytesOrText(v) {
  return typeof v === 'number' ? `${formatBytes(v)} (${v} B)` : String(v);
}

// Identity and limits, from the worker (what the process really got) first,
// then the program's config (what was asked for).
export function identityFields(w = {}, p = {}) {
  const out = [];
  const pick = (key) => (present(w[key]) ? w[key] : p[key]);
  const add = (label, v, fmt = String) => {
    if (present(v)) out.push([label, fmt(v)]);
  };
  add('user', pick('user'));
  add('uid', w.uid);
  add('group', pick('group'));
  add('gid', w.gid);
  add('umask', pick('umask'));
  add('nice', pick('nice'));
  add('oom_score_adj', pick('oom_score_adj'));
  add('no_new_privs', pick('no_new_privs'), (v) => (v ? 'yes' : 'no'));
  add('cgroup', w.cgroup);
  add('paused', w.paused, (v) => (v ? 'yes' : 'no'));
  if (w.processes_left > 0) add('processes left', w.processes_left, (n) => `${n} (the main process has exited)`);
  // Read from the worker's cgroup when its page is fetched (GET /api/workers/{id}).
  const c = w.cgroup_stats;
  if (c && typeof c === 'object') {
    add('cgroup CPU', c.cpu_usage_usec, (us) => `${(us / 1e6).toFixed(3)} s (user ${(c.cpu_user_usec / 1e6).toFixed(3)}, system ${(c.cpu_system_usec / 1e6).toFixed(3)}; reaped children included)`);
    add('cgroup processes', c.processes);
    add('cgroup memory', c.memory_current_bytes, bytesOrText);
    add('cgroup pids', c.pids_current);
    add('CPU pressure', c.cpu_pressure_total_us, (us) => `${(us / 1e6).toFixed(3)} s stalled`);
    add('memory pressure', c.memory_pressure_total_us, (us) => `${(us / 1e6).toFixed(3)} s stalled`);
    add('I/O pressure', c.io_pressure_total_us, (us) => `${(us / 1e6).toFixed(3)} s stalled`);
    add('OOM kills', c.oom_kills);
  }
  for (const why of w.limits_not_enforced ?? []) add('not enforced', why);
  const limits = pick('limits');
  if (limits && typeof limits === 'object') {
    for (const [k, v] of Object.entries(limits)) add(`limit ${k}`, v, limitText);
  }
  add('memory_max', pick('memory_max'), bytesOrText);
  add('memory_high', pick('memory_high'), bytesOrText);
  add('pids_max', pick('pids_max'));
  add('cpu_max', pick('cpu_max'), (v) => (typeof v === 'number' ? `${v} of one core` : String(v)));
  add('memory_restart', pick('memory_restart'), bytesOrText);
  add('env_file', pick('env_file'));
  add('pid_file', pick('pid_file'));
  return out;
}

// Readiness and health (CONTRACT.md, "Readiness, health, order").
export function readinessFields(w = {}, p = {}) {
  const out = [];
  const add = (label, v, fmt = String) => {
    if (present(v)) out.push([label, fmt(v)]);
  };
  add('ready', w.ready, (v) => (v ? 'yes' : 'no'));
  add('ready at', w.ready_at_ns, (v) => formatTime(v));
  add('status', w.status_text);
  add('health', w.health);
  add('waiting for', w.waiting_for);
  add('ready check', p.ready, (v) => JSON.stringify(v));
  add('health check', p.health, (v) => JSON.stringify(v));
  add('start_timeout_ms', p.start_timeout_ms);
  add('watchdog_ms', p.watchdog_ms);
  add('depends_on', p.depends_on, (v) => JSON.stringify(v));
  return out;
}
