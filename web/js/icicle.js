// Icicle: the tree as a drawing. Each process is a block; its children sit
// below it, sharing its width by how many leaves each has. A forking server
// that gains clients grows a row of new blocks under it (they flash in) and
// loses them again (they fade out where they were), so the shape of the tree
// reads at a glance. SVG, keyed by pid so that updates move blocks instead
// of rebuilding them. Labels are <text> nodes filled with textContent.

import { svg, setText } from './dom.js';
import { icicleLayout } from './tree_model.js';
import { workerHue } from './format.js';

const kLevel = 24;       // px per depth level
// px; narrower blocks are not drawn one by one: each run of narrow siblings
// becomes one "+N" block. A server with 1,000 children then costs one SVG
// group, not 1,000 (drawing them all took ~300 ms of script and as much
// style and layout on the first render, for blocks under a pixel wide).
const kMinWidth = 3;
const kCharWidth = 6.6;  // px per character of the 11 px monospace label, for truncation
const kLeaveMs = 1200;   // how long a vanished process stays as a fading ghost

export class Icicle {
  // host: an element to draw into; onSelect(pid); tooltip: an element for hover text.
  constructor(host, { onSelect, tooltip }) {
    this.host = host;
    this.onSelect = onSelect;
    this.tooltip = tooltip;
    this.svg = svg('svg', { class: 'icicle', role: 'img', 'aria-label': 'process tree drawing' });
    this.ghosts = svg('g', { class: 'ghosts' });
    this.blocks = svg('g', { class: 'blocks' });
    this.svg.append(this.ghosts, this.blocks);
    host.append(this.svg);
    this.items = new Map();  // pid -> {g, rect, text, node, starttime}
    this.more = new Map();   // "parent pid:run" -> {g, rect, text, count}: runs of narrow siblings
    this.roots = [];
    this.width = 0;
    this.first = true;
    // The host's content width, kept by the observer: reading it from layout
    // in draw() would force a second style and layout pass on every redraw.
    // Measured once now, while the page is still small, for the first draw:
    // the observer reports only at the next frame.
    this.boxWidth = this.measuredWidth();
    new ResizeObserver((entries) => {
      const w = Math.floor(entries[entries.length - 1].contentRect.width);
      this.boxWidth = w;
      if (w !== this.width && w > 0) this.draw();
    }).observe(host);
    this.svg.addEventListener('click', (e) => {
      const item = e.target.closest('g.block');
      if (item && item.pid) this.onSelect(item.pid);
    });
    this.svg.addEventListener('mousemove', (e) => this.hover(e));
    this.moreSeen = new Set();
    this.svg.addEventListener('mouseleave', () => { this.tooltip.hidden = true; });
  }

  innerWidth() {
    return this.boxWidth > 0 ? this.boxWidth : this.measuredWidth();
  }

  measuredWidth() {
    const cs = getComputedStyle(this.host);
    return Math.floor(this.host.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight));
  }

  setTree(roots) {
    this.roots = roots;
    this.draw();
  }

  draw() {
    const width = Math.max(50, this.innerWidth());
    this.width = width;
    const { cells, depth } = icicleLayout(this.roots);
    const height = (depth + 1) * kLevel;
    this.svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
    this.svg.setAttribute('width', width);
    this.svg.setAttribute('height', height);
    const seen = new Set();
    this.moreSeen = new Set();
    // Cells come breadth first, siblings together: a run is narrow siblings
    // side by side under a drawn parent.
    let run = null;
    const flush = () => {
      if (run) this.drawMore(run, width);
      run = null;
    };
    for (const cell of cells) {
      const x = cell.x0 * width;
      const w = (cell.x1 - cell.x0) * width;
      const n = cell.node;
      if (w < kMinWidth) {
        const parent = n._parent ?? null;
        // Below a block that is itself not drawn: already counted in its run.
        if (parent && !seen.has(parent.pid)) continue;
        const ppid = parent ? parent.pid : 0;
        if (run && run.ppid === ppid && Math.abs(run.x1 - cell.x0) < 1e-9) {
          run.x1 = cell.x1;
          run.count += 1;
        } else {
          flush();
          run = { ppid, x0: cell.x0, x1: cell.x1, depth: cell.depth, count: 1, index: 0 };
          run.index = this.runIndex(ppid);
        }
        continue;
      }
      flush();
      seen.add(n.pid);
      let item = this.items.get(n.pid);
      if (!item) {
        item = this.make(n);
        // A block that appears after the first drawing is news: it flashes.
        if (!this.first) item.g.classList.add('entering');
      }
      item.node = n;
      this.place(item, x, cell.depth * kLevel, w);
      this.paint(item);
    }
    flush();
    for (const [pid, item] of this.items) {
      if (!seen.has(pid)) this.leave(pid, item);
    }
    for (const [key, item] of this.more) {
      if (!this.moreSeen.has(key)) {
        item.g.remove();
        this.more.delete(key);
      }
    }
    this.runCounts = null;
    this.first = false;
  }

  // The how-manyth run under this parent in the current drawing (keys stay
  // put while the counts change).
  runIndex(ppid) {
    if (!this.runCounts) this.runCounts = new Map();
    const k = this.runCounts.get(ppid) ?? 0;
    this.runCounts.set(ppid, k + 1);
    return k;
  }

  // One block for a run of siblings too narrow to draw one by one.
  drawMore(run, width) {
    const key = `${run.ppid}:${run.index}`;
    this.moreSeen.add(key);
    let item = this.more.get(key);
    if (!item) {
      const g = svg('g', { class: 'more' });
      const rect = svg('rect', { rx: 2, ry: 2 });
      const text = svg('text', { class: 'label' });
      g.append(rect, text);
      this.blocks.append(g);
      item = { g, rect, text, key: '', count: -1 };
      this.more.set(key, item);
    }
    const x = run.x0 * width;
    const w = Math.max(1, (run.x1 - run.x0) * width);
    this.place(item, x, run.depth * kLevel, w);
    if (item.count !== run.count || item.labelFor === null) {
      item.count = run.count;
      item.labelFor = '';
      item.g.moreText = `${run.count} processes side by side, each too narrow to draw (their descendants included)`;
      const label = `+${run.count}`;
      setText(item.text, item.labelChars < label.length ? '' : label);
    }
  }

  // Only colours and states changed (a sample patch): no layout.
  repaint() {
    for (const item of this.items.values()) this.paint(item);
  }

  make(n) {
    const g = svg('g', { class: 'block', 'data-pid': n.pid });
    const rect = svg('rect', { rx: 2, ry: 2 });
    const text = svg('text', { class: 'label' });
    g.append(rect, text);
    g.pid = n.pid;
    const item = { g, rect, text, node: n, key: '' };
    g.addEventListener('animationend', () => g.classList.remove('entering'));
    this.blocks.append(g);
    this.items.set(n.pid, item);
    return item;
  }

  place(item, x, y, w) {
    const key = `${x.toFixed(1)},${y},${w.toFixed(1)}`;
    if (item.key === key) return;
    item.key = key;
    const r = item.rect;
    r.setAttribute('x', (x + 0.5).toFixed(1));
    r.setAttribute('y', y + 1);
    r.setAttribute('width', Math.max(0.5, w - 1).toFixed(1));
    r.setAttribute('height', kLevel - 2);
    item.text.setAttribute('x', (x + 4).toFixed(1));
    item.text.setAttribute('y', y + kLevel / 2 + 4);
    item.labelChars = Math.floor((w - 8) / kCharWidth);
    item.labelFor = null;
  }

  paint(item) {
    const n = item.node;
    const isWorker = n.worker_id !== null && n.worker_id !== undefined;
    let cls = 'block';
    if (isWorker) cls += ' worker';
    else if (n._worker !== null && n._worker !== undefined) cls += ' inworker';
    else cls += ' plain';
    if (n.state === 'T' || n.state === 't') cls += ' stopped';
    else if (n.state === 'Z') cls += ' zombie';
    else if (n.state === 'R') cls += ' running';
    if (item.g.classList.contains('entering')) cls += ' entering';
    if (item.g.getAttribute('class') !== cls) item.g.setAttribute('class', cls);
    const hue = n._worker !== null && n._worker !== undefined ? workerHue(n._worker) : null;
    const fill = hue === null ? '' : `hsl(${hue} ${isWorker ? 55 : 40}% ${isWorker ? 42 : 30}%)`;
    if (item.fill !== fill) {
      item.fill = fill;
      if (fill) item.rect.setAttribute('fill', fill);
      else item.rect.removeAttribute('fill');
    }
    const label = isWorker ? `${n.worker_name ?? n.comm} (${n.pid})` : n.comm;
    const labelKey = `${label}|${item.labelChars}`;
    if (item.labelFor !== labelKey) {
      item.labelFor = labelKey;
      const max = item.labelChars;
      setText(item.text, max < 3 ? '' : label.length > max ? `${label.slice(0, max - 1)}…` : label);
    }
  }

  // The block stays where it was as a fading ghost, then goes.
  leave(pid, item) {
    this.items.delete(pid);
    item.g.classList.remove('entering');
    item.g.classList.add('leaving');
    item.g.pid = 0;
    this.ghosts.append(item.g);
    setTimeout(() => item.g.remove(), kLeaveMs);
  }

  hover(e) {
    const more = e.target.closest('g.more');
    if (more) {
      setText(this.tooltip, more.moreText ?? '');
      this.tooltip.hidden = false;
      const box = this.host.getBoundingClientRect();
      this.tooltip.style.left = `${Math.min(e.clientX - box.left + 12, box.width - 260)}px`;
      this.tooltip.style.top = `${e.clientY - box.top + 16}px`;
      return;
    }
    const g = e.target.closest('g.block');
    const item = g && g.pid ? this.items.get(g.pid) : null;
    if (!item) {
      this.tooltip.hidden = true;
      return;
    }
    const n = item.node;
    const lines = [
      `${n.comm} · pid ${n.pid} · ${n.state}`,
      n.worker_id !== null && n.worker_id !== undefined ? `worker ${n.worker_name ?? n.worker_id}` : null,
      `${n.children.length} children · ${n.threads.length || 1} threads`,
      n.cmdline || null,
    ].filter(Boolean);
    setText(this.tooltip, lines.join('\n'));
    this.tooltip.hidden = false;
    const box = this.host.getBoundingClientRect();
    this.tooltip.style.left = `${Math.min(e.clientX - box.left + 12, box.width - 260)}px`;
    this.tooltip.style.top = `${e.clientY - box.top + 16}px`;
  }

  // Counts for the caption: how many blocks and how many were drawn.
  stats() {
    return { drawn: this.items.size };
  }
}
