"""On-disk activation caches (infra.arrays): whole or absent after a kill, one line on a full disk."""
from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys

import numpy as np
import pytest

from hashtag_workbench.infra.arrays import ArrayCacheError, NpyRows, NpyStore
from tests.conftest import ROOT


def test_rows_are_written_in_chunks_and_read_back_by_index(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((50, 2, 3, 5)).astype(np.float32)
    store = NpyStore(tmp_path / "cache", chunk_rows=16)
    rows = store.write("train", 50, (a[i:i + 7] for i in range(0, 50, 7)))
    assert rows.shape == a.shape and len(rows) == 50
    for idx in ([0], [3, 4, 5, 9], [49, 0, 1], [15, 16, 17, 33], np.arange(50)):
        np.testing.assert_array_equal(rows.take(idx), a[np.asarray(idx)])
    names = [f"train-{k:05d}.npy" for k in range(4)]
    np.testing.assert_array_equal(np.concatenate([np.load(tmp_path / "cache" / n) for n in names]), a)  # plain .npy
    with pytest.raises(ArrayCacheError, match="expected 60 rows, got 50"):
        store.write("short", 60, iter([a]))
    # the short array's whole chunks are kept (a re-run resumes from them), its last one never appears
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [f"short-{k:05d}.npy" for k in range(3)] + names
    store.clear()
    assert not (tmp_path / "cache").exists()


def test_a_new_store_on_the_folder_computes_only_the_missing_or_damaged_chunks(tmp_path):
    a = np.arange(50 * 3, dtype=np.float32).reshape(50, 3)
    NpyStore(tmp_path / "cache", chunk_rows=16).write("train", 50, iter([a]))
    (tmp_path / "cache" / "train-00003.npy").unlink()                         # never written
    damaged = tmp_path / "cache" / "train-00001.npy"
    damaged.write_bytes(damaged.read_bytes()[:-4])                            # cut short: must not be read
    (tmp_path / "cache" / ".tmp-999999999-0-train-00002.npy").write_bytes(b"half")   # a dead writer's temp file
    store = NpyStore(tmp_path / "cache", chunk_rows=16)
    todo = store.missing("train", 50)
    np.testing.assert_array_equal(todo, np.r_[16:32, 48:50])
    rows = store.write("train", 50, iter([a[todo]]))
    np.testing.assert_array_equal(rows.take(np.arange(50)), a)
    assert not list((tmp_path / "cache").glob(".tmp-*"))
    with pytest.raises(KeyboardInterrupt):
        try:
            raise KeyboardInterrupt   # Ctrl-C while the job uses the cache: the chunks stay for the re-run
        finally:
            store.clear()
    assert len(list((tmp_path / "cache").iterdir())) == 4
    store.clear()
    assert not (tmp_path / "cache").exists()


def test_a_file_that_does_not_match_its_header_is_refused(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((10, 4), np.float32))
    data = (tmp_path / "x.npy").read_bytes()
    (tmp_path / "x.npy").write_bytes(data[:-8])
    with pytest.raises(ArrayCacheError, match="header says"):
        NpyRows(tmp_path / "x.npy")


WRITER = """
import sys, time
import numpy as np
from pathlib import Path
from hashtag_workbench.infra.arrays import NpyStore
def chunks():
    for i in range(1000):
        if i == 3:   # chunks of 256 rows: the first is whole, the second half-written
            print("writing", flush=True)
            time.sleep(60)
        yield np.ones((100, 1024), np.float32)   # 1 MB chunk files
try:
    NpyStore(Path(sys.argv[1])).write("train", 100000, chunks())
except OSError as exc:
    print(f"error: {exc}", flush=True)
    sys.exit(1)
"""


def test_killed_writer_leaves_no_file_under_the_real_name(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "cache")], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    left = [p.name for p in (tmp_path / "cache").iterdir()]
    assert sorted(left)[1:] == [f"train-{k:05d}.npy" for k in range(1)]   # the one whole chunk, under its name
    assert sorted(left)[0].startswith(".tmp-") and len(left) == 2           # and the temp file of the next


def _limit_file_size():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit then fails with EFBIG, like ENOSPC
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))


def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path):
    """A real write failure (the file-size limit stands in for a full disk: the same failing write call)."""
    script = WRITER.replace("time.sleep(60)", "pass")
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "cache")], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, preexec_fn=_limit_file_size)
    lines = [ln for ln in proc.stdout.splitlines() if ln != "writing"]
    assert proc.returncode == 1 and len(lines) == 1, proc.stdout + proc.stderr
    assert lines[0].startswith("error: [Errno 27] cannot write the cache file") and "train-" in lines[0]
    assert not [n for n in os.listdir(tmp_path / "cache") if n.startswith(".tmp-")]   # whole chunks at most
