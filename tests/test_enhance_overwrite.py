"""`lumicap enhance --overwrite` replaces only what lumicap wrote (issue 25, item 9): every output is recorded in
OUT/.lumicap-outputs.jsonl (path, size, modification time), and --overwrite refuses the whole batch, before
anything is written, when an output would replace a file that is not in the record as it is now (the user's
own photo in --out, or an output they edited since)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _reliability_support import assert_one_line_error
from reliability.fuzzrun import run_cli, save_random_model

pytestmark = pytest.mark.usefixtures("one_thread")


def _photo(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 90, size=(16, 20, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return save_random_model(tmp_path_factory.mktemp("model"))


def _enhance(*args) -> tuple:
    return run_cli(["enhance", *map(str, args), "--no-progress"])


def test_the_users_own_file_in_out_is_never_replaced(tmp_path, model):
    """The issue's case: `enhance D -r --out D/x --overwrite` with D/a.png and the user's D/x/a.png."""
    folder = tmp_path / "D"
    _photo(folder / "a.png", seed=1)
    _photo(folder / "b.png", seed=2)
    users = _photo(folder / "x" / "a.png", seed=9)
    before = users.read_bytes()
    line = assert_one_line_error(*_enhance(folder, "-r", "--out", folder / "x", "--overwrite", "--model", model),
                                 "did not write", "x/a.png", "nothing was written")
    assert "1 file(s)" in line
    assert users.read_bytes() == before  # before: replaced silently
    assert not (folder / "x" / "b.png").exists()  # refused before any work, not after some of it


def test_its_own_outputs_are_redone_and_an_edited_one_is_not(tmp_path, model):
    src, out = tmp_path / "in", tmp_path / "out"
    for i in range(3):
        _photo(src / f"p{i}.png", seed=i)
    rc, stdout, err, tb = _enhance(src, "--out", out, "--model", model)
    assert tb is None and rc == 0, err
    record = [json.loads(line) for line in (out / ".lumicap-outputs.jsonl").read_text().splitlines()]
    assert sorted(item["path"] for item in record) == ["p0.png", "p1.png", "p2.png"]

    rc, stdout, err, tb = _enhance(src, "--out", out, "--model", model, "--overwrite")
    assert tb is None and rc == 0 and "enhanced 3 images" in stdout, err  # its own outputs: redone when asked

    edited = out / "p1.png"  # the user retouched one output since
    Image.fromarray(np.zeros((16, 20, 3), np.uint8)).save(edited)
    before = edited.read_bytes()
    assert_one_line_error(*_enhance(src, "--out", out, "--model", model, "--overwrite"), "p1.png", "changed since")
    assert edited.read_bytes() == before

    rc, stdout, err, tb = _enhance(src, "--out", out, "--model", model)  # without --overwrite: skipped, as always
    assert tb is None and rc == 0 and "skipped 3" in stdout


def test_a_record_cut_short_by_a_killed_run_still_reads(tmp_path):
    from lumicap.inference.outputs_record import OutputRecord

    out = tmp_path / "out"
    first, second = _photo(out / "a.png"), _photo(out / "sub" / "b.png", seed=1)
    record = OutputRecord(out)
    record.add(first)
    record.add(second)
    with open(out / ".lumicap-outputs.jsonl", "a") as fh:
        fh.write('{"path": "c.png", "si')  # the last line of a run killed mid-write
    again = OutputRecord(out)
    assert again.wrote(first) and again.wrote(second) and not again.wrote(out / "c.png")
    os.utime(second, ns=(1, 1))  # touched: no longer as lumicap left it
    assert not OutputRecord(out).wrote(second)
