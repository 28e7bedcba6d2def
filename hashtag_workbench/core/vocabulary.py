"""The shipped vocabulary: word -> hand-made hashtags, and word-name normalisation."""
from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

from hashtag_workbench.core.errors import InputError

VOCABULARY_FILE = Path(__file__).resolve().parent.parent / "data" / "vocabulary.json"
MAX_WORD_LEN = 41
_WORD_RE = re.compile(r"^[a-z][a-z0-9\- ]{0,40}$")


def normalise_word(name: str) -> str:
    """Folder or user-typed name -> the word key used everywhere (lower case, single spaces)."""
    return " ".join(name.strip().lower().replace("_", " ").split())


def _bad_character(norm: str) -> str | None:
    """Why a normalised name fails the pattern, naming the first offending character."""
    for ch in norm:
        if ord(ch) > 127:
            name = unicodedata.name(ch, f"U+{ord(ch):04X}")
            return (f"it contains {ch!r} ({name}), not a plain a-z letter; a lookalike letter would make a "
                    "second word that only looks the same")
        if not (ch.isascii() and (ch.isalnum() or ch in " -")):
            return f"it contains {ch!r}; use only letters a-z, digits, single spaces or dashes"
    if not norm[0].isalpha():
        return "it must start with a letter"
    return None


def check_word(word: str) -> str:
    """Return the normalised word or raise ValueError saying, in one line, what is wrong with it.

    The one place word names are checked: the CLI (`words`, `import-folder`, `scrape-images`)
    and the dashboard's Words page all call it.
    """
    norm = normalise_word(word or "")
    if not norm:
        raise InputError(f"{word!r} is not a usable word: it is empty")
    if len(norm) > MAX_WORD_LEN:
        raise InputError(f"{word[:24]!r}... is not a usable word: it is {len(norm)} characters long "
                         f"(at most {MAX_WORD_LEN})")
    why = _bad_character(norm)
    if why or not _WORD_RE.match(norm):
        raise InputError(f"{word!r} is not a usable word: {why or 'use 1-41 letters, digits, spaces or dashes'}")
    return norm


def parse_hashtags(text: str | list[str] | None) -> list[str]:
    """'#a #b, c' (or a list) -> ['a', 'b', 'c']: '#' dropped, split on commas and spaces, duplicates removed."""
    parts = text if isinstance(text, list) else (text or "").replace(",", " ").split()
    out: list[str] = []
    for t in parts:
        t = t.strip().lstrip("#").strip()
        if t and t not in out:
            out.append(t)
    return out


def load_vocabulary(path: Path | str = VOCABULARY_FILE) -> dict[str, list[str]]:
    """Read a word -> hashtags JSON map, checking it has the expected shape."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or not data:
        raise InputError(f"{path}: expected a JSON object mapping words to hashtag lists")
    out = {}
    for word, tags in data.items():
        if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
            raise InputError(f"{path}: the hashtags of {word!r} must be a list of non-empty strings")
        out[check_word(word)] = [t.lstrip("#") for t in tags]
    return out
