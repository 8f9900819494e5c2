"""Contract tests run on EVERY registered network (``list_models()``), so models added later are covered.

Per model: forward + backward at a small odd size (37x53: padding to every network's multiple and cropping
back), and, under ``-m slow``, at LOL size (400x600) and a large odd size (257x383); output shape equals input
shape; outputs and gradients finite; the gradient reaches the first layer's weight; the parameter count is
within 1% of the official implementation's; the original recipe is well-formed data.
"""

from __future__ import annotations

import functools
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lumicap.errors import LumicapError
from lumicap.models import build_model, count_parameters, list_models, model_info

MODEL_NAMES = [info.name for info in list_models()]

# Loss names a trainer implements itself (Stage docstring); any other name must come from model.stage_losses.
BUILTIN_LOSSES = {"l1", "charbonnier", "smooth_l1", "mse", "ssim", "chroma", "vgg19", "vgg16", "lowres_smooth_l1"}


@functools.lru_cache(maxsize=1)
def _model(name: str) -> nn.Module:
    # One model alive at a time (maxsize=1) keeps memory low; the two sizes of one model share it.
    torch.manual_seed(0)
    return build_model(name)


def _first_layer_weight(model: nn.Module) -> tuple[str, nn.Parameter]:
    """The first weight matrix/kernel (ndim >= 2) in registration order: the first layer the input meets."""
    for name, p in model.named_parameters():
        if p.requires_grad and p.ndim >= 2:
            return name, p
    raise AssertionError("model has no trainable weight with ndim >= 2")


# Any-size support shows as well at a small odd size; the full-size passes take minutes per big network
# on a 2-core CPU (MIRNet: 1.8 TMACs at 400x600), so they run only with -m slow.
SIZES = [
    pytest.param((37, 53), id="37x53"),
    pytest.param((400, 600), id="400x600", marks=pytest.mark.slow),
    pytest.param((257, 383), id="257x383", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_backward_any_size(name: str, size: tuple[int, int]) -> None:
    model = _model(name)
    model.train()
    model.zero_grad(set_to_none=True)
    gen = torch.Generator().manual_seed(1)
    low = torch.rand(1, 3, *size, generator=gen) * 0.3  # low-light-like range
    target = torch.rand(1, 3, *size, generator=gen)

    out = model(low)

    assert out.shape == low.shape, f"{name}: output {tuple(out.shape)} for input {tuple(low.shape)}"
    assert torch.isfinite(out).all(), f"{name}: non-finite outputs"
    (out - target).abs().mean().backward()
    first_name, first = _first_layer_weight(model)
    assert first.grad is not None, f"{name}: no gradient reached the first layer ({first_name})"
    assert torch.isfinite(first.grad).all(), f"{name}: non-finite gradient in {first_name}"
    assert first.grad.abs().sum() > 0, f"{name}: zero gradient at the first layer ({first_name})"


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_inference_path_equals_the_autograd_path(name: str) -> None:
    # Several networks compute differently without autograd, for CPU speed (in-place activations, chunks,
    # channels-last): the result must be the same.
    model = _model(name).eval()
    x = torch.rand(1, 3, 37, 53, generator=torch.Generator().manual_seed(2)) * 0.3
    with torch.no_grad():
        fast = model(x)
    plain = model(x).detach()
    assert fast.shape == plain.shape
    # UHDFour amplifies float32 rounding to ~1e-4 here, and its inference path's NNPACK (Winograd) convolutions
    # round differently: both paths are equally close to float64 (tests/test_uhdfour.py checks that).
    atol = {"uhdfour": 3e-4}.get(name, 1e-5)
    torch.testing.assert_close(fast, plain, rtol=0, atol=atol, msg=name)


def test_in_place_gelu_only_without_autograd() -> None:
    from lumicap.models.common import GELUInPlaceWithoutGrad

    gelu = GELUInPlaceWithoutGrad()
    x = torch.randn(2, 5, 7, 3)
    expected = F.gelu(x)
    kept = x.clone()
    torch.testing.assert_close(gelu(x), expected, rtol=0, atol=0)
    assert torch.equal(x, kept)  # autograd on: the input is left alone
    with torch.no_grad():
        out = gelu(x)
    assert out.data_ptr() == x.data_ptr() and torch.equal(out, expected)


def test_channels_last_only_without_autograd() -> None:
    from lumicap.models.common import channels_last_without_grad

    x = torch.rand(1, 4, 5, 6)
    assert channels_last_without_grad(x) is x
    with torch.no_grad():
        y = channels_last_without_grad(x)
    assert y.is_contiguous(memory_format=torch.channels_last) and not y.is_contiguous() and torch.equal(y, x)


@pytest.mark.parametrize("kind", ["1x1", "depthwise 3x3 with bias"])
def test_fused_conv_gelu_equals_conv_then_gelu_and_only_without_autograd(kind: str) -> None:
    from lumicap.models.common import conv_gelu_fused

    torch.manual_seed(0)
    conv = nn.Conv2d(8, 24, 1, bias=False) if kind == "1x1" else nn.Conv2d(8, 8, 3, padding=1, groups=8)
    x = torch.randn(2, 8, 9, 11).contiguous(memory_format=torch.channels_last)
    assert conv_gelu_fused(conv, x) is None  # autograd on: the caller takes the plain path
    with torch.inference_mode():
        fused = conv_gelu_fused(conv, x)
        if fused is None:
            pytest.skip("this torch build has no oneDNN fused convolution")
        torch.testing.assert_close(fused, F.gelu(conv(x)), rtol=1e-5, atol=2e-6)
        reflect = nn.Conv2d(8, 8, 3, padding=1, padding_mode="reflect")
        assert conv_gelu_fused(reflect, x) is None  # only zero padding is what the fused op does


@pytest.mark.parametrize("band_elements", [1, 3 * 11 * 32, 10**9])  # one row, 3 rows, the whole map
@pytest.mark.parametrize("batch", [1, 2])  # one image: projection and residual as one product
def test_retinexformer_feed_forward_in_bands_equals_the_whole_map(band_elements: int, batch: int, monkeypatch) -> None:
    import lumicap.models.retinexformer as retinexformer

    torch.manual_seed(0)
    block = retinexformer.PreNorm(8, retinexformer.FeedForward(8))
    with torch.no_grad():
        block.norm.weight.uniform_(0.5, 1.5)
        block.norm.bias.uniform_(-0.2, 0.2)
    x = torch.randn(batch, 13, 11, 8)  # odd height: the last band is shorter
    expected = (x + block(x)).detach()  # autograd on: the whole-map form
    monkeypatch.setattr(retinexformer, "_BAND_ELEMENTS", band_elements)
    with torch.inference_mode():
        banded = block.residual(x)
    torch.testing.assert_close(banded, expected, rtol=1e-5, atol=2e-6)
    assert block.fn.residual_in_bands(x, block.norm) is None  # autograd on: no banded form


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("channels", [(6, 12), (64, 96)])  # narrow: matrix product; wide without grad: the conv
def test_pointwise_conv_is_a_1x1_conv(channels: tuple[int, int], bias: bool) -> None:
    from lumicap.models.common import PointwiseConv

    torch.manual_seed(0)
    pointwise = PointwiseConv(*channels, bias=bias)
    conv = nn.Conv2d(*channels, 1, bias=bias)
    assert pointwise.state_dict().keys() == conv.state_dict().keys()
    conv.load_state_dict(pointwise.state_dict())
    x = torch.randn(2, channels[0], 5, 7)
    for layout in (torch.contiguous_format, torch.channels_last):
        a = x.clone().contiguous(memory_format=layout).requires_grad_()
        b = x.clone().requires_grad_()
        torch.testing.assert_close(pointwise(a), conv(b), rtol=1e-5, atol=1e-5)
        pointwise(a).square().sum().backward()
        conv(b).square().sum().backward()
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-5)
        with torch.no_grad():
            torch.testing.assert_close(pointwise(a), conv(b), rtol=1e-5, atol=1e-5)
    for mine, theirs in zip(pointwise.parameters(), conv.parameters()):
        torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_parameter_count_matches_official(name: str) -> None:
    info = model_info(name)
    assert info.official_params, f"{name}: official_params must be stated (with params_source)"
    assert info.params_source, f"{name}: params_source must say where the official figure comes from"
    ours = count_parameters(build_model(name))
    diff = abs(ours - info.official_params) / info.official_params
    assert diff <= 0.01, f"{name}: {ours:,} parameters vs official {info.official_params:,} ({diff:.2%})"


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_recipe_is_well_formed(name: str) -> None:
    info = model_info(name)
    recipe = info.recipe
    assert recipe.stages, f"{name}: recipe has no stages"
    assert recipe.source, f"{name}: recipe must say where its numbers come from"
    model = build_model(name)
    for stage in recipe.stages:
        assert stage.iterations > 0 and stage.batch_size > 0, f"{name}/{stage.name}: empty stage"
        assert stage.patch_size is None or stage.patch_size > 0
        assert stage.losses and all(w > 0 for w in stage.losses.values()), f"{name}/{stage.name}: loss weights"
        assert stage.optimizer.get("lr", 0) > 0, f"{name}/{stage.name}: optimizer needs a learning rate"
        model_defined = set(stage.losses) - BUILTIN_LOSSES
        if stage.objective == "enhance":
            # The trainer computes only built-in terms on model(low) for "enhance" stages.
            assert not model_defined, f"{name}/{stage.name}: model-defined losses need a model-defined objective"
        else:
            assert hasattr(model, "stage_losses"), f"{name}/{stage.name}: needs model.stage_losses"
            low, high = torch.rand(1, 3, 32, 40) * 0.3, torch.rand(1, 3, 32, 40)
            terms = model.stage_losses(stage.name, low, high)
            missing = model_defined - set(terms)
            assert not missing, f"{name}/{stage.name}: stage_losses lacks {sorted(missing)}"
            if set(stage.losses) & BUILTIN_LOSSES or stage.mfr:
                assert "output" in terms, f"{name}/{stage.name}: built-in losses / MFR need an 'output' image"
        if hasattr(model, "stage_parameters"):
            params = list(model.stage_parameters(stage.name))
            assert params, f"{name}/{stage.name}: stage trains no parameters"


def test_unknown_model_lists_known_names() -> None:
    with pytest.raises(LumicapError) as err:
        build_model("no-such-net")
    message = str(err.value)
    assert "no-such-net" in message
    for name in MODEL_NAMES:
        assert name in message


def test_bad_override_is_a_one_line_error() -> None:
    with pytest.raises(LumicapError, match="bad override"):
        build_model(MODEL_NAMES[0], no_such_option=1)


def test_count_macs_of_a_known_conv() -> None:
    from lumicap.models.flops import count_macs

    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 1))
    # MACs = out_channels * in_channels * k*k * H * W per conv (biases and ReLU are not counted).
    expected = 8 * 3 * 9 * 16 * 20 + 2 * 8 * 1 * 16 * 20
    assert count_macs(net, (1, 3, 16, 20)) == expected


def test_models_command_json(capsys) -> None:
    from lumicap.cli import main

    assert main(["models", "--json", "--no-flops"]) == 0
    rows = json.loads(capsys.readouterr().out)["networks"]
    by_name = {row["name"]: row for row in rows}
    assert sorted(by_name) == sorted(info.name for info in list_models())
    for name, row in by_name.items():
        assert row["params"] == count_parameters(build_model(name))
        assert row["official_params"] == model_info(name).official_params
        assert row["paper"]
