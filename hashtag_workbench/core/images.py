"""Image validation and decoding: bytes in, a checked RGB picture or a plain-worded reason out."""
from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from hashtag_workbench.core.errors import InputError

# Pillow's own bomb guard stays on: images above this many pixels are refused.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
MAX_BYTES = 50 * 1024 * 1024
FORMAT_EXT = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif", "MPO": "jpg"}


class ImageRejected(InputError):
    """The bytes are not an image we can use; the message says why in plain words."""


@dataclass(frozen=True)
class CheckedImage:
    sha256: str
    width: int
    height: int
    format: str
    ext: str


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode_rgb(data: bytes, *, min_side: int = 32, max_bytes: int = MAX_BYTES,
               reduce_to: int | None = None) -> Image.Image:
    """Decode `data` fully into an RGB image, refusing anything unusable.

    Raises ImageRejected naming the problem: empty, too large, not an image,
    truncated or corrupt, a decompression bomb, or smaller than `min_side` pixels.
    `reduce_to`: let a JPEG decode at 1/2, 1/4 or 1/8 scale (Pillow's draft mode)
    while its short side stays at least this many pixels.
    """
    if not data:
        raise ImageRejected("empty file")
    if len(data) > max_bytes:
        raise ImageRejected(f"file too large ({len(data) / 1e6:.1f} MB > {max_bytes / 1e6:.0f} MB)")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_PIXELS and twice that; we refuse both.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                probe.verify()
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise ImageRejected(f"decompression bomb refused ({w}x{h} pixels > {MAX_PIXELS:,})")
            fmt = img.format or "unknown"
            if reduce_to and fmt == "JPEG" and min(w, h) > reduce_to:
                img.draft(img.mode, (-(-w * reduce_to // min(w, h)), -(-h * reduce_to // min(w, h))))
            img.load()
            rgb = img.convert("RGB")
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(f"decompression bomb refused ({exc})") from None
    except UnidentifiedImageError:
        raise ImageRejected("not an image (no known image format)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected(f"corrupt or truncated image ({exc})") from None
    except Exception as exc:  # Pillow plug-ins raise assorted types on hostile input
        raise ImageRejected(f"unreadable image ({type(exc).__name__}: {exc})") from None
    rgb.info["source_format"] = fmt
    if min(rgb.size) < min_side:
        raise ImageRejected(f"too small ({rgb.size[0]}x{rgb.size[1]} px; "
                            f"need at least {min_side} px on the short side)")
    return rgb


def check_image(data: bytes, *, min_side: int = 32, max_bytes: int = MAX_BYTES) -> CheckedImage:
    """Validate `data` as an image (see decode_rgb) and describe it."""
    img = decode_rgb(data, min_side=min_side, max_bytes=max_bytes)
    fmt = img.info.get("source_format", "unknown")
    return CheckedImage(sha256=sha256_bytes(data), width=img.size[0], height=img.size[1],
                        format=fmt, ext=FORMAT_EXT.get(fmt, "img"))
