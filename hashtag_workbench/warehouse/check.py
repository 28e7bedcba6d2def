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

from hashtag_workbench.infra.files import sha256_file
from hashtag_workbench.warehouse import runs
from hashtag_workbench.warehouse.db import connect
from hashtag_workbench.warehouse.images import LOST_PREFIX
from hashtag_workbench.warehouse.store import TMP_PREFIX, dead_temp_files, sha_from_name, store_files

LOST_FOUND = "lost+found"
MODELS_DIR = "models"                        # model and PCA artifacts, named in these tables
ARTIFACT_TABLES = {"pca_fits", "models"}


@dataclass
class Repair:
    """What fixing one finding takes; applied only by check_warehouse(repair=True)."""
    sql: list[tuple[str, list]] = field(default_factory=list)   # row updates, all in one transaction
    delete: list[str] = field(default_factory=list)             # store files to remove
    lost_found: list[str] = field(default_factory=list)         # files to set aside (never deleted)


@dataclass
class Finding:
    kind: str            # missing_file | orphan_file | temp_file | hash_mismatch | stale_run |
                         # duplicate_failed | duplicate_ok | orphan_artifact | missing_artifact |
                         # live_run | foreign_run (the last two are notes)
    detail: str
    problem: bool = True  # False for notes (a live run) that need no repair
    action: str | None = None
    run_id: int | None = None          # the run a run finding is about
    image_ids: list[int] = field(default_factory=list)
    path: str | None = None            # the file a file finding is about (relative to the data directory)
    repair: Repair | None = field(default=None, repr=False)

    def line(self) -> str:
        tag = self.kind.replace("_", " ")
        text = f"{tag}: {self.detail}"
        return text + (f" -> {self.action}" if self.action else "")

    def as_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if k != "repair"}


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
        artifacts = _named_artifacts(con)
    return dict(ok_rows=ok_rows, running=running, dup_failed=dup_failed, dup_ok=dup_ok, decided=decided,
                artifacts=artifacts)


def _named_artifacts(con) -> set[str]:
    """Every artifact path the model and PCA tables name (folders without their trailing slash)."""
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.columns "
                                        "WHERE column_name = 'artifact'").fetchall()}
    named: set[str] = set()
    for t in sorted(tables & ARTIFACT_TABLES):
        named |= {r[0].rstrip("/") for r in con.execute(f"SELECT artifact FROM {t} WHERE artifact IS NOT NULL")
                  .fetchall()}
    return named


def _is_named(rel: str, named: set[str]) -> bool:
    return rel in named or any(rel.startswith(a + "/") for a in named)


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
        named = _named_artifacts(con)
        dead = {r[0] for r in con.execute(
            "SELECT run_id FROM runs WHERE status IN ('interrupted', 'failed')").fetchall()}
    return [rel for rel in files if not _is_named(rel, named) and _artifact_run_id(rel) in dead]


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


@dataclass
class _Scan:
    """The warehouse and the store side by side, read once for every finding kind."""
    home: Path
    state: dict
    repair: bool
    on_disk: set[str]
    referenced: dict[str, list[tuple]]
    live: list[int]
    files_hashed: int = 0
    orphan_by_sha: dict[str, str] = field(default_factory=dict)   # SHA-256 -> orphan file holding those bytes
    adopted: set[str] = field(default_factory=set)                 # orphans re-attached to a row

    @property
    def frozen(self) -> bool:
        """While a job runs its newest files may not have their rows yet: files are left alone."""
        return bool(self.live)

    @property
    def frozen_note(self) -> str:
        return f"left alone while run {', '.join(map(str, self.live))} is running; check again when it ends"

    def sha_of(self, rel: str) -> str:
        self.files_hashed += 1
        return sha256_file(self.home / rel)


def run_findings(state: dict) -> list[Finding]:
    """Runs marked running: notes for live or foreign ones, stale_run for those whose process is gone."""
    notes, stale = [], []
    for run_id, kind, pid, host, started in state["running"]:
        alive = runs.run_is_live(pid, host, started)
        if alive is None:
            notes.append(Finding("foreign_run", f"run {run_id} ({kind}) is running on host {host}; "
                                 "cannot tell from here whether it is alive", problem=False, run_id=run_id))
        elif alive:
            notes.append(Finding("live_run", f"run {run_id} ({kind}) is running (pid {pid})", problem=False,
                                 run_id=run_id))
        else:
            stale.append(Finding("stale_run", f"run {run_id} ({kind}) is marked running but its process "
                                 f"(pid {pid}) is gone", run_id=run_id))
    return notes + stale


def _failed(reason: str, image_ids: list[int]) -> tuple[str, list]:
    return "UPDATE images SET status = 'failed', error = ? WHERE image_id IN (SELECT unnest(?))", [reason, image_ids]


def missing_file_findings(scan: _Scan) -> list[Finding]:
    """Stored rows whose file is gone; an orphan with exactly their bytes is re-attached."""
    out = []
    for image_id, sha, rel, word in scan.state["ok_rows"]:
        if rel is not None and rel in scan.on_disk:
            continue
        f = Finding("missing_file", f"image {image_id} ({word}) should be at {rel}", image_ids=[image_id], path=rel)
        if scan.repair:
            if sha in scan.orphan_by_sha and not scan.frozen:
                new_rel = scan.orphan_by_sha.pop(sha)
                scan.adopted.add(new_rel)
                f.repair = Repair(sql=[("UPDATE images SET path = ? WHERE image_id = ?", [new_rel, image_id])])
                f.action = f"re-attached to the same bytes found at {new_rel}"
            else:
                reason = f"{LOST_PREFIX}: {rel} was missing (found by check, {dt.date.today()})"
                f.repair = Repair(sql=[_failed(reason, [image_id])])
                f.action = "marked failed (the source can be imported or downloaded again)"
        out.append(f)
    return out


def hash_mismatch_findings(scan: _Scan, verify_hashes: bool) -> list[Finding]:
    """Stored files whose bytes no longer match their row's SHA-256."""
    out = []
    for rel, rows in scan.referenced.items() if verify_hashes else ():
        if rel is None or rel not in scan.on_disk:
            continue
        actual = scan.sha_of(rel)
        for image_id, sha, _rel, word in rows:
            if sha == actual:
                continue
            f = Finding("hash_mismatch", f"image {image_id} ({word}): {rel} holds bytes with SHA-256 "
                                         f"{actual[:12]}..., expected {sha[:12]}...", image_ids=[image_id], path=rel)
            if scan.repair:
                reason = (f"{LOST_PREFIX}: {rel} was damaged, its bytes no longer match (found by check, "
                          f"{dt.date.today()})")
                f.repair = Repair(sql=[_failed(reason, [image_id])], lost_found=[] if scan.frozen else [rel])
                f.action = "marked failed" + ("" if scan.frozen else "; damaged file moved to lost+found/")
            out.append(f)
    return out


def temp_file_findings(scan: _Scan) -> list[Finding]:
    """Half-written `.tmp-` files; while a job runs, only those whose writer is gone count."""
    dead_temps = set(dead_temp_files(scan.home))
    out = []
    for rel in sorted(p for p in scan.on_disk if Path(p).name.startswith(TMP_PREFIX)):
        dead = rel in dead_temps or not scan.frozen   # a temp file whose writer is alive is work in progress
        f = Finding("temp_file", f"{rel} is a half-written file left by a killed write" if dead else
                    f"{rel} is being written by a running process", problem=dead, path=rel)
        if scan.repair:
            f.action = "deleted" if dead else scan.frozen_note
            f.repair = Repair(delete=[rel] if dead else [])
        out.append(f)
    return out


def _orphans(scan: _Scan) -> list[str]:
    return sorted(p for p in scan.on_disk if p not in scan.referenced and not Path(p).name.startswith(TMP_PREFIX))


def _index_orphans(scan: _Scan, verify_hashes: bool) -> None:
    """Which orphan holds which bytes (hashed when verifying, else as its name claims)."""
    for rel in _orphans(scan):
        claimed = sha_from_name(rel)
        if claimed and (not verify_hashes or scan.sha_of(rel) == claimed):
            scan.orphan_by_sha[claimed] = rel


def orphan_file_findings(scan: _Scan) -> list[Finding]:
    """Store files no stored row points at (after re-attaching those that a missing row needed)."""
    out = []
    for rel in _orphans(scan):
        f = Finding("orphan_file", f"{rel} is in the image store but no stored image row points at it",
                    problem=not scan.frozen or rel in scan.adopted, path=rel)
        if scan.repair:
            if rel in scan.adopted:
                f.action = "re-attached to its row (see missing file)"
            elif scan.frozen:
                f.action = scan.frozen_note
            else:
                f.action = f"moved to {LOST_FOUND}/ (import it again if you want it)"
                f.repair = Repair(lost_found=[rel])
        out.append(f)
    return out


def duplicate_failed_findings(scan: _Scan) -> list[Finding]:
    """Several failed rows for one source: the newest is kept."""
    out = []
    for origin, src, word, ids in scan.state["dup_failed"]:
        f = Finding("duplicate_failed", f"{len(ids)} failed rows for the same {origin} source {src} ({word}): "
                                        f"images {', '.join(map(str, ids))}", image_ids=list(ids))
        if scan.repair:
            f.repair = Repair(sql=[("DELETE FROM images WHERE status = 'failed' AND image_id IN (SELECT unnest(?))",
                                    [ids[:-1]])])
            f.action = f"kept the newest (image {ids[-1]}), deleted the rest"
        out.append(f)
    return out


def duplicate_ok_findings(scan: _Scan) -> list[Finding]:
    """Stored rows sharing one SHA-256: the first is kept, uncurated copies are set aside."""
    out = []
    for sha, ids in scan.state["dup_ok"]:
        keeper, extras = ids[0], ids[1:]
        f = Finding("duplicate_ok", f"images {', '.join(map(str, ids))} are the same photo (SHA-256 {sha[:12]}...)",
                    image_ids=list(ids))
        if scan.repair:
            curated = [i for i in extras if i in scan.state["decided"]]
            if curated:
                f.action = (f"not repaired: image(s) {', '.join(map(str, curated))} carry curation decisions; "
                            f"review them and reject the copies by hand")
            else:
                f.repair = Repair(sql=[_failed(f"duplicate of image {keeper} (same SHA-256), set aside by check",
                                               extras)])
                f.action = f"kept image {keeper}; marked {', '.join(map(str, extras))} failed as duplicates"
        out.append(f)
    return out


def artifact_findings(scan: _Scan) -> list[Finding]:
    """Model / PCA artifacts recorded but gone, and files (or files inside artifact folders) no row names."""
    named = scan.state["artifacts"]
    out = [Finding("missing_artifact", f"{a} is recorded but not on disk; run the job that made it again", path=a)
           for a in sorted(named) if not (scan.home / a).exists()]
    for rel in _artifact_files(scan.home):
        if _is_named(rel, named):
            continue
        # while a job runs its artifact is saved just before its row is written
        f = Finding("orphan_artifact", f"{rel} is not named by any stored model or PCA fit "
                                        "(left by a killed job?)", problem=not scan.frozen, path=rel)
        if scan.repair:
            f.action = scan.frozen_note if scan.frozen else f"moved to {LOST_FOUND}/"
            f.repair = Repair(lost_found=[] if scan.frozen else [rel])
        out.append(f)
    return out


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
    state = _read_state(home)
    findings = run_findings(state)
    referenced: dict[str, list[tuple]] = {}
    for row in state["ok_rows"]:
        referenced.setdefault(row[2], []).append(row)
    scan = _Scan(home, state, repair, set(store_files(home)), referenced,
                 live=[f.run_id for f in findings if f.kind == "live_run"])
    mismatched = hash_mismatch_findings(scan, verify_hashes)
    _index_orphans(scan, verify_hashes)
    findings += missing_file_findings(scan)   # before orphans: it decides which orphans are re-attached
    findings += mismatched + temp_file_findings(scan) + orphan_file_findings(scan)
    findings += duplicate_failed_findings(scan) + duplicate_ok_findings(scan) + artifact_findings(scan)
    report = Report(findings, scan.files_hashed)
    if repair:
        _apply(home, findings)
    return report


def _apply(home: Path, findings: list[Finding]) -> None:
    """Carry out the planned repairs: stale runs, row updates in one transaction, then files."""
    stale = [f for f in findings if f.kind == "stale_run"]
    if stale:
        marked = runs.mark_stale_runs(home)
        for f in stale:
            f.action = "marked interrupted" if f.run_id in marked else "already finished meanwhile"
    plans = [f.repair for f in findings if f.repair is not None]
    sql = [stmt for r in plans for stmt in r.sql]
    if sql:
        with connect(home) as con:
            for statement, params in sql:
                con.execute(statement, params)
    for r in plans:
        for rel in r.delete:
            (home / rel).unlink(missing_ok=True)
        for rel in r.lost_found:
            _to_lost_found(home, rel)


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
