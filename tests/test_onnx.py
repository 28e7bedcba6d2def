"""ONNX Runtime backbones: export + check on the real Lite0 weights, the cache and its faults, the torch
fallback, agreement with torch on real photos, and `predict` without torch."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hashtag_workbench.core.backbones import WeightsError, backbone_spec, imagenet_classes, load_backbone
from hashtag_workbench.core.features import load_photo
from hashtag_workbench.infra import onnxrt
from hashtag_workbench.infra.files import sha256_file
from tests.conftest import DEMO_PHOTOS, ROOT

LITE0 = "efficientnet_lite0"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A real export of the shipped Lite0 weights into a private cache: (cache dir, ONNX bytes)."""
    cache = tmp_path_factory.mktemp("onnx-export")
    old = os.environ.get("HASHTAG_ONNX_CACHE")
    os.environ["HASHTAG_ONNX_CACHE"] = str(cache)
    try:
        bb = onnxrt.load_onnx(cache, LITE0, threads=1)
    finally:
        if old is None:
            os.environ.pop("HASHTAG_ONNX_CACHE", None)
        else:
            os.environ["HASHTAG_ONNX_CACHE"] = old
    assert bb.runtime == "onnx"
    return cache, bb.path.read_bytes()


@pytest.fixture
def cache(exported, tmp_path, monkeypatch) -> Path:
    """A private, writable copy of the exported cache, in use for this test."""
    c = tmp_path / "cache"
    shutil.copytree(exported[0], c)
    monkeypatch.setenv("HASHTAG_ONNX_CACHE", str(c))
    return c


@pytest.fixture
def no_real_export(exported, monkeypatch) -> list:
    """Exports return the real Lite0 graph without re-running torch.onnx.export; the list counts them."""
    calls = []

    def fake(module, input_shape, output_names):
        calls.append(input_shape)
        return exported[1]
    monkeypatch.setattr(onnxrt, "export_bytes", fake)
    return calls


def _sidecar(cache: Path) -> dict:
    [side] = cache.glob(f"{LITE0}-*.json")
    return json.loads(side.read_text())


def test_export_is_checked_and_described(exported):
    cache, data = exported
    meta = _sidecar(cache)
    sha = sha256_file(backbone_spec(LITE0).find_weights(None))
    assert meta["weights_sha256"] == sha and meta["onnx_file"] == f"{LITE0}-{sha[:16]}.onnx"
    assert meta["onnx_sha256"] == sha256_file(cache / meta["onnx_file"])
    assert meta["check"]["ok"] and max(meta["check"]["max_abs_diff"].values()) <= 1e-3
    assert meta["opset"] == onnxrt.OPSET and meta["input"]["shape"] == ["batch", 224, 224, 3]
    assert meta["input"]["dtype"] == "uint8"
    assert meta["preprocess"] == json.loads(json.dumps(backbone_spec(LITE0).preprocess.to_dict()))
    assert meta["onnxruntime"] == "1.32.0" and meta["torch"].startswith("2.")
    assert not list(cache.glob(".tmp-*"))


def test_onnx_agrees_with_torch_on_demo_photos(cache):
    """Top-5 ImageNet classes equal, features and logits within 1e-3, on a photo of every demo word."""
    photos = [sorted(word.glob("*.jpg"))[0] for word in sorted(DEMO_PHOTOS.iterdir())]
    onnx_bb = onnxrt.load_onnx(cache, LITE0, threads=1)
    torch_bb = load_backbone(LITE0)
    x = np.stack([onnx_bb.preprocess(load_photo(p)) for p in photos])
    (f1, l1), (f2, l2) = onnx_bb.features_and_logits(x), torch_bb.features_and_logits(x)
    assert np.abs(f1 - f2).max() <= 1e-3 and np.abs(l1 - l2).max() <= 1e-3
    names = imagenet_classes()
    for i, photo in enumerate(photos):
        top_onnx = [names[j] for j in np.argsort(-l1[i])[:5]]
        assert top_onnx == [names[j] for j in np.argsort(-l2[i])[:5]], photo.name
    assert len(photos) == len([d for d in DEMO_PHOTOS.iterdir() if d.is_dir()])   # one per word


def test_cache_is_reused_and_follows_the_weights(cache, no_real_export, tmp_path):
    import torch
    first = onnxrt.load_onnx(cache, LITE0, threads=1)
    assert first.runtime == "onnx" and no_real_export == []            # the cached file, no export
    state = torch.load(backbone_spec(LITE0).find_weights(None), weights_only=True)
    # Another weights file (a counter eval mode ignores, so the stand-in export still passes the check).
    state["_bn0.num_batches_tracked"] += 1
    changed = tmp_path / "lite0-changed.pth"
    torch.save(state, changed)
    second = onnxrt.load_onnx(cache, LITE0, changed, threads=1)
    assert len(no_real_export) == 1 and second.path != first.path
    assert second.path.name == f"{LITE0}-{sha256_file(changed)[:16]}.onnx"
    assert first.path.is_file()
    onnxrt.load_onnx(cache, LITE0, changed, threads=1)
    assert len(no_real_export) == 1


@pytest.mark.parametrize("damage", ["truncated", "foreign", "no sidecar"])
def test_damaged_cache_file_is_rebuilt_never_used(cache, no_real_export, monkeypatch, damage):
    meta = _sidecar(cache)
    onnx_file = cache / meta["onnx_file"]
    if damage == "truncated":
        onnx_file.write_bytes(onnx_file.read_bytes()[:100_000])
    elif damage == "foreign":
        onnx_file.write_bytes(b"not the export" * 1000)
    else:
        onnx_file.with_suffix(".json").unlink()
    opened = []
    real_session = onnxrt.make_session
    monkeypatch.setattr(onnxrt, "make_session",
                        lambda model, threads=None: opened.append(sha256_file(model) if isinstance(model, Path)
                                                                  else "bytes") or real_session(model, threads))
    bb = onnxrt.load_onnx(cache, LITE0, threads=1)
    assert bb.runtime == "onnx" and len(no_real_export) == 1
    good = sha256_file(onnx_file)
    assert good == meta["onnx_sha256"] == _sidecar(cache)["onnx_sha256"]
    assert set(opened) <= {good, "bytes"}                              # the damaged file was never opened


def test_export_failure_falls_back_to_torch_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HASHTAG_ONNX_CACHE", str(tmp_path / "cache"))

    def broken(*a, **k):
        raise RuntimeError("unsupported operator")
    monkeypatch.setattr(onnxrt, "export_bytes", broken)
    said = []
    bb = onnxrt.load_onnx(tmp_path, LITE0, threads=1, say=said.append)
    assert bb.runtime == "torch" and bb.feature_dim == 1280
    assert len(said) == 1 and "\n" not in said[0] and "unsupported operator" in said[0] and "torch" in said[0]
    assert not list((tmp_path / "cache").glob("*.onnx"))


def test_failed_check_is_remembered_and_never_used(tmp_path, monkeypatch, no_real_export):
    monkeypatch.setenv("HASHTAG_ONNX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(onnxrt, "TOLERANCE", 0.0)                      # no export can pass this check
    said = []
    assert onnxrt.load_onnx(tmp_path, LITE0, threads=1, say=said.append).runtime == "torch"
    assert "differs from torch" in said[0] and len(no_real_export) == 1
    assert not list((tmp_path / "cache").glob("*.onnx"))
    assert onnxrt.load_onnx(tmp_path, LITE0, threads=1, say=said.append).runtime == "torch"
    assert len(no_real_export) == 1 and "delete" in said[1]              # not exported again


def test_mismatched_weights_keep_the_clear_error(tmp_path, monkeypatch):
    import torch
    import torchvision
    monkeypatch.setenv("HASHTAG_ONNX_CACHE", str(tmp_path / "cache"))
    resnet = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), resnet)
    with pytest.raises(WeightsError, match="is not an EfficientNet-Lite0 state dict"):
        onnxrt.load_onnx(tmp_path, LITE0, resnet)
    with pytest.raises(WeightsError, match="not found"):
        onnxrt.load_onnx(tmp_path, LITE0, tmp_path / "missing.pth")


KILL_SCRIPT = """
import os, sys, time
from pathlib import Path
from hashtag_workbench.infra import onnxrt
def stall(fd):
    print("writing", flush=True)
    time.sleep(60)
os.fsync = stall
onnxrt.write_atomic(Path(sys.argv[1]), b"half of an ONNX file" * 1000)
"""


def test_kill_during_export_leaves_nothing_that_is_read(cache, no_real_export):
    meta = _sidecar(cache)
    target = cache / meta["onnx_file"]
    target.unlink()
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(target)], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not target.exists() and list(cache.glob(".tmp-*"))          # only the killed writer's temp file
    assert onnxrt.cached_export(cache, LITE0, meta["weights_sha256"])[0] is None
    bb = onnxrt.load_onnx(cache, LITE0, threads=1)
    assert bb.runtime == "onnx" and sha256_file(target) == meta["onnx_sha256"]
    assert not list(cache.glob(".tmp-*"))


def test_preprocessing_matches_torchvision_transforms_v2():
    import torch
    from skimage import data
    from torchvision.transforms import v2

    from hashtag_workbench.core.backbones import network_input
    spec = backbone_spec("resnet18").preprocess
    crop = v2.Compose([v2.Resize(256), v2.CenterCrop(224), v2.PILToTensor()])
    normalise = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(spec.mean, spec.std)])
    photos = sorted(DEMO_PHOTOS.glob("*/*.jpg"))[::40]
    for img in (Image.fromarray(data.chelsea()), Image.fromarray(data.astronaut()).resize((301, 517)),
                Image.new("RGB", (90, 40), (200, 10, 30)), *(Image.open(p).convert("RGB") for p in photos)):
        pixels, expected = spec(img).astype(np.int16), crop(img).permute(1, 2, 0).numpy().astype(np.int16)
        # One resampling pass over the crop's box: equal to v2 up to Pillow's integer rounding.
        assert pixels.shape == expected.shape and np.abs(pixels - expected).max() <= 1
        assert np.mean(pixels != expected) < 0.25
        np.testing.assert_allclose(network_input(spec, spec(img)[None])[0].numpy(),
                                   normalise(torch.from_numpy(spec(img)).permute(2, 0, 1)).numpy(), atol=1e-5)


PREDICT_SCRIPT = """
import json, sys
from hashtag_workbench.jobs.cli import main
rc = main(["--home", sys.argv[1], "predict", "--json", "--seed", "1", sys.argv[2]])
print(json.dumps({"rc": rc, "loaded": sorted(m for m in ("torch", "torchvision") if m in sys.modules)}))
"""


def test_predict_runs_without_torch(demo_home, cache):
    from hashtag_workbench.jobs.train import train
    from hashtag_workbench.warehouse.images import labelled_images
    from hashtag_workbench.warehouse.words import list_words
    # the default zero-shot model (fused) built beforehand, as `demo` or a first predict leaves it
    train(demo_home, models=("conse", "fused"), conse_variants=False, threads=1)
    photo = demo_home / labelled_images(demo_home)[0]["path"]
    env = {**os.environ, "HASHTAG_ONNX_CACHE": str(cache)}
    proc = subprocess.run([sys.executable, "-c", PREDICT_SCRIPT, str(demo_home), str(photo)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    *preds, status = proc.stdout.strip().splitlines()
    assert json.loads(status) == {"rc": 0, "loaded": []}, proc.stderr
    top = json.loads(preds[-1])["zero_shot"]["top"]
    vocabulary = {w["word"] for w in list_words(demo_home, active_only=True)}
    assert len(top) == 5 and {w for w, _ in top} <= vocabulary     # zero-shot answers over the whole vocabulary


def test_frozen_front_exported_checked_cached_and_equal_to_torch(cache, tmp_path):
    """The fine-tune's frozen front runs in ONNX Runtime from its own cached, checked export, and gives
    the torch front's activations on real photos (so the cache it feeds trains the same blocks)."""
    import torch

    from hashtag_workbench.core.finetune import split_backbone
    bb = load_backbone(LITE0)
    front, _, _ = split_backbone(bb, 3)
    stop = len(front.blocks)
    said = []
    run = onnxrt.load_front(cache, LITE0, None, stop, front, threads=1, say=said.append)
    assert run is not None and said == []
    sha = sha256_file(backbone_spec(LITE0).find_weights(None))
    meta = json.loads((cache / f"{LITE0}_front{stop}-{sha[:16]}.json").read_text())
    assert meta["check"]["ok"] and meta["onnx_sha256"] == sha256_file(cache / meta["onnx_file"])
    assert _sidecar(cache)["backbone"] == LITE0                        # the whole backbone's export is apart
    photos = [sorted(word.glob("*.jpg"))[0] for word in sorted(DEMO_PHOTOS.iterdir())][:6]
    x = np.stack([bb.preprocess(load_photo(p)) for p in photos])
    from hashtag_workbench.core.backbones import network_input
    with torch.inference_mode():
        expected = front(network_input(bb.preprocess, x)).numpy()
    got = run(x)
    assert got.shape == expected.shape == (6, 192, 7, 7) and np.abs(got - expected).max() <= 1e-3
    before = meta["created"]
    assert onnxrt.load_front(cache, LITE0, None, stop, front, threads=1) is not None     # from the cache
    assert json.loads((cache / meta["onnx_file"]).with_suffix(".json").read_text())["created"] == before
