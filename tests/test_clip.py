"""The CLIP zero-shot kind, end to end, with a tiny randomly initialised CLIP saved to a temp folder (no downloads)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hashtag_workbench.core.predictor import ImageBatch, ModelLoadError, load_model

torch.set_num_threads(1)
WORDS = ["bird", "flowers", "fruit", "music"]


def save_tiny_clip(folder: Path) -> Path:
    """A 1-layer CLIP (16-d towers, 8-d projection, 32-px images) and a letters-only BPE tokenizer (no merges)."""
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTokenizer,
    )
    folder.mkdir(parents=True, exist_ok=True)
    # letters plus the prompts' punctuation: an unknown character would become <|endoftext|>, where CLIP pools
    letters = "abcdefghijklmnopqrstuvwxyz#."
    vocab = ["<|startoftext|>", "<|endoftext|>", *letters, *(c + "</w>" for c in letters)]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")  # no merges: every letter is its own token
    tokenizer = CLIPTokenizer.from_pretrained(str(folder))
    text = dict(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                num_attention_heads=2, max_position_embeddings=64, bos_token_id=0, eos_token_id=1, pad_token_id=1)
    vision = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                  image_size=32, patch_size=8)
    torch.manual_seed(0)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=8)).save_pretrained(str(folder))
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    return save_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


def photos(n: int = 3) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (40 + 7 * i, 48, 3), dtype=np.uint8)) for i in range(n)]


def test_clip_builds_predicts_and_is_rebuilt_from_its_record(tiny_clip, tmp_path):
    from hashtag_workbench.core.clip import CLIPZeroShot, CLIPZeroShotConfig
    tags = {"bird": ["#birds", "wildlife"], "music": ["guitar"]}
    model = CLIPZeroShot.build(CLIPZeroShotConfig(model=str(tiny_clip)), WORDS, hashtags=tags)
    assert model.report["expansions"] == {"bird": ["birds", "wildlife"], "music": ["guitar"]}
    probs = model.predict_images(photos())
    assert probs.shape == (3, 4) and np.allclose(probs.sum(axis=1), 1.0)
    assert not np.allclose(probs[0], probs[1])          # different photos, different scores
    # the hashtags change the words' text vectors
    plain = CLIPZeroShot.build(CLIPZeroShotConfig(model=str(tiny_clip), expand_k=0), WORDS)
    assert not np.allclose(plain.text[0], model.text[0]) and np.allclose(plain.text[1], model.text[1])

    # a word is its prompt ensemble ("a photo of a {}.", "{}") and its hashtag forms ("#{}"), half and half
    from hashtag_workbench.core.clip import PromptEncoder, load_clip
    from hashtag_workbench.core.linalg import unit
    net, proc = load_clip(str(tiny_clip))
    prompted = PromptEncoder(net, proc, ["a photo of a {}.", "{}"]).encode(["flowers"])[0][0]
    tagged = PromptEncoder(net, proc, ["#{}"]).encode(["flowers"])[0][0]
    assert np.allclose(model.text[1], unit(unit(prompted) + unit(tagged)), atol=1e-5)
    assert "2 prompts + hashtag forms" in model.config.label() and "tiny-clip" in model.config.label()

    model.save(tmp_path / "model.npz")
    rec = {"model_id": 7, "kind": "clip", "name": "CLIP tiny", "config": model.config.to_dict(),
           "classes": WORDS, "artifact_path": str(tmp_path)}
    loaded = load_model(rec)
    assert loaded.kind == "clip" and loaded.classes == WORDS
    assert np.allclose(loaded.predict(ImageBatch.of(photos())), probs, atol=1e-5)


def test_clip_with_missing_weights_says_what_to_do(tiny_clip, tmp_path):
    from hashtag_workbench.core.clip import CLIPError, CLIPZeroShot, CLIPZeroShotConfig
    with pytest.raises(CLIPError, match="--clip-model"):
        CLIPZeroShotConfig(model="")
    with pytest.raises(CLIPError, match="must hold"):
        CLIPZeroShotConfig(model=str(tiny_clip), prompts=["a photo"])
    model = CLIPZeroShot.build(CLIPZeroShotConfig(model=str(tiny_clip)), WORDS)
    gone = tmp_path / "gone"
    shutil.copytree(tiny_clip, gone)
    cfg = {**model.config.to_dict(), "model": str(gone)}
    model.save(tmp_path / "model.npz")
    shutil.rmtree(gone)
    with pytest.raises(ModelLoadError, match="cannot load CLIP"):
        load_model({"model_id": 1, "kind": "clip", "config": cfg, "classes": WORDS,
                    "artifact_path": str(tmp_path)})
