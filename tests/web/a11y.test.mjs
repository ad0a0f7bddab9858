// Contrast and ARIA, measured on the rendered dashboard: every piece of text
// the page shows (tables, tree, banners, the worker page and its output)
// against the background it is actually drawn on, composited through every
// translucent layer, must reach WCAG AA's 4.5:1. Disabled controls are
// exempt (WCAG 1.4.3 "incidental"); the SVG drawing's labels are not text
// of the page's flow and are not measured here.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, openDashboard, waitFor, dashboardTest } from './harness.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

const kConfig = {
  programs: [{ name: 'talker', command: ['/bin/sh', '-c', 'printf "out\\033[1m\\n"; echo err >&2; sleep 600'], autostart: false, restart: 'no' }],
};

// Runs in the page: [{text, ratio, fg, bg, where}] for every text below 4.5:1.
function lowContrast() {
  const parse = (c) => {
    const m = c.match(/rgba?\(([^)]+)\)/);
    if (!m) return null;
    const [r, g, b, a = 1] = m[1].split(/[\s,/]+/).filter(Boolean).map(Number);
    return [r, g, b, a];
  };
  const over = (top, under) => {
    const a = top[3];
    return [0, 1, 2].map((i) => top[i] * a + under[i] * (1 - a)).concat(1);
  };
  // The element's background: its own and every ancestor's, composited.
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c[3] > 0) layers.push(c);
      if (c && c[3] >= 1) break;
    }
    let bg = [255, 255, 255, 1];
    for (let i = layers.length - 1; i >= 0; i -= 1) bg = over(layers[i], bg);
    return bg;
  };
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const ratio = (a, b) => { const x = lum(a), y = lum(b); return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); };
  const out = [];
  let measured = 0;
  const elements = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (n.textContent.trim() && n.parentElement) elements.add(n.parentElement);
  }
  for (const el of document.querySelectorAll('input, select')) elements.add(el);
  for (const el of elements) {
    if (el.closest('svg, option, [aria-hidden="true"], :disabled, script, style')) continue;
    if (!el.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true })) continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    const bg = background(el);
    const fg = over(parse(getComputedStyle(el).color), bg);
    const k = ratio(fg, bg);
    measured += 1;
    if (k < 4.5) {
      out.push({ text: (el.textContent || el.value || '').trim().slice(0, 40), ratio: Math.round(k * 100) / 100,
        fg: getComputedStyle(el).color, bg: `rgb(${bg.slice(0, 3).map(Math.round).join(', ')})`,
        where: `${el.tagName.toLowerCase()}.${el.className}` });
    }
  }
  return { measured, low: out };
}

test('every text of the dashboard and the worker page passes WCAG AA contrast (4.5:1)', () => dashboardTest(browser, { daemon: { config: kConfig } }, async ({ daemon, page }) => {
  const start = (program, args, name) => daemon.api('POST', '/api/workers', { program, args, name, restart: 'no' });
  const talker = await start('talker', [], 'talker');
  const paused = await start('exit-with', ['--sleep'], 'paused');
  await start('exit-with', ['--code', '12'], 'twelve');
  await start('thread-spawner', ['--threads', '2'], 'threads');
  await daemon.api('POST', `/api/workers/${paused.id}/signal`, { signal: 'SIGSTOP' });
  await openDashboard(page, daemon);
  await waitFor(async () => (await page.locator('#workers-body td.last', { hasText: 'exited 12' }).count()) === 1, { message: 'exited 12' });
  await waitFor(async () => (await page.locator('#history-body tr').count()) >= 2, { message: 'history rows' });
  // A selected process row (its own background), the banners, the worker page with output.
  await page.locator('.tree-row:not([hidden])', { has: page.locator('.c-pid', { hasText: new RegExp(`^${paused.pid}$`) }) }).click();
  await page.evaluate(() => {
    document.querySelector('#readonly-banner').hidden = false;
    document.querySelector('#auth-banner').hidden = false;
  });
  const before = await page.evaluate(lowContrast);
  await page.locator(`#workers-body tr[data-worker-id="${talker.id}"] .wname`).click();
  await waitFor(async () => (await page.locator('#worker-page .ll').count()) >= 2, { message: 'the output' });
  await page.locator('#worker-page .ll-exit, #worker-page .ll').first().waitFor();
  const open = await page.evaluate(lowContrast);
  assert.ok(before.measured > 100 && open.measured > before.measured, `measured ${before.measured}, then ${open.measured}`);
  assert.deepEqual([...before.low, ...open.low], []);
}));

test('roles and names: every control is named, the regions say what they are', () => dashboardTest(browser, { daemon: { config: kConfig } }, async ({ daemon, page }) => {
  const w = await daemon.api('POST', '/api/workers', { program: 'talker', name: 'talker', restart: 'no' });
  await openDashboard(page, daemon);
  await page.locator(`#workers-body tr[data-worker-id="${w.id}"] .wname`).click();
  await page.locator('#worker-page .ll').first().waitFor();
  const facts = await page.evaluate(() => {
    const name = (e) => (e.getAttribute('aria-label') || e.textContent || e.labels?.[0]?.textContent || '').trim();
    const unnamed = [...document.querySelectorAll('button, select, input')]
      .filter((e) => e.checkVisibility({ checkVisibilityCSS: true }) && !name(e) && !e.closest('label')).map((e) => e.outerHTML.slice(0, 80));
    const dialog = document.querySelector('#worker-page');
    return {
      unnamed,
      dialog: [dialog.getAttribute('role'), document.getElementById(dialog.getAttribute('aria-labelledby'))?.textContent.startsWith('worker ')],
      log: document.querySelector('#worker-page .log-view').getAttribute('role'),
      grid: document.querySelector('#tree-viewport').getAttribute('role'),
      rows: document.querySelectorAll('#tree-viewport [role=row] [role=gridcell]').length > 0,
      scrollRegionsFocusable: [...document.querySelectorAll('.history-wrap, .log-view, .wp-json')].every((e) => e.tabIndex === 0),
      status: [...document.querySelectorAll('[role=status]')].length >= 2,
    };
  });
  assert.deepEqual(facts, { unnamed: [], dialog: ['dialog', true], log: 'log', grid: 'grid', rows: true, scrollRegionsFocusable: true, status: true });
}));
