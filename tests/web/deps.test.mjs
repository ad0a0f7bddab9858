// The dependency graph: a worker waiting on another shows why, in the
// dependent's node, while what it waits for is starting and not ready; once
// that one is ready the dependent starts and both nodes say so, from live
// updates alone.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launchBrowser, openDashboard, waitFor, dashboardTest } from './harness.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

const dir = mkdtempSync(path.join(os.tmpdir(), 'fw-deps-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const go = path.join(dir, 'go');

// "db" is ready when it prints "up", which it does once the file `go` exists.
const config = {
  programs: [
    { name: 'db', command: ['/bin/sh', '-c', `while [ ! -e ${go} ]; do sleep 0.05; done; echo up; exec sleep 600`],
      ready: { log: '^up$' }, restart: 'no' },
    { name: 'app', command: ['exit-with', '--sleep'], depends_on: ['db'], restart: 'no' },
  ],
};

// The text of each program's node, by name.
async function nodes(page) {
  return page.locator('#deps .deps-node').evaluateAll((list) => Object.fromEntries(list.map((n) => [
    n.querySelector('.deps-name').textContent,
    { badges: [...n.querySelectorAll('.badge')].map((b) => b.textContent), why: [...n.querySelectorAll('.deps-why')].map((w) => w.textContent) },
  ])));
}

test('the graph shows a worker waiting for its dependency with the reason, then both ready', () => dashboardTest(browser, { daemon: { config } }, async ({ daemon, page }) => {
  await openDashboard(page, daemon);
  await page.locator('#deps').waitFor({ state: 'visible', timeout: 20000 });
  const app = (await daemon.api('GET', '/api/workers')).workers.find((w) => w.name === 'app');
  assert.equal(app.state, 'waiting');
  assert.match(app.waiting_for, /db/);
  // Levels: db first, app to its right.
  assert.deepEqual(await page.locator('#deps .deps-col').evaluateAll((cols) =>
    cols.map((c) => [...c.querySelectorAll('.deps-name')].map((n) => n.textContent))), [['db'], ['app']]);
  await waitFor(async () => {
    const n = await nodes(page);
    return n.app?.badges[0] === 'waiting' && n.app.why[0] === app.waiting_for && n.db?.badges[0] === 'starting · not ready';
  }, { message: 'app waiting with its reason, db starting and not ready' });

  writeFileSync(go, '');
  await waitFor(async () => {
    const n = await nodes(page);
    return n.db?.badges[0] === 'running · ready' && n.app?.badges[0] === 'running · ready' && n.app.why.length === 0;
  }, { message: 'db ready, app started and ready, no reason left' });
  const after = (await daemon.api('GET', '/api/workers')).workers;
  assert.equal(after.find((w) => w.name === 'app').waiting_for, null);
  assert.ok(after.find((w) => w.name === 'db').ready);
}));
