// Every process the kernel reports (issue 15), in the dashboard: ghost rows
// after an exit, 200 short lifetimes on the timeline, the slider's past
// tree, and a hostile argv that stays text. Needs root (the proc connector).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, openDashboard, waitFor, dashboardTest } from './harness.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

const kPayload = '<img src=x onerror=alert(1)>';
const programs = (...list) => ({ config: { programs: list.map(([name, script, ...extra]) => (
  { name, command: ['/bin/sh', '-c', script, ...extra], restart: 'no', autostart: false })) } });

async function startProgram(daemon, program) {
  return daemon.api('POST', '/api/workers', { program });
}

test('a process that exits stays a moment as a ghost row with its exit status', () => dashboardTest(browser, {
  daemon: programs(['ghost', 'sleep 0.5; sh -c "exit 4"; sleep 600']),
}, async ({ daemon, page }) => {
  await openDashboard(page, daemon);
  await startProgram(daemon, 'ghost');
  const ghost = page.locator('#lt-recent tr.is-ghost', { hasText: 'exited 4' });
  await ghost.waitFor({ timeout: 20000 });
  assert.deepEqual(await ghost.locator('td').nth(3).textContent(), 'sh -c \'exit 4\'');
  // New rows are marked new; the long sleep is alive and new.
  await page.locator('#lt-recent tr.is-new td.argv', { hasText: /^sleep 600$/ }).waitFor({ timeout: 20000 });
  // The ghost goes after a few seconds.
  await waitFor(async () => (await ghost.count()) === 0, { timeout: 15000, message: 'the ghost row to go' });
}));

test('the timeline shows 200 short lifetimes of one worker', () => dashboardTest(browser, {
  daemon: programs(['trues', 'for i in $(seq 200); do /bin/true; done; sleep 600']),
}, async ({ daemon, page }) => {
  await openDashboard(page, daemon);
  await startProgram(daemon, 'trues');
  await waitFor(async () => (await page.locator('#lt-timeline rect.lt-life.lt-ok').count()) >= 200,
    { timeout: 20000, message: '200 lifetimes on the timeline' });
  assert.ok(await page.locator('#lt-per-worker .lt-chip', { hasText: 'started in the last minute' }).count() >= 1);
  // A click shows its argv and status.
  await page.locator('#lt-timeline rect.lt-life.lt-ok').first().click();
  await page.locator('#lt-details', { hasText: 'exited 0' }).waitFor({ timeout: 5000 });
}));

test('dragging the slider back shows a since-stopped worker\'s tree; letting go is live again', () => dashboardTest(browser, {
  daemon: programs(['sleepers', 'sleep 600 & sleep 601 & wait']),
}, async ({ daemon, page }) => {
  await openDashboard(page, daemon);
  const w = await startProgram(daemon, 'sleepers');
  await waitFor(async () => (await daemon.api('GET', `/api/lifetimes?worker=${w.id}&alive=true`)).rows.length === 3,
    { message: 'the shell and its two sleepers' });
  await new Promise((r) => setTimeout(r, 2100));  // the slider moves in whole seconds
  await daemon.api('POST', `/api/workers/${w.id}/stop`);
  await waitFor(async () => (await daemon.api('GET', `/api/lifetimes?worker=${w.id}&alive=true`)).rows.length === 0,
    { message: 'the worker to be gone' });
  const row = page.locator('.tree-row:not([hidden])', { has: page.locator('.c-pid', { hasText: new RegExp(`^${w.pid}$`) }) });
  await waitFor(async () => (await row.count()) === 0, { message: 'the live tree without it' });
  await page.locator('#lt-slider').evaluate((el) => {
    el.value = '2';
    el.dispatchEvent(new Event('input'));
  });
  await row.waitFor({ timeout: 10000 });
  assert.match(await page.locator('#lt-slider-text').textContent(), /^tree at /);
  await page.locator('#lt-slider').evaluate((el) => el.dispatchEvent(new Event('change')));
  await waitFor(async () => (await row.count()) === 0, { message: 'the live tree again' });
}));

test('an argv <img src=x onerror=alert(1)> stays text in the lifetimes', () => dashboardTest(browser, {
  daemon: programs(['hostile', 'sleep 0.3; exec sleep 600', kPayload]),
}, async ({ daemon, page }) => {
  await openDashboard(page, daemon);
  await startProgram(daemon, 'hostile');
  const cell = page.locator('#lt-recent td.argv', { hasText: 'onerror' }).first();
  await cell.waitFor({ timeout: 20000 });
  assert.match(await cell.textContent(), /<img src=x onerror=alert\(1\)>/);
  assert.equal(await page.locator('#lt-recent img').count(), 0);
}));

test('a clicked lifetime lists its threads by name', () => dashboardTest(browser, {}, async ({ daemon, page }) => {
  await openDashboard(page, daemon);
  const w = await daemon.api('POST', '/api/workers', { program: 'thread-spawner', args: ['--threads', '3'], name: 'threads' });
  let life;
  await waitFor(async () => {
    [life] = (await daemon.api('GET', `/api/lifetimes?worker=${w.id}&alive=true`)).rows;
    return life && (await daemon.api('GET', `/api/lifetimes/${life.id}/threads`)).rows.length === 3;
  }, { timeout: 20000, message: 'three thread lifetimes stored' });
  await daemon.api('POST', `/api/workers/${w.id}/stop`, {});
  const rect = page.locator(`#lt-timeline rect.lt-life[data-id="${life.id}"]`);
  await rect.waitFor({ timeout: 20000 });
  await rect.click();
  const rows = page.locator('#lt-details .lt-thread-table tbody tr');
  await waitFor(async () => (await rows.count()) === 3, { timeout: 10000, message: 'three thread rows in the details' });
  const names = await rows.locator('td:nth-child(2)').allTextContents();
  assert.deepEqual(names.sort(), ['spawn-1 (was thread-spawner)', 'spawn-2 (was thread-spawner)', 'spawn-3 (was thread-spawner)']);
}));
