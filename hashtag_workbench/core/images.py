"""Image validation and decoding: bytes in, a checked RGB picture or a plain-worded reason out.

Large photos (up to MAX_PIXELS, 150 MP: a 108 MP phone camera's 12000x9000 fits) are accepted and
decoded at reduced size, so no decoded picture holds more than WORK_PIXELS: a JPEG through Pillow's
draft mode (the decoder itself skips 1/2 .. 1/8 of the pixels), other formats decoded in full and
then reduced by an integer factor. Anything above MAX_PIXELS is refused before decoding, with its size.
"""
from __future__ import annotations

import hashlib
import io
import math
import re
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from hashtag_workbench.core.errors import InputError

# The largest picture accepted (pixels). Below Pillow's own hard limit (2 x Image.MAX_IMAGE_PIXELS,
# ~179 MP), so Pillow refuses nothing we accept; above it, Pillow's refusal is reported the same way.
MAX_PIXELS = 150_000_000
# The most pixels a decoded picture keeps (40 MP RGB = 120 MB); larger ones are decoded reduced.
WORK_PIXELS = 40_000_000
# Streamlit's default upload limit is 200 MB; a 120 MP photo saved as PNG can come close to it.
MAX_BYTES = 200 * 1024 * 1024
DEFAULT_MIN_SIDE = 32   # the smallest short side (pixels) an imported photo may have
FORMAT_EXT = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif", "MPO": "jpg"}
_REDUCIBLE = {"L", "LA", "RGB", "RGBA", "I", "F"}  # modes Image.reduce handles; others are converted first
_PILLOW_PIXELS = re.compile(r"\((\d+) pixels\)")


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


def _too_many_pixels(size: str, pixels: int) -> ImageRejected:
    return ImageRejected(f"too many pixels: {size} ({pixels / 1e6:.0f} MP; the limit is {MAX_PIXELS / 1e6:.0f} MP, "
                         "refused as a possible decompression bomb)")


def _draft_scale(w: int, h: int, reduce_to: int | None) -> int:
    """JPEG draft scale (1, 2, 4 or 8): enough to bring w*h to WORK_PIXELS, more when `reduce_to` allows."""
    need = math.sqrt(w * h / WORK_PIXELS)
    scale = 1 if need <= 1 else min(8, 2 ** math.ceil(math.log2(need)))
    if reduce_to and min(w, h) > reduce_to:
        scale = max(scale, min(8, 2 ** int(math.log2(min(w, h) / reduce_to))))
    return scale


def _open_reduced(data: bytes, reduce_to: int | None) -> tuple[Image.Image, tuple[int, int], str]:
    """(decoded picture of at most WORK_PIXELS, original size, format); Pillow's exceptions pass through."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # MAX_PIXELS is checked here instead
        with Image.open(io.BytesIO(data)) as probe:
            probe.verify()
        img = Image.open(io.BytesIO(data))
        w, h = img.size
        if w * h > MAX_PIXELS:
            raise _too_many_pixels(f"{w}x{h}", w * h)
        fmt = img.format or "unknown"
        scale = _draft_scale(w, h, reduce_to)
        if fmt == "JPEG" and scale > 1:
            img.draft(img.mode, (-(-w // scale), -(-h // scale)))
        img.load()
    if img.width * img.height > WORK_PIXELS:
        if img.mode not in _REDUCIBLE:
            img = img.convert("L" if img.mode == "1" else "RGB")
        img = img.reduce(math.ceil(math.sqrt(img.width * img.height / WORK_PIXELS)))
    return img, (w, h), fmt


def decode_rgb(data: bytes, *, min_side: int = DEFAULT_MIN_SIDE, max_bytes: int = MAX_BYTES,
               reduce_to: int | None = None) -> Image.Image:
    """Decode `data` into an RGB image (reduced to at most WORK_PIXELS), refusing anything unusable.

    Raises ImageRejected naming the problem: empty, too large, not an image, truncated or
    corrupt, more than MAX_PIXELS (with its size), or smaller than `min_side` pixels.
    `reduce_to`: let a JPEG decode at 1/2, 1/4 or 1/8 scale (Pillow's draft mode)
    while its short side stays at least this many pixels.
    The result's info holds "source_format" and "source_size" (the file's own width, height).
    """
    if not data:
        raise ImageRejected("empty file")
    if len(data) > max_bytes:
        raise ImageRejected(f"file too large ({len(data) / 1e6:.1f} MB > {max_bytes / 1e6:.0f} MB)")
    try:
        img, size, fmt = _open_reduced(data, reduce_to)
        rgb = img.convert("RGB")
    except ImageRejected:
        raise
    except Image.DecompressionBombError as exc:  # Pillow's own hard limit, above ours
        m = _PILLOW_PIXELS.search(str(exc))
        pixels = int(m.group(1)) if m else MAX_PIXELS + 1
        raise _too_many_pixels(f"{pixels:,} pixels", pixels) from None
    except UnidentifiedImageError:
        raise ImageRejected("not an image (no known image format)") from None
    except MemoryError:
        raise ImageRejected("not enough memory to decode this image") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected(f"corrupt or truncated image ({exc})") from None
    except Exception as exc:  # Pillow plug-ins raise assorted types on hostile input
        raise ImageRejected(f"unreadable image ({type(exc).__name__}: {exc})") from None
    rgb.info["source_format"], rgb.info["source_size"] = fmt, size
    if min(rgb.size) < min_side:
        raise ImageRejected(f"too small ({rgb.size[0]}x{rgb.size[1]} px; "
                            f"need at least {min_side} px on the short side)")
    return rgb


def check_image(data: bytes, *, min_side: int = DEFAULT_MIN_SIDE, max_bytes: int = MAX_BYTES) -> CheckedImage:
    """Validate `data` as an image (see decode_rgb) and describe it (its own size, not the decoded one)."""
    img = decode_rgb(data, min_side=min_side, max_bytes=max_bytes)
    fmt = img.info.get("source_format", "unknown")
    w, h = img.info.get("source_size", img.size)
    return CheckedImage(sha256=sha256_bytes(data), width=w, height=h, format=fmt, ext=FORMAT_EXT.get(fmt, "img"))
