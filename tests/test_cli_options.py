"""The options enhance, serve, eval and caption share (lumicap.commands.options): one definition, one check.

The tiling values are refused by ``TileSettings`` itself, so the library and both commands say the same line;
``--device`` takes the same values everywhere (auto, cpu, cuda, cuda:N)."""

from __future__ import annotations

import pytest

from lumicap.cli import build_parser, main
from lumicap.errors import LumicapError
from lumicap.inference import TileSettings

BAD_TILING = [
    (["--tile", "8"], {"tile": 8, "overlap": 4}, "--tile 8 is too small (at least 16)"),
    (["--tile", "100", "--tile-overlap", "60"], {"tile": 100, "overlap": 60}, "--tile-overlap 60 is more than half of --tile 100"),
    (["--tile-overlap", "-1"], {"overlap": -1}, "--tile-overlap must not be negative"),
    (["--max-megapixels", "0"], {"max_megapixels": 0.0}, "--max-megapixels must be positive"),
]


@pytest.mark.parametrize("argv, settings, message", BAD_TILING)
def test_enhance_serve_and_the_library_refuse_the_same_tiling_with_the_same_line(tmp_path, capsys, argv, settings, message):
    if "--tile" in argv and "--tile-overlap" not in argv:
        argv = [*argv, "--tile-overlap", str(settings["overlap"])]
    with pytest.raises(LumicapError) as refused:
        TileSettings(**settings)
    assert str(refused.value) == message
    photo = tmp_path / "missing.png"  # never read: the options are refused first
    for command in (["enhance", str(photo), "--out", str(tmp_path / "out")], ["serve", "--port", "0"]):
        assert main([*command, *argv, "--device", "cpu"]) == 2
        assert capsys.readouterr().err == f"lumicap: error: {message}\n"
    assert not (tmp_path / "out").exists()


def test_good_tiling_values_build_settings():
    assert TileSettings(tile=64, overlap=32).tile_for(10, 10, device=None) == 64
    assert TileSettings(max_megapixels=0.5, overlap=0).max_megapixels == 0.5


@pytest.mark.parametrize("command", [["enhance", "x", "--out", "o"], ["serve"], ["eval", "--pred", "p", "--gt", "g"], ["caption", "x"]])
def test_every_command_takes_the_same_devices(command, capsys):
    parser = build_parser()
    for device in ("auto", "cpu", "cuda", "cuda:1"):
        assert parser.parse_args([*command, "--device", device]).device == device
    with pytest.raises(SystemExit):
        parser.parse_args([*command, "--device", "gpu"])
    assert "invalid device 'gpu' (choose auto, cpu, cuda or cuda:N)" in capsys.readouterr().err


def test_enhance_and_serve_define_model_and_tiling_options_alike():
    parser = build_parser()
    enhance = parser.parse_args(["enhance", "x", "--out", "o"])
    serve = parser.parse_args(["serve"])
    shared = ("weights", "device", "tile", "max_megapixels", "tile_overlap", "network_megapixels")
    assert {name: getattr(enhance, name) for name in shared} == {name: getattr(serve, name) for name in shared}
    assert enhance.model == "default" and serve.model is None  # serve: repeatable; none given = the default
    assert parser.parse_args(["serve", "--model", "a", "--model", "b"]).model == ["a", "b"]
