"""Hostile image bytes: mutated real photos, random bytes, lying headers and bombs.

The contract of core.images: any bytes give either a checked image or ImageRejected
with a plain-worded reason; nothing else escapes, and bombs are refused before
their pixels are allocated, so memory stays bounded. The import path is fuzzed too:
every hostile file becomes a failed row with a reason, and the job finishes.
"""
from __future__ import annotations

import io
import json
import math
import os
import struct
import subprocess
import sys
import textwrap
import zlib
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from hashtag_workbench.core.images import MAX_PIXELS, ImageRejected, check_image, decode_rgb
from tests.conftest import DEMO_PHOTOS, ROOT

FUZZED: Counter = Counter()


def _encode(fmt: str, size=(64, 48), mode="RGB", **kw) -> bytes:
    img = Image.new(mode, size)
    for x in range(0, size[0], 3):  # some structure, so encoders produce real entropy-coded data
        img.putpixel((x, (x * 7) % size[1]), (x * 5 % 256, 90, 200) if mode == "RGB" else x % 256)
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


SEEDS = {
    "jpeg": sorted((DEMO_PHOTOS / "bird").glob("*.jpg"))[0].read_bytes(),
    "jpeg_progressive": _encode("JPEG", progressive=True),
    "png": _encode("PNG"),
    "png_palette": _encode("PNG", mode="P"),
    "gif": _encode("GIF", mode="P"),
    "webp": _encode("WEBP"),
    "bmp": _encode("BMP"),
    "tiff": _encode("TIFF"),
}


def _assert_contract(data: bytes, kind: str) -> None:
    FUZZED[kind] += 1
    try:
        info = check_image(data, min_side=1)
    except ImageRejected as exc:
        msg = str(exc)
        assert msg and "\n" not in msg and "Traceback" not in msg
        return
    assert info.width * info.height <= MAX_PIXELS and len(info.sha256) == 64


@st.composite
def mutated(draw):
    name = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[name])
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "set", "cut", "insert", "dup"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[pos:pos + 4] = draw(st.binary(min_size=1, max_size=4))
        elif op == "cut":
            del data[pos:pos + draw(st.integers(1, 512))]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        elif op == "dup":
            data[pos:pos] = data[max(0, pos - 256):pos]
    return name, bytes(data)


@settings(max_examples=700, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(mutated())
def test_mutated_real_images(case):
    name, data = case
    _assert_contract(data, f"mutated {name}")


MAGICS = [b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"GIF87a", b"RIFF\x00\x00\x00\x00WEBPVP8 ",
          b"BM", b"II*\x00", b"MM\x00*", b"\x00\x00\x01\x00", b"P6\n", b"8BPS", b"\x00\x00\x00\x0cjP  "]


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(MAGICS), st.binary(max_size=2048))
def test_random_bytes_behind_known_magic(magic, tail):
    _assert_contract(magic + tail, "random bytes")


def _png(w: int, h: int, bit_depth=8, color=2, body: bytes = b"") -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, color, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(body))
            + chunk(b"IEND", b""))


def _gif(w: int, h: int) -> bytes:
    data = bytearray(SEEDS["gif"])
    data[6:10] = struct.pack("<HH", w, h)           # logical screen
    i = data.index(b"\x2c")                         # first image descriptor
    data[i + 5:i + 9] = struct.pack("<HH", w, h)
    return bytes(data)


def _bmp(w: int, h: int) -> bytes:
    data = bytearray(SEEDS["bmp"])
    data[18:26] = struct.pack("<ii", w, h)
    return bytes(data)


def _jpeg(w: int, h: int) -> bytes:
    data = bytearray(SEEDS["jpeg"])
    for marker in (b"\xff\xc0", b"\xff\xc2", b"\xff\xc1"):
        i = data.find(marker)
        if i >= 0:
            data[i + 5:i + 9] = struct.pack(">HH", h, w)
            return bytes(data)
    raise AssertionError("no SOF marker")


def _tiff(w: int, h: int) -> bytes:
    img = Image.new("L", (8, 8))
    buf = io.BytesIO()
    img.save(buf, "TIFF")
    data = bytearray(buf.getvalue())
    # rewrite the ImageWidth (256) and ImageLength (257) entries of the first IFD
    ifd = struct.unpack("<I", data[4:8])[0]
    n = struct.unpack("<H", data[ifd:ifd + 2])[0]
    for k in range(n):
        e = ifd + 2 + 12 * k
        tag, typ = struct.unpack("<HH", data[e:e + 4])
        if tag in (256, 257):
            data[e + 2:e + 4] = struct.pack("<H", 4)           # LONG
            data[e + 8:e + 12] = struct.pack("<I", w if tag == 256 else h)
    return bytes(data)


HEADER_MAKERS = {"png": _png, "gif": _gif, "bmp": _bmp, "jpeg": _jpeg, "tiff": _tiff}


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(sorted(HEADER_MAKERS)), st.integers(0, 65535), st.integers(0, 65535))
def test_lying_dimensions(fmt, w, h):
    data = HEADER_MAKERS[fmt](w, h)
    _assert_contract(data, "lying dimensions")
    if w * h > MAX_PIXELS:
        with pytest.raises(ImageRejected):
            decode_rgb(data, min_side=1)


BOMB_SCRIPT = """
    import json, sys
    from tests.test_fuzz import bombs, _real_bomb_png
    from hashtag_workbench.core.images import ImageRejected, check_image

    def peak_kb():
        # VmHWM is this process's own peak; ru_maxrss would carry the parent's peak across exec
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    before = peak_kb()
    out = {{}}
    for name, data in bombs():
        try:
            check_image(data, min_side=1)
            out[name] = "accepted"
        except ImageRejected as exc:
            out[name] = str(exc)
    peak = peak_kb()
    # the largest picture allowed, to know what "bounded" costs at worst
    side = int({max_pixels} ** 0.5) - 1
    largest = _real_bomb_png(side)
    check_image(largest, min_side=1)
    worst = peak_kb()
    print(json.dumps({{"results": out, "rss_before_mb": before / 1024, "rss_peak_mb": peak / 1024,
                      "largest_allowed": f"{{side}}x{{side}}", "rss_largest_mb": worst / 1024}}))
"""


def bombs():
    """Small files that claim (or really hold) far more pixels than allowed."""
    yield "png 20000x20000 (1-bit, real data)", _real_bomb_png(20000)
    side = math.isqrt(MAX_PIXELS) + 1
    yield f"png {side}x{side} (just over the limit, real data)", _real_bomb_png(side)
    yield "png 100000x100000 header", _png(100000, 100000)
    yield "png 2^31-1 wide", _png(2**31 - 1, 1)
    yield "gif 65535x65535", _gif(65535, 65535)
    yield "bmp 60000x60000", _bmp(60000, 60000)
    yield "bmp negative height", _bmp(60000, -60000)
    yield "jpeg 65500x65500", _jpeg(65500, 65500)
    yield "tiff 100000x100000", _tiff(100000, 100000)
    yield "webp mutated", bytes(SEEDS["webp"][:26]) + struct.pack("<HH", 0x3FFF, 0x3FFF) + SEEDS["webp"][30:]


def _real_bomb_png(side: int, height: int | None = None) -> bytes:
    height = side if height is None else height
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, height, 1, 0, 0, 0, 0)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def test_bombs_refused_with_bounded_memory():
    """In a fresh process, so its peak memory is the decoder's alone."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(BOMB_SCRIPT.format(max_pixels=MAX_PIXELS))],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    FUZZED["bombs"] += len(res["results"])
    print(f"\nbombs: peak RSS {res['rss_peak_mb']:.0f} MB (from {res['rss_before_mb']:.0f} MB): {res['results']}")
    assert all(r != "accepted" for r in res["results"].values()), res["results"]
    assert res["rss_peak_mb"] - res["rss_before_mb"] < 200, res
    print(f"the largest picture allowed ({res['largest_allowed']} px) peaks at {res['rss_largest_mb']:.0f} MB")
    assert res["rss_largest_mb"] < 1024, res


@pytest.fixture(scope="module")
def big_jpeg(tmp_path_factory) -> bytes:
    """A real 12000x10000 (120 MP) JPEG, grey and low quality: ~1.4 MB on disk, 120 MB while made, once."""
    path = tmp_path_factory.mktemp("big") / "120mp.jpg"
    img = Image.new("L", (12000, 10000), 128)
    img.paste(255, (0, 0, 6000, 5000))                  # some content to find again after reduction
    img.save(path, "JPEG", quality=5)
    del img
    return path.read_bytes()


def test_large_photos_decode_at_reduced_size(big_jpeg):
    """Up to MAX_PIXELS (150 MP) a photo is accepted; what is decoded holds at most WORK_PIXELS."""
    from hashtag_workbench.core.images import WORK_PIXELS
    img = decode_rgb(big_jpeg)
    assert img.info["source_size"] == (12000, 10000) and img.size == (6000, 5000)   # JPEG draft, 1/2 scale
    assert img.getpixel((10, 10))[0] > 230 and abs(img.getpixel((5990, 4990))[0] - 128) < 15  # quality 5
    info = check_image(big_jpeg)
    assert (info.width, info.height, info.format) == (12000, 10000, "JPEG")        # the file's own size
    png = _real_bomb_png(12000, 10000)                                              # 120 MP PNG (1-bit)
    img = decode_rgb(png)
    assert img.size[0] * img.size[1] <= WORK_PIXELS and img.info["source_size"] == (12000, 10000)
    assert check_image(png).width == 12000


def test_photos_over_the_limit_refused_with_their_size():
    side = math.isqrt(MAX_PIXELS) + 1
    with pytest.raises(ImageRejected, match=f"too many pixels: {side}x{side} \\(150 MP; the limit is 150 MP"):
        decode_rgb(_real_bomb_png(side))
    with pytest.raises(ImageRejected, match="400,000,000 pixels \\(400 MP; the limit is 150 MP"):
        decode_rgb(_real_bomb_png(20000))                # past Pillow's own limit too: still a plain message


@settings(max_examples=3, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(st.lists(st.one_of(mutated().map(lambda c: c[1]), st.binary(max_size=512)), min_size=10, max_size=25))
def test_import_path_records_every_hostile_file(tmp_path_factory, blobs):
    from hashtag_workbench.jobs.import_folder import import_folder
    from hashtag_workbench.warehouse.db import connect
    base = tmp_path_factory.mktemp("fuzzimport")
    home, tree = base / "home", base / "tree" / "bird"
    tree.mkdir(parents=True)
    names = set()
    for i, blob in enumerate(blobs):
        (tree / f"f{i:03d}.jpg").write_bytes(blob)
        names.add(f"f{i:03d}.jpg")
    FUZZED["import files"] += len(blobs)
    counts = import_folder(home, base / "tree")
    with connect(home, read_only=True) as con:
        rows = con.execute("SELECT source_path, status, error FROM images").fetchall()
    seen = {os.path.basename(r[0]) for r in rows}
    # every file is a row (stored, or failed with a reason) unless it duplicates a stored photo
    assert seen | set() <= names and len(seen) + counts.get("duplicate", 0) == len(names)
    assert all(r[2] for r in rows if r[1] == "failed")


def test_zz_report_fuzz_count():
    """Prints how many inputs were fuzzed (runs last in this module)."""
    total = sum(FUZZED.values())
    print(f"\nfuzzed {total} inputs: {dict(FUZZED)}")
    assert total >= 1000
