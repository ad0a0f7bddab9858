// The operator modules' pure parts (no browser): output escaped exactly as
// the daemon's escape_control does, exit causes in words, and the identity
// and readiness fields taken from whatever the daemon sends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { controlSegments, escapeControl } from '../../web/js/untrusted.js';
import { causeWords, identityFields, limitText, readinessFields } from '../../web/js/worker_fields.js';

test('control characters become the escapes forkwatch logs prints', () => {
  // The same cases as tests/unit/untrusted_text_test.cpp, as far as they survive JSON.
  assert.equal(escapeControl('\x1b[31mred\x1b[0m'), '\\x1b[31mred\\x1b[0m');
  assert.equal(escapeControl('a\nb\rc\td'), 'a\\nb\\rc\\td');
  assert.equal(escapeControl('\x7f\u009b\u202e\u2066\u061c'), '\\x7f\\u009b\\u202e\\u2066\\u061c');
  assert.equal(escapeControl('<b>x</b> \\x41 ünï 日本'), '<b>x</b> \\x41 ünï 日本');
  // What the daemon sent for bytes that are not UTF-8 is kept, and marked as one piece.
  assert.deepEqual(controlSegments('\ufffd\ufffdbad\x07'), [['\ufffd\ufffd', true], ['bad', false], ['\\x07', true]]);
  assert.deepEqual(controlSegments(''), []);
});

test('exit causes read as words; unknown ones as they came', () => {
  assert.equal(causeWords('stop_timeout_killed'), 'killed after the stop timeout');
  assert.equal(causeWords('oom_kill'), 'killed by the kernel\'s OOM killer');
  assert.equal(causeWords('from_the_future'), 'from_the_future');
  assert.equal(causeWords(undefined), '');
});

test('identity and limits: what the worker reports first, the config after, missing fields left out', () => {
  assert.deepEqual(identityFields({}, {}), []);
  const w = { user: 'nobody', uid: 65534, gid: 65534, cgroup: null, paused: false };
  const p = { user: 'www', umask: '0027', limits: { nofile: [1024, 4096], core: 'unlimited' }, memory_max: 268435456 };
  assert.deepEqual(identityFields(w, p), [
    ['user', 'nobody'], ['uid', '65534'], ['gid', '65534'], ['umask', '0027'], ['paused', 'no'],
    ['limit nofile', '1024 / 4096'], ['limit core', 'unlimited'], ['memory_max', '256 MiB (268435456 B)'],
  ]);
  // The cgroup's own figures, where the daemon read them; a limit it could not apply says so.
  const inCgroup = {
    cgroup: 'w-3', paused: true, processes_left: 2, limits_not_enforced: ['memory_max: no memory controller'],
    cgroup_stats: { cpu_usage_usec: 1500000, cpu_user_usec: 1000000, cpu_system_usec: 500000, processes: 2,
      cpu_pressure_total_us: 250000, memory_pressure_total_us: null, io_pressure_total_us: null,
      memory_current_bytes: null, pids_current: null, oom_kills: null },
  };
  assert.deepEqual(identityFields(inCgroup, {}), [
    ['cgroup', 'w-3'], ['paused', 'yes'], ['processes left', '2 (the main process has exited)'],
    ['cgroup CPU', '1.500 s (user 1.000, system 0.500; reaped children included)'], ['cgroup processes', '2'],
    ['CPU pressure', '0.250 s stalled'], ['not enforced', 'memory_max: no memory controller'],
  ]);
  assert.equal(limitText(64), '64');
  assert.deepEqual(readinessFields({ ready: true, health: 'healthy', waiting_for: null }, { ready: { tcp: 8080 } }),
    [['ready', 'yes'], ['health', 'healthy'], ['ready check', '{"tcp":8080}']]);
});
