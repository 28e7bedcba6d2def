"""The one shape every job has: record the run, count outcomes, show progress, print a summary."""
from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from hashtag_workbench.core.errors import InputError
from hashtag_workbench.warehouse import runs
from hashtag_workbench.warehouse.check import sweep_dead_run_artifacts
from hashtag_workbench.warehouse.faults import crash_point
from hashtag_workbench.warehouse.progress import write_progress
from hashtag_workbench.warehouse.store import sweep_temp_files


class _Bar(tqdm):
    """A tqdm bar whose every item is a crash point, so the crash tests can kill any job
    that iterates through its progress bar after its n-th item. With `report` set it also
    hands n / total to it (at most every REPORT_EVERY seconds) for the dashboard's progress bar."""

    REPORT_EVERY = 0.5

    def __init__(self, *args, crash_label: str, report=None, **kwargs):
        self._crash_label = crash_label
        self._report = report
        self._reported = 0.0
        self._label, self._unit = kwargs.get("desc") or "", kwargs.get("unit") or "it"
        self._done = 0  # counted here: a bar without a terminal (a job started by the dashboard) keeps n at 0
        super().__init__(*args, **kwargs)
        self._tell(force=True)

    def __iter__(self):
        for item in super().__iter__():
            crash_point(self._crash_label)
            self._done += 1
            self._tell()
            yield item
        self._tell(force=True)

    def update(self, n=1):
        self._done += n
        out = super().update(n)
        self._tell()
        return out

    def close(self):
        self._tell(force=True)
        self._report = None  # closed: later calls (tqdm closes twice) report nothing
        super().close()

    def _tell(self, force: bool = False) -> None:
        now = time.monotonic()
        if getattr(self, "_report", None) is None or (not force and now - self._reported < self.REPORT_EVERY):
            return
        self._reported = now
        try:
            self._report(self._done, self.total, self._label, self._unit)
        except OSError:  # progress is a courtesy: a full disk must not stop the job
            self._report = None


class JobRun:
    """A recorded run: counts outcomes and keeps a short log stored with the run."""

    def __init__(self, home: Path, kind: str, config: dict):
        self.home = Path(home)
        self.kind = kind
        self.config = config
        self.counts: Counter = Counter()
        self.extra: dict = {}
        self.started = time.monotonic()
        self.run_id = runs.start_run(self.home, kind, config)
        # half-written files and unnamed artifacts of killed jobs are useless; clear them first
        swept = sweep_temp_files(self.home) + sweep_dead_run_artifacts(self.home)
        self._log: list[str] = []
        if swept:
            self.log(f"removed {len(swept)} half-written or orphaned file(s) left by killed jobs")

    def count(self, outcome: str, n: int = 1) -> None:
        self.counts[outcome] += n

    def log(self, message: str) -> None:
        """Note a message for the user now and keep it with the run."""
        tqdm.write(message, file=sys.stderr)
        self._log.append(message)

    def checkpoint(self) -> None:
        """Persist counts so far (so a killed run still shows its progress)."""
        runs.update_run(self.home, self.run_id, counts=self.all_counts())
        crash_point(f"{self.kind}:checkpoint")

    def crash_point(self, label: str) -> None:
        """A named place where crash-safety tests may kill this job (see warehouse.faults)."""
        crash_point(f"{self.kind}:{label}")

    def all_counts(self) -> dict:
        return {**self.counts, **self.extra}

    def progress(self, iterable=None, total: int | None = None, desc: str | None = None, unit: str = "img"):
        """A progress bar for the terminal that also tells the dashboard how far it got (n of total)."""
        return _Bar(iterable, total=total, desc=desc or self.kind, unit=unit, file=sys.stderr,
                    dynamic_ncols=True, disable=None, crash_label=f"{self.kind}:item", report=self._progress_file)

    def _progress_file(self, n: int, total: int | None, desc: str, unit: str) -> None:
        write_progress(self.home, self.run_id, n=n, total=total, desc=desc, unit=unit)

    def summary(self) -> str:
        elapsed = time.monotonic() - self.started
        done = self.counts.get("done", 0)
        rate = done / elapsed if elapsed > 0 else 0.0
        parts = [f"{k} {v}" for k, v in (("done", done), ("skipped", self.counts.get("skipped", 0)),
                                           ("failed", self.counts.get("failed", 0)))]
        others = [f"{k} {v}" for k, v in self.counts.items() if k not in ("done", "skipped", "failed")]
        return (f"{self.kind}: " + ", ".join(parts + others)
                + f" in {elapsed:.1f} s ({rate:.1f} items/s) [run {self.run_id}]")


@dataclass
class JobResult:
    """What every command's `run_command` hands the CLI, which shows it in one place (jobs/cli.show):
    `text` (the report for a person) on stdout, or with `--json` `data` as JSON on stdout (a list with
    `lines` set: one object per line); `summary` (one closing line) on stderr; `exit_code` the status
    (0 done, 1 the job failed or found problems)."""
    text: str = ""
    data: Any = None
    exit_code: int = 0
    summary: str = ""
    lines: bool = False


class JobError(InputError):
    """A job cannot go on because of its input or the warehouse's state (a user's matter, not a bug).

    The CLI prints it, like every InputError (bad options, unknown words, rejected files, unusable
    weights or models), as one line and exits with status 2; a run in progress ends 'failed' with
    the message as its error.
    """


class Terminated(KeyboardInterrupt):
    """SIGTERM asked the job to stop; handled like Ctrl-C, so the work done so far is kept."""


def _on_sigterm(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def job_run(home: Path, kind: str, config: dict) -> Iterator[JobRun]:
    """Record a run around a job body; its final status is ok, failed or interrupted.

    SIGTERM (a plain `kill`, a container stop) is turned into the Ctrl-C path while
    the job runs, so it ends 'interrupted' with its last batch saved, not 'running'.
    """
    run = JobRun(home, kind, config)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        try:
            yield run
        except KeyboardInterrupt as exc:
            why = ("stopped by a termination signal (SIGTERM)" if isinstance(exc, Terminated)
                   else "stopped by the user (Ctrl-C)")
            _save_log(run)
            runs.finish_run(run.home, run.run_id, "interrupted", run.all_counts(), why)
            print(run.summary() + " - interrupted", file=sys.stderr)
            raise
        except InputError as exc:  # the user's input: the message is the whole story
            _save_log(run)
            runs.finish_run(run.home, run.run_id, "failed", run.all_counts(), str(exc))
            raise
        except BaseException as exc:
            _save_log(run)
            runs.finish_run(run.home, run.run_id, "failed", run.all_counts(),
                            f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}")
            raise
        crash_point(f"{kind}:before-finish")
        _save_log(run)
        runs.finish_run(run.home, run.run_id, "ok", run.all_counts())
        print(run.summary(), file=sys.stderr)  # stdout stays for what a command prints (its --json, say)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _save_log(run: JobRun) -> None:
    if run._log:
        runs.update_run(run.home, run.run_id, log="\n".join(run._log) + "\n")
