// The ptypilot live page: follows the daemon's server-sent events (/live/events) and draws the
// latest status and reconstruction. Every event is a full state, so rendering one never depends
// on the ones before it; a viewer that missed events is simply up to date with the next.
'use strict';

// The same cycle as the Python figures, so a sub-sequence has one colour on paper and on screen.
const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd',
  '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
const MAX_SIDE = 512;  // the canvas's longer side in CSS pixels: fixed, so resizes need no redraw,
                       // and small enough that the whole figure fits a 1280x800 window
const EMPTY_COLOUR = '#e8e8e8';

// A viridis-like colour map: perceptually ordered, so equal phase steps look like equal steps.
// Nine control points, linearly interpolated into a 256-entry table (r, g, b per entry).
const COLOUR_MAP = (() => {
  const stops = [[68, 1, 84], [72, 40, 120], [62, 73, 137], [49, 104, 142], [38, 130, 142],
    [31, 158, 137], [53, 183, 121], [110, 206, 88], [253, 231, 37]];
  const table = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const t = (i / 255) * (stops.length - 1);
    const k = Math.min(Math.floor(t), stops.length - 2);
    const f = t - k;
    for (let c = 0; c < 3; c++) table[i * 3 + c] = stops[k][c] + f * (stops[k + 1][c] - stops[k][c]);
  }
  return table;
})();

// What the page knows: the last event of each kind, and who is viewing.
let lastStatus = null;
let lastRecon = null;
let role = null;         // the last /live/role reply, or null when unknown
let roleKey = null;      // session_id and state when /live/role was last asked
let roleRequest = 0;     // numbers the requests, so a late reply cannot overwrite a newer one
let token = readToken();

const $ = (id) => document.getElementById(id);

function setText(id, text) {
  $(id).textContent = text;
}

// The token comes from the fragment, which the browser never sends to a server in a GET.
function readToken() {
  const params = new URLSearchParams(location.hash.replace(/^#/, ''));
  return params.get('token') || '';
}

function authHeaders(extra = {}) {
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

function fixed(value, digits) {
  return typeof value === 'number' && Number.isFinite(value) ? value.toFixed(digits) : '–';
}

function count(value) {
  return typeof value === 'number' ? value.toLocaleString('en-US') : '–';
}

function bytes(value) {
  if (typeof value !== 'number') return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (value >= 1024 && i < units.length - 1) { value /= 1024; i++; }
  return `${value.toFixed(i ? 1 : 0)} ${units[i]}`;
}

// ---- the event stream ----

let source = null;

function connect() {
  source = new EventSource('/live/events');
  source.onopen = () => setConnection('connected', false);
  source.onerror = () => {
    setConnection('disconnected, reconnecting', true);
    // EventSource retries by itself, except after a reply it cannot use (e.g. an HTTP error):
    // then it is closed for good, and only a new one keeps the page alive without a reload.
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
  };
  source.addEventListener('status', (e) => handle(e, onStatus));
  source.addEventListener('reconstruction', (e) => handle(e, onReconstruction));
}

// A malformed event is reported and dropped; the next full-state event repairs the page.
function handle(event, render) {
  let data;
  try {
    data = JSON.parse(event.data);
  } catch (err) {
    console.error(`unreadable ${event.type} event`, err);
    return;
  }
  render(data);
}

function setConnection(text, bad) {
  setText('connection', text);
  $('connection').classList.toggle('bad', bad);
}

// ---- status ----

function onStatus(status) {
  lastStatus = status;
  renderStatus();
  // Who may stop depends on the session and its state, so ask again whenever either changes.
  const key = `${status.session_id}\u0000${status.state}`;
  if (key !== roleKey) {
    roleKey = key;
    fetchRole();
  }
}

function renderStatus() {
  const s = lastStatus;
  const state = $('state');
  state.textContent = s.state || '–';
  state.className = `badge ${s.state || 'empty'}`;
  setText('session-id', s.session_id || '');
  $('error').hidden = !s.error;
  setText('error', s.error || '');

  const budget = $('budget');
  budget.max = s.position_budget > 0 ? s.position_budget : 1;
  budget.value = s.position_budget > 0 ? Math.min(s.positions_issued, s.position_budget) : 0;
  setText('budget-text', s.position_budget > 0
    ? `${count(s.positions_issued)} / ${count(s.position_budget)} positions issued`
    : 'no budget (idle)');
  setText('dose', `${fixed(s.dose_e_per_A2, 1)} e/Å²`);
  setText('frames-received', count(s.frames_received));
  setText('frames-recorded', count(s.frames_recorded));
  setText('sub-sequences', count(s.sub_sequences));
  setText('disk-free', bytes(s.disk_free_bytes));

  renderCounters(s.counters || []);
  renderStopButton();
  renderCanvasMessage();
}

function renderCounters(counters) {
  const rows = counters.map((c) => {
    const tr = document.createElement('tr');
    if (c.alarm) tr.className = 'alarm';
    else if (!c.value) tr.className = 'zero';
    for (const text of [c.name, count(c.value)]) {
      const td = document.createElement('td');
      td.textContent = text;
      tr.appendChild(td);
    }
    return tr;
  });
  $('counters').tBodies[0].replaceChildren(...rows);
  const alarms = counters.filter((c) => c.alarm).length;
  $('alarm-count').hidden = alarms === 0;
  setText('alarm-count', `${alarms} alarm${alarms === 1 ? '' : 's'}`);
}

// ---- role and stop ----

async function fetchRole() {
  const mine = ++roleRequest;
  let reply = null;
  try {
    const response = await fetch('/live/role', { headers: authHeaders(), cache: 'no-store' });
    reply = await response.json();
  } catch (err) {
    console.error('/live/role failed', err);
  }
  if (mine !== roleRequest) return;
  role = reply;
  setText('role', role ? `viewing as ${role.role}` : 'role unknown');
  $('role').title = (role && role.why) || '';
  renderStopButton();
}

function renderStopButton() {
  const running = lastStatus !== null && lastStatus.state === 'running';
  $('stop').hidden = !(role && role.can_stop === true && running);
}

async function stopSession() {
  const id = (lastStatus && lastStatus.session_id) || '';
  if (!confirm(`Stop session ${id} after the sub-sequence in flight?`)) return;
  const button = $('stop');
  button.disabled = true;
  try {
    const response = await fetch('/live/stop', {
      method: 'POST',
      headers: authHeaders({ 'X-Ptypilot-Action': 'stop' }),
    });
    let reply = {};
    try { reply = await response.json(); } catch (err) { /* a reply without JSON: the status says */ }
    setText('stop-message', reply.ok ? 'stopping'
      : (reply.error || `stop refused (HTTP ${response.status})`));
  } catch (err) {
    setText('stop-message', `stop failed: ${err.message}`);
  } finally {
    button.disabled = false;
  }
}

// ---- reconstruction ----

function onReconstruction(recon) {
  lastRecon = recon;
  const completed = recon.completed || [];
  drawReconstruction(recon);
  renderLatencies(completed);
  renderLegend(completed, recon.next);
  renderCanvasMessage();
}

// Says why the canvas is empty, when it is; the reconstruction's own session once one is drawn.
function renderCanvasMessage() {
  let message = '';
  if (!lastRecon) {
    if (!lastStatus) message = 'waiting for the daemon';
    else if (lastStatus.state === 'idle') message = 'no session yet';
    else message = 'waiting for the first reconstruction';
  }
  $('canvas-message').hidden = !message;
  setText('canvas-message', message);

  let caption = '';
  if (lastRecon) {
    caption = `from session ${lastRecon.session_id}`;
    // A new session keeps showing the old picture until its first reconstruction; say so.
    if (lastStatus && lastStatus.session_id && lastStatus.session_id !== lastRecon.session_id) {
      caption += ' (a previous session)';
    }
  }
  setText('recon-caption', caption);
}

// The field of view in image pixels and Angstrom per pixel. Without an image (rows 0) the
// positions alone set it, so that the first issued positions still show on a blank field.
function geometry(recon) {
  const image = recon.image || {};
  if (image.rows > 0 && image.cols > 0 && image.pixel_A > 0) {
    return { rows: image.rows, cols: image.cols, pixelA: image.pixel_A, image };
  }
  let extent = 0;
  for (const [y, x] of allPositions(recon)) extent = Math.max(extent, y, x);
  const pixelA = image.pixel_A > 0 ? image.pixel_A : (extent > 0 ? extent / 100 : 1);
  const side = Math.max(1, Math.ceil((1.1 * extent) / pixelA));  // a margin keeps edge marks whole
  return { rows: side, cols: side, pixelA, image: null };
}

function allPositions(recon) {
  const lists = (recon.completed || []).map((s) => s.approved_A || []);
  if (recon.next) {
    lists.push(recon.next.approved_A || []);
    for (const c of recon.next.changed || []) lists.push([c.proposed_A, c.placed_A].filter(Boolean));
  }
  return lists.flat().filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1]));
}

// One byte a pixel, mapped through the colour table on an offscreen canvas of the image's own
// size; the visible canvas then scales it up without smoothing, so pixels stay pixels.
function decodeImage(image) {
  const n = image.rows * image.cols;
  const raw = atob(image.data_base64 || '');
  const bytesIn = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytesIn[i] = raw.charCodeAt(i);
  if (bytesIn.length !== n) console.warn(`image has ${bytesIn.length} bytes, expected ${n}`);

  const off = document.createElement('canvas');
  off.width = image.cols;
  off.height = image.rows;
  const ctx = off.getContext('2d');
  const pixels = ctx.createImageData(image.cols, image.rows);
  for (let i = 0; i < n; i++) {
    const v = i < bytesIn.length ? bytesIn[i] : 0;
    pixels.data.set(COLOUR_MAP.subarray(v * 3, v * 3 + 3), i * 4);
    pixels.data[i * 4 + 3] = 255;
  }
  ctx.putImageData(pixels, 0, 0);
  return off;
}

function drawReconstruction(recon) {
  const geo = geometry(recon);
  const scale = MAX_SIDE / Math.max(geo.rows, geo.cols);
  const canvas = $('reconstruction');
  canvas.width = Math.round(geo.cols * scale);
  canvas.height = Math.round(geo.rows * scale);
  const ctx = canvas.getContext('2d');
  ctx.imageSmoothingEnabled = false;

  if (geo.image) {
    ctx.drawImage(decodeImage(geo.image), 0, 0, canvas.width, canvas.height);
  } else {
    ctx.fillStyle = EMPTY_COLOUR;
    ctx.fillRect(0, 0, canvas.width, canvas.height);
  }
  drawColourBar(geo.image);

  // Position [y, x] lies at pixel (y / pixel_A, x / pixel_A); the half pixel puts it at that
  // pixel's centre, where the image shows the pixel (as the Python figures' imshow does).
  const at = ([y, x]) => [(x / geo.pixelA + 0.5) * scale, (y / geo.pixelA + 0.5) * scale];

  // A thin white rim, outside the fill so the fill keeps its size, sets the dots apart from
  // the map's dark blues, which share the palette's first hue.
  let drawn = 0;
  const completed = recon.completed || [];
  ctx.strokeStyle = '#ffffff';
  ctx.lineWidth = 1;
  completed.forEach((sub, k) => {
    ctx.fillStyle = PALETTE[k % PALETTE.length];
    for (const p of sub.approved_A || []) {
      const [cx, cy] = at(p);
      ctx.beginPath();
      ctx.arc(cx, cy, 4.5, 0, 2 * Math.PI);
      ctx.stroke();
      ctx.beginPath();
      ctx.arc(cx, cy, 4, 0, 2 * Math.PI);
      ctx.fill();
      drawn++;
    }
  });
  if (recon.next) drawNext(ctx, recon.next, at, completed.length);
  drawScaleBar(ctx, canvas, geo.cols * geo.pixelA);

  setText('positions-drawn', String(drawn));
  setText('sub-sequences-drawn', String(completed.length));
}

// The issued but not yet reconstructed positions as hollow circles in the colour they will get;
// Safety's changes as a red x at the proposal and a line to where it was placed.
function drawNext(ctx, next, at, colourIndex) {
  ctx.lineWidth = 2;
  ctx.strokeStyle = PALETTE[colourIndex % PALETTE.length];
  for (const p of next.approved_A || []) {
    const [cx, cy] = at(p);
    ctx.beginPath();
    ctx.arc(cx, cy, 4, 0, 2 * Math.PI);
    ctx.stroke();
  }
  ctx.strokeStyle = '#e00000';
  for (const change of next.changed || []) {
    if (!change.proposed_A) continue;  // a non-finite proposal has nowhere to be drawn
    const [px, py] = at(change.proposed_A);
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.moveTo(px - 4, py - 4); ctx.lineTo(px + 4, py + 4);
    ctx.moveTo(px + 4, py - 4); ctx.lineTo(px - 4, py + 4);
    ctx.stroke();
    if (change.placed_A) {
      const [qx, qy] = at(change.placed_A);
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(px, py); ctx.lineTo(qx, qy);
      ctx.stroke();
    }
  }
}

// A round length (1, 2 or 5 times a power of ten) nearest to a fifth of the field's width.
function scaleBarLength(widthA) {
  const target = widthA / 5;
  const decade = 10 ** Math.floor(Math.log10(target));
  const choices = [1, 2, 5, 10].map((m) => m * decade);
  return choices.reduce((a, b) => (Math.abs(Math.log(b / target)) < Math.abs(Math.log(a / target)) ? b : a));
}

function drawScaleBar(ctx, canvas, widthA) {
  if (!(widthA > 0)) return;
  const lengthA = scaleBarLength(widthA);
  const px = (lengthA / widthA) * canvas.width;
  const x = 16;
  const y = canvas.height - 18;
  // White on a dark outline reads on every colour of the map.
  ctx.fillStyle = 'rgba(0, 0, 0, 0.55)';
  ctx.fillRect(x - 6, y - 22, px + 12, 32);
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(x, y, px, 5);
  ctx.font = '13px system-ui, sans-serif';
  ctx.textAlign = 'center';
  ctx.textBaseline = 'bottom';
  ctx.fillText(`${Number(lengthA.toPrecision(1))} Å`, x + px / 2, y - 3);
}

// The colour bar runs from min (bottom) to max (top), labelled beside it in the page's text.
function drawColourBar(image) {
  const bar = $('colour-bar');
  const ctx = bar.getContext('2d');
  for (let row = 0; row < bar.height; row++) {
    const v = Math.round(255 * (1 - row / (bar.height - 1)));
    const [r, g, b] = COLOUR_MAP.subarray(v * 3, v * 3 + 3);
    ctx.fillStyle = image ? `rgb(${r}, ${g}, ${b})` : EMPTY_COLOUR;
    ctx.fillRect(0, row, bar.width, 1);
  }
  setText('colour-max', image ? `${fixed(image.max_rad, 3)}` : '–');
  setText('colour-min', image ? `${fixed(image.min_rad, 3)}` : '–');
}

function renderLatencies(completed) {
  const rows = completed.slice().reverse().map((sub) => {
    const ms = sub.latency_ms || {};
    const cells = [sub.index, count((sub.approved_A || []).length),
      fixed(ms.reconstruct, 1), fixed(ms.policy, 1), fixed(ms.safety, 1), fixed(ms.driver, 1),
      fixed(ms.total, 1), count(sub.frames_received), count(sub.frames_recorded),
      fixed(sub.dose_e_per_A2, 1)];
    const tr = document.createElement('tr');
    for (const text of cells) {
      const td = document.createElement('td');
      td.textContent = String(text);
      tr.appendChild(td);
    }
    return tr;
  });
  $('latencies').tBodies[0].replaceChildren(...rows);
}

function renderLegend(completed, next) {
  const items = completed.map((sub, k) => legendItem(PALETTE[k % PALETTE.length], 'dot',
    `#${sub.index} (${(sub.approved_A || []).length})`));
  if (next) {
    items.push(legendItem(PALETTE[completed.length % PALETTE.length], 'ring',
      `next #${next.index} (${(next.approved_A || []).length})`));
    if ((next.changed || []).length) {
      items.push(legendItem('#e00000', 'cross', `moved or dropped by Safety (${next.changed.length})`));
    }
  }
  $('legend').replaceChildren(...items);
}

function legendItem(colour, shape, text) {
  const li = document.createElement('li');
  const mark = document.createElement('span');
  mark.className = `mark ${shape}`;
  mark.style.setProperty('--colour', colour);
  if (shape === 'cross') mark.textContent = '×';
  li.append(mark, document.createTextNode(text));
  return li;
}

// ---- start ----

$('stop').addEventListener('click', stopSession);
drawColourBar(null);
window.addEventListener('hashchange', () => {
  token = readToken();
  fetchRole();
});
fetchRole();
connect();
