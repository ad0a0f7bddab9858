// The dependency graph of the configured programs (depends_on), drawn as
// levels: a program sits one column right of the deepest program it waits
// for, and each node shows its workers' state, readiness, health and why it
// waits. Hidden while no program has depends_on. Text only (dom.js), so
// names and STATUS= texts never become markup.
import { h, setText } from './dom.js';
import { untrustedText } from './untrusted.js';

function depName(d) { return typeof d === 'string' ? d : d.program; }
function depCondition(d) { return typeof d === 'string' ? 'ready' : (d.condition ?? 'ready'); }

// program name -> level (0: depends on nothing); a cycle cannot load, but
// the guard keeps a bad answer from looping.
export function levels(programs) {
  const byName = new Map(programs.map((p) => [p.name, p]));
  const level = new Map();
  const visit = (name, depth) => {
    if (level.has(name)) return level.get(name);
    if (depth > programs.length) return 0;
    const p = byName.get(name);
    let l = 0;
    for (const d of p?.depends_on ?? []) if (byName.has(depName(d))) l = Math.max(l, visit(depName(d), depth + 1) + 1);
    level.set(name, l);
    return l;
  };
  for (const p of programs) visit(p.name, 0);
  return level;
}

export class DepsView {
  constructor(root) {
    this.root = root;
    this.body = root.querySelector('.deps-body');
  }

  // programs: the catalogue (configured ones carry depends_on); workers: the list.
  render(programs, workers) {
    const configured = programs.filter((p) => !p.builtin);
    const any = configured.some((p) => (p.depends_on ?? []).length > 0);
    this.root.hidden = !any;
    if (!any) return;
    const level = levels(configured);
    const columns = [];
    for (const p of configured) (columns[level.get(p.name)] ??= []).push(p);
    this.body.replaceChildren(...columns.map((col, i) => h('div', { class: 'deps-col', 'aria-label': `level ${i}` },
      ...col.map((p) => this.node(p, workers.filter((w) => w.program === p.name))))));
  }

  node(p, ws) {
    const lines = ws.map((w) => {
      const bits = [w.state];
      if (['starting', 'running'].includes(w.state)) bits.push(w.ready ? 'ready' : 'not ready');
      if (w.health) bits.push(w.health);
      const line = h('div', { class: 'deps-worker' }, untrustedText(w.name ?? ''), ' ',
        h('span', { class: `badge ws-${w.state}` }, bits.join(' · ')));
      if (w.waiting_for) line.append(h('div', { class: 'deps-why dim' }, untrustedText(w.waiting_for)));
      else if (w.status_text) line.append(h('div', { class: 'deps-why dim' }, untrustedText(w.status_text)));
      return line;
    });
    const needs = (p.depends_on ?? []).map((d) => `${depName(d)} (${depCondition(d)}${d.part_of ? ', part_of' : ''})`);
    const title = h('div', { class: 'deps-name' });
    setText(title, p.name);
    return h('div', { class: 'deps-node' }, title,
      needs.length ? h('div', { class: 'deps-needs dim' }, `← ${needs.join(', ')}`) : null, ...lines);
  }
}
