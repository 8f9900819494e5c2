"""UHDFour specifics: the two outputs' sizes, the low-resolution reference, the official parameter counts,
the recipe. Small widths (``base_channels=2``) keep the forward passes cheap; the generic contract tests in
``test_models.py`` run the full-size model."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from lumicap.models import build_model, count_parameters, model_info
from lumicap.models.uhdfour import (
    FourierBranch,
    HalfInstanceNormBlock,
    SpatialFrequencyBlock,
    UHDFour,
    _amplitude,
    _conv3x3,
    _pointwise,
)


@pytest.mark.parametrize(
    ("variant", "size", "lowres"),
    [
        ("lol", (29, 43), (15, 22)),
        ("lol", (9, 13), (5, 7)),
        ("uhd", (41, 19), (6, 3)),
    ],
)
def test_outputs_have_documented_sizes(variant, size, lowres):
    torch.manual_seed(0)
    model = UHDFour(variant, base_channels=2)
    x = torch.rand(1, 3, *size)
    out = model.training_outputs(x)
    assert out["output"].shape == (1, 3, *size)
    assert out["output_lowres"].shape == (1, 3, *lowres)
    assert model.lowres_size(size) == lowres


def test_lowres_reference_is_the_official_downsampling():
    model = UHDFour("lol", base_channels=4)
    target = torch.rand(1, 3, 40, 60)
    official = F.interpolate(target, scale_factor=0.5, mode="bilinear")  # UHDFour_model.py, LOL branch
    torch.testing.assert_close(model.lowres_reference(target), official)
    odd = torch.rand(1, 3, 41, 61)
    assert model.lowres_reference(odd).shape[-2:] == model.lowres_size((41, 61)) == (21, 31)


def test_fourier_branch_keeps_spectrum_when_mlps_are_identity():
    """Amplitude and phase are processed separately and recombined as amplitude * exp(i * phase)."""
    branch = FourierBranch(3)
    with torch.no_grad():
        for mlp in (branch.amplitude, branch.phase):
            mlp[0].weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            mlp[0].bias.fill_(10.0)  # keeps the LeakyReLU input positive, so it acts as identity
            mlp[2].weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            mlp[2].bias.fill_(-10.0)
    spectrum = torch.fft.rfft2(torch.rand(1, 3, 8, 10))
    torch.testing.assert_close(branch(spectrum), spectrum, rtol=1e-4, atol=1e-4)


def test_block_handles_odd_sizes():
    block = SpatialFrequencyBlock(6)
    x = torch.rand(1, 6, 7, 9)
    assert block(x).shape == x.shape


def test_highres_branch_uses_the_lowres_guidance():
    torch.manual_seed(0)
    model = UHDFour("lol", base_channels=2).eval()
    x = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        before = model(x)
        model.lowres_net.guide_phase.bias.add_(1.0)  # changes only the phase guidance
        after = model(x)
    assert not torch.allclose(before, after)


def _official_forward_params(scale: int) -> int:
    """Parameters of the modules the official InteractNet's forward calls (nc=16), counted from its layer list
    (src/EnhanceN_arch_LOL.py for scale 2, src/EnhanceN_arch.py for scale 8)."""

    def conv(cin, cout, k):
        return cin * cout * k * k + cout

    def unet_block(cin, cout):  # UNetConvBlock with HIN: 1x1 identity, two 3x3, InstanceNorm(cout//2, affine)
        return conv(cin, cout, 1) + conv(cin, cout, 3) + conv(cout, cout, 3) + 2 * (cout // 2)

    def process_block(nc, adjust=False):  # InvBlock(F, G, H) + FreBlock(4 1x1) + cat 1x1 (+ SFT and phase cat)
        a, b = nc // 2, nc - nc // 2
        total = unet_block(b, a) + 2 * unet_block(a, b) + 4 * conv(nc, nc, 1) + conv(2 * nc, nc, 1)
        if adjust:
            total += 2 * conv(nc, nc, 3) + conv(2 * nc, nc, 1) + conv(2 * nc, nc, 1)
        return total

    nc, g = 192, 3 * scale * scale
    lownet = (conv(8, nc, 1) + process_block(nc) + conv(nc, 2 * nc, 2) + process_block(2 * nc)
              + conv(2 * nc, 3 * nc, 2) + process_block(3 * nc) + conv(5 * nc, 2 * nc, 1) + process_block(2 * nc)
              + conv(3 * nc, nc, 1) + process_block(nc) + conv(nc, g, 1) + conv(g, 3, 1) + 2 * conv(g, g, 1))
    if scale == 2:
        highnet = (process_block(12, adjust=True) + 2 * process_block(12) + conv(3, 3, 3) + conv(6, 32, 1)
                   + 2 * conv(32, 32, 3) + conv(32, 3, 3))
    else:
        highnet = process_block(192, adjust=True) + conv(3, 3, 3) + conv(6, 16, 1) + conv(16, 3, 3)
    return conv(3, 8, 1) + lownet + highnet


def test_parameter_counts_equal_the_official_forward():
    assert count_parameters(build_model("uhdfour")) == _official_forward_params(2)
    assert count_parameters(build_model("uhdfour", variant="uhd")) == _official_forward_params(8)
    assert model_info("uhdfour").official_params == _official_forward_params(2)


def test_recipe_is_the_official_one():
    (stage,) = model_info("uhdfour").recipe.stages
    assert stage.losses == {"smooth_l1": 5.0, "lowres_smooth_l1": 0.5, "vgg19": 0.001, "ssim": 0.002}
    assert stage.batch_size == 2 and stage.patch_size is None
    assert stage.optimizer["name"] == "adam" and stage.optimizer["lr"] == 1e-4
    assert tuple(stage.optimizer["betas"]) == (0.9, 0.99)
    assert stage.iterations == 1000 * 243  # 1000 epochs, ceil(485 / 2) batches each


# The fast paths of uhdfour.py (module docstring, "Speed") against the straightforward formulas they replace.


def test_pointwise_equals_the_conv_of_the_concatenation_with_gradients():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(10, 4, 1)
    whole = torch.rand(2, 7, 5, 6, requires_grad=True)
    pieces = [whole[:, :3], whole[:, 3:], torch.rand(2, 3, 5, 6, requires_grad=True)]  # channel slices are views
    plus = torch.rand(2, 4, 5, 6, requires_grad=True)
    inputs = [whole, pieces[2], plus, conv.weight, conv.bias]
    fast = _pointwise(conv, *pieces, plus=plus)
    fast_grads = torch.autograd.grad((fast * torch.arange(4.0).view(1, 4, 1, 1)).sum(), inputs)
    plain = conv(torch.cat(pieces, dim=1)) + plus
    plain_grads = torch.autograd.grad((plain * torch.arange(4.0).view(1, 4, 1, 1)).sum(), inputs)
    torch.testing.assert_close(fast, plain)
    for a, b in zip(fast_grads, plain_grads):
        torch.testing.assert_close(a, b)


def _plain_half_instance_norm_block(block: HalfInstanceNormBlock, x: torch.Tensor) -> torch.Tensor:
    """The official UNetConvBlock's forward, written out."""
    out = F.conv2d(x, block.conv1.weight, block.conv1.bias, padding=1)
    normed, kept = torch.chunk(out, 2, dim=1)
    out = F.leaky_relu(torch.cat([block.half_norm(normed), kept], dim=1), 0.1)
    out = F.leaky_relu(F.conv2d(out, block.conv2.weight, block.conv2.bias, padding=1), 0.1)
    return out + block.skip(x)


@pytest.mark.parametrize("channels", [6, 32])  # few channels: ATen's im2col conv when recording; many: oneDNN
def test_half_instance_norm_block_equals_the_plain_formula_with_and_without_autograd(channels):
    torch.manual_seed(0)
    block = HalfInstanceNormBlock(channels, channels)
    with torch.no_grad():
        block.half_norm.weight.uniform_(0.5, 1.5)
        block.half_norm.bias.uniform_(-0.5, 0.5)
    x = torch.rand(2, channels, 9, 11, requires_grad=True)
    fast = block(x)  # autograd recording: the concatenating path
    plain = _plain_half_instance_norm_block(block, x)
    torch.testing.assert_close(fast, plain)
    params = [x, *block.parameters()]
    for a, b in zip(torch.autograd.grad(fast.square().sum(), params), torch.autograd.grad(plain.square().sum(), params)):
        # relative to the largest entry: conv1's bias gets gradient 0 on normalised channels, up to rounding
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))
    with torch.no_grad():  # in-place normalisation; for one image NNPACK's Winograd 3x3 convs where available
        torch.testing.assert_close(block(x), plain, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(block(x[:1]), plain[:1], rtol=1e-4, atol=1e-5)


def test_conv3x3_backends_equal_the_direct_convolution():
    torch.manual_seed(0)
    for channels in (3, 12, 48):
        conv = torch.nn.Conv2d(channels, channels, 3, padding=1)
        x = torch.rand(2, channels, 13, 10, requires_grad=True)
        direct = F.conv2d(x, conv.weight, conv.bias, padding=1)
        fast = _conv3x3(conv, x)
        torch.testing.assert_close(fast, direct)
        params = [x, conv.weight, conv.bias]
        for a, b in zip(torch.autograd.grad(fast.sum(), params), torch.autograd.grad(direct.sum(), params)):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
        with torch.inference_mode():
            torch.testing.assert_close(_conv3x3(conv, x), direct.detach(), rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(_conv3x3(conv, x[:1]), direct[:1].detach(), rtol=1e-4, atol=1e-5)


def test_amplitude_without_autograd_is_abs_also_at_zero():
    spectrum = torch.fft.rfft2(torch.rand(1, 2, 6, 8))
    spectrum[0, 0, 1] = 0  # a row of exact zeros
    with torch.no_grad():
        torch.testing.assert_close(_amplitude(spectrum), spectrum.abs(), rtol=0, atol=0)


def test_training_and_inference_paths_of_the_network_agree():
    """The golden tests check the inference path against the official outputs; the path autograd records
    (concatenating half norm, abs, im2col/oneDNN convs) must compute the same network."""
    torch.manual_seed(0)
    model = UHDFour("lol", base_channels=4)
    x = torch.rand(1, 3, 24, 32)  # one image: NNPACK's convolutions without autograd
    recorded = model.training_outputs(x)
    with torch.no_grad():
        inferred = model.training_outputs(x)
    for name in ("output", "output_lowres"):
        torch.testing.assert_close(recorded[name].detach(), inferred[name], rtol=1e-4, atol=1e-5)
    recorded["output"].mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_nnpack_path_is_as_close_to_float64_as_the_direct_one():
    """The network amplifies float32 rounding (here to ~1e-4 of an output of ~0.1), so the inference path
    with NNPACK's Winograd convolutions and the direct (oneDNN) path differ by about that much; both must be
    equally close to the same network computed in float64."""
    torch.manual_seed(0)
    model = UHDFour("lol", base_channels=4).eval()
    x = torch.rand(1, 3, 37, 53, generator=torch.Generator().manual_seed(2)) * 0.3
    with torch.no_grad():
        reference = copy.deepcopy(model).double()(x.double())
        fast = model(x)  # one image without autograd: NNPACK where available
    direct = model(x).detach()  # autograd recording: oneDNN's direct convolutions
    direct_error = float((direct.double() - reference).abs().max())
    fast_error = float((fast.double() - reference).abs().max())
    assert fast_error <= 2 * direct_error + 1e-6, (fast_error, direct_error)


def test_bf16_autocast_runs_on_the_cpu():
    model = UHDFour("lol", base_channels=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.rand(1, 3, 16, 24))
    assert out.shape == (1, 3, 16, 24) and torch.isfinite(out.float()).all()


def test_mac_count_is_of_the_plain_convolutions_not_the_fast_paths(monkeypatch):
    """NNPACK's convolution and the in-place matrix products are not what FlopCounterMode counts as the
    network's convolutions: a MAC count (plain_forward) must see the plain ops, whatever the grad mode."""
    import lumicap.models.uhdfour as uhdfour
    from lumicap.models.flops import count_macs

    model = uhdfour.UHDFour(base_channels=2)
    counted = count_macs(model, (1, 3, 32, 48))
    monkeypatch.setattr(uhdfour, "_conv3x3", lambda conv, x: conv(x))
    monkeypatch.setattr(uhdfour, "_pointwise", lambda conv, *pieces, plus=None: (
        conv(torch.cat(pieces, 1)) if plus is None else conv(torch.cat(pieces, 1)) + plus))
    assert counted == count_macs(model, (1, 3, 32, 48)) > 0
