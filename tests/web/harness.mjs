// What every browser test needs: a real forkwatchd on 127.0.0.1 (its own
// state dir, a free port), headless Debian chromium through playwright-core,
// and waiting with deadlines instead of sleeps.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const binDir = path.resolve(repoRoot, process.env.FORKWATCH_BIN_DIR ?? 'build/bin');
export const webDir = path.join(repoRoot, 'web');
export const artifactsDir = path.join(repoRoot, 'tests/web/artifacts');
export const chromiumPath = process.env.FORKWATCH_CHROMIUM ?? '/usr/bin/chromium';

// Chromium reaches for outside hosts unless told not to (FIELD-NOTES.md).
const kChromiumArgs = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage',
  `--disable-features=${[
    // Chromium 156's headless mode opens a browser window per context and
    // preloads its omnibox popups' WebUI there: a second renderer parsing about
    // a second of script, beside the page under test, on a 2-core machine
    // (measured in a trace of bench/dashboard_render.mjs). Headless windows
    // have no omnibox to pop up.
    'WebUIOmniboxPopup', 'WebUIOmniboxAimPopup',
    // Chromium keeps only the last --disable-features, and playwright passes
    // its own before ours: playwright-core 1.65's list, kept.
    'AvoidUnnecessaryBeforeUnloadCheckSync', 'DestroyProfileOnBrowserClose', 'HttpsUpgrades',
    'HttpsFirstBalancedModeAutoEnable', 'LensOverlay', 'MediaRouter', 'PaintHolding', 'ThirdPartyStoragePartitioning',
    'AvoidCorsURLLoaderRestartOnRedirect', 'OptimizationHints', 'NetworkTimeServiceQuerying', 'AimEnabled',
    'PreconnectToSearch',
  ].join(',')}`,
];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls fn() until it returns something truthy, or throws after timeout ms.
export async function waitFor(fn, { timeout = 20000, interval = 100, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${message}${last instanceof Error ? `: ${last.message}` : ''}`);
    }
    // The poll interval between two looks at the condition, not a wait for
    // the event itself: the deadline above bounds the whole wait.
    await sleep(interval);
  }
}

export class Daemon {
  // Starts forkwatchd. port 0 picks a free one; pass the same stateDir and
  // port to bring a daemon back after stop() (the token file stays).
  static async start({ stateDir, port = 0, config, extraArgs = [] } = {}) {
    const bin = path.join(binDir, 'forkwatchd');
    if (!existsSync(bin)) throw new Error(`${bin} is missing: build it, or set FORKWATCH_BIN_DIR`);
    const dir = stateDir ?? await mkdtemp(path.join(os.tmpdir(), 'fw-web-'));
    const portFile = path.join(dir, 'port');
    await rm(portFile, { force: true });
    const args = ['--listen', `127.0.0.1:${port}`, '--port-file', portFile, '--state-dir', dir,
      '--web-dir', webDir, '--sample-ms', '500', ...extraArgs];
    if (config) {
      const file = path.join(dir, 'config.json');
      await writeFile(file, JSON.stringify(config));
      args.push('--config', file);
    }
    const d = new Daemon();
    d.stateDir = dir;
    d.stderr = '';
    // cwd is the state dir: a worker that crashes (SIGSEGV) dumps its core
    // file into the daemon's working directory, never into the repo.
    d.proc = spawn(bin, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    d.proc.stderr.on('data', (b) => { d.stderr += b.toString(); });
    d.exited = new Promise((resolve) => d.proc.on('exit', (code, signal) => resolve({ code, signal })));
    let exit = null;
    d.exited.then((e) => { exit = e; });
    const text = await waitFor(async () => {
      if (exit) throw new Error(`forkwatchd exited early (${JSON.stringify(exit)}): ${d.stderr}`);
      return existsSync(portFile) ? (await readFile(portFile, 'utf8')).trim() : null;
    }, { timeout: 15000, message: 'forkwatchd to write its port file' });
    d.port = Number(text);
    d.token = (await readFile(path.join(dir, 'token'), 'utf8')).trim();
    d.url = `http://127.0.0.1:${d.port}`;
    return d;
  }

  // The REST API with the bearer token, as a script would call it.
  async api(method, urlPath, body) {
    const res = await fetch(this.url + urlPath, {
      method,
      headers: { Authorization: `Bearer ${this.token}`, 'Content-Type': 'application/json' },
      body: method === 'GET' ? undefined : JSON.stringify(body ?? {}),
    });
    const data = await res.json();
    if (!res.ok) throw new Error(`${method} ${urlPath}: HTTP ${res.status} ${JSON.stringify(data)}`);
    return data;
  }

  // The port an echo server worker printed ("listening on port N").
  async echoPort(workerId) {
    return waitFor(async () => {
      const { lines } = await this.api('GET', `/api/workers/${workerId}/logs?stream=stdout`);
      const m = lines.map((l) => l.text.match(/listening on port (\d+)/)).find(Boolean);
      return m ? Number(m[1]) : null;
    }, { message: `worker ${workerId} to print its port` });
  }

  // The link that signs a browser in; another token (a read-only one) opens a read-only dashboard.
  dashboardLink(token = this.token) {
    return `${this.url}/?token=${encodeURIComponent(token)}`;
  }

  // SIGTERM, as systemd would; SIGKILL if it has not gone in 15 s.
  async stop() {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return this.exited;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 15000);
    const e = await this.exited;
    clearTimeout(timer);
    return e;
  }

  async cleanup() {
    await this.stop();
    await rm(this.stateDir, { recursive: true, force: true });
  }
}

// A client of an echo server, returned once one line came back: by then
// the server has a process or thread serving it.
export async function echoClient(port) {
  const s = net.connect(port, '127.0.0.1');
  await new Promise((resolve, reject) => { s.once('connect', resolve); s.once('error', reject); });
  s.write('ping\n');
  await new Promise((resolve) => s.once('data', resolve));
  return s;
}

export async function launchBrowser() {
  // playwright gives every launch a fresh temporary user-data-dir.
  return chromium.launch({ executablePath: chromiumPath, headless: true, args: kChromiumArgs });
}

// A new page that records what must never happen: script errors, console
// errors (CSP violations are reported there), dialogs.
export async function openPage(browser, { width = 1440, height = 1000 } = {}) {
  const context = await browser.newContext({ viewport: { width, height } });
  const page = await context.newPage();
  const problems = { errors: [], console: [], dialogs: [], http: [] };
  page.on('pageerror', (e) => problems.errors.push(e.message));
  page.on('console', (m) => {
    // Failed requests are listed with their URL under http instead.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.console.push(m.text());
  });
  page.on('response', (r) => {
    if (r.status() >= 400) problems.http.push(`${r.status()} ${r.request().method()} ${new URL(r.url()).pathname}`);
  });
  page.on('requestfailed', (r) => {
    problems.http.push(`${r.failure()?.errorText} ${r.method()} ${new URL(r.url()).pathname}`);
  });
  page.on('dialog', async (d) => {
    problems.dialogs.push(`${d.type()}: ${d.message()}`);
    await d.dismiss();
  });
  page.problems = problems;
  return { context, page };
}

// Loads the dashboard through its token link and waits for the live stream.
export async function openDashboard(page, daemon, { token } = {}) {
  const res = await page.goto(daemon.dashboardLink(token));
  if (!res || res.status() !== 200) throw new Error(`dashboard answered ${res && res.status()}`);
  await page.locator('#conn[data-state="live"]').waitFor({ timeout: 20000 });
}

export async function saveScreenshot(page, name) {
  await mkdir(artifactsDir, { recursive: true });
  const file = path.join(artifactsDir, name);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

// What a test leaves behind when it fails: the page's problems and the daemon's stderr.
export function report(page, daemon) {
  return `page problems: ${JSON.stringify(page?.problems)}\nforkwatchd stderr:\n${daemon?.stderr ?? ''}`;
}

// One dashboard test: a fresh daemon and page, `body(t)` with
// t = { daemon, page, context } (a body that restarts the daemon puts the new
// one in t.daemon), then the page must have had no script errors, console
// errors, dialogs or failed requests, except the requests `expectedHttp`
// accepts. A failure carries the page's and the daemon's logs; the page and
// the daemon are closed either way.
export async function dashboardTest(browser, { daemon: daemonOptions, page: pageOptions, expectedHttp = () => false } = {}, body) {
  const t = { daemon: await Daemon.start(daemonOptions), ...(await openPage(browser, pageOptions)) };
  try {
    await body(t);
    const { problems } = t.page;
    assert.deepEqual({ ...problems, http: problems.http.filter((p) => !expectedHttp(p)) },
      { errors: [], console: [], dialogs: [], http: [] });
  } catch (e) {
    e.message += `\n${report(t.page, t.daemon)}`;
    throw e;
  } finally {
    await t.context.close();
    await t.daemon.cleanup();
  }
}
