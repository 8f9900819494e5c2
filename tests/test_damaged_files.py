"""Hostile or damaged files handed to lumicap: teacher.json with wrong types, a model sidecar with bad
overrides, JSON nested 100,000 deep, a summary.json that is a list, a PNG whose EXIF chunk follows the pixels,
unreadable images among readable ones, an RGBA picture, a report written inside its own input folder,
identical images (infinite PSNR). Each must give one line naming the file/key and the problem."""

from __future__ import annotations

import json
import math
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _reliability_support import assert_one_line_error
from reliability.fuzzrun import run_cli, save_random_model

DEEP = 100_000


def _photo(path: Path, seed: int = 0, size=(16, 20), mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = 4 if mode == "RGBA" else 3
    array = np.random.default_rng(seed).integers(0, 255, size=(*size, channels), dtype=np.uint8)
    Image.fromarray(array, mode).save(path)
    return path


def _deep_json(path: Path) -> Path:
    path.write_text("[" * DEEP + "]" * DEEP)
    return path


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    from lumicap.teacher import save_tiny_teacher

    return save_tiny_teacher(tmp_path_factory.mktemp("teacher") / "tiny")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return save_random_model(tmp_path_factory.mktemp("model"))


# ---------------------------------------------------------------------------------------- teacher.json
@pytest.mark.parametrize(
    "change, key",
    [
        ({"prefix_length": "ten"}, "prefix_length"),
        ({"prefix_length": 0}, "prefix_length"),
        ({"mapping": "mlp"}, "mapping"),
        ({"clip": 5}, "clip"),
        ({"gpt2": [1, 2]}, "gpt2"),
        ({"mapping": {"type": "mlp", "num_heads": "x"}}, "mapping.num_heads"),
    ],
    ids=["prefix-string", "prefix-zero", "mapping-string", "clip-number", "gpt2-list", "num-heads-string"],
)
def test_teacher_json_with_wrong_types_is_one_line(teacher, tmp_path, change, key):
    folder = tmp_path / "teacher"
    shutil.copytree(teacher, folder)
    manifest = json.loads((folder / "teacher.json").read_text())
    (folder / "teacher.json").write_text(json.dumps({**manifest, **change}))
    image = _photo(tmp_path / "a.png")
    assert_one_line_error(*run_cli(["caption", str(image), "--teacher", str(folder), "--device", "cpu"]),
                          "teacher.json", f"'{key}'")


def test_teacher_json_nested_too_deep_is_one_line(teacher, tmp_path):
    folder = tmp_path / "teacher"
    shutil.copytree(teacher, folder)
    _deep_json(folder / "teacher.json")
    image = _photo(tmp_path / "a.png")
    assert_one_line_error(*run_cli(["caption", str(image), "--teacher", str(folder), "--device", "cpu"]),
                          "teacher.json", "nested too deeply")


# ------------------------------------------------------------------------------------------ model sidecar
@pytest.mark.parametrize("overrides", [{"variant": "evil"}, {"in_dim": -1}], ids=["variant", "in-dim"])
def test_sidecar_with_bad_override_values_is_one_line(model, tmp_path, overrides):
    copy = tmp_path / "m.safetensors"
    shutil.copy(model, copy)
    sidecar = json.loads(model.with_suffix(".json").read_text())
    copy.with_suffix(".json").write_text(json.dumps({**sidecar, "overrides": overrides}))
    image = _photo(tmp_path / "in" / "a.png")
    line = assert_one_line_error(*run_cli(["enhance", str(image), "--out", str(tmp_path / "out"), "--model", str(copy),
                                           "--device", "cpu", "--no-progress"]), "m.safetensors", "bad override")
    assert next(iter(overrides)) in line
    assert not (tmp_path / "out").exists()


def test_sidecar_nested_too_deep_is_one_line(model, tmp_path):
    copy = tmp_path / "m.safetensors"
    shutil.copy(model, copy)
    _deep_json(copy.with_suffix(".json"))
    image = _photo(tmp_path / "in" / "a.png")
    assert_one_line_error(*run_cli(["enhance", str(image), "--out", str(tmp_path / "out"), "--model", str(copy),
                                    "--device", "cpu", "--no-progress"]), "m.json", "nested too deeply")


# ------------------------------------------------------------------------------- captions, run.json, compare
def test_captions_file_nested_too_deep_is_one_line(tmp_path):
    pred = tmp_path / "pred"
    _photo(pred / "a.png")
    captions = _deep_json(tmp_path / "captions.json")
    assert_one_line_error(*run_cli(["report", str(pred), "--captions", str(captions), "--out", str(tmp_path / "r")]),
                          "captions.json", "nested too deeply")


def _run_folder(tmp_path: Path) -> Path:
    from test_compare import make_run

    values = np.linspace(20, 21, 12)
    return make_run(tmp_path / "runs", "base", 0, values, values / 30, mfr=False)


def test_run_json_nested_too_deep_is_one_line(tmp_path):
    run = _run_folder(tmp_path)
    _deep_json(run / "run.json")
    assert_one_line_error(*run_cli(["compare", str(tmp_path / "runs"), "--out", str(tmp_path / "t")]),
                          "run.json", "nested too deeply")
    assert_one_line_error(*run_cli(["train", "--resume", str(run), "--no-progress"]), "run.json", "nested too deeply")


@pytest.mark.parametrize("content", ["[1, 2]", '{"psnr": "high", "protocol": {}}'], ids=["list", "wrong-fields"])
def test_compare_with_a_summary_that_is_not_one_is_one_line(tmp_path, content):
    run = _run_folder(tmp_path)
    (summary,) = run.glob("results/*/summary.json")
    summary.write_text(content)
    assert_one_line_error(*run_cli(["compare", str(tmp_path / "runs"), "--out", str(tmp_path / "t")]), "summary.json")


# ------------------------------------------------------------------------------------------------- images
def _png_with_late_exif(path: Path, array: np.ndarray, orientation: int) -> Path:
    """A valid PNG whose eXIf chunk (EXIF orientation) comes after the pixel data (IDAT), before IEND."""
    Image.fromarray(array).save(path)
    data = path.read_bytes()
    exif = Image.Exif()
    exif[0x0112] = orientation
    payload = exif.tobytes()
    chunk = struct.pack(">I", len(payload)) + b"eXIf" + payload + struct.pack(">I", zlib.crc32(b"eXIf" + payload))
    iend = data.rindex(b"IEND") - 4
    path.write_bytes(data[:iend] + chunk + data[iend:])
    return path


def test_png_with_exif_after_the_pixels_has_one_size(tmp_path):
    from lumicap.data.io import image_size, read_image

    stored = np.random.default_rng(0).integers(0, 255, size=(16, 24, 3), dtype=np.uint8)
    path = _png_with_late_exif(tmp_path / "late.png", stored, orientation=6)
    assert image_size(path) == tuple(read_image(path).shape[1:]) == (24, 16)  # 90 degrees: width and height swap

    pred = tmp_path / "pred"
    pred.mkdir()
    shutil.copy(path, pred / "late.png")
    gt = _photo(tmp_path / "gt" / "late.png", size=(24, 16))
    rc, out, err, tb = run_cli(["eval", "--pred", str(pred), "--gt", str(gt.parent), "--out", str(tmp_path / "res"),
                                "--device", "cpu"])
    assert tb is None and rc == 0, err


def test_alpha_warning_is_one_line(tmp_path):
    pred = tmp_path / "pred"
    _photo(pred / "a.png", mode="RGBA")
    _photo(tmp_path / "gt" / "a.png")
    rc, out, err, tb = run_cli(["eval", "--pred", str(pred), "--gt", str(tmp_path / "gt"), "--out", str(tmp_path / "r"),
                                "--device", "cpu"])
    assert tb is None and rc == 0, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("lumicap: warning: ") and "alpha channel dropped" in lines[0], lines


def test_report_inside_its_own_input_folder_leaves_itself_out(tmp_path):
    pred = tmp_path / "out"
    for i in range(2):
        _photo(pred / f"p{i}.png", seed=i)
    argv = ["report", str(pred), "--out", str(pred / "report")]
    for extra in ([], ["--overwrite"]):
        rc, stdout, err, tb = run_cli(argv + extra)
        assert tb is None and rc == 0, err
        assert "report of 2 images" in stdout
    rows = (pred / "report" / "metrics.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["p0", "p1"]


def test_report_and_caption_skip_an_unreadable_image(teacher, tmp_path):
    pred = tmp_path / "pred"
    for i in range(2):
        _photo(pred / f"p{i}.png", seed=i)
    (pred / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 5)

    rc, stdout, err, tb = run_cli(["report", str(pred), "--out", str(tmp_path / "report")])
    assert tb is None and rc == 1, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("lumicap: error: ") and "broken.png" in lines[0]
    assert "report of 2 images" in stdout
    assert len((tmp_path / "report" / "metrics.csv").read_text().splitlines()) == 3

    rc, stdout, err, tb = run_cli(["caption", str(pred / "broken.png"), str(pred / "p0.png"), "--teacher", str(teacher),
                                   "--device", "cpu", "--max-tokens", "3"])
    assert tb is None and rc == 1, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "broken.png" in lines[0]
    assert len(stdout.strip().splitlines()) == 1 and "p0.png" in stdout  # the readable one is still captioned


def test_summary_of_identical_images_is_standard_json(tmp_path):
    pred = tmp_path / "pred"
    _photo(pred / "a.png")
    rc, out, err, tb = run_cli(["eval", "--pred", str(pred), "--gt", str(pred), "--out", str(tmp_path / "r"), "--device", "cpu"])
    assert tb is None and rc == 0, err

    def refuse(token):
        raise AssertionError(f"non-standard JSON constant {token}")

    summary = json.loads((tmp_path / "r" / "summary.json").read_text(), parse_constant=refuse)
    assert summary["psnr"] == "inf" and math.isinf(float(summary["psnr"]))
