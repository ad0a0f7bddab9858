// LifetimesView: every process the kernel reported (issue 15). Three parts:
// - recent: each `process` event as a row, marked new for kNewMs after its
//   fork, kept as a ghost row with its exit status for kGhostMs after its
//   exit; a storm's coalesced counts as one line per worker; and per worker
//   the processes started in the last minute;
// - a timeline: per worker a swimlane of lifetimes from fork to exit,
//   coloured by how they ended, zoomable from seconds to a day, gap markers
//   where events were lost; a click shows argv, times, status, wait row and
//   the process's threads (GET /api/lifetimes/{id}/threads);
// - a time slider: dragging it shows /api/tree?at= in the process tree
//   (onPastTree(roots, atNs)); letting go returns it to live (onPastTree(null)).
// Every name and argv goes in as text (dom.js): nothing here parses markup.

import { $, clear, h, setText, svg } from './dom.js';
import { formatArgv } from './format.js';
import { api } from './api.js';

export const kNewMs = 4000;
export const kGhostMs = 5000;
const kMinuteMs = 60000;
const kZooms = [10, 60, 600, 3600, 6 * 3600, 86400];  // timeline window, seconds
const kLaneH = 18;

// The class a lifetime is drawn with: how it ended.
export function outcome(l) {
  if (l.exited_ns === null || l.exited_ns === undefined) return 'alive';
  if (l.raw_status === null || l.raw_status === undefined) return 'unknown';
  if ((l.raw_status & 0x7f) === 0) return ((l.raw_status >> 8) & 0xff) === 0 ? 'ok' : 'failed';
  return 'killed';
}

const isoOrAlive = (ns) => (ns === null || ns === undefined ? 'alive' : new Date(Number(ns) / 1e6).toISOString());

// A table of thread lifetimes: tid, name (and the one it was created with
// when it renamed itself), created, exited. Names go in as text.
export function threadTable(rows) {
  const head = h('tr', {}, ...['tid', 'name', 'created', 'exited'].map((t) => h('th', { text: t })));
  const body = rows.map((t) => h('tr', { class: t.exited_ns === null ? 'alive' : 'ended' },
    h('td', { text: String(t.tid) }),
    h('td', { text: t.name === t.first_name ? t.name : `${t.name} (was ${t.first_name})` }),
    h('td', { text: isoOrAlive(t.created_ns) }),
    h('td', { text: isoOrAlive(t.exited_ns) })));
  return h('table', { class: 'lt-thread-table', 'aria-label': 'threads' }, h('thead', {}, head), h('tbody', {}, ...body));
}

export class LifetimesView {
  constructor(root, { onPastTree, now = () => Date.now() }) {
    this.root = root;
    this.onPastTree = onPastTree;
    this.now = now;
    this.recent = new Map();  // lifetime id -> {l, tr, since, ghostAt}
    this.started = new Map(); // worker id -> [ms of each fork in the last minute]
    this.zoom = 1;
    this.rows = [];
    this.gaps = [];
    this.timer = 0;
    this.recentBody = $('#lt-recent', root);
    this.perWorker = $('#lt-per-worker', root);
    this.svgHost = $('#lt-timeline', root);
    this.details = $('#lt-details', root);
    this.slider = $('#lt-slider', root);
    this.sliderText = $('#lt-slider-text', root);
    $('#lt-zoom-in', root).addEventListener('click', () => this.setZoom(this.zoom - 1));
    $('#lt-zoom-out', root).addEventListener('click', () => this.setZoom(this.zoom + 1));
    this.svgHost.addEventListener('wheel', (e) => {
      e.preventDefault();
      this.setZoom(this.zoom + (e.deltaY > 0 ? 1 : -1));
    }, { passive: false });
    this.slider.addEventListener('input', () => this.showPast());
    this.slider.addEventListener('change', () => this.goLive());
    this.pastSeq = 0;
    this.detailSeq = 0;
  }

  windowS() { return kZooms[this.zoom]; }

  setZoom(z) {
    this.zoom = Math.max(0, Math.min(kZooms.length - 1, z));
    setText($('#lt-zoom', this.root), `${this.windowS() >= 3600 ? this.windowS() / 3600 + ' h' : this.windowS() + ' s'}`);
    this.load();
  }

  // A `process` SSE event: {op, lifetime} one by one, {op, worker_id, count}
  // folded, or {op:'gap', lost}.
  onEvent(d) {
    const t = this.now();
    if (d.op === 'gap') {
      this.gaps.push({ ts_ns: d.ts_ns, lost: d.lost, reason: d.reason });
      this.drawTimeline();
      return;
    }
    if (d.count !== undefined) {
      if (d.op === 'fork') this.noteForks(d.worker_id, d.count, t);
      const line = h('tr', { class: 'lt-storm' }, h('td', { colspan: '5', text: `worker ${d.worker_id}: ${d.count} more ${d.op}s in 100 ms` }));
      this.recentBody.prepend(line);
      this.recent.set(`storm-${t}-${d.op}-${d.worker_id}`, { tr: line, since: t, ghostAt: t });
      this.schedule();
      // The folded lifetimes are in the store: the timeline fetches them once the storm pauses.
      clearTimeout(this.reloadTimer);
      this.reloadTimer = setTimeout(() => this.load(), 300);
      return;
    }
    const l = d.lifetime;
    if (!l) return;
    let r = this.recent.get(l.id);
    if (!r) {
      const tr = h('tr', { class: 'lt-row is-new', 'data-pid': l.pid, 'data-forked-ns': l.forked_ns });
      this.recentBody.prepend(tr);
      r = { tr, since: t, ghostAt: 0 };
      this.recent.set(l.id, r);
      if (d.op === 'fork') this.noteForks(l.worker_id, 1, t);
    }
    r.l = l;
    if (d.op === 'exit') {
      r.ghostAt = t;
      r.tr.classList.remove('is-new');
      r.tr.classList.add('is-ghost');
    }
    this.fillRow(r);
    this.upsertRow(l);
    this.schedule();
  }

  noteForks(worker, n, t) {
    const list = this.started.get(worker) ?? [];
    for (let i = 0; i < n; i += 1) list.push(t);
    this.started.set(worker, list);
    this.drawPerWorker();
  }

  fillRow(r) {
    const l = r.l;
    clear(r.tr);
    r.tr.append(
      h('td', { class: 'num', text: l.pid }),
      h('td', { class: 'num', text: l.worker_id }),
      h('td', { text: l.comm }),
      h('td', { class: 'argv', text: formatArgv(l.argv ?? []) }),
      h('td', { class: `lt-${outcome(l)}`, text: l.description }));
  }

  // New rows stop being new, ghosts go, minute counts age: once a second while any are left.
  schedule() {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = 0;
      const t = this.now();
      for (const [id, r] of this.recent) {
        if (r.ghostAt && t - r.ghostAt >= kGhostMs) {
          r.tr.remove();
          this.recent.delete(id);
        } else if (!r.ghostAt && t - r.since >= kNewMs) {
          r.tr.classList.remove('is-new');
          if (t - r.since >= kMinuteMs) this.recent.delete(id);
        }
      }
      this.drawPerWorker();
      if (this.recent.size || this.started.size) this.schedule();
    }, 500);
  }

  drawPerWorker() {
    const t = this.now();
    clear(this.perWorker);
    for (const [worker, list] of this.started) {
      while (list.length && t - list[0] >= kMinuteMs) list.shift();
      if (!list.length) {
        this.started.delete(worker);
        continue;
      }
      this.perWorker.append(h('span', { class: 'lt-chip', 'data-worker': worker, text: `worker ${worker}: ${list.length} started in the last minute` }));
    }
  }

  upsertRow(l) {
    const i = this.rows.findIndex((x) => x.id === l.id);
    if (i >= 0) this.rows[i] = l;
    else this.rows.push(l);
    this.drawTimeline();
  }

  async load() {
    const since = BigInt(this.now() - this.windowS() * 1000) * 1000000n;
    try {
      const res = await fetch(`/api/lifetimes?since=${since}&limit=1000`, { credentials: 'same-origin' });
      if (!res.ok) return;
      const page = await res.json();
      this.rows = page.rows ?? [];
      this.gaps = page.gaps ?? [];
      this.drawTimeline();
    } catch {
      // The next event or zoom tries again.
    }
  }

  drawTimeline() {
    if (this.drawPending) return;
    this.drawPending = true;
    requestAnimationFrame(() => {
      this.drawPending = false;
      this.paint();
    });
  }

  paint() {
    const width = Math.max(300, this.svgHost.clientWidth || 600);
    const endMs = this.now();
    const startMs = endMs - this.windowS() * 1000;
    const x = (ns) => ((Number(ns) / 1e6 - startMs) / (endMs - startMs)) * width;
    const workers = [...new Set(this.rows.map((l) => l.worker_id))].sort((a, b) => a - b);
    // Lanes: per worker, lifetimes packed so that overlapping ones stack.
    const lanes = [];
    let y = 0;
    const g = svg('svg', { class: 'lt-svg', width, height: 10 });
    for (const w of workers) {
      const ends = [];
      const mine = this.rows.filter((l) => l.worker_id === w).sort((a, b) => a.forked_ns - b.forked_ns);
      const label = svg('text', { x: 2, y: y + 12, class: 'lt-lane-label' });
      label.textContent = `worker ${w}`;
      g.append(label);
      y += kLaneH;
      for (const l of mine) {
        const x0 = Math.max(0, x(l.forked_ns));
        const x1 = Math.min(width, l.exited_ns === null ? width : Math.max(x0 + 1, x(l.exited_ns)));
        if (x1 < 0 || x0 > width) continue;
        let lane = ends.findIndex((e) => e <= x0);
        if (lane < 0) {
          lane = ends.length;
          ends.push(0);
        }
        ends[lane] = x1 + 1;
        const rect = svg('rect', { x: x0, y: y + lane * 6, width: Math.max(1, x1 - x0), height: 5,
          class: `lt-life lt-${outcome(l)}`, 'data-id': l.id });
        const title = svg('title');
        title.textContent = `${l.pid} ${l.comm}: ${l.description}`;
        rect.append(title);
        rect.addEventListener('click', () => this.showDetails(l));
        g.append(rect);
      }
      y += Math.max(1, ends.length) * 6 + 4;
      lanes.push(w);
    }
    for (const gap of this.gaps) {
      const gx = x(gap.ts_ns);
      if (gx < 0 || gx > width) continue;
      const line = svg('line', { x1: gx, x2: gx, y1: 0, y2: Math.max(y, 20), class: 'lt-gap' });
      const title = svg('title');
      title.textContent = `${gap.lost} events lost (${gap.reason})`;
      line.append(title);
      g.append(line);
    }
    g.setAttribute('height', Math.max(y, 20));
    clear(this.svgHost);
    this.svgHost.append(g);
    setText($('#lt-count', this.root), `${this.rows.length} lifetimes · ${this.gaps.length} gaps`);
  }

  showDetails(l) {
    clear(this.details);
    const when = isoOrAlive;
    this.details.append(
      h('div', { class: 'argv', text: formatArgv(l.argv ?? []) }),
      h('div', { text: `pid ${l.pid} · parent ${l.ppid} · worker ${l.worker_id} · ${l.comm}` }),
      h('div', { text: `forked ${when(l.forked_ns)} · exited ${when(l.exited_ns)}` }),
      h('div', { text: `${l.description}${l.raw_status !== null ? ` (raw ${l.raw_status})` : ''}` +
        `${l.wait_id ? ` · wait_status row ${l.wait_id}` : ''}${l.argv_lost ? ' · argv gone before it was read' : ''}` }));
    this.showThreads(l);
  }

  // The clicked lifetime's threads, below its details; a later click wins.
  async showThreads(l) {
    const seq = ++this.detailSeq;
    const box = h('div', { class: 'lt-threads', text: l.threads ? 'threads: loading…' : 'no threads besides the main one' });
    this.details.append(box);
    if (!l.threads) return;
    let page;
    try {
      page = await api.lifetimeThreads(l.id);
    } catch (e) {
      if (seq === this.detailSeq) setText(box, `threads: ${e.message}`);
      return;
    }
    if (seq !== this.detailSeq) return;
    clear(box);
    box.append(threadTable(page.rows));
    if (page.next_before !== null)
      box.append(h('div', { text: `newest ${page.rows.length} of ${l.threads} threads shown` }));
  }

  async showPast() {
    const back = Number(this.slider.value);  // seconds before now
    if (back <= 0) return this.goLive();
    const seq = ++this.pastSeq;
    const atNs = BigInt(this.now() - back * 1000) * 1000000n;
    setText(this.sliderText, `tree at ${new Date(this.now() - back * 1000).toISOString()}`);
    try {
      const res = await fetch(`/api/tree?at=${atNs}`, { credentials: 'same-origin' });
      const body = await res.json();
      if (seq !== this.pastSeq) return;
      if (!res.ok) {
        setText(this.sliderText, body?.error?.message ?? `HTTP ${res.status}`);
        return;
      }
      this.onPastTree(body, atNs);
    } catch {
      // Dragging on: the next position asks again.
    }
  }

  goLive() {
    this.pastSeq += 1;
    this.slider.value = '0';
    setText(this.sliderText, 'live');
    this.onPastTree(null);
  }
}
