// The dashboard's pure modules (no browser): wait statuses in words, argument
// splitting, and the tree model that the virtual list and the drawing use.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  describeWait, describeCause, splitArgs, quoteArg, formatArgv, formatBytes, formatDuration, signalName,
} from '../../web/js/format.js';
import { TreeModel, icicleLayout, kPatched, kReshaped, kStale } from '../../web/js/tree_model.js';

const wait = (over) => ({
  wifexited: false, wexitstatus: 0, wifsignaled: false, wtermsig: 0, wcoredump: false,
  wifstopped: false, wstopsig: 0, wifcontinued: false, raw_status: 0, ...over,
});

test('wait statuses read as words', () => {
  assert.equal(describeWait(wait({ wifexited: true, wexitstatus: 12 })), 'exited 12');
  assert.equal(describeWait(wait({ wifsignaled: true, wtermsig: 11, wcoredump: true })),
    'killed by SIGSEGV, core dumped');
  assert.equal(describeWait(wait({ wifsignaled: true, wtermsig: 15 })), 'killed by SIGTERM');
  assert.equal(describeWait(wait({ wifstopped: true, wstopsig: 19 })), 'stopped by SIGSTOP');
  assert.equal(describeWait(wait({ wifcontinued: true })), 'continued');
  assert.equal(signalName(34), 'SIGRTMIN');
  assert.equal(signalName(36), 'SIGRTMIN+2');
});

test('arguments split like a shell and quote back', () => {
  assert.deepEqual(splitArgs('--code 12').args, ['--code', '12']);
  assert.deepEqual(splitArgs(`'<img src=x onerror=alert(1)>'`).args, ['<img src=x onerror=alert(1)>']);
  assert.deepEqual(splitArgs(`a "b c" d\\ e ''`).args, ['a', 'b c', 'd e', '']);
  assert.match(splitArgs(`"open`).error, /unclosed/);
  const tricky = ['plain', 'with space', `it's`, '', '<b>"x"</b>', 'back\\slash'];
  assert.deepEqual(splitArgs(formatArgv(tricky)).args, tricky);
  assert.equal(quoteArg('--port'), '--port');
});

test('sizes and durations are short', () => {
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(1536), '1.50 KiB');
  assert.equal(formatBytes(300 * 1024 * 1024), '300 MiB');
  assert.equal(formatDuration(59), '59s');
  assert.equal(formatDuration(3725), '1h 02m');
});

function node(pid, children = [], threads = [], extra = {}) {
  return { pid, ppid: 0, comm: `p${pid}`, cmdline: `p${pid} --x`, state: 'S', cpu_percent: 0, rss_bytes: 4096,
    worker_id: null, worker_name: null, threads, children, ...extra };
}

test('flatten draws htop guides, threads first, and honours collapse', () => {
  const t = (tid, name) => ({ tid, name, state: 'S', cpu_percent: 0 });
  const roots = [node(1, [node(2, [node(4)], [t(2, 'main'), t(3, 'spawn-1')]), node(5)])];
  const m = new TreeModel();
  m.threadsDefault = true;
  m.setTree(roots);
  const lines = m.flatten().map((r) => `${r.guide}${r.thread ? `~${r.thread.name}` : r.node.pid}`);
  assert.deepEqual(lines, ['1', '├─ 2', '│  ├─ ~main', '│  ├─ ~spawn-1', '│  └─ 4', '└─ 5']);
  m.toggleThreads(2);
  m.toggleChildren(2);
  assert.deepEqual(m.flatten().map((r) => r.node.pid), [1, 2, 5]);
  assert.equal(m.processes, 4);
  assert.equal(m.threads, 5);
});

test('a filter keeps matches and their ancestors, and finds threads by name', () => {
  const roots = [node(1, [node(2, [node(3, [], [], { comm: 'needle' })]), node(4, [], [
    { tid: 4, name: 'p4', state: 'S', cpu_percent: 0 }, { tid: 9, name: 'worker-thread', state: 'R', cpu_percent: 5 }])])];
  const m = new TreeModel();
  m.setTree(roots);
  m.collapsed.add(2);  // a collapsed subtree still shows its match
  m.filter = 'NEEDLE';
  assert.deepEqual(m.flatten().map((r) => [r.node.pid, r.hit]), [[1, false], [2, false], [3, true]]);
  m.filter = 'worker-thread';
  const rows = m.flatten();
  assert.deepEqual(rows.map((r) => (r.thread ? `t${r.thread.tid}` : r.node.pid)), [1, 4, 't9']);
});

test('a fork chain 20,000 deep flattens without recursion', () => {
  let leaf = node(20000);
  for (let pid = 19999; pid >= 1; pid -= 1) leaf = node(pid, [leaf]);
  const m = new TreeModel();
  m.setTree([leaf]);
  const rows = m.flatten();
  assert.equal(rows.length, 20000);
  assert.equal(rows[19999].depth, 19999);
  assert.equal(icicleLayout([leaf]).depth, 19999);
});

test('patch reports a pid it does not know as stale, and a changed thread count with no list as that process\'s', () => {
  const m = new TreeModel();
  m.setTree([node(1, [node(2, [], [{ tid: 2 }, { tid: 3 }])])]);
  assert.equal(m.patch([{ pid: 1, state: 'R', cpu_percent: 50, rss_bytes: 8192, num_threads: 1 }]), kPatched);
  assert.deepEqual(m.threadsUnknown, []);
  assert.equal(m.byPid.get(1).cpu_percent, 50);
  // A third thread, with no list: the tree holds; that process's threads are asked for.
  assert.equal(m.patch([{ pid: 2, state: 'S', cpu_percent: 0, rss_bytes: 1, num_threads: 3 }]), kPatched);
  assert.deepEqual(m.threadsUnknown, [2]);
  const threadsBefore = m.threads;
  assert.equal(m.setThreads(2, [{ tid: 2, name: 'a' }, { tid: 3, name: 'b' }, { tid: 4, name: 'c' }]), true);
  assert.deepEqual(m.byPid.get(2).threads.map((t) => t.tid), [2, 3, 4]);
  assert.equal(m.threads, threadsBefore + 1);
  assert.equal(m.setThreads(2, [{ tid: 2, name: 'a' }, { tid: 3, name: 'b' }, { tid: 4, name: 'c' }]), false);
  assert.equal(m.setThreads(77, []), false);
  assert.equal(m.patch([{ pid: 99, state: 'S', cpu_percent: 0, rss_bytes: 1, num_threads: 1 }]), kStale);
});

test('patch copies sampled thread figures, and a different thread list replaces the old', () => {
  const m = new TreeModel();
  const t = (tid, name) => ({ tid, name, state: 'S', cpu_percent: 0 });
  m.threadsDefault = true;
  m.setTree([node(1, [node(2, [], [t(2, 'main'), t(3, 'spawn-1')])])]);
  assert.equal(m.threads, 3);
  const busy = { pid: 2, state: 'R', cpu_percent: 99, rss_bytes: 1, num_threads: 2 };
  assert.equal(m.patch([{ ...busy, threads: [t(2, 'main'), { ...t(3, 'spawn-1'), state: 'R', cpu_percent: 98.5 }] }]), kPatched);
  const threads = m.byPid.get(2).threads;
  assert.deepEqual(threads.map((x) => [x.tid, x.state, x.cpu_percent]), [[2, 'S', 0], [3, 'R', 98.5]]);
  // A client thread came: the list is replaced, names and all, and counted.
  assert.equal(m.patch([{ ...busy, num_threads: 3, threads: [t(2, 'main'), t(3, 'spawn-1'), t(7, 'client-1')] }]), kReshaped);
  assert.deepEqual(m.byPid.get(2).threads.map((x) => x.name), ['main', 'spawn-1', 'client-1']);
  assert.equal(m.threads, 4);
  assert.equal(m.flatten().filter((r) => r.thread).length, 3);
  // Back to one thread: a one-entry list, counted as the process alone.
  assert.equal(m.patch([{ ...busy, num_threads: 1, threads: [t(2, 'main')] }]), kReshaped);
  assert.equal(m.threads, 2);
  // A pid the tree lacks still wins over a reshaped list.
  assert.equal(m.patch([{ ...busy, threads: [t(2, 'main'), t(9, 'x')] }, { ...busy, pid: 42 }]), kStale);
});

test('patch takes a new name and command line after an exec, and the filter sees them', () => {
  const m = new TreeModel();
  m.setTree([node(1, [node(2, [], [], { comm: 'sh', cmdline: 'sh -c exec sleep 300' })])]);
  m.filter = 'sleep 300';
  assert.deepEqual(m.flatten().map((r) => r.node.pid), [1, 2]);
  const after = { pid: 2, state: 'S', cpu_percent: 0, rss_bytes: 1, num_threads: 1 };
  assert.equal(m.patch([{ ...after, comm: 'sleep', cmdline: 'sleep 300' }]), kReshaped);
  assert.equal(m.byPid.get(2).comm, 'sleep');
  assert.equal(m.byPid.get(2).cmdline, 'sleep 300');
  m.filter = 'sh -c';
  assert.deepEqual(m.flatten().map((r) => r.node.pid), []);
  // Without the fields, the name stays.
  assert.equal(m.patch([after]), kPatched);
  assert.equal(m.byPid.get(2).comm, 'sleep');
});

test('the icicle shares width by leaves', () => {
  const roots = [node(1, [node(2, [node(3), node(4), node(5)]), node(6)])];
  const { cells, depth } = icicleLayout(roots);
  const by = new Map(cells.map((c) => [c.node.pid, c]));
  assert.equal(depth, 2);
  assert.equal(by.get(1).x1 - by.get(1).x0, 1);
  assert.ok(Math.abs(by.get(2).x1 - by.get(2).x0 - 0.75) < 1e-9);
  assert.ok(Math.abs(by.get(6).x0 - 0.75) < 1e-9);
});

test('describeCause says why a process ended, and falls back to the status', () => {
  assert.equal(describeCause(wait({ wifsignaled: true, wtermsig: 9, cause: 'stop_timeout_killed' })),
    'killed by SIGKILL after its stop timeout');
  assert.equal(describeCause(wait({ wifsignaled: true, wtermsig: 15, cause: 'stop_requested' })),
    'stopped by request (killed by SIGTERM)');
  assert.equal(describeCause(wait({ wifexited: true, wexitstatus: 3, cause: 'exited' })), 'exited 3');
  assert.equal(describeCause(wait({ wifexited: true, wexitstatus: 3 })), 'exited 3');
});
