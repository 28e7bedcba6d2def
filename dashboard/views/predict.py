"""Predict: upload photos or paste an image URL; top-5 words and hashtags from the supervised model and ConSE."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.images import ImageRejected, decode_rgb, sha256_bytes
from dashboard.common import empty_state, home, md_escape
from dashboard.fetch import FetchError, allow_private_default, fetch_image_bytes
from warehouse import models as wh_models
from warehouse import words as wh_words

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


@st.cache_resource(show_spinner="Loading the model ...", max_entries=6)
def _loaded(h: str, model_id: int, created_at: str):
    from core.predictor import load_model
    record = wh_models.get_model(h, model_id)
    if record is None:
        raise LookupError(f"model {model_id} is no longer in the warehouse")
    return load_model(record)


@st.cache_data(show_spinner="Predicting ...", max_entries=200)
def _predict(h: str, sha: str, data: bytes, sup: int | None, zs: int | None, seed: int) -> dict:
    from core.predictor import predict_image
    by_id = {m["model_id"]: m for m in _models(h)[0]}
    sup_m = _loaded(h, sup, str(by_id[sup]["created_at"])) if sup in by_id else None
    zs_m = _loaded(h, zs, str(by_id[zs]["created_at"])) if zs in by_id else None
    img = decode_rgb(data)
    return predict_image(img, supervised=sup_m, zero_shot=zs_m, hashtags=_hashtags(h), seed=seed)


all_models, best = _models(H)
if not all_models:
    empty_state("No trained models yet.", "python -m jobs train      # then: python -m jobs evaluate\n"
                                          "# or the whole pipeline: python -m jobs demo")
    st.stop()

sup_opts = [None] + [m["model_id"] for m in all_models if m["kind"] in wh_models.SUPERVISED_KINDS]
zs_opts = [None] + [m["model_id"] for m in all_models if m["kind"] in wh_models.ZERO_SHOT_KINDS]
names = {m["model_id"]: f"{m['name']} (model {m['model_id']})" for m in all_models}
names[None] = "(none)"
c1, c2 = st.columns(2)
sup_id = c1.selectbox("Supervised model", sup_opts, format_func=names.get, key="pred_sup",
                      index=sup_opts.index(best.get("supervised")) if best.get("supervised") in sup_opts else 0)
zs_id = c2.selectbox("Zero-shot model (ConSE or CLIP)", zs_opts, format_func=names.get, key="pred_zs",
                     index=zs_opts.index(best.get("zero_shot")) if best.get("zero_shot") in zs_opts else 0)
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
