"""`check`: verify the warehouse against the image store; `--repair` fixes what is safe."""
from __future__ import annotations

from pathlib import Path

from hashtag_workbench.jobs.runner import JobResult
from hashtag_workbench.warehouse import runs
from hashtag_workbench.warehouse.check import Report, check_warehouse

HELP = "verify the warehouse against the image store (and --repair it)"
DESCRIPTION = (
    "Find stored images whose file is missing or damaged, files nobody points at "
    "(including half-written ones from killed jobs), runs left 'running' by dead "
    "processes, repeated failed rows and photos stored twice. Exits 1 while "
    "problems remain."
)


def run_check(home: Path, *, repair: bool = False, verify_hashes: bool = True) -> JobResult:
    """Each finding (and repair) as the report and as data; exit code 0 when no problem remains, else 1."""
    found = check_warehouse(home, repair=repair, verify_hashes=verify_hashes)
    remaining = check_warehouse(home, verify_hashes=verify_hashes) if repair else found
    if repair and found.actions:
        # the repairs are changes to the warehouse: record them as a run like any job's work
        rid = runs.start_run(home, "check", {"repair": True, "verify_hashes": verify_hashes})
        runs.update_run(home, rid, log="\n".join(f.line() for f in found.actions) + "\n")
        runs.finish_run(home, rid, "ok", {"found": len(found.problems), "repaired": len(found.actions),
                                          "remaining": len(remaining.problems)})
    data = {"found": [f.as_dict() for f in found.findings], "remaining": [f.as_dict() for f in remaining.problems],
            "files_hashed": found.files_hashed}
    hint = "" if repair or not found.problems else "check: `hashtags check --repair` fixes what can be fixed safely"
    return JobResult(text=_report(found, remaining, repair), data=data, summary=hint,
                     exit_code=1 if remaining.problems else 0)


def _report(found: Report, remaining: Report, repair: bool) -> str:
    lines = [("  " if f.problem else "  note: ") + f.line() for f in found.findings]
    problems = found.problems
    if not problems:
        return "\n".join(lines + [f"check: no problems ({found.files_hashed} files hashed)"])
    by_kind = ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in sorted(found.counts().items()))
    lines.append(f"check: {len(problems)} problem(s) found: {by_kind}")
    if repair:
        lines.append(f"check: {len(found.actions)} repair action(s); {len(remaining.problems)} problem(s) remain")
        lines += ["  still: " + f.line() for f in remaining.problems]
    return "\n".join(lines)


def run_command(args) -> JobResult:
    return run_check(args.home, repair=args.repair, verify_hashes=not args.quick)


def add_options(p) -> None:
    p.add_argument("--repair", action="store_true",
                   help="fix what is safe (mark stale runs interrupted, re-attach or set aside stray files, "
                        "mark rows with lost files failed, drop repeated failed rows) and report each action")
    p.add_argument("--quick", action="store_true", help="skip hashing every stored file")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
