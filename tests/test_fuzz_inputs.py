"""Short version of scripts/fuzz_inputs.py: one file of every fuzz kind through `lumicap enhance` (one
folder run) and `lumicap eval` (one run per file). No tracebacks, no good file lost, no bad file accepted,
every refusal one line naming the file."""

from __future__ import annotations

import os

import pytest

from _enhance_support import register_tiny, save_tiny_safetensors
from lumicap.errors import one_line
from reliability.fuzzfiles import KINDS, generate_cases, write_cases
from reliability.fuzzrun import fuzz_enhance, fuzz_eval


@pytest.fixture(scope="module")
def cases():
    return generate_cases(len(KINDS), seed=1)


def test_generator_covers_every_kind_with_the_promised_expectations(cases, tmp_path):
    written = write_cases(cases, tmp_path)
    assert {c.kind for c in written} == {k for k, _, _ in KINDS}
    assert len({c.stem for c in written}) == len(written)
    assert any(" " in c.filename for c in written) and any(not c.filename.isascii() for c in written)
    by_kind = {c.kind: c for c in written}
    for kind in ("zero_bytes", "truncated_png", "truncated_jpeg", "random_bytes", "png_bomb", "jpeg_bomb", "bmp_bomb"):
        assert by_kind[kind].expect == "bad"
    for kind in ("png16_rgb", "gray_png", "palette_png", "rgba_png", "cmyk_jpeg", "exif_rotated_jpeg", "one_by_one_png"):
        assert by_kind[kind].expect == "good"
    assert (tmp_path / by_kind["zero_bytes"].filename).stat().st_size == 0
    assert (tmp_path / by_kind["png_bomb"].filename).stat().st_size < 200  # the bomb is in the header only
    permissions = by_kind["unreadable_permissions"]
    readable = os.access(tmp_path / permissions.filename, os.R_OK)
    assert permissions.expect == ("good" if readable else "bad")  # root reads mode-000 files: said, not hidden
    assert ("root" in permissions.note) == readable


def test_enhance_fuzz(cases, tmp_path, monkeypatch):
    register_tiny(monkeypatch)
    model = save_tiny_safetensors(tmp_path / "model")

    report = fuzz_enhance(cases, tmp_path, str(model))

    assert report.ok, report.text()
    assert len(report.outcomes) == len(cases)
    assert not report.tracebacks and not report.good_lost
    by_kind = {o.case.kind: o for o in report.outcomes}
    assert by_kind["png_bomb"].status == "rejected" and "decompression bomb" in by_kind["png_bomb"].detail
    assert by_kind["png_bomb_near_limit"].status == "rejected" and "exceeds the limit" in by_kind["png_bomb_near_limit"].detail
    assert by_kind["zero_bytes"].status == "rejected" and "empty file" in by_kind["zero_bytes"].detail
    for outcome in report.outcomes:
        if outcome.status == "rejected":  # named as it is, or escaped when it holds a newline
            assert outcome.case.filename in outcome.detail or one_line(outcome.case.filename) in outcome.detail
    assert any("\n" in o.case.filename and o.status == "rejected" for o in report.outcomes)  # a forged-looking name
    # Every good input has an output, of its displayed size (EXIF orientation applied; report.ok checks sizes).
    assert all(o.status == "processed" for o in report.outcomes if o.case.expect == "good")
    assert by_kind["exif_rotated_png"].case.size[0] > by_kind["exif_rotated_png"].case.size[1]  # stored wide, shown tall
    assert by_kind["png_exif_after_pixels"].case.size[0] > by_kind["png_exif_after_pixels"].case.size[1]


def test_eval_fuzz(cases, tmp_path):
    report = fuzz_eval(cases, tmp_path)

    assert report.ok, report.text()
    by_kind = {o.case.kind: o for o in report.outcomes}
    assert by_kind["mismatched_pair"].status == "rejected" and "differ in size" in by_kind["mismatched_pair"].detail
    assert by_kind["one_by_one_png"].status == "rejected" and "11x11" in by_kind["one_by_one_png"].detail
    assert by_kind["truncated_png"].status == "rejected" and by_kind["truncated_png"].case.filename in by_kind["truncated_png"].detail
    assert by_kind["rgb_png"].status == "processed" and by_kind["png16_rgb"].status == "processed"


def test_report_fuzz(cases, tmp_path):
    """`lumicap report` over every good fuzz file with references: all rows, no traceback; over the whole
    folder (junk included) at worst a one-line refusal."""
    import csv
    import shutil

    from reliability.fuzzfiles import write_reference
    from reliability.fuzzrun import run_cli

    written = write_cases(cases, tmp_path / "all")
    good = [c for c in written if c.expect == "good" and c.kind != "mismatched_pair"]
    for case in good:
        (tmp_path / "pred").mkdir(exist_ok=True)
        shutil.copy(tmp_path / "all" / case.filename, tmp_path / "pred" / case.filename)
        write_reference(case, tmp_path / "gt")

    rc, out, err, tb = run_cli(["report", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--out", str(tmp_path / "r1")])
    assert tb is None and rc == 0 and "Traceback" not in err, (rc, err, tb)
    with open(tmp_path / "r1" / "metrics.csv", newline="", encoding="utf-8") as fh:
        assert len(list(csv.DictReader(fh))) == len(good)

    # The whole folder, junk included: like enhance, each unreadable file is one line and left out.
    rc, out, err, tb = run_cli(["report", str(tmp_path / "all"), "--out", str(tmp_path / "r2")])
    assert tb is None and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert all(line.startswith(("lumicap: error: ", "lumicap: warning: ")) for line in lines), lines
    errors = [line for line in lines if line.startswith("lumicap: error: ")]
    with open(tmp_path / "r2" / "metrics.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) + len(errors) == len(written) and rc == (1 if errors else 0)
    assert len(rows) >= len(good)


@pytest.fixture
def denied(monkeypatch):
    """Make chosen paths unreadable even for root (who ignores mode 000): opening them raises EACCES."""
    import builtins
    import errno

    blocked: set[str] = set()
    real_open = builtins.open

    def guarded_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and os.path.abspath(os.fspath(file)) in blocked:
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    return blocked


@pytest.mark.parametrize("command", ["enhance", "eval", "train"])
def test_unreadable_file_is_one_line(tmp_path, monkeypatch, denied, command):
    import numpy as np
    from PIL import Image

    from _reliability_support import tiny_train_config
    from reliability.fuzzrun import run_cli

    if command == "train":
        config = tiny_train_config(tmp_path)
        victim = tmp_path / "data" / "train" / "low" / "1.png"
        argv = ["train", str(config), "--no-progress"]
    else:
        for side in ("pred", "gt"):
            (tmp_path / side).mkdir()
            for name in ("a", "b"):
                Image.fromarray(np.full((16, 16, 3), 40, np.uint8)).save(tmp_path / side / f"{name}.png")
        victim = tmp_path / "pred" / "b.png"
        if command == "enhance":
            register_tiny(monkeypatch)
            model = save_tiny_safetensors(tmp_path / "model")
            argv = ["enhance", str(tmp_path / "pred"), "--out", str(tmp_path / "out"), "--model", str(model), "--no-progress"]
        else:
            argv = ["eval", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--out", str(tmp_path / "res")]
    denied.add(os.path.abspath(victim))

    rc, out, err, tb = run_cli(argv)

    assert tb is None, tb
    errors = [line for line in err.splitlines() if line.startswith("lumicap: error:")]
    assert len(errors) == 1 and str(victim) in errors[0] and "ermission denied" in errors[0], err
    if command == "enhance":
        assert rc == 1 and (tmp_path / "out" / "a.png").is_file()  # the readable photo still gets its output
    else:
        assert rc == 2
