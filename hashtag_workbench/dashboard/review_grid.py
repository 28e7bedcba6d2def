"""The Review page's thumbnail grid as one small custom component (Streamlit components v2).

A page of 60 images drawn as 60 native Streamlit cells with their own buttons costs
hundreds of widgets, which made a page change take several seconds in the browser.
Here the whole grid is one element: images inline (data URIs of the on-disk
thumbnails), captions set as text (never HTML), and a click on an image's
keep / reject / relabel / select button (or on the image: open) comes back to Python as one trigger value.
"""
from __future__ import annotations

import base64
from pathlib import Path

import streamlit as st

from hashtag_workbench.core.errors import InputError

CSS = """
.rg { display: grid; grid-template-columns: repeat(var(--cols, 6), minmax(0, 1fr)); gap: 10px; }
.cell { border: 1px solid rgba(49, 51, 63, 0.2); border-radius: 8px; padding: 6px; background: #fff;
        display: flex; flex-direction: column; gap: 4px; font: 13px/1.3 sans-serif; color: #31333f; }
.cell.flagged { border-color: #f0a202; }
.cell.selected { background: #eef4ff; border-color: #1c62e8; }
.cell.current { outline: 3px solid #ff4b4b; outline-offset: -1px; }
.cell img { width: 100%; aspect-ratio: 4 / 3; object-fit: contain; background: #f4f4f6; border-radius: 4px;
            cursor: zoom-in; }
.cap { min-height: 2.6em; word-break: break-word; }
.bar { display: flex; gap: 4px; }
.bar button { flex: 1; padding: 3px 0; border: 1px solid rgba(49, 51, 63, 0.25); border-radius: 6px;
              background: #fff; cursor: pointer; font-size: 14px; }
.bar button:hover { background: #f0f2f6; }
.bar button[data-act=reject]:hover { background: #ffe3e3; }
.bar button[data-act=keep]:hover { background: #e3f7e3; }
"""

JS = """
// Keys typed while a Review select box still has the focus (right after choosing a word) would go
// into that box, not to the page's shortcuts: send them to the shortcut's button instead.
const SHORTCUTS = {k: 'kb_keep', x: 'kb_reject', n: 'kb_next', b: 'kb_prev', u: 'kb_undo'};
const BOXES = '.st-key-review_word_box, .st-key-review_detector, .st-key-review_show, .st-key-review_per_page';
function installKeys() {
  if (window.__hashtagReviewKeys) return;
  window.__hashtagReviewKeys = true;
  document.addEventListener('keydown', (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const name = SHORTCUTS[(e.key || '').toLowerCase()];
    const el = e.composedPath ? e.composedPath()[0] : e.target;
    if (!name || !el || el.tagName !== 'INPUT' || !el.closest || !el.closest(BOXES)) return;
    if (el.getAttribute('aria-expanded') === 'true') return;   // the list is open: the key filters it
    const btn = document.querySelector('.st-key-' + name + ' button');
    if (!btn || btn.disabled) return;
    e.preventDefault();
    e.stopImmediatePropagation();
    el.blur();
    btn.click();
  }, true);
}

export default function (component) {
  const { data, setTriggerValue, parentElement } = component;
  if (data.keys) installKeys();
  let root = parentElement.querySelector('.rg');
  if (!root) {
    root = document.createElement('div');
    root.className = 'rg';
    parentElement.appendChild(root);
  }
  root.style.setProperty('--cols', String(data.cols || 6));
  root.textContent = '';
  for (const c of data.cells) {
    const cell = document.createElement('div');
    cell.className = 'cell' + (c.current ? ' current' : '') + (c.selected ? ' selected' : '') +
                     (c.flagged ? ' flagged' : '');
    cell.dataset.id = String(c.id);
    const img = document.createElement('img');
    if (c.src) img.src = c.src;
    img.alt = 'image ' + c.id;
    img.title = 'open large';
    img.onclick = () => setTriggerValue('action', { id: c.id, act: 'open', t: Date.now() });
    const cap = document.createElement('div');
    cap.className = 'cap';
    cap.textContent = c.caption;           // text only: never parsed as HTML
    const bar = document.createElement('div');
    bar.className = 'bar';
    const all = {keep: ['\\u2713', 'keep'], reject: ['\\u2717', 'reject'],
                 relabel: ['\\u21aa', 'relabel to ' + (data.relabel || '(choose a target word first)')],
                 select: [c.selected ? '\\u2611' : '\\u2610', c.selected ? 'unselect' : 'select'],
                 review: ['\\u2197', 'open in Review']};
    for (const act of (data.acts || ['keep', 'reject', 'relabel', 'select'])) {
      const [label, title] = all[act];
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = label;
      b.title = title;
      b.dataset.act = act;
      if (act === 'relabel' && !data.relabel) b.disabled = true;
      b.onclick = () => setTriggerValue('action', { id: c.id, act: act, t: Date.now() });
      bar.appendChild(b);
    }
    cell.append(img, cap, bar);
    root.appendChild(cell);
  }
}
"""

_grid = st.components.v2.component("hashtag_review_grid", html="", css=CSS, js=JS)


def data_uri(path: str | Path | None) -> str | None:
    if not path:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


ACTS = ("keep", "reject", "relabel", "select", "review")


def review_grid(cells: list[dict], *, relabel: str | None, cols: int = 6, key: str = "review_grid",
                acts: tuple[str, ...] = ACTS[:4], keys: bool = False) -> dict | None:
    """Draw the grid; returns the action clicked in this run ({id, act}) or None.

    cells: {id, src (data URI or None), caption (plain text), flagged, current, selected}.
    acts: the buttons under each image (a click on the image itself is act "open").
    keys: route the Review shortcuts typed in its select boxes to their buttons.
    """
    unknown = set(acts) - set(ACTS)
    if unknown:
        raise InputError(f"unknown grid actions: {sorted(unknown)}")
    res = _grid(data={"cells": cells, "relabel": relabel, "cols": cols, "acts": list(acts), "keys": keys}, key=key,
                on_action_change=lambda: None)
    act = None
    try:
        act = res.get("action") if hasattr(res, "get") else getattr(res, "action", None)
    except Exception:  # an empty result in bare mode
        act = None
    return act if isinstance(act, dict) and "id" in act and "act" in act else None
