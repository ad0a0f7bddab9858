// The drawing: a forking echo server gains a block per client and loses it
// when the client leaves. Then a busy scene is photographed for the README
// (docs/dashboard.png) and kept as a test artifact.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { launchBrowser, openDashboard, waitFor, saveScreenshot, repoRoot, dashboardTest, echoClient } from './harness.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

function findNode(roots, pid) {
  const stack = [...roots];
  while (stack.length) {
    const n = stack.pop();
    if (n.pid === pid) return n;
    stack.push(...n.children);
  }
  return null;
}

test('a forking echo server grows and loses blocks as clients come and go', () => dashboardTest(browser, {}, async ({ daemon, page }) => {
  const clients = [];
  try {
    const echo = await daemon.api('POST', '/api/workers', { program: 'echo-fork', args: ['--port', '0'], name: 'echo', restart: 'no' });
    const port = await daemon.echoPort(echo.id);
    await openDashboard(page, daemon);
    const blocks = () => page.evaluate((pid) => {
      // The blocks drawn one level below the server's block, inside its span.
      const server = document.querySelector(`.icicle .blocks g.block[data-pid="${pid}"] rect`);
      if (!server) return null;
      const x0 = +server.getAttribute('x'), x1 = x0 + +server.getAttribute('width'), y = +server.getAttribute('y');
      return [...document.querySelectorAll('.icicle .blocks g.block')].filter((g) => {
        const r = g.querySelector('rect');
        const x = +r.getAttribute('x');
        return +r.getAttribute('y') > y && x >= x0 - 0.5 && x < x1;
      }).map((g) => Number(g.getAttribute('data-pid'))).sort((a, b) => a - b);
    }, echo.pid);
    await waitFor(async () => (await blocks())?.length === 0, { message: 'the server block, alone' });

    for (let i = 0; i < 3; i += 1) clients.push(await echoClient(port));
    const kids = await waitFor(async () => {
      const n = findNode(await daemon.api('GET', '/api/tree'), echo.pid);
      return n && n.children.length === 3 ? n.children.map((c) => c.pid).sort((a, b) => a - b) : null;
    }, { message: 'three children in the daemon\'s tree' });
    await waitFor(async () => JSON.stringify(await blocks()) === JSON.stringify(kids),
      { message: `blocks ${kids} under the server` });
    // New blocks arrive flashing, so the change is seen.
    assert.ok(await page.locator('.icicle g.block.entering').count() >= 1 ||
      (await page.locator(`.icicle g.block[data-pid="${kids[0]}"]`).count()) === 1);
    // The table agrees: three children under the server's row.
    const serverRow = page.locator('.tree-row:not([hidden])', { has: page.locator('.c-pid', { hasText: new RegExp(`^${echo.pid}$`) }) });
    await serverRow.locator('.twisty[aria-label^="3 children"]').waitFor({ timeout: 20000 });

    // Two clients leave: their blocks go (as fading ghosts, then not at all).
    clients.shift().destroy();
    clients.shift().destroy();
    await waitFor(async () => (await blocks())?.length === 1, { message: 'one block left under the server' });
    assert.ok(kids.includes((await blocks())[0]), 'the block left is one of the three children');
    await waitFor(async () => (await page.locator('.icicle .ghosts g').count()) === 0, { message: 'the ghosts to fade' });
  } finally {
    for (const c of clients) c.destroy();
  }
}));

test('screenshot of a busy dashboard (artifact, and docs/dashboard.png)', () => dashboardTest(browser, { page: { width: 1440, height: 1100 } }, async ({ daemon, page }) => {
  const clients = [];
  try {
    const start = (program, args, name) => daemon.api('POST', '/api/workers', { program, args, name, restart: 'no' });
    const echo = await start('echo-fork', ['--port', '0'], 'echo');
    await start('thread-spawner', ['--threads', '6', '--busy-threads', '1'], 'spinner');
    const stopped = await start('exit-with', ['--sleep'], 'paused');
    await start('exit-with', ['--code', '12'], 'twelve');
    await start('exit-with', ['--signal', 'SIGSEGV'], 'segv');
    await start('orphan-maker', ['--children', '3', '--linger-ms', '60000'], 'orphans');
    const port = await daemon.echoPort(echo.id);
    for (let i = 0; i < 4; i += 1) clients.push(await echoClient(port));
    await daemon.api('POST', `/api/workers/${stopped.id}/signal`, { signal: 'SIGSTOP' });

    await openDashboard(page, daemon);
    await waitFor(async () => (await page.locator('#workers-body tr').count()) === 6, { message: 'six workers' });
    await waitFor(async () => (await page.locator('#workers-body td.last', { hasText: 'exited 12' }).count()) === 1, { message: 'exited 12' });
    await waitFor(async () => (await page.locator('.icicle .blocks g.block').count()) >= 11, { message: 'the drawing' });
    // A few seconds of samples so the sparklines have a line.
    await waitFor(async () => page.evaluate(() => performance.getEntriesByName('fw:sample-update').length >= 6),
      { message: 'six sample events' });
    await page.mouse.move(0, 0);
    const file = await saveScreenshot(page, 'dashboard.png');
    await mkdir(path.join(repoRoot, 'docs'), { recursive: true });
    await copyFile(file, path.join(repoRoot, 'docs/dashboard.png'));
  } finally {
    for (const c of clients) c.destroy();
  }
}));
