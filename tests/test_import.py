"""import-folder: edge cases, unknown words, dedupe, re-runs, and the CLI around it."""
import json
import subprocess
import sys

import pytest

from hashtag_workbench.core.images import ImageRejected, check_image
from hashtag_workbench.jobs.cli import main
from hashtag_workbench.jobs.import_folder import import_folder
from hashtag_workbench.warehouse import images, runs, words
from hashtag_workbench.warehouse.db import connect
from tests.conftest import CLI, ROOT
from tests.imagefiles import bomb_png_bytes, good_photo_bytes, tiny_png_bytes, truncated_jpeg_bytes, write


@pytest.fixture
def bad_tree(tmp_path):
    root = tmp_path / "photos"
    write(root / "bird" / "notes.jpg", b"this is a text file, renamed to .jpg\n")
    write(root / "bird" / "half.jpg", truncated_jpeg_bytes())
    write(root / "bird" / "pixel.png", tiny_png_bytes())
    write(root / "bird" / "bomb.png", bomb_png_bytes())
    write(root / "bird" / "good.jpg", good_photo_bytes("bird", 0))
    return root


def test_bad_files_are_failed_rows_with_reasons_and_good_one_stored(home, bad_tree, capsys):
    counts = import_folder(home, bad_tree)
    assert counts["done"] == 1 and counts["failed"] == 4
    with connect(home, read_only=True) as con:
        rows = con.execute("SELECT source_path, status, error, sha256, path FROM images").fetchall()
    by_name = {r[0].rsplit("/", 1)[1]: r for r in rows}
    assert by_name["good.jpg"][1] == "ok" and (home / by_name["good.jpg"][4]).is_file()
    assert "not an image" in by_name["notes.jpg"][2]
    assert "truncated" in by_name["half.jpg"][2] or "corrupt" in by_name["half.jpg"][2]
    assert "too small" in by_name["pixel.png"][2]
    assert "decompression bomb" in by_name["bomb.png"][2]
    assert all(by_name[n][3] is None for n in ("notes.jpg", "half.jpg", "pixel.png", "bomb.png"))
    run = runs.recent_runs(home, 1)[0]
    assert run["status"] == "ok" and run["counts"]["failed"] == 4 and run["counts"]["done"] == 1
    out = capsys.readouterr().err
    assert "import-folder: done 1, skipped 0, failed 4" in out and "items/s" in out


def test_rerun_adds_nothing_and_duplicates_stored_once(home, tmp_path):
    root = tmp_path / "p"
    same = good_photo_bytes("music", 1)
    write(root / "music" / "a.jpg", same)
    write(root / "music" / "copy-of-a.jpg", same)
    write(root / "fruit" / "b.jpg", good_photo_bytes("fruit", 2))
    first = import_folder(home, root)
    assert first["done"] == 2 and first["duplicate"] == 1
    second = import_folder(home, root)
    assert second.get("done", 0) == 0 and second["skipped"] == 3
    with connect(home, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM images").fetchone()[0] == 2
    stored_files = list((home / "images").rglob("*.jpg"))
    assert len(stored_files) == 2
    # the same photo added from elsewhere is still stored once
    write(tmp_path / "q" / "music" / "again.jpg", same)
    assert import_folder(home, tmp_path / "q")["duplicate"] == 1
    assert len(images.stored_shas(home)) == 2


def test_unknown_word_folders_reported_then_added_with_flag(home, tmp_path, capsys):
    root = tmp_path / "p"
    write(root / "Sea Otters" / "x.jpg", good_photo_bytes("animals", 3))
    write(root / "loose.jpg", good_photo_bytes("animals", 4))
    counts = import_folder(home, root)
    err = capsys.readouterr().err
    assert counts.get("done", 0) == 0 and counts["unknown_words"] == ["Sea Otters"]
    assert "unknown word folder 'Sea Otters'" in err and "--add-words" in err
    assert "loose.jpg: not inside a word folder" in err
    counts = import_folder(home, root, add_words=True)
    assert counts["done"] == 1
    assert "sea otters" in {w["word"] for w in words.list_words(home)}
    assert images.labelled_images(home)[0]["word"] == "sea otters"


def test_missing_folder_is_a_clear_error(home, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        import_folder(home, tmp_path / "nope")


def test_check_image_refuses_oversized_byte_count():
    with pytest.raises(ImageRejected, match="too large"):
        check_image(good_photo_bytes(), max_bytes=100)


def test_cli_import_and_stats_json(tmp_path, bad_tree):
    h = tmp_path / "cli_home"
    rc = main(["--home", str(h), "import-folder", str(bad_tree)])
    assert rc == 0
    proc = subprocess.run([*CLI, "--home", str(h), "stats", "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["bird"] == {"stored": 1, "failed": 4}


def test_every_command_has_help():
    proc = subprocess.run([*CLI, "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0
    commands = [c for c in ("demo", "import-folder", "stats") if c in proc.stdout]
    assert len(commands) == 3
    from hashtag_workbench.jobs.cli import build_parser
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name, parser in sub.choices.items():
        assert parser.format_help().strip(), name
        assert sub._choices_actions and any(a.dest == name and a.help for a in sub._choices_actions), name


def test_light_commands_start_without_loading_torch(tmp_path):
    code = ("import sys; from hashtag_workbench.jobs.cli import main; "
            f"rc = main(['--home', {str(tmp_path / 'h')!r}, 'stats', '--json']); "
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', rc)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("NO-TORCH 0")


def test_import_folder_on_a_missing_path_says_so_in_one_line(tmp_path):
    missing = tmp_path / "no-such-folder"
    proc = subprocess.run([*CLI, "--home", str(tmp_path / "h"), "import-folder",
                           str(missing)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {missing} is not a folder. Give a folder holding one "
                                                "sub-folder per word."]
    assert "Traceback" not in proc.stdout + proc.stderr
