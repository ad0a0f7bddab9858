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
const kMinWidth = 0.5;   // px; narrower blocks are not drawn (their parent still shows the total)
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
    this.roots = [];
    this.width = 0;
    this.first = true;
    new ResizeObserver(() => {
      const w = this.innerWidth();
      if (w !== this.width && w > 0) this.draw();
    }).observe(host);
    this.svg.addEventListener('click', (e) => {
      const item = e.target.closest('g.block');
      if (item && item.pid) this.onSelect(item.pid);
    });
    this.svg.addEventListener('mousemove', (e) => this.hover(e));
    this.svg.addEventListener('mouseleave', () => { this.tooltip.hidden = true; });
  }

  innerWidth() {
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
    for (const cell of cells) {
      const x = cell.x0 * width;
      const w = (cell.x1 - cell.x0) * width;
      if (w < kMinWidth) continue;
      const n = cell.node;
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
    for (const [pid, item] of this.items) {
      if (!seen.has(pid)) this.leave(pid, item);
    }
    this.first = false;
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
