"""Consistency check of the warehouse against the image store, with safe repairs.

Finds: stored rows whose file is missing, files in the store no row points at
(including `.tmp-` leftovers of killed writes), files whose bytes no longer match
their SHA-256, runs left 'running' by dead processes, failed rows recorded twice
for the same source, stored rows sharing one SHA-256, and model / PCA artifacts
that no row names (or rows whose artifact is gone).
"""
from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from warehouse import runs
from warehouse.db import connect
from warehouse.images import LOST_PREFIX
from warehouse.store import TMP_PREFIX, dead_temp_files, sha256_file, sha_from_name, store_files

LOST_FOUND = "lost+found"
MODELS_DIR = "models"                        # model and PCA artifacts, named in these tables
ARTIFACT_TABLES = {"pca_fits", "models"}


@dataclass
class Finding:
    kind: str            # missing_file | orphan_file | temp_file | hash_mismatch | stale_run |
                         # duplicate_failed | duplicate_ok | orphan_artifact | missing_artifact |
                         # live_run | foreign_run (the last two are notes)
    detail: str
    problem: bool = True  # False for notes (a live run) that need no repair
    action: str | None = None

    def line(self) -> str:
        tag = self.kind.replace("_", " ")
        text = f"{tag}: {self.detail}"
        return text + (f" -> {self.action}" if self.action else "")


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    files_hashed: int = 0

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.problem]

    @property
    def actions(self) -> list[Finding]:
        return [f for f in self.findings if f.action]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.problems:
            out[f.kind] = out.get(f.kind, 0) + 1
        return out


def _read_state(home: Path) -> dict:
    with connect(home, read_only=True) as con:
        ok_rows = con.execute("""SELECT image_id, sha256, path, word FROM images
                                 WHERE status = 'ok' ORDER BY image_id""").fetchall()
        running = con.execute("""SELECT run_id, kind, pid, host, proc_start FROM runs
                                 WHERE status = 'running' ORDER BY run_id""").fetchall()
        dup_failed = con.execute("""
            SELECT origin, coalesce(source_path, source_url) AS src, word,
                   list(image_id ORDER BY image_id) AS ids
            FROM images WHERE status = 'failed' AND coalesce(source_path, source_url) IS NOT NULL
            GROUP BY ALL HAVING count(*) > 1 ORDER BY src""").fetchall()
        dup_ok = con.execute("""
            SELECT sha256, list(image_id ORDER BY image_id) AS ids FROM images
            WHERE status = 'ok' AND sha256 IS NOT NULL GROUP BY sha256 HAVING count(*) > 1""").fetchall()
        decided = {r[0] for r in con.execute("SELECT DISTINCT image_id FROM curation_log").fetchall()}
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.columns "
                                            "WHERE column_name = 'artifact'").fetchall()}
        artifacts = set()
        for t in sorted(tables & ARTIFACT_TABLES):
            artifacts |= {r[0] for r in con.execute(f"SELECT artifact FROM {t} WHERE artifact IS NOT NULL").fetchall()}
    return dict(ok_rows=ok_rows, running=running, dup_failed=dup_failed, dup_ok=dup_ok, decided=decided,
                artifacts=artifacts)


def _artifact_run_id(rel: str) -> int | None:
    """The run an artifact path is named after: models/<run>/..., models/pca/<run>.npz."""
    for part in Path(rel).parts[1:]:
        head = part.split(".", 1)[0]
        if head.isdigit():
            return int(head)
    return None


def dead_run_artifacts(home: Path | str) -> list[str]:
    """Artifact files of runs that ended interrupted or failed and that no table names.

    A job saves its artifact just before writing the row naming it; killed in
    between, the file can never be found again, so it is garbage.
    """
    home = Path(home)
    files = _artifact_files(home)
    if not files:
        return []
    with connect(home, read_only=True) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.columns "
                                            "WHERE column_name = 'artifact'").fetchall()}
        named = set()
        for t in sorted(tables & ARTIFACT_TABLES):
            named |= {r[0].rstrip("/") for r in con.execute(
                f"SELECT artifact FROM {t} WHERE artifact IS NOT NULL").fetchall()}
        dead = {r[0] for r in con.execute(
            "SELECT run_id FROM runs WHERE status IN ('interrupted', 'failed')").fetchall()}
    out = []
    for rel in files:
        if rel in named or any(rel.startswith(a + "/") for a in named):
            continue
        if _artifact_run_id(rel) in dead:
            out.append(rel)
    return out


def sweep_dead_run_artifacts(home: Path | str) -> list[str]:
    """Delete the artifacts of dead runs that nothing names (see dead_run_artifacts)."""
    home = Path(home)
    removed = []
    for rel in dead_run_artifacts(home):
        try:
            (home / rel).unlink()
            removed.append(rel)
        except FileNotFoundError:
            pass
        parent = (home / rel).parent
        while parent != home / MODELS_DIR and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    return removed


def _artifact_files(home: Path) -> list[str]:
    root = home / MODELS_DIR
    if not root.is_dir():
        return []
    return sorted(str(p.relative_to(home)) for p in root.rglob("*") if p.is_file())


def check_warehouse(home: Path | str, *, repair: bool = False, verify_hashes: bool = True) -> Report:
    """Compare the warehouse with the image store; with `repair`, fix what is safe and say so.

    Safe repairs: stale runs marked interrupted; temp files deleted; an orphan file
    re-attached to a row whose file is missing, else moved to lost+found/ (never
    deleted: it may be the only copy); rows with a missing or damaged file marked
    failed with the reason; repeated failed rows for one source reduced to the newest;
    a second stored row for the same bytes marked failed when nobody has curated it.
    Files are not touched while a job is running, since its newest files may not have
    their rows yet.
    """
    home = Path(home)
    report = Report()
    state = _read_state(home)

    # runs
    live = []
    stale = []
    for run_id, kind, pid, host, started in state["running"]:
        alive = runs.run_is_live(pid, host, started)
        if alive is None:
            report.findings.append(Finding("foreign_run", f"run {run_id} ({kind}) is running on host {host}; "
                                           "cannot tell from here whether it is alive", problem=False))
        elif alive:
            live.append(run_id)
            report.findings.append(Finding("live_run", f"run {run_id} ({kind}) is running (pid {pid})",
                                           problem=False))
        else:
            stale.append(Finding("stale_run", f"run {run_id} ({kind}) is marked running but its process "
                                 f"(pid {pid}) is gone"))
    report.findings += stale

    # files against rows
    on_disk = store_files(home)
    disk_set = set(on_disk)
    referenced: dict[str, list[tuple]] = {}
    for row in state["ok_rows"]:
        referenced.setdefault(row[2], []).append(row)
    missing = [r for r in state["ok_rows"] if r[2] is None or r[2] not in disk_set]
    temps = [p for p in on_disk if Path(p).name.startswith(TMP_PREFIX)]
    dead_temps = set(dead_temp_files(home))
    orphans = [p for p in on_disk if p not in referenced and not Path(p).name.startswith(TMP_PREFIX)]
    mismatched = []
    if verify_hashes:
        for rel, rows in referenced.items():
            if rel is None or rel not in disk_set:
                continue
            actual = sha256_file(home / rel)
            report.files_hashed += 1
            for row in rows:
                if row[1] != actual:
                    mismatched.append((row, actual))

    # an orphan whose bytes are exactly what a row with a missing file needs: re-attach it
    orphan_sha: dict[str, str] = {}
    for rel in orphans:
        claimed = sha_from_name(rel)
        if claimed and verify_hashes:
            actual = sha256_file(home / rel)
            report.files_hashed += 1
            if actual == claimed:
                orphan_sha[rel] = actual
        elif claimed:
            orphan_sha[rel] = claimed
    by_sha = {sha: rel for rel, sha in orphan_sha.items()}

    files_frozen = bool(live)
    frozen_note = f"left alone while run {', '.join(map(str, live))} is running; check again when it ends"

    row_updates: list[tuple[str, list]] = []
    adopted: set[str] = set()
    for image_id, sha, rel, word in missing:
        f = Finding("missing_file", f"image {image_id} ({word}) should be at {rel}")
        if repair:
            if sha in by_sha and not files_frozen:
                new_rel = by_sha.pop(sha)
                adopted.add(new_rel)
                row_updates.append(("UPDATE images SET path = ? WHERE image_id = ?", [new_rel, image_id]))
                f.action = f"re-attached to the same bytes found at {new_rel}"
            else:
                reason = f"{LOST_PREFIX}: {rel} was missing (found by check, {dt.date.today()})"
                row_updates.append(("UPDATE images SET status = 'failed', error = ? WHERE image_id = ?",
                                    [reason, image_id]))
                f.action = "marked failed (the source can be imported or downloaded again)"
        report.findings.append(f)

    damaged_files: set[str] = set()
    for (image_id, sha, rel, word), actual in mismatched:
        f = Finding("hash_mismatch", f"image {image_id} ({word}): {rel} holds bytes with SHA-256 "
                                     f"{actual[:12]}..., expected {sha[:12]}...")
        if repair:
            reason = f"{LOST_PREFIX}: {rel} was damaged, its bytes no longer match (found by check, {dt.date.today()})"
            row_updates.append(("UPDATE images SET status = 'failed', error = ? WHERE image_id = ?",
                                [reason, image_id]))
            damaged_files.add(rel)
            f.action = "marked failed" + ("" if files_frozen else "; damaged file moved to lost+found/")
        report.findings.append(f)

    # while a job runs, stray files may be its newest ones, rows still to come: notes, not problems
    for rel in temps:
        # a temp file whose writer is alive is work in progress, not damage
        dead = rel in dead_temps or not files_frozen
        f = Finding("temp_file", f"{rel} is a half-written file left by a killed write" if dead else
                    f"{rel} is being written by a running process", problem=dead)
        if repair:
            f.action = "deleted" if dead else frozen_note
        report.findings.append(f)

    for rel in orphans:
        f = Finding("orphan_file", f"{rel} is in the image store but no stored image row points at it",
                    problem=not files_frozen or rel in adopted)
        if repair:
            if rel in adopted:
                f.action = "re-attached to its row (see missing file)"
            elif files_frozen:
                f.action = frozen_note
            else:
                f.action = f"moved to {LOST_FOUND}/ (import it again if you want it)"
        report.findings.append(f)

    for origin, src, word, ids in state["dup_failed"]:
        f = Finding("duplicate_failed", f"{len(ids)} failed rows for the same {origin} source {src} ({word}): "
                                        f"images {', '.join(map(str, ids))}")
        if repair:
            row_updates.append(("DELETE FROM images WHERE status = 'failed' AND image_id IN (SELECT unnest(?))",
                                [ids[:-1]]))
            f.action = f"kept the newest (image {ids[-1]}), deleted the rest"
        report.findings.append(f)

    for sha, ids in state["dup_ok"]:
        keeper, extras = ids[0], ids[1:]
        f = Finding("duplicate_ok", f"images {', '.join(map(str, ids))} are the same photo (SHA-256 {sha[:12]}...)")
        if repair:
            curated = [i for i in extras if i in state["decided"]]
            if curated:
                f.action = (f"not repaired: image(s) {', '.join(map(str, curated))} carry curation decisions; "
                            f"review them and reject the copies by hand")
            else:
                reason = f"duplicate of image {keeper} (same SHA-256), set aside by check"
                row_updates.append(("UPDATE images SET status = 'failed', error = ? "
                                    "WHERE image_id IN (SELECT unnest(?))", [reason, extras]))
                f.action = f"kept image {keeper}; marked {', '.join(map(str, extras))} failed as duplicates"
        report.findings.append(f)

    # model / PCA artifacts: a file (or a file inside an artifact folder) no row names is an orphan
    named = {a.rstrip("/") for a in state["artifacts"]}
    art_files = _artifact_files(home)
    orphan_arts = [rel for rel in art_files
                   if rel not in named and not any(rel.startswith(a + "/") for a in named)]
    for a in sorted(named):
        if not (home / a).exists():
            report.findings.append(Finding("missing_artifact", f"{a} is recorded but not on disk; run the job "
                                                                "that made it again"))
    for rel in orphan_arts:
        # while a job runs its artifact is saved just before its row is written
        f = Finding("orphan_artifact", f"{rel} is not named by any stored model or PCA fit "
                                        "(left by a killed job?)", problem=not files_frozen)
        if repair:
            f.action = frozen_note if files_frozen else f"moved to {LOST_FOUND}/"
        report.findings.append(f)

    if not repair:
        return report

    if stale:
        marked = runs.mark_stale_runs(home)
        for f in stale:
            run_id = int(f.detail.split()[1])
            f.action = "marked interrupted" if run_id in marked else "already finished meanwhile"
    if row_updates:
        with connect(home) as con:
            for sql, params in row_updates:
                con.execute(sql, params)
    for rel in temps:
        if rel in dead_temps or not files_frozen:
            (home / rel).unlink(missing_ok=True)
    if not files_frozen:
        for rel in orphans:
            if rel not in adopted:
                _to_lost_found(home, rel)
        for rel in damaged_files:
            _to_lost_found(home, rel)
        for rel in orphan_arts:
            _to_lost_found(home, rel)
    return report


def _to_lost_found(home: Path, rel: str) -> None:
    src = home / rel
    if not src.exists():
        return
    top = Path(rel).parts[0]  # images/ab/x.jpg -> lost+found/ab/x.jpg; models/... keeps "models/"
    dest = home / LOST_FOUND / (Path(rel).relative_to(top) if top == "images" else Path(rel))
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():  # the same name is there already: keep both
        dest = dest.with_name(f"{dest.stem}-{dt.datetime.now():%Y%m%d%H%M%S%f}{dest.suffix}")
    shutil.move(str(src), str(dest))
