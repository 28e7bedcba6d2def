"""`export`: the curated images, a CSV of labels/decisions/provenance, and features as Parquet, into a folder."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hashtag_workbench.core.config import option
from hashtag_workbench.jobs.common import ensure_ready
from hashtag_workbench.jobs.runner import JobResult, job_run
from hashtag_workbench.warehouse import export as wx

HELP = "export kept images (folder per word), a CSV and features as Parquet"
DESCRIPTION = (
    "Write the curated data set to a folder: kept images in one folder per word "
    "(hard links into the image store where possible, copies otherwise), "
    "images.csv with labels, decisions and provenance, and features.parquet / "
    "projections.parquet. Re-running into the same folder updates it safely."
)


@dataclass(frozen=True)
class ExportConfig:
    words: tuple[str, ...] = option((), "only these words (current labels), comma-separated (default: all)",
                                    metavar="A,B")
    include_rejected: bool = option(False, "also export rejected images (under rejected/<word>/, and in the CSV)")


CONFIGS = (ExportConfig,)


def export(home: Path, dest: Path, *, words: list[str] | None = None, include_rejected: bool = False) -> dict:
    """Export into `dest` (safe to re-run into the same folder); returns the run's counts."""
    dest = Path(dest).expanduser().resolve()
    ensure_ready(home)
    unknown = wx.unknown_words(home, words or [])
    if unknown:
        raise wx.ExportError(f"unknown word(s): {', '.join(unknown)} (see `hashtags stats --all`)")
    previous = wx.check_destination(dest)
    config = {"to": str(dest), "words": words, "include_rejected": include_rejected}
    with job_run(home, "export", config) as run:
        rows = wx.export_rows(home, words=words, include_rejected=include_rejected)
        dest.mkdir(parents=True, exist_ok=True)
        placed = wx.place_images(home, dest, rows, previous=previous,
                                 progress=lambda it: run.progress(it, total=len(rows), desc="export"))
        files = placed.pop("files")
        wx.write_csv(dest, rows)
        vectors = wx.write_vectors(home, dest, [r["image_id"] for r in rows])
        wx.write_manifest(dest, {"run_id": run.run_id, "config": config, "images": len(rows), "files": files})
        run.count("done", len(files))
        run.count("skipped", placed["unchanged"])
        run.count("failed", placed["missing"])
        run.extra.update({"rows": len(rows), "linked": placed["linked"], "copied": placed["copied"],
                          "removed": placed["removed"], "features": vectors["features"],
                          "projections": vectors["projections"]})
        if placed["missing"]:
            run.log(f"{placed['missing']} stored file(s) missing: run `hashtags check`")
        run.log(f"wrote {dest}/images.csv, features.parquet and projections.parquet")
        return run.all_counts()


def run_command(args) -> JobResult:
    return JobResult(data=export(args.home, Path(args.to), words=list(args.words) or None,
                                 include_rejected=args.include_rejected))


def add_options(p) -> None:
    p.add_argument("--to", required=True, metavar="DIR", help="folder to write (new, empty, or an earlier export)")

