"""`import-folder`: import a folder-per-word tree of photos into the image store."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hashtag_workbench.core.config import option
from hashtag_workbench.core.images import DEFAULT_MIN_SIDE, MAX_BYTES, ImageRejected, check_image
from hashtag_workbench.core.vocabulary import check_word
from hashtag_workbench.jobs.common import ensure_ready
from hashtag_workbench.jobs.runner import JobResult, job_run
from hashtag_workbench.warehouse import images as wh_images
from hashtag_workbench.warehouse import words as wh_words
from hashtag_workbench.warehouse.store import image_relpath, put_image

HELP = "import photos from a folder with one sub-folder per word"
DESCRIPTION = (
    "Import photos laid out as PATH/<word>/<files>. Unknown word folders are "
    "reported (add them with --add-words); bad files are recorded as failed "
    "with a reason; files imported before are skipped."
)

# Rows written per transaction: the first batch, then twice the last up to MAX_BATCH. Each batch opens the
# warehouse twice (its rows, then the run's counts), which was most of the import's CPU at 32 a batch on
# thousands of photos; a kill loses no more (the re-run adds the rows of files already in the store).
BATCH = 32
MAX_BATCH = 512


@dataclass(frozen=True)
class ImportConfig:
    add_words: bool = option(False, "add folder names that are not known words")
    min_side: int = option(DEFAULT_MIN_SIDE, "smallest accepted short side in pixels")


CONFIGS = (ImportConfig,)


def scan_folder(root: Path) -> tuple[dict[str, list[Path]], list[Path]]:
    """word folder -> its files (recursively, sorted), and files lying outside any word folder."""
    by_word: dict[str, list[Path]] = {}
    loose: list[Path] = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            files = sorted(p for p in entry.rglob("*") if p.is_file() and not p.name.startswith("."))
            by_word.setdefault(entry.name, []).extend(files)
        elif entry.is_file():
            loose.append(entry)
    return by_word, loose


def import_folder(home: Path, root: Path, *, add_words: bool = False, min_side: int = DEFAULT_MIN_SIDE,
                  origin: str = "import") -> dict:
    """Import every image under `root`/<word>/; returns the run's counts and notes."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder. Give a folder holding one sub-folder per word.")
    ensure_ready(home)
    config = {"path": str(root), "add_words": add_words, "min_side": min_side}
    with job_run(home, "import-folder", config) as run:
        by_folder, loose = scan_folder(root)
        known = {w["word"] for w in wh_words.list_words(home)}
        todo: list[tuple[str, Path]] = []
        unknown: dict[str, int] = {}
        for folder, files in by_folder.items():
            try:
                word = check_word(folder)
            except ValueError as exc:
                run.log(f"skipped folder {folder!r}: {exc}")
                run.count("skipped", len(files))
                continue
            if word not in known:
                if add_words:
                    wh_words.add_word(home, word, source="import")
                    run.log(f"added new word {word!r} from folder {folder!r}")
                    known.add(word)
                else:
                    unknown[folder] = len(files)
                    run.count("skipped", len(files))
                    continue
            todo.extend((word, f) for f in files)
        for path in loose:
            run.log(f"skipped {path.name}: not inside a word folder")
            run.count("skipped")
        for folder, n in unknown.items():
            run.log(f"unknown word folder {folder!r} ({n} files) not imported; "
                    "rerun with --add-words to add it to the vocabulary")
        run.extra["unknown_words"] = sorted(unknown)

        seen = wh_images.seen_source_paths(home)
        stored = wh_images.stored_shas(home)
        batch: list[dict] = []

        def flush():
            # a row joins `batch` before its file is stored, so a signal can land between the two;
            # only the newest row can lack its file, and it is dropped then (the re-run imports it)
            if batch and batch[-1]["status"] == "ok" and not (home / batch[-1]["path"]).is_file():
                batch.pop()
            if batch:
                wh_images.add_image_rows(home, batch)
                batch.clear()
                run.crash_point("flushed")
                run.checkpoint()

        try:
            _import_files(home, run, todo, seen, stored, batch, flush, origin=origin, min_side=min_side)
        finally:
            flush()  # on Ctrl-C / SIGTERM too: stored files get their rows, nothing is left orphaned
        return {"run_id": run.run_id, **run.all_counts()}


def _import_files(home: Path, run, todo, seen: set, stored: set, batch: list, flush, *, origin: str,
                  min_side: int) -> None:
    """Check and store each file, adding its row to `batch` (written by `flush`)."""
    limit = BATCH
    for word, path in run.progress(todo, desc="import"):
        src = str(path.resolve())
        if src in seen:
            run.count("skipped")
            continue
        row = {"word": word, "origin": origin, "source_path": src, "run_id": run.run_id}
        try:
            size = path.stat().st_size
            if size > MAX_BYTES:
                raise ImageRejected(f"file too large ({size / 1e6:.1f} MB > {MAX_BYTES / 1e6:.0f} MB)")
            data = path.read_bytes()
            info = check_image(data, min_side=min_side)
        except (ImageRejected, OSError) as exc:
            reason = str(exc) if isinstance(exc, ImageRejected) else f"cannot read file ({exc.strerror or exc})"
            batch.append({**row, "status": "failed", "error": reason})
            run.count("failed")
            run.log(f"failed {path}: {reason}")
        else:
            seen.add(src)
            if info.sha256 in stored:
                run.count("duplicate")
                run.count("skipped")
                continue
            batch.append({**row, "sha256": info.sha256, "path": image_relpath(info.sha256, info.ext),
                          "width": info.width, "height": info.height, "status": "ok"})
            put_image(home, info.sha256, info.ext, data)
            # killed here (kill -9), the file is in the store without its row: the re-run finds
            # the same bytes, keeps the file and adds the row (and `check` reports it meanwhile)
            run.crash_point("stored")
            stored.add(info.sha256)
            run.count("done")
        if len(batch) >= limit:
            flush()
            limit = min(2 * limit, MAX_BATCH)


def run_command(args) -> JobResult:
    return JobResult(data=import_folder(args.home, Path(args.path), add_words=args.add_words, min_side=args.min_side))


def add_options(p) -> None:
    p.add_argument("path", help="folder holding one sub-folder per word")

