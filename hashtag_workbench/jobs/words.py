"""`words`: the open vocabulary from the command line (the same checks as the dashboard's Words page).

A changed active vocabulary (or a word's hashtags) changes the fingerprint zero-shot
models record, so the next `predict` builds a zero-shot model that can answer the new
word: no photos and no manual retrain needed. Supervised models keep their own classes.
"""
from __future__ import annotations

from hashtag_workbench.core.errors import InputError
from hashtag_workbench.core.vocabulary import check_word, parse_hashtags
from hashtag_workbench.jobs.common import ensure_ready
from hashtag_workbench.jobs.runner import JobResult
from hashtag_workbench.warehouse import words as wh

HELP = "list, add, rename, (de)activate words and set their hashtags"
DESCRIPTION = (
    "Edit the vocabulary (the words every zero-shot model answers over) with the "
    "same checks as the dashboard's Words page. Every edit is logged."
)


def hierarchy_notes(words: list[str], tags: dict[str, list[str]]) -> dict[str, str]:
    """Per word: whether zero-shot has WordNet hierarchy evidence for it (its sense and ImageNet classes beneath),
    or only its word vector."""
    from hashtag_workbench.core.hierarchy import word_senses
    from hashtag_workbench.core.kinds import default_zero_shot_config
    from hashtag_workbench.core.wordnet import load_wordnet
    from hashtag_workbench.core.wordvectors import cached_word_vectors
    wn = load_wordnet()
    senses = word_senses(wn, words, tags, cached_word_vectors(default_zero_shot_config().word_vectors))
    out = {}
    for s in senses:
        if s.has_hierarchy:
            n = len(s.classes)
            out[s.word] = f"hierarchy: {n} ImageNet class{'es' if n > 1 else ''} under {wn.names(s.chosen)[0]!r}"
        elif s.chosen is not None:
            out[s.word] = f"word vector only ({wn.names(s.chosen)[0]!r} has no ImageNet class beneath it)"
        else:
            out[s.word] = "word vector only (no WordNet noun sense)"
    return out


def _list(home, args) -> str:
    rows = wh.list_words(home, active_only=not args.all)
    tags = wh.hashtags_for(home)
    notes = hierarchy_notes([r["word"] for r in rows], tags)
    width = max((len(r["word"]) for r in rows), default=4) + 2
    lines = [f"{r['word']:<{width}}{'' if r['active'] else '(inactive) '}"
             + " ".join(f"#{t}" for t in tags.get(r["word"], [])[:8]) + f"  [{notes[r['word']]}]" for r in rows]
    active = sum(r["active"] for r in rows)
    with_h = sum(n.startswith("hierarchy") for n in notes.values())
    return "\n".join(lines + [f"{len(rows)} words listed, {active} active; {with_h} with WordNet hierarchy "
                                "evidence for zero-shot, the others on word vectors alone"])


def _add(home, args) -> str:
    word = check_word(args.word)
    tags = parse_hashtags(args.hashtags)
    wh.add_word(home, word, source="user", hashtags=tags or None)
    return (f"added the word {word!r} with hashtags {' '.join('#' + t for t in tags or [word])}; the next "
            "zero-shot prediction can answer it")


def _rename(home, args) -> str:
    old, new = check_word(args.old), check_word(args.new)
    wh.rename_word(home, old, new)
    return f"renamed {old!r} to {new!r} (its photos, hashtags and curation history follow it)"


def _activate(home, args) -> str:
    word = check_word(args.word)
    wh.set_active(home, word, args.action == "activate")
    return f"{args.action}d {word!r}"


def _hashtags(home, args) -> str:
    word = check_word(args.word)
    tags = parse_hashtags(" ".join(args.tags))
    if not tags:
        raise InputError("give at least one hashtag, e.g. `words hashtags castle castle,medieval,history`")
    wh.set_hashtags(home, word, tags, source="hand")
    return f"{word!r} now has the hand-made hashtags {' '.join('#' + t for t in tags)}"


ACTIONS = {"list": _list, "add": _add, "rename": _rename, "activate": _activate, "deactivate": _activate,
           "hashtags": _hashtags}


def run_command(args) -> JobResult:
    ensure_ready(args.home)
    return JobResult(text=ACTIONS[args.action](args.home, args))


def add_options(p) -> None:
    acts = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = acts.add_parser("list", help="the active words and their first hashtags")
    a.add_argument("--all", action="store_true", help="inactive words too")
    a = acts.add_parser("add", help="add a new word (zero-shot can answer it at once)")
    a.add_argument("word")
    a.add_argument("--hashtags", help="its hashtags, comma or space separated, '#' optional (default: the word)")
    a = acts.add_parser("rename", help="rename a word everywhere it is a label")
    a.add_argument("old")
    a.add_argument("new")
    for name, what in (("activate", "use the word again"), ("deactivate", "skip the word in scraping, "
                                                                           "training and zero-shot")):
        acts.add_parser(name, help=what).add_argument("word")
    a = acts.add_parser("hashtags", help="replace a word's hand-made hashtags")
    a.add_argument("word")
    a.add_argument("tags", nargs="+", help="hashtags, comma or space separated, '#' optional")
