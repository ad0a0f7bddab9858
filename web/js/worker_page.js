// WorkerPage: everything about one worker in a panel beside the dashboard:
// its state and actions (for an admin session only), CPU and memory charts
// from its samples, its recent exits with their causes in words, its live
// output (LogPanel), its program's config as the API gives it (a read
// session's env values arrive as "***"), and its identity, limits,
// readiness and health fields where the daemon sends them. Opened from a
// worker's name in the table or Enter on its process in the tree; Escape
// closes it and gives focus back. Main thread only.

import { api } from './api.js';
import { h, setText, setClass } from './dom.js';
import { describeWait, formatArgv, formatBytes, formatPercent, formatTime, kMenuSignals, waitTone, workerHue } from './format.js';
import { gridKeys } from './keyboard.js';
import { LogPanel } from './log_panel.js';
import { Sparkline } from './sparkline.js';
import { untrustedText } from './untrusted.js';
import { causeWords, identityFields, readinessFields } from './worker_fields.js';

const kChartWidth = 300;
const kChartHeight = 56;
const kRefetchMs = 120;   // several events of one change (exit, state, spawn) make one refetch

export class WorkerPage {
  // workers: the WorkersView (its act(), confirmRemove(), programs and info());
  // notify(message, tone).
  constructor({ workers, notify }) {
    this.workers = workers;
    this.notify = notify;
    this.readOnly = false;
    this.id = null;
    this.worker = null;
    this.returnFocus = null;
    this.refetchTimer = 0;
    this.logs = new LogPanel({ notify });
    this.title = h('h2', { id: 'wp-title', tabindex: '-1' });
    this.state = h('span', { class: 'badge' });
    this.closeButton = h('button', { type: 'button', class: 'btn small', 'aria-label': 'close the worker page',
      onclick: () => this.close() }, 'close');
    this.actions = h('div', { class: 'wp-actions', role: 'group', 'aria-label': 'worker actions' });
    this.facts = h('div', { class: 'wp-facts' });
    this.cpuValue = h('span', { class: 'num' });
    this.rssValue = h('span', { class: 'num' });
    this.charts = h('div', { class: 'wp-charts' });
    this.exitsBody = h('tbody');
    gridKeys(this.exitsBody);
    this.exitsEmpty = h('p', { class: 'empty' }, 'No exits yet.');
    this.config = h('pre', { class: 'wp-json', tabindex: '0', 'aria-label': 'program config' });
    this.identity = h('div');
    this.readiness = h('div');
    this.readinessSection = section('Readiness and health', this.readiness);
    const exitsTable = h('table', { class: 'grid wp-exits' },
      h('thead', {}, h('tr', {}, ...['time', 'pid', 'status', 'cause', 'raw', 'output'].map((t) =>
        h('th', { scope: 'col' }, t)))),
      this.exitsBody);
    this.exitsWrap = h('div', { class: 'table-wrap' }, exitsTable);
    this.root = h('section', { id: 'worker-page', class: 'worker-page', role: 'dialog', 'aria-modal': 'false',
      'aria-labelledby': 'wp-title', hidden: true },
    h('div', { class: 'panel-head wp-head' }, this.title, this.state, h('span', { class: 'spacer' }), this.closeButton),
    h('div', { class: 'wp-body' },
      this.actions, this.facts,
      section('CPU and memory', this.charts),
      section('Recent exits', this.exitsWrap, this.exitsEmpty),
      section('Output', this.logs.root),
      section('Config', this.config),
      section('Identity and limits', this.identity),
      this.readinessSection));
    this.root.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && !e.defaultPrevented) {
        e.preventDefault();
        this.close();
      }
    });
    document.body.append(this.root);
  }

  setReadOnly(readOnly) {
    this.readOnly = readOnly;
    if (this.worker) this.renderActions();
  }

  // Shows worker id; focus comes back to returnFocus (or the name in its row) on close.
  async open(id, returnFocus = document.activeElement) {
    this.id = id;
    this.returnFocus = returnFocus;
    this.buttons = null;
    this.worker = this.workers.info(id) ?? { id, name: `worker ${id}` };
    const hue = workerHue(id);
    this.cpu = new Sparkline('cpu', { width: kChartWidth, height: kChartHeight, hue });
    this.rss = new Sparkline('rss', { width: kChartWidth, height: kChartHeight, hue: (hue + 40) % 360 });
    this.charts.replaceChildren(
      h('figure', { class: 'wp-chart' }, this.cpu.canvas, h('figcaption', {}, 'CPU ', this.cpuValue)),
      h('figure', { class: 'wp-chart' }, this.rss.canvas, h('figcaption', {}, 'resident memory ', this.rssValue)));
    this.render();
    this.root.hidden = false;
    this.logs.open(id, `worker ${id}`);
    this.title.focus();
    await Promise.all([this.refetch(), this.loadSamples(id)]);
  }

  close() {
    if (this.id === null) return;
    this.id = null;
    this.root.hidden = true;
    this.logs.close();
    clearTimeout(this.refetchTimer);
    const back = this.returnFocus;
    this.returnFocus = null;
    if (back && back.isConnected) back.focus();
  }

  // Events for the worker shown: refetch its record, ask for its output now.
  noteEvent(type, d) {
    if (this.id === null || d.worker_id !== this.id || type === 'sample') return;
    this.logs.poke();
    clearTimeout(this.refetchTimer);
    this.refetchTimer = setTimeout(() => this.refetch(), kRefetchMs);
  }

  addSamples(list, tsNs) {
    if (this.id === null) return;
    const s = list.find((x) => x.id === this.id);
    if (!s) return;
    this.cpu.add(tsNs, s.cpu_percent);
    this.rss.add(tsNs, s.rss_bytes);
    this.chartValues();
  }

  async loadSamples(id) {
    try {
      const samples = await api.samples(id);
      if (id !== this.id) return;
      this.cpu.set(samples.map((p) => [p.ts_ns, p.cpu_percent]));
      this.rss.set(samples.map((p) => [p.ts_ns, p.rss_bytes]));
      this.chartValues();
    } catch {
      // Removed meanwhile: refetch() says so.
    }
  }

  chartValues() {
    const cpu = this.cpu.last();
    const rss = this.rss.last();
    setText(this.cpuValue, cpu === null ? 'no samples yet' : `${formatPercent(cpu)}%`);
    setText(this.rssValue, rss === null ? 'no samples yet' : formatBytes(rss));
    this.cpu.canvas.setAttribute('aria-label', `CPU over the last minutes, now ${formatPercent(cpu ?? 0)} percent`);
    this.rss.canvas.setAttribute('aria-label', `resident memory over the last minutes, now ${formatBytes(rss ?? 0)}`);
  }

  async refetch() {
    const id = this.id;
    if (id === null) return;
    try {
      const w = await api.worker(id);
      if (id !== this.id) return;
      this.worker = w;
      this.render();
    } catch (e) {
      if (id !== this.id) return;
      if (e.status === 404) {
        this.notify(`worker ${id} is gone`, 'ok');
        this.close();
      } else {
        this.notify(`worker ${id}: ${e.message}`, 'bad');
      }
    }
  }

  render() {
    const w = this.worker;
    this.title.replaceChildren(`worker ${w.id} · `, untrustedText(w.name ?? ''));
    setText(this.state, w.state ?? '');
    setClass(this.state, `badge ws-${w.state}`);
    const p = this.workers.programs.get(w.program) ?? null;
    const last = w.last_exit ?? (w.recent_exits ?? [])[0];
    const fact = (label, value) => h('div', { class: 'kv' }, h('span', { class: 'k' }, label), ' ',
      value instanceof Node ? value : h('span', { class: 'v' }, value));
    this.facts.replaceChildren(
      fact('pid', w.pid ?? '—'), fact('restarts', w.restarts ?? 0),
      fact('started', w.started_at_ns ? formatTime(w.started_at_ns) : '—'),
      fact('program', untrustedText(w.program ?? '(command)', 'v')),
      fact('restart', w.restart ?? '—'), fact('stop signal', w.stop_signal ?? '—'),
      fact('last status', last ? `${describeWait(last)}${last.cause ? ` (${causeWords(last.cause)})` : ''}` : '—'),
      h('div', { class: 'argv wp-argv' }, h('span', { class: 'dim' }, 'argv '),
        ...(w.command ?? []).map((a) => untrustedText(a, 'arg'))));
    this.facts.title = formatArgv(w.command);
    this.renderActions();
    this.renderExits(w.recent_exits ?? (w.last_exit ? [w.last_exit] : []));
    this.renderConfig(w, p);
    fillKv(this.identity, identityFields(w, p ?? {}),
      'None reported: the daemon sends user, limits and cgroup fields where they are configured.');
    const ready = readinessFields(w, p ?? {});
    fillKv(this.readiness, ready, '');
    this.readinessSection.hidden = ready.length === 0;
  }

  // The buttons are made once and updated in place: a refetch while one has
  // the focus (a restart's events) must not take the focus away.
  renderActions() {
    const w = this.worker;
    this.actions.hidden = this.readOnly || !w;
    if (this.actions.hidden) {
      this.actions.replaceChildren();
      this.buttons = null;
      return;
    }
    if (!this.buttons) this.buttons = this.makeActions();
    const b = this.buttons;
    const live = ['starting', 'running', 'stopping'].includes(w.state);
    b.stop.disabled = !live;
    b.restart.disabled = w.state === 'stopping';
    b.send.disabled = !(w.pid > 0);
    // One button that says what it will do; only a worker in a cgroup can be frozen.
    b.pause.hidden = !w.cgroup;
    b.pause.textContent = w.paused ? 'resume' : 'pause';
    b.pause.setAttribute('aria-pressed', w.paused ? 'true' : 'false');
    b.pause.disabled = !(w.pid > 0 || w.processes_left > 0) || w.state === 'stopping';
  }

  makeActions() {
    const button = (text, onclick, cls = 'btn small') => h('button', { type: 'button', class: cls, onclick }, text);
    const act = (what, call) => this.workers.act(this.id, what, () => call(this.id));
    const select = h('select', { 'aria-label': 'signal to send' }, ...kMenuSignals.map((s) => h('option', { value: s }, s)));
    const b = {
      stop: button('stop', () => act('stop', api.stop)),
      restart: button('restart', () => act('restart', api.restart)),
      pause: button('pause', () => (this.worker?.paused ? act('resume', api.resume) : act('pause', api.pause))),
      send: button('send signal', () => act(select.value, (id) => api.signal(id, select.value))),
    };
    b.remove = button('remove', () => this.workers.confirmRemove(this.id, b.remove), 'btn small danger');
    this.actions.replaceChildren(b.stop, b.restart, b.pause, h('span', { class: 'wp-signal' }, select, b.send), b.remove);
    return b;
  }

  renderExits(exits) {
    const rows = exits.map((x) => {
      const jump = h('button', { type: 'button', class: 'btn small', onclick: () => this.logs.jumpToExit(x.ts_ns),
        'aria-label': `show the output around the exit at ${formatTime(x.ts_ns)}` }, 'show');
      jump.disabled = !(x.wifexited || x.wifsignaled);
      return h('tr', {},
        h('td', { class: 'num' }, formatTime(x.ts_ns)), h('td', { class: 'num' }, x.pid),
        h('td', { class: `tone-${waitTone(x)}` }, describeWait(x)),
        h('td', { class: 'wp-cause' }, causeWords(x.cause) || '—'),
        h('td', { class: 'num dim' }, `0x${(x.raw_status >>> 0).toString(16).padStart(4, '0')}`),
        h('td', {}, jump));
    });
    this.exitsBody.replaceChildren(...rows);
    this.exitsEmpty.hidden = exits.length > 0;
    this.exitsWrap.hidden = exits.length === 0;
    this.logs.setExits(exits, this.worker?.started_at_ns ?? 0);
  }

  // The program as the catalogue gives it, then what this worker overrides.
  // JSON.stringify escapes C0 controls in strings but not bidi controls:
  // each line still goes through untrustedText.
  renderConfig(w, p) {
    const own = {};
    for (const k of ['restart', 'restart_delay_ms', 'max_restarts', 'stop_signal', 'stop_timeout_ms', 'env', 'cwd', 'output']) {
      if (w[k] !== undefined && (!p || JSON.stringify(w[k]) !== JSON.stringify(p[k]))) own[k] = w[k];
    }
    const text = [
      p ? `// program "${p.name}" (GET /api/programs)` : '// started from a command, not a catalogue program',
      ...(p ? JSON.stringify(p, null, 2).split('\n') : []),
      ...(Object.keys(own).length ? ['// this worker', ...JSON.stringify(own, null, 2).split('\n')] : []),
    ];
    this.config.replaceChildren(...text.map((line) => h('div', { class: line.startsWith('//') ? 'dim' : '' },
      untrustedText(line))));
  }
}

function section(title, ...body) {
  return h('section', { class: 'wp-section' }, h('h3', {}, title), ...body);
}

function fillKv(box, pairs, emptyText) {
  if (!pairs.length) {
    box.replaceChildren(emptyText ? h('p', { class: 'empty' }, emptyText) : '');
    return;
  }
  box.replaceChildren(h('dl', { class: 'wp-kv' },
    ...pairs.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, untrustedText(v))])));
}
