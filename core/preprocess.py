"""CNN input preparation in Pillow and numpy only (no torch), so ONNX inference runs without torch.

Resize and centre crop follow torchvision.transforms.v2 exactly (Resize(short side,
bilinear) then CenterCrop); tests/test_onnx.py checks the pixels against v2 itself.
The normalisation per backbone is `(pixel * scale - mean) / std` on 0-255 values.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Preprocess:
    """One backbone's input: short side resized to `resize`, `crop` square from the centre, normalised."""
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    scale: float = 1.0                # applied to 0-255 pixels before the mean is subtracted
    bgr: bool = False                 # channel order the network was trained on
    resize: int = 256
    crop: int = 224

    def __call__(self, img: Image.Image) -> np.ndarray:
        """A (3, crop, crop) float32 array for one photo."""
        return self.normalise(self.crop_image(img))

    def normalise(self, crop: Image.Image) -> np.ndarray:
        """The cropped RGB photo as a normalised (3, h, w) float32 array (one copy, then in place)."""
        x = np.asarray(crop)
        if self.bgr:
            x = x[..., ::-1]
        x = np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32)
        std = np.asarray(self.std, np.float32).reshape(3, 1, 1)
        x *= np.float32(self.scale) / std
        x -= np.asarray(self.mean, np.float32).reshape(3, 1, 1) / std
        return x

    def crop_image(self, img: Image.Image) -> Image.Image:
        """torchvision's Resize(resize) + CenterCrop(crop) on an RGB photo."""
        if img.mode != "RGB":
            img = img.convert("RGB")
        w, h = img.size
        short, long = (w, h) if w <= h else (h, w)
        new_long = int(self.resize * long / short)          # v2 truncates the long side
        size = (self.resize, new_long) if w <= h else (new_long, self.resize)
        if size != (w, h):
            img = img.resize(size, Image.Resampling.BILINEAR)
        w, h = img.size
        left, top = int(round((w - self.crop) / 2.0)), int(round((h - self.crop) / 2.0))
        return img.crop((left, top, left + self.crop, top + self.crop))

    def to_dict(self) -> dict:
        return asdict(self)


# EfficientNet-Lite (TF-trained): (x*255 - 127) / 128 on [0, 1] input.
TF_INPUT = Preprocess(mean=(127.0, 127.0, 127.0), std=(128.0, 128.0, 128.0))
# torchvision's ImageNet models: mean/std of ImageNet on [0, 1] input.
IMAGENET_INPUT = Preprocess(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), scale=1 / 255)
# Caffe-trained SqueezeNet: 0-255 BGR with the channel means subtracted.
CAFFE_INPUT = Preprocess(mean=(104.0, 117.0, 123.0), std=(1.0, 1.0, 1.0), bgr=True)

