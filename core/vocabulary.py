"""The shipped vocabulary: word -> hand-made hashtags, and word-name normalisation."""
from __future__ import annotations

import json
import re
from pathlib import Path

VOCABULARY_FILE = Path(__file__).resolve().parent.parent / "datasets" / "vocabulary.json"
_WORD_RE = re.compile(r"^[a-z][a-z0-9_\- ]{0,40}$")


def normalise_word(name: str) -> str:
    """Folder or user-typed name -> the word key used everywhere (lower case, single spaces)."""
    return " ".join(name.strip().lower().replace("_", " ").split())


def check_word(word: str) -> str:
    """Return the normalised word or raise ValueError saying what is wrong with it."""
    norm = normalise_word(word)
    if not _WORD_RE.match(norm):
        raise ValueError(f"{word!r} is not a usable word: use 1-41 letters, digits, spaces or dashes, "
                         "starting with a letter")
    return norm


def load_vocabulary(path: Path | str = VOCABULARY_FILE) -> dict[str, list[str]]:
    """Read a word -> hashtags JSON map, checking it has the expected shape."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{path}: expected a JSON object mapping words to hashtag lists")
    out = {}
    for word, tags in data.items():
        if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
            raise ValueError(f"{path}: the hashtags of {word!r} must be a list of non-empty strings")
        out[check_word(word)] = [t.lstrip("#") for t in tags]
    return out
