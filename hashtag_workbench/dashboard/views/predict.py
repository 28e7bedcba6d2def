"""Predict: upload photos or paste an image URL; top-5 words and hashtags from the supervised model and ConSE.

Zero-shot needs no data: with nothing trained, the default zero-shot model over the active
vocabulary answers (the stored one for this vocabulary, or one built in memory here).
"""
from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import streamlit as st

from hashtag_workbench.core.images import ImageRejected, decode_rgb, sha256_bytes
from hashtag_workbench.dashboard.common import empty_state, home, md_escape
from hashtag_workbench.infra.http import FetchError, allow_private_default, fetch_image_bytes
from hashtag_workbench.warehouse import models as wh_models
from hashtag_workbench.warehouse import words as wh_words

UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"]
MAX_UPLOADS = 12

st.title("Predict")
HOME = home()
H = str(HOME)
ss = st.session_state


@st.cache_data(ttl=30, show_spinner=False)
def _models(h: str) -> tuple[list[dict], dict]:
    best = wh_models.best_models(h)
    return wh_models.models(h), {k: (v["model_id"] if v else None) for k, v in best.items()}


@st.cache_data(ttl=30, show_spinner=False)
def _hashtags(h: str) -> dict[str, list[str]]:
    return wh_words.hashtags_for(h)


DEFAULT_ZS = "default"


@st.cache_data(ttl=10, show_spinner=False)
def _vocabulary(h: str) -> tuple[list[str], str, int | None]:
    """Active words, their fingerprint, and the stored default zero-shot model built over exactly them."""
    from hashtag_workbench.core.conse import default_config
    from hashtag_workbench.core.kinds import KINDS, vocabulary_fingerprint
    words = [w["word"] for w in wh_words.list_words(h, active_only=True)]
    fp = vocabulary_fingerprint(words, wh_words.hashtags_for(h))
    cfg = default_config()
    stored = [m["model_id"] for m in wh_models.models(h, kinds=list(wh_models.ZERO_SHOT_KINDS))
              if KINDS[m["kind"]].matches(m, cfg, None, fp)]
    return words, fp, (stored[-1] if stored else None)


@st.cache_resource(show_spinner="Building the zero-shot model over the vocabulary ...", max_entries=4)
def _default_zero_shot(h: str, fingerprint: str):
    """The default zero-shot model built in memory (not stored; `hashtags predict` stores one)."""
    from hashtag_workbench.core.conse import default_config
    from hashtag_workbench.core.kinds import KINDS
    from hashtag_workbench.core.predictor import LoadedModel
    words = _vocabulary(h)[0]
    data = SimpleNamespace(vocabulary=words, hashtags=_hashtags(h), log=lambda m: None,
                           progress=lambda it, desc=None: it)
    cfg = default_config()
    model, name, _ = KINDS["conse"].fit(cfg, data)
    return LoadedModel(None, "conse", f"{name}, built now", model.classes, model, cfg.backbone)


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
def _predict(h: str, sha: str, data: bytes, sup: int | None, zs: int | None, seed: int) -> dict:
    from hashtag_workbench.core.predictor import predict_image
    by_id = {m["model_id"]: m for m in _models(h)[0]}
    sup_m = _loaded(h, sup, str(by_id[sup]["created_at"])) if sup in by_id else None
    zs_m = _loaded(h, zs, str(by_id[zs]["created_at"])) if zs in by_id else None
    if zs == DEFAULT_ZS:
        zs_m = _default_zero_shot(h, _vocabulary(h)[1])
    img = decode_rgb(data)
    return predict_image(img, supervised=sup_m, zero_shot=zs_m, hashtags=_hashtags(h), seed=seed)


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
names = {m["model_id"]: f"{m['name']} (model {m['model_id']}, {len(m['classes'])} words)" for m in all_models}
names[None] = "(none)"
names[zs_default] = f"Default zero-shot over the {len(vocab_words)} active words" + (
    f" (model {stored_default})" if stored_default is not None else "")
c1, c2 = st.columns(2)
sup_id = c1.selectbox("Supervised model", sup_opts, format_func=names.get, key="pred_sup",
                      index=sup_opts.index(best.get("supervised")) if best.get("supervised") in sup_opts else 0)
zs_id = c2.selectbox("Zero-shot model (ConSE)", zs_opts, format_func=names.get, key="pred_zs", index=0)
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
                             help=f"up to {MAX_UPLOADS} at a time; nothing is stored")
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
            st.error(f"Cannot use that URL: {exc}")
    if ss.get("pred_url_data"):
        photos.append(ss["pred_url_data"])

if not photos:
    st.info("Upload one or more photos, or paste an image URL, to see the words and hashtags.")
    st.stop()

seed = ss.setdefault("pred_seed", 0)
if st.button("Sample other hashtags", key="pred_resample"):
    ss["pred_seed"] = seed = seed + 1

for name, data in photos:
    st.divider()
    try:
        img = decode_rgb(data)
    except ImageRejected as exc:
        st.error(f"{md_escape(name)}: not usable ({exc}).")
        continue
    try:
        res = _predict(H, sha256_bytes(data), data, sup_id, zs_id, seed)
    except Exception as exc:  # a missing artifact or broken model: say which, keep the page alive
        st.error(f"Prediction failed for {md_escape(name)}: {type(exc).__name__}: {exc}")
        continue
    left, mid, right = st.columns([1, 2, 2])
    with left:
        st.image(img, width="stretch")
        st.text(name[:80])
    for col, role, title in ((mid, "supervised", names.get(sup_id)), (right, "zero_shot", names.get(zs_id))):
        with col:
            st.markdown(f"**{'Supervised' if role == 'supervised' else 'ConSE (zero-shot)'}** · {md_escape(title)}")
            out = res.get(role)
            if not out:
                st.write("No model chosen.")
                continue
            top = pd.DataFrame(out["top"], columns=["word", "probability"])
            st.dataframe(top, hide_index=True, width="stretch",
                         column_config={"probability": st.column_config.ProgressColumn(format="percent",
                                                                                       min_value=0, max_value=1)})
            st.caption("Hashtags (copy with the button on the right)")
            st.code(" ".join(f"#{t}" for t in out["hashtags"]), language=None)
