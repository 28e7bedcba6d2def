"""CNN input preparation in Pillow and numpy only (no torch), so ONNX inference runs without torch.

A photo becomes the network's *pixels*: a (crop, crop, 3) uint8 RGB array, the short
side resized to `resize` (bilinear) and the centre square cut, as torchvision.transforms.v2
Resize + CenterCrop do; tests/test_onnx.py checks them against v2 itself. Turning pixels
into the network's normalised float input, `(pixel * scale - mean) / std`, happens inside
each backbone (core.backbones.network_input), and so inside the exported ONNX graph, where
ONNX Runtime does it in its own threads.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Preprocess:
    """One backbone's input: short side resized to `resize`, the `crop` square from the centre, and
    how the network normalises those pixels."""
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    scale: float = 1.0                # applied to 0-255 pixels before the mean is subtracted
    bgr: bool = False                 # channel order the network was trained on
    resize: int = 256
    crop: int = 224

    def __call__(self, img: Image.Image) -> np.ndarray:
        """The network's pixels for one photo: a (crop, crop, 3) uint8 RGB array."""
        return np.array(self.crop_image(img))

    def crop_image(self, img: Image.Image) -> Image.Image:
        """torchvision's Resize(resize) + CenterCrop(crop) on an RGB photo, in one Pillow resampling pass.

        Resampling only the box that lands in the crop, at the full resize's scale, costs
        about 60 % of resizing the whole photo and then cropping; values match that within
        1 of 255 (integer rounding in Pillow's filter), on under 1 % of them.
        """
        if img.mode != "RGB":
            img = img.convert("RGB")
        w, h = img.size
        short, long = (w, h) if w <= h else (h, w)
        new_long = int(self.resize * long / short)          # v2 truncates the long side
        nw, nh = (self.resize, new_long) if w <= h else (new_long, self.resize)
        left, top = int(round((nw - self.crop) / 2.0)), int(round((nh - self.crop) / 2.0))
        if (nw, nh) == (w, h):
            return img.crop((left, top, left + self.crop, top + self.crop))
        sx, sy = w / nw, h / nh
        box = (left * sx, top * sy, (left + self.crop) * sx, (top + self.crop) * sy)
        return img.resize((self.crop, self.crop), Image.Resampling.BILINEAR, box=box)

    def to_dict(self) -> dict:
        return asdict(self)


# EfficientNet-Lite (TF-trained): (x*255 - 127) / 128 on [0, 1] input.
TF_INPUT = Preprocess(mean=(127.0, 127.0, 127.0), std=(128.0, 128.0, 128.0))
# torchvision's ImageNet models: mean/std of ImageNet on [0, 1] input.
IMAGENET_INPUT = Preprocess(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), scale=1 / 255)
# Caffe-trained SqueezeNet: 0-255 BGR with the channel means subtracted.
CAFFE_INPUT = Preprocess(mean=(104.0, 117.0, 123.0), std=(1.0, 1.0, 1.0), bgr=True)
