"""Real official weights: IAT's published LOL-v1 checkpoint through `lumicap enhance` + `lumicap eval` gives
the published eval15 figures, and the other published IAT checkpoints load (by file and by catalogue name).

Needs ``../shared/official-weights/iat`` (byte copies of the files in cuiziteng/Illumination-Adaptive-
Transformer, see its README) and the LOL-v1 eval15 images; skips with the reason otherwise. The eval15 run
is marked slow (``python -m pytest -m slow tests/test_official_iat.py``): measured 56 CPU-seconds for the 15
images plus 9 for the evaluation, 143-227 s wall-clock on the shared 2-core CPU; it gave 23.3814 dB / 0.8081.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from lumicap.cli import main
from lumicap.inference import load_inference_model
from lumicap.weights import sha256_of

OFFICIAL_IAT = Path(__file__).resolve().parents[2] / "shared" / "official-weights" / "iat"
PUBLISHED_PSNR, PUBLISHED_SSIM = 23.38, 0.809  # IAT paper / README, LOL-v1 test set (eval15)


@pytest.fixture(scope="module")
def iat_files() -> Path:
    if not (OFFICIAL_IAT / "best_Epoch_lol_v1.pth").is_file():
        pytest.skip(f"official IAT weights not found at {OFFICIAL_IAT} (development machines only)")
    return OFFICIAL_IAT


@pytest.mark.slow  # 15 IAT forwards at 600x400 + eval: ~65 CPU-seconds, 2.4-3.8 min on the shared 2-core CPU
def test_published_lol_v1_checkpoint_reproduces_the_published_eval15_figures(iat_files, shared_data, tmp_path):
    weights = iat_files / "best_Epoch_lol_v1.pth"
    low, high = shared_data / "lol-v1" / "eval15" / "low", shared_data / "lol-v1" / "eval15" / "high"
    out = tmp_path / "enhanced"
    assert main(["enhance", str(low), "--out", str(out), "--model", "iat", "--weights", str(weights),
                 "--device", "cpu", "--no-progress"]) == 0
    assert main(["eval", "--pred", str(out), "--gt", str(high), "--out", str(tmp_path / "eval")]) == 0
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["count"] == 15
    assert summary["psnr"] == pytest.approx(PUBLISHED_PSNR, abs=0.01)
    assert summary["ssim"] == pytest.approx(PUBLISHED_SSIM, abs=0.001)


@pytest.mark.parametrize("filename", ["best_Epoch_lol.pth", "best_Epoch_exposure.pth"])
def test_other_published_checkpoints_load(iat_files, shared_data, filename):
    from lumicap.data.io import read_image

    model = load_inference_model("iat", "cpu", weights=iat_files / filename)
    dark = read_image(shared_data / "lol-v1" / "eval15" / "low" / "1.png")[None]
    x = torch.nn.functional.interpolate(dark, scale_factor=0.25, mode="area")  # 100x150: a quick forward
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    if filename == "best_Epoch_lol.pth":  # LOL-v2 real: a low-light model brightens a LOL photo a lot
        assert y.mean() > 2 * x.mean()
    else:  # exposure correction (under- and over-exposed photos): it moves the picture, and not darker
        assert not torch.allclose(y, x, atol=1e-3) and y.mean() >= x.mean()


@pytest.mark.parametrize("name,filename", [("iat-lol-v1-official", "best_Epoch_lol_v1.pth"),
                                           ("iat-lol-v2-real-official", "best_Epoch_lol.pth"),
                                           ("iat-exposure-official", "best_Epoch_exposure.pth")])
def test_catalogue_names_resolve_to_the_published_files(iat_files, tmp_path, monkeypatch, name, filename):
    """The catalogue pins the published sha256; a cached copy passes it and the name works as a model."""
    from lumicap.weights import get_known

    assert sha256_of(iat_files / filename) == get_known(name).sha256
    monkeypatch.setenv("LUMICAP_CACHE", str(tmp_path / "cache"))
    cached = tmp_path / "cache" / name / filename
    cached.parent.mkdir(parents=True)
    shutil.copyfile(iat_files / filename, cached)
    by_name = load_inference_model(name, "cpu")
    by_file = load_inference_model("iat", "cpu", weights=iat_files / filename)
    x = torch.rand(1, 3, 16, 20, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(by_name(x), by_file(x))
