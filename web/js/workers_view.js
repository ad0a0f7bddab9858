// WorkersView: the workers table (state, pid, restarts, uptime, last status
// in words, CPU and RSS sparklines, actions) and the form that starts a
// catalogue program. Rows are keyed by worker id and updated in place, so an
// open signal menu or a half-typed form survives live updates.

import { api } from './api.js';
import { h, setText, setClass, $ } from './dom.js';
import {
  describeCause, waitTone, formatDuration, formatBytes, formatPercent, formatTime, formatArgv,
  splitArgs, kMenuSignals, workerHue,
} from './format.js';
import { gridKeys, menuKeys } from './keyboard.js';
import { Sparkline } from './sparkline.js';

// px; narrower than the sparkline's default so the table fits 1280 px with its actions.
const kSparkWidth = 72;

// Arguments worth trying, shown as placeholders for the built-in programs.
const kExampleArgs = {
  'exit-with': '--code 12 --after-ms 5000',
  'thread-spawner': '--threads 6',
  'orphan-maker': '--children 5 --linger-ms 4000',
  'echo-fork': '--port 0',
  'echo-epoll': '--port 0',
  'echo-threads': '--port 0',
  'echo-client': '--port PORT --load 4 --seconds 30',
  'sem-accumulate': '',
  'ipc-pipe': '',
  'ipc-mqueue': '',
};

const kLiveStates = new Set(['starting', 'running', 'stopping']);

export class WorkersView {
  // root: the workers section. notify(message, tone) shows a message;
  // onChange() is called after the list changed (ids or states).
  // refresh() asks for a refetch of the list: a reply to our own request may
  // be older than what events already brought, so the list is refetched after it.
  // onOpen(id, button) opens a worker's page (its name is the button).
  constructor(root, { notify, onChange, refresh, onOpen = () => {} }) {
    this.root = root;
    this.onOpen = onOpen;
    this.readOnly = false;
    this.notify = notify;
    this.refresh = refresh;
    this.onChange = onChange;
    this.tbody = $('#workers-body', root);
    this.empty = $('#workers-empty', root);
    this.rows = new Map();       // id -> row record
    this.workers = new Map();    // id -> worker JSON as GET /api/workers gave it
    // id -> {state, pid, started_at_ns} from events. The daemon sends an event
    // before it publishes the snapshot that GET /api/workers reads, so a
    // refetch prompted by an event can still show the state before it.
    this.overlay = new Map();
    this.lastWait = new Map();   // id -> newest wait record of its main process seen in events or history
    this.nowNs = Date.now() * 1e6;
    this.menu = null;
    gridKeys(this.tbody);
    this.setupForm();
    document.addEventListener('click', (e) => {
      if (this.menu && !this.menu.el.contains(e.target) && e.target !== this.menu.button) this.closeMenu();
    });
    document.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && this.menu) {
        const b = this.menu.button;
        this.closeMenu();
        b.focus();
      }
    });
  }

  // A worker as best known: the fetched record with what events said since.
  info(id) {
    const w = this.workers.get(id);
    const o = this.overlay.get(id);
    return w && o ? { ...w, ...o } : w;
  }

  // spawn, exit, state and restart events, for the overlay.
  noteEvent(type, d) {
    const id = d.worker_id;
    // Kept for ids not listed yet too: a new worker's first events can beat its listing.
    if (id === null || id === undefined) return;
    const o = this.overlay.get(id) ?? {};
    const current = this.info(id) ?? o;
    if (type === 'state' && d.state) {
      o.state = d.state;
    } else if (type === 'restart') {
      o.state = d.state || 'backoff';
    } else if (type === 'spawn' && d.pid > 0) {
      o.pid = d.pid;
      o.started_at_ns = d.ts_ns;
    } else if (type === 'exit' && d.wait && !d.wait.adopted && (current.pid === d.pid || current.pid === undefined)) {
      o.pid = null;
    } else {
      return;
    }
    this.overlay.set(id, o);
    const r = this.rows.get(id);
    if (r) this.fill(r, this.info(id));
  }

  // A read-only session (GET /api/session said role "read"): no start form
  // and no action column; the daemon would refuse them with 403 anyway.
  setReadOnly() {
    this.readOnly = true;
    this.form.remove();
    $('.form-foot', this.root).remove();
    this.root.querySelector('thead th:last-child')?.remove();
    for (const r of this.rows.values()) r.actionsCell?.remove();
    this.closeMenu();
    setText(this.empty, 'No workers yet.');
  }

  // ---- the list

  setWorkers(list) {
    const seen = new Set();
    for (const w of list) {
      seen.add(w.id);
      this.workers.set(w.id, w);
      let r = this.rows.get(w.id);
      if (!r) {
        r = this.makeRow(w);
        this.rows.set(w.id, r);
        this.tbody.append(r.tr);
        this.loadSamples(w.id, r);
      }
      this.fill(r, this.info(w.id));
    }
    for (const [id, r] of this.rows) {
      if (seen.has(id)) continue;
      r.tr.remove();
      this.rows.delete(id);
      this.workers.delete(id);
      this.overlay.delete(id);
      if (this.menu && this.menu.id === id) this.closeMenu();
    }
    this.empty.hidden = list.length > 0;
    this.onChange();
  }

  // A wait status for one of our workers arrived (an event or a history row).
  noteWait(w) {
    if (!w || w.worker_id === null || w.worker_id === undefined || w.adopted) return;
    const worker = this.info(w.worker_id);
    // Only the main process speaks for the worker (orphans carry its id too, as adopted).
    if (worker && worker.pid > 0 && w.pid !== worker.pid && !(w.wifexited || w.wifsignaled)) return;
    const old = this.lastWait.get(w.worker_id);
    if (old && old.ts_ns >= w.ts_ns) return;
    this.lastWait.set(w.worker_id, w);
    const r = this.rows.get(w.worker_id);
    if (r && worker) this.fill(r, this.info(w.worker_id));
  }

  // Daemon time, from sample events: uptimes count on the daemon's clock.
  tick(nowNs) {
    this.nowNs = nowNs;
    for (const [id, r] of this.rows) setText(r.uptime, this.uptime(this.info(id)));
  }

  addSamples(workerSamples, tsNs) {
    for (const s of workerSamples) {
      const r = this.rows.get(s.id);
      if (!r) continue;
      r.cpuSpark.add(tsNs, s.cpu_percent);
      r.rssSpark.add(tsNs, s.rss_bytes);
      this.fillSpark(r);
    }
  }

  async loadSamples(id, r) {
    try {
      const samples = await api.samples(id);
      r.cpuSpark.set(samples.map((p) => [p.ts_ns, p.cpu_percent]));
      r.rssSpark.set(samples.map((p) => [p.ts_ns, p.rss_bytes]));
      this.fillSpark(r);
    } catch {
      // A worker removed meanwhile has no samples; its row goes with the next list.
    }
  }

  uptime(w) {
    if (!w || !kLiveStates.has(w.state) || !w.started_at_ns) return '—';
    return formatDuration((this.nowNs - w.started_at_ns) / 1e9);
  }

  // The newest of: the last exit the daemon reports, a stop or continue seen since.
  lastStatus(w) {
    const seen = this.lastWait.get(w.id);
    const exit = w.last_exit;
    if (seen && (!exit || seen.ts_ns > exit.ts_ns)) return seen;
    return exit;
  }

  makeRow(w) {
    const hue = workerHue(w.id);
    const r = {
      name: h('button', { type: 'button', class: 'wname', title: 'open the worker\'s page: output, exits, config',
        onclick: (e) => this.onOpen(w.id, e.currentTarget) }),
      cmd: h('div', { class: 'wcmd' }),
      state: h('span', { class: 'badge' }),
      paused: h('span', { class: 'badge ws-paused' }),
      pid: h('td', { class: 'num' }),
      restarts: h('td', { class: 'num' }),
      uptime: h('td', { class: 'num' }),
      last: h('td', { class: 'last' }),
      cpuValue: h('span', { class: 'spark-value num' }),
      rssValue: h('span', { class: 'spark-value num' }),
      cpuSpark: new Sparkline('cpu', { hue, width: kSparkWidth }),
      rssSpark: new Sparkline('rss', { hue: (hue + 40) % 360, width: kSparkWidth }),
    };
    r.paused.hidden = true;
    const swatch = h('span', { class: 'swatch', 'aria-hidden': 'true' });
    swatch.style.background = `hsl(${hue} 55% 50%)`;
    const signalButton = h('button', { type: 'button', class: 'btn small', 'aria-haspopup': 'menu',
      'aria-expanded': 'false', text: 'signal ▾' });
    const removeButton = h('button', { type: 'button', class: 'btn small danger', text: 'remove' });
    r.stopButton = h('button', { type: 'button', class: 'btn small', text: 'stop',
      onclick: () => this.act(w.id, 'stop', () => api.stop(w.id)) });
    r.restartButton = h('button', { type: 'button', class: 'btn small', text: 'restart',
      onclick: () => this.act(w.id, 'restart', () => api.restart(w.id)) });
    signalButton.addEventListener('click', () => this.toggleMenu(w.id, signalButton));
    removeButton.addEventListener('click', () => this.confirmRemove(w.id, removeButton));
    r.signalButton = signalButton;
    r.actionsCell = this.readOnly ? null
      : h('td', { class: 'actions' }, r.stopButton, r.restartButton, signalButton, removeButton);
    r.tr = h('tr', { 'data-worker-id': w.id },
      h('td', { class: 'num dim' }, String(w.id)),
      h('td', { class: 'wnamecell' }, h('div', {}, swatch, r.name), r.cmd),
      h('td', { class: 'wstate' }, r.state, ' ', r.paused),
      r.pid, r.restarts, r.uptime, r.last,
      h('td', { class: 'sparkcell' }, r.cpuSpark.canvas, r.cpuValue),
      h('td', { class: 'sparkcell' }, r.rssSpark.canvas, r.rssValue),
      r.actionsCell);
    return r;
  }

  fill(r, w) {
    setText(r.name, w.name);
    const program = w.program ? `${w.program}: ` : '';
    // The effective user, read back from the process: a worker that changed
    // identity itself shows what it really is.
    const who = w.user ? `as ${w.user} · ` : '';
    setText(r.cmd, `${who}${program}${formatArgv(w.command)}`);
    r.cmd.title = `${w.user ? `user ${w.user} (uid ${w.uid}), group ${w.group} (gid ${w.gid})\n` : ''}${formatArgv(w.command)}`;
    setText(r.state, w.state);
    setClass(r.state, `badge ws-${w.state}`);
    // Readiness and health on hover; the list stays one word per state.
    const readiness = [];
    if (kLiveStates.has(w.state) && w.ready !== undefined) readiness.push(w.ready ? 'ready' : 'not ready yet');
    if (w.health) readiness.push(w.health);
    if (w.status_text) readiness.push(`status: ${w.status_text}`);
    r.state.title = readiness.join(' · ');
    const status = this.lastStatus(w);
    // Frozen by the cgroup freezer (pause), or stopped by SIGSTOP.
    const paused = w.paused || (!!status && status.wifstopped && kLiveStates.has(w.state));
    r.paused.hidden = !paused;
    setText(r.paused, paused ? (w.paused ? 'frozen' : 'paused') : '');
    setText(r.pid, w.pid ?? '—');
    setText(r.restarts, w.restarts);
    setText(r.uptime, this.uptime(w));
    let words = status ? describeCause(status) : '—';
    if (w.state === 'fatal' && w.fatal_reason) words = `fatal: ${w.fatal_reason}`;
    if (w.state === 'waiting' && w.waiting_for) words = w.waiting_for;
    setText(r.last, words);
    setClass(r.last, `last tone-${w.state === 'fatal' ? 'bad' : waitTone(status)}`);
    r.last.title = status ? `${formatTime(status.ts_ns)} · pid ${status.pid} · raw status ${status.raw_status}` : '';
    const live = kLiveStates.has(w.state);
    r.stopButton.disabled = !live && w.state !== 'waiting';  // a stop ends a wait too
    r.signalButton.disabled = !(w.pid > 0);
    r.restartButton.disabled = w.state === 'stopping';
  }

  fillSpark(r) {
    const cpu = r.cpuSpark.last();
    const rss = r.rssSpark.last();
    setText(r.cpuValue, cpu === null ? '' : `${formatPercent(cpu)}%`);
    setText(r.rssValue, rss === null ? '' : formatBytes(rss));
    r.cpuSpark.canvas.setAttribute('aria-label', `CPU ${formatPercent(cpu ?? 0)} percent`);
    r.rssSpark.canvas.setAttribute('aria-label', `RSS ${formatBytes(rss ?? 0)}`);
  }

  async act(id, what, call) {
    try {
      await call();
      this.refresh();
      this.notify(`${what}: worker ${id} (${this.workers.get(id)?.name ?? ''}) — done`, 'ok');
    } catch (e) {
      this.notify(`${what} worker ${id}: ${e.message}`, 'bad');
    }
  }

  confirmRemove(id, button) {
    if (button.dataset.armed === '1') {
      delete button.dataset.armed;
      setText(button, 'remove');
      this.act(id, 'remove', async () => {
        await api.remove(id);
        // The daemon sends no event when it forgets a worker: drop the row here.
        this.setWorkers([...this.workers.values()].filter((x) => x.id !== id));
        return null;
      });
      return;
    }
    button.dataset.armed = '1';
    setText(button, 'really remove?');
    setTimeout(() => {
      if (button.dataset.armed === '1') {
        delete button.dataset.armed;
        setText(button, 'remove');
      }
    }, 4000);
  }

  // ---- the signal menu: one popup, placed under the button that opened it

  toggleMenu(id, button) {
    if (this.menu && this.menu.id === id) {
      this.closeMenu();
      return;
    }
    this.closeMenu();
    const el = h('div', { class: 'menu', role: 'menu', 'aria-label': `signals for worker ${id}` });
    menuKeys(el);
    for (const name of kMenuSignals) {
      el.append(h('button', { type: 'button', role: 'menuitem', class: 'menu-item', 'data-signal': name,
        onclick: () => {
          this.closeMenu();
          button.focus();  // a keyboard user carries on from where the menu opened
          this.act(id, name, () => api.signal(id, name));
        } }, name));
    }
    document.body.append(el);
    const box = button.getBoundingClientRect();
    el.style.left = `${Math.max(4, Math.min(box.left + window.scrollX, window.innerWidth - 180))}px`;
    el.style.top = `${box.bottom + window.scrollY + 2}px`;
    button.setAttribute('aria-expanded', 'true');
    this.menu = { id, el, button };
    el.querySelector('button').focus();
  }

  closeMenu() {
    if (!this.menu) return;
    this.menu.el.remove();
    this.menu.button.setAttribute('aria-expanded', 'false');
    this.menu = null;
  }

  // ---- the start form

  setupForm() {
    this.form = $('#start-form', this.root);
    this.programSel = $('#start-program', this.root);
    this.argsInput = $('#start-args', this.root);
    this.nameInput = $('#start-name', this.root);
    this.restartSel = $('#start-restart', this.root);
    this.argvPreview = $('#start-argv', this.root);
    this.formError = $('#start-error', this.root);
    this.programs = new Map();
    const preview = () => this.preview();
    this.programSel.addEventListener('change', () => {
      const p = this.programs.get(this.programSel.value);
      this.argsInput.placeholder = p ? kExampleArgs[p.name] ?? 'arguments' : 'arguments';
      const def = this.restartSel.querySelector('option[value=""]');
      setText(def, p ? `program default (${p.restart})` : 'program default');
      preview();
    });
    this.argsInput.addEventListener('input', preview);
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.submit();
    });
  }

  setPrograms(programs) {
    const current = this.programSel.value;
    this.programs = new Map(programs.map((p) => [p.name, p]));
    this.programSel.replaceChildren(...programs.map((p) =>
      h('option', { value: p.name, title: formatArgv(p.command) }, p.builtin ? p.name : `${p.name} (configured)`)));
    if (this.programs.has(current)) this.programSel.value = current;
    else if (this.programs.has('thread-spawner')) this.programSel.value = 'thread-spawner';
    this.programSel.dispatchEvent(new Event('change'));
  }

  preview() {
    const p = this.programs.get(this.programSel.value);
    const parsed = splitArgs(this.argsInput.value);
    this.argvPreview.replaceChildren();
    if (parsed.error) {
      this.argvPreview.append(h('span', { class: 'tone-bad' }, parsed.error));
      return parsed;
    }
    const argv = [...(p ? p.command : []), ...parsed.args];
    this.argvPreview.append(h('span', { class: 'dim' }, 'argv '));
    for (const a of argv) this.argvPreview.append(h('code', { class: 'arg' }, a));
    return parsed;
  }

  async submit() {
    setText(this.formError, '');
    const parsed = this.preview();
    if (parsed.error) {
      setText(this.formError, `arguments: ${parsed.error}`);
      return;
    }
    const spec = { program: this.programSel.value, args: parsed.args };
    const name = this.nameInput.value.trim();
    if (name) spec.name = name;
    if (this.restartSel.value) spec.restart = this.restartSel.value;
    const button = $('button[type=submit]', this.form);
    button.disabled = true;
    try {
      const w = await api.startWorker(spec);
      this.notify(`started worker ${w.id} "${w.name}" (pid ${w.pid ?? '—'})`, 'ok');
      if (!this.workers.has(w.id)) {
        this.setWorkers([...this.workers.values()].concat([w]).sort((a, b) => a.id - b.id));
      }
      this.refresh();
    } catch (e) {
      setText(this.formError, e.message);
    } finally {
      button.disabled = false;
    }
  }
}
