// Issue 15's browser figure: fork -> its row drawn in the dashboard.
// A worker forks a process every 250 ms, --forks times (default 40). The page
// records, for each new Lifetimes row, the frame after its insertion
// (requestAnimationFrame, then a task: the row is painted) minus the
// kernel's fork stamp (forked_ns, CLOCK_REALTIME: browser and daemon share
// the clock on this machine). Prints p50, p90 and max in ms. Bounded: the
// forks end by themselves; loopback only. Needs root (the proc connector).
//
// usage: FORKWATCH_BIN_DIR=build/bin node bench/lifetime_latency.mjs [--forks 40]
import { Daemon, launchBrowser, openPage, waitFor } from '../tests/web/harness.mjs';

const i = process.argv.indexOf('--forks');
const forks = i > 0 ? Number(process.argv[i + 1]) : 40;
const daemon = await Daemon.start({ config: { programs: [{ name: 'pulse', restart: 'no', autostart: false,
  command: ['/bin/sh', '-c', `for i in $(seq ${forks}); do sleep 0.25; done; sleep 600`] }] } });
const browser = await launchBrowser();
try {
  const { page } = await openPage(browser);
  await page.goto(daemon.dashboardLink());
  await page.locator('#conn[data-state="live"]').waitFor({ timeout: 20000 });
  await page.evaluate(() => {
    window.lat = [];
    new MutationObserver((muts) => {
      for (const m of muts)
        for (const n of m.addedNodes) {
          const f = n.dataset?.forkedNs;
          if (!f) continue;
          requestAnimationFrame(() => setTimeout(() => window.lat.push(Date.now() - Number(f) / 1e6), 0));
        }
    }).observe(document.querySelector('#lt-recent'), { childList: true });
  });
  await daemon.api('POST', '/api/workers', { program: 'pulse' });
  await waitFor(async () => (await page.evaluate(() => window.lat.length)) >= forks,
    { timeout: forks * 250 + 20000, message: `${forks} rows` });
  const lat = (await page.evaluate(() => window.lat)).sort((a, b) => a - b);
  const p = (q) => lat[Math.min(lat.length - 1, Math.floor(q * (lat.length - 1)))];
  console.log(JSON.stringify({ rows: lat.length, p50_ms: p(0.5), p90_ms: p(0.9), max_ms: lat[lat.length - 1] }));
} finally {
  await browser.close();
  await daemon.cleanup();
}
