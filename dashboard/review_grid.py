"""The Review page's thumbnail grid as one small custom component (Streamlit components v2).

A page of 60 images drawn as 60 native Streamlit cells with their own buttons costs
hundreds of widgets, which made a page change take several seconds in the browser.
Here the whole grid is one element: images inline (data URIs of the on-disk
thumbnails), captions set as text (never HTML), and a click on an image's
keep / reject / relabel / select button comes back to Python as one trigger value.
"""
from __future__ import annotations

import base64
from pathlib import Path

import streamlit as st

CSS = """
.rg { display: grid; grid-template-columns: repeat(var(--cols, 6), minmax(0, 1fr)); gap: 10px; }
.cell { border: 1px solid rgba(49, 51, 63, 0.2); border-radius: 8px; padding: 6px; background: #fff;
        display: flex; flex-direction: column; gap: 4px; font: 13px/1.3 sans-serif; color: #31333f; }
.cell.flagged { border-color: #f0a202; }
.cell.selected { background: #eef4ff; border-color: #1c62e8; }
.cell.current { outline: 3px solid #ff4b4b; outline-offset: -1px; }
.cell img { width: 100%; aspect-ratio: 4 / 3; object-fit: contain; background: #f4f4f6; border-radius: 4px; }
.cap { min-height: 2.6em; word-break: break-word; }
.bar { display: flex; gap: 4px; }
.bar button { flex: 1; padding: 3px 0; border: 1px solid rgba(49, 51, 63, 0.25); border-radius: 6px;
              background: #fff; cursor: pointer; font-size: 14px; }
.bar button:hover { background: #f0f2f6; }
.bar button[data-act=reject]:hover { background: #ffe3e3; }
.bar button[data-act=keep]:hover { background: #e3f7e3; }
"""

JS = """
export default function (component) {
  const { data, setTriggerValue, parentElement } = component;
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
    const cap = document.createElement('div');
    cap.className = 'cap';
    cap.textContent = c.caption;           // text only: never parsed as HTML
    const bar = document.createElement('div');
    bar.className = 'bar';
    const acts = [['keep', '\\u2713', 'keep'], ['reject', '\\u2717', 'reject'],
                  ['relabel', '\\u21aa', 'relabel to ' + (data.relabel || '(choose a target word)')],
                  ['select', c.selected ? '\\u2611' : '\\u2610', c.selected ? 'unselect' : 'select']];
    for (const [act, label, title] of acts) {
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


def review_grid(cells: list[dict], *, relabel: str | None, cols: int = 6, key: str = "review_grid") -> dict | None:
    """Draw the grid; returns the action clicked in this run ({id, act}) or None.

    cells: {id, src (data URI or None), caption (plain text), flagged, current, selected}.
    """
    res = _grid(data={"cells": cells, "relabel": relabel, "cols": cols}, key=key,
                on_action_change=lambda: None)
    act = None
    try:
        act = res.get("action") if hasattr(res, "get") else getattr(res, "action", None)
    except Exception:  # an empty result in bare mode
        act = None
    return act if isinstance(act, dict) and "id" in act and "act" in act else None
