"""Backbones: the real EfficientNet-Lite0 and SqueezeNet weights, and the torchvision loading path."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from hashtag_workbench.core.backbones import WeightsError, imagenet_classes, load_backbone, network_input

CATS = {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat"}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _chelsea() -> Image.Image:
    from skimage import data
    return Image.fromarray(data.chelsea())


@pytest.mark.parametrize("name,dim", [("efficientnet_lite0", 1280), ("squeezenet1_1", 512)])
def test_shipped_weights_see_the_cat(name, dim):
    bb = load_backbone(name)
    feats, logits = bb.features_and_logits(bb.preprocess(_chelsea())[None])
    assert feats.shape == (1, dim) and logits.shape == (1, 1000)
    top5 = {imagenet_classes()[i] for i in np.argsort(-logits[0])[:5]}
    assert top5 & CATS, f"{name} top-5 for the cat photo: {top5}"


@pytest.mark.parametrize("name,dim", [("resnet18", 512), ("alexnet", 4096)])
def test_torchvision_backbone_loads_a_state_dict_file(tmp_path, name, dim):
    import torchvision
    torch.manual_seed(0)
    ref = getattr(torchvision.models, name)(weights=None).eval()
    path = tmp_path / f"{name}.pth"
    torch.save(ref.state_dict(), path)
    bb = load_backbone(name, weights=path)
    pixels = np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    feats, logits = bb.features_and_logits(pixels)
    assert feats.shape == (2, dim)
    with torch.inference_mode():
        expected = ref(network_input(bb.preprocess, pixels)).numpy()
    # The feature/logit split must reproduce the network's own forward pass.
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
    prepared = bb.preprocess(_chelsea())
    assert prepared.shape == (224, 224, 3) and prepared.dtype == np.uint8


def test_torchvision_cache_is_used_without_weights(tmp_path, monkeypatch):
    import torchvision
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsError, match="--weights"):
        load_backbone("resnet18")
    ckpt = tmp_path / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), ckpt / "resnet18-f37072fd.pth")
    assert load_backbone("resnet18").feature_dim == 512


def test_wrong_weights_give_clear_errors(tmp_path):
    import torchvision
    resnet = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), resnet)
    with pytest.raises(WeightsError, match=r"does not fit torchvision's alexnet: .*missing keys"):
        load_backbone("alexnet", weights=resnet)
    junk = tmp_path / "junk.pth"
    junk.write_text("not weights")
    with pytest.raises(WeightsError, match="not a PyTorch weights file"):
        load_backbone("resnet18", weights=junk)
    with pytest.raises(WeightsError, match="not found"):
        load_backbone("resnet18", weights=tmp_path / "missing.pth")
    with pytest.raises(WeightsError, match="EfficientNet-Lite0"):
        load_backbone("efficientnet_lite0", weights=resnet)
    with pytest.raises(WeightsError, match="SqueezeNet"):
        load_backbone("squeezenet1_1", weights=junk)
    with pytest.raises(ValueError, match="unknown backbone"):
        load_backbone("vgg99")


def test_shape_mismatch_is_named(tmp_path):
    import torchvision
    state = torchvision.models.resnet18(weights=None, num_classes=10).state_dict()
    path = tmp_path / "r10.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"shape mismatches \(e\.g\. fc\.weight \(10, 512\)"):
        load_backbone("resnet18", weights=path)
