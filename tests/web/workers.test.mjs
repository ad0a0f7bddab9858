// The workers panel: the start form, the signal menu, stop and remove, the
// last status in words, and the history table that records each status.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, openDashboard, waitFor, dashboardTest } from './harness.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

async function startFromForm(page, { program, args, name, restart }) {
  await page.selectOption('#start-program', program);
  await page.fill('#start-args', args);
  await page.fill('#start-name', name);
  if (restart) await page.selectOption('#start-restart', restart);
  await page.click('#start-form button[type=submit]');
  const row = page.locator('#workers-body tr', { has: page.locator('.wname', { hasText: name }) });
  await row.waitFor({ timeout: 20000 });
  return row;
}

const cellText = (row, cls) => row.locator(cls).first().textContent();

// The history rows as objects keyed by the table's headers.
async function historyRows(page) {
  return page.evaluate(() => {
    const heads = [...document.querySelectorAll('#history-table thead th')].map((th) => th.textContent);
    return [...document.querySelectorAll('#history-body tr')].map((tr) =>
      Object.fromEntries([...tr.children].map((td, i) => [heads[i], td.textContent])));
  });
}

test('a worker started from the form is stopped by SIGSTOP from the menu, continued, stopped, removed', () => dashboardTest(browser, {}, async ({ daemon, page }) => {
  await openDashboard(page, daemon);
  const row = await startFromForm(page, { program: 'exit-with', args: '--sleep', name: 'sleeper', restart: 'no' });
  const id = Number(await row.getAttribute('data-worker-id'));
  await waitFor(async () => (await cellText(row, '.badge')) === 'running', { message: 'state running' });
  const [w] = (await daemon.api('GET', '/api/workers')).workers.filter((x) => x.id === id);
  assert.equal(w.name, 'sleeper');
  assert.deepEqual(w.command.slice(-1), ['--sleep']);
  assert.equal(w.restart, 'no');
  // It is in the tree too, marked as the worker.
  const proc = page.locator('.tree-row:not([hidden])', { has: page.locator('.c-pid', { hasText: new RegExp(`^${w.pid}$`) }) });
  await proc.waitFor({ timeout: 20000 });

  // SIGSTOP from the menu.
  await row.locator('button', { hasText: 'signal' }).click();
  await page.locator('.menu [role=menuitem]', { hasText: /^SIGSTOP$/ }).click();
  await waitFor(async () => (await cellText(row, 'td.last')) === 'stopped by SIGSTOP',
    { message: 'last status "stopped by SIGSTOP"' });
  assert.equal(await row.locator('.ws-paused').isVisible(), true);
  await waitFor(async () => (await proc.locator('.c-state').textContent()) === 'T',
    { message: 'process state T in the tree' });
  await page.locator(`.icicle g.block.stopped[data-pid="${w.pid}"]`).waitFor({ timeout: 20000 });
  // ... and its wait status in the history, WIFSTOPPED with WSTOPSIG 19.
  await waitFor(async () => (await historyRows(page)).some((r) =>
    r.pid === String(w.pid) && r.WIFSTOPPED === '1' && r.WSTOPSIG.startsWith('19') && r.WIFEXITED === '0'),
  { message: 'a history row with WIFSTOPPED for the worker' });
  // The store has it too (the row gets its id once written).
  await waitFor(async () => (await historyRows(page)).some((r) => r.pid === String(w.pid) && r.WIFSTOPPED === '1' && r.id !== '…'),
    { message: 'the stored history row' });

  await row.locator('button', { hasText: 'signal' }).click();
  await page.locator('.menu [role=menuitem]', { hasText: /^SIGCONT$/ }).click();
  await waitFor(async () => (await cellText(row, 'td.last')) === 'continued', { message: 'last status "continued"' });
  assert.equal(await row.locator('.ws-paused').isVisible(), false);
  await waitFor(async () => (await historyRows(page)).some((r) => r.pid === String(w.pid) && r.WIFCONTINUED === '1'),
    { message: 'a WIFCONTINUED row' });

  // stop: exit-with keeps SIGTERM's default action, so the kernel ends it.
  await row.locator('button', { hasText: /^stop$/ }).click();
  await waitFor(async () => (await cellText(row, 'td.last')) === 'stopped by request (killed by SIGTERM)',
    { message: 'last status "stopped by request (killed by SIGTERM)"' });
  await waitFor(async () => (await cellText(row, '.badge')) === 'stopped', { message: 'state stopped' });
  await waitFor(async () => (await historyRows(page)).some((r) =>
    r.pid === String(w.pid) && r.WIFSIGNALED === '1' && r.WTERMSIG.startsWith('15') && r['in words'] === 'stopped by request (killed by SIGTERM)'),
  { message: 'a WIFSIGNALED row' });

  // The history filter narrows to one worker.
  await startFromForm(page, { program: 'exit-with', args: '--code 3', name: 'other', restart: 'no' });
  await waitFor(async () => (await historyRows(page)).some((r) => r.WEXITSTATUS === '3'), { message: 'exit 3 row' });
  await page.selectOption('#history-worker', String(id));
  let seen = [];
  await waitFor(async () => {
    seen = await historyRows(page);
    return seen.length >= 3 && seen.every((r) => r.worker === String(id));
  }, { message: 'the history filtered to worker ' + id }).catch((e) => {
    throw new Error(`${e.message}; rows: ${JSON.stringify(seen.map((r) => [r.id, r.worker, r['in words']]))}`);
  });

  // remove asks twice, then the row goes.
  await row.locator('button', { hasText: 'remove' }).click();
  await row.locator('button', { hasText: 'really remove?' }).click();
  await row.waitFor({ state: 'detached', timeout: 20000 });
  assert.equal((await daemon.api('GET', '/api/workers')).workers.some((x) => x.id === id), false);

}));

test('exits read as words: exited 12, killed by SIGSEGV', () => dashboardTest(browser, {}, async ({ daemon, page }) => {
  await openDashboard(page, daemon);
  const twelve = await startFromForm(page, { program: 'exit-with', args: '--code 12', name: 'twelve', restart: 'no' });
  const segv = await startFromForm(page, { program: 'exit-with', args: '--signal SIGSEGV', name: 'segv', restart: 'no' });
  await waitFor(async () => (await cellText(twelve, 'td.last')) === 'exited 12', { message: '"exited 12"' });
  // A core is dumped only where RLIMIT_CORE allows: the words follow WCOREDUMP.
  const words = await waitFor(async () => {
    const t = await cellText(segv, 'td.last');
    return t.startsWith('killed by SIGSEGV') ? t : null;
  }, { message: '"killed by SIGSEGV"' });
  const segvId = await segv.getAttribute('data-worker-id');
  const [last] = (await daemon.api('GET', `/api/history?worker=${segvId}&limit=1`)).rows;
  assert.equal(words, last.wcoredump ? 'killed by SIGSEGV, core dumped' : 'killed by SIGSEGV');
  assert.equal(await cellText(segv, '.badge'), 'exited');

  // A bad argument is refused by the form before anything is sent.
  await page.fill('#start-args', '"unclosed');
  await page.click('#start-form button[type=submit]');
  await waitFor(async () => /unclosed/.test(await page.locator('#start-error').textContent()), { message: 'form error' });
  assert.equal((await daemon.api('GET', '/api/workers')).workers.length, 2);
}));
