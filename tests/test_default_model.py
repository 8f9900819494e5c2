"""The models shipped inside the package: they load offline, and the default's model-card figures hold on real photos.

The default is IAT trained by lumicap (README model card, issue 23). Its goals are checked where they are met
and its card figures where they are not (a strict xfail names each goal not reached, so it fails as soon as a
better default reaches it). Figures are measured the way a user gets them: ``lumicap enhance`` to 8-bit PNGs,
then ``lumicap eval`` (float PSNR, MATLAB-style SSIM, no GT-mean) and the measures of ``lumicap.metrics``. The
real-photo tests take well under a minute of CPU, so they run wherever ``../shared/data`` is present (they skip
with a reason where it is not, e.g. in CI); the flat-photo frame test and the loading tests run everywhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from lumicap.cli import main
from lumicap.data.io import read_image_array, write_image
from lumicap.inference import load_inference_model
from lumicap.inference.chroma import ChromaGain
from lumicap.inference.fullres import FullResolutionTransform
from lumicap.inference.highlights import HighlightProtection
from lumicap.inference.loading import ASSETS_DIR, DEFAULT_METADATA, DEFAULT_WEIGHTS, SHIPPED_MODELS
from lumicap.metrics import border_frame, clipped_share, colourfulness

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "configs" / "default" / "lumicap-default.yaml"
# The model card's eval15 figures (README); issue 23's goals: >= 22.0 dB, >= 0.80, colourfulness >= 25.5 (the
# authors' IAT weights; the references have 46.2).
CARD_PSNR = 19.53
CARD_SSIM = 0.785
GOAL_PSNR, GOAL_SSIM, GOAL_COLOURFULNESS = 22.0, 0.80, 25.5
MAX_FRAME_LEVELS = 5.0  # issue 23: border row/column against its neighbours, every photo and side
MAX_CLIPPING_GROWTH = 0.03  # issue 23: output share - input share of pixels with a channel >= 250, every photo


def _sidecar() -> dict:
    return json.loads(DEFAULT_METADATA.read_text())


def test_default_model_ships_and_loads_offline():
    assert DEFAULT_WEIGHTS.is_file() and DEFAULT_METADATA.is_file()
    assert DEFAULT_WEIGHTS.stat().st_size < 10 * 2**20, "the shipped weights should stay a few MB"
    meta = _sidecar()
    assert meta["model"] == "iat"
    assert meta["overrides"] == {"border": "reflect", "global_downscale": 2}
    assert meta["training_command"].startswith("lumicap train configs/default/lumicap-default.yaml ")
    assert meta["inference"] == {"network_megapixels": 1.0, "highlight_protection": [0.5, 0.9], "chroma_gain": 1.45}
    model = load_inference_model(None, "cpu")
    # the chain a user's photo takes: the 1-MP full-resolution transform, its chroma gain, highlight protection
    assert isinstance(model.module, HighlightProtection) and isinstance(model.module.module, ChromaGain)
    transform = model.module.module.module
    assert isinstance(transform, FullResolutionTransform) and transform.network_megapixels == 1.0
    torch.manual_seed(0)
    x = torch.rand(1, 3, 37, 53) * 0.1  # noise, not a photo: a weak check of brightening (photos: tests below)
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert y.mean() > 1.5 * x.mean(), "the default model should brighten a dark input"


def test_default_recipe_is_the_one_in_the_sidecar():
    """The sidecar's command names the recipe; the recipe's network is the shipped one and it starts from a model
    that ships by name (so it reproduces offline, without a checkpoint from elsewhere)."""
    recipe = yaml.safe_load(RECIPE.read_text())
    assert recipe["model"]["name"] == _sidecar()["model"]
    assert recipe["model"]["overrides"] == _sidecar()["overrides"]
    start = recipe["model"]["init_weights"]
    assert start in SHIPPED_MODELS and start != "default"
    assert recipe["data"]["train_split"] == ["train80", "train200"]


@pytest.mark.parametrize("name, network", [("retinexformer-lumicap", "retinexformer"), ("iat-lumicap-2026-11", "iat")])
def test_previous_defaults_stay_available_by_name(name, network):
    assert (ASSETS_DIR / SHIPPED_MODELS[name]).is_file()
    model = load_inference_model(name, "cpu")
    assert model.name == network
    torch.manual_seed(0)
    x = torch.rand(1, 3, 24, 40) * 0.1
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape and y.mean() > 2 * x.mean()


def _frame_excess(image: np.ndarray) -> float:
    """The worst side's frame, in 8-bit levels (positive: the edge row/column stands out from the ones inside)."""
    return max(border_frame(image).values())


@pytest.mark.parametrize("level", [40, 110])
def test_default_model_draws_no_frame_on_a_flat_photo(tmp_path, level):
    """A flat grey photo (odd size) must come out flat to the edge: the old default drew a dark edge 36 levels deep.
    A dark one is brightened; a mid-grey one (already exposed) stays near its level."""
    photo = tmp_path / "flat" / "grey.png"
    photo.parent.mkdir()
    write_image(photo, torch.full((3, 61, 83), level / 255.0))
    out = tmp_path / "out"
    assert main(["enhance", str(photo.parent), "--out", str(out), "--no-progress"]) == 0
    enhanced = read_image_array(out / "grey.png")
    if level < 60:
        assert enhanced.mean() > level + 10, "the flat dark photo should be brightened"
    else:
        assert abs(enhanced.mean() - level) < 15, "a mid-grey photo should stay near its level"
    assert _frame_excess(enhanced) <= MAX_FRAME_LEVELS, border_frame(enhanced)


@pytest.fixture(scope="module")
def eval15_outputs(shared_data, tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("eval15")
    low = shared_data / "lol-v1" / "eval15" / "low"
    assert main(["enhance", str(low), "--out", str(tmp / "enhanced"), "--no-progress"]) == 0
    return tmp / "enhanced", shared_data / "lol-v1" / "eval15" / "high"


def _eval15_summary(eval15_outputs, tmp_path) -> dict:
    out, high = eval15_outputs
    assert main(["eval", "--pred", str(out), "--gt", str(high), "--out", str(tmp_path / "eval")]) == 0
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["count"] == 15
    return summary


def test_default_model_card_figures_on_eval15(eval15_outputs, tmp_path):
    summary = _eval15_summary(eval15_outputs, tmp_path)
    assert summary["psnr"] >= CARD_PSNR - 0.01
    assert summary["ssim"] >= CARD_SSIM - 0.001
    assert _sidecar()["eval15"]["psnr"] == pytest.approx(summary["psnr"], abs=0.01)


def _eval15_colourfulness(eval15_outputs) -> float:
    out, _ = eval15_outputs
    return float(np.mean([colourfulness(read_image_array(p)) for p in sorted(out.glob("*.png"))]))


def test_default_model_meets_the_colourfulness_goal_on_eval15(eval15_outputs):
    assert _eval15_colourfulness(eval15_outputs) >= GOAL_COLOURFULNESS


@pytest.mark.xfail(strict=True, reason="issue 23 goal not reached (README model card): eval15 PSNR/SSIM 19.53 / "
                   "0.785 against 22.0 / 0.80; strict, so it fails as soon as a better default reaches it")
def test_default_model_meets_the_eval15_goal(eval15_outputs, tmp_path):
    summary = _eval15_summary(eval15_outputs, tmp_path)
    assert summary["psnr"] >= GOAL_PSNR and summary["ssim"] >= GOAL_SSIM


def test_default_model_draws_no_frame_on_eval15(eval15_outputs):
    out, _ = eval15_outputs
    frames = {p.name: _frame_excess(read_image_array(p)) for p in sorted(out.glob("*.png"))}
    assert len(frames) == 15
    worst = max(frames, key=frames.get)
    assert frames[worst] <= MAX_FRAME_LEVELS, f"{worst}: frame {frames[worst]:.1f} levels"


@pytest.fixture(scope="module")
def unpaired(shared_data, tmp_path_factory) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The unpaired DICM/LIME photos through the default once: {"DICM/05": (input, output) uint8 arrays, ...}."""
    tmp = tmp_path_factory.mktemp("unpaired")
    photos = sorted(p for d in ("DICM", "LIME") for p in (shared_data / "unpaired" / d).iterdir())
    assert photos, "no unpaired photos found"
    assert main(["enhance", str(shared_data / "unpaired"), "-r", "--out", str(tmp), "--no-progress"]) == 0
    pairs = {}
    for photo in photos:
        before = read_image_array(photo)
        after = read_image_array(tmp / photo.parent.name / (photo.stem + ".png"))
        assert after.shape == before.shape
        pairs[f"{photo.parent.name}/{photo.stem}"] = (before, after)
    return pairs


def test_default_model_brightens_without_clipping_what_was_fine(unpaired):
    """Issue 23: on every unpaired photo, the share of pixels with a channel >= 250 grows by at most 3 points."""
    growth = {name: clipped_share(after) - clipped_share(before) for name, (before, after) in unpaired.items()}
    worst = max(growth, key=growth.get)
    assert growth[worst] <= MAX_CLIPPING_GROWTH, f"{worst}: clipping grew by {growth[worst]:.1%}"
    for name, (before, after) in unpaired.items():
        if before.mean() < 60:  # the dark ones are lifted (DICM/10, mean 118, is not dark)
            assert after.mean() > before.mean() + 10, f"{name}: not brighter"


def test_default_model_draws_no_frame_on_unpaired_photos(unpaired):
    frames = {name: _frame_excess(after) for name, (_, after) in unpaired.items()}
    worst = max(frames, key=frames.get)
    assert frames[worst] <= MAX_FRAME_LEVELS, f"{worst}: frame {frames[worst]:.1f} levels"
