// A dropped event stream comes back. The mechanism is the real one: the
// daemon is stopped with SIGTERM (the stream ends, connections are refused)
// and a new daemon is started on the same port and state dir (same token,
// same database, event ids continue). The browser's EventSource reconnects
// by itself and sends Last-Event-ID; the page resyncs its state without a
// reload.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Daemon, launchBrowser, openDashboard, waitFor, dashboardTest } from './harness.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

// While the daemon is away only the event stream fails (ended, refused),
// and the one refetch of the worker list that the shutdown's exit events
// prompt, when it lands after the daemon closed its port.
const eventStream = (p) => p.endsWith(' GET /api/events') || p === 'net::ERR_CONNECTION_REFUSED GET /api/workers';

test('the event stream reconnects to a restarted daemon with Last-Event-ID', () => dashboardTest(browser, { expectedHttp: eventStream }, async (t) => {
  const { page } = t;
  const streams = [];
  page.on('request', async (r) => {
    const url = new URL(r.url());
    if (url.pathname === '/api/events') {
      const h = await r.allHeaders();
      streams.push({ lastEventId: h['last-event-id'] ?? null, since: url.searchParams.get('since') });
    }
  });
  const first = await t.daemon.api('POST', '/api/workers', { program: 'exit-with', args: ['--sleep'], name: 'before', restart: 'no' });
  await openDashboard(page, t.daemon);
  await page.evaluate(() => { window.sameDocument = true; });
  await page.locator(`#workers-body tr[data-worker-id="${first.id}"]`).waitFor();
  // Some events so that there is an id to resume from.
  await waitFor(async () => /live · #\d+/.test(await page.locator('#conn').textContent()), { message: 'an event id' });

  const { port, stateDir } = t.daemon;
  await t.daemon.stop();
  await waitFor(async () => ['reconnecting', 'offline'].includes(await page.locator('#conn').getAttribute('data-state')),
    { message: 'the indicator to show the loss' });
  const lostAt = streams.length;

  t.daemon = await Daemon.start({ port, stateDir });
  await page.locator('#conn[data-state="live"]').waitFor({ timeout: 30000 });
  // Every reconnect said where it left off: the browser's own retries with
  // Last-Event-ID; ours (after the browser gave up on an HTTP error) with ?since=.
  const retries = streams.slice(1);
  assert.ok(retries.length >= 1 && lostAt >= 1, JSON.stringify(streams));
  for (const r of retries) assert.match(r.lastEventId ?? r.since ?? '', /^\d+$/, JSON.stringify(streams));
  assert.ok(retries.some((r) => r.lastEventId), `the browser sent Last-Event-ID itself: ${JSON.stringify(streams)}`);

  // What happened while away is shown: the shutdown stopped the worker.
  await waitFor(async () => page.evaluate((pid) => [...document.querySelectorAll('#history-body tr')]
    .some((tr) => tr.children[2].textContent === String(pid) && tr.lastElementChild.textContent === 'stopped at daemon shutdown (killed by SIGTERM)'), first.pid),
  { message: 'the shutdown exit of the first worker in the history' });

  // And it is live: a worker started on the new daemon shows up.
  const next = await t.daemon.api('POST', '/api/workers', { program: 'exit-with', args: ['--sleep'], name: 'after', restart: 'no' });
  await page.locator(`#workers-body tr[data-worker-id="${next.id}"]`).waitFor({ timeout: 20000 });
  await page.locator('.tree-row:not([hidden])', { has: page.locator('.c-pid', { hasText: new RegExp(`^${next.pid}$`) }) })
    .waitFor({ timeout: 20000 });
  assert.equal(await page.evaluate(() => window.sameDocument), true, 'the page was reloaded');
}));
