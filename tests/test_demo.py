"""Built-in demo: darkened bundled photos, deterministic, and `lumicap enhance --demo` end to end."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage import data

from _enhance_support import register_tiny, save_tiny_safetensors
from lumicap.cli import main
from lumicap.report.demo import DEMO_PHOTOS, LowLightParams, darken, write_demo_inputs
from lumicap.errors import LumicapError


def _pixels(path):
    return np.asarray(Image.open(path))


def test_demo_inputs_are_deterministic_dark_and_noisy(tmp_path):
    first = write_demo_inputs(tmp_path / "one", names=("astronaut", "coffee"))
    second = write_demo_inputs(tmp_path / "two", names=("coffee",))  # the same whatever else is written
    assert first.names == ("astronaut", "coffee")
    assert np.array_equal(_pixels(first.low_dir / "coffee.png"), _pixels(second.low_dir / "coffee.png"))
    for name in first.names:
        low = _pixels(first.low_dir / f"{name}.png")
        reference = _pixels(first.reference_dir / f"{name}.png")
        assert low.shape == reference.shape
        assert 0.02 < low.mean() / 255 < 0.12 < reference.mean() / 255  # LOL-like darkness
    astronaut = _pixels(first.reference_dir / "astronaut.png")
    assert np.array_equal(astronaut, data.astronaut())
    # Another seed gives other images.
    other = write_demo_inputs(tmp_path / "three", seed=1, names=("coffee",))
    assert not np.array_equal(_pixels(other.low_dir / "coffee.png"), _pixels(first.low_dir / "coffee.png"))


def test_darken_adds_signal_dependent_noise():
    params = LowLightParams(alpha=1.0, beta=0.2, gamma=2.0, shot=0.002, read=0.001)
    flat = np.full((200, 200, 3), 0.5)
    bright = darken(flat, params, np.random.default_rng(0))
    assert bright.mean() == pytest.approx(0.2 * 0.25, rel=0.02)  # beta * x**gamma
    dim = darken(np.full((200, 200, 3), 0.25), params, np.random.default_rng(0))
    assert bright.std() > dim.std() > 0.001  # Poisson part grows with the signal


def test_demo_inputs_do_not_replace_foreign_files(tmp_path, capsys):
    (tmp_path / "low").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "low" / "chelsea.png")
    with pytest.raises(LumicapError, match="not the demo image"):
        write_demo_inputs(tmp_path, names=("chelsea",))
    assert _pixels(tmp_path / "low" / "chelsea.png").shape == (4, 4, 3)


def test_enhance_demo_end_to_end(tmp_path, monkeypatch, capsys):
    register_tiny(monkeypatch)
    model = save_tiny_safetensors(tmp_path / "model")
    out = tmp_path / "demo"
    args = ["enhance", "--demo", "--out", str(out), "--model", str(model), "--device", "cpu", "--no-progress"]
    assert main(args) == 0
    text = capsys.readouterr().out
    names = [name for name, _ in DEMO_PHOTOS]
    for folder in ("low", "reference", "enhanced"):
        assert sorted(p.stem for p in (out / folder).glob("*.png")) == sorted(names)
    assert (out / "report" / "contact_sheet.png").is_file()
    page = (out / "report" / "index.html").read_text()
    assert all(f'<tr id="{name}">' in page for name in names) and "PSNR" in page
    assert "contact sheet:" in text
    # Enhanced images are brighter than the dark inputs (the tiny network multiplies by 2.5).
    for name in names:
        assert _pixels(out / "enhanced" / f"{name}.png").mean() > 1.5 * _pixels(out / "low" / f"{name}.png").mean()

    assert main(args) == 0  # second run: inputs reused, outputs kept
    assert "skipped 5" in capsys.readouterr().out
