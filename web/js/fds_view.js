// What a selected process holds: its descriptors from
// GET /api/processes/{pid}/fds, drawn under the process details. A pipe or
// socket end held elsewhere in the tree links to the process at the other
// end; a listening socket that more than one process holds is marked (the
// classic forked child that kept the listener). Targets are file names that
// anyone may choose: they go in as text, never as markup (dom.js).

import { api } from './api.js';
import { h } from './dom.js';

export class FdsView {
  // onSelect(pid) opens the process at the other end; name(pid) -> its comm or undefined.
  constructor({ onSelect, name }) {
    this.onSelect = onSelect;
    this.name = name;
  }

  // Fetches and renders pid's descriptors into box; resolves once drawn.
  // isCurrent() says whether the user still looks at pid.
  async show(box, pid, isCurrent) {
    box.replaceChildren(h('div', { class: 'dim' }, 'descriptors…'));
    let reply;
    try {
      reply = await api.fds(pid);
    } catch (e) {
      if (isCurrent()) box.replaceChildren(h('div', { class: 'dim fds-error' }, `descriptors: ${e.message}`));
      return;
    }
    if (!isCurrent()) return;
    box.replaceChildren(this.render(reply));
  }

  render(reply) {
    const fds = reply.fds ?? [];
    const counts = new Map();
    for (const f of fds) counts.set(f.kind, (counts.get(f.kind) ?? 0) + 1);
    const summary = [...counts].map(([k, n]) => `${n} ${k}`).join(' · ');
    const head = h('div', { class: 'fds-head' }, h('strong', {}, `${fds.length} descriptors`), ' ',
      h('span', { class: 'dim' }, summary),
      reply.unreadable && reply.unreadable.length
        ? h('span', { class: 'dim' }, ` · could not read pids ${reply.unreadable.join(', ')}`) : null);
    const rows = fds.map((f) => this.row(f));
    const table = h('table', { class: 'grid fds-table' },
      h('thead', {}, h('tr', {}, h('th', { class: 'num' }, 'fd'), h('th', {}, 'kind'), h('th', {}, 'target'),
        h('th', {}, 'socket'), h('th', {}, 'other end'))),
      h('tbody', {}, rows));
    return h('div', { class: 'fds' }, head, h('div', { class: 'fds-wrap' }, table));
  }

  row(f) {
    const s = f.socket;
    const shared = s && s.state === 'listen' && f.peers && f.peers.length > 0;
    const sock = s
      ? h('span', { class: 'fd-sock' }, h('span', { class: `fd-state st-${s.state}` }, s.state), ' ', s.local,
        s.remote && s.state !== 'listen' ? ` → ${s.remote}` : '',
        shared ? h('span', { class: 'fd-shared', title: 'more than one process holds this listening socket' },
          ` shared listener · ${f.peers.length + 1} processes`) : null)
      : '';
    const peers = (f.peers ?? []).map((pid) => h('button', {
      type: 'button', class: 'btn small fd-peer', 'data-pid': pid,
      title: 'open the process at the other end',
      onclick: () => this.onSelect(pid),
    }, `↔ ${pid}${this.name(pid) ? ` ${this.name(pid)}` : ''}`));
    const flags = [f.deleted ? 'deleted' : null, f.cloexec === false ? 'inherited on exec' : null]
      .filter(Boolean).join(', ');
    return h('tr', { class: `fd-row fd-${f.kind}${shared ? ' fd-row-shared' : ''}`, 'data-fd': f.fd },
      h('td', { class: 'num' }, f.fd), h('td', {}, f.kind),
      h('td', { class: 'fd-target', title: flags }, f.target,
        f.kind === 'epoll' && f.watches ? h('span', { class: 'dim' }, ` watches ${f.watches.join(', ')}`) : null),
      h('td', {}, sock), h('td', {}, peers));
  }
}
