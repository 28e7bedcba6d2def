"""Predict: upload photos or paste an image URL; top-5 words and hashtags from the supervised model and ConSE.

Each model is named with its measured top-1 (its latest evaluation); a model with a measured confidence
threshold says "none of these words fits well" instead of a confident-looking wrong word.

Zero-shot needs no data: with nothing trained, the default zero-shot model over the active
vocabulary answers (the stored one for this vocabulary, or one built in memory here).
"""
from __future__ import annotations

import inspect
from types import SimpleNamespace

import pandas as pd
import streamlit as st

from hashtag_workbench.core.images import MAX_PIXELS, ImageRejected, decode_rgb, sha256_bytes
from hashtag_workbench.dashboard.common import default_zero_shot, empty_state, home, md_escape
from hashtag_workbench.infra.http import FetchError, allow_private_default, fetch_image_bytes
from hashtag_workbench.warehouse import dashboard_queries as q
from hashtag_workbench.warehouse import models as wh_models
from hashtag_workbench.warehouse import words as wh_words

UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"]
MAX_UPLOADS = 12
N_TAGS = (10, 15)            # the hashtags shown per model: at least 10, 15 by default
SCOPE_ORDER = ("val", "open", "all")  # which evaluation speaks for a model: held-out images first

st.title("Predict")
HOME = home()
H = str(HOME)
ss = st.session_state


@st.cache_data(ttl=30, show_spinner=False)
def _models(h: str) -> tuple[list[dict], dict]:
    best = wh_models.best_models(h)
    return wh_models.models(h), {k: (v["model_id"] if v else None) for k, v in best.items()}


@st.cache_data(ttl=30, show_spinner=False)
def _top1(h: str) -> dict[int, str]:
    """model_id -> its measured top-1, from its latest evaluation (held-out images first), as shown text."""
    best: dict[int, dict] = {}
    for r in q.model_comparison(h):
        old = best.get(r["model_id"])
        rank = SCOPE_ORDER.index(r["scope"]) if r["scope"] in SCOPE_ORDER else len(SCOPE_ORDER)
        if old is None or rank < old["rank"]:
            best[r["model_id"]] = {**r, "rank": rank}
    return {m: f"top-1 {r['top1']:.0%} on {r['n_images']} {r['scope']} images" for m, r in best.items()}


def _supports_study_sampling() -> bool:
    """Whether the predictor ranks hashtags by default and samples the study's way only when asked."""
    from hashtag_workbench.core.predictor import predict_image
    return "sample_study" in inspect.signature(predict_image).parameters


@st.cache_data(ttl=30, show_spinner=False)
def _hashtags(h: str) -> dict[str, list[str]]:
    return wh_words.hashtags_for(h)


DEFAULT_ZS = "default"


@st.cache_data(ttl=10, show_spinner=False)
def _vocabulary(h: str) -> tuple[list[str], str, int | None]:
    """Active words, their fingerprint, and the stored default zero-shot model built over exactly them."""
    from hashtag_workbench.core.kinds import KINDS, vocabulary_fingerprint
    words = [w["word"] for w in wh_words.list_words(h, active_only=True)]
    fp = vocabulary_fingerprint(words, wh_words.hashtags_for(h))
    _, cfg = default_zero_shot()
    stored = [m["model_id"] for m in wh_models.models(h, kinds=list(wh_models.ZERO_SHOT_KINDS))
              if KINDS[m["kind"]].matches(m, cfg, None, fp)]
    return words, fp, (stored[-1] if stored else None)


@st.cache_resource(show_spinner="Building the zero-shot model over the vocabulary ...", max_entries=4)
def _default_zero_shot(h: str, fingerprint: str):
    """The default zero-shot model built in memory (not stored; `hashtags predict` stores one)."""
    from hashtag_workbench.core.kinds import KINDS
    from hashtag_workbench.core.predictor import LoadedModel
    words = _vocabulary(h)[0]
    data = SimpleNamespace(vocabulary=words, hashtags=_hashtags(h), log=lambda m: None,
                           progress=lambda it, desc=None: it)
    kind, cfg = default_zero_shot()
    model = KINDS[kind].fit(cfg, data)
    return LoadedModel(None, kind, f"{model.name}, built now", model.classes, model, cfg.backbone)


@st.cache_resource(show_spinner="Loading the model ...", max_entries=6)
def _loaded(h: str, model_id: int, created_at: str):
    from hashtag_workbench.core.predictor import load_model
    from hashtag_workbench.infra.onnxrt import use_runtime
    use_runtime(h)  # the CLI's default runtime: ONNX Runtime, torch as fallback
    record = wh_models.get_model(h, model_id)
    if record is None:
        raise LookupError(f"model {model_id} is no longer in the warehouse")
    return load_model(record)


@st.cache_data(show_spinner="Predicting ...", max_entries=200)
def _predict(h: str, sha: str, _data: bytes, sup: int | None, zs: int | None, seed: int, n_tags: int,
             study: bool) -> dict:
    """Keyed by the photo's SHA-256 (its bytes, up to 200 MB, are never hashed again)."""
    from hashtag_workbench.core.predictor import predict_image
    by_id = {m["model_id"]: m for m in _models(h)[0]}
    sup_m = _loaded(h, sup, str(by_id[sup]["created_at"])) if sup in by_id else None
    zs_m = _loaded(h, zs, str(by_id[zs]["created_at"])) if zs in by_id else None
    if zs == DEFAULT_ZS:
        zs_m = _default_zero_shot(h, _vocabulary(h)[1])
    img = decode_rgb(_data)
    extra = {"sample_study": study} if _supports_study_sampling() else {}
    return predict_image(img, supervised=sup_m, zero_shot=zs_m, hashtags=_hashtags(h), seed=seed, n_tags=n_tags,
                         **extra)


def _answer(out: dict | None, n_tags: int) -> None:
    """One model's answer: its top words, a plain "none fits" when it is not confident, its hashtags."""
    if not out:
        st.write("No model chosen.")
        return
    top = pd.DataFrame(out["top"], columns=["word", "probability"])
    confident, thr = out.get("confident"), out.get("threshold")
    if confident is False:
        st.warning(f"**None of these words fits well**: the best, {md_escape(out['top'][0][0])} at "
                   f"{out['top'][0][1]:.0%}, is under this model's measured threshold"
                   + (f" of {thr:.0%}" if thr is not None else "") + ".")
    st.dataframe(top, hide_index=True, width="stretch",
                 column_config={"probability": st.column_config.ProgressColumn(format="percent",
                                                                               min_value=0, max_value=1)})
    if confident is True and thr is not None:
        st.caption(f"Above this model's measured confidence threshold ({thr:.0%}).")
    tags = out.get("hashtags") or []
    if not tags:
        st.caption("No hashtags: no word fits well enough.")
        return
    st.caption(f"{len(tags)} hashtags (copy with the button on the right)")
    st.code(" ".join(f"#{t}" for t in tags[:n_tags]), language=None, wrap_lines=True)


all_models, best = _models(H)
vocab_words, _, stored_default = _vocabulary(H)
if not vocab_words:
    empty_state("No active words yet: the shipped vocabulary loads with the first job.",
                "hashtags words list      # loads the 76-word vocabulary")
    st.stop()
if not any(m["kind"] in wh_models.SUPERVISED_KINDS for m in all_models):
    st.info("No supervised model yet (it needs labelled photos: `hashtags demo`, or `import-folder` then "
            "`train`). Zero-shot needs no data: it answers over every active word.")

sup_opts = [None] + [m["model_id"] for m in all_models if m["kind"] in wh_models.SUPERVISED_KINDS]
# the default zero-shot model over the current vocabulary first: stored when predict has built it, else built here
zs_default = stored_default if stored_default is not None else DEFAULT_ZS
zs_opts = [zs_default] + [m["model_id"] for m in all_models
                          if m["kind"] in wh_models.ZERO_SHOT_KINDS and m["model_id"] != stored_default]
by_id = {m["model_id"]: m for m in all_models}
top1 = _top1(H)
names = {m["model_id"]: f"{m['name']} · {top1.get(m['model_id'], 'not evaluated yet')} "
                        f"(model {m['model_id']}, {len(m['classes'])} words)" for m in all_models}
names[None] = "(none)"
names[zs_default] = f"Default zero-shot over the {len(vocab_words)} active words" + (
    f" (model {stored_default}) · {top1.get(stored_default, 'not evaluated yet')}" if stored_default is not None
    else " (built now, not evaluated)")
c1, c2 = st.columns(2)
sup_id = c1.selectbox("Supervised model", sup_opts, format_func=names.get, key="pred_sup",
                      index=sup_opts.index(best.get("supervised")) if best.get("supervised") in sup_opts else 0)
zs_id = c2.selectbox("Zero-shot model", zs_opts, format_func=names.get, key="pred_zs", index=0)
for col, mid in ((c1, sup_id), (c2, zs_id)):
    words = by_id[mid]["classes"] if mid in by_id else (vocab_words if mid == DEFAULT_ZS else [])
    if words:
        col.caption(f"Can answer {len(words)} words: " + ", ".join(words[:30]) + (" ..." if len(words) > 30 else ""))
if sup_id is None and zs_id is None:
    st.warning("Choose at least one model.")
    st.stop()

tab_up, tab_url = st.tabs(["Upload photos", "Image URL"])
photos: list[tuple[str, bytes]] = []
with tab_up:
    files = st.file_uploader("Photos", type=UPLOAD_TYPES, accept_multiple_files=True, key="pred_files",
                             help=f"up to {MAX_UPLOADS} at a time, each up to {MAX_PIXELS / 1e6:.0f} megapixels "
                                  "(large photos are read at reduced size); nothing is stored")
    for f in (files or [])[:MAX_UPLOADS]:
        photos.append((f.name, f.getvalue()))  # the name is only shown, never used as a path
    if files and len(files) > MAX_UPLOADS:
        st.warning(f"Only the first {MAX_UPLOADS} photos are used.")
with tab_url:
    with st.form("pred_url_form"):
        url = st.text_input("Image URL (http or https)", key="pred_url")
        go = st.form_submit_button("Fetch and predict")
    if not allow_private_default():
        st.caption("Addresses on this machine or a private network are refused "
                   "(set HASHTAG_ALLOW_PRIVATE_URLS=1 to allow them).")
    if go and url:
        try:
            ss["pred_url_data"] = (url, fetch_image_bytes(url))
        except FetchError as exc:
            ss.pop("pred_url_data", None)
            st.error(f"Cannot use that URL: {md_escape(str(exc).splitlines()[0][:300])}")
    if ss.get("pred_url_data"):
        photos.append(ss["pred_url_data"])

if not photos:
    st.info("Upload one or more photos, or paste an image URL, to see the words and hashtags.")
    st.stop()

o1, o2, o3 = st.columns([2, 3, 2])
n_tags = o1.slider("Hashtags per model", N_TAGS[0], N_TAGS[1], N_TAGS[1], key="pred_ntags")
ranked = _supports_study_sampling()
study = o2.toggle("Sample like the study (top-2 words supervised, top-5 zero-shot, by probability)",
                  value=not ranked, disabled=not ranked, key="pred_study",
                  help="off: the hashtags of the confident words, best first" if ranked else
                       "this build's predictor always samples the study's way")
seed = ss.setdefault("pred_seed", 0)
if o3.button("Sample other hashtags", key="pred_resample", disabled=not study):
    ss["pred_seed"] = seed = seed + 1

for name, data in photos:
    st.divider()
    try:
        img = decode_rgb(data)
    except ImageRejected as exc:
        st.error(f"{md_escape(name)}: not usable ({md_escape(str(exc))}).")
        continue
    try:
        res = _predict(H, sha256_bytes(data), data, sup_id, zs_id, seed, n_tags, study)
    except Exception as exc:  # a missing artifact or broken model: say which, keep the page alive
        st.error(f"Prediction failed for {md_escape(name)}: {type(exc).__name__}: {md_escape(str(exc))[:300]}")
        continue
    left, mid, right = st.columns([1, 2, 2])
    with left:
        img.thumbnail((1024, 1024))                    # what the browser needs, not the photo's megapixels
        st.image(img, width="stretch")
        w, h = img.info.get("source_size", img.size)
        st.caption(f"{md_escape(name[:80])} · {w}x{h}")
    for col, role, title in ((mid, "supervised", names.get(sup_id)), (right, "zero_shot", names.get(zs_id))):
        with col:
            st.markdown(f"**{'Supervised' if role == 'supervised' else 'Zero-shot'}** · {md_escape(title)}")
            _answer(res.get(role), n_tags)
