// The lightbox: one image large in a modal over the grid. ←/→ (and N/B) move through the grid's
// images, K keep / X reject / R relabel act on the image shown (through the same event queue as the
// grid, see image_grid.js), Esc or a click on the backdrop closes it. It shows the thumbnail at once
// and swaps in the large picture when the server sends it (it asks by setting the state "open").

const LIGHTBOX_KEYS = ['arrowright', 'arrowleft', 'n', 'b', 'k', 'x', 'r', 'escape', 'u'];

function openLightbox(g, id) {
  g.lb = id;
  drawLightbox(g, pending(g));
  if (!(g.data.large && g.data.large.id === id)) g.api.setStateValue('open', id);
}

function closeLightbox(g) {
  g.lb = null;
  drawLightbox(g, pending(g));
}

function lightboxMove(g, delta) {
  const all = ids(g);
  const i = all.indexOf(g.lb) + delta;
  if (i < 0 || i >= all.length) return;
  g.cursor = all[i];
  g.cursorIdx = i;
  openLightbox(g, all[i]);
  draw(g);
}

function lightboxKey(g, k) {
  if (k === 'escape') closeLightbox(g);
  else if (k === 'arrowright' || k === 'n') lightboxMove(g, 1);
  else if (k === 'arrowleft' || k === 'b') lightboxMove(g, -1);
  else if (k === 'k') enqueue(g, 'keep', [g.lb], null);
  else if (k === 'x') enqueue(g, 'reject', [g.lb], null);
  else if (k === 'r') enqueue(g, 'relabel', [g.lb], g.data.relabel);
  else if (k === 'u' && g.data.keys) enqueue(g, 'undo', [], null);
}

function drawLightbox(g, waiting) {
  const box = g.lbox;
  if (!box) return;
  box.textContent = '';
  const c = g.lb === null ? null : g.data.cells.find((x) => x.id === g.lb);
  box.hidden = !c;
  if (!c) return;
  box.onclick = (e) => { if (e.target === box) closeLightbox(g); };
  const fig = document.createElement('div');
  fig.className = 'lbfig';
  fig.setAttribute('role', 'dialog');
  fig.setAttribute('aria-label', 'image ' + c.id);
  fig.dataset.id = String(c.id);
  const img = document.createElement('img');
  const large = g.data.large && g.data.large.id === c.id ? g.data.large.src : null;
  img.src = large || c.src || '';
  img.className = large ? 'large' : 'large loading';
  img.alt = 'image ' + c.id + ' large';
  const side = document.createElement('div');
  side.className = 'lbside';
  const all = ids(g);
  const head = document.createElement('div');
  head.className = 'lbhead';
  const review = waiting.get(c.id) || c.review;
  head.textContent = '#' + c.id + ' · ' + (c.word || '') + ' · ' + review + (waiting.has(c.id) ? ' (sending…)' : '') +
                     '   ' + (all.indexOf(c.id) + 1) + ' / ' + all.length;
  side.append(head);
  for (const line of (c.info || [])) {
    const p = document.createElement('div');
    p.className = 'lbline';
    p.textContent = line;                 // text only
    side.append(p);
  }
  const acts = document.createElement('div');
  acts.className = 'lbacts';
  acts.append(button('\u2190 Back (B)', 'previous image', () => lightboxMove(g, -1), {lb: 'prev'}),
              button('Next (N) \u2192', 'next image', () => lightboxMove(g, 1), {lb: 'next'}),
              button('Keep (K)', 'keep this image', () => lightboxKey(g, 'k'), {lb: 'keep'}),
              button('Reject (X)', 'reject this image', () => lightboxKey(g, 'x'), {lb: 'reject'}));
  const rl = button(g.data.relabel ? 'Relabel to ' + g.data.relabel + ' (R)' : 'Relabel (choose a target)',
                    'relabel this image', () => lightboxKey(g, 'r'), {lb: 'relabel'});
  rl.disabled = !g.data.relabel;
  acts.append(rl);
  if ((g.data.acts || []).includes('review')) {
    acts.append(button('Open in Review', 'open this image on the Review page', () =>
      g.api.setTriggerValue('action', {id: c.id, act: 'review', t: Date.now()}), {lb: 'review'}));
  }
  acts.append(button('Close (Esc)', 'close', () => closeLightbox(g), {lb: 'close'}));
  side.append(acts);
  const msg = g.localNote || g.data.message;
  if (msg && msg.text) {
    const m = document.createElement('div');
    m.className = 'msg' + (msg.bad ? ' bad' : '');
    m.textContent = msg.text;
    side.append(m);
  }
  fig.append(img, side);
  box.append(fig);
}
