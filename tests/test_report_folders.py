"""`lumicap report` over a folder holding earlier reports (issue 25, item 12): the sheets and thumbnails of any
report lumicap wrote are never counted as photos (before: 8 photos gave "report of 17 images", then 41), and a
--low/--gt/--compare folder that lacks some of the images gets a note naming them; an empty --compare folder
is an error instead of nothing said (item 11)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _reliability_support import assert_one_line_error
from reliability.fuzzrun import run_cli

NAMES = [f"p{i}" for i in range(4)]


def _save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


@pytest.fixture
def photos(tmp_path):
    rng = np.random.default_rng(3)
    for name in NAMES:
        bright = rng.integers(40, 220, size=(24, 32, 3), dtype=np.uint8)
        _save(tmp_path / "out" / f"{name}.png", bright)
        _save(tmp_path / "DICM" / f"{name}.png", bright // 6)
    return tmp_path


def _count(stdout: str) -> int:
    return int(re.search(r"report of (\d+) images", stdout).group(1))


def test_reports_inside_the_folder_are_never_reported_on(photos):
    out = photos / "out"
    for number, target in enumerate(["report", "report2", "nested/report3"], start=1):
        rc, stdout, err, tb = run_cli(["report", str(out), "--low", str(photos / "DICM"), "--out", str(out / target)])
        assert tb is None and rc == 0, err
        assert _count(stdout) == len(NAMES), (number, stdout)  # before: 4, then 4 + 5 (sheet, thumbnails), ...
        assert (out / target / ".lumicap-report").is_file()


def test_a_report_written_before_the_marker_is_recognised_too(photos):
    out = photos / "out"
    rc, _, err, _ = run_cli(["report", str(out), "--out", str(out / "old")])
    assert rc == 0, err
    (out / "old" / ".lumicap-report").unlink()  # as lumicap wrote reports before this change
    rc, stdout, err, tb = run_cli(["report", str(out), "--out", str(out / "new")])
    assert tb is None and rc == 0 and _count(stdout) == len(NAMES), stdout


def test_a_folder_that_merely_holds_an_index_html_is_still_read(photos):
    """Only a report's whole set of files (or its marker) makes a folder a report: photos are never dropped
    because someone keeps an index.html beside them."""
    extra = photos / "out" / "album"
    _save(extra / "q.png", np.zeros((20, 20, 3), np.uint8))
    (extra / "index.html").write_text("<html></html>")
    rc, stdout, err, tb = run_cli(["report", str(photos / "out"), "--out", str(photos / "rep")])
    assert tb is None and rc == 0 and _count(stdout) == len(NAMES) + 1, stdout


def test_low_folder_lacking_some_inputs_names_them(photos):
    for name in ("p1", "p3"):
        (photos / "DICM" / f"{name}.png").unlink()
    rc, stdout, err, tb = run_cli(["report", str(photos / "out"), "--low", str(photos / "DICM"), "--out", str(photos / "rep")])
    assert tb is None and rc == 0, err
    notes = [line for line in stdout.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "--low" in notes[0] and "2 of the 4 images" in notes[0] and "p1, p3" in notes[0], stdout


def test_an_empty_compare_folder_is_an_error(photos):
    (photos / "empty").mkdir()
    assert_one_line_error(*run_cli(["report", str(photos / "out"), "--compare", f"old={photos / 'empty'}",
                                    "--out", str(photos / "rep")]), "--compare old=", "no image files")
    assert not (photos / "rep").exists()


def test_compare_folder_lacking_some_images_names_them(photos):
    shutil.copytree(photos / "out", photos / "old")
    (photos / "old" / "p2.png").unlink()
    rc, stdout, err, tb = run_cli(["report", str(photos / "out"), "--compare", f"old={photos / 'old'}",
                                   "--out", str(photos / "rep")])
    assert tb is None and rc == 0, err
    assert any("--compare old=" in line and "p2" in line for line in stdout.splitlines() if line.startswith("note:"))
