// The dashboard's figures (issue 6), measured against a real daemon:
//
//   1. first full render of a 1,000-process tree in headless Chromium
//      (navigation start to the frame after the first tree is drawn);
//   2. one live update of that tree: the script time of applying one `sample`
//      event (1,000 nodes patched, visible rows redrawn), and of a shape
//      change (the tree refetched, parsed, rebuilt and drawn);
//   3. page weight: every static file the page loads, gzip-compressed.
//
// The tree is real: a worker `orphan-maker --children N --linger-ms 600000
// --stay` whose N children are orphaned and adopted by forkwatchd (the child
// subreaper), so the supervised tree holds forkwatchd, the worker and N
// sleeping processes.
//
// With --fed N (for example 10000), the same page is also measured with an
// N-process tree that is FED to it, not real: the daemon's own supervised
// tree (recorded above) with its orphans cloned under fresh pids until there
// are N, served in place of GET /api/tree, and N-node sample events (cloned
// from a real one) served in place of /api/events. The page code and the
// rest of the API are the real ones. Reported separately, labelled "fed".
//
// usage: FORKWATCH_BIN_DIR=build/bin node bench/dashboard_render.mjs [--processes 1000] [--runs 5] [--fed 10000]
import { gzipSync } from 'node:zlib';
import os from 'node:os';
import http from 'node:http';
import { Daemon, launchBrowser, openPage, waitFor } from '../tests/web/harness.mjs';

function arg(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}
const kProcesses = arg('processes', 1000);
const kRuns = arg('runs', 5);
const kFed = arg('fed', 0);

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const ms = (x) => `${x.toFixed(1)} ms`;
const summary = (xs) => `median ${ms(median(xs))}, min ${ms(Math.min(...xs))}, max ${ms(Math.max(...xs))} (n=${xs.length})`;

function countNodes(roots) {
  let n = 0;
  const stack = [...roots];
  while (stack.length) {
    const x = stack.pop();
    n += 1;
    stack.push(...x.children);
  }
  return n;
}

// GET with one Accept-Encoding; resolves to the bytes received.
function rawGet(daemon, urlPath, encoding) {
  return new Promise((resolve, reject) => {
    const req = http.get(`${daemon.url}${urlPath}`, {
      headers: { Authorization: `Bearer ${daemon.token}`, 'Accept-Encoding': encoding },
    }, (res) => {
      let n = 0;
      res.on('data', (b) => { n += b.length; });
      res.on('end', () => resolve(n));
    });
    req.on('error', reject);
  });
}

// Resolves once the page has set the performance mark `name`. A light
// page.evaluate with a PerformanceObserver, not page.waitForFunction: that
// one first injects playwright's own script (tens of ms of main-thread time,
// measured), which would land inside the render being timed.
function waitForMark(page, name, timeout) {
  return page.evaluate(([n, t]) => new Promise((resolve, reject) => {
    const seen = () => performance.getEntriesByName(n, 'mark').length > 0;
    if (seen()) return resolve();
    const obs = new PerformanceObserver(() => {
      if (seen()) {
        obs.disconnect();
        resolve();
      }
    });
    obs.observe({ type: 'mark' });
    setTimeout(() => reject(new Error(`no ${n} mark within ${t} ms`)), t);
  }), [name, timeout]);
}

const daemon = await Daemon.start({ extraArgs: ['--sample-ms', '1000'] });
const browser = await launchBrowser();
try {
  // forkwatchd + the worker + its orphans = kProcesses.
  const orphans = kProcesses - 2;
  await daemon.api('POST', '/api/workers', {
    program: 'orphan-maker', args: ['--children', String(orphans), '--linger-ms', '600000', '--stay'],
    name: 'thousand', restart: 'no',
  });
  const nodes = await waitFor(async () => {
    const n = countNodes(await daemon.api('GET', '/api/tree'));
    return n >= kProcesses ? n : null;
  }, { timeout: 120000, interval: 250, message: `${kProcesses} processes in the supervised tree` });

  // 1. First full render, in a fresh browser context each run (cold cache).
  const first = [];
  const firstScript = [];
  const firstTreeMark = [];
  const treeWait = [];
  const scriptsLoaded = [];
  let weight = null;
  for (let run = 0; run < kRuns; run += 1) {
    const { context, page } = await openPage(browser);
    const statics = [];
    page.on('response', (r) => {
      const u = new URL(r.url());
      if (!u.pathname.startsWith('/api/') && r.request().resourceType() !== 'document' || u.pathname === '/') {
        statics.push(r);
      }
    });
    await page.goto(daemon.dashboardLink());
    await waitForMark(page, 'fw:first-tree-painted', 60000);
    const t = await page.evaluate(() => ({
      painted: performance.getEntriesByName('fw:first-tree-painted')[0].startTime,
      mark: performance.getEntriesByName('fw:first-tree')[0].startTime,
      script: performance.getEntriesByName('fw:tree-update')[0].duration,
      rows: document.querySelectorAll('.tree-row:not([hidden])').length,
      count: document.querySelector('#tree-count').textContent,
      treeWait: (() => {
        const e = performance.getEntriesByType('resource').find((x) => x.name.includes('/api/tree'));
        return e ? e.responseStart - e.requestStart : NaN;
      })(),
      scriptsLoaded: Math.max(...performance.getEntriesByType('resource')
        .filter((x) => x.name.includes('/js/')).map((x) => x.responseEnd)),
    }));
    first.push(t.painted);
    firstTreeMark.push(t.mark);
    firstScript.push(t.script);
    treeWait.push(t.treeWait);
    scriptsLoaded.push(t.scriptsLoaded);
    if (run === 0) {
      console.log(`tree on screen: "${t.count}", ${t.rows} row elements in the DOM (virtual list)`);
      const files = [];
      const seen = new Set();
      for (const r of statics) {
        if (r.status() !== 200 || seen.has(r.url())) continue;
        seen.add(r.url());
        const body = await r.body();
        files.push({ path: new URL(r.url()).pathname, raw: body.length, gzip: gzipSync(body, { level: 9 }).length,
          encoding: r.headers()['content-encoding'] ?? 'identity' });
      }
      weight = files;
    }
    await context.close();
  }

  // 2. Live updates on one open page.
  const { context, page } = await openPage(browser);
  await page.goto(daemon.dashboardLink());
  await page.locator('#conn[data-state="live"]').waitFor({ timeout: 30000 });
  await waitForMark(page, 'fw:first-tree-painted', 60000);
  // How big one sample event is: a second EventSource beside the page's own.
  const sampleInfo = await page.evaluate(() => new Promise((resolve) => {
    const es = new EventSource('/api/events');
    es.addEventListener('sample', (e) => {
      es.close();
      const d = JSON.parse(e.data);
      resolve({ nodes: (d.nodes ?? []).length, bytes: e.data.length });
    });
  }));
  const kSamples = 10;
  const sampleUpdates = await page.evaluate((k) => new Promise((resolve) => {
    const seen = performance.getEntriesByName('fw:sample-update').length;
    const timer = setInterval(() => {
      const all = performance.getEntriesByName('fw:sample-update');
      if (all.length >= seen + k) {
        clearInterval(timer);
        resolve(all.slice(seen, seen + k).map((m) => m.duration));
      }
    }, 50);
  }), kSamples);
  // A shape change: a new worker process appears, the tree is refetched and redrawn.
  const treeUpdates = [];
  for (let i = 0; i < 5; i += 1) {
    const before = await page.evaluate(() => performance.getEntriesByName('fw:tree-update').length);
    const w = await daemon.api('POST', '/api/workers', { program: 'exit-with', args: ['--sleep'], name: `extra-${i}`, restart: 'no' });
    await page.locator('.tree-row:not([hidden])', { has: page.locator('.c-pid', { hasText: new RegExp(`^${w.pid}$`) }) })
      .first().waitFor({ state: 'attached', timeout: 30000 }).catch(() => {});
    const d = await page.waitForFunction((n) => {
      const all = performance.getEntriesByName('fw:tree-update');
      return all.length > n ? all[all.length - 1].duration : null;
    }, before, { timeout: 30000 });
    treeUpdates.push(await d.jsonValue());
  }
  await context.close();

  // 3. The fed tree (--fed N): the recorded tree and sample, cloned to N processes.
  let fed = null;
  if (kFed > 0) {
    fed = await measureFed(browser, daemon, await daemon.api('GET', '/api/tree?scope=supervised'), kFed, kRuns);
  }

  // The daemon's side of GET /api/tree: the same cached JSON, compressed as
  // each Accept-Encoding asks (cpp-httplib picks br first when offered).
  const serverTree = {};
  for (const enc of ['br', 'gzip', 'identity']) {
    const times = [];
    let size = 0;
    for (let i = 0; i < 3; i += 1) {
      const t0 = performance.now();
      const r = await rawGet(daemon, '/api/tree', enc);
      times.push(performance.now() - t0);
      size = r;
    }
    serverTree[enc] = { times, size };
  }

  const cpus = os.cpus();
  console.log(`machine: ${cpus.length} cores (${cpus[0]?.model ?? '?'}), load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  console.log(`chromium: ${browser.version()}; node ${process.version}`);
  console.log(`tree: ${nodes} processes (real daemon, supervised scope; one sample event carries ${sampleInfo.nodes} nodes, ${(sampleInfo.bytes / 1024).toFixed(1)} KiB)`);
  console.log('');
  console.log(`first full render (navigation start to the frame after the tree is drawn): ${summary(first)}`);
  console.log(`  of which the tree drawn (fw:first-tree mark): ${summary(firstTreeMark)}`);
  console.log(`  of which the page's scripts loaded (last module received): ${summary(scriptsLoaded)}`);
  console.log(`  of which waiting for GET /api/tree (request sent to first byte): ${summary(treeWait)}`);
  console.log(`  script time to parse, model and draw the first tree: ${summary(firstScript)}`);
  console.log(`live update, one sample event applied (script time): ${summary(sampleUpdates)}`);
  console.log(`live update, shape change: tree refetched, rebuilt and drawn (script time): ${summary(treeUpdates)}`);
  const rawTotal = weight.reduce((a, f) => a + f.raw, 0);
  const gzTotal = weight.reduce((a, f) => a + f.gzip, 0);
  console.log(`page weight: ${weight.length} files, ${(rawTotal / 1024).toFixed(1)} KiB raw, ${(gzTotal / 1024).toFixed(1)} KiB gzip -9 (per file)`);
  for (const [enc, { times, size }] of Object.entries(serverTree)) {
    console.log(`GET /api/tree, Accept-Encoding ${enc}: ${summary(times)}, ${(size / 1024).toFixed(1)} KiB on the wire`);
  }
  for (const f of weight) console.log(`  ${f.path.padEnd(24)} ${String(f.raw).padStart(7)} B raw ${String(f.gzip).padStart(6)} B gzip (served as ${f.encoding})`);
  if (fed) {
    console.log('');
    console.log(`FED tree (not real processes): ${fed.nodes} processes, ${(fed.treeBytes / 1024).toFixed(0)} KiB of tree JSON; one sample event ${fed.sampleNodes} nodes, ${(fed.sampleBytes / 1024).toFixed(0)} KiB`);
    console.log(`  tree on screen: "${fed.count}", ${fed.rows} row elements in the DOM, ${fed.svg} SVG groups in the drawing`);
    console.log(`  first full render: ${summary(fed.first)}`);
    console.log(`  script time to parse, model and draw the first tree: ${summary(fed.firstScript)}`);
    console.log(`  live update, one sample event applied (script time): ${summary(fed.samples)}`);
    console.log(`  live update, shape change: tree refetched, rebuilt and drawn (script time): ${summary(fed.shape)}`);
    console.log(`  scrolled to the bottom, rows drawn in the next frame: ${summary(fed.scroll)}`);
  }
} finally {
  await browser.close();
  await daemon.cleanup();
}

// The page against a tree of n processes that it is fed (see the header).
async function measureFed(browser, daemon, recorded, n, runs) {
  const root = structuredClone(recorded[0]);
  const template = root.children.find((c) => c.worker_id === null && c.children.length === 0) ?? root.children[0];
  const realCount = countNodes([root]);
  const clones = [];
  for (let i = 0; realCount + clones.length < n; i += 1) {
    const pid = 1_000_000 + i;
    clones.push({ ...template, pid, cpu_percent: (i % 7) * 0.3, threads: [{ ...template.threads[0], tid: pid }] });
  }
  root.children.push(...clones);
  const tree = [root];
  const nodes = countNodes(tree);
  const treeBody = JSON.stringify(tree);
  // One real sample event, then its nodes cloned for the clones.
  const { context: c0, page: p0 } = await openPage(browser);
  await p0.goto(daemon.dashboardLink());
  const real = await p0.evaluate(() => new Promise((resolve) => {
    const es = new EventSource('/api/events');
    es.addEventListener('sample', (e) => {
      es.close();
      resolve(e.data);
    });
  }));
  await c0.close();
  const sample = JSON.parse(real);
  sample.added = [];
  sample.removed = [];
  const known = new Set();
  for (const stack = [root]; stack.length;) {
    const x = stack.pop();
    known.add(x.pid);
    stack.push(...x.children);
  }
  // Processes that came and went meanwhile are dropped, thread counts made to
  // match the tree: a plain sample must not look like a shape change.
  const threadsOf = new Map();
  for (const stack = [root]; stack.length;) {
    const x = stack.pop();
    threadsOf.set(x.pid, x.threads.length);
    stack.push(...x.children);
  }
  sample.nodes = sample.nodes.filter((x) => known.has(x.pid))
    .map((x) => ({ ...x, num_threads: threadsOf.get(x.pid) || x.num_threads }));
  const kEvents = 10;
  const events = [];
  for (let k = 0; k < kEvents; k += 1) {
    const d = { ...sample, ts_ns: sample.ts_ns + k * 1e9,
      nodes: [...sample.nodes, ...clones.map((c, i) => ({ pid: c.pid, state: 'S', cpu_percent: ((i + k) % 9) * 0.2,
        rss_bytes: c.rss_bytes + k * 4096, num_threads: 1 }))] };
    events.push(`id: fed-${k}\nevent: sample\ndata: ${JSON.stringify(d)}\n\n`);
  }
  // Then a shape change: one more process, announced by a sample's `added`;
  // the page refetches the tree (which by then has it).
  const extra = { ...template, pid: 2_000_000, threads: [{ ...template.threads[0], tid: 2_000_000 }] };
  const added = { ...sample, ts_ns: sample.ts_ns + 99e9, added: [extra.pid], nodes: [] };
  events.push(`id: fed-added\nevent: sample\ndata: ${JSON.stringify(added)}\n\n`);
  const grownBody = JSON.stringify([{ ...root, children: [...root.children, extra] }]);
  // retry: the stream ends after the fed events; the browser waits before reconnecting.
  const eventsBody = `retry: 600000\n\n${events.join('')}`;
  const out = { nodes, treeBytes: treeBody.length, sampleNodes: events.length ? sample.nodes.length + clones.length : 0,
    sampleBytes: events[0].length, first: [], firstScript: [], samples: [], shape: [], scroll: [] };
  for (let run = 0; run < runs; run += 1) {
    const { context, page } = await openPage(browser);
    let treeServed = treeBody;
    await page.route('**/api/tree*', (r) => r.fulfill({ status: 200, contentType: 'application/json; charset=utf-8', body: treeServed }));
    let releaseEvents;
    const eventsGate = new Promise((r) => { releaseEvents = r; });
    await page.route('**/api/events*', async (r) => {
      await eventsGate;  // held until the first render is measured
      await r.fulfill({ status: 200, headers: { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' }, body: eventsBody });
    });
    await page.goto(daemon.dashboardLink());
    await waitForMark(page, 'fw:first-tree-painted', 120000);
    const t = await page.evaluate(() => ({
      painted: performance.getEntriesByName('fw:first-tree-painted')[0].startTime,
      script: performance.getEntriesByName('fw:tree-update')[0].duration,
      rows: document.querySelectorAll('.tree-row:not([hidden])').length,
      svg: document.querySelectorAll('.icicle g').length,
      count: document.querySelector('#tree-count').textContent,
    }));
    out.first.push(t.painted);
    out.firstScript.push(t.script);
    if (run === 0) Object.assign(out, { rows: t.rows, svg: t.svg, count: t.count });
    const before = await page.evaluate(() => performance.getEntriesByName('fw:tree-update').length);
    treeServed = grownBody;
    releaseEvents();
    const sampleTimes = await page.waitForFunction((k) => {
      const all = performance.getEntriesByName('fw:sample-update');
      return all.length >= k ? all.slice(0, k).map((m) => m.duration) : null;
    }, kEvents, { timeout: 60000 });
    out.samples.push(...await sampleTimes.jsonValue());
    const shape = await page.waitForFunction((n0) => {
      const all = performance.getEntriesByName('fw:tree-update');
      return all.length > n0 ? all[all.length - 1].duration : null;
    }, before, { timeout: 60000 }).catch(() => null);
    if (shape) out.shape.push(await shape.jsonValue());
    // Scrolling 10,000 rows: jump to the bottom, time to the next frame with rows drawn.
    out.scroll.push(await page.evaluate(() => new Promise((resolve) => {
      const vp = document.querySelector('#tree-viewport');
      const t0 = performance.now();
      vp.scrollTop = vp.scrollHeight;
      requestAnimationFrame(() => requestAnimationFrame(() => resolve(performance.now() - t0)));
    })));
    await context.close();
  }
  return out;
}
