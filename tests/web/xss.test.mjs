// Process names, command lines and worker names are chosen by whoever starts
// the process. The dashboard must show them as text and never run them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, openDashboard, waitFor, dashboardTest } from './harness.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

const kPayload = '<img src=x onerror=alert(1)>';
const kName = '<script>alert(2)</script>';

// A catalogue program whose process keeps its arguments visible: sh -c 'script' $0...
const kShellWait = {
  config: { programs: [{ name: 'shell-wait', command: ['/bin/sh', '-c', 'sleep 600; exit 0'], autostart: false, restart: 'no' }] },
};

test('an argument <img src=x onerror=alert(1)> shows as text and runs nothing', () => dashboardTest(browser, { daemon: kShellWait }, async ({ daemon, page }) => {
  await openDashboard(page, daemon);
  await page.selectOption('#start-program', 'shell-wait');
  // Quoted, it is one argument; the preview shows the argv the daemon will get.
  await page.fill('#start-args', `'${kPayload}'`);
  await page.fill('#start-name', kName);
  assert.deepEqual(await page.locator('#start-argv .arg').allTextContents(),
    ['/bin/sh', '-c', 'sleep 600; exit 0', kPayload]);
  await page.click('#start-form button[type=submit]');

  const row = page.locator('#workers-body tr', { has: page.locator('.wname', { hasText: kName }) });
  await row.waitFor({ timeout: 20000 });
  assert.equal(await row.locator('.wname').textContent(), kName);
  assert.match(await row.locator('.wcmd').textContent(), /'<img src=x onerror=alert\(1\)>'$/);
  const id = Number(await row.getAttribute('data-worker-id'));
  const w = (await daemon.api('GET', `/api/workers/${id}`));
  assert.deepEqual(w.command.slice(-1), [kPayload]);

  // In the tree: the worker badge and the command line, literally.
  const proc = page.locator('.tree-row:not([hidden])', { has: page.locator('.c-pid', { hasText: new RegExp(`^${w.pid}$`) }) });
  await proc.waitFor({ timeout: 20000 });
  // A sample taken between fork and exec shows the daemon's own command
  // line under the new pid; the next sample has the program's.
  const literal = /sleep 600; exit 0 <img src=x onerror=alert\(1\)>$/;
  await waitFor(async () => literal.test(await proc.locator('.cmd').textContent()),
    { message: 'the worker\'s command line in the tree' });
  assert.match(await proc.locator('.cmd').textContent(), literal);
  assert.match(await proc.locator('.wbadge').textContent(), /^<script>alert\(2\)<\/script> · running$/);
  // Selected, its argv is listed one argument per chip.
  await proc.click();
  await waitFor(async () => (await page.locator('#tree-details .arg').allTextContents()).includes(kPayload),
    { message: 'the payload as one argv chip in the details' });
  // The history's worker menu names it, as text.
  assert.ok((await page.locator('#history-worker option').allTextContents()).includes(`${id} · ${kName}`));
  // The drawing's hover text.
  await page.locator(`.icicle g.block[data-pid="${w.pid}"] rect`).hover();
  await waitFor(async () => (await page.locator('#graph-tip').textContent()).includes(kPayload), { message: 'tooltip' });

  // Nothing ran and nothing was parsed as markup.
  const dom = await page.evaluate(() => ({
    img: document.getElementsByTagName('img').length,
    scripts: [...document.scripts].map((s) => s.getAttribute('src')),
    handlers: [...document.querySelectorAll('*')].filter((e) => [...e.attributes].some((a) => a.name.startsWith('on'))).length,
  }));
  assert.deepEqual(dom, { img: 0, scripts: ['js/main.js'], handlers: 0 });
}));
