"""The model shipped inside the package: it loads offline, and its model-card figures hold on real photos.

The eval15 figures are the ones the README's model card states (float PSNR, MATLAB-style SSIM, outputs
written as 8-bit PNG by ``lumicap enhance`` and measured by ``lumicap eval``). The two tests on real photos
push 23 full-size pictures (6.5 MP) through the 61-GMAC network, about four minutes of CPU time on a CPU:
they run with ``-m slow``, outside CI's ten-minute budget.
"""

from __future__ import annotations

import json

import pytest
import torch

from lumicap.cli import main
from lumicap.data.io import read_image
from lumicap.inference import load_inference_model
from lumicap.inference.loading import DEFAULT_METADATA, DEFAULT_WEIGHTS

# The model card's eval15 figures (README); the bar is 20 dB / 0.75.
CARD_PSNR = 20.28
CARD_SSIM = 0.730


def test_default_model_ships_and_loads_offline():
    assert DEFAULT_WEIGHTS.is_file() and DEFAULT_METADATA.is_file()
    assert DEFAULT_WEIGHTS.stat().st_size < 10 * 2**20, "the shipped weights should stay a few MB"
    meta = json.loads(DEFAULT_METADATA.read_text())
    assert meta["model"] == "retinexformer"
    assert meta["training_command"].startswith("lumicap train ")
    model = load_inference_model(None, "cpu")
    x = torch.rand(1, 3, 37, 53) * 0.1
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert y.mean() > 2 * x.mean(), "the default model should brighten a dark input"


@pytest.mark.slow
def test_default_model_card_figures_on_eval15(shared_data, tmp_path):
    low = shared_data / "lol-v1" / "eval15" / "low"
    high = shared_data / "lol-v1" / "eval15" / "high"
    out = tmp_path / "enhanced"
    assert main(["enhance", str(low), "--out", str(out), "--no-progress"]) == 0
    assert main(["eval", "--pred", str(out), "--gt", str(high), "--out", str(tmp_path / "eval")]) == 0
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["count"] == 15
    assert summary["psnr"] >= CARD_PSNR - 0.01
    assert summary["ssim"] >= CARD_SSIM - 0.001


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="known limit of the shipped model (README model card, issue 7): it clips 62% of the pixels of "
    "DICM/05.jpg; strict, so this test fails as soon as a better model makes it pass",
)
def test_default_model_brightens_unpaired_photos_without_clipping(shared_data, tmp_path):
    photos = sorted(p for d in ("DICM", "LIME") for p in (shared_data / "unpaired" / d).iterdir())
    assert photos, "no unpaired photos found"
    out = tmp_path / "enhanced"
    assert main(["enhance", str(shared_data / "unpaired"), "-r", "--out", str(out), "--no-progress"]) == 0
    for photo in photos:
        before = read_image(photo)
        after = read_image(out / photo.parent.name / (photo.stem + ".png"))
        assert after.shape == before.shape
        assert after.mean() > before.mean() + 0.05, f"{photo.name}: not brighter"
        clipped = (after >= 254.5 / 255).any(dim=0).float().mean().item()
        assert clipped < 0.5, f"{photo.name}: {clipped:.0%} of pixels clipped"
