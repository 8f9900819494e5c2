"""RetinexNet's paper losses and its two training stages (decomposition, then relighting)."""

from __future__ import annotations

import pytest
import torch

from lumicap.errors import LumicapError
from lumicap.models import build_model, model_info
from lumicap.models.retinexnet import (
    illumination_smoothness_loss,
    invariable_reflectance_loss,
    reconstruction_loss,
)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return build_model("retinexnet")


def _pair(seed: int = 0, size: int = 24):
    gen = torch.Generator().manual_seed(seed)
    low = torch.rand(2, 3, size, size + 5, generator=gen) * 0.2
    high = torch.rand(2, 3, size, size + 5, generator=gen)
    return low, high


def test_every_stage_loss_is_non_negative(net) -> None:
    low, high = _pair()
    decomposition = net.stage_losses("decomposition", low, high)
    relight = net.stage_losses("relight", low, high)
    assert set(decomposition) == {
        "recon_low", "recon_high", "recon_mutual_low", "recon_mutual_high",
        "invariable_reflectance", "smooth_low", "smooth_high",
    }
    terms = {**decomposition, "relight_smoothness": relight["relight_smoothness"]}
    for name, value in terms.items():
        assert value.ndim == 0 and torch.isfinite(value), name
        assert value >= 0, f"{name} = {value}"


def test_reconstruction_loss_is_zero_exactly_when_r_times_i_reproduces_the_image() -> None:
    gen = torch.Generator().manual_seed(1)
    reflectance = torch.rand(2, 3, 16, 16, generator=gen)
    illumination = torch.rand(2, 1, 16, 16, generator=gen)
    image = reflectance * illumination
    assert reconstruction_loss(reflectance, illumination, image) == 0
    assert reconstruction_loss(reflectance, illumination, image + 0.01) > 0


def test_smoothness_is_zero_for_constant_illumination_and_edge_aware() -> None:
    gen = torch.Generator().manual_seed(2)
    reflectance = torch.rand(1, 3, 16, 16, generator=gen)
    constant = torch.full((1, 1, 16, 16), 0.37)
    assert illumination_smoothness_loss(constant, reflectance) == 0

    step = torch.zeros(1, 1, 16, 16)
    step[..., 8:] = 1.0  # an illumination edge between columns 7 and 8
    flat_reflectance = torch.full((1, 3, 16, 16), 0.5)
    edged_reflectance = flat_reflectance.clone()
    edged_reflectance[..., 8:] = 0.0  # a reflectance edge at the same place
    on_flat = illumination_smoothness_loss(step, flat_reflectance)
    on_edge = illumination_smoothness_loss(step, edged_reflectance)
    assert on_flat > 0
    assert on_edge < on_flat  # illumination may change where the reflectance has an edge


def test_invariable_reflectance_is_zero_only_for_equal_reflectances() -> None:
    gen = torch.Generator().manual_seed(3)
    reflectance = torch.rand(2, 3, 8, 8, generator=gen)
    assert invariable_reflectance_loss(reflectance, reflectance.clone()) == 0
    assert invariable_reflectance_loss(reflectance, reflectance.flip(-1)) > 0


def test_decomposition_of_identical_pair_has_no_reflectance_or_mutual_gap(net) -> None:
    low, _ = _pair(4)
    terms = net.stage_losses("decomposition", low, low.clone())
    assert terms["invariable_reflectance"] == 0
    assert torch.allclose(terms["recon_mutual_low"], terms["recon_low"])


def test_forward_is_reflectance_times_adjusted_illumination(net) -> None:
    low, _ = _pair(5)
    with torch.no_grad():
        reflectance, illumination = net.decompose(low)
        delta = net.relight_net(reflectance, illumination)
        out = net(low)
    assert reflectance.shape == low.shape and illumination.shape == (2, 1, *low.shape[-2:])
    assert 0 < reflectance.min() and reflectance.max() < 1  # sigmoid outputs
    torch.testing.assert_close(out, reflectance * delta.expand_as(reflectance))


def test_stages_train_disjoint_sub_networks_in_recipe_order(net) -> None:
    stages = model_info("retinexnet").recipe.stages
    assert [s.name for s in stages] == ["decomposition", "relight"]
    assert [s.objective for s in stages] == ["decomposition", "relight"]
    assert [s.mfr for s in stages] == [False, True]  # the regularizer goes on the relighting stage

    decom = {id(p) for p in net.stage_parameters("decomposition")}
    relight = {id(p) for p in net.stage_parameters("relight")}
    assert decom and relight and not decom & relight
    assert decom | relight == {id(p) for p in net.parameters()}
    assert decom == {id(p) for p in net.decom_net.parameters()}

    # The decomposition losses never reach the Enhance-Net.
    net.zero_grad(set_to_none=True)
    low, high = _pair(6)
    weights = stages[0].losses
    terms = net.stage_losses("decomposition", low, high)
    sum(weights[name] * terms[name] for name in weights).backward()
    assert all(p.grad is None for p in net.relight_net.parameters())
    assert all(p.grad is not None for p in net.decom_net.parameters())
    net.zero_grad(set_to_none=True)


def test_relight_stage_gives_the_enhanced_image_for_l1_and_mfr(net) -> None:
    low, high = _pair(7)
    terms = net.stage_losses("relight", low, high)
    with torch.no_grad():
        expected = net(low)
    torch.testing.assert_close(terms["output"].detach(), expected)
    assert set(model_info("retinexnet").recipe.stages[1].losses) == {"l1", "relight_smoothness"}


def test_unknown_stage_is_a_user_error(net) -> None:
    low, high = _pair()
    with pytest.raises(LumicapError, match="decomposition, relight"):
        net.stage_losses("warmup", low, high)
    with pytest.raises(LumicapError):
        net.stage_parameters("warmup")
