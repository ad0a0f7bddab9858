// The process tree in the browser: a spawned thread-spawner and its named
// threads, folding, the filter, the scope toggle, and live updates without a
// reload.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { launchBrowser, openDashboard, waitFor, dashboardTest, echoClient } from './harness.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

test('the tree shows a spawned thread-spawner with its six named threads', () => dashboardTest(browser, {}, async ({ daemon, page, context }) => {
  const w = await daemon.api('POST', '/api/workers',
    { program: 'thread-spawner', args: ['--threads', '6'], name: 'spinner' });
  await openDashboard(page, daemon);

  // The CSP the daemon sends: no inline script, no inline style.
  const res = await page.request.get(`${daemon.url}/`);
  assert.match(res.headers()['content-security-policy'], /script-src 'self'/);

  const proc = page.locator('.tree-row:not(.thread):not([hidden])', { has: page.locator('.comm', { hasText: /^thread-spawner$/ }) });
  await proc.waitFor({ timeout: 20000 });
  assert.equal((await proc.locator('.c-pid').textContent()).trim(), String(w.pid));
  // Marked as a worker, with its name and state.
  await waitFor(async () => /spinner · running/.test(await proc.locator('.wbadge').textContent()),
    { message: 'the worker badge to say "spinner · running"' });
  assert.equal((await proc.locator('.c-thr').textContent()).trim(), '▾7');

  // Its threads are listed beneath it, by name (pthread_setname_np).
  const threadNames = async () => page.locator('.tree-row.thread:not([hidden]) .comm').allTextContents();
  await waitFor(async () => (await threadNames()).filter((n) => /^spawn-\d$/.test(n)).length === 6,
    { message: 'six spawn-N thread rows' });
  assert.deepEqual((await threadNames()).filter((n) => n.startsWith('spawn-')).sort(),
    ['spawn-1', 'spawn-2', 'spawn-3', 'spawn-4', 'spawn-5', 'spawn-6']);
  // Thread ids are real tids of that process.
  const tree = await daemon.api('GET', '/api/tree');
  const node = tree[0].children.find((c) => c.pid === w.pid);
  const tids = node.threads.map((t) => String(t.tid));
  for (const tid of await page.locator('.tree-row.thread:not([hidden]) .c-pid').allTextContents()) {
    if (tids.includes(tid)) continue;
    assert.fail(`thread row ${tid} is not a thread of ${w.pid} (${tids})`);
  }

  // The threads fold away and come back.
  await proc.locator('.thr-toggle').click();
  await waitFor(async () => (await threadNames()).length === 0, { message: 'threads to fold' });
  await proc.locator('.thr-toggle').click();
  await waitFor(async () => (await threadNames()).length === 7, { message: 'threads to unfold' });

  // Folding the daemon's row hides the worker.
  const root = page.locator('.tree-row:not([hidden])').first();
  assert.equal((await root.locator('.comm').textContent()), 'forkwatchd');
  await root.locator('.twisty').click();
  await waitFor(async () => (await page.locator('.tree-row:not([hidden])').count()) === 1, { message: 'the root to fold' });
  await root.locator('.twisty').click();

  // The filter finds a thread by name and keeps its process as context.
  await page.fill('#tree-filter', 'spawn-4');
  await waitFor(async () => (await threadNames()).join() === 'spawn-4', { message: 'the filter to leave spawn-4' });
  assert.ok(await proc.isVisible());
  await page.fill('#tree-filter', '');

  // Scope "all" shows the whole machine: pid 1 is a root.
  await page.check('input[name=scope][value=all]');
  await waitFor(async () => (await page.locator('.tree-row:not([hidden]) .c-pid').first().textContent()).trim() === '1',
    { message: 'pid 1 at the top of the all-processes tree' });
  await page.check('input[name=scope][value=supervised]');
  await waitFor(async () => (await page.locator('.tree-row:not([hidden]) .comm').first().textContent()) === 'forkwatchd',
    { message: 'the supervised tree back' });

}));

test('a busy thread shows its CPU live, from sample events alone', () => dashboardTest(browser, {}, async ({ daemon, page }) => {
  const w = await daemon.api('POST', '/api/workers',
    { program: 'thread-spawner', args: ['--threads', '2', '--busy-threads', '1'], name: 'burner' });
  // All three threads exist before the page's first tree (read from /proc,
  // not the API, which would start the sampler early): a thread appearing
  // later would change the tree's shape and refetch it.
  await waitFor(async () => (await readdir(`/proc/${w.pid}/task`)).length === 3, { message: 'three threads' });
  let trees = 0;
  page.on('request', (r) => { if (new URL(r.url()).pathname === '/api/tree') trees += 1; });
  await openDashboard(page, daemon);
  const cpu = (name) => page.locator('.tree-row.thread:not([hidden])', { has: page.locator('.comm', { hasText: new RegExp(`^${name}$`) }) })
    .locator('.c-cpu').textContent().then(Number);
  // The first tree comes from the daemon's first sample of these threads
  // (no CPU yet); the figures that follow arrive in sample events.
  const seen = await waitFor(async () => {
    const [busy, idle] = [await cpu('spawn-1'), await cpu('spawn-2')];
    return busy > 20 && idle < 5 ? { busy, idle } : null;
  }, { timeout: 20000, message: 'spawn-1 above 20 % CPU and spawn-2 below 5 %' });
  assert.equal(trees, 1, `the tree was fetched ${trees} times (${JSON.stringify(seen)})`);
}));

test('a client\'s thread comes and goes in the tree, from sample events alone', () => dashboardTest(browser, {}, async ({ daemon, page }) => {
  const echo = await daemon.api('POST', '/api/workers', { program: 'echo-threads', args: ['--port', '0'], name: 'echo', restart: 'no' });
  const port = await daemon.echoPort(echo.id);
  let trees = 0;
  page.on('request', (r) => { if (new URL(r.url()).pathname === '/api/tree') trees += 1; });
  await openDashboard(page, daemon);
  const server = page.locator('.tree-row:not(.thread):not([hidden])', { has: page.locator('.c-pid', { hasText: new RegExp(`^${echo.pid}$`) }) });
  await server.waitFor({ timeout: 20000 });
  const clientThreads = () => page.locator('.tree-row.thread:not([hidden]) .comm', { hasText: /^client-\d+$/ }).count();
  assert.equal(await clientThreads(), 0);

  const client = await echoClient(port);
  try {
    await waitFor(async () => (await clientThreads()) === 1, { message: 'a client-N thread row under the server' });
    assert.equal((await server.locator('.c-thr').textContent()).trim(), '▾2');
  } finally {
    client.destroy();
  }
  await waitFor(async () => (await clientThreads()) === 0, { message: 'the client thread row to go' });
  assert.equal(trees, 1, `the tree was fetched ${trees} times`);
}));

test('the first answers are preloaded and each asked for once', () => dashboardTest(browser, {}, async ({ daemon, page }) => {
  const asked = new Map();
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.pathname.startsWith('/api/')) asked.set(u.pathname + u.search, (asked.get(u.pathname + u.search) ?? 0) + 1);
  });
  // When the page opens its event stream (a resource entry would come only
  // once the stream ends).
  await page.addInitScript(() => {
    const Native = window.EventSource;
    window.EventSource = class extends Native {
      constructor(...args) {
        super(...args);
        window.firstEventSourceAt ??= performance.now();
      }
    };
  });
  await openDashboard(page, daemon);
  await page.locator('.tree-row:not([hidden]) .comm', { hasText: /^forkwatchd$/ }).waitFor();
  // A preload the page's fetch cannot take over (another mode or credentials)
  // would show as a second request for the same URL.
  for (const url of ['/api/tree?scope=supervised', '/api/workers', '/api/programs']) {
    assert.equal(asked.get(url), 1, `${url} asked for ${asked.get(url) ?? 0} times`);
  }
  // The tree was drawn before the page went on to the event stream.
  const order = await page.evaluate(() => ({
    tree: performance.getEntriesByName('fw:first-tree')[0]?.startTime,
    events: window.firstEventSourceAt,
  }));
  assert.ok(order.tree < order.events, `tree drawn at ${order.tree} ms, event stream opened at ${order.events} ms`);
}));

test('a long tree is drawn as a window of rows that fills the viewport, top and bottom', () => dashboardTest(browser, {}, async ({ daemon, page }) => {
  await daemon.api('POST', '/api/workers',
    { program: 'orphan-maker', args: ['--children', '150', '--linger-ms', '600000', '--stay'], name: 'many', restart: 'no' });
  await openDashboard(page, daemon);
  await waitFor(async () => /^15[2-9] processes/.test(await page.locator('#tree-count').textContent()),
    { timeout: 30000, message: 'the 150 orphans in the tree' });
  // Where the drawn rows start and end, against the viewport's visible part.
  const coverage = () => page.evaluate(() => {
    const vp = document.querySelector('#tree-viewport');
    const box = vp.getBoundingClientRect();
    const rows = [...vp.querySelectorAll('.tree-row:not([hidden])')].map((r) => r.getBoundingClientRect());
    const top = box.top + vp.clientTop;
    return {
      rows: rows.length,
      all: Math.round(document.querySelector('.tree-spacer').getBoundingClientRect().height / 22),
      firstTop: rows[0].top - top,
      lastBottom: rows[rows.length - 1].bottom - (top + vp.clientHeight),
      gaps: rows.slice(1).filter((r, i) => Math.abs(r.top - rows[i].bottom) > 0.5).length,
    };
  });
  const atTop = await coverage();
  assert.ok(atTop.all > 150, `${atTop.all} rows in all`);
  assert.ok(atTop.rows < atTop.all / 2, `${atTop.rows} of ${atTop.all} rows drawn: not a window`);
  assert.ok(atTop.firstTop <= 0 && atTop.lastBottom >= 0, `rows from ${atTop.firstTop} to ${atTop.lastBottom} px around the viewport`);
  assert.equal(atTop.gaps, 0);
  await page.evaluate(() => {
    const vp = document.querySelector('#tree-viewport');
    vp.scrollTop = vp.scrollHeight;
  });
  // At the bottom the last row ends where the scrolled content ends.
  await waitFor(async () => {
    const c = await coverage();
    return c.gaps === 0 && c.firstTop <= 0 && Math.abs(c.lastBottom) < 1 ? c : null;
  }, { message: 'rows drawn down to the last one at the bottom' });
}));

const refusedApiCall = (p) => /^401 GET \/api\//.test(p);

test('without the token the page says how to sign in', () => dashboardTest(browser, { expectedHttp: refusedApiCall }, async ({ daemon, page }) => {
  await page.goto(`${daemon.url}/`);
  await page.locator('#auth-banner:not([hidden])').waitFor();
  await page.locator('#conn[data-state="offline"]').waitFor();
  assert.match(await page.locator('#auth-banner').textContent(), /\?token=/);
  // Refused API calls are all it saw; nothing else went wrong.
  assert.ok(page.problems.http.length > 0);
  for (const p of page.problems.http) assert.ok(refusedApiCall(p), p);
}));

test('workers started elsewhere appear live, without a reload', () => dashboardTest(browser, {}, async ({ daemon, page }) => {
  await openDashboard(page, daemon);
  await page.evaluate(() => { window.sameDocument = true; });
  const w = await daemon.api('POST', '/api/workers',
    { program: 'exit-with', args: ['--sleep'], name: 'latecomer', restart: 'no' });
  const row = page.locator(`#workers-body tr[data-worker-id="${w.id}"]`);
  await row.waitFor({ timeout: 20000 });
  assert.match(await row.textContent(), /latecomer/);
  const proc = page.locator('.tree-row:not([hidden])', { has: page.locator('.c-pid', { hasText: new RegExp(`^${w.pid}$`) }) });
  await proc.waitFor({ timeout: 20000 });
  // It leaves the tree when it ends; the graph drops its block as well.
  await page.locator(`.icicle g.block[data-pid="${w.pid}"]`).waitFor({ timeout: 20000 });
  await daemon.api('POST', `/api/workers/${w.id}/stop`);
  await proc.waitFor({ state: 'detached', timeout: 20000 });
  await waitFor(async () => /killed by SIGTERM/.test(await row.locator('td.last').textContent()),
    { message: 'the worker row to say "killed by SIGTERM"' });
  assert.equal(await page.evaluate(() => window.sameDocument), true, 'the page was reloaded');
}));
