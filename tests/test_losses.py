"""Loss terms against their formulas, and their composition from a stage's ``losses``."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lumicap.errors import LumicapError
from lumicap.losses import CharbonnierLoss, ChromaLoss, LowResSmoothL1Loss, SSIMLoss, StageLoss


@pytest.fixture
def pair():
    g = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, 24, 20, generator=g), torch.rand(2, 3, 24, 20, generator=g)


def test_pixel_terms_match_their_formulas(pair):
    p, t = pair
    loss = StageLoss({"l1": 1.0, "mse": 1.0, "charbonnier": 1.0, "smooth_l1": 1.0})
    _, terms = loss(p, t)
    d = (p - t).double()
    assert terms["l1"].item() == pytest.approx(d.abs().mean().item(), rel=1e-6)
    assert terms["mse"].item() == pytest.approx((d**2).mean().item(), rel=1e-6)
    assert terms["charbonnier"].item() == pytest.approx(torch.sqrt(d**2 + 1e-6).mean().item(), rel=1e-6)
    huber = torch.where(d.abs() < 1, 0.5 * d**2, d.abs() - 0.5).mean()
    assert terms["smooth_l1"].item() == pytest.approx(huber.item(), rel=1e-6)


def test_chroma_term_measures_saturation_whatever_the_hue(pair):
    p, t = pair
    _, terms = StageLoss({"chroma": 1.0})(p, t)

    def magnitude(x):
        r, g, b = x.double().unbind(1)
        return torch.sqrt((r - g) ** 2 + (0.5 * (r + g) - b) ** 2 + 1e-6)

    assert terms["chroma"].item() == pytest.approx((magnitude(p) - magnitude(t)).abs().mean().item(), rel=1e-5)
    # a paler copy of the same hue costs; the opposite hue at the same distance from gray costs (almost) nothing
    gray = t.mean(dim=1, keepdim=True)
    pale = gray + 0.5 * (t - gray)
    chroma = ChromaLoss()
    assert chroma(pale, t) > 0.02
    assert chroma(t, t).item() == pytest.approx(0.0, abs=1e-6)
    assert chroma(t.flip(-1), t.flip(-1)).item() == pytest.approx(0.0, abs=1e-6)
    opposite = gray - (t - gray)  # every pixel's colour turned to its opposite hue, same distance from gray
    assert chroma(opposite, t) < 1e-3 < F.l1_loss(opposite, t)
    x = pale.clone().requires_grad_(True)
    chroma(x, t).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_charbonnier_is_eps_at_zero_and_differentiable():
    x = torch.zeros(1, 3, 4, 4, requires_grad=True)
    value = CharbonnierLoss()(x, torch.zeros_like(x))
    assert value.item() == pytest.approx(1e-3)
    value.backward()
    assert torch.isfinite(x.grad).all()


def test_ssim_loss_zero_for_identical_and_grows_with_noise(pair):
    p, t = pair
    assert SSIMLoss()(t, t).item() == pytest.approx(0.0, abs=1e-6)
    noisy = (t + 0.05 * torch.randn(t.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert 0 < SSIMLoss()(noisy, t).item() < SSIMLoss()(p, t).item()


def test_lowres_term_compares_to_area_downsampled_target():
    t = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    small = F.avg_pool2d(t, 2)
    assert LowResSmoothL1Loss()(small, t).item() == pytest.approx(0.0, abs=1e-7)
    assert LowResSmoothL1Loss()(small + 0.1, t).item() == pytest.approx(0.5 * 0.01, rel=1e-4)


def test_composition_is_the_weighted_sum_and_uses_auxiliary_outputs(pair):
    p, t = pair
    lowres = F.avg_pool2d(p, 4)
    loss = StageLoss({"smooth_l1": 5.0, "lowres_smooth_l1": 0.5, "ssim": 0.002})
    total, terms = loss({"output": p, "output_lowres": lowres}, t)
    expected = 5.0 * F.smooth_l1_loss(p, t) + 0.5 * F.smooth_l1_loss(lowres, F.interpolate(t, size=(6, 5), mode="area"))
    assert set(terms) == {"smooth_l1", "lowres_smooth_l1", "ssim"}
    assert total.item() == pytest.approx((expected + 0.002 * terms["ssim"]).item(), rel=1e-6)
    with pytest.raises(LumicapError, match="needs the model output 'output_lowres'"):
        loss(p, t)


def test_gradient_flows_through_every_term(pair):
    p, t = pair
    p = p.clone().requires_grad_(True)
    total, _ = StageLoss({"l1": 1.0, "charbonnier": 1.0, "ssim": 1.0})(p, t)
    total.backward()
    assert p.grad.abs().sum() > 0


def test_model_terms_for_model_defined_objectives(pair):
    p, t = pair
    loss = StageLoss({"recon": 1.0, "smooth": 0.1}, allow_model_terms=True)
    total, terms = loss({}, None, {"recon": torch.tensor(2.0), "smooth": torch.tensor(3.0), "extra": torch.tensor(9.0)})
    assert total.item() == pytest.approx(2.3)
    assert set(terms) == {"recon", "smooth"}
    with pytest.raises(LumicapError, match="'smooth' is not a built-in loss nor a term the model returns"):
        loss({}, None, {"recon": torch.tensor(1.0)})
    with pytest.raises(LumicapError, match="unknown loss 'recon'"):
        StageLoss({"recon": 1.0})


def test_missing_vgg_weights_fail_in_one_line_unless_allowed(tmp_path, monkeypatch):
    monkeypatch.setenv("LUMICAP_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(LumicapError) as info:
        StageLoss({"l1": 1.0, "vgg19": 0.001})
    message = str(info.value)
    assert message.startswith("loss 'vgg19':") and "allow_missing_perceptual" in message and "\n" not in message
    loss = StageLoss({"l1": 1.0, "vgg19": 0.001}, allow_missing_perceptual=True)
    assert set(loss.dropped) == {"vgg19"} and loss.weights == {"l1": 1.0}


def test_vgg_term_uses_the_given_weight_file(tmp_path):
    """vgg16 = RCTNet's term; a random VGG16 saved with torchvision's key names loads from an explicit path."""
    from lumicap.losses.vgg import VGGFeatures

    torch.manual_seed(0)
    path = tmp_path / "vgg16-random.pth"
    torch.save(VGGFeatures("vgg16").state_dict(), path)
    loss = StageLoss({"vgg16": 1.0}, perceptual_weights=str(path))
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    total, terms = loss(x, x)
    assert total.item() == 0.0
    total, _ = loss(x, x.flip(-1))
    assert total.item() > 0 and math.isfinite(total.item())
