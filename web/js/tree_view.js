// TreeView: the htop-like table, drawn as a virtual list. Only the rows in
// the viewport (plus a few above and below) exist as elements; scrolling
// reuses them. A spacer as tall as all rows gives the scrollbar its size, so
// 10,000 rows cost what 40 do.

import { h, setText, setClass } from './dom.js';
import { formatBytes, formatPercent, stateWord } from './format.js';

export const kRowHeight = 22;  // px; .tree-row in app.css has the same height
const kOverscan = 8;

export class TreeView {
  // viewport: the scrolling element. Callbacks: onToggle(pid), onThreads(pid),
  // onSelect(pid), onOpen(workerId) (Enter on a worker's process). workerInfo(id) ->
  // {state} or undefined; threadsShown(node) -> bool.
  constructor(viewport, { onToggle, onThreads, onSelect, onOpen = () => {}, workerInfo, threadsShown }) {
    this.onOpen = onOpen;
    this.viewport = viewport;
    this.onToggle = onToggle;
    this.onThreads = onThreads;
    this.onSelect = onSelect;
    this.workerInfo = workerInfo;
    this.threadsShown = threadsShown;
    this.rows = [];
    this.selected = null;  // pid
    this.pool = [];
    this.spacer = h('div', { class: 'tree-spacer' });
    this.layer = h('div', { class: 'tree-rows', role: 'rowgroup' });
    viewport.append(this.spacer, this.layer);
    this.frame = 0;
    // The viewport's height and scroll offset, kept by the observer and the
    // scroll event: reading them in draw() would force a style and layout
    // pass in the middle of every update (the first one costs tens of ms).
    this.height = viewport.clientHeight;  // for the first draw, before the observer reports
    this.top = 0;
    viewport.addEventListener('scroll', () => {
      this.top = viewport.scrollTop;
      this.schedule();
    });
    new ResizeObserver((entries) => {
      this.height = entries[entries.length - 1].contentRect.height;
      this.schedule();
    }).observe(viewport);
    viewport.addEventListener('click', (e) => this.click(e));
    viewport.addEventListener('keydown', (e) => this.key(e));
  }

  setRows(rows) {
    this.rows = rows;
    this.spacer.style.height = `${rows.length * kRowHeight}px`;
    this.draw();
  }

  // Redraws the visible rows (after values changed in place).
  refresh() {
    this.draw();
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  indexOfPid(pid) {
    return this.rows.findIndex((r) => r.thread === null && r.node.pid === pid);
  }

  select(pid, { scroll = true } = {}) {
    this.selected = pid;
    const i = this.indexOfPid(pid);
    if (scroll && i >= 0) {
      const top = i * kRowHeight;
      const height = this.viewHeight();
      if (top < this.top || top + kRowHeight > this.top + height) this.scrollTo(Math.max(0, top - height / 2));
    }
    this.draw();
  }

  // A viewport that had no height when measured is measured again.
  viewHeight() {
    if (this.height <= 0) this.height = this.viewport.clientHeight;
    return this.height || 400;
  }

  scrollTo(top) {
    this.viewport.scrollTop = top;
    this.top = this.viewport.scrollTop;  // as clamped by the browser
  }

  draw() {
    const height = this.viewHeight();
    // The rows in view and kOverscan more on each side that has any.
    const first = Math.max(0, Math.floor(this.top / kRowHeight) - kOverscan);
    const end = Math.min(this.rows.length, Math.ceil((this.top + height) / kRowHeight) + kOverscan);
    const count = Math.max(0, end - first);
    while (this.pool.length < count) this.pool.push(this.makeRow());
    this.layer.style.transform = `translateY(${first * kRowHeight}px)`;
    for (let i = 0; i < this.pool.length; i += 1) {
      const el = this.pool[i];
      if (i < count) {
        if (el.hidden) el.hidden = false;
        this.fill(el, this.rows[first + i], first + i);
      } else if (!el.hidden) {
        el.hidden = true;
        el.row = null;
      }
    }
  }

  makeRow() {
    const c = {
      pid: h('span', { class: 'c-pid num', role: 'gridcell' }),
      state: h('span', { class: 'c-state', role: 'gridcell' }),
      cpu: h('span', { class: 'c-cpu num', role: 'gridcell' }),
      rss: h('span', { class: 'c-rss num', role: 'gridcell' }),
      thr: h('span', { class: 'c-thr num', role: 'gridcell' }),
      thrButton: h('button', { class: 'thr-toggle', type: 'button', tabindex: '-1' }),
      name: h('span', { class: 'c-name', role: 'gridcell' }),
      guide: h('span', { class: 'guide', 'aria-hidden': 'true' }),
      twisty: h('button', { class: 'twisty', type: 'button', tabindex: '-1' }),
      comm: h('span', { class: 'comm' }),
      badge: h('span', { class: 'wbadge' }),
      cmd: h('span', { class: 'cmd' }),
    };
    c.name.append(c.guide, c.twisty, c.comm, c.badge, c.cmd);
    const el = h('div', { class: 'tree-row', role: 'row' }, c.pid, c.state, c.cpu, c.rss, c.thr, c.name);
    el.cells = c;
    el.row = null;
    this.layer.append(el);
    return el;
  }

  fill(el, row, index) {
    const c = el.cells;
    el.row = row;
    el.rowIndex = index;
    const n = row.node;
    const selected = row.thread === null && n.pid === this.selected;
    if (row.thread) {
      const t = row.thread;
      setClass(el, `tree-row thread${row.hit ? ' hit' : ''}`);
      setText(c.pid, t.tid);
      setText(c.state, t.state);
      c.state.title = stateWord(t.state);
      setClass(c.state, `c-state st-${stateClass(t.state)}`);
      setText(c.cpu, formatPercent(t.cpu_percent));
      setClass(c.cpu, cpuClass(t.cpu_percent));
      setText(c.rss, '');
      c.thr.replaceChildren();
      setText(c.guide, row.guide);
      c.twisty.hidden = true;
      setText(c.comm, t.name);
      setText(c.badge, t.tid === n.pid ? 'main thread' : 'thread');
      setClass(c.badge, 'tbadge');
      // What a sleeping thread waits in (futex_wait_queue, ep_poll, pipe_read…).
      setText(c.cmd, t.wchan ? `waits in ${t.wchan}` : '');
      el.title = '';
      return;
    }
    setClass(el, `tree-row${selected ? ' selected' : ''}${row.hit ? ' hit' : ''}${
      n.worker_id !== null && n.worker_id !== undefined ? ' worker' : ''}`);
    el.setAttribute('aria-selected', selected ? 'true' : 'false');
    setText(c.pid, n.pid);
    setText(c.state, n.state);
    c.state.title = stateWord(n.state);
    setClass(c.state, `c-state st-${stateClass(n.state)}`);
    setText(c.cpu, formatPercent(n.cpu_percent));
    setClass(c.cpu, cpuClass(n.cpu_percent));
    setText(c.rss, formatBytes(n.rss_bytes));
    const nthreads = n.threads.length || 1;
    if (nthreads > 1) {
      if (c.thr.firstChild !== c.thrButton) c.thr.replaceChildren(c.thrButton);
      setText(c.thrButton, `${this.threadsShown(n) ? '▾' : '▸'}${nthreads}`);
      c.thrButton.setAttribute('aria-label', `${nthreads} threads: show or hide`);
    } else {
      setText(c.thr, '1');
    }
    setText(c.guide, row.guide);
    c.twisty.hidden = !row.hasChildren;
    if (row.hasChildren) {
      setText(c.twisty, row.open ? '▾' : '▸');
      c.twisty.setAttribute('aria-expanded', row.open ? 'true' : 'false');
      c.twisty.setAttribute('aria-label', `${n.children.length} children: show or hide`);
    }
    setText(c.comm, n.comm);
    if (n.worker_id !== null && n.worker_id !== undefined) {
      const info = this.workerInfo(n.worker_id);
      const label = `${n.worker_name ?? `worker ${n.worker_id}`}${info ? ` · ${info.state}` : ''}`;
      setText(c.badge, label);
      setClass(c.badge, `wbadge ws-${info ? info.state : 'unknown'}`);
    } else {
      setText(c.badge, '');
      setClass(c.badge, 'wbadge');
    }
    setText(c.cmd, n.cmdline && n.cmdline !== n.comm ? n.cmdline : '');
    el.title = n.cmdline || n.comm || '';
  }

  click(e) {
    const rowEl = e.target.closest('.tree-row');
    if (!rowEl || !rowEl.row) return;
    const row = rowEl.row;
    if (e.target.closest('.twisty')) {
      this.onToggle(row.node.pid);
    } else if (e.target.closest('.thr-toggle')) {
      this.onThreads(row.node.pid);
    } else {
      this.onSelect(row.node.pid);
    }
  }

  // Arrow keys move the selection; left and right fold and unfold.
  key(e) {
    if (!this.rows.length) return;
    let i = this.selected === null ? -1 : this.indexOfPid(this.selected);
    const move = (to) => {
      const step = to > i ? 1 : -1;
      let k = Math.max(0, Math.min(this.rows.length - 1, to));
      while (this.rows[k] && this.rows[k].thread !== null) k += step;
      if (this.rows[k]) this.onSelect(this.rows[k].node.pid);
    };
    const page = Math.max(1, Math.floor(this.viewHeight() / kRowHeight) - 1);
    switch (e.key) {
      case 'ArrowDown': move(i + 1); break;
      case 'ArrowUp': move(i < 0 ? 0 : i - 1); break;
      case 'PageDown': move(i + page); break;
      case 'PageUp': move(i - page); break;
      case 'Home': move(0); break;
      case 'End': move(this.rows.length - 1); break;
      case 'ArrowRight':
      case 'ArrowLeft': {
        if (i < 0) return;
        const row = this.rows[i];
        if (row.hasChildren && row.open === (e.key === 'ArrowLeft')) this.onToggle(row.node.pid);
        break;
      }
      case 't':
        if (i >= 0) this.onThreads(this.rows[i].node.pid);
        break;
      case 'Enter': {
        const w = i >= 0 ? this.rows[i].node.worker_id : null;
        if (w === null || w === undefined) return;
        this.onOpen(w);
        break;
      }
      default:
        return;
    }
    e.preventDefault();
  }
}

function stateClass(letter) {
  switch (letter) {
    case 'R': return 'run';
    case 'T': case 't': return 'stop';
    case 'Z': case 'X': return 'zombie';
    case 'D': return 'disk';
    default: return 'sleep';
  }
}

function cpuClass(p) {
  if (!(p >= 1)) return 'c-cpu num idle';
  if (p >= 50) return 'c-cpu num hot';
  return 'c-cpu num';
}
