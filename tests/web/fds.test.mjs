// A process's descriptors in the details: echo-fork's listener in the
// parent and one client connection with its addresses in each child; a file
// name with markup in it shows as text.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launchBrowser, openDashboard, waitFor, dashboardTest, echoClient } from './harness.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

const row = (page, pid) => page.locator('.tree-row:not(.thread)', { has: page.locator('.c-pid', { hasText: new RegExp(`^${pid}$`) }) });

async function fdRows(page) {
  return page.locator('#tree-details .fd-row').evaluateAll((rows) => rows.map((r) => ({
    kind: r.children[1].textContent, target: r.children[2].textContent, socket: r.children[3].textContent,
  })));
}

test('opening echo-fork shows its listener, and each child its one client connection with addresses', () => dashboardTest(browser, {}, async ({ daemon, page }) => {
  const w = await daemon.api('POST', '/api/workers', { program: 'echo-fork', args: ['--port', '0'] });
  const port = await daemon.echoPort(w.id);
  const clients = [await echoClient(port), await echoClient(port)];
  try {
    await openDashboard(page, daemon);
    await row(page, w.pid).waitFor({ timeout: 20000 });
    await row(page, w.pid).click();
    await waitFor(async () => (await fdRows(page)).some((r) => r.socket.startsWith(`listen 127.0.0.1:${port}`)),
      { message: 'the listener in the parent\'s descriptors' });
    const parent = await fdRows(page);
    assert.equal(parent.filter((r) => r.socket.startsWith('listen')).length, 1);
    assert.equal(parent.filter((r) => r.socket.startsWith('established')).length, 0);
    assert.equal(await page.locator('#tree-details .fd-shared').count(), 0);

    const kids = await waitFor(async () => {
      const tree = await daemon.api('GET', '/api/tree');
      const node = tree[0].children.find((c) => c.pid === w.pid);
      const k = node ? node.children.filter((c) => c.comm === 'echo-fork-child') : [];
      return k.length === 2 ? k : null;
    }, { message: 'two children' });
    for (const kid of kids) {
      await row(page, kid.pid).waitFor({ timeout: 20000 });
      await row(page, kid.pid).click();
      const est = await waitFor(async () => {
        const rows = await fdRows(page);
        const e = rows.filter((r) => r.socket.startsWith('established'));
        return e.length === 1 && rows.every((r) => !r.socket.startsWith('listen')) ? e : null;
      }, { message: `child ${kid.pid}'s one connection` });
      assert.match(est[0].socket, new RegExp(`^established 127\\.0\\.0\\.1:${port} → 127\\.0\\.0\\.1:\\d+$`));
    }
  } finally {
    for (const c of clients) c.destroy();
  }
}));

// The worker opens the file itself (fd 3), as a process of the tree would.
const kDir = mkdtempSync(path.join(os.tmpdir(), 'fw-fds-'));
const kHostile = path.join(kDir, '<img src=x onerror=alert(1)>');
const kHolder = {
  config: { programs: [{ name: 'holder', command: ['/bin/sh', '-c', `exec 3>"${kHostile}"; exec sleep 600`], restart: 'no' }] },
};

test('a file opened under a name with HTML in it shows as text', () => dashboardTest(browser, { daemon: kHolder }, async ({ daemon, page }) => {
  try {
    await openDashboard(page, daemon);
    const pid = await waitFor(async () => {
      const ws = await daemon.api('GET', '/api/workers');
      return ws.workers[0]?.state === 'running' ? ws.workers[0].pid : null;
    }, { message: 'the holder running' });
    await row(page, pid).waitFor({ timeout: 20000 });
    await row(page, pid).click();
    await waitFor(async () => (await fdRows(page)).some((r) => r.target === kHostile), { message: 'the hostile name as text' });
    assert.equal(await page.evaluate(() => document.getElementsByTagName('img').length), 0);
  } finally {
    rmSync(kDir, { recursive: true, force: true });
  }
}));
