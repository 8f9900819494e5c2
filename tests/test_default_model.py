"""The models shipped inside the package: they load offline, and the default's model-card figures hold on real photos.

The eval15 figures are the ones the README's model card states (float PSNR, MATLAB-style SSIM, outputs
written as 8-bit PNG by ``lumicap enhance`` and measured by ``lumicap eval``). The default is IAT (5.26 GMACs at
600x400): the real-photo tests take well under a minute of CPU, so they run wherever ``../shared/data`` is
present (they skip with a reason where it is not, e.g. in CI).
"""

from __future__ import annotations

import csv
import json

import pytest
import torch

from lumicap.cli import main
from lumicap.data.io import read_image
from lumicap.inference import load_inference_model
from lumicap.inference.fullres import FullResolutionTransform
from lumicap.inference.loading import ASSETS_DIR, DEFAULT_METADATA, DEFAULT_WEIGHTS, SHIPPED_MODELS
from lumicap.report import CLIP_LEVEL

# The model card's eval15 figures (README); the bar is 20.5 dB / 0.75.
CARD_PSNR = 19.18
CARD_SSIM = 0.773
# The model card's clipping figures on the unpaired photos (share of pixels with a channel >= 250, as
# lumicap.metrics.clipped_share and lumicap report count it, rounded up): five photos meet the 5% goal;
# three backlit outdoor scenes with bright skies do not (known limit).
CARD_CLIPPED = {"DICM/01": 0.05, "DICM/05": 0.09, "DICM/10": 0.46, "DICM/20": 0.05, "DICM/30": 0.05,
                "DICM/40": 0.28, "LIME/1": 0.05, "LIME/3": 0.05}
GOAL_MAX_CLIPPED = 0.05


def test_default_model_ships_and_loads_offline():
    assert DEFAULT_WEIGHTS.is_file() and DEFAULT_METADATA.is_file()
    assert DEFAULT_WEIGHTS.stat().st_size < 10 * 2**20, "the shipped weights should stay a few MB"
    meta = json.loads(DEFAULT_METADATA.read_text())
    assert meta["model"] == "iat"
    assert meta["training_command"].startswith("lumicap train configs/default/lumicap-default.yaml ")
    assert meta["inference"] == {"network_megapixels": 1.0}
    model = load_inference_model(None, "cpu")
    assert isinstance(model.module, FullResolutionTransform) and model.module.network_megapixels == 1.0
    x = torch.rand(1, 3, 37, 53) * 0.1
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert y.mean() > 2 * x.mean(), "the default model should brighten a dark input"


def test_previous_default_stays_available_by_name():
    assert (ASSETS_DIR / SHIPPED_MODELS["retinexformer-lumicap"]).is_file()
    model = load_inference_model("retinexformer-lumicap", "cpu")
    assert model.name == "retinexformer"
    x = torch.rand(1, 3, 24, 40) * 0.1
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape and y.mean() > 2 * x.mean()


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


@pytest.fixture(scope="module")
def unpaired_clipping(shared_data, tmp_path_factory) -> dict[str, float]:
    """Enhance the unpaired DICM/LIME photos with the default model once; {"DICM/05": clipped share, ...}."""
    tmp_path = tmp_path_factory.mktemp("unpaired")
    photos = sorted(p for d in ("DICM", "LIME") for p in (shared_data / "unpaired" / d).iterdir())
    assert photos, "no unpaired photos found"
    out = tmp_path / "enhanced"
    assert main(["enhance", str(shared_data / "unpaired"), "-r", "--out", str(out), "--no-progress"]) == 0
    clipped = {}
    for photo in photos:
        before = read_image(photo)
        after = read_image(out / photo.parent.name / (photo.stem + ".png"))
        assert after.shape == before.shape
        assert after.mean() > before.mean() + 0.02, f"{photo.name}: not brighter"
        clipped[f"{photo.parent.name}/{photo.stem}"] = (after >= CLIP_LEVEL).any(dim=0).float().mean().item()
    # the report counts clipping the same way (it is what the model card quotes)
    assert main(["report", str(out), "--out", str(tmp_path / "report")]) == 0
    with open(tmp_path / "report" / "metrics.csv", newline="") as fh:
        rows = {r["name"]: float(r["clipped_pct"]) / 100 for r in csv.DictReader(fh)}
    assert rows.keys() == clipped.keys()
    assert all(abs(rows[k] - clipped[k]) < 1e-4 for k in rows)
    return clipped


def test_default_model_card_clipping_on_unpaired_photos(unpaired_clipping):
    clipped = unpaired_clipping
    assert clipped.keys() == CARD_CLIPPED.keys()
    for name, share in clipped.items():
        assert share <= CARD_CLIPPED[name], f"{name}: {share:.1%} of pixels clipped (card: {CARD_CLIPPED[name]:.0%})"


@pytest.mark.xfail(
    strict=True,
    reason="known limit (README model card, issue 14): three backlit DICM photos (05, 10, 40) clip more than "
    "5% of their pixels; strict, so this test fails as soon as a better default makes it pass",
)
def test_default_model_meets_the_clipping_goal_on_every_unpaired_photo(unpaired_clipping):
    clipped = unpaired_clipping
    worst = max(clipped, key=clipped.get)
    assert clipped[worst] <= GOAL_MAX_CLIPPED, f"{worst}: {clipped[worst]:.1%} of pixels clipped"
