"""The dashboard entry point and its Overview page, through Streamlit's AppTest."""
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT

APP = str(ROOT / "hashtag_workbench" / "dashboard" / "app.py")


def test_overview_empty_state_says_what_to_run(home):
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    text = " ".join(str(i.value) for i in at.info)
    assert "No images yet" in text and "hashtags demo" in text


def test_overview_shows_counts_per_word_and_runs(demo_home):
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert not at.info or all("No images yet" not in str(i.value) for i in at.info)
    frames = [df.value for df in at.dataframe]
    per_word = next(f for f in frames if "word" in f.columns and "failed" in f.columns)
    counts = dict(zip(per_word["word"], per_word["collected"]))
    assert counts == {"bird": 8, "fruit": 8, "flowers": 8, "music": 8}
    runs_frame = next(f for f in frames if "kind" in f.columns)
    assert "import-folder" in set(runs_frame["kind"])
