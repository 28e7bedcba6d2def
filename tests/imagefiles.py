"""Bad and good image files for tests, made on the fly."""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

from PIL import Image

from tests.conftest import DEMO_PHOTOS


def good_photo_bytes(word: str = "bird", index: int = 0) -> bytes:
    return sorted((DEMO_PHOTOS / word).glob("*.jpg"))[index].read_bytes()


def truncated_jpeg_bytes() -> bytes:
    data = good_photo_bytes("fruit", 0)
    return data[: len(data) // 2]


def tiny_png_bytes(size=(1, 1)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buf, format="PNG")
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png_bytes(side: int = 20000) -> bytes:
    """A real, valid 1-bit PNG of side x side pixels that compresses to a few tens of KB."""
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
