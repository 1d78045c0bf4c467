// The taskhubd dashboard: one page, no framework, no network beyond this server. The URL holds the view and its
// filters (?status=RUNNING&prefix=a, ?view=instance&id=X) so a link can be shared; live updates come from
// /api/v1/events (server-sent events, read with fetch so the token can go in a header).
'use strict';

const $ = (id) => document.getElementById(id);
const STATUSES = ['RUNNING', 'PENDING', 'SUSPENDED', 'COMPLETED', 'FAILED', 'TERMINATED', 'CONTINUED_AS_NEW',
  'CANCELED'];
const FILTERS = ['status', 'name', 'prefix', 'createdFrom', 'createdTo', 'completedFrom', 'completedTo', 'sort',
  'direction', 'pageSize'];
// Left out of the URL when they hold these.
const DEFAULTS = { sort: 'created', direction: 'desc', pageSize: '50' };
const TABLE_CHUNK = 500;    // history rows rendered at first; the rest on request
const HISTORY_SLICE = 5000; // events per history request (the server's maximum)

const state = {
  token: sessionStorage.getItem('taskhubdToken') || '',
  config: null,
  list: { rows: [], next: null, tokens: [], sortCol: null, desc: false },
  inst: null,       // the instance shown: {id, rec, events, executionId, generation}
  samples: [],      // overview samples for the rates
  reloadTimer: null,
  stream: null,
};

// ------------------------------------------------------------------ HTTP

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || ('HTTP ' + status));
    this.status = status;
    this.code = body && body.code;
  }
}

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (state.token) h['Authorization'] = 'Bearer ' + state.token;
  return h;
}

async function api(path, params) {
  const qs = params ? '?' + new URLSearchParams(params).toString() : '';
  const r = await fetch('/api/v1/' + path + qs, { headers: headers(), cache: 'no-store' });
  const body = await r.json().catch(() => null);
  if (r.status === 401) needToken(body && body.error);
  if (!r.ok) throw new ApiError(r.status, body);
  return body;
}

async function act(action, body) {
  const r = await fetch('/api/v1/actions/' + action, {
    method: 'POST',
    headers: headers({ 'Content-Type': 'application/json', 'X-Taskhubd-Admin': 'dashboard' }),
    body: JSON.stringify(body),
  });
  const out = await r.json().catch(() => null);
  if (r.status === 401) needToken(out && out.error);
  if (!r.ok) throw new ApiError(r.status, out);
  return out;
}

// ------------------------------------------------------------------ helpers

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k === 'style') Object.assign(e.style, v); // CSSOM: the page's CSP allows no inline style attribute
    else e.setAttribute(k, v);
  }
  for (const k of kids) if (k !== null && k !== undefined) e.append(k);
  return e;
}

function fmtTime(t) {
  if (!t) return '';
  const d = new Date(t);
  return isNaN(d) ? t : d.toISOString().replace('T', ' ').replace('Z', '');
}

function fmtDur(ms) {
  if (ms < 1) return ms.toFixed(2) + ' ms';
  if (ms < 1000) return ms.toFixed(0) + ' ms';
  if (ms < 60000) return (ms / 1000).toFixed(1) + ' s';
  if (ms < 3600000) return (ms / 60000).toFixed(1) + ' min';
  return (ms / 3600000).toFixed(1) + ' h';
}

function statusSpan(s) {
  return el('span', { class: 'st st-' + s, text: s });
}

// Payloads are JSON in practice: shown indented when they parse, as they are otherwise.
function pretty(s) {
  if (s === undefined || s === null) return '';
  try { return JSON.stringify(JSON.parse(s), null, 2); } catch (e) { return String(s); }
}

function link(params, text) {
  const a = el('a', { href: '/?' + new URLSearchParams(params).toString(), text });
  a.addEventListener('click', (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;
    ev.preventDefault();
    navigate(params);
  });
  return a;
}

function instanceLink(id) {
  return link({ view: 'instance', id }, id);
}

// ------------------------------------------------------------------ token

function needToken(why) {
  $('auth').hidden = false;
  $('main').hidden = true;
  $('auth-error').textContent = state.token ? 'The server refused this token: ' + (why || '') : '';
}

$('auth-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  state.token = $('auth-token').value.trim();
  sessionStorage.setItem('taskhubdToken', state.token);
  $('auth').hidden = true;
  $('main').hidden = false;
  start();
});

$('token-button').addEventListener('click', () => {
  $('auth-token').value = '';
  $('auth-error').textContent = '';
  $('auth').hidden = false;
  $('main').hidden = true;
});

// ------------------------------------------------------------------ routing

function params() {
  return Object.fromEntries(new URLSearchParams(location.search).entries());
}

function navigate(p) {
  const qs = new URLSearchParams(p).toString();
  history.pushState(null, '', '/' + (qs ? '?' + qs : ''));
  render();
}

window.addEventListener('popstate', render);

async function render() {
  const p = params();
  $('entities-view').hidden = p.view !== 'entities';
  if (p.view === 'instance' && p.id) {
    $('list-view').hidden = true;
    $('instance-view').hidden = false;
    await showInstance(p.id, true);
  } else if (p.view === 'entities') {
    $('list-view').hidden = true;
    $('instance-view').hidden = true;
    state.inst = null;
    $('e-prefix').value = p.prefix || '';
    await loadEntities(p.prefix || '', null);
  } else {
    $('instance-view').hidden = true;
    $('list-view').hidden = false;
    state.inst = null;
    fillFilters(p);
    state.list.tokens = [];
    state.list.sortCol = null; // a sort of the page shown ends with it (live updates keep it: they reload, not render)
    await loadList(p, null);
  }
}

// ------------------------------------------------------------------ overview

function card(k, v, onclick, id) {
  return el('div', { class: 'card' + (onclick ? ' click' : ''), onclick, id },
    el('div', { class: 'v', text: String(v) }), el('div', { class: 'k', text: k }));
}

async function loadOverview() {
  let o;
  try { o = await api('overview'); } catch (e) { return; }
  const now = Date.now();
  state.samples.push({ t: now, started: o.started, completed: o.completed, failed: o.failed,
    commits: o.commits, commitMicros: o.commitMicrosTotal });
  while (state.samples.length > 2 && now - state.samples[1].t > 60000) state.samples.shift();
  const first = state.samples[0], last = state.samples[state.samples.length - 1];
  // Over the last minute the page has watched: a full minute gives a per-minute figure; a shorter window shows the
  // count and its length rather than extrapolating a few seconds to a minute.
  const secs = (last.t - first.t) / 1000;
  const rate = (k) => {
    if (secs <= 0) return '–';
    const n = last[k] - first[k];
    return secs >= 55 ? (n * 60 / secs).toFixed(0) : n + ' in ' + secs.toFixed(0) + ' s';
  };
  const dc = last.commits - first.commits;
  const lat = dc > 0 ? fmtDur((last.commitMicros - first.commitMicros) / dc / 1000)
    : (o.commits ? fmtDur(o.commitMicrosTotal / o.commits / 1000) : '–');
  const box = $('overview');
  box.replaceChildren();
  const by = (o.counts && o.counts.byStatus) || {};
  // The server counts off its request thread: until its first count is done the numbers are pending.
  const counting = !o.counts || o.counts.total === undefined;
  if (counting) schedule(loadOverview, 'overview');
  box.append(card('instances', counting ? '…' : o.counts.total, () => navigate({}), 'count-ALL'));
  for (const s of STATUSES) {
    if (!by[s] && s !== 'RUNNING' && s !== 'COMPLETED' && s !== 'FAILED') continue;
    box.append(card(s.toLowerCase(), counting ? '…' : by[s] || 0, () => navigate({ status: s }), 'count-' + s));
  }
  box.append(card('started / min', rate('started')), card('completed / min', rate('completed')),
    card('failed / min', rate('failed')),
    card('ready backlog', (o.readyOrchestrations || 0) + (o.queuedActivities || 0)),
    card('in flight', (o.inFlightOrchestrations || 0) + (o.inFlightActivities || 0)),
    card('workers', o.workers || 0), card('commit latency', lat));
}

// ------------------------------------------------------------------ instance list

function fillFilters(p) {
  const want = (p.status || '').split(',').filter(Boolean);
  for (const o of $('f-status').options) o.selected = want.includes(o.value);
  for (const k of FILTERS) {
    if (k === 'status') continue;
    const e = $('f-' + k);
    const v = p[k] || DEFAULTS[k] || '';
    // A page size from a link that the menu does not offer is shown as it is, not as an empty menu.
    if (e.tagName === 'SELECT' && v && ![...e.options].some((o) => o.value === v)) e.append(el('option', { text: v }));
    e.value = v;
  }
}

function readFilters() {
  const p = {};
  const st = [...$('f-status').selectedOptions].map((o) => o.value);
  if (st.length) p.status = st.join(',');
  for (const k of FILTERS) {
    if (k === 'status') continue;
    const v = $('f-' + k).value.trim();
    if (v && v !== DEFAULTS[k]) p[k] = v;
  }
  return p;
}

$('filters').addEventListener('submit', (ev) => {
  ev.preventDefault();
  navigate(readFilters());
});
$('f-clear').addEventListener('click', () => navigate({}));

async function loadList(p, token) {
  const q = {};
  for (const k of FILTERS) if (p[k]) q[k] = p[k];
  if (token) q.next = token;
  $('list-error').textContent = '';
  let r;
  try {
    r = await api('instances', q);
  } catch (e) {
    $('list-error').textContent = e.message;
    $('instances').tBodies[0].replaceChildren();
    return;
  }
  state.list.rows = r.instances;
  state.list.next = r.next;
  state.list.current = token;
  state.list.server = { col: r.order === 'id' ? 'id' : r.order + 'At', desc: r.direction === 'desc' };
  drawList();
  $('next-page').disabled = !r.next;
  $('first-page').disabled = !token;
  const desc = r.direction === 'desc';
  const order = r.order === 'id' ? (desc ? 'ids in reverse order' : 'ids in order')
    : (desc ? 'newest ' : 'oldest ') + r.order + ' first';
  $('list-info').textContent = r.instances.length + ' shown, ' + order +
    (r.next ? '' : ' (last page)') + ' · server ' + (r.serverMicros / 1000).toFixed(1) + ' ms';
}

function drawList() {
  const rows = state.list.rows.slice();
  let col = state.list.sortCol;
  let desc = state.list.desc;
  if (col) {
    rows.sort((a, b) => String(a[col] || '').localeCompare(String(b[col] || '')));
    if (desc) rows.reverse();
  } else if (state.list.server) {
    ({ col, desc } = state.list.server);
  }
  for (const th of $('instances').tHead.rows[0].cells) {
    th.classList.toggle('sorted', th.dataset.col === col);
    th.classList.toggle('desc', th.dataset.col === col && desc);
  }
  const tb = $('instances').tBodies[0];
  tb.replaceChildren(...rows.map((r) => el('tr', { dataset: { id: r.id, status: r.status } },
    el('td', { class: 'id' }, instanceLink(r.id)), el('td', { text: r.name }),
    el('td', {}, statusSpan(r.status)), el('td', { text: fmtTime(r.createdAt) }),
    el('td', { text: fmtTime(r.completedAt) }), el('td', { text: fmtTime(r.lastUpdatedAt) }))));
  if (!rows.length) tb.append(el('tr', {}, el('td', { colspan: 6, class: 'muted', text: 'No instances match.' })));
}

// The column the server orders by (created or completed time, or the id under a prefix) sorts across pages: a
// click asks the server for the other direction, and the URL keeps it. The other columns sort the page shown, since
// the store keeps no index for them and paging must stay cheap at any size.
for (const th of $('instances').tHead.rows[0].cells) {
  th.addEventListener('click', () => {
    const c = th.dataset.col;
    const server = state.list.server;
    if (server && c === server.col) {
      const p = params();
      if (server.desc) p.direction = 'asc';
      else delete p.direction;
      state.list.sortCol = null;
      navigate(p);
      return;
    }
    state.list.desc = state.list.sortCol === c ? !state.list.desc : false;
    state.list.sortCol = c;
    drawList();
  });
}

$('next-page').addEventListener('click', () => {
  state.list.tokens.push(state.list.current);
  loadList(params(), state.list.next);
});
$('first-page').addEventListener('click', () => {
  state.list.tokens = [];
  loadList(params(), null);
});

// ------------------------------------------------------------------ entities

async function loadEntities(prefix, next) {
  const q = {};
  if (prefix) q.prefix = prefix;
  if (next) q.next = next;
  $('e-error').textContent = '';
  let r;
  try {
    r = await api('entities', q);
  } catch (e) {
    $('e-error').textContent = e.message;
    $('entities').tBodies[0].replaceChildren();
    return;
  }
  state.entities = { prefix, next: r.next, current: next };
  $('entities').tBodies[0].replaceChildren(...r.entities.map((e) => el('tr', { dataset: { id: e.id } },
    el('td', { class: 'id', text: e.id }), el('td', {}, e.state === undefined
      ? el('span', { class: 'muted', text: 'no state (transient)' }) : el('code', { text: e.state })),
    el('td', { text: fmtTime(e.lastModifiedAt) }), el('td', {}, e.lockedBy ? instanceLink(e.lockedBy) : ''),
    el('td', { text: String(e.queued) }))));
  if (!r.entities.length) {
    $('entities').tBodies[0].append(el('tr', {}, el('td', { colspan: 5, class: 'muted', text: 'No entities match.' })));
  }
  $('e-next').disabled = !r.next;
  $('e-first').disabled = !next;
}

$('e-filters').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const prefix = $('e-prefix').value.trim();
  navigate(prefix ? { view: 'entities', prefix } : { view: 'entities' });
});
$('e-next').addEventListener('click', () => loadEntities(state.entities.prefix, state.entities.next));
$('e-first').addEventListener('click', () => loadEntities(state.entities.prefix, null));
for (const [id, p] of [['nav-instances', {}], ['nav-entities', { view: 'entities' }]]) {
  $(id).addEventListener('click', (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;
    ev.preventDefault();
    navigate(p);
  });
}

// ------------------------------------------------------------------ one instance

function eventType(ev) {
  for (const k of Object.keys(ev)) if (k !== 'eventId' && k !== 'timestamp') return k;
  return 'unknown';
}

function eventSummary(ev) {
  const t = eventType(ev), b = ev[t] || {};
  const parts = [];
  if (b.name) parts.push(b.name);
  if (b.instanceId) parts.push(b.instanceId);
  if (b.taskScheduledId !== undefined) parts.push('of #' + b.taskScheduledId);
  if (b.timerId !== undefined) parts.push('timer #' + b.timerId);
  if (b.fireAt) parts.push('fires ' + fmtTime(b.fireAt));
  if (b.orchestrationStatus) parts.push(b.orchestrationStatus);
  if (b.failureDetails) parts.push((b.failureDetails.errorType || '') + ': ' + (b.failureDetails.errorMessage || ''));
  return parts.join(' · ');
}

async function loadHistory(id, from) {
  const events = [];
  let meta = null;
  for (;;) {
    const h = await api('history', { id, from: from + events.length, limit: HISTORY_SLICE });
    meta = h;
    events.push(...h.events);
    if (!h.events.length || from + events.length >= h.total) break;
  }
  return { events, meta };
}

async function showInstance(id, full) {
  $('i-error').textContent = '';
  let rec;
  try {
    rec = await api('instance', { id });
  } catch (e) {
    $('i-title').textContent = id;
    $('i-error').textContent = e.message;
    for (const x of ['i-fields', 'i-waiting', 'i-tree', 'i-payloads', 'timeline', 'i-actions']) $(x).replaceChildren();
    $('history').tBodies[0].replaceChildren();
    return;
  }
  if (rec.status === 'PENDING') {
    // Why it has not started, as the engine sees it (no worker for its name, a start set for later).
    try {
      rec.notStarted = (await api('explain', { id })).reason;
    } catch (e) {
      // the record is shown without it
    }
  }
  const prev = state.inst && state.inst.id === id ? state.inst : null;
  let events = [], meta;
  try {
    if (!full && prev && prev.executionId === rec.executionId && prev.events.length <= rec.historyLength) {
      const more = await loadHistory(id, prev.events.length);
      if (more.meta.generation === prev.generation) {
        events = prev.events.concat(more.events);
        meta = more.meta;
      }
    }
    if (!meta) ({ events, meta } = await loadHistory(id, 0));
  } catch (e) {
    $('i-error').textContent = e.message;
    return;
  }
  state.inst = { id, rec, events, executionId: meta.executionId, generation: meta.generation,
    shownAll: prev ? prev.shownAll : false };
  drawInstance();
}

// A failure, its stack trace, then each inner failure (the cause) the same way.
function failureText(f) {
  let s = (f.errorType || '') + ': ' + (f.errorMessage || '') + (f.isNonRetriable ? ' (not retriable)' : '');
  if (f.stackTrace) s += '\n' + f.stackTrace;
  if (f.innerFailure) s += '\n\ncaused by ' + failureText(f.innerFailure);
  return s;
}

function field(dl, k, v) {
  if (v === undefined || v === null || v === '') return;
  dl.append(el('dt', { text: k }), el('dd', {}, v));
}

function drawInstance() {
  const { rec, events } = state.inst;
  $('i-title').replaceChildren(rec.id, ' ', statusSpan(rec.status));
  document.title = rec.id + ' · taskhubd';
  const dl = $('i-fields');
  dl.replaceChildren();
  field(dl, 'Name', rec.name);
  field(dl, 'Version', rec.version);
  field(dl, 'Status', statusSpan(rec.status));
  field(dl, 'Not started', rec.notStarted ? el('span', { id: 'i-not-started', text: rec.notStarted }) : null);
  field(dl, 'Execution', rec.executionId);
  field(dl, 'Created', fmtTime(rec.createdAt));
  field(dl, 'Scheduled start', fmtTime(rec.scheduledStartAt));
  field(dl, 'Last updated', fmtTime(rec.lastUpdatedAt));
  field(dl, 'Completed', fmtTime(rec.completedAt));
  if (rec.completedAt) field(dl, 'Duration', fmtDur(new Date(rec.completedAt) - new Date(rec.createdAt)));
  field(dl, 'Parent', rec.parentId ? instanceLink(rec.parentId) : null);
  if (rec.tags) field(dl, 'Tags', Object.entries(rec.tags).map(([k, v]) => k + '=' + v).join(', '));
  field(dl, 'History', rec.historyLength + ' events');

  const pay = $('i-payloads');
  pay.replaceChildren();
  for (const [k, label] of [['input', 'Input'], ['output', 'Output'], ['customStatus', 'Custom status']]) {
    if (rec[k] !== undefined) pay.append(el('h3', { text: label }), el('pre', { id: 'p-' + k, text: pretty(rec[k]) }));
  }
  if (rec.failureDetails) {
    pay.append(el('h3', { text: 'Failure' }), el('pre', { id: 'p-failure', class: 'failure', text: failureText(rec.failureDetails) }));
  }

  const w = rec.waiting || {};
  const wait = $('i-waiting');
  wait.replaceChildren();
  const items = [];
  if (w.suspendRequested) items.push(el('li', { text: 'a suspend is requested' }));
  if (w.resumeRequested) items.push(el('li', { text: 'a resume is requested' }));
  if (w.terminateRequested) items.push(el('li', { text: 'a terminate is requested' }));
  for (const m of w.messages || []) {
    const t = eventType(m);
    items.push(el('li', { class: 'inbox', text: t + (eventSummary(m) ? ': ' + eventSummary(m) : '') }));
  }
  if (w.messageCount > (w.messages || []).length) items.push(el('li', { text: '… ' + w.messageCount + ' in all' }));
  wait.append(items.length ? el('ul', { id: 'inbox' }, ...items) : el('p', { class: 'muted', text: 'Nothing.' }));

  drawTree(rec);
  drawActions(rec);
  drawTimeline(events, rec);
  drawHistory(events);
}

async function drawTree(rec) {
  const box = $('i-tree');
  box.replaceChildren();
  if (rec.parentId) box.append(el('p', {}, 'Parent: ', instanceLink(rec.parentId)));
  if (!rec.hasChildren) {
    if (!rec.parentId) box.append(el('p', { class: 'muted', text: 'None.' }));
    return;
  }
  const root = el('div', { class: 'tree' });
  box.append(root);
  await addChildren(root, rec.id, 0);
}

async function addChildren(parent, id, depth) {
  let r;
  try { r = await api('children', { id }); } catch (e) { parent.append(el('p', { class: 'error', text: e.message })); return; }
  const ul = el('ul');
  for (const c of r.children) {
    const li = el('li', { dataset: { id: c.id } }, instanceLink(c.id), ' ', el('span', { class: 'muted', text: c.name }),
      ' ', statusSpan(c.status));
    ul.append(li);
    if (depth < 3) addChildren(li, c.id, depth + 1);
  }
  if (r.truncated) ul.append(el('li', { class: 'muted', text: '… ' + r.count + ' in all' }));
  if (r.children.length) parent.append(ul);
}

// ------------------------------------------------------------------ actions

const ACTIONS = [
  { a: 'raise', label: 'Raise event', live: true, fields: [['name', 'Event name', 'input'], ['input', 'Data (JSON)', 'textarea']] },
  { a: 'suspend', label: 'Suspend', live: true, fields: [['reason', 'Reason', 'input']] },
  { a: 'resume', label: 'Resume', live: true, fields: [['reason', 'Reason', 'input']] },
  { a: 'terminate', label: 'Terminate', live: true, danger: true,
    fields: [['output', 'Output (JSON)', 'textarea'], ['recursive', 'Also terminate sub-orchestrations', 'checkbox']] },
  { a: 'rewind', label: 'Rewind', failedOnly: true, fields: [['reason', 'Reason', 'input']] },
  { a: 'restart', label: 'Restart', fields: [['newInstanceId', 'Under a new instance id', 'checkbox']] },
  { a: 'purge', label: 'Purge', terminal: true, danger: true,
    fields: [['recursive', 'Also purge sub-orchestrations', 'checkbox']] },
];
const TERMINAL = ['COMPLETED', 'FAILED', 'TERMINATED', 'CANCELED'];

function drawActions(rec) {
  const box = $('i-actions');
  box.replaceChildren();
  if (state.config && !state.config.actions) {
    box.append(el('span', { class: 'muted', text: 'Read-only dashboard (--dashboard read-only): actions are off.' }));
    return;
  }
  const terminal = TERMINAL.includes(rec.status);
  for (const spec of ACTIONS) {
    const off = (spec.live && terminal) || (spec.terminal && !terminal) || (spec.failedOnly && rec.status !== 'FAILED');
    box.append(el('button', { type: 'button', id: 'act-' + spec.a, class: spec.danger ? 'danger' : 'secondary',
      disabled: off, text: spec.label, onclick: () => openDialog(spec, rec) }));
  }
}

function openDialog(spec, rec) {
  $('dialog-title').textContent = spec.label + ': ' + rec.id;
  $('dialog-text').textContent = 'This is sent to taskhubd as the ' + spec.a + ' command. Confirm to go on.';
  const fields = $('dialog-fields');
  fields.replaceChildren();
  for (const [name, label, kind] of spec.fields) {
    const input = kind === 'textarea' ? el('textarea', { id: 'd-' + name })
      : el('input', { id: 'd-' + name, type: kind === 'checkbox' ? 'checkbox' : 'text' });
    fields.append(el('label', {}, label, input));
  }
  $('dialog-result').textContent = '';
  $('dialog-result').className = '';
  $('dialog-confirm').disabled = false;
  $('dialog').hidden = false;
  $('dialog-form').onsubmit = async (ev) => {
    ev.preventDefault();
    const body = { id: rec.id };
    for (const [name, , kind] of spec.fields) {
      const e = $('d-' + name);
      if (kind === 'checkbox') body[name] = e.checked;
      else if (e.value !== '') body[name] = e.value;
    }
    $('dialog-confirm').disabled = true;
    try {
      const r = await act(spec.a, body);
      $('dialog-result').className = 'ok';
      $('dialog-result').textContent = 'Done: ' + spec.a + ' accepted by taskhubd' +
        (r.instanceId ? ' (instance ' + r.instanceId + ')' : '') + (r.deleted !== undefined ? ' (' + r.deleted + ' deleted)' : '') + '.';
      if (spec.a === 'purge') setTimeout(() => { closeDialog(); navigate({}); }, 600);
      else showInstance(rec.id, false);
    } catch (e) {
      $('dialog-result').className = 'bad';
      $('dialog-result').textContent = 'Refused (' + e.status + (e.code ? ' ' + e.code : '') + '): ' + e.message;
      $('dialog-confirm').disabled = false;
    }
  };
}

function closeDialog() { $('dialog').hidden = true; }
$('dialog-cancel').addEventListener('click', closeDialog);

// ------------------------------------------------------------------ timeline

// Bars from the history: an activity from TaskScheduled to its TaskCompleted/TaskFailed, a timer from
// TimerCreated to TimerFired (or its fire time while pending), a sub-orchestration from its creation to its
// result, and an external event from the turn before it arrived (when the orchestration began waiting, as far as
// the history shows) to its arrival. A bar without an end is still running and reaches to now.
function bars(events, rec) {
  const out = [], open = new Map();
  const now = Date.now();
  let start = null, lastTurn = null, end = rec.completedAt ? Date.parse(rec.completedAt) : null;
  // A retry: scheduled again under the same name after the last one of that name failed (retry policies
  // schedule the next attempt once the failure is in; parallel calls of one name are not retries).
  const lastOf = new Map();
  for (const ev of events) {
    const t = eventType(ev), b = ev[t] || {}, ts = Date.parse(ev.timestamp);
    if (t === 'executionStarted') start = ts;
    else if (t === 'orchestratorStarted') lastTurn = ts;
    else if (t === 'taskScheduled' || t === 'subOrchestrationInstanceCreated') {
      const kind = t === 'taskScheduled' ? 'activity' : 'suborchestration';
      const prev = lastOf.get(kind + b.name);
      const tryNo = prev && prev.failed && prev.to !== null && prev.to <= ts ? (prev.retry || 1) + 1 : 0;
      const bar = { kind, name: b.name, id: ev.eventId, from: ts, to: null, failed: false, retry: tryNo,
        child: b.instanceId };
      lastOf.set(kind + b.name, bar);
      open.set(kind + ':' + ev.eventId, bar);
      out.push(bar);
    } else if (t === 'taskCompleted' || t === 'taskFailed') {
      const bar = open.get('activity:' + b.taskScheduledId);
      if (bar) { bar.to = ts; bar.failed = t === 'taskFailed'; }
    } else if (t === 'subOrchestrationInstanceCompleted' || t === 'subOrchestrationInstanceFailed') {
      const bar = open.get('suborchestration:' + b.taskScheduledId);
      if (bar) { bar.to = ts; bar.failed = t === 'subOrchestrationInstanceFailed'; }
    } else if (t === 'timerCreated') {
      const bar = { kind: 'timer', name: 'timer', id: ev.eventId, from: ts, to: null, fireAt: Date.parse(b.fireAt) };
      open.set('timer:' + ev.eventId, bar);
      out.push(bar);
    } else if (t === 'timerFired') {
      const bar = open.get('timer:' + b.timerId);
      if (bar) bar.to = ts;
    } else if (t === 'eventRaised') {
      out.push({ kind: 'event', name: b.name, id: ev.eventId, from: lastTurn || start || ts, to: ts });
    } else if (t === 'executionCompleted' || t === 'executionTerminated') {
      end = ts;
    }
  }
  if (start !== null) {
    out.unshift({ kind: 'execution', name: rec.name, from: start, to: end, failed: rec.status === 'FAILED',
      terminated: rec.status === 'TERMINATED' });
  }
  for (const b of out) {
    b.running = b.to === null;
    if (b.running) b.to = b.kind === 'timer' && b.fireAt ? Math.max(b.fireAt, now) : (end || now);
  }
  return out;
}

const MAX_BARS = 3000;

function drawTimeline(events, rec) {
  const box = $('timeline');
  box.replaceChildren();
  const list = bars(events, rec);
  if (!list.length) { box.append(el('p', { class: 'muted', text: 'No history yet.' })); return; }
  const t0 = Math.min(...list.map((b) => b.from)), t1 = Math.max(...list.map((b) => b.to), t0 + 1);
  const span = t1 - t0;
  box.append(el('div', { class: 'tl-axis' }, el('span', { text: fmtTime(new Date(t0).toISOString()) }),
    el('span', { text: '+' + fmtDur(span / 2) }), el('span', { text: '+' + fmtDur(span) })));
  const frag = document.createDocumentFragment();
  for (const b of list.slice(0, MAX_BARS)) {
    const left = ((b.from - t0) / span) * 100, width = ((b.to - b.from) / span) * 100;
    const label = (b.kind === 'execution' ? 'orchestration ' : b.kind === 'suborchestration' ? 'sub ' :
      b.kind === 'event' ? 'event ' : '') + (b.name || '') + (b.child ? ' · ' + b.child : '') +
      (b.retry ? ' (try ' + b.retry + ')' : '') +
      (b.failed ? ' ✗' : '') + (b.running ? ' …' : '');
    const cls = 'tl-bar ' + b.kind + (b.failed ? ' failed' : '') + (b.terminated ? ' terminated' : '') +
      (b.running ? ' running' : '') + (b.retry ? ' retry' : '');
    frag.append(el('div', { class: 'tl-row' }, el('div', { class: 'tl-label', title: label, text: label }),
      el('div', { class: 'tl-track' }, el('div', { class: cls, style: { left: left + '%', width: width + '%' },
        title: label + ' · ' + fmtDur(b.to - b.from),
        dataset: { kind: b.kind, name: b.name || '', failed: b.failed ? '1' : '0', running: b.running ? '1' : '0' } }))));
  }
  box.append(frag);
  if (list.length > MAX_BARS) box.append(el('div', { class: 'tl-more', text: 'First ' + MAX_BARS + ' of ' + list.length + ' bars.' }));
}

// ------------------------------------------------------------------ history table

// Rows are drawn in chunks, yielding to the browser between them (a timeout, not an animation frame: frames are
// throttled in background tabs), so a history of 10,000 events never freezes the page; a newer draw cancels an
// older one. One listener on the table expands any row.
let historyDraw = 0;
const ROWS_PER_CHUNK = 2000;

function historyRow(ev, i) {
  const t = eventType(ev);
  const failed = t === 'taskFailed' || t === 'subOrchestrationInstanceFailed' ||
    (t === 'executionCompleted' && ev[t].orchestrationStatus === 'ORCHESTRATION_STATUS_FAILED');
  const tr = document.createElement('tr');
  tr.className = 'ev' + (failed ? ' failed' : '');
  tr.dataset.i = i;
  tr.dataset.type = t;
  for (const v of [String(i), ev.eventId === undefined ? '' : String(ev.eventId), t, fmtTime(ev.timestamp),
    eventSummary(ev)]) {
    const td = document.createElement('td');
    td.textContent = v;
    tr.append(td);
  }
  return tr;
}

function drawHistory(events) {
  $('h-count').textContent = '(' + events.length + ' events)';
  const tb = $('history').tBodies[0];
  const n = state.inst.shownAll ? events.length : Math.min(events.length, TABLE_CHUNK);
  const me = ++historyDraw;
  tb.replaceChildren();
  const chunk = (from) => {
    if (me !== historyDraw) return;
    const frag = document.createDocumentFragment();
    const to = Math.min(n, from + ROWS_PER_CHUNK);
    for (let i = from; i < to; i++) frag.append(historyRow(events[i], i));
    tb.append(frag);
    if (to < n) setTimeout(() => chunk(to), 0);
  };
  chunk(0);
  $('h-more').hidden = n >= events.length;
  $('h-more').textContent = 'Show all ' + events.length + ' events';
}

$('history').tBodies[0].addEventListener('click', (e) => {
  const tr = e.target.closest('tr.ev');
  if (!tr || !state.inst) return;
  const next = tr.nextSibling;
  if (next && next.classList.contains('detail')) { next.remove(); return; }
  const ev = state.inst.events[Number(tr.dataset.i)];
  tr.after(el('tr', { class: 'detail' }, el('td', { colspan: 5 }, el('pre', { text: JSON.stringify(ev, null, 2) }))));
});

$('h-more').addEventListener('click', () => {
  state.inst.shownAll = true;
  drawHistory(state.inst.events);
});

// ------------------------------------------------------------------ live updates

// The server pushes which instances changed; the page reloads what it shows when that is affected, at most
// a few times a second.
function changed(list) {
  if (state.inst) {
    if (list.some((c) => c.id === state.inst.id)) schedule(() => showInstance(state.inst.id, false));
  } else if (!$('list-view').hidden) {
    schedule(() => loadList(params(), state.list.current));
  } else if (!$('entities-view').hidden && state.entities) {
    schedule(() => loadEntities(state.entities.prefix, state.entities.current));
  }
  schedule(loadOverview, 'overview');
}

const timers = {};
function schedule(fn, key) {
  key = key || 'view';
  if (timers[key]) return;
  timers[key] = setTimeout(() => { timers[key] = null; fn(); }, 250);
}

async function stream() {
  for (;;) {
    try {
      const r = await fetch('/api/v1/events', { headers: headers(), cache: 'no-store' });
      if (r.status === 401) { needToken(); return; }
      if (!r.ok || !r.body) throw new Error('HTTP ' + r.status);
      $('live').className = 'live on';
      $('live').textContent = 'live';
      const reader = r.body.getReader();
      const dec = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let event = 'message', data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) event = line.slice(7);
            else if (line.startsWith('data: ')) data += line.slice(6);
          }
          if (event === 'changes') changed(JSON.parse(data));
          else if (event === 'reset') changed([{ id: state.inst ? state.inst.id : '' }]);
        }
      }
    } catch (e) {
      // fall through to the retry below
    }
    $('live').className = 'live off';
    $('live').textContent = 'reconnecting';
    await new Promise((res) => setTimeout(res, 2000));
  }
}

// ------------------------------------------------------------------ start

let started = false;
async function start() {
  try {
    state.config = await api('config');
  } catch (e) {
    if (e.status !== 401) $('list-error').textContent = e.message;
    return;
  }
  $('version').textContent = 'v' + state.config.version;
  $('mode').textContent = state.config.actions ? 'actions on' : 'read-only';
  await Promise.all([render(), loadOverview()]);
  if (!started) {
    started = true;
    stream();
    setInterval(loadOverview, 10000);
  }
}

start();
