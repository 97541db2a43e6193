// The Obelisk web UI: a hash-routed single page (#/executions, #/execution/<id>,
// #/components, #/schedules, #/submit/<ffqn>) over the API (api.js).
import { exec, comp, sched, status, APIError } from './api.js';
import { fieldsFromSignature, fieldsFromSchema, encodeField } from './wit.js';

const app = document.getElementById('app');
const POLL_MS = 500; // an execution page refreshes this often while anything runs
const LIST_POLL_MS = 2000;

let generation = 0; // bumped on every navigation: the pollers of the previous page stop

// ---- helpers ----

const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
const link = (page, arg) => `#/${page}/${encodeURI(arg)}`;
const execLink = (id, text) => `<a class="mono exec-link" href="${esc(link('execution', id))}">${esc(text ?? id)}</a>`;
const ms = (iso) => (iso ? Date.parse(iso) : NaN);
const sleep = (d) => new Promise((r) => setTimeout(r, d));

function fmtTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  const today = new Date().toDateString() === d.toDateString();
  return today ? time : `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}

function fmtDur(d) {
  if (!Number.isFinite(d)) return '';
  if (d < 1) return `${d.toFixed(2)} ms`;
  if (d < 1000) return `${Math.round(d)} ms`;
  if (d < 60000) return `${(d / 1000).toFixed(d < 10000 ? 2 : 1)} s`;
  if (d < 3600000) return `${Math.floor(d / 60000)} min ${Math.round((d % 60000) / 1000)} s`;
  return `${Math.floor(d / 3600000)} h ${Math.round((d % 3600000) / 60000)} min`;
}

function pretty(json) {
  if (json === undefined || json === null || json === '') return '';
  try {
    return JSON.stringify(typeof json === 'string' ? JSON.parse(json) : json, null, 2);
  } catch {
    return String(json);
  }
}

// outcome classifies a finished execution's result: ok | err | cancelled |
// deadline_exceeded | failed.
function outcome(s) {
  if (!s || s.status !== 'finished') return '';
  try {
    const r = JSON.parse(s.resultJson || 'null');
    if (r && typeof r === 'object') {
      if ('ok' in r) return 'ok';
      if ('err' in r) return 'err';
      if (r.execution_failure?.kind === 'cancelled') return 'cancelled';
      if (r.execution_failure?.kind === 'deadline_exceeded') return 'deadline_exceeded';
    }
    if (r === 'ok') return 'ok';
    if (r === 'err') return 'err';
  } catch { /* not JSON */ }
  return 'failed';
}

function statusBadge(s) {
  return `<span class="badge status-${esc(s.status)}">${esc(s.status)}</span>${flagBadges(s)}`;
}

// flagBadges shows the outcome of a finished execution, and paused / cancelling.
function flagBadges(s) {
  const out = outcome(s);
  let html = '';
  if (out) html += ` <span class="badge outcome-${out}">${out}</span>`;
  if (s.paused) html += ' <span class="badge flag-paused">paused</span>';
  if (s.cancelRequested) html += ' <span class="badge flag-cancelling">cancelling</span>';
  return html;
}

function resultPreview(s, max = 80) {
  if (s.status !== 'finished') return '';
  const t = s.resultJson || '';
  return t.length > max ? `${t.slice(0, max)}…` : t;
}

const fnName = (ffqn) => (ffqn || '').slice((ffqn || '').lastIndexOf('.') + 1);

function showError(where, err) {
  const msg = err instanceof APIError || err instanceof Error ? err.message : String(err);
  where.innerHTML = `<div class="error">${esc(msg)}</div>`;
}

function setConn(ok, msg) {
  const c = document.getElementById('conn');
  c.className = `conn ${ok ? 'ok' : 'down'}`;
  c.title = ok ? 'API reachable' : `API: ${msg}`;
  c.textContent = ok ? '' : 'API unreachable';
}

// poll runs fn now and then every period while the page is shown and fn returns true.
async function poll(gen, period, fn) {
  while (gen === generation) {
    let again = true;
    try {
      again = await fn();
      setConn(true);
    } catch (err) {
      if (!(err instanceof APIError)) setConn(false, err.message);
      else throw err;
    }
    if (!again) return;
    await sleep(period);
  }
}

// ---- routing ----

function route() {
  const gen = ++generation;
  const raw = location.hash.replace(/^#\/?/, '');
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  const params = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
  const slash = path.indexOf('/');
  const page = (slash < 0 ? path : path.slice(0, slash)) || 'executions';
  const arg = slash < 0 ? '' : decodeURIComponent(path.slice(slash + 1));
  for (const a of document.querySelectorAll('header nav a')) {
    a.classList.toggle('active', a.dataset.page === page || (page === 'execution' && a.dataset.page === 'executions'));
  }
  app.innerHTML = '';
  const pages = { executions: executionsPage, execution: executionPage, components: componentsPage, schedules: schedulesPage, submit: submitPage };
  const fn = pages[page];
  if (!fn) {
    app.innerHTML = `<div class="error">No page ${esc(page)}.</div>`;
    return;
  }
  fn(gen, arg, params).catch((err) => {
    if (gen === generation) showError(app, err);
  });
}

// ---- executions ----

const STATUSES = ['pending_at', 'locked', 'blocked_by_join_set', 'finished'];
const cursorTrail = []; // cursors of the pages before the current one

async function executionsPage(gen, _arg, params) {
  document.title = 'Executions · Obelisk';
  const f = {
    status: params.get('status') || '',
    ffqn: params.get('ffqn') || '',
    top: params.get('top') !== '0',
    limit: Math.min(Math.max(parseInt(params.get('limit'), 10) || 20, 1), 1000),
    cursor: params.get('cursor') || '',
  };
  if (!f.cursor) cursorTrail.length = 0;
  app.innerHTML = `
    <h1>Executions</h1>
    <form id="filters" class="filters">
      <label>Status <select name="status">
        <option value="">any</option>
        ${STATUSES.map((s) => `<option ${s === f.status ? 'selected' : ''}>${s}</option>`).join('')}
      </select></label>
      <label>Function prefix <input name="ffqn" placeholder="testing:fibo-workflow/" value="${esc(f.ffqn)}" size="32"></label>
      <label class="check"><input type="checkbox" name="top" ${f.top ? 'checked' : ''}> top-level only</label>
      <label>Per page <select name="limit">${[20, 50, 100].map((n) => `<option ${n === f.limit ? 'selected' : ''}>${n}</option>`).join('')}</select></label>
      <button type="submit">Apply</button>
      <a class="button secondary" href="#/submit">New execution</a>
    </form>
    <div id="list"><p class="muted">Loading…</p></div>
    <div class="pager" id="pager"></div>`;
  const form = document.getElementById('filters');
  const query = (extra = {}) => {
    const p = new URLSearchParams();
    if (form.status.value) p.set('status', form.status.value);
    if (form.ffqn.value.trim()) p.set('ffqn', form.ffqn.value.trim());
    if (!form.top.checked) p.set('top', '0');
    if (form.limit.value !== '20') p.set('limit', form.limit.value);
    for (const [k, v] of Object.entries(extra)) if (v) p.set(k, v);
    return `#/executions?${p}`;
  };
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    location.hash = query();
  });
  form.status.addEventListener('change', () => { location.hash = query(); });
  form.top.addEventListener('change', () => { location.hash = query(); });
  form.limit.addEventListener('change', () => { location.hash = query(); });
  const list = document.getElementById('list');
  const pager = document.getElementById('pager');
  let lastHTML = '';
  await poll(gen, LIST_POLL_MS, async () => {
    let r;
    try {
      r = await exec('ListExecutions', { ffqnPrefix: f.ffqn, status: f.status, topLevelOnly: f.top, limit: f.limit, cursor: f.cursor });
    } catch (err) {
      if (!(err instanceof APIError)) throw err;
      showError(list, err);
      return false;
    }
    if (gen !== generation) return false;
    const rows = (r.executions || []).map((s) => {
      const dur = s.finishedAt ? ms(s.finishedAt) - ms(s.createdAt) : Date.now() - ms(s.createdAt);
      return `<tr data-id="${esc(s.executionId)}">
        <td>${execLink(s.executionId)}</td>
        <td class="mono">${esc(s.ffqn)}</td>
        <td class="status-cell">${statusBadge(s)}</td>
        <td class="nowrap">${esc(fmtTime(s.createdAt))}</td>
        <td class="nowrap num">${esc(fmtDur(dur))}</td>
        <td class="mono result-cell">${esc(resultPreview(s))}</td>
      </tr>`;
    });
    const html = rows.length
      ? `<table class="grid executions"><thead><tr><th>Execution</th><th>Function</th><th>Status</th><th>Created</th><th>Duration</th><th>Result</th></tr></thead><tbody>${rows.join('')}</tbody></table>`
      : '<p class="muted empty">No executions match.</p>';
    if (html !== lastHTML) {
      list.innerHTML = html;
      lastHTML = html;
    }
    const prev = cursorTrail.length ? cursorTrail[cursorTrail.length - 1] : null;
    pager.innerHTML = `
      ${f.cursor ? `<a class="button secondary" id="newer" href="${esc(query(prev ? { cursor: prev } : {}))}">← Newer</a>` : ''}
      ${f.cursor ? `<a class="button secondary" href="${esc(query())}">First page</a>` : ''}
      ${r.nextCursor ? `<a class="button secondary" id="older" href="${esc(query({ cursor: r.nextCursor }))}">Older →</a>` : ''}`;
    pager.querySelector('#older')?.addEventListener('click', () => cursorTrail.push(f.cursor));
    pager.querySelector('#newer')?.addEventListener('click', () => cursorTrail.pop());
    return !f.cursor; // the first page follows new executions
  });
}

// ---- one execution ----

async function executionPage(gen, id) {
  document.title = `${id} · Obelisk`;
  if (!id) {
    location.hash = '#/executions';
    return;
  }
  app.innerHTML = `
    <div class="exec-page" data-id="${esc(id)}">
      <div class="crumbs"><a href="#/executions">Executions</a> <span id="crumbs"></span></div>
      <h1 class="mono exec-id">${esc(id)}</h1>
      <div class="summary-row">
        <dl class="summary" id="summary"><dd class="muted">Loading…</dd></dl>
        <div class="actions">
          <button id="cancel" class="danger" disabled>Cancel</button>
          <button id="pause" class="secondary" hidden>Pause</button>
          <button id="unpause" class="secondary" hidden>Unpause</button>
          <div id="action-msg" class="action-msg"></div>
        </div>
      </div>
      <div class="two">
        <section><h2>Parameters</h2><pre id="params" class="json"></pre></section>
        <section><h2>Result</h2><pre id="result" class="json"></pre></section>
      </div>
      <section id="replay-sec"><h2>Replay against…</h2>
        <p class="muted">Replays the recorded history in a sandbox (nothing is written, no activity runs) against the pinned component, or another deployed or retired one.</p>
        <div class="filters"><label>Component <input id="replay-comp" list="replay-comps" placeholder="the pinned component" size="48"></label>
          <button id="replay" class="secondary">Replay</button></div>
        <datalist id="replay-comps"></datalist>
        <div id="replay-out"></div>
      </section>
      <section><h2>Timeline</h2><div id="timeline" class="timeline"></div></section>
      <section><h2>Children</h2><div id="children"><p class="muted">None.</p></div></section>
      <section><h2>Logs</h2>
        <p id="logs-none" class="muted">None.</p>
        <table class="grid logs" id="logs" hidden><thead><tr><th>#</th><th>Time</th><th>Level</th><th>Attempt</th><th>Message</th></tr></thead><tbody></tbody></table>
        <p id="logs-dropped" class="muted" hidden></p>
      </section>
      <section><h2>Event log</h2>
        <table class="grid events" id="events"><thead><tr><th>#</th><th>Time</th><th>+</th><th>Kind</th><th>Details</th></tr></thead><tbody></tbody></table>
      </section>
    </div>`;
  const $ = (sel) => document.getElementById(sel);
  const st = {
    summary: null,
    nextVersion: 0,
    events: [],
    children: [], // direct children, in request order
    delays: new Map(), // delay ID -> {id, createdAt, expiresAt, endAt, cancelled}
    responseCursor: 0,
    desc: new Map(), // execution ID -> summary, for every known descendant
    descVersion: '',
    logSeq: 0, // the next log line to read
  };
  setupActions(gen, id, st, () => refresh());
  setupReplay(gen, id);

  let refreshing = null;
  const refresh = () => (refreshing ??= tick().finally(() => { refreshing = null; }));

  async function tick() {
    const s = await status(id);
    if (gen !== generation) return false;
    st.summary = s;
    const fromVersion = st.nextVersion;
    const ev = await exec('ListEvents', { executionId: id, fromVersion });
    const fresh = (ev.events || []).map((e) => ({ ...e, version: e.version ?? 0, details: safeParse(e.detailsJson) }));
    st.events.push(...fresh);
    st.nextVersion = fromVersion + fresh.length;
    for (const e of fresh) {
      if (e.kind !== 'history.join_set_request') continue;
      if (e.details.child_execution_id) st.children.push({ id: e.details.child_execution_id, ffqn: e.details.ffqn, createdAt: e.createdAt });
      if (e.details.delay_id) st.delays.set(e.details.delay_id, { id: e.details.delay_id, createdAt: e.createdAt, expiresAt: e.details.expires_at });
    }
    if (st.delays.size) await loadResponses(id, st);
    // After the status: lines go with the progress they belong to, so a finished
    // execution's log is complete.
    const logs = await exec('GetLogs', { executionId: id, fromSeq: st.logSeq });
    st.logSeq = Number(logs.nextSeq ?? st.logSeq);
    await loadDescendants(id, st);
    if (gen !== generation) return false;
    render(fresh, logs);
    return !(s.status === 'finished' && [...st.desc.values()].every((d) => d.status === 'finished'));
  }

  function render(freshEvents, logs) {
    const s = st.summary;
    document.title = `${fnName(s.ffqn)} ${id} · Obelisk`;
    const created = ms(s.createdAt);
    const end = s.finishedAt ? ms(s.finishedAt) : Date.now();
    const parent = s.parentId;
    $('crumbs').innerHTML = parent ? `/ parent ${execLink(parent)}` : '';
    const rows = [
      ['Function', `<span class="mono" id="ffqn">${esc(s.ffqn)}</span> <a class="small" href="${esc(link('submit', s.ffqn))}">submit again…</a>`],
      ['Status', `<span id="status" class="status-text">${esc(s.status)}</span> ${flagBadges(s)}`],
      ['Created', esc(fmtTime(s.createdAt))],
      [s.finishedAt ? 'Finished' : 'Running for', s.finishedAt ? `${esc(fmtTime(s.finishedAt))} <span class="muted">(${esc(fmtDur(end - created))})</span>` : esc(fmtDur(end - created))],
    ];
    if (s.status === 'pending_at' && s.scheduledAt) rows.push(['Scheduled at', esc(fmtTime(s.scheduledAt))]);
    if (s.status === 'locked' && s.lockExpiresAt) rows.push(['Lock expires', esc(fmtTime(s.lockExpiresAt))]);
    if (s.joinSetId) rows.push(['Blocked by', `<span class="mono">${esc(s.joinSetId)}</span>`]);
    if (s.deadline) rows.push(['Deadline', `<span id="deadline">${esc(fmtTime(s.deadline))}</span>`]);
    if (parent) rows.push(['Parent', execLink(parent)]);
    // Lineage, both ways: the execution this one is a fork of, and its own forks.
    if (s.forkedFrom) rows.push(['Forked from', `<span id="forked-from">${execLink(s.forkedFrom)} <span class="muted">at version ${esc(s.forkedAtVersion ?? 0)}</span></span>`]);
    if (s.forks?.length) rows.push(['Forks', `<span id="forks">${s.forks.map(id => execLink(id)).join(' ')}</span>`]);
    rows.push(['Component', `<span class="mono small">${esc(s.componentId)}</span>`]);
    rows.push(['Events', esc(s.version ?? 0)]);
    if (s.attemptsFailed) rows.push(['Failed attempts', esc(s.attemptsFailed)]);
    if (s.lastFailure) rows.push(['Last failure', `<span class="mono small" id="last-failure">${esc(s.lastFailure)}</span>`]);
    setHTML($('summary'), rows.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join(''));

    const createdEv = st.events.find((e) => e.kind === 'created');
    setText($('params'), createdEv ? pretty(createdEv.details.params ?? []) : '');
    const result = $('result');
    setText(result, s.status === 'finished' ? pretty(s.resultJson) : `(${s.status}…)`);
    result.className = `json ${outcome(s) ? `outcome-${outcome(s)}` : 'muted'}`;

    const finished = s.status === 'finished';
    const cancel = $('cancel');
    cancel.disabled = finished || s.cancelRequested;
    if (!cancel.classList.contains('confirm')) cancel.textContent = s.cancelRequested ? 'Cancelling…' : 'Cancel';
    $('pause').hidden = finished || s.paused;
    $('unpause').hidden = finished || !s.paused;

    setHTML($('timeline'), timelineHTML(id, s, st));
    setHTML($('children'), childrenHTML(st));

    const tbody = $('events').tBodies[0];
    for (const e of freshEvents) tbody.insertAdjacentHTML('beforeend', eventRowHTML(e, created));

    const lines = logs.lines || [];
    if (lines.length) {
      $('logs').hidden = false;
      $('logs-none').hidden = true;
      for (const l of lines) $('logs').tBodies[0].insertAdjacentHTML('beforeend', logRowHTML(l));
    }
    const dropped = Number(logs.dropped ?? 0);
    $('logs-dropped').hidden = !dropped;
    setText($('logs-dropped'), dropped ? `${dropped} more lines were logged but not stored (past logs.max_per_execution).` : '');
  }

  await poll(gen, POLL_MS, refresh);
}

function safeParse(t) {
  try { return JSON.parse(t || '{}') ?? {}; } catch { return { text: t }; }
}

function setHTML(el, html) {
  if (el._html !== html) {
    el.innerHTML = html;
    el._html = html;
  }
}

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

async function loadResponses(id, st) {
  const r = await exec('ListResponses', { executionId: id, fromCursor: st.responseCursor });
  for (const resp of r.responses || []) {
    st.responseCursor = Math.max(st.responseCursor, (resp.cursor ?? 0) + 1);
    const d = resp.delayId && st.delays.get(resp.delayId);
    if (d) Object.assign(d, { endAt: resp.createdAt, cancelled: !!resp.delayCancelled });
  }
}

// loadDescendants finds the executions whose IDs start with "<id>.": the recent ones from
// ListExecutions, then any direct child it missed through GetStatus.
async function loadDescendants(id, st) {
  const unfinished = [...st.desc.values()].some((d) => d.status !== 'finished');
  const key = `${st.summary.version}/${st.children.length}`;
  if (!unfinished && key === st.descVersion && st.children.every((c) => st.desc.has(c.id))) return;
  st.descVersion = key;
  const r = await exec('ListExecutions', { limit: 1000 });
  for (const s of r.executions || []) {
    if (s.executionId.startsWith(`${id}.`)) st.desc.set(s.executionId, s);
  }
  const missing = st.children.filter((c) => !st.desc.has(c.id) || st.desc.get(c.id).status !== 'finished').slice(0, 50);
  await Promise.all(missing.map(async (c) => {
    try {
      st.desc.set(c.id, await status(c.id));
    } catch { /* not created yet */ }
  }));
}

function childrenHTML(st) {
  if (!st.children.length && !st.delays.size) return '<p class="muted">None.</p>';
  let html = '';
  if (st.children.length) {
    html += `<table class="grid children"><thead><tr><th>Child</th><th>Function</th><th>Status</th><th>Duration</th><th>Result</th></tr></thead><tbody>${st.children.map((c) => {
      const s = st.desc.get(c.id);
      const dur = s ? (s.finishedAt ? ms(s.finishedAt) : Date.now()) - ms(s.createdAt) : NaN;
      return `<tr><td>${execLink(c.id)}</td><td class="mono">${esc(c.ffqn)}</td><td>${s ? statusBadge(s) : '<span class="muted">requested</span>'}</td><td class="num">${esc(fmtDur(dur))}</td><td class="mono result-cell">${s ? esc(resultPreview(s)) : ''}</td></tr>`;
    }).join('')}</tbody></table>`;
  }
  if (st.delays.size) {
    html += `<table class="grid delays"><thead><tr><th>Delay</th><th>Expires</th><th>State</th></tr></thead><tbody>${[...st.delays.values()].map((d) =>
      `<tr><td class="mono">${esc(d.id)}</td><td>${esc(fmtTime(d.expiresAt))}</td><td>${d.endAt ? (d.cancelled ? '<span class="badge outcome-cancelled">cancelled</span>' : '<span class="badge outcome-ok">expired</span>') : '<span class="badge status-pending_at">waiting</span>'}</td></tr>`).join('')}</tbody></table>`;
  }
  return html;
}

// timelineHTML draws the execution, its descendants (in tree order) and its delays as
// bars over time.
function timelineHTML(id, s, st) {
  const now = Date.now();
  const t0 = ms(s.createdAt);
  const rows = [{ s, depth: 0, kind: 'root' }];
  const byParent = new Map();
  for (const d of st.desc.values()) {
    const p = d.parentId || d.executionId.slice(0, d.executionId.lastIndexOf('.'));
    if (!byParent.has(p)) byParent.set(p, []);
    byParent.get(p).push(d);
  }
  const walk = (pid, depth) => {
    const kids = (byParent.get(pid) || []).sort((a, b) => ms(a.createdAt) - ms(b.createdAt));
    for (const k of kids) {
      if (rows.length > 500) return;
      rows.push({ s: k, depth, kind: 'child' });
      walk(k.executionId, depth + 1);
    }
  };
  walk(id, 1);
  for (const d of st.delays.values()) rows.push({ delay: d, depth: 1, kind: 'delay' });
  const spanOf = (r) => {
    if (r.delay) return [ms(r.delay.createdAt), r.delay.endAt ? ms(r.delay.endAt) : now];
    return [ms(r.s.createdAt), r.s.finishedAt ? ms(r.s.finishedAt) : now];
  };
  let t1 = t0 + 1;
  for (const r of rows) t1 = Math.max(t1, spanOf(r)[1]);
  const total = t1 - t0;
  const pct = (t) => ((t - t0) / total) * 100;
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => `<span class="tick" style="left:${f * 100}%">${esc(fmtDur(f * total))}</span>`).join('');
  const body = rows.map((r) => {
    const [a, b] = spanOf(r);
    const left = Math.min(Math.max(pct(a), 0), 100);
    const width = Math.max(pct(b) - pct(a), 0.4);
    let label;
    let cls;
    let title;
    if (r.delay) {
      label = `<span class="mono">delay</span> <span class="muted">${esc(r.delay.id.slice(r.delay.id.lastIndexOf('.') + 1))}</span>`;
      cls = `bar delay ${r.delay.endAt ? (r.delay.cancelled ? 'outcome-cancelled' : 'outcome-ok') : 'running'}`;
      title = `${r.delay.id}\nexpires ${fmtTime(r.delay.expiresAt)}${r.delay.endAt ? `\nanswered after ${fmtDur(b - a)}` : ''}`;
    } else {
      const x = r.s;
      const rel = r.kind === 'root' ? x.executionId : x.executionId.slice(id.length);
      label = `<a class="mono" href="${esc(link('execution', x.executionId))}" title="${esc(x.executionId)}">${esc(r.kind === 'root' ? fnName(x.ffqn) : `${fnName(x.ffqn)} ${rel}`)}</a>`;
      cls = `bar ${r.kind} status-${x.status} ${outcome(x) ? `outcome-${outcome(x)}` : 'running'}`;
      title = `${x.executionId}\n${x.ffqn}\n${x.status}${outcome(x) ? ` (${outcome(x)})` : ''}\nstarts at +${fmtDur(a - t0)}, ${x.finishedAt ? `took ${fmtDur(b - a)}` : `running for ${fmtDur(b - a)}`}`;
    }
    return `<div class="tl-row" data-kind="${r.kind}">
      <div class="tl-label" style="padding-left:${r.depth * 14}px">${label}</div>
      <div class="tl-track"><div class="${esc(cls)}" style="left:${left.toFixed(3)}%;width:${Math.min(width, 100 - left).toFixed(3)}%" title="${esc(title)}"></div></div>
      <div class="tl-dur num">${esc(fmtDur(b - a))}</div>
    </div>`;
  }).join('');
  return `<div class="tl-axis"><div class="tl-label"></div><div class="tl-track">${ticks}</div><div class="tl-dur"></div></div>${body}`;
}

const ID_KEYS = new Set(['child_execution_id', 'parent_id', 'execution_id', 'target_execution_id']);

function logRowHTML(l) {
  const level = l.level || 'info';
  return `<tr class="log level-${esc(level)}" data-seq="${esc(l.seq ?? 0)}">
    <td class="num">${esc(l.seq ?? 0)}</td>
    <td class="nowrap">${esc(fmtTime(l.time))}</td>
    <td class="nowrap"><span class="badge log-${esc(level)}">${esc(level)}</span></td>
    <td class="num">${esc(l.attempt ?? 1)}</td>
    <td class="mono message">${l.context ? `<span class="muted">${esc(l.context)}:</span> ` : ''}${esc(l.message ?? '')}</td>
  </tr>`;
}

function eventRowHTML(e, created) {
  const d = e.details || {};
  const parts = Object.entries(d).map(([k, v]) => {
    let val;
    if (ID_KEYS.has(k) && typeof v === 'string') val = execLink(v);
    else if (typeof v === 'string') val = `<span class="mono">${esc(v.includes('T') && !Number.isNaN(Date.parse(v)) && /^\d{4}-/.test(v) ? fmtTime(v) : v)}</span>`;
    else val = `<code>${esc(JSON.stringify(v))}</code>`;
    return `<span class="kv"><span class="k">${esc(k)}</span> ${val}</span>`;
  });
  const kind = e.kind.replace(/^history\./, '');
  const group = e.kind.startsWith('history.') ? 'history' : e.kind;
  return `<tr class="event kind-${esc(group)}" data-version="${e.version}">
    <td class="num">${e.version}</td>
    <td class="nowrap">${esc(fmtTime(e.createdAt))}</td>
    <td class="nowrap num muted">+${esc(fmtDur(ms(e.createdAt) - created))}</td>
    <td class="nowrap"><span class="badge ev-${esc(group)}">${esc(kind)}</span></td>
    <td class="details">${parts.join(' ')}</td>
  </tr>`;
}

function setupActions(gen, id, st, refresh) {
  const $ = (sel) => document.getElementById(sel);
  const msg = $('action-msg');
  const act = async (label, method) => {
    msg.textContent = `${label}…`;
    msg.className = 'action-msg';
    try {
      const r = await exec(method, { executionId: id });
      if (gen !== generation) return;
      msg.textContent = r.outcome ? `${label}: ${r.outcome.replaceAll('_', ' ')}` : `${label}: done`;
      await refresh();
    } catch (err) {
      msg.textContent = `${label} failed: ${err.message}`;
      msg.className = 'action-msg error-text';
    }
  };
  const cancel = $('cancel');
  let confirmTimer;
  cancel.addEventListener('click', () => {
    if (!cancel.classList.contains('confirm')) {
      // The first click asks for a second one: cancelling also cancels the whole subtree.
      cancel.classList.add('confirm');
      cancel.textContent = 'Confirm cancel';
      cancel.title = 'Cancels the execution and all its children';
      confirmTimer = setTimeout(() => {
        cancel.classList.remove('confirm');
        cancel.textContent = 'Cancel';
      }, 5000);
      return;
    }
    clearTimeout(confirmTimer);
    cancel.classList.remove('confirm');
    cancel.textContent = 'Cancel';
    act('Cancel', 'Cancel');
  });
  $('pause').addEventListener('click', () => act('Pause', 'Pause'));
  $('unpause').addEventListener('click', () => act('Unpause', 'Unpause'));
}

// setupReplay wires the "Replay against…" control: a component chooser (the workflows,
// deployed and retired; empty: the pinned one) and the report of the Replay RPC.
function setupReplay(gen, id) {
  const $ = (sel) => document.getElementById(sel);
  comp('ListComponents').then((r) => {
    if (gen !== generation) return;
    $('replay-comps').innerHTML = (r.components || []).filter((c) => c.type === 'workflow')
      .map((c) => `<option value="${esc(c.retired ? c.componentId : c.name)}">${esc(c.name)}${c.retired ? ' (retired)' : ''}</option>`).join('');
  }).catch(() => {});
  const step = (s) => (s ? esc(s.detail) : '');
  $('replay').addEventListener('click', async () => {
    const out = $('replay-out');
    out.innerHTML = '<p class="muted">Replaying…</p>';
    try {
      const r = await exec('Replay', { executionId: id, component: $('replay-comp').value.trim() });
      if (gen !== generation) return;
      const d = r.divergence;
      let html = r.ok
        ? `<p class="replay-ok"><strong>ok</strong>: replayed ${r.replayed ?? 0} of ${r.historyEvents ?? 0} history events against <span class="mono">${esc(r.componentId)}</span></p>`
        : `<p class="replay-diverged error-text"><strong>diverges</strong> at history event ${d?.index ?? 0} against <span class="mono">${esc(r.componentId)}</span></p>
           <dl class="summary"><dt>Recorded</dt><dd class="mono">${step(d?.recorded) || '(end of the history)'}</dd>
           <dt>Produced</dt><dd class="mono">${step(d?.produced) || '(returned)'}</dd><dt>Detail</dt><dd>${esc(d?.detail || '')}</dd></dl>`;
      if (r.resultJson) html += `<p>Result now: <code>${esc(r.resultJson)}</code>${r.recordedResultJson ? ` (recorded: <code>${esc(r.recordedResultJson)}</code>)` : ''}</p>`;
      if (r.next?.length) html += `<p>Next:</p><ul class="replay-next">${r.next.map((n) => `<li class="mono">${esc(n.detail)}</li>`).join('')}</ul>`;
      if (r.logs?.length) html += `<p>Guest log:</p><pre class="replay-logs">${r.logs.map((l) => esc(`${l.time} ${l.level} ${l.message}`)).join('\n')}</pre>`;
      out.innerHTML = html;
    } catch (err) {
      if (gen !== generation) return;
      out.innerHTML = `<p class="error-text">Replay failed: ${esc(err.message)}</p>`;
    }
  });
}

// ---- components ----

async function componentsPage(gen, _arg, params) {
  document.title = 'Components · Obelisk';
  const r = await comp('ListComponents');
  if (gen !== generation) return;
  const q = params.get('q') || '';
  const fnTable = (fns, submit) => (fns?.length
    ? `<table class="grid fns"><thead><tr><th>Function</th><th>Signature</th>${submit ? '<th></th>' : ''}</tr></thead><tbody>${fns.map((f) => `
      <tr class="fn" data-ffqn="${esc(f.ffqn)}"><td class="mono">${esc(f.ffqn)}</td><td class="mono sig">${esc(f.signature)}</td>${submit ? `<td>${f.submittable !== false ? `<a class="button small submit-link" data-ffqn="${esc(f.ffqn)}" href="${esc(link('submit', f.ffqn))}">Submit…</a>` : ''}</td>` : ''}</tr>`).join('')}</tbody></table>`
    : '<p class="muted">None.</p>');
  const comps = (r.components || []).slice().sort((a, b) => a.type.localeCompare(b.type) || a.name.localeCompare(b.name));
  app.innerHTML = `
    <h1>Components</h1>
    <div class="filters"><label>Filter <input id="comp-filter" placeholder="name or function" value="${esc(q)}" size="32"></label>
      <span class="muted">${comps.filter((c) => !c.retired).length} deployed</span></div>
    <div class="components">${comps.map((c) => `
      <section class="component" data-name="${esc(c.name)}">
        <h2>${esc(c.name)} <span class="badge type-${esc(c.type)}">${esc(c.type)}</span>${c.retired ? ' <span class="badge retired" title="no longer deployed: it only finishes the executions pinned to it">retired</span>' : ''}</h2>
        <div class="mono small muted">${esc(c.componentId)}</div>
        <h3>Exports</h3>${fnTable(c.exports, !c.retired)}
        <h3>Imports</h3>${fnTable(c.imports, false)}
      </section>`).join('') || '<p class="muted">No components are deployed.</p>'}</div>`;
  const input = document.getElementById('comp-filter');
  const apply = () => {
    const t = input.value.trim().toLowerCase();
    for (const sec of app.querySelectorAll('section.component')) {
      sec.hidden = t !== '' && !sec.textContent.toLowerCase().includes(t);
    }
  };
  input.addEventListener('input', apply);
  apply();
}

// ---- schedules ----

// schedulesPage lists the periodic schedules, read-only (the CLI and the API change
// them), refreshed while it is shown: next and last firings move.
async function schedulesPage(gen) {
  document.title = 'Schedules · Obelisk';
  await poll(gen, LIST_POLL_MS, async () => {
    const r = await sched('ListSchedules');
    if (gen !== generation) return false;
    const list = r.schedules || [];
    app.innerHTML = `
      <h1>Schedules</h1>
      ${list.length ? `<table class="grid schedules"><thead><tr><th>Name</th><th>Cron</th><th>Function</th><th>Next firing</th><th>Last firing</th><th>Last execution</th><th>Source</th></tr></thead><tbody>${list.map((s) => `
        <tr data-name="${esc(s.name)}"><td>${esc(s.name)}${s.paused ? ' <span class="badge flag-paused">paused</span>' : ''}</td>
          <td class="mono">${esc(s.cron)} <span class="muted small">${esc(s.timeZone)}</span></td>
          <td class="mono">${esc(s.ffqn)} <span class="muted small">${esc(s.paramsJson)}</span></td>
          <td>${s.nextFiring ? esc(fmtTime(s.nextFiring)) : '<span class="muted">-</span>'}</td>
          <td>${s.lastFiring ? esc(fmtTime(s.lastFiring)) : '<span class="muted">-</span>'}</td>
          <td>${s.lastExecutionId ? execLink(s.lastExecutionId) : '<span class="muted">-</span>'}</td>
          <td>${esc(s.source)}</td></tr>`).join('')}</tbody></table>`
    : '<p class="muted">No schedules: see [[schedule]] in obelisk.toml, or <code>obelisk client schedule create</code>.</p>'}`;
    return true;
  });
}

// ---- submit ----

// paramFields returns the form fields of a function: from the JSON Schema of its
// parameters when the server's ComponentService has GetComponent, else parsed from the
// WIT signature.
async function paramFields(fn) {
  let detail;
  try {
    const c = await comp('GetComponent', { component: fn.componentId });
    detail = (c.exports || []).find((f) => f.ffqn === fn.ffqn);
  } catch { /* an older server without GetComponent: use the signature */ }
  if (detail?.paramsSchemaJson) {
    try {
      return fieldsFromSchema(JSON.parse(detail.paramsSchemaJson), detail.params || []);
    } catch { /* fall back to the signature */ }
  }
  return fieldsFromSignature(fn.signature);
}

async function submitPage(gen, ffqn) {
  document.title = 'Submit · Obelisk';
  const r = await comp('ListComponents');
  if (gen !== generation) return;
  const fns = [];
  for (const c of r.components || []) for (const f of c.exports || []) if (f.submittable !== false) fns.push({ ...f, component: c.name, componentId: c.componentId });
  fns.sort((a, b) => a.ffqn.localeCompare(b.ffqn));
  const fn = fns.find((f) => f.ffqn === ffqn);
  const picker = `<label>Function <select id="fn-select">
      <option value="">choose…</option>
      ${fns.map((f) => `<option value="${esc(f.ffqn)}" ${f.ffqn === ffqn ? 'selected' : ''}>${esc(f.ffqn)}</option>`).join('')}
    </select></label>`;
  if (!fn) {
    app.innerHTML = `<h1>Submit an execution</h1>${ffqn ? `<div class="error">No submittable function ${esc(ffqn)}.</div>` : ''}<div class="filters">${picker}</div>`;
    document.getElementById('fn-select').addEventListener('change', (e) => { if (e.target.value) location.hash = link('submit', e.target.value); });
    return;
  }
  let fields;
  let fieldErr = '';
  try {
    fields = await paramFields(fn);
  } catch (err) {
    fields = null;
    fieldErr = err.message;
  }
  if (gen !== generation) return;
  const inputHTML = (f, i) => {
    const idAttr = `id="param-${i}" name="${esc(f.name)}" data-index="${i}"`;
    if (f.kind === 'bool') return `<input type="checkbox" ${idAttr}>`;
    if (f.kind === 'int') return `<input type="number" step="1" min="${esc(f.min)}" max="${esc(f.max)}" ${idAttr} ${f.optional ? '' : 'required'} inputmode="numeric" autocomplete="off">`;
    if (f.kind === 'float') return `<input type="number" step="any" ${idAttr} ${f.optional ? '' : 'required'} autocomplete="off">`;
    if (f.kind === 'enum') return `<select ${idAttr}>${f.optional ? '<option value="">(none)</option>' : ''}${f.options.map((o) => `<option>${esc(o)}</option>`).join('')}</select>`;
    if (f.kind === 'flags') return `<select multiple ${idAttr}>${f.options.map((o) => `<option>${esc(o)}</option>`).join('')}</select>`;
    if (f.kind === 'string' || f.kind === 'char') return `<input type="text" ${idAttr} ${f.kind === 'char' ? 'maxlength="2"' : ''} autocomplete="off">`;
    return `<textarea ${idAttr} rows="3" spellcheck="false" placeholder="${esc(f.hint)}"></textarea>`;
  };
  app.innerHTML = `
    <h1>Submit an execution</h1>
    <div class="filters">${picker}</div>
    <form id="submit-form" class="submit-form" data-ffqn="${esc(fn.ffqn)}" novalidate>
      <div class="fn-head"><span class="mono ffqn">${esc(fn.ffqn)}</span> <span class="muted">(${esc(fn.component)})</span></div>
      <div class="mono sig">${esc(fn.signature)}</div>
      ${fields ? (fields.length ? fields.map((f, i) => `
        <div class="field">
          <label for="param-${i}"><span class="mono pname">${esc(f.name)}</span> <span class="type">${esc(f.wit)}</span></label>
          ${inputHTML(f, i)}
          <small class="hint">${esc(f.description ? `${f.description} · ${f.hint}` : f.hint)}</small>
        </div>`).join('') : '<p class="muted">No parameters.</p>') : `<div class="error">Cannot build a form from the signature (${esc(fieldErr)}); give the parameters as a JSON array below.</div>`}
      <details ${fields ? '' : 'open'}><summary>Parameters as JSON</summary>
        <label class="check"><input type="checkbox" id="use-raw" ${fields ? '' : 'checked'}> submit this JSON array instead of the fields</label>
        <textarea id="raw-params" rows="3" spellcheck="false">[]</textarea>
      </details>
      <div class="preview">params_json: <code id="params-preview">[]</code></div>
      <div id="form-error" class="error-text"></div>
      <button type="submit" id="submit">Submit</button>
    </form>`;
  document.getElementById('fn-select').addEventListener('change', (e) => { if (e.target.value) location.hash = link('submit', e.target.value); });
  const form = document.getElementById('submit-form');
  const errBox = document.getElementById('form-error');
  const preview = document.getElementById('params-preview');
  const raw = document.getElementById('raw-params');
  const useRaw = document.getElementById('use-raw');
  const build = () => {
    if (useRaw.checked || !fields) {
      const t = raw.value.trim();
      let v;
      try { v = JSON.parse(t); } catch (e) { throw new Error(`parameters: invalid JSON: ${e.message}`); }
      if (!Array.isArray(v)) throw new Error('parameters: a JSON array is required');
      return t;
    }
    return `[${fields.map((f, i) => encodeField(f, document.getElementById(`param-${i}`))).join(', ')}]`;
  };
  const update = () => {
    try {
      const p = build();
      preview.textContent = p;
      if (!useRaw.checked) raw.value = p;
      errBox.textContent = '';
      return p;
    } catch (e) {
      preview.textContent = '…';
      return null;
    }
  };
  form.addEventListener('input', update);
  form.addEventListener('change', update);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    let params;
    try {
      params = build();
    } catch (err) {
      errBox.textContent = err.message;
      return;
    }
    const btn = document.getElementById('submit');
    btn.disabled = true;
    errBox.textContent = '';
    try {
      const resp = await exec('Submit', { ffqn: fn.ffqn, paramsJson: params });
      location.hash = link('execution', resp.executionId);
    } catch (err) {
      errBox.textContent = err.message;
      btn.disabled = false;
    }
  });
  update();
  document.getElementById('param-0')?.focus();
}

// ---- start ----

// Last in the module on purpose: the first page runs synchronously up to its first
// await, so every module-level const it touches (STATUSES, cursorTrail, ...) must be
// initialised before route() is first called, or a fresh load dies in their temporal
// dead zone.
window.addEventListener('hashchange', route);
route();
