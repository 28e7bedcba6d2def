"""Thumbnails: image bytes in, small JPEG bytes out."""
from __future__ import annotations

import io

from PIL import Image

from hashtag_workbench.core.errors import InputError

DEFAULT_SIZE = 192


def make_thumbnail(data: bytes, size: int = DEFAULT_SIZE, *, quality: int = 80) -> bytes:
    """A JPEG no larger than size x size (aspect kept; transparency flattened on white)."""
    if size < 8:
        raise InputError(f"thumbnail size must be at least 8 px, got {size}")
    with Image.open(io.BytesIO(data)) as img:
        img.draft("RGB", (size * 2, size * 2))  # fast JPEG downscale while decoding
        img.load()
        if img.mode in ("RGBA", "LA", "P"):
            rgba = img.convert("RGBA")
            flat = Image.new("RGB", rgba.size, (255, 255, 255))
            flat.paste(rgba, mask=rgba.getchannel("A"))
            img = flat
        else:
            img = img.convert("RGB")
        img.thumbnail((size, size), Image.Resampling.BILINEAR)
        out = io.BytesIO()
        img.save(out, "JPEG", quality=quality, optimize=False)
        return out.getvalue()
