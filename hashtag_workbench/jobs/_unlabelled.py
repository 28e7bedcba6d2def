"""What zero-shot self-training reads: every stored photo (never its label) and the default zero-shot scores of it."""
from __future__ import annotations

import hashlib
from pathlib import Path

from hashtag_workbench.core.predictor import load_model
from hashtag_workbench.jobs._modeldata import stored_batch
from hashtag_workbench.jobs.runner import JobError
from hashtag_workbench.warehouse import splits as wh_splits


def unlabelled_photos(home: Path, backbone: str, log, seed: dict | None = None) -> dict:
    """{'image_ids', 'features', 'probs' (over the seed's words), 'seed' (its model record), 'fingerprint'}.

    The seed is the given zero-shot model record, by default the default zero-shot model over the
    current vocabulary (built now if it is missing).
    Features and logits come from the features table when it holds every photo, else the CNN runs.
    """
    from hashtag_workbench.jobs.train import ensure_zero_shot  # train imports this module on demand
    rows = wh_splits.unlabelled_pool(home)
    if len(rows) < 2:
        raise JobError(f"zero-shot + unlabelled photos needs at least 2 stored photos, found {len(rows)}: "
                       "run `hashtags import-folder PATH` first")
    seed = seed or ensure_zero_shot(home)
    model = load_model(seed)
    batch, found = stored_batch(home, rows, tuple(sorted({backbone} | ({model.backbone} - {None}))))
    if backbone not in batch.known:
        log(f"computing {backbone} features for {len(rows)} photos ({found[backbone]} stored; "
            "`hashtags features` stores them for next time)")
    feats = batch.outputs(backbone, need_logits=False)[0]
    digest = hashlib.sha256("\n".join(r["sha256"] for r in rows).encode()).hexdigest()[:16]
    return {"image_ids": [r["image_id"] for r in rows], "features": feats, "probs": model.predict(batch),
            "seed": seed, "fingerprint": digest}
