"""`stats`: per-word counts of stored and failed images."""
from __future__ import annotations

from hashtag_workbench.jobs.common import ensure_ready
from hashtag_workbench.jobs.runner import JobResult, job_run
from hashtag_workbench.warehouse.images import word_counts

HELP = "per-word counts of stored and failed images"
DESCRIPTION = "Print per-word counts of stored and failed images."


def format_counts(rows: list[dict], *, only_nonempty: bool = True) -> str:
    shown = [r for r in rows if r["stored"] or r["failed"] or not only_nonempty]
    if not shown:
        return "no images yet: run `hashtags demo` or `hashtags import-folder PATH`"
    width = max(len(r["word"]) for r in shown)
    lines = [f"{'word':<{width}}  stored  failed"]
    lines += [f"{r['word']:<{width}}  {r['stored']:>6}  {r['failed']:>6}" for r in shown]
    lines.append(f"{'total':<{width}}  {sum(r['stored'] for r in shown):>6}  {sum(r['failed'] for r in shown):>6}")
    return "\n".join(lines)


def run_command(args) -> JobResult:
    ensure_ready(args.home)
    with job_run(args.home, "stats", {"json": args.json, "all": args.all}) as run:  # shown in the run history
        rows = word_counts(args.home)
        run.count("done", sum(1 for r in rows if r["stored"] or r["failed"]))  # words counted
        run.count("stored", sum(r["stored"] for r in rows))
        run.count("failed_images", sum(r["failed"] for r in rows))
    return JobResult(text=format_counts(rows, only_nonempty=not args.all),
                     data={r["word"]: {"stored": r["stored"], "failed": r["failed"]} for r in rows
                           if args.all or r["stored"] or r["failed"]})


def add_options(p) -> None:
    p.add_argument("--json", action="store_true", help="print JSON: {word: {stored, failed}}")
    p.add_argument("--all", action="store_true", help="include words with no images")
