// HistoryView: the wait_status rows, newest first, with all eight macros and
// the rusage figures; filtered by worker and paged with ?before=<row id>.
// On the first page, statuses that arrive as events are shown at once (their
// row id is not known yet); the next sample event refetches the page so the
// store's rows, with ids, replace them.

import { api } from './api.js';
import { h, setText, $ } from './dom.js';
import { describeCause, formatMicros, formatTime, signalName, waitTone } from './format.js';

const kPageSize = 50;

// [header, title, cell(row) -> {text, cls}]
const flag = (key) => (r) => ({ text: r[key] ? '1' : '0', cls: r[key] ? 'flag on' : 'flag' });
const sig = (key, when) => (r) => ({
  text: r[when] ? `${r[key]} ${signalName(r[key]).replace(/^SIG/, '')}` : String(r[key] ?? 0),
  cls: r[when] ? 'num' : 'num dim',
});
const num = (key, fmt = String) => (r) => ({ text: fmt(r[key] ?? 0), cls: 'num' });

const kColumns = [
  ['id', 'row id in wait_status', (r) => ({ text: r.id ? String(r.id) : '…', cls: 'num dim' })],
  ['time', 'when it was reaped (local time)', (r) => ({ text: formatTime(r.ts_ns), cls: 'num' })],
  ['pid', 'the process', num('pid')],
  ['worker', 'its worker id', (r) => ({ text: r.worker_id ?? '—', cls: 'num' })],
  ['adopted', '1: an orphan re-parented to the daemon', flag('adopted')],
  ['raw', 'the int wait4 filled in (hex)', (r) => ({ text: `0x${(r.raw_status >>> 0).toString(16).padStart(4, '0')}`, cls: 'num dim' })],
  ['WIFEXITED', 'exited normally', flag('wifexited')],
  ['WEXITSTATUS', 'exit code', (r) => ({ text: String(r.wexitstatus ?? 0), cls: r.wifexited ? 'num' : 'num dim' })],
  ['WIFSIGNALED', 'killed by a signal', flag('wifsignaled')],
  ['WTERMSIG', 'the signal that killed it', sig('wtermsig', 'wifsignaled')],
  ['WCOREDUMP', 'a core was dumped', flag('wcoredump')],
  ['WIFSTOPPED', 'stopped by a signal', flag('wifstopped')],
  ['WSTOPSIG', 'the signal that stopped it', sig('wstopsig', 'wifstopped')],
  ['WIFCONTINUED', 'resumed by SIGCONT', flag('wifcontinued')],
  ['utime s', 'ru_utime: user CPU seconds', num('ru_utime_us', formatMicros)],
  ['stime s', 'ru_stime: system CPU seconds', num('ru_stime_us', formatMicros)],
  ['maxrss KiB', 'ru_maxrss: peak resident set, KiB', num('ru_maxrss_kb')],
  ['minflt', 'ru_minflt: minor page faults', num('ru_minflt')],
  ['majflt', 'ru_majflt: major page faults', num('ru_majflt')],
  ['nvcsw', 'ru_nvcsw: voluntary context switches', num('ru_nvcsw')],
  ['nivcsw', 'ru_nivcsw: involuntary context switches', num('ru_nivcsw')],
  ['in words', 'the status decoded', (r) => ({ text: describeCause(r), cls: `words tone-${waitTone(r)}` })],
];

export class HistoryView {
  constructor(root, { notify }) {
    this.root = root;
    this.notify = notify;
    this.table = $('#history-table', root);
    this.tbody = $('#history-body', root);
    this.workerSel = $('#history-worker', root);
    this.pageLabel = $('#history-page', root);
    this.newestButton = $('#history-newest', root);
    this.newerButton = $('#history-newer', root);
    this.olderButton = $('#history-older', root);
    this.rows = [];
    this.before = null;     // null: the first page
    this.backStack = [];    // `before` of the pages we came from
    this.pendingLive = false;
    this.loading = false;
    this.knownWorkers = new Map();  // id -> name
    const head = h('tr', {}, kColumns.map(([label, title]) => h('th', { scope: 'col', title }, label)));
    $('thead', this.table).replaceChildren(head);
    this.workerSel.addEventListener('change', () => this.first());
    this.newestButton.addEventListener('click', () => this.first());
    this.newerButton.addEventListener('click', () => {
      this.before = this.backStack.pop() ?? null;
      this.load();
    });
    this.olderButton.addEventListener('click', () => {
      const last = this.rows[this.rows.length - 1];
      if (!last || !last.id) return;
      this.backStack.push(this.before);
      this.before = last.id;
      this.load();
    });
  }

  worker() {
    return this.workerSel.value ? Number(this.workerSel.value) : null;
  }

  first() {
    this.before = null;
    this.backStack = [];
    return this.load();
  }

  async load() {
    this.loading = true;
    const wanted = { worker: this.worker(), before: this.before };
    try {
      const rows = await api.history({ worker: wanted.worker, before: wanted.before, limit: kPageSize });
      // The person may have moved on while we waited.
      if (wanted.worker !== this.worker() || wanted.before !== this.before) return;
      let merged = rows;
      this.pendingLive = false;
      if (this.before === null) {
        // Keep event rows the store has not written yet (newer than its newest).
        const newest = rows.length ? rows[0].ts_ns : 0;
        const f = wanted.worker;
        const live = this.rows.filter((r) => !r.id && r.ts_ns > newest && (f === null || r.worker_id === f));
        if (live.length) this.pendingLive = true;
        merged = live.concat(rows).slice(0, kPageSize);
      }
      this.rows = merged;
      for (const r of rows) if (r.worker_id) this.noteWorker(r.worker_id);
      this.render();
    } catch (e) {
      this.notify(`history: ${e.message}`, 'bad');
    } finally {
      this.loading = false;
    }
    return this.rows;
  }

  // A wait status from the event stream.
  live(w) {
    if (this.before !== null) return;
    const f = this.worker();
    if (f !== null && w.worker_id !== f) return;
    this.rows = [w, ...this.rows].slice(0, kPageSize);
    this.pendingLive = true;
    if (w.worker_id) this.noteWorker(w.worker_id);
    this.render();
  }

  // Called on every sample event: catch up with the store once per second at most.
  settle() {
    if (this.pendingLive && !this.loading && this.before === null) this.load();
  }

  setWorkers(workers) {
    for (const w of workers) this.knownWorkers.set(w.id, w.name);
    this.renderWorkerOptions();
  }

  noteWorker(id) {
    if (this.knownWorkers.has(id)) return;
    this.knownWorkers.set(id, null);
    this.renderWorkerOptions();
  }

  renderWorkerOptions() {
    const current = this.workerSel.value;
    const ids = [...this.knownWorkers.keys()].sort((a, b) => a - b);
    const options = [h('option', { value: '' }, 'all workers')];
    for (const id of ids) {
      const name = this.knownWorkers.get(id);
      options.push(h('option', { value: String(id) }, name ? `${id} · ${name}` : `${id} (removed)`));
    }
    this.workerSel.replaceChildren(...options);
    this.workerSel.value = current;
  }

  render() {
    const frag = document.createDocumentFragment();
    for (const r of this.rows) {
      const tr = h('tr', { class: r.id ? '' : 'live' });
      for (const [, , cell] of kColumns) {
        const { text, cls } = cell(r);
        tr.append(h('td', { class: cls }, text));
      }
      frag.append(tr);
    }
    this.tbody.replaceChildren(frag);
    const page = this.backStack.length + 1;
    setText(this.pageLabel, this.rows.length
      ? `page ${page} · ${this.rows.length} rows${this.before === null ? ' · newest first, live' : ''}`
      : 'no rows');
    this.newerButton.disabled = this.before === null;
    this.newestButton.disabled = this.before === null;
    this.olderButton.disabled = this.rows.length < kPageSize;
  }
}
