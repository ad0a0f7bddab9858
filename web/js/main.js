// The dashboard's wiring: loads the first picture over REST, then keeps it
// current from the event stream alone (no polling loop, no reloads).
//
// Performance marks (read by bench/dashboard_render.mjs): fw:first-tree when
// the first tree is on screen; measures fw:tree-update (parse, model, draw
// after a refetch) and fw:sample-update (one sample event applied).

import { api, ApiError } from './api.js';
import { $, h, setText } from './dom.js';
import { formatArgv, formatBytes, formatPercent, stateWord } from './format.js';
import { FdsView } from './fds_view.js';
import { HistoryView } from './history_view.js';
import { Icicle } from './icicle.js';
import { LifetimesView } from './lifetimes_view.js';
import { LiveFeed } from './live.js';
import { TreeModel, kReshaped, kStale } from './tree_model.js';
import { TreeView } from './tree_view.js';
import { WorkersView } from './workers_view.js';
import { WorkerPage } from './worker_page.js';
import { DepsView } from './deps_view.js';

const state = {
  scope: 'supervised',
  treeLoading: false,
  treeAgain: false,
  firstTree: true,
  workersTimer: 0,
  workersLoading: false,
  workersAgain: false,
  noticeTimer: 0,
  past: false,  // the slider shows a past tree: live samples wait
};

const model = new TreeModel();
model.threadsDefault = true;
model.threadsWorkersOnly = true;  // the daemon's own threads are rarely the point

function notify(message, tone = 'ok') {
  const el = $('#notice');
  setText(el, message);
  el.className = `notice tone-${tone}`;
  clearTimeout(state.noticeTimer);
  state.noticeTimer = setTimeout(() => setText(el, ''), tone === 'bad' ? 12000 : 5000);
}

const workersView = new WorkersView($('#workers'), {
  notify,
  refresh: () => scheduleWorkers(),
  onOpen: (id, button) => workerPage.open(id, button),
  onChange: () => {
    historyView.setWorkers([...workersView.workers.values()]);
    depsView.render([...workersView.programs.values()], [...workersView.workers.values()]);
    treeView.refresh();
    if (workerPage.id !== null && !workersView.workers.has(workerPage.id)) workerPage.close();
  },
});
const workerPage = new WorkerPage({ workers: workersView, notify });
const depsView = new DepsView($('#deps'));
const historyView = new HistoryView($('#history'), { notify });
const fdsView = new FdsView({
  onSelect: (pid) => select(pid, false),
  name: (pid) => model.byPid.get(pid)?.comm,
});

const treeView = new TreeView($('#tree-viewport'), {
  onToggle: (pid) => {
    model.toggleChildren(pid);
    drawRows();
  },
  onThreads: (pid) => {
    model.toggleThreads(pid);
    drawRows();
  },
  onSelect: (pid) => select(pid, false),
  onOpen: (workerId) => workerPage.open(workerId, $('#tree-viewport')),
  workerInfo: (id) => workersView.info(id),
  threadsShown: (n) => model.threadsShown(n),
});

const icicle = new Icicle($('#graph-host'), {
  onSelect: (pid) => select(pid, true),
  tooltip: $('#graph-tip'),
});

const lifetimesView = new LifetimesView($('#lifetimes'), {
  // The slider: a past tree replaces the live one until it is let go.
  onPastTree: (roots) => {
    state.past = roots !== null;
    if (roots) applyTree(roots);
    else loadTree();
  },
});

// ---- the tree

// Resolves after the next frame has been produced (rAF runs just before it).
const nextFrame = () => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));

function drawRows() {
  treeView.setRows(model.flatten());
  setText($('#tree-count'), `${model.processes} processes · ${model.threads} threads`);
}

function applyTree(roots) {
  model.setTree(roots);
  drawRows();
  icicle.setTree(model.roots);
  if (treeView.selected !== null && !model.byPid.has(treeView.selected)) showDetails(null);
}

async function loadTree() {
  if (state.past) return;
  if (state.treeLoading) {
    state.treeAgain = true;
    return;
  }
  state.treeLoading = true;
  const scope = state.scope;
  try {
    const res = await fetch(`/api/tree?scope=${scope}`, { credentials: 'same-origin' });
    const text = await res.text();
    if (!res.ok) throw new ApiError(res.status, 'tree', safeMessage(text, res.status));
    if (scope !== state.scope) return;
    const t0 = performance.now();
    applyTree(JSON.parse(text));
    performance.measure('fw:tree-update', { start: t0, end: performance.now() });
    if (state.firstTree) {
      state.firstTree = false;
      performance.mark('fw:first-tree');
      // The frame after: the tree is painted.
      nextFrame().then(() => performance.mark('fw:first-tree-painted'));
    }
  } catch (e) {
    // Not signed in: the banner says so once, not every panel.
    if (!(e instanceof ApiError && e.status === 401)) notify(`process tree: ${e.message}`, 'bad');
  } finally {
    state.treeLoading = false;
    if (state.treeAgain) {
      state.treeAgain = false;
      loadTree();
    }
  }
}

function safeMessage(text, status) {
  try {
    return JSON.parse(text).error.message;
  } catch {
    return `HTTP ${status}`;
  }
}

async function select(pid, fromGraph) {
  treeView.select(pid, { scroll: true });
  if (fromGraph) $('#tree-viewport').focus({ preventScroll: true });
  showDetails(pid);
}

async function showDetails(pid) {
  const box = $('#tree-details');
  const n = pid === null ? null : model.byPid.get(pid);
  if (!n) {
    box.replaceChildren();
    return;
  }
  const line = (label, value) => h('span', { class: 'kv' }, h('span', { class: 'k' }, label), ' ', h('span', { class: 'v' }, value));
  const head = h('div', { class: 'details-head' },
    h('strong', {}, n.comm), ' ',
    line('pid', n.pid), line('ppid', n.ppid), line('pgid', n.pgid),
    line('state', `${n.state} ${stateWord(n.state)}`), line('CPU', `${formatPercent(n.cpu_percent)}%`),
    line('RSS', formatBytes(n.rss_bytes)), line('threads', n.threads.length || 1),
    line('children', n.children.length),
    n.fds !== null && n.fds !== undefined ? line('fds', n.fds) : null,
    n.worker_id !== null && n.worker_id !== undefined ? line('worker', `${n.worker_name} (id ${n.worker_id})`) : null);
  const argv = h('div', { class: 'argv' }, h('span', { class: 'dim' }, 'cmdline '), n.cmdline || `[${n.comm}]`);
  const fds = h('div', { class: 'fds-box' });
  box.replaceChildren(head, argv, fds);
  // Only for a process somebody opened: the daemon reads its descriptors on request.
  fdsView.show(fds, pid, () => treeView.selected === pid);
  try {
    const p = await api.process(pid);
    if (treeView.selected !== pid) return;
    argv.replaceChildren(h('span', { class: 'dim' }, `argv (${p.argv.length}) `),
      ...p.argv.map((a) => h('code', { class: 'arg' }, a)));
    argv.title = formatArgv(p.argv);
    head.append(line('sid', p.sid), line('utime', `${p.utime_ticks} ticks`), line('stime', `${p.stime_ticks} ticks`));
  } catch {
    // Outside the supervised tree the daemon keeps no detail; the tree's own fields stay.
  }
}

// ---- workers and programs

// One refetch at a time, the latest answer last: replies to several requests
// on separate connections could otherwise arrive out of order.
function scheduleWorkers() {
  if (state.workersTimer) return;
  if (state.workersLoading) {
    state.workersAgain = true;
    return;
  }
  // Several events usually arrive together (exit, state, spawn): one refetch.
  state.workersTimer = setTimeout(async () => {
    state.workersTimer = 0;
    state.workersLoading = true;
    try {
      workersView.setWorkers(await api.workers());
    } catch (e) {
      notify(`workers: ${e.message}`, 'bad');
    } finally {
      state.workersLoading = false;
      if (state.workersAgain) {
        state.workersAgain = false;
        scheduleWorkers();
      }
    }
  }, 40);
}

// ---- the event stream

function onEvent(type, d, id) {
  if (id && $('#conn').dataset.state === 'live') setText($('#conn-text'), `live · #${id}`);
  workerPage.noteEvent(type, d);
  switch (type) {
    case 'sample':
      if (!state.past) onSample(d);
      break;
    case 'process':
      lifetimesView.onEvent(d);
      break;
    case 'exit':
    case 'stop':
    case 'continue':
    case 'adopt':
      if (type === 'exit') workersView.noteEvent(type, d);
      if (d.wait) {
        workersView.noteWait(d.wait);
        historyView.live(d.wait);
      }
      if (d.worker_id !== null && type !== 'adopt') scheduleWorkers();
      break;
    default:  // spawn, restart, state
      workersView.noteEvent(type, d);
      scheduleWorkers();
  }
}

function onSample(d) {
  const t0 = performance.now();
  workersView.tick(d.ts_ns);
  workersView.addSamples(d.workers ?? [], d.ts_ns);
  workerPage.addSamples(d.workers ?? [], d.ts_ns);
  if (state.scope === 'all') {
    // Sample events describe the supervised part only; the rest needs the tree.
    loadTree();
  } else if ((d.added && d.added.length) || (d.removed && d.removed.length)) {
    loadTree();
  } else {
    const patched = model.patch(d.nodes ?? []);
    if (patched === kStale) {
      loadTree();
    } else {
      if (patched === kReshaped) drawRows();
      else treeView.refresh();
      icicle.repaint();
      for (const pid of model.threadsUnknown) loadThreads(pid);
    }
  }
  historyView.settle();
  performance.measure('fw:sample-update', { start: t0, end: performance.now() });
}

// One process whose thread count changed unseen: its threads alone, not the
// whole tree (GET /api/processes/{pid}); gone meanwhile, the tree after all.
async function loadThreads(pid) {
  try {
    const p = await api.process(pid);
    if (model.setThreads(pid, p.threads ?? [])) {
      drawRows();
      icicle.repaint();
    }
  } catch {
    loadTree();
  }
}

function setConn(stateName, detail) {
  const el = $('#conn');
  el.dataset.state = stateName;
  el.title = detail;
  setText($('#conn-text'), stateName === 'live' && live.lastId ? `live · #${live.lastId}` : stateName);
}

const live = new LiveFeed({
  onEvent,
  onStatus: setConn,
  onResync: () => {
    // The replay brought the events; the tree and the worker list are state, not events.
    loadTree();
    scheduleWorkers();
    historyView.first();
  },
});

// ---- controls

function setupControls() {
  for (const radio of document.querySelectorAll('input[name=scope]')) {
    radio.addEventListener('change', () => {
      if (!radio.checked) return;
      state.scope = radio.value;
      model.threadsDefault = state.scope === 'supervised' && $('#tree-threads').checked;
      model.threadsWorkersOnly = state.scope === 'supervised';
      model.threadsOpen.clear();
      $('#tree-threads').checked = model.threadsDefault;
      loadTree();
    });
  }
  let filterTimer = 0;
  $('#tree-filter').addEventListener('input', (e) => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => {
      model.filter = e.target.value;
      drawRows();
      treeView.scrollTo(0);
    }, 60);
  });
  $('#tree-threads').addEventListener('change', (e) => {
    model.threadsDefault = e.target.checked;
    model.threadsOpen.clear();
    drawRows();
  });
  $('#tree-expand').addEventListener('click', () => {
    model.setAllCollapsed(false);
    drawRows();
  });
  $('#tree-collapse').addEventListener('click', () => {
    model.setAllCollapsed(true);
    drawRows();
  });
}

function showReadOnly() {
  workersView.setReadOnly();
  workerPage.setReadOnly(true);
  document.body.dataset.role = 'read';
  $('#readonly-banner').hidden = false;
}

function showSummary() {
  setText($('#host'), window.location.host);
}

async function start() {
  setupControls();
  showSummary();
  // index.html preloads the tree and both lists, so their answers are
  // usually in when this runs. The tree goes on screen first, in a frame of
  // its own; the lists, the event stream and the history follow.
  const lists = Promise.all([api.workers(), api.programs(), api.session()]);
  lists.catch(() => {});  // awaited below, after the tree
  await loadTree();
  if (!state.firstTree) await nextFrame();
  try {
    const [workers, programs, session] = await lists;
    // Before the rows exist: a read-only session never gets action buttons.
    if (session.role !== 'admin') showReadOnly();
    workersView.setWorkers(workers);
    workersView.setPrograms(programs);
    depsView.render(programs, [...workersView.workers.values()]);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      $('#auth-banner').hidden = false;
      setConn('offline', 'not signed in');
      return;
    }
    notify(`workers: ${e.message}`, 'bad');
  }
  live.start();
  lifetimesView.load();
  const rows = await historyView.first();
  // The newest statuses seed each worker's "last status" (stops included).
  for (const r of [...(rows ?? [])].reverse()) workersView.noteWait(r);
}

start();
