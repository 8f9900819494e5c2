"""Numeric options that a value switched off (issue 25, item 3): ``nan``/``inf`` and out-of-range numbers are
refused before anything is loaded, bound or created. A number only one command uses is refused while the
command line is parsed (``lumicap.commands.options.finite_float``/``int_in_range``); the shared tiling options
are refused by the library object they become (``TileSettings``; ``--network-megapixels`` by the check
``load_inference_model`` makes), first thing in the command, so the library and the commands say the same line."""

from __future__ import annotations

import importlib.util
import math
import tempfile

import pytest

from _reliability_support import assert_one_line_error
from lumicap.cli import build_parser
from lumicap.errors import LumicapError
from reliability.fuzzrun import run_cli, save_random_model


@pytest.mark.parametrize("argv", [
    ["serve", "--max-upload-megapixels", "nan"],
    ["serve", "--max-upload-megapixels", "inf"],
    ["serve", "--max-upload-megapixels", "0"],
    ["serve", "--max-upload-mb", "nan"],
    ["serve", "--max-upload-mb", "inf"],
    ["serve", "--max-upload-mb", "-1"],
    ["serve", "--port", "70000"],
    ["enhance", "x.png", "--out", "o", "--quality", "0"],
    ["train", "c.yaml", "--max-minutes", "nan"],
    ["caption", "x.png", "--max-tokens", "100000"],
    ["compare", "runs", "--bootstrap-seed", "-1"],
])
def test_numbers_that_would_switch_a_check_off_are_refused_while_parsing(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "error: argument" in err and "Traceback" not in err
    assert err.count("\n") == 1, err  # one line, like every lumicap error (no usage block)


@pytest.mark.parametrize("argv, message", [
    (["--network-megapixels", "nan"], "--network-megapixels must be a finite number, got nan (0: off)"),
    (["--network-megapixels", "inf"], "--network-megapixels must be a finite number, got inf (0: off)"),
    (["--network-megapixels", "5000"], "--network-megapixels must be at least 0 and at most 1000, got 5000 (0: off)"),
    (["--max-megapixels", "nan"], "--max-megapixels must be a finite number, got nan"),
    (["--max-megapixels", "inf"], "--max-megapixels must be a finite number, got inf"),
    (["--tile", "8", "--tile-overlap", "4"], "--tile 8 is too small (at least 16)"),
    (["--tile", "100000", "--tile-overlap", "4"], "--tile 100000 is too large (at most 65536)"),
])
def test_shared_tiling_numbers_are_refused_in_one_line_before_anything_is_created(argv, message, tmp_path, capsys,
                                                                                 monkeypatch):
    """Before: ``--network-megapixels nan`` ended in a ValueError traceback, ``--max-megapixels nan`` switched
    tiling off (a NaN budget compares false with every photo)."""
    import tempfile

    from lumicap.cli import main

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    commands = [["enhance", str(tmp_path / "missing.png"), "--out", str(tmp_path / "out")]]
    if importlib.util.find_spec("starlette") is not None:
        commands.append(["serve", "--port", "0"])
    for command in commands:
        assert main([*command, *argv, "--device", "cpu"]) == 2
        assert capsys.readouterr().err == f"lumicap: error: {message}\n"
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob("lumicap-serve-*"))


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_serve_upload_limit_nan_or_inf_stops_before_the_temporary_folder(value, tmp_path, monkeypatch):
    """Before: ``--max-upload-mb inf`` loaded the model, bound the port and made the results folder, then
    ended in a traceback (OverflowError) and left the empty folder behind."""
    pytest.importorskip("starlette")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    rc, out, err, tb = run_cli(["serve", "--max-upload-mb", value, "--port", "0"])
    assert tb is None, tb
    assert rc == 2 and "--max-upload-mb" in err
    assert not list(tmp_path.glob("lumicap-serve-*"))


def test_enhance_network_megapixels_nan_is_one_line_before_any_output(tmp_path):
    """Before: ``--network-megapixels nan`` passed 'not X' and 'X < 0' alike and ended in a ValueError
    traceback from the full-resolution wrapper."""
    model = save_random_model(tmp_path / "model")
    from PIL import Image

    Image.new("RGB", (20, 16), (10, 20, 30)).save(tmp_path / "a.png")
    rc, out, err, tb = run_cli(["enhance", str(tmp_path / "a.png"), "--out", str(tmp_path / "out"),
                                "--model", str(model), "--network-megapixels", "nan", "--no-progress"])
    assert tb is None, tb
    assert rc == 2 and "--network-megapixels" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("settings", [
    {"max_megapixels": math.nan}, {"max_megapixels": math.inf}, {"max_megapixels": 0.0}, {"max_megapixels": -2.0},
    {"tile": 8}, {"tile": 64, "overlap": 40}, {"overlap": -1}, {"tile": 64.5}, {"overlap": True},
])
def test_tile_settings_refuse_what_the_options_refuse(settings):
    from lumicap.inference import TileSettings

    with pytest.raises(LumicapError):
        TileSettings(**settings)


def test_tile_settings_accept_the_usual_values():
    from lumicap.inference import TileSettings

    assert TileSettings(tile=16, overlap=8).tile == 16
    assert TileSettings(max_megapixels=200.0).max_megapixels == 200.0


@pytest.mark.parametrize("limits", [
    {"max_bytes": 1000, "max_megapixels": math.nan}, {"max_bytes": 1000, "max_megapixels": math.inf},
    {"max_bytes": 0, "max_megapixels": 5.0}, {"max_bytes": 1000, "max_megapixels": 5.0, "max_waiting": 0},
])
def test_serve_limits_refuse_nan_and_non_positive_values(limits):
    pytest.importorskip("starlette")
    from lumicap.serve.jobs import Limits

    with pytest.raises(LumicapError):
        Limits(**limits)


@pytest.mark.parametrize("value", [math.nan, math.inf, -1.0])
def test_library_network_megapixels_refuses_nan(value, tmp_path):
    from lumicap.inference import load_inference_model

    model = save_random_model(tmp_path / "model")
    with pytest.raises(LumicapError, match="network-megapixels"):
        load_inference_model(str(model), "cpu", network_megapixels=value)


def test_sidecar_network_megapixels_nan_is_one_line(tmp_path):
    """JSON as Python reads it accepts NaN: a sidecar saying ``"network_megapixels": NaN`` is refused by name."""
    model = save_random_model(tmp_path / "model")
    sidecar = model.with_suffix(".json")
    sidecar.write_text(sidecar.read_text().replace('"model": "iat",', '"model": "iat", "inference": {"network_megapixels": NaN},'))
    image = tmp_path / "a.png"
    from PIL import Image

    Image.new("RGB", (20, 16), (10, 20, 30)).save(image)
    rc, out, err, tb = run_cli(["enhance", str(image), "--out", str(tmp_path / "out"), "--model", str(model), "--no-progress"])
    assert_one_line_error(rc, out, err, tb, "network_megapixels")
