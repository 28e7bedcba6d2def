"""Derive the compact WordNet 3.0 noun file the zero-shot hierarchy reads (data/wordnet_nouns.json.gz).

Sources, installed from the package registries (no root, no nltk):
- Debian `wordnet-base` (WordNet 3.0): `apt-get download wordnet-base` + `dpkg-deb -x`; its
  data.noun (synsets: offset, lemmas, pointers, gloss), index.noun (each lemma's senses, most
  frequent first) and noun.exc (irregular plurals);
- the 1000 ImageNet-1k ids in torchvision's category order: `timm/data/_info/imagenet_synsets.txt`
  from timm's wheel (`pip download timm --no-deps`; timm is not a dependency of the project).

The output keeps, per noun synset: its offset, lemmas, hypernym and instance-hypernym offsets and
gloss; per lemma its synsets in sense order; the irregular plurals; the 1000 ImageNet ids. WordNet's
licence is copied beside it (hashtag_workbench/data/WORDNET_LICENSE).

    python datasets/build_wordnet.py [--cache DIR]
"""
from __future__ import annotations

import argparse
import gzip
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "hashtag_workbench" / "data"
OUT = DATA / "wordnet_nouns.json.gz"
LICENSE_OUT = DATA / "WORDNET_LICENSE"
DEB = "wordnet-base"
TIMM_SYNSETS = "timm/data/_info/imagenet_synsets.txt"
HYPERNYM_POINTERS = {"@": "hypernyms", "@i": "instance_hypernyms"}


def fetch_sources(cache: Path) -> tuple[Path, Path, Path]:
    """(wordnet dir, its copyright file, imagenet_synsets.txt), downloading what the cache lacks."""
    cache.mkdir(parents=True, exist_ok=True)
    wn = cache / "deb" / "usr" / "share" / "wordnet"
    if not (wn / "data.noun").is_file():
        subprocess.run(["apt-get", "download", DEB], cwd=cache, check=True)
        deb = next(cache.glob(f"{DEB}_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(cache / "deb")], check=True)
    synsets = cache / "imagenet_synsets.txt"
    if not synsets.is_file():
        subprocess.run([sys.executable, "-m", "pip", "download", "timm", "--no-deps", "-d", str(cache), "-q"],
                       check=True)
        with zipfile.ZipFile(next(cache.glob("timm-*.whl"))) as z:
            synsets.write_bytes(z.read(TIMM_SYNSETS))
    return wn, cache / "deb" / "usr" / "share" / "doc" / DEB / "copyright", synsets


def definition(gloss: str) -> str:
    """A gloss without its quoted usage examples ('a feline mammal; "the cat sat"' -> 'a feline mammal'),
    which halves the file and adds nothing the sense choice reads."""
    return re.split(r';\s*"', gloss.strip(), maxsplit=1)[0].strip()


def parse_data_noun(path: Path) -> list[dict]:
    """data.noun lines -> [{offset, lemmas, hypernyms, instance_hypernyms, gloss}] (see wndb(5WN))."""
    out = []
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.startswith("  "):   # the licence header
            continue
        body, _, gloss = line.partition(" | ")
        f = body.split()
        n_words = int(f[3], 16)
        lemmas = [f[4 + 2 * i] for i in range(n_words)]
        pos = 4 + 2 * n_words
        n_ptrs = int(f[pos])
        rec = {"offset": int(f[0]), "lemmas": lemmas, "hypernyms": [], "instance_hypernyms": [],
               "gloss": definition(gloss)}
        for i in range(n_ptrs):
            sym, target, tpos = f[pos + 1 + 4 * i: pos + 4 + 4 * i]
            if sym in HYPERNYM_POINTERS and tpos == "n":
                rec[HYPERNYM_POINTERS[sym]].append(int(target))
        out.append(rec)
    return out


def parse_index_noun(path: Path) -> dict[str, list[int]]:
    """index.noun -> lemma: synset offsets, most frequent sense first."""
    out = {}
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.startswith("  "):
            continue
        f = line.split()
        n_synsets, n_ptrs = int(f[2]), int(f[3])
        out[f[0]] = [int(x) for x in f[6 + n_ptrs: 6 + n_ptrs + n_synsets]]
    return out


def parse_exceptions(path: Path) -> dict[str, str]:
    """noun.exc: irregular inflection -> base form (the first one listed)."""
    return {f[0]: f[1] for f in (line.split() for line in path.read_text(encoding="latin-1").splitlines())
            if len(f) >= 2}


def derive(wn: Path, synsets_file: Path) -> dict:
    synsets = parse_data_noun(wn / "data.noun")
    row = {s["offset"]: i for i, s in enumerate(synsets)}
    imagenet = synsets_file.read_text().split()
    missing = [w for w in imagenet if int(w[1:]) not in row]
    if len(imagenet) != 1000 or missing:
        raise SystemExit(f"expected 1000 ImageNet ids that all resolve; got {len(imagenet)}, missing {missing[:5]}")
    return {
        "source": "WordNet 3.0 (Debian wordnet-base) data.noun, index.noun, noun.exc; ImageNet-1k ids in "
                  "torchvision order from timm's imagenet_synsets.txt; built by datasets/build_wordnet.py",
        "offsets": [s["offset"] for s in synsets],
        "lemmas": ["|".join(s["lemmas"]) for s in synsets],
        "hypernyms": [[row[h] for h in s["hypernyms"]] for s in synsets],
        "instance_hypernyms": [[row[h] for h in s["instance_hypernyms"]] for s in synsets],
        "glosses": [s["gloss"] for s in synsets],
        "index": {lemma: [row[o] for o in offs] for lemma, offs in parse_index_noun(wn / "index.noun").items()},
        "exceptions": parse_exceptions(wn / "noun.exc"),
        "imagenet": [row[int(w[1:])] for w in imagenet],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cache", type=Path, help="keep the downloaded sources here (default: a temp dir)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wn, copyright_file, synsets_file = fetch_sources(args.cache or Path(tmp))
        data = derive(wn, synsets_file)
        body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
        OUT.write_bytes(gzip.compress(body, compresslevel=9, mtime=0))
        LICENSE_OUT.write_text(copyright_file.read_text(encoding="utf-8", errors="replace"))
    print(f"wrote {OUT.relative_to(ROOT)}: {len(data['offsets'])} noun synsets, {len(data['index'])} lemmas, "
          f"{len(data['imagenet'])} ImageNet ids, {OUT.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
