// flowgate's dashboard: reads the admin API with the admin token (kept for the browser
// tab's session only) and renders each page from it; the overview follows the live view
// (server-sent events). Nothing is fetched from anywhere but this admin listener.
'use strict';

const state = {
  token: sessionStorage.getItem('flowgate-token') || '',
  page: 'overview',
  live: null,
  rps: [],
  last: {},
  cacheResult: '',
  forecastSeries: '',
  plans: {},
  refresh: null,
};

class Unauthorized extends Error {}

/// The admin API: `{status, json}`; a 401 asks for a token, another error throws with the
/// API's message unless its status is in `opts.ok`.
async function api(path, opts = {}) {
  const headers = { accept: 'application/json' };
  if (state.token) headers.authorization = 'Bearer ' + state.token;
  const init = { method: opts.method || 'GET', headers };
  if (opts.body !== undefined) {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(opts.body);
  }
  const r = await fetch(path, init);
  if (r.status === 401) {
    showLogin('The admin API needs a token.');
    throw new Unauthorized();
  }
  const text = await r.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
  if (!r.ok && !(opts.ok || []).includes(r.status)) {
    const why = json && json.error ? json.error.message : text;
    throw new Error(`${init.method} ${path}: ${r.status} ${why}`);
  }
  return { status: r.status, json };
}

// ---- rendering ------------------------------------------------------------------------

/// An element: `h('td', {class: 'n'}, 'text', child)`; text is always text, never HTML.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/// A number as the dashboard shows it (the browser tests format the API's the same way).
function fmt(v, kind) {
  if (v === undefined || v === null || (typeof v === 'number' && !Number.isFinite(v))) return '–';
  switch (kind) {
    case 'int': return String(Math.round(Number(v)));
    case 'ms': return Number(v).toFixed(1) + ' ms';
    case 'pct': return (Number(v) * 100).toFixed(1) + '%';
    case 'usd': return '$' + String(v);
    case 'usdf': return '$' + Number(v).toFixed(6);
    case 'rate': return Number(v).toFixed(2);
    case 'bytes': {
      const n = Number(v);
      if (n < 1024) return n + ' B';
      if (n < 1048576) return (n / 1024).toFixed(1) + ' KiB';
      return (n / 1048576).toFixed(1) + ' MiB';
    }
    default: return String(v);
  }
}

/// A shown number, named by `field` for the tests.
function val(field, v, kind) {
  return h('span', { 'data-field': field }, fmt(v, kind));
}

function card(label, field, v, kind) {
  return h('div', { class: 'card' }, h('div', { class: 'k' }, label), h('div', { class: 'v' }, val(field, v, kind)));
}

/// A table of `rows`: `cols` are `[heading, row => value, kind?, field?]`; a field names
/// the cell `${field}.${rowKey}` for the tests.
function table(rows, cols, key) {
  if (!rows || rows.length === 0) return h('p', { class: 'muted' }, 'none');
  return h('table', {},
    h('thead', {}, h('tr', {}, cols.map(([head, , kind]) => h('th', { class: kind && kind !== 'text' ? 'n' : null }, head)))),
    h('tbody', {}, rows.map(r => h('tr', {}, cols.map(([, get, kind, field]) => {
      const v = get(r);
      const cell = field && key ? val(`${field}.${key(r)}`, v, kind) : fmt(v, kind);
      return h('td', { class: kind && kind !== 'text' ? 'n' : null }, cell);
    })))));
}

/// A table of whatever scalar fields the objects have (for answers whose shape varies).
function objects(rows) {
  if (!rows || rows.length === 0) return h('p', { class: 'muted' }, 'none');
  const keys = [];
  for (const r of rows) for (const [k, v] of Object.entries(r)) {
    if ((v === null || typeof v !== 'object') && !keys.includes(k)) keys.push(k);
  }
  return table(rows, keys.map(k => [k.replace(/_/g, ' '), r => r[k], typeof rows[0][k] === 'number' ? 'num' : 'text']));
}

function spark(values) {
  const w = 300, hgt = 48;
  const max = Math.max(1e-9, ...values);
  const pts = values.map((v, i) => `${(i / Math.max(1, values.length - 1)) * w},${hgt - (v / max) * (hgt - 4) - 2}`);
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('class', 'spark');
  svg.setAttribute('viewBox', `0 0 ${w} ${hgt}`);
  svg.setAttribute('preserveAspectRatio', 'none');
  const path = document.createElementNS('http://www.w3.org/2000/svg', 'path');
  path.setAttribute('d', pts.length ? 'M' + pts.join(' L') : '');
  svg.append(path);
  return svg;
}

/// A line chart of `history` and `forecast` points (`{t, value}` and `{t, forecast, lo80,
/// hi80}`), the forecast's 80% interval shaded.
function chart(history, forecast) {
  const ns = 'http://www.w3.org/2000/svg';
  const w = 900, hgt = 220, pad = 4;
  const all = [...history.map(p => [p.t, p.value]), ...forecast.flatMap(p => [[p.t, p.lo80], [p.t, p.hi80], [p.t, p.forecast]])]
    .filter(([, v]) => Number.isFinite(v));
  if (all.length < 2) return h('p', { class: 'muted chart' }, 'not enough points to draw yet');
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('class', 'chart');
  svg.setAttribute('viewBox', `0 0 ${w} ${hgt}`);
  const t0 = Math.min(...all.map(p => p[0])), t1 = Math.max(...all.map(p => p[0]));
  const v0 = Math.min(0, ...all.map(p => p[1])), v1 = Math.max(...all.map(p => p[1]), 1e-9);
  const x = t => pad + (t - t0) / Math.max(1, t1 - t0) * (w - 2 * pad);
  const y = v => hgt - pad - (v - v0) / (v1 - v0) * (hgt - 2 * pad);
  const path = (cls, d) => { const p = document.createElementNS(ns, 'path'); p.setAttribute('class', cls); p.setAttribute('d', d); svg.append(p); };
  const line = pts => pts.length ? 'M' + pts.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' L') : '';
  if (forecast.length) {
    const band = [...forecast.map(p => [p.t, p.hi80]), ...forecast.slice().reverse().map(p => [p.t, p.lo80])];
    path('band', line(band) + ' Z');
    path('forecast', line(forecast.map(p => [p.t, p.forecast])));
  }
  path('history', line(history.map(p => [p.t, p.value])));
  return svg;
}

function section(title, ...children) {
  return [h('h2', {}, title), ...children];
}

// ---- pages ----------------------------------------------------------------------------

const pages = {
  async overview() {
    const [score, perf, spend] = await Promise.all([
      api('/api/v1/performance/score'),
      api('/api/v1/performance/metrics'),
      api('/api/v1/cost/summary?window=24h'),
    ]);
    const s = score.json, p = perf.json.overall || {}, m1 = p['1m'] || {}, m5 = p['5m'] || {};
    const lat = m5.latency_ms || {};
    const total = (spend.json && spend.json.total) || {};
    return [
      h('h1', {}, 'Overview'),
      h('div', { class: 'cards' },
        card('Health score', 'overview.score', s.score, 'int'),
        card('Requests / s (1 min)', 'overview.rate', m1.rate_per_second, 'rate'),
        card('Error rate (5 min)', 'overview.error_rate', m5.error_rate, 'pct'),
        card('p50 (5 min)', 'overview.p50', lat.p50, 'ms'),
        card('p95 (5 min)', 'overview.p95', lat.p95, 'ms'),
        card('p99 (5 min)', 'overview.p99', lat.p99, 'ms'),
        card('Spent (24 h)', 'overview.spent', total.usd, 'usd'),
        card('Saved by the cache (24 h)', 'overview.saved', total.saved_usd, 'usd')),
      ...section('Live',
        h('div', { class: 'cards' },
          card('In flight', 'live.in_flight', state.last.requests_in_flight, 'int'),
          card('Requests / s (10 s)', 'live.rps', state.last.rps, 'rate'),
          card('Alerts firing', 'live.firing', state.last.alerts_firing && state.last.alerts_firing.length, 'int')),
        h('div', { id: 'spark' }, spark(state.rps))),
      ...section('Health components', table(s.components, [
        ['component', c => c.name, 'text'],
        ['score', c => c.score, 'int', 'overview.component'],
        ['weight', c => c.weight, 'rate'],
        ['why', c => c.why || c.explanation, 'text'],
      ], c => c.name)),
    ];
  },

  async routes() {
    const perf = (await api('/api/v1/performance/metrics')).json;
    const rows = Object.entries(perf.routes || {}).map(([name, w]) => ({ name, ...(w['5m'] || {}) }));
    return [
      h('h1', {}, 'Routes'),
      h('p', { class: 'muted' }, 'The last 5 minutes.'),
      table(rows, [
        ['route', r => r.name, 'text'],
        ['requests', r => r.requests, 'int', 'routes.requests'],
        ['per second', r => r.rate_per_second, 'rate'],
        ['errors', r => r.errors, 'int', 'routes.errors'],
        ['error rate', r => r.error_rate, 'pct'],
        ['p50', r => r.latency_ms && r.latency_ms.p50, 'ms'],
        ['p95', r => r.latency_ms && r.latency_ms.p95, 'ms'],
        ['p99', r => r.latency_ms && r.latency_ms.p99, 'ms'],
      ], r => r.name),
    ];
  },

  async pools() {
    const lb = (await api('/api/v1/performance/load-balancer/metrics')).json;
    return [h('h1', {}, 'Pools and endpoints'), ...(lb.pools || []).flatMap(p => section(
      `${p.pool} — ${p.strategy}`,
      h('p', { class: 'muted' }, `retries ${p.retries}, hedges ${p.hedges} (won ${p.hedges_won}), fallbacks ${p.fallbacks}`),
      table(p.endpoints, [
        ['endpoint', e => e.name, 'text'],
        ['weight', e => e.weight, 'int'],
        ['in flight', e => e.in_flight, 'int'],
        ['latency', e => e.latency_ms, 'ms'],
        ['requests', e => e.requests, 'int', `pools.${p.pool}.requests`],
        ['failures', e => e.failures, 'int', `pools.${p.pool}.failures`],
        ['success (recent)', e => e.success_rate, 'pct'],
        ['breaker', e => e.state, 'text'],
      ], e => e.name)))];
  },

  async cache() {
    const r = await api('/api/v1/performance/cache/stats', { ok: [404] });
    if (r.status === 404) return [h('h1', {}, 'Cache'), h('p', { class: 'muted' }, 'The cache is off ([cache] enabled = false).')];
    const s = r.json;
    const [warmed, strategies] = await Promise.all([api('/api/v1/performance/cache/warm'), api('/api/v1/performance/cache/strategies')]);
    const warm = warmed.json, st = strategies.json;
    // What the last action said, kept over the page's re-renders.
    const result = h('p', { id: 'cache-result', class: 'muted' }, state.cacheResult || '');
    const said = text => { state.cacheResult = text; result.textContent = text; };
    const kind = h('select', { id: 'selector' }, ['namespace', 'tag', 'key', 'prefix', 'pattern', 'all'].map(k => h('option', { value: k }, k)));
    const value = h('input', { id: 'selector-value', placeholder: 'a namespace, tag, key, key prefix or glob', size: 36 });
    const invalidate = async ev => {
      ev.preventDefault();
      const body = kind.value === 'all' ? { all: true } : { [kind.value]: value.value };
      try {
        const out = (await api('/api/v1/performance/cache/invalidate', { method: 'POST', body })).json;
        const n = out.invalidated || {};
        said(`invalidated: ${n.memory ?? 0} in memory` + (n.disk != null ? `, ${n.disk} on disk` : '') + (n.redis != null ? `, ${n.redis} in Redis` : ''));
        await show();
      } catch (e) { said(e.message); }
    };
    const top = h('input', { id: 'warm-top', type: 'number', min: 1, value: 50, size: 5 });
    const startWarm = async ev => {
      ev.preventDefault();
      try {
        const out = (await api('/api/v1/performance/cache/warm', { method: 'POST', body: { top: Number(top.value) }, ok: [409] })).json;
        said(out.error ? out.error.message : `warming: ${JSON.stringify(out.job)}`);
        await show();
      } catch (e) { said(e.message); }
    };
    const tier = (name, hits) => ({ name, hits });
    return [
      h('h1', {}, 'Cache'),
      h('div', { class: 'cards' },
        card('Hit rate', 'cache.hit_rate', s.hit_rate, 'pct'),
        card('Hits', 'cache.hits', s.hits, 'int'),
        card('Misses', 'cache.misses', s.misses, 'int'),
        card('Entries', 'cache.entries', s.entries, 'int'),
        card('Size', 'cache.bytes', s.bytes, 'bytes'),
        card('Tokens saved', 'cache.tokens_saved', s.tokens_saved, 'int'),
        card('Saved', 'cache.usd_saved', s.usd_saved, 'usdf')),
      ...section('Tiers', table([tier('memory', s.hits_memory), tier('disk', s.hits_disk), tier('redis', s.hits_redis)], [
        ['tier', t => t.name, 'text'], ['hits', t => t.hits, 'int', 'cache.tier'],
      ], t => t.name)),
      ...section('Categories', objects(s.categories)),
      ...section('Strategy in force',
        h('p', { class: 'muted' }, `default TTL ${fmt(st.defaults.ttl_seconds, 'int')} s, stale-while-revalidate ${fmt(st.defaults.stale_seconds, 'int')} s, refresh ahead ${fmt(st.defaults.refresh_ahead_seconds, 'int')} s`),
        table(st.routes, [
          ['route', x => x.route, 'text'], ['mode', x => x.mode, 'text'], ['namespace', x => x.namespace, 'text'],
          ['TTL (s)', x => x.ttl_seconds ?? st.defaults.ttl_seconds, 'int', 'cache.route_ttl'],
        ], x => x.route),
        table(st.categories, [
          ['category', x => x.name, 'text'], ['TTL (s)', x => x.ttl_seconds, 'int', 'cache.category_ttl'], ['tags', x => (x.tags || []).join(', '), 'text'],
        ], x => x.name)),
      ...section('Invalidate',
        h('form', { class: 'inline', id: 'invalidate', onsubmit: invalidate }, kind, value, h('button', { type: 'submit' }, 'Invalidate'))),
      ...section('Warm',
        h('form', { class: 'inline', id: 'warm', onsubmit: startWarm }, 'the', top, 'most asked recent requests', h('button', { type: 'submit' }, 'Warm')),
        h('p', { class: 'muted' }, `last job: ${warm && warm.job ? JSON.stringify(warm.job) : 'none'}`)),
      result,
    ];
  },

  async admission() {
    const [rl, cc] = await Promise.all([api('/api/v1/performance/rate-limits'), api('/api/v1/performance/concurrency')]);
    const list = v => Array.isArray(v) ? v : Object.values(v || {}).find(Array.isArray) || [];
    return [
      h('h1', {}, 'Admission'),
      ...section('Rate limits', objects(list(rl.json))),
      ...section('Concurrency limits and queues', objects(list(cc.json))),
    ];
  },

  async cost() {
    const by = g => api(`/api/v1/cost/summary?window=24h&group_by=${g}`);
    const [model, key, team, budgets] = await Promise.all([by('model'), by('key'), by('team'), api('/api/v1/cost/budgets')]);
    const groups = (r, g) => table(r.json.groups || [], [
      [g, x => x.name || x[g] || '(none)', 'text'],
      ['requests', x => x.requests, 'int', `cost.${g}.requests`],
      ['spent', x => x.usd, 'usd', `cost.${g}.spent`],
      ['saved', x => x.saved_usd, 'usd'],
    ], x => x.name || x[g] || '(none)');
    return [
      h('h1', {}, 'Cost'),
      h('p', { class: 'muted' }, 'The last 24 hours.'),
      ...section('By model', groups(model, 'model')),
      ...section('By key', groups(key, 'key')),
      ...section('By team', groups(team, 'team')),
      ...section('Budgets', table(budgets.json.budgets || [], [
        ['budget', b => b.name, 'text'],
        ['limit', b => b.limit_usd, 'usd'],
        ['window', b => b.window, 'text'],
        ['spent', b => b.status && b.status[0] ? b.status[0].spent_usd : null, 'usd'],
        ['used', b => b.status && b.status[0] ? b.status[0].percent / 100 : null, 'pct'],
        ['source', b => b.source, 'text'],
      ], b => b.name)),
    ];
  },

  async alerts() {
    const [alerts, anomalies] = await Promise.all([api('/api/v1/alerts?limit=50'), api('/api/v1/anomalies?limit=50')]);
    const a = alerts.json;
    return [
      h('h1', {}, 'Alerts and anomalies'),
      ...section('Alerts', objects(a.alerts || [])),
      ...section('Recent events', objects(a.events || [])),
      ...section('Anomalies', objects((anomalies.json || {}).anomalies || [])),
    ];
  },

  async capacity() {
    const [b, rec, listed] = await Promise.all([api('/api/v1/capacity/bottlenecks'), api('/api/v1/capacity/recommendations'), api('/api/v1/metrics/series')]);
    const names = (listed.json.series || []).filter(n => !n.startsWith('stage_ms'));
    const pick = names.includes(state.forecastSeries) ? state.forecastSeries
      : names.find(n => n.startsWith('requests_per_second{route=')) || names.find(n => n.startsWith('requests_per_second')) || names[0];
    let forecastView = h('p', { class: 'muted' }, 'no series in the history yet');
    if (pick) {
      const q = encodeURIComponent(pick);
      const [hist, fc] = await Promise.all([
        api(`/api/v1/metrics/history?series=${q}&window=24h`, { ok: [404] }),
        api(`/api/v1/capacity/forecast?series=${q}&days=7`, { ok: [404] }),
      ]);
      const points = (hist.json && hist.json.points) || [];
      const f = (fc.json && fc.json.forecast) || [];
      const choose = h('select', { id: 'forecast-series', onchange: e => { state.forecastSeries = e.target.value; show(); } },
        names.map(n => h('option', { value: n, selected: n === pick }, n)));
      forecastView = h('div', {},
        h('form', { class: 'inline' }, 'series', choose),
        h('p', { class: 'muted' }, 'hourly points kept: ', val('capacity.history_points', fc.json ? fc.json.history_points : 0, 'int'),
          f.length ? `; the last day and the next 7 days forecast, with their 80% interval (${(fc.json.methods || []).join(', ')})` : '; the last day (a forecast needs a day of hourly points)'),
        chart(points, f));
    }
    const outlooks = (b.json.outlooks || []).map(o => ({
      resource: o.resource, scenario: o.scenario, utilization: o.utilization,
      runs_out: o.runs_out ? new Date(o.runs_out.at * 1000).toISOString().slice(0, 10) : 'not within the horizon',
    }));
    return [
      h('h1', {}, 'Forecasts and capacity'),
      ...section('Forecast', forecastView),
      h('p', { class: 'muted' }, `Horizon ${b.json.horizon_days} days; no history yet for: ${(b.json.no_history_yet || []).join(', ') || 'none'}.`),
      ...section('When each resource runs out', table(outlooks, [
        ['resource', o => o.resource, 'text'], ['scenario', o => o.scenario, 'text'],
        ['utilization', o => o.utilization, 'pct'], ['runs out', o => o.runs_out, 'text'],
      ])),
      ...section('Recommendations', objects((rec.json.recommendations || []).map(r => ({ resource: r.resource, scenario: r.scenario, action: r.action, evidence: r.evidence })))),
    ];
  },
};

/// A database's optimization plan (`r`: the API's answer), or what went wrong making it.
function planView(name, r) {
  if (r.status !== 200) return h('p', { class: 'error' }, r.json && r.json.error ? r.json.error.message : String(r.status));
  return table(r.json.steps, [
    ['#', s => s.order, 'int'],
    ['action', s => s.action, 'text'],
    ['index or table', s => s.target, 'text', `databases.${name}.step`],
    ['why', s => s.why, 'text'],
    ['saves', s => s.saved_ms, 'ms'],
    ['size', s => s.size_bytes, 'bytes'],
    ['allowed here', s => (s.allowed ? 'yes' : 'no'), 'text'],
  ], s => s.order);
}

pages.databases = async function databases() {
  const list = (await api('/api/v1/performance/databases')).json.databases || [];
  const out = [h('h1', {}, 'Databases')];
  if (list.length === 0) out.push(h('p', { class: 'muted' }, 'No database is watched: add a [[databases]] entry to the config (docs/advisor.md).'));
  for (const d of list) {
    const q = encodeURIComponent(d.name);
    const slow = await api(`/api/v1/performance/database/slow-queries?database=${q}`, { ok: [409, 502, 504] });
    const health = await api(`/api/v1/performance/database/table-health?database=${q}`, { ok: [502, 504] });
    const findings = health.status === 200
      ? health.json.tables.flatMap(t => t.findings.map(f => ({ key: `${t.table}.${f.kind}`, table: t.table, ...f })))
      : [];
    const w = d.watch || {};
    const shown = h('div', { id: `plan-${d.name}` },
      state.plans[d.name] ? planView(d.name, state.plans[d.name]) : h('p', { class: 'muted' }, 'Not made yet: every slow shape is planned with hypothetical indexes (HypoPG) on the database.'));
    const make = h('button', {
      type: 'button', id: `make-plan-${d.name}`, onclick: async () => {
        const r = await api(`/api/v1/performance/database/optimization-plan?database=${q}`, { ok: [409, 502, 504] });
        state.plans[d.name] = r;
        shown.replaceChildren(planView(d.name, r));
      },
    }, 'Make the optimization plan');
    const ok = slow.status === 200;
    out.push(...section(`${d.name} — ${d.writable ? 'writable (' + (d.actions.join(', ') || 'no actions') + ')' : 'read-only'}`,
      h('p', { class: 'muted' }, `Polled every ${d.poll_seconds} s; slow from ${d.slow_ms} ms; last poll `,
        w.last_poll ? new Date(w.last_poll * 1000).toLocaleTimeString() : 'not yet', w.error ? ` — ${w.error}` : ''),
      h('div', { class: 'cards' },
        card('Slow shapes (last poll)', `databases.${d.name}.slow`, w.slow_last_poll, 'int'),
        card('Shapes called (last poll)', `databases.${d.name}.shapes`, w.shapes_last_poll, 'int'),
        card('Plan changes', `databases.${d.name}.changes`, w.plan_changes, 'int')),
      h('h3', {}, 'Slow queries'),
      ok ? table(slow.json.slow_queries, [
        ['query', s => s.query, 'text'],
        ['calls', s => s.calls, 'int', `databases.${d.name}.calls`],
        ['mean', s => s.mean_ms, 'ms', `databases.${d.name}.mean`],
        ['mean, last poll', s => s.last_poll && s.last_poll.mean_ms, 'ms'],
        ['complexity', s => s.complexity && s.complexity.score, 'int'],
      ], s => s.queryid) : h('p', { class: 'error' }, slow.json.error.message),
      h('h3', {}, 'Plan changes'),
      table(ok ? slow.json.watch.plan_changes || [] : [], [
        ['at', c => new Date(c.at * 1000).toLocaleTimeString(), 'text'],
        ['query', c => c.query, 'text'],
        ['before', c => c.before, 'text'],
        ['after', c => c.after, 'text'],
      ]),
      h('h3', {}, 'Table health'),
      health.status === 200 ? table(findings, [
        ['table', f => f.table, 'text'],
        ['finding', f => f.kind, 'text', `databases.${d.name}.health`],
        ['why', f => f.detail, 'text'],
        ['fix', f => f.statement || '', 'text'],
      ], f => f.key) : h('p', { class: 'error' }, health.json.error.message),
      h('h3', {}, 'Optimization plan'),
      make, shown));
  }
  return out;
};

// ---- the page and the live view --------------------------------------------------------

async function show() {
  const name = (location.hash || '#overview').slice(1);
  state.page = pages[name] ? name : 'overview';
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('here', a.getAttribute('href') === '#' + state.page);
  const main = document.getElementById('page');
  try {
    const content = await pages[state.page]();
    main.replaceChildren(...content);
    main.setAttribute('data-page', state.page);
    document.getElementById('status').textContent = 'updated ' + new Date().toLocaleTimeString();
  } catch (e) {
    if (e instanceof Unauthorized) return;
    main.replaceChildren(h('p', { class: 'error' }, e.message));
  }
}

function onLive(s) {
  const set = (field, v, kind) => {
    const el = document.querySelector(`[data-field="${field}"]`);
    if (el) el.textContent = fmt(v, kind);
  };
  const rps = Object.values(s.requests_per_second || {}).reduce((a, b) => a + (b || 0), 0);
  state.last = { ...s, rps };
  state.rps.push(rps);
  if (state.rps.length > 120) state.rps.shift();
  set('live.in_flight', s.requests_in_flight, 'int');
  set('live.rps', rps, 'rate');
  set('live.firing', (s.alerts_firing || []).length, 'int');
  const sp = document.getElementById('spark');
  if (sp) sp.replaceChildren(spark(state.rps));
}

/// Follows `/api/v1/monitoring/live` (read as a stream: EventSource cannot send the token).
async function live() {
  if (state.live) state.live.abort();
  const ctl = new AbortController();
  state.live = ctl;
  const badge = document.getElementById('live');
  try {
    const headers = state.token ? { authorization: 'Bearer ' + state.token } : {};
    const r = await fetch('/api/v1/monitoring/live', { headers, signal: ctl.signal });
    if (!r.ok) { badge.className = 'live off'; badge.title = 'no live view: ' + r.status; return; }
    badge.className = 'live on';
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const event = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const data = event.split('\n').filter(l => l.startsWith('data:')).map(l => l.slice(5).trim()).join('\n');
        if (data) onLive(JSON.parse(data));
      }
    }
  } catch (e) {
    if (e.name === 'AbortError') return;
  }
  badge.className = 'live off';
  if (state.live === ctl) setTimeout(live, 3000);
}

function showLogin(message) {
  const form = document.getElementById('login');
  form.hidden = false;
  document.getElementById('login-error').textContent = state.token ? 'That token was refused.' : message;
  document.getElementById('page').replaceChildren();
}

function start() {
  document.getElementById('login').addEventListener('submit', ev => {
    ev.preventDefault();
    state.token = document.getElementById('token').value.trim();
    sessionStorage.setItem('flowgate-token', state.token);
    document.getElementById('login').hidden = true;
    show();
    live();
  });
  window.addEventListener('hashchange', show);
  fetch('/dashboard/session').then(r => r.json()).then(s => {
    if (s.token_required && !state.token) return showLogin('The admin API needs a token.');
    show();
    live();
  });
  state.refresh = setInterval(() => { if (document.getElementById('login').hidden) show(); }, 10000);
}

start();
