"""Words & hashtags: add, rename, (de)activate words; edit each word's hashtag list. Every change is logged.

Done actions confirm with a toast (the layout never moves); a refused one says why where it was typed,
and the add form stays open with what was typed.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from hashtag_workbench.core.vocabulary import check_word, parse_hashtags
from hashtag_workbench.dashboard.common import clear_caches, empty_state, home, n_images, toast_ok, word_status
from hashtag_workbench.warehouse import dashboard_queries as q
from hashtag_workbench.warehouse import words as wh_words
from hashtag_workbench.warehouse.db import WarehouseLocked

st.title("Words & hashtags")
HOME = home()


@st.cache_data(ttl=10, show_spinner=False)
def _table(h: str) -> pd.DataFrame:
    return pd.DataFrame(q.hashtag_table(h))


@st.cache_data(ttl=10, show_spinner=False)
def _edits(h: str) -> pd.DataFrame:
    return pd.DataFrame(q.word_edits(h, limit=100))


@st.cache_data(ttl=10, show_spinner=False)
def _tags(h: str, source: str) -> dict[str, list[str]]:
    return wh_words.hashtags_for(h, source=source)


def _do(action, success: str, where: str = "top") -> bool:
    """Run a write; a refusal is kept for the next run to show next to the form it came from (`where`)."""
    try:
        action()
    except ValueError as exc:
        st.session_state["words_msg"] = ("error", str(exc), where)
    except WarehouseLocked as exc:
        st.session_state["words_msg"] = ("error", f"The warehouse is busy: {exc}", where)
    else:
        st.session_state["words_msg"] = ("ok", success, where)
        clear_caches()
        return True
    return False


def _with_checked_name(name: str, action, success, where: str = "top") -> None:
    """Check a typed word name first (one line on the page if it is not usable), then act on it and rerun."""
    try:
        word = check_word(name)
    except ValueError as exc:
        st.session_state["words_msg"] = ("error", str(exc), where)
        st.rerun()
    ok = _do(lambda: action(word), success(word), where)
    if ok and where == "add":
        st.session_state["add_clear"] = True     # the next run empties the form (widgets cannot be reset now)
    st.rerun()


def _message(where: str) -> None:
    msg = st.session_state.get("words_msg")
    if not msg or msg[2] != where:
        return
    st.session_state.pop("words_msg")
    if msg[0] == "ok":
        toast_ok(msg[1])
    else:
        st.error(msg[1])


_message("top")
if st.session_state.pop("add_clear", False):
    st.session_state["add_name"] = st.session_state["add_tags"] = ""
table = _table(str(HOME))

add_failed = (st.session_state.get("words_msg") or ("", "", ""))[::2] == ("error", "add")
with st.expander("Add a word", expanded=table.empty or add_failed):
    _message("add")
    with st.form("add_word"):
        new = st.text_input("Word", placeholder="e.g. sunset", key="add_name")
        tags = st.text_input("Hashtags (optional, space or comma separated)", placeholder="#sunset #sky",
                             key="add_tags")
        if st.form_submit_button("Add word", key="add_submit"):
            # the same checks as `hashtags words add`: an existing word is refused, nothing changes
            _with_checked_name(new, lambda w: wh_words.add_word(HOME, w, source="user",
                                                                  hashtags=parse_hashtags(tags) or None),
                               lambda w: f"Added the word {w!r}; zero-shot predictions can answer it now.", "add")

if table.empty:
    empty_state("No words yet: the shipped vocabulary loads with the first job.",
                "hashtags stats      # loads the vocabulary; or add a word above")
    st.stop()

counts = {r["word"]: r for r in word_status(str(HOME))}
table.insert(2, "images", [counts.get(w, {}).get("kept", 0) for w in table["word"]])
table.insert(3, "rejected", [counts.get(w, {}).get("rejected", 0) for w in table["word"]])
all_words = list(table["word"])
left, right = st.columns(2)
with left:
    st.subheader("Rename or deactivate")
    word = st.selectbox("Word", all_words, key="edit_word",
                        format_func=lambda w: f"{w} · {n_images(counts.get(w, {}).get('kept', 0))}")
    row = table[table["word"] == word].iloc[0]
    with st.form("rename"):
        new_name = st.text_input("New name", value="", key="rename_to")
        if st.form_submit_button("Rename", key="rename_submit"):
            _with_checked_name(new_name, lambda target: wh_words.rename_word(HOME, word, target),
                               lambda target: f"Renamed {word!r} to {target!r}.")
    active = bool(row["active"])
    st.write(f"Status: **{'active' if active else 'inactive'}** (inactive words are skipped by scraping and training)")
    if st.button("Deactivate" if active else "Activate", key="toggle_active"):
        _do(lambda: wh_words.set_active(HOME, word, not active),
            f"{'Deactivated' if active else 'Activated'} {word!r}.")
        st.rerun()

with right:
    st.subheader("Hashtags")
    hand = _tags(str(HOME), "hand").get(word, [])
    scraped = _tags(str(HOME), "scraped").get(word, [])
    c1, c2 = st.columns(2)
    with c1:
        st.caption("Hand-made (used first)")
        with st.form("hashtags"):
            text = st.text_area("Hand-made hashtags", value=" ".join(f"#{t}" for t in hand), height=150,
                                label_visibility="collapsed", key=f"tags_{word}")
            if st.form_submit_button("Save hashtags", key="tags_submit"):
                new_tags = parse_hashtags(text)
                _do(lambda: wh_words.set_hashtags(HOME, word, new_tags, source="hand"),
                    f"Saved {len(new_tags)} hashtags for {word!r}.")
                st.rerun()
    with c2:
        st.caption("Scraped (all-hashtag.com)")
        if scraped:
            st.code(" ".join(f"#{t}" for t in scraped), language=None, wrap_lines=True)
            if st.button("Use scraped tags as the hand-made list", key="adopt"):
                _do(lambda: wh_words.set_hashtags(HOME, word, scraped, source="hand"),
                    f"Copied {len(scraped)} scraped tags into {word!r}'s list.")
                st.rerun()
        else:
            st.write("None scraped yet: `hashtags scrape-hashtags`.")

st.subheader("All words")
st.caption("images: labelled with the word now and not rejected (kept or still unreviewed).")
st.dataframe(table.rename(columns={"hand": "hand-made tags", "scraped": "scraped tags"}), hide_index=True,
             width="stretch")

st.subheader("Change history")
edits = _edits(str(HOME))
if edits.empty:
    st.write("No changes yet.")
else:
    st.dataframe(edits, hide_index=True, width="stretch")
