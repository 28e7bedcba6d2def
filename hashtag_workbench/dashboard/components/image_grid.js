// The image grid (Review, Evaluation, Embedding): thumbnails, a sticky action bar, selection, keys,
// and the lightbox (lightbox.js, loaded before this file into the same module).
//
// Exactly once, on the image the person saw: the cursor, the selection and the queue of unsent
// decisions live here, in the browser. Every key press or click becomes an event
// {id: <tab>-<n>, kind, ids, word} bound to the image on screen when it was made; the whole queue of
// events the server has not acknowledged yet is sent as the component's state, so a rerun that is
// interrupted, fails or never arrives loses nothing: the next send (or a resend after RESEND_MS)
// carries it again, and the server applies each event id at most once (warehouse.curation.apply_events).

const RESEND_MS = 2500;
const RESEND_BUSY_MS = 10000;   // unacknowledged this long: sent again even while the app looks busy
const PARK_MAX_MS = 4000;       // keys wait at most this long for a control's result ...
const PARK_RERUN_MS = 20000;    // ... or this long once the app is seen running it (acting on the old view is worse)
const TAB = Math.random().toString(36).slice(2, 10);   // this page load; event ids are TAB-counter
const BOXES = '.st-key-review_word_box, .st-key-review_detector, .st-key-review_show, .st-key-review_per_page';
const grids = new Map();          // component key -> instance state (kept across redraws)
let keysInstalled = false;
let counter = 0;

function state(key) {
  if (!grids.has(key)) {
    grids.set(key, {queue: [], sentAt: 0, cursor: null, cursorIdx: 0, view: null, scope: null,
                    selected: new Set(), anchor: null, lb: null, confirm: null, parked: [], changedAt: 0, unmountedAt: 0,
                    renderedAt: 0, mounted: false});
  }
  return grids.get(key);
}

function busy() {
  return !!document.querySelector('[data-testid="stStatusWidget"], [data-stale="true"]');
}

// ---------------------------------------------------------------- events

function send(g) {
  g.sentAt = Date.now();
  g.api.setStateValue('events', g.queue.map((e) => ({id: e.id, kind: e.kind, ids: e.ids, word: e.word})));
}

function enqueue(g, kind, ids, word) {
  if (kind !== 'undo' && !ids.length) return;
  if (kind === 'relabel' && !word) { note(g, 'Choose a relabel target first.', true); return; }
  counter += 1;
  g.queue.push({id: TAB + '-' + counter, kind: kind, ids: ids.slice(), word: word || null});
  send(g);
  draw(g);
}

// ---------------------------------------------------------------- cursor and selection

function ids(g) { return g.data.cells.map((c) => c.id); }

function move(g, delta) {
  const all = ids(g);
  if (!all.length) return;
  const i = Math.max(0, all.indexOf(g.cursor)) + delta;
  if (i >= all.length || i < 0) {
    const p = g.data.page || {page: 1, n_pages: 1};
    const to = p.page + (i < 0 ? -1 : 1);
    if (to >= 1 && to <= p.n_pages) g.api.setTriggerValue('nav', {page: to, at: i < 0 ? 'last' : 'first'});
    return;
  }
  setCursor(g, all[i]);
}

function setCursor(g, id) {
  g.cursor = id;
  g.cursorIdx = Math.max(0, ids(g).indexOf(id));
  draw(g);
  const el = g.root && g.root.querySelector('.cell[data-id="' + id + '"]');
  if (el && el.scrollIntoView) el.scrollIntoView({block: 'nearest'});
}

function decideCursor(g, kind) {
  if (g.cursor === null) return;
  if (kind === 'relabel' && !g.data.relabel) { note(g, 'Choose a relabel target first.', true); return; }
  const id = g.cursor;
  const all = ids(g);
  const i = all.indexOf(id);
  if (i + 1 < all.length) { g.cursor = all[i + 1]; g.cursorIdx = i + 1; }
  enqueue(g, kind, [id], kind === 'relabel' ? g.data.relabel : null);
}

function toggle(g, id, shift) {
  const all = ids(g);
  if (shift && g.anchor !== null && all.includes(g.anchor)) {
    const [a, b] = [all.indexOf(g.anchor), all.indexOf(id)].sort((x, y) => x - y);
    const on = !g.selected.has(id);
    for (const x of all.slice(a, b + 1)) { if (on) g.selected.add(x); else g.selected.delete(x); }
  } else if (g.selected.has(id)) {
    g.selected.delete(id);
  } else {
    g.selected.add(id);
  }
  g.anchor = id;
  draw(g);
}

function bulk(g, kind) {
  const chosen = [...g.selected];
  if (!chosen.length) return;
  if (kind === 'relabel' && g.confirm !== 'relabel') { g.confirm = 'relabel'; draw(g); return; }
  g.confirm = null;
  g.selected.clear();
  enqueue(g, kind, chosen, kind === 'relabel' ? g.data.relabel : null);
}

// ---------------------------------------------------------------- keys

function keyTarget(e) {
  // The instance a key belongs to: the one whose lightbox is open, else the grid that owns the page's keys;
  // between a redraw's unmount and mount that grid still owns them (onKey parks them until it is back).
  for (const g of grids.values()) if (g.mounted && g.lb !== null) return g;
  for (const g of grids.values()) if (g.mounted && g.data && g.data.keys) return g;
  for (const g of grids.values()) if (g.data && g.data.keys && Date.now() - g.unmountedAt < PARK_MAX_MS) return g;
  return null;
}

function justChose(g) {
  return g.changeWasOption && Date.now() - g.changedAt < PARK_MAX_MS;
}

function onKey(e) {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const g = keyTarget(e);
  if (!g) return;
  const k = (e.key || '').toLowerCase();
  const known = g.lb !== null ? LIGHTBOX_KEYS : GRID_KEYS;
  if (!known.includes(k)) return;
  const el = e.composedPath ? e.composedPath()[0] : e.target;
  const tag = el && el.tagName;
  // Space / Enter on a focused button or link keep their usual meaning; Esc closes other things first.
  if ((k === ' ' || k === 'enter') && (tag === 'BUTTON' || tag === 'A')) return;
  if (k === 'escape' && g.lb === null && !g.selected.size && !g.confirm) return;
  if (tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT' || (el && el.isContentEditable)) {
    // Right after choosing a word the focus stays in its box: the key is meant for the grid.
    // (A menu may still say it is open for a moment after its option was clicked.)
    if (tag !== 'INPUT' || !el.closest || !el.closest(BOXES)) return;
    if (el.getAttribute('aria-expanded') === 'true' && !justChose(g)) return;
    el.blur();
  }
  e.preventDefault();
  e.stopImmediatePropagation();
  if (e.repeat) return;               // a held key repeats one decision: ignored
  const changing = g.lb === null && g.changedAt > g.renderedAt && Date.now() - g.changedAt < PARK_MAX_MS;
  if (!g.mounted || changing || g.parked.length) {
    g.parked.push({k: k, t: Date.now()});   // another control was just used: act once the grid shows its result
    if (g.mounted) watchParked(g);    // (an unmounted grid flushes them when it is drawn again)
    return;
  }
  (g.lb !== null ? lightboxKey : gridKey)(g, k);
}

const GRID_KEYS = ['k', 'x', 'r', 'n', 'b', 'arrowright', 'arrowleft', 'u', ' ', 'enter', 'o', 'escape'];

function gridKey(g, k) {
  if (k === 'k') decideCursor(g, 'keep');
  else if (k === 'x') decideCursor(g, 'reject');
  else if (k === 'r') decideCursor(g, 'relabel');
  else if (k === 'n' || k === 'arrowright') move(g, 1);
  else if (k === 'b' || k === 'arrowleft') move(g, -1);
  else if (k === 'u') enqueue(g, 'undo', [], null);
  else if (k === ' ' && g.cursor !== null) toggle(g, g.cursor, false);
  else if ((k === 'enter' || k === 'o') && g.cursor !== null) openLightbox(g, g.cursor);
  else if (k === 'escape') { g.selected.clear(); g.confirm = null; draw(g); }
}

function watchParked(g) {
  if (g.parkTimer) return;
  const t0 = Date.now();
  let sawRun = false;
  g.parkTimer = setInterval(() => {
    const waited = Date.now() - t0;
    sawRun = sawRun || busy();
    // A chosen option (a word, a filter) redraws when it changed something: wait for that, however slow
    // the app is once it shows it is running it. Another control may not redraw: wait while it runs.
    const idle = !g.changeWasOption && waited > 600 && !busy();
    const limit = sawRun && g.changeWasOption ? PARK_RERUN_MS : PARK_MAX_MS;
    if (g.renderedAt >= g.changedAt || idle || waited > limit) flushParked(g);
  }, 50);
}

function flushParked(g) {
  clearInterval(g.parkTimer);
  g.parkTimer = null;
  g.changedAt = 0;
  const keys = g.parked.splice(0).filter((p) => Date.now() - p.t < PARK_RERUN_MS);   // not from an old visit
  for (const p of keys) (g.lb !== null ? lightboxKey : gridKey)(g, p.k);
}

function installKeys() {
  if (keysInstalled) return;
  keysInstalled = true;
  document.addEventListener('keydown', onKey, true);
  // A click on another control (a word, a filter) may redraw the grid with other images: keys pressed
  // before that redraw wait for it (flushParked), so they land on what the person chose.
  document.addEventListener('pointerdown', (e) => {
    const path = e.composedPath ? e.composedPath() : [];
    const control = path.find((n) => n.matches && n.matches('[role=option], [data-baseweb=select], button, input, label'));
    for (const g of grids.values()) {
      if (g.host && !path.includes(g.host) && control) {
        g.changedAt = Date.now();
        g.changeWasOption = control.matches('[role=option]');
      }
    }
  }, true);
}

// ---------------------------------------------------------------- drawing

function note(g, text, bad) {
  g.localNote = {text: text, bad: !!bad};
  draw(g);
}

function pending(g) {
  const out = new Map();
  for (const e of g.queue) if (e.kind !== 'undo') for (const id of e.ids) out.set(id, e.kind);
  return out;
}

const BADGES = {keep: 'kept', reject: 'rejected', relabel: 'relabelled'};

function button(label, title, onclick, extra) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  b.title = title;
  if (extra) Object.assign(b.dataset, extra);
  b.onclick = (e) => { e.stopPropagation(); onclick(e); };
  return b;
}

function drawBar(g) {
  const bar = g.bar;
  bar.textContent = '';
  const d = g.data;
  const n = g.selected.size;
  const info = document.createElement('span');
  info.className = 'count';
  const waiting = g.queue.length;
  info.textContent = n + ' selected' + (waiting ? ' · ' + waiting + ' sending…' : '');
  bar.append(info);
  const acts = d.bulk || [];
  if (acts.includes('keep')) bar.append(button('Keep selected', 'keep every selected image (one undo step)', () => bulk(g, 'keep'), {bulk: 'keep'}));
  if (acts.includes('reject')) bar.append(button('Reject selected', 'reject every selected image (one undo step)', () => bulk(g, 'reject'), {bulk: 'reject'}));
  if (acts.includes('relabel')) {
    const rl = button(d.relabel ? 'Relabel selected to ' + d.relabel + '…' : 'Relabel selected (choose a target)',
                      'relabel every selected image', () => bulk(g, 'relabel'), {bulk: 'relabel'});
    rl.disabled = !d.relabel || !n;
    bar.append(rl);
  }
  bar.append(button('Select page', 'select every image on this page', () => { ids(g).forEach((i) => g.selected.add(i)); draw(g); }, {bulk: 'page'}));
  if (d.matching && d.matching.length) {
    bar.append(button('Select all matching (' + d.matching.length + ')', 'every image of this word and filter, on all pages',
                      () => { d.matching.forEach((i) => g.selected.add(i)); draw(g); }, {bulk: 'matching'}));
  }
  bar.append(button('Clear', 'clear the selection (Esc)', () => { g.selected.clear(); g.confirm = null; draw(g); }, {bulk: 'clear'}));
  if (d.keys) bar.append(button('Undo (U)', 'undo the last action made on this page', () => enqueue(g, 'undo', [], null), {bulk: 'undo'}));
  for (const b of bar.querySelectorAll('button[data-bulk=keep], button[data-bulk=reject]')) b.disabled = !n;
  if (g.confirm === 'relabel' && n) {
    const c = document.createElement('span');
    c.className = 'confirm';
    c.textContent = 'Relabel ' + n + ' image' + (n === 1 ? '' : 's') + ' to ' + d.relabel + '? ';
    c.append(button('Relabel ' + n, 'confirm', () => bulk(g, 'relabel'), {bulk: 'confirm'}),
             button('Cancel', 'cancel', () => { g.confirm = null; draw(g); }, {bulk: 'cancel'}));
    bar.append(c);
  }
  const msg = g.localNote || d.message;
  if (msg && msg.text) {
    const m = document.createElement('span');
    m.className = 'msg' + (msg.bad ? ' bad' : '');
    m.textContent = msg.text;
    bar.append(m);
  }
}

function drawCell(g, c, waiting) {
  const cell = document.createElement('div');
  const review = waiting.get(c.id) || c.review;
  cell.className = 'cell' + (c.id === g.cursor && g.data.keys ? ' current' : '') +
                   (g.selected.has(c.id) ? ' selected' : '') + (c.flagged && review === 'unreviewed' ? ' flagged' : '');
  cell.dataset.id = String(c.id);
  const img = document.createElement('img');
  if (c.src) img.src = c.src;
  img.alt = 'image ' + c.id;
  img.title = 'open large (Enter)';
  img.onclick = (e) => {
    if (e.shiftKey) { toggle(g, c.id, true); return; }
    setCursor(g, c.id);
    openLightbox(g, c.id);
  };
  const wrap = document.createElement('div');
  wrap.className = 'pic';
  wrap.append(img);
  if (BADGES[review]) {
    const b = document.createElement('span');
    b.className = 'badge ' + review + (waiting.has(c.id) ? ' waiting' : '');
    b.textContent = BADGES[review] + (waiting.has(c.id) ? '…' : '');
    wrap.append(b);
  }
  const cap = document.createElement('div');
  cap.className = 'cap';
  cap.textContent = c.caption;           // text only: never parsed as HTML
  const bar = document.createElement('div');
  bar.className = 'bar';
  const all = {keep: ['\u2713', 'keep'], reject: ['\u2717', 'reject'],
               relabel: ['\u21aa', 'relabel to ' + (g.data.relabel || '(choose a target word first)')],
               select: [g.selected.has(c.id) ? '\u2611' : '\u2610', 'select (shift-click: a range)'],
               review: ['\u2197', 'open in Review']};
  for (const act of (g.data.acts || [])) {
    const [label, title] = all[act];
    const b = button(label, title, (e) => cellAct(g, c.id, act, e.shiftKey), {act: act});
    if (act === 'relabel' && !g.data.relabel) b.disabled = true;
    bar.append(b);
  }
  cell.append(wrap, cap, bar);
  return cell;
}

function cellAct(g, id, act, shift) {
  if (act === 'select') toggle(g, id, shift);
  else if (act === 'review') g.api.setTriggerValue('action', {id: id, act: 'review', t: Date.now()});
  else enqueue(g, act, [id], act === 'relabel' ? g.data.relabel : null);
}

function draw(g) {
  if (!g.root) return;
  const waiting = pending(g);
  if (g.bar) drawBar(g);
  g.root.textContent = '';
  for (const c of g.data.cells) g.root.appendChild(drawCell(g, c, waiting));
  drawLightbox(g, waiting);
}

// ---------------------------------------------------------------- a new render from the server

function adopt(g, data) {
  g.data = data;
  const acked = new Set(data.acked || []);
  g.queue = g.queue.filter((e) => !acked.has(e.id));
  if (data.scope !== g.scope) { g.scope = data.scope; g.selected.clear(); g.anchor = null; g.confirm = null; }
  const all = ids(g);
  if (data.view !== g.view) {
    g.view = data.view;
    g.cursor = data.current !== undefined && data.current !== null && all.includes(data.current) ? data.current
      : (all.length ? all[0] : null);
  } else if (!all.includes(g.cursor)) {   // the image under the cursor left this list (rejected): the next one
    g.cursor = all.length ? all[Math.min(g.cursorIdx, all.length - 1)] : null;
  }
  g.cursorIdx = Math.max(0, all.indexOf(g.cursor));
  if (g.lb !== null && !all.includes(g.lb)) g.lb = null;
  g.localNote = null;
  g.renderedAt = Date.now();
}

export default function (component) {
  const {data, parentElement} = component;
  const g = state(data.gid);              // by the Python key: the queue outlives a remount
  const token = (g.token || 0) + 1;
  g.token = token;
  g.api = component;
  g.mounted = true;
  g.host = parentElement.host || parentElement;
  installKeys();
  if (!g.shell || !parentElement.contains(g.shell)) {
    g.shell = document.createElement('div');
    g.shell.className = 'shell';
    g.bar = data.bulk ? document.createElement('div') : null;
    if (g.bar) { g.bar.className = 'actionbar'; g.shell.append(g.bar); }
    g.root = document.createElement('div');
    g.root.className = 'rg';
    g.lbox = document.createElement('div');
    g.lbox.className = 'lb';
    g.lbox.hidden = true;
    g.shell.append(g.root, g.lbox);
    parentElement.appendChild(g.shell);
  }
  g.root.style.setProperty('--cols', String(data.cols || 6));
  adopt(g, data);
  draw(g);
  if (g.parked.length) flushParked(g);
  // Events the server has not acknowledged (a rerun lost, a reconnect): send them again.
  if (g.queue.length && Date.now() - g.sentAt > RESEND_MS) send(g);
  clearInterval(g.resendTimer);
  g.resendTimer = setInterval(() => {
    const since = Date.now() - g.sentAt;
    if (g.queue.length && ((since > RESEND_MS && !busy()) || since > RESEND_BUSY_MS)) send(g);
  }, 500);
  return () => {
    if (g.token !== token) return;        // a newer draw owns the instance
    g.mounted = false;
    g.unmountedAt = Date.now();
    clearInterval(g.resendTimer);
  };
}
