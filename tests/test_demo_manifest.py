"""The bundled demo set against its manifest: every file listed once, licences shipped, planted noise honest,
size and count limits of issue 11; plus the builder's licence lookups on small inputs."""
import csv
import hashlib
import importlib.util
import json
import re
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from tests.conftest import DEMO_PHOTOS, ROOT

DEMO = ROOT / "datasets" / "demo"


def _load_demo_sources():
    """datasets/ is a folder of build scripts, not a package (and `datasets` names a PyPI package)."""
    spec = importlib.util.spec_from_file_location("demo_sources", ROOT / "datasets" / "demo_sources.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


demo_sources = _load_demo_sources()

VOCABULARY = set(json.loads((ROOT / "hashtag_workbench" / "data" / "vocabulary.json").read_text()))
SCENE_WORDS = {"beach", "sunset", "ocean", "mountains", "lake", "snow", "sky", "clouds", "forest", "city",
               "architecture", "night", "nature", "trees", "garden", "bridge", "street", "travel"}


@pytest.fixture(scope="module")
def rows():
    with open(DEMO / "MANIFEST.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_every_file_listed_exactly_once_and_every_listed_file_exists(rows):
    listed = Counter(r["file"] for r in rows)
    assert [f for f, n in listed.items() if n > 1] == []
    on_disk = {p.relative_to(DEMO_PHOTOS).as_posix() for p in DEMO_PHOTOS.rglob("*") if p.is_file()}
    assert on_disk - set(listed) == set(), "files not in MANIFEST.csv"
    assert set(listed) - on_disk == set(), "MANIFEST.csv rows without a file"
    assert all(r["file"].split("/")[0] == r["word"] for r in rows), "the folder is the word"


def test_provenance_and_licence_text_for_every_photo(rows):
    for r in rows:
        assert r["package"] and r["original_path"] and r["licence"] and r["credit"], r["file"]
        assert "scratch" not in r["package"].split()[0].split("=")[0], "Debian's scratch is reserved"
        text = DEMO / r["licence_file"]
        assert text.is_file() and text.stat().st_size > 50, f"{r['file']}: no licence text at {r['licence_file']}"
    assert len({r["licence"] for r in rows}) >= 5
    for debian in {r["package"].split()[0] for r in rows if r["package"].endswith("(Debian)")}:
        assert (DEMO / "LICENSES" / "debian" / debian).is_file(), f"{debian}'s copyright file is not shipped"


def test_words_are_vocabulary_words_and_planted_rows_name_another_true_word(rows):
    assert {r["word"] for r in rows} <= VOCABULARY
    planted = [r for r in rows if r["true_word"] != r["word"]]
    assert all(r["true_word"] in VOCABULARY for r in planted)
    assert 0.03 <= len(planted) / len(rows) <= 0.08, f"{len(planted)} planted of {len(rows)}"
    # the file names give nothing away: planted and clean names look alike
    assert all(re.fullmatch(r"[a-z-]+-[0-9a-f]{8}\.jpg", r["file"].split("/")[1]) for r in rows)


def test_counts_per_the_issue(rows):
    clean = Counter(r["word"] for r in rows if r["true_word"] == r["word"])
    big = {w for w, n in clean.items() if n >= 10}
    assert len(rows) >= 450
    assert len(big) >= 18, sorted(clean.items())
    assert len(big & SCENE_WORDS) >= 6, sorted(big & SCENE_WORDS)


def test_size_limits_and_no_duplicate_photos(rows):
    digests = Counter()
    hashes = []
    for r in rows:
        path = DEMO_PHOTOS / r["file"]
        with Image.open(path) as im:
            assert max(im.size) <= 384 and im.mode == "RGB", r["file"]
            small = np.asarray(im.convert("L").resize((17, 16)), dtype=np.int16)
        hashes.append((small[:, 1:] > small[:, :-1]).ravel())      # difference hash, 256 bits
        digests[hashlib.sha256(path.read_bytes()).hexdigest()] += 1
    assert max(digests.values()) == 1
    h = np.array(hashes)
    dist = (h[:, None, :] != h[None, :, :]).sum(-1) + 256 * np.eye(len(h), dtype=int)
    i, j = np.unravel_index(dist.argmin(), dist.shape)
    assert dist.min() > 8, f"near-duplicates: {rows[i]['file']} and {rows[j]['file']}"
    total = sum(p.stat().st_size for p in DEMO.rglob("*") if p.is_file())
    assert total < 25e6, f"datasets/demo/ is {total / 1e6:.1f} MB"


def test_chosen_list_matches_the_manifest(rows):
    with open(ROOT / "datasets" / "demo_photos.csv", newline="") as fh:
        chosen = list(csv.DictReader(fh))
    assert len(chosen) == len(rows)
    assert len({(c["source"], c["path"]) for c in chosen}) == len(chosen)
    assert Counter((c["word"], c["true_word"]) for c in chosen) == Counter((r["word"], r["true_word"]) for r in rows)


COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: 2010 Someone
License: GPL-2+

Files: nature/Aqua.jpg
       nature/Dune.jpg
Copyright: 2008, A Photographer
           2009, Another
License: CC-BY-SA-4.0

Files: 16.04/sunset_by_X.jpg
Copyright: X, 2018
License: CC0-1.0

License: CC-BY-SA-4.0
 Attribution-ShareAlike 4.0 International
 .
 full text here
"""


def test_dep5_lookup_last_matching_stanza_wins_and_full_texts_are_found():
    assert demo_sources.dep5_lookup(COPYRIGHT, "usr/share/backgrounds/mate/nature/Dune.jpg") == (
        "CC-BY-SA-4.0", "2008, A Photographer 2009, Another")
    assert demo_sources.dep5_lookup(COPYRIGHT, "usr/share/x/other.jpg") == ("GPL-2+", "2010 Someone")
    # Debian's paths name the upstream folder, the package installs without it
    assert demo_sources.dep5_lookup(COPYRIGHT, "usr/share/backgrounds/sunset_by_X.jpg")[0] == "CC0-1.0"
    texts = demo_sources.dep5_licence_texts(COPYRIGHT)
    assert list(texts) == ["CC-BY-SA-4.0"] and "full text here" in texts["CC-BY-SA-4.0"]


def test_licence_names_are_normalised_and_readme_entries_found():
    norm = demo_sources.normalise_licence
    assert [norm(t) for t in ("CC-BY-SA 4.0", "Public Domain", "CC0", "cc by 2.0", "FDL", "Expat")] == [
        "CC-BY-SA-4.0", "public-domain", "CC0-1.0", "CC-BY-2.0", "GFDL-1.2+", "MIT"]
    readme = (b"Copyright: Timothee Giet\nLicense: CC-BY-SA 4.0\nFiles:\n  key.svg\n\n"
              b"Copyright:\n  Copyright 2011 NASA\n  Copyright 2018 T. G.\nLicense: Public Domain\n"
              b"Comment: original source at https://example.org/Mercury.jpg\nFiles:\n  mercury.webp\n")
    files = {"a/resource/README": readme}
    assert demo_sources.gcompris_readme(files, "a/resource/mercury.webp") == (
        "public-domain", "Copyright 2011 NASA; Copyright 2018 T. G.", "https://example.org/Mercury.jpg")
    with pytest.raises(demo_sources.SourceError):
        demo_sources.gcompris_readme(files, "a/resource/unknown.webp")
