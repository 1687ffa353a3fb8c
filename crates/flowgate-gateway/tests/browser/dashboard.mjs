// Drives flowgate's dashboard in a real headless Chromium (playwright-core with the system
// browser): logs in with the admin token, opens every page, checks there is no console
// error and that the numbers shown equal the admin API's, presses the cache's Invalidate
// button, and measures the page's weight and its time to first render. Prints one JSON
// line of results; exits 1 with the failures.
//
// Environment: FLOWGATE_ADMIN (http://127.0.0.1:PORT), FLOWGATE_TOKEN, FLOWGATE_NODE_MODULES
// (where playwright-core is), FLOWGATE_CHROMIUM (the browser), FLOWGATE_SCREENSHOTS (a
// directory for a PNG of each page; none when unset), FLOWGATE_PAGES (the pages to open).
import { createRequire } from 'node:module';

const env = name => {
  const v = process.env[name];
  if (!v) { console.error(`${name} is not set`); process.exit(2); }
  return v;
};
const admin = env('FLOWGATE_ADMIN');
const token = env('FLOWGATE_TOKEN');
const require = createRequire(env('FLOWGATE_NODE_MODULES') + '/');
const { chromium } = require('playwright-core');
const shots = process.env.FLOWGATE_SCREENSHOTS;
const pages = (process.env.FLOWGATE_PAGES || 'overview,routes,pools,cache,admission,cost,alerts,capacity,databases').split(',');

const failures = [];
const fail = m => failures.push(m);

// The dashboard's number format (app.js `fmt`).
function fmt(v, kind) {
  if (v === undefined || v === null || (typeof v === 'number' && !Number.isFinite(v))) return '–';
  switch (kind) {
    case 'int': return String(Math.round(Number(v)));
    case 'ms': return Number(v).toFixed(1) + ' ms';
    case 'pct': return (Number(v) * 100).toFixed(1) + '%';
    case 'usd': return '$' + String(v);
    case 'rate': return Number(v).toFixed(2);
    default: return String(v);
  }
}

async function api(path, init = {}) {
  const r = await fetch(admin + path, { ...init, headers: { authorization: 'Bearer ' + token, 'content-type': 'application/json' } });
  if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`);
  return r.json();
}

const browser = await chromium.launch({ executablePath: env('FLOWGATE_CHROMIUM'), args: ['--no-sandbox'] });
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
const consoleErrors = [];
page.on('console', m => { if (m.type() === 'error' || m.type() === 'warning') consoleErrors.push(`${m.type()}: ${m.text()}`); });
page.on('pageerror', e => consoleErrors.push('uncaught: ' + e.message));
const external = [];
page.on('request', r => { if (!r.url().startsWith(admin)) external.push(r.url()); });

// First render: from navigation to the first paint, and to the login form being usable.
const start = Date.now();
await page.goto(admin + '/dashboard');
await page.waitForSelector('#login:not([hidden])');
const loginMs = Date.now() - start;
await page.waitForLoadState('load');
const paint = await page.evaluate(() => {
  const p = performance.getEntriesByType('paint').find(e => e.name === 'first-contentful-paint');
  const n = performance.getEntriesByType('navigation')[0];
  // The page and what it loaded from /dashboard (its script, style, session), as sent.
  const assets = performance.getEntriesByType('resource').filter(r => new URL(r.name).pathname.startsWith('/dashboard'));
  const weight = [n, ...assets].reduce((a, r) => a + (r.encodedBodySize || 0), 0);
  return { fcp: p ? p.startTime : null, dcl: n ? n.domContentLoadedEventEnd : null, weight, files: assets.length + 1 };
});
const pageWeight = paint.weight;

await page.fill('#token', token);
await page.click('#login button');

async function open(name) {
  await page.evaluate(n => { location.hash = n; }, name);
  await page.waitForSelector(`main[data-page="${name}"]`, { timeout: 15000 });
}

async function shown(field) {
  const el = await page.$(`[data-field="${field}"]`);
  if (!el) { fail(`no ${field} shown`); return null; }
  return (await el.textContent()).trim();
}

async function expect(field, v, kind) {
  // The API must have the figure: a dash on both sides would prove nothing.
  if (v === undefined || v === null) { fail(`${field}: the API has no such figure`); return; }
  const text = await shown(field);
  if (text !== null && text !== fmt(v, kind)) fail(`${field}: shown ${JSON.stringify(text)}, the API says ${JSON.stringify(fmt(v, kind))}`);
}

const checks = {
  async overview() {
    const [score, perf, spend] = await Promise.all([api('/api/v1/performance/score'), api('/api/v1/performance/metrics'), api('/api/v1/cost/summary?window=24h')]);
    await expect('overview.score', score.score, 'int');
    await expect('overview.error_rate', perf.overall['5m'].error_rate, 'pct');
    await expect('overview.p50', perf.overall['5m'].latency_ms.p50, 'ms');
    await expect('overview.p95', perf.overall['5m'].latency_ms.p95, 'ms');
    await expect('overview.spent', spend.total.usd, 'usd');
    await expect('overview.saved', spend.total.saved_usd, 'usd');
    for (const c of score.components) await expect(`overview.component.${c.name}`, c.score, 'int');
  },
  async routes() {
    const perf = await api('/api/v1/performance/metrics');
    for (const [name, w] of Object.entries(perf.routes)) {
      await expect(`routes.requests.${name}`, w['5m'].requests, 'int');
      await expect(`routes.errors.${name}`, w['5m'].errors, 'int');
    }
  },
  async pools() {
    const lb = await api('/api/v1/performance/load-balancer/metrics');
    for (const p of lb.pools) for (const e of p.endpoints) {
      await expect(`pools.${p.pool}.requests.${e.name}`, e.requests, 'int');
      await expect(`pools.${p.pool}.failures.${e.name}`, e.failures, 'int');
    }
  },
  async cache() {
    const s = await api('/api/v1/performance/cache/stats');
    await expect('cache.hit_rate', s.hit_rate, 'pct');
    await expect('cache.hits', s.hits, 'int');
    await expect('cache.misses', s.misses, 'int');
    await expect('cache.entries', s.entries, 'int');
    await expect('cache.tier.memory', s.hits_memory, 'int');
    const st = await api('/api/v1/performance/cache/strategies');
    for (const r of st.routes) await expect(`cache.route_ttl.${r.route}`, r.ttl_seconds ?? st.defaults.ttl_seconds, 'int');
    if (s.entries === 0) fail('the cache holds nothing to invalidate');
    // The Invalidate button drops what the API says it holds.
    await page.selectOption('#selector', 'all');
    await page.click('#invalidate button');
    await page.waitForFunction(() => /invalidated/.test(document.getElementById('cache-result')?.textContent || ''), null, { timeout: 10000 }).catch(() => fail('no answer to Invalidate'));
    const after = await api('/api/v1/performance/cache/stats');
    if (after.entries !== 0) fail(`after Invalidate the cache still holds ${after.entries} entries`);
    await page.waitForFunction(() => document.querySelector('[data-field="cache.entries"]')?.textContent === '0', null, { timeout: 10000 }).catch(() => fail('the page does not show the cache emptied'));
  },
  async capacity() {
    const listed = await api('/api/v1/metrics/series');
    const shownSeries = await page.$eval('#forecast-series', e => e.value).catch(() => null);
    if (!shownSeries) { fail('no forecast series to choose'); return; }
    if (!listed.series.includes(shownSeries)) fail(`forecast of ${shownSeries}, which the history does not list`);
    const fc = await api(`/api/v1/capacity/forecast?series=${encodeURIComponent(shownSeries)}&days=7`);
    await expect('capacity.history_points', fc.history_points, 'int');
    if (!(await page.$('.chart'))) fail('no forecast chart');
  },
  async databases() {
    const list = (await api('/api/v1/performance/databases')).databases;
    if (process.env.FLOWGATE_EXPECT_DATABASE && !list.some(d => d.name === process.env.FLOWGATE_EXPECT_DATABASE)) fail('the database configured is not listed');
    for (const d of list) {
      const q = encodeURIComponent(d.name);
      await expect(`databases.${d.name}.changes`, d.watch.plan_changes, 'int');
      const slow = await api(`/api/v1/performance/database/slow-queries?database=${q}`);
      if (slow.slow_queries.length === 0) fail(`${d.name}: no slow query to compare`);
      for (const s of slow.slow_queries) {
        await expect(`databases.${d.name}.calls.${s.queryid}`, s.calls, 'int');
        await expect(`databases.${d.name}.mean.${s.queryid}`, s.mean_ms, 'ms');
      }
      // The tables' findings, as the API lists them.
      const health = await api(`/api/v1/performance/database/table-health?database=${q}`);
      const found = health.tables.flatMap(t => t.findings.map(f => [`${t.table}.${f.kind}`, f.kind]));
      if (found.length === 0) fail(`${d.name}: no table finding to compare`);
      for (const [key, kind] of found) await expect(`databases.${d.name}.health.${key}`, kind, 'text');
      // The plan is made on asking, and shows the API's steps.
      await page.click(`#make-plan-${d.name}`);
      const first = `[data-field="databases.${d.name}.step.1"]`;
      await page.waitForSelector(first, { timeout: 15000 }).catch(() => fail(`${d.name}: no plan shown`));
      const plan = await api(`/api/v1/performance/database/optimization-plan?database=${q}`);
      if (plan.steps.length === 0) fail(`${d.name}: the plan has no step to compare`);
      for (const st of plan.steps) await expect(`databases.${d.name}.step.${st.order}`, st.target, 'text');
    }
  },
  async cost() {
    const by = await api('/api/v1/cost/summary?window=24h&group_by=model');
    for (const g of by.groups) await expect(`cost.model.requests.${g.name || '(none)'}`, g.requests, 'int');
    for (const g of by.groups) await expect(`cost.model.spent.${g.name || '(none)'}`, g.usd, 'usd');
    if (by.groups.length === 0) fail('no spend by model to compare');
  },
};

const results = {};
for (const name of pages) {
  const before = consoleErrors.length;
  try {
    await open(name);
    if (checks[name]) await checks[name]();
    const error = await page.$('main .error');
    if (error) fail(`${name}: ${await error.textContent()}`);
  } catch (e) {
    fail(`${name}: ${e.message}`);
  }
  if (shots) await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
  results[name] = consoleErrors.length - before;
}
// The live view reached the overview.
await open('overview');
await page.waitForFunction(() => document.getElementById('live')?.classList.contains('on'), null, { timeout: 10000 }).catch(() => fail('the live view did not connect'));
await page.waitForFunction(() => document.querySelector('[data-field="live.in_flight"]')?.textContent !== '–', null, { timeout: 10000 }).catch(() => fail('no live figures shown'));

for (const e of consoleErrors) fail('console ' + e);
for (const u of external) fail('fetched from elsewhere: ' + u);
await browser.close();
console.log(JSON.stringify({ pages: results, page_weight_bytes: pageWeight, page_files: paint.files, login_visible_ms: loginMs, first_contentful_paint_ms: paint.fcp, dom_content_loaded_ms: paint.dcl, failures }));
process.exit(failures.length ? 1 : 0);
