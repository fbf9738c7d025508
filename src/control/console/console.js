// The web console: everything it shows comes from this control node (/health, /metrics,
// /analytics, /v1/query); nothing is fetched from anywhere else.
'use strict';

const POLL_MS = 2000;
const HISTORY = 150;  // samples kept for the charts: 5 minutes at POLL_MS

const state = {
  token: sessionStorage.getItem('das-token') || '',
  previous: null,  // {t, ingest, queries} of the last scrape
  ingest: [],      // [{t, rate}]
  queries: [],
};

const $ = (id) => document.getElementById(id);

function authHeaders() {
  return state.token ? {Authorization: 'Bearer ' + state.token} : {};
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function formatCount(n) {
  return Number(n).toLocaleString('en-US');
}

// --- /health -------------------------------------------------------------------------------

async function refreshHealth() {
  let health;
  try {
    const response = await fetch('/health?format=json', {headers: authHeaders(), cache: 'no-store'});
    health = await response.json();
  } catch (error) {
    document.body.dataset.status = 'unreachable';
    $('status').textContent = 'unreachable';
    $('health-error').hidden = false;
    $('health-error').textContent = 'The control node does not answer /health: ' + error;
    return;
  }
  $('health-error').hidden = true;
  const status = health.status || 'unknown';
  document.body.dataset.status = status;
  $('status').textContent = status;
  const workers = health.workers || [];
  if (workers.length === 0 && status !== 'starting') {
    $('health-error').hidden = false;
    $('health-error').textContent =
        'No detail without a token: give one with role read above.';
  }
  renderWorkers(workers);
  renderShards(health.shards || [], health.replication_factor || 0);
  $('replication').textContent = health.replication_factor ? 'R=' + health.replication_factor : '-';
  const up = workers.filter((w) => w.healthy).length;
  $('workers-up').textContent = workers.length ? up + ' / ' + workers.length : '-';
}

// The worker's clock against the control node's: "+3 ms ±1", "-3,600,012 ms ±2" (past the
// bound: marked as down), "-" until measured.
function clockText(w) {
  if (w.clock_offset_ms === undefined) return '-';
  const ms = Number(w.clock_offset_ms);
  return (ms > 0 ? '+' : '') + formatCount(ms) + ' ms \u00b1' + (w.clock_uncertainty_ms || 0);
}

function renderWorkers(workers) {
  const body = $('workers').tBodies[0];
  body.replaceChildren();
  let rows = 0;
  for (const w of workers) {
    const row = body.insertRow();
    row.dataset.workerId = w.worker_id || 0;
    cell(row, w.worker_id || '-', 'id');
    cell(row, w.address || '', 'address');
    cell(row, w.healthy ? 'up' : 'down', 'state ' + (w.healthy ? 'up' : 'down'));
    cell(row, w.healthy ? formatCount(w.rows || 0) : '-', 'num rows');
    cell(row, clockText(w), 'num clock' + (w.clock_past_bound ? ' down' : ''));
    cell(row, w.error || '', 'error');
    rows += Number(w.rows || 0);
  }
  $('rows').textContent = workers.length ? formatCount(rows) : '-';
  $('workers').dataset.count = workers.length;
  $('workers').dataset.ready = workers.length > 0 ? 'true' : 'false';
}

function renderShards(shards, factor) {
  const body = $('shards').tBodies[0];
  body.replaceChildren();
  $('no-shards').hidden = !(factor === 1 || (shards.length === 0 && factor <= 1));
  let healthy = 0;
  for (const s of shards) {
    const row = body.insertRow();
    row.dataset.shard = s.shard || 0;
    cell(row, s.shard || 0, 'num');
    cell(row, (s.first_slot || 0) + '-' + ((s.end_slot || 0) - 1));
    cell(row, s.leader || 'none', 'leader');
    cell(row, s.term || 0, 'num');
    cell(row, s.commit_index || 0, 'num');
    const replicas = cell(row, '');
    for (const r of s.replicas || []) {
      const span = document.createElement('span');
      const lag = Math.max(0, Number(s.commit_index || 0) - Number(r.applied_index || 0));
      span.className = 'replica ' + (r.role || '') + (r.live ? '' : ' dead');
      span.textContent = r.node + ' ' + (r.role || '?') + (r.live ? ', lag ' + lag : '');
      replicas.appendChild(span);
    }
    cell(row, s.healthy ? 'healthy' : 'degraded', s.healthy ? 'up' : 'down');
    if (s.healthy) healthy++;
  }
  $('shards-healthy').textContent = shards.length ? healthy + ' / ' + shards.length : '-';
  $('shards').dataset.count = shards.length;
  $('shards').dataset.ready = 'true';
}

// --- /metrics and the charts -----------------------------------------------------------------

// The samples of a Prometheus text exposition: [{name, labels, value}].
function parseMetrics(text) {
  const samples = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
    let l;
    while ((l = re.exec(m[2] || '')) !== null) labels[l[1]] = l[2];
    samples.push({name: m[1], labels, value: Number(m[3])});
  }
  return samples;
}

function sum(samples, name, keep) {
  return samples.filter((s) => s.name === name && (!keep || keep(s.labels)))
      .reduce((total, s) => total + s.value, 0);
}

async function refreshMetrics() {
  let text;
  try {
    const response = await fetch('/metrics', {headers: authHeaders(), cache: 'no-store'});
    if (!response.ok) throw new Error('HTTP ' + response.status);
    text = await response.text();
  } catch (error) {
    $('metrics-error').hidden = false;
    $('metrics-error').textContent = 'No rates: /metrics answered ' + error.message +
        ' (a token with role read, or the control node runs with --no-metrics)';
    return;
  }
  $('metrics-error').hidden = true;
  const samples = parseMetrics(text);
  const now = performance.now() / 1000;
  const ingest = sum(samples, 'das_ingest_rows_total', (l) => l.outcome === 'stored');
  const queries = sum(samples, 'das_http_requests_total',
                      (l) => l.route === '/analytics' || l.route === '/v1/query');
  if (state.previous) {
    const dt = now - state.previous.t;
    if (dt > 0) {
      push(state.ingest, {t: now, rate: Math.max(0, ingest - state.previous.ingest) / dt});
      // The console's own queries are among them; the chart shows everyone's.
      push(state.queries, {t: now, rate: Math.max(0, queries - state.previous.queries) / dt});
    }
  }
  state.previous = {t: now, ingest, queries};
  drawChart($('ingest-chart'), state.ingest, $('ingest-rate'));
  drawChart($('query-chart'), state.queries, $('query-rate'));
}

function push(series, point) {
  series.push(point);
  while (series.length > HISTORY) series.shift();
}

function drawChart(svg, series, label) {
  const W = 300, H = 100;
  svg.replaceChildren();
  const last = series.length ? series[series.length - 1].rate : null;
  label.textContent = last === null ? '-' : formatCount(Math.round(last));
  const max = Math.max(1, ...series.map((p) => p.rate));
  const ns = 'http://www.w3.org/2000/svg';
  // The top of the chart, named in its caption (text inside the stretched SVG would distort).
  svg.parentElement.querySelector('.peak').textContent = 'top ' + formatCount(Math.round(max));
  if (series.length < 2) return;
  const t0 = series[series.length - 1].t - (HISTORY - 1) * POLL_MS / 1000;
  const x = (t) => Math.max(0, (t - t0) / ((HISTORY - 1) * POLL_MS / 1000)) * W;
  const y = (r) => H - 2 - (r / max) * (H - 14);
  const line = document.createElementNS(ns, 'polyline');
  line.setAttribute('points', series.map((p) => x(p.t).toFixed(1) + ',' + y(p.rate).toFixed(1)).join(' '));
  svg.appendChild(line);
}

// --- the query form --------------------------------------------------------------------------

async function ask(event) {
  event.preventDefault();
  const form = event.target;
  const kind = form.elements.kind.value;
  let response;
  try {
    if (kind === 'analytics') {
      const params = new URLSearchParams({format: 'json'});
      for (const name of ['key', 'key_prefix', 'from', 'to']) {
        const value = form.elements[name].value.trim();
        if (value) params.set(name, value);
      }
      response = await fetch('/analytics?' + params, {headers: authHeaders()});
    } else {
      response = await fetch('/v1/query', {
        method: 'POST',
        headers: Object.assign({'Content-Type': 'application/json'}, authHeaders()),
        body: form.elements.query.value,
      });
    }
  } catch (error) {
    showAnswer('no answer: ' + error, null);
    return;
  }
  const text = await response.text();
  let body = null;
  try { body = JSON.parse(text); } catch (_) { body = text; }
  showAnswer('HTTP ' + response.status, body);
}

function showAnswer(status, body) {
  $('answer').hidden = false;
  $('answer-status').textContent = status;
  $('answer-json').textContent = typeof body === 'string' ? body : JSON.stringify(body, null, 2);
  const table = $('answer-table');
  table.tHead.replaceChildren();
  table.tBodies[0].replaceChildren();
  const rows = body && typeof body === 'object' ? (body.rows || (body.count !== undefined ? [body] : [])) : [];
  if (!rows.length) return;
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))]
      .filter((c) => typeof rows[0][c] !== 'object' || Array.isArray(rows[0][c]));
  const head = table.tHead.insertRow();
  for (const c of columns) head.appendChild(Object.assign(document.createElement('th'), {textContent: c}));
  for (const r of rows.slice(0, 1000)) {
    const row = table.tBodies[0].insertRow();
    for (const c of columns) cell(row, r[c] === undefined ? '' : Array.isArray(r[c]) ? r[c].join(', ') : r[c]);
  }
}

// --- start -----------------------------------------------------------------------------------

function fitsViewport() {
  document.body.dataset.fits =
      document.documentElement.scrollWidth <= window.innerWidth + 1 ? 'true' : 'false';
}

async function tick() {
  await Promise.all([refreshHealth(), refreshMetrics()]);
  fitsViewport();
}

document.addEventListener('DOMContentLoaded', () => {
  $('token').value = state.token;
  $('token-form').addEventListener('submit', (event) => {
    event.preventDefault();
    state.token = $('token').value.trim();
    sessionStorage.setItem('das-token', state.token);
    tick();
  });
  $('ask').addEventListener('submit', ask);
  for (const radio of document.querySelectorAll('input[name=kind]')) {
    radio.addEventListener('change', () => {
      const analytics = document.querySelector('input[name=kind]:checked').value === 'analytics';
      $('analytics-fields').hidden = !analytics;
      $('query-fields').hidden = analytics;
    });
  }
  tick();
  setInterval(tick, POLL_MS);
});
