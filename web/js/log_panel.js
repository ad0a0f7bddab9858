// LogPanel: one worker's captured output, live. It reads the log API
// (GET /api/workers/{id}/logs, both streams) and, while open, asks again
// with ?after=<last seq> about once a second: the event stream carries no
// output. Lines are kept in the page (the newest kMaxLines), filtered by
// stream and by a search without refetching, with the worker's exits as
// markers between them. Every byte a program printed is shown as text
// (untrusted.js): escapes visible, nothing parsed as HTML or acted on as a
// terminal control. Main thread only.

import { api } from './api.js';
import { h, setText } from './dom.js';
import { describeWait, formatTime } from './format.js';
import { untrustedText } from './untrusted.js';
import { causeWords } from './worker_fields.js';

const kPollMs = 700;
const kFirstTail = 1000;
const kFollowTail = 2000;   // the daemon's ring holds at most this many lines
const kMaxLines = 5000;
const kAround = 10;         // lines marked on each side of an exit jumped to
const kBottomSlackPx = 40;
// The daemon may reap a process before it has read the last lines from its
// pipes, so those lines can be stamped a little after the exit. Lines up to
// this long after an exit are still placed before its marker (unless the
// next run had started by then).
const kExitSlackNs = 250e6;

export class LogPanel {
  constructor({ notify }) {
    this.notify = notify;
    this.id = null;
    this.lastSeq = 0;
    this.timer = 0;
    this.loading = false;
    this.generation = 0;    // bumped by open(): replies for an older worker are dropped
    this.lineCount = 0;
    this.ownScroll = false;
    this.exits = [];
    const check = (label, checked, onchange) => {
      const input = h('input', { type: 'checkbox', onchange });
      input.checked = checked;
      return { input, label: h('label', { class: 'check' }, input, label) };
    };
    this.stdout = check('stdout', true, () => this.applyFilters());
    this.stderr = check('stderr', true, () => this.applyFilters());
    this.follow = check('follow', true, () => {
      if (this.follow.input.checked) this.toBottom();
    });
    this.search = h('input', { type: 'search', class: 'filter log-search', placeholder: 'search the output',
      'aria-label': 'search the output', spellcheck: 'false' });
    let searchTimer = 0;
    this.search.addEventListener('input', () => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(() => this.applyFilters(), 80);
    });
    this.jump = h('select', { class: 'log-jump', 'aria-label': 'jump to the lines around an exit' });
    this.jump.addEventListener('change', () => {
      if (this.jump.value) this.jumpToExit(Number(this.jump.value));
    });
    this.count = h('span', { class: 'dim log-count', role: 'status' });
    this.view = h('div', { class: 'log-view', role: 'log', 'aria-live': 'off', tabindex: '0' });
    this.view.addEventListener('scroll', () => {
      if (this.ownScroll) return;
      // Reading back up stops following; coming back down resumes it.
      this.follow.input.checked = this.atBottom();
    });
    this.root = h('div', { class: 'log-panel' },
      h('div', { class: 'log-head', role: 'toolbar', 'aria-label': 'output controls' },
        this.stdout.label, this.stderr.label, this.follow.label, this.search, this.jump, this.count),
      this.view);
  }

  // Shows worker id's output from its newest lines on, and follows it.
  open(id, label) {
    this.close();
    this.id = id;
    this.generation += 1;
    this.lastSeq = 0;
    this.lineCount = 0;
    this.exits = [];
    this.view.replaceChildren();
    this.view.setAttribute('aria-label', `output of ${label}`);
    this.follow.input.checked = true;
    this.search.value = '';
    this.setExits([]);
    this.poll();
  }

  close() {
    clearTimeout(this.timer);
    this.timer = 0;
    this.id = null;
  }

  // Something happened to the worker (an exit, a spawn): its last words are worth fetching now.
  poke() {
    if (this.id === null || this.loading) return;
    clearTimeout(this.timer);
    this.poll();
  }

  async poll() {
    const id = this.id;
    const gen = this.generation;
    if (id === null) return;
    this.loading = true;
    try {
      const first = this.lastSeq === 0;
      const reply = await api.logs(id, { tail: first ? kFirstTail : kFollowTail, after: this.lastSeq });
      if (gen !== this.generation) return;
      this.append(reply, first);
    } catch (e) {
      if (gen === this.generation && e.status !== 404) this.notify(`output of worker ${id}: ${e.message}`, 'bad');
    } finally {
      this.loading = false;
      if (gen === this.generation && this.id !== null) this.timer = setTimeout(() => this.poll(), kPollMs);
    }
  }

  append({ lines, truncated }, first) {
    if (!lines.length) {
      if (first) this.updateCount();
      return;
    }
    const frag = [];
    if (truncated && first) frag.push(this.note('older lines left out: the reply holds at most 512 KiB'));
    // A gap in the sequence: lines the ring evicted before we asked.
    const skipped = lines[0].seq - this.lastSeq - 1;
    if (!first && (skipped > 0 || truncated)) {
      frag.push(this.note(`${skipped > 0 ? skipped : 'some'} lines not shown: they left the daemon's ring before they were read`));
    }
    const needle = this.needle();
    for (const l of lines) {
      frag.push(this.lineElement(l, needle));
      this.lastSeq = Math.max(this.lastSeq, l.seq);
    }
    this.lineCount += lines.length;
    // Exit markers already placed after these lines stay after them.
    for (const el of frag) this.insertByTime(el);
    this.trim();
    this.updateCount();
    if (this.follow.input.checked) this.toBottom();
  }

  lineElement(l, needle) {
    const el = h('div', { class: `ll ll-${l.stream}`, 'data-seq': l.seq, 'data-ts': l.ts_ns },
      h('span', { class: 'll-time' }, formatTime(l.ts_ns)),
      h('span', { class: 'll-stream' }, l.stream === 'stderr' ? 'err' : 'out'),
      untrustedText(l.text, 'll-text'),
      l.cut ? h('span', { class: 'll-cut', title: 'the line was longer than 16 KiB; the rest is counted in output.cut_bytes' }, '[cut]') : null);
    el.searchText = String(l.text).toLowerCase();
    if (needle && !el.searchText.includes(needle)) el.classList.add('miss');
    return el;
  }

  note(text) {
    const el = h('div', { class: 'll-note', 'data-ts': '0' }, text);
    return el;
  }

  // Before any trailing element stamped later than el (exit markers), else at the end.
  insertByTime(el) {
    const ts = Number(el.dataset.ts) || Infinity;
    let after = this.view.lastChild;
    while (after && Number(after.dataset.ts) > ts) after = after.previousSibling;
    if (after) after.after(el);
    else this.view.prepend(el);
  }

  trim() {
    let extra = this.lineCount - kMaxLines;
    while (extra > 0 && this.view.firstChild) {
      const el = this.view.firstChild;
      if (el.classList.contains('ll')) {
        extra -= 1;
        this.lineCount -= 1;
      }
      el.remove();
    }
  }

  // The worker's recent exits (wait records, newest first), as markers and
  // jump targets; currentStartNs: when the worker's current run started.
  setExits(exits, currentStartNs = 0) {
    this.exits = exits.filter((x) => x.wifexited || x.wifsignaled);
    for (const x of this.exits) {
      if (this.view.querySelector(`.ll-exit[data-exit="${x.ts_ns}"]`)) continue;
      let at = x.ts_ns + kExitSlackNs;
      if (currentStartNs > x.ts_ns) at = Math.min(at, currentStartNs - 1);
      this.insertByTime(h('div', { class: `ll-exit tone-${x.wifexited && x.wexitstatus === 0 ? 'ok' : 'bad'}`,
        'data-ts': at, 'data-exit': x.ts_ns, tabindex: '-1' }, exitLabel(x)));
    }
    const current = this.jump.value;
    this.jump.replaceChildren(h('option', { value: '' }, this.exits.length ? 'jump to an exit…' : 'no exits yet'),
      ...this.exits.map((x) => h('option', { value: String(x.ts_ns) }, exitLabel(x))));
    this.jump.disabled = this.exits.length === 0;
    if ([...this.jump.options].some((o) => o.value === current)) this.jump.value = current;
  }

  // Scrolls to the marker of the exit at tsNs and marks the lines around it.
  jumpToExit(tsNs) {
    const marker = this.view.querySelector(`.ll-exit[data-exit="${tsNs}"]`);
    if (!marker) return;
    this.follow.input.checked = false;
    if (this.search.value) {
      this.search.value = '';
      this.applyFilters();
    }
    for (const el of this.view.querySelectorAll('.near')) el.classList.remove('near');
    for (const dir of ['previousElementSibling', 'nextElementSibling']) {
      let el = marker[dir];
      for (let k = 0; el && k < kAround; el = el[dir]) {
        if (!el.classList.contains('ll')) continue;
        el.classList.add('near');
        k += 1;
      }
    }
    this.ownScrolling();
    marker.scrollIntoView({ block: 'center' });
    marker.focus({ preventScroll: true });
  }

  needle() {
    return this.search.value.trim().toLowerCase();
  }

  applyFilters() {
    this.view.classList.toggle('hide-stdout', !this.stdout.input.checked);
    this.view.classList.toggle('hide-stderr', !this.stderr.input.checked);
    const needle = this.needle();
    for (const el of this.view.children) {
      if (el.searchText === undefined) continue;
      el.classList.toggle('miss', !!needle && !el.searchText.includes(needle));
    }
    this.updateCount();
    if (this.follow.input.checked) this.toBottom();
  }

  updateCount() {
    const needle = this.needle();
    let shown = 0;
    for (const el of this.view.children) {
      if (el.searchText === undefined || el.classList.contains('miss')) continue;
      if (!this.stdout.input.checked && el.classList.contains('ll-stdout')) continue;
      if (!this.stderr.input.checked && el.classList.contains('ll-stderr')) continue;
      shown += 1;
    }
    const total = this.lineCount;
    setText(this.count, needle || shown !== total ? `${shown} of ${total} lines` : `${total} lines`);
  }

  // The scroll events of our own scrolling come before the next frame's callbacks.
  ownScrolling() {
    this.ownScroll = true;
    requestAnimationFrame(() => { this.ownScroll = false; });
  }

  atBottom() {
    const v = this.view;
    return v.scrollTop + v.clientHeight >= v.scrollHeight - kBottomSlackPx;
  }

  toBottom() {
    const v = this.view;
    this.ownScrolling();
    v.scrollTop = v.scrollHeight;
  }
}

function exitLabel(x) {
  const cause = causeWords(x.cause);
  return `── ${formatTime(x.ts_ns)} · pid ${x.pid} ${describeWait(x)}${cause ? ` · ${cause}` : ''} ──`;
}
