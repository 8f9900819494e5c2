"""UHDFour: "Embedding Fourier for Ultra-High-Definition Low-Light Image Enhancement" (Li et al., ICLR 2023).

Written from the paper and the facts of the official code (github.com/Li-Chongyi/UHDFour_code,
``src/EnhanceN_arch_LOL.py`` for LOL, ``src/EnhanceN_arch.py`` for UHD-LL, ``src/UHDFour_model.py`` for the
losses, ``train.sh`` for the schedule). Two cascaded networks:

* **Low-resolution network** (``LowResolutionNet``): a 1x1 conv lifts the image to 8 channels, the result
  is bilinearly downsampled by ``scale`` and goes through a small U-Net (widths 192/384/576) of
  ``SpatialFrequencyBlock``\\ s. Each block runs a spatial branch (an affine-coupling block of
  half-instance-normalised conv units) beside a Fourier branch that processes the amplitude and the phase
  of ``rfft2(x)`` with separate 1x1-conv MLPs and goes back with ``irfft2``; a 1x1 conv fuses the two.
  It returns the low-resolution enhanced image and, as guidance, the amplitude and phase of its last
  features' spectrum.
* **High-resolution network** (``HighResolutionNet``): pixel-unshuffles the full-resolution input by
  ``scale`` (so it has the low-resolution grid and ``3*scale**2`` channels), adjusts its spectrum with the
  guidance (amplitude by spatial feature transform, phase by a 1x1 fusion), pixel-shuffles back and
  refines the result together with the upsampled low-resolution output.

The official code has two configurations and picks one by dataset (``UHDFour_model.py``):

* ``variant="lol"`` (LOLv1/LOLv2, this project's default): scale 2; the high-resolution network adds two
  plain Fourier blocks after the guided one, and its head is 1x1 (6->32) then three 3x3 convs.
* ``variant="uhd"`` (UHD-LL 4K, the paper's headline model): scale 8; guided block only, head 1x1 (6->16)
  then one 3x3 conv.

So the paper's "downsample by 8" is the UHD-LL model; on LOL (600x400) the official model downsamples by
2. ``training_outputs(x)["output_lowres"]`` has size ``(ceil(H/scale), ceil(W/scale))``: H/2 x W/2 for the
default, H/8 x W/8 for ``variant="uhd"``. The matching reference is the reference resized bilinearly to
that size (``lowres_reference``), which is exactly the official ``F.interpolate(target, scale_factor=1/scale,
mode='bilinear')`` whenever H and W are multiples of ``scale``.

Any H, W: the input is reflect-padded to a multiple of ``4*scale`` (the low-resolution U-Net halves its
grid twice) and both outputs are cropped back.

Speed (CPU). The arithmetic is the official network's; what differs is how each op runs (figures: issue
26, 2026-12-07, 2-core AMD EPYC shared with other jobs, ``benchmarks/bench_vs_official.py``, same weights):

* 3x3 convolutions without autograd, one image: NNPACK's Winograd convolution (``_conv3x3``) instead of
  oneDNN's direct one: 2-3x faster per conv at 96-288 channels, the whole 600x400 inference 25% less CPU
  time. It rounds differently (~1e-5 relative per conv); the golden cases stay within 2e-6 of the official
  outputs. With autograd, NNPACK's forward did not pay with two threads, so training keeps oneDNN.
* 3x3 convolutions with autograd and at most 12 input channels (the high-resolution blocks): ATen's im2col
  convolution, whose backward with two threads takes ~1 ms where oneDNN's takes ~10 (train step 9% less
  CPU time at 2 threads, no change at 1).
* 1x1 convolutions as batched matrix products (``_pointwise``) that read the pieces of a would-be
  ``torch.cat`` where they are, and add the residual in the same accumulation: 4% less inference time at 1
  thread, 14% less train-step CPU time at 2 threads (oneDNN's 1x1 backward is slow for few channels).
* Without autograd: the half instance norm in place (no split and cat), the amplitude as ``hypot`` of the
  real and imaginary parts (a third of complex ``abs``'s time, same numbers). LeakyReLUs run in place
  wherever the op before does not keep its output for its backward.

Measured against the official code (lumicap / official, wall clock, interleaved rounds): inference 600x400
0.65 at 1 thread, 0.69-0.71 at 2; train step b2 128x128 1.00 at 1 thread, 0.78-0.82 at 2 (CPU time 0.82-0.85;
two runs of 5 rounds, load 3-5). At 1
thread the train step cannot gain more this way: half of it is the coupling blocks' 3x3 convolutions
(forward and backward, oneDNN either side), the rest mostly 1x1 products of the same size. Tried and not
kept (no gain or slower): channels-last coupling blocks (convs ~20% faster alone, the layout changes ate
it), one conv for the two 3x3 convs that share an input (``shift2``/``log_scale``), ``torch.polar``
(slower with autograd), the instance norm as ``var_mean`` scale-and-shift with autograd. The modules the
official forward never calls (below) are not built, so they cost nothing.

Rounding: the network amplifies rounding differences. On a LOL 600x400 image (official-init random weights,
outputs up to 5.9) the official code at 2 threads differs from itself at 1 thread by up to 2.8e-4; lumicap
differs from it (1 thread) by up to 2.6e-4, the same size. The small golden cases agree within 2e-6.

Parameter count. The official ``InteractNet`` constructs modules its forward never calls (two 3x3 convs
per Fourier block, in LOL and UHD alike, plus two Fourier blocks and two 3x3 convs of the UHD
high-resolution head); they receive no gradient and do not affect the output, so they are left out here.
Counted from the official definitions (every module the forward calls): 15,899,306 parameters for LOL
(28,518,098 with the never-called ones) and 17,537,370 for UHD-LL (33,641,978). This implementation has
exactly these numbers.
"""

from __future__ import annotations

from typing import Literal

import math

import torch
import torch.nn.functional as F
from torch import nn

from lumicap.models.common import crop_to, pad_to_multiple, plain_form_wanted
from lumicap.models.registry import Recipe, Stage, register_model


def _pointwise(conv: nn.Conv2d, *pieces: torch.Tensor, plus: torch.Tensor | None = None) -> torch.Tensor:
    """The 1x1 ``conv`` applied to the channel concatenation of ``pieces`` (plus ``plus``, if given), as one
    batched matrix product per piece: ``bias + W[:, piece] @ piece``, accumulated in place.

    Same map as ``conv(torch.cat(pieces, 1))``, without the concatenated copy; the pieces may be views
    (channel slices) or channels-last, which the matrix product reads as they are. oneDNN's 1x1
    convolution is slower than the matrix product here, by far for few channels (see the module docstring).
    """
    # autocast casts per op: one conv keeps it consistent; a MAC count or a recording sees the plain conv
    if torch.is_autocast_enabled(pieces[0].device.type) or plain_form_wanted():
        out = conv(torch.cat(pieces, dim=1) if len(pieces) > 1 else pieces[0])
        return out if plus is None else out + plus
    batch, _, height, width = pieces[0].shape
    weights = conv.weight.flatten(1).split([piece.shape[1] for piece in pieces], dim=1)
    bias = conv.bias.view(1, -1, 1)
    out = None if plus is None else plus.flatten(2) + bias
    for piece, weight in zip(pieces, weights):
        weight = weight.expand(batch, *weight.shape)
        out = torch.baddbmm(bias, weight, piece.flatten(2)) if out is None else out.baddbmm_(weight, piece.flatten(2))
    return out.view(batch, -1, height, width)


def _records_grad(*tensors: torch.Tensor) -> bool:
    """Whether autograd records an op on ``tensors`` (then in-place shortcuts are not taken)."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _conv3x3(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` (3x3, stride 1, padding 1) through the CPU backend that is fastest for it (figures in the
    module docstring); on other devices, other dtypes or under autocast simply ``conv(x)``:

    * autograd not recording, one image: NNPACK's Winograd convolution (2-3x faster than oneDNN's direct one
      at this network's shapes; it differs from the direct result by ~1e-5 relative);
    * autograd recording, few input channels: ATen's plain (im2col + matrix product) convolution, whose
      backward takes a fraction of oneDNN's time there with two threads;
    * otherwise ``conv(x)`` (oneDNN).
    """
    if x.device.type != "cpu" or x.dtype != torch.float32 or torch.is_autocast_enabled("cpu") or plain_form_wanted():
        return conv(x)  # (a MAC count or a recording sees the plain convolution)
    if _records_grad(x, conv.weight):
        if conv.in_channels <= _FEW_CHANNELS:
            return torch.ops.aten.thnn_conv2d(x, conv.weight, conv.kernel_size, conv.bias, conv.stride, conv.padding)
    elif x.shape[0] == 1 and _nnpack():  # batched NNPACK (another algorithm) was slower than oneDNN
        return torch._nnpack_spatial_convolution(x, conv.weight, conv.bias, conv.padding, conv.stride)
    return conv(x)


_FEW_CHANNELS = 12


def _nnpack() -> bool:
    """NNPACK is in PyTorch's x86 and ARM CPU builds; ``_nnpack_available`` also initialises it (its
    convolution fails before that)."""
    global _NNPACK_AVAILABLE
    if _NNPACK_AVAILABLE is None:
        _NNPACK_AVAILABLE = torch._nnpack_available()
    return _NNPACK_AVAILABLE


_NNPACK_AVAILABLE: bool | None = None


class HalfInstanceNormBlock(nn.Module):
    """conv3x3 -> instance norm on half the channels (HINet) -> LeakyReLU(0.1) -> conv3x3 -> LeakyReLU, plus a
    1x1-conv skip. The official ``UNetConvBlock`` with ``use_HIN=True``."""

    def __init__(self, in_channels: int, out_channels: int, slope: float = 0.1) -> None:
        super().__init__()
        self.skip = nn.Conv2d(in_channels, out_channels, 1)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.half_norm = nn.InstanceNorm2d(out_channels // 2, affine=True)
        self.act = nn.LeakyReLU(slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = _conv3x3(self.conv1, x)
        half = self.half_norm.num_features
        if _records_grad(out):
            out = torch.cat([self.half_norm(out[:, :half]), out[:, half:]], dim=1)
        else:  # normalised in place: no concatenated copy
            out[:, :half] = self.half_norm(out[:, :half])
        out = F.leaky_relu_(_conv3x3(self.conv2, F.leaky_relu_(out, self.act.negative_slope)), self.act.negative_slope)
        return _pointwise(self.skip, x, plus=out)


class AffineCoupling(nn.Module):
    """Invertible-network style coupling: y1 = x1 + F(x2); y2 = x2 * exp(s(y1)) + G(y1), with the log-scale
    s = clamp * (2 sigmoid(H(y1)) - 1) kept in (-clamp, clamp). The official ``InvBlock``."""

    def __init__(self, channels: int, clamp: float = 0.8) -> None:
        super().__init__()
        self.split = (channels // 2, channels - channels // 2)
        self.clamp = clamp
        self.shift1 = HalfInstanceNormBlock(self.split[1], self.split[0])  # F
        self.shift2 = HalfInstanceNormBlock(self.split[0], self.split[1])  # G
        self.log_scale = HalfInstanceNormBlock(self.split[0], self.split[1])  # H

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(self.halves(x), dim=1)

    def halves(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``forward``'s two halves (y1, y2), not concatenated."""
        x1, x2 = x.split(self.split, dim=1)
        y1 = x1 + self.shift1(x2)
        s = self.clamp * (torch.sigmoid(self.log_scale(y1)) * 2 - 1)
        y2 = torch.addcmul(self.shift2(y1), x2, torch.exp(s))
        return y1, y2


def _pointwise_mlp(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels, channels, 1), nn.LeakyReLU(0.1), nn.Conv2d(channels, channels, 1))


def _mlp(mlp: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """A ``_pointwise_mlp`` (1x1 conv, LeakyReLU, 1x1 conv) as matrix products."""
    return _pointwise(mlp[2], F.leaky_relu_(_pointwise(mlp[0], x), mlp[1].negative_slope))


def _polar_to_complex(amplitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    # fp32 (or fp64) even under bf16/fp16 autocast: complex tensors and cuFFT/pocketfft have no bfloat16.
    # (torch.polar is no faster without autograd and slower with it.)
    amplitude, phase = _at_least_fp32(amplitude), _at_least_fp32(phase)
    return torch.complex(amplitude * torch.cos(phase), amplitude * torch.sin(phase))


def _amplitude(spectrum: torch.Tensor) -> torch.Tensor:
    """``spectrum.abs()``; without autograd as ``hypot`` of the real and imaginary parts, the same numbers at a
    third of the time. (With autograd ``abs`` stays: its gradient at 0 is 0, ``hypot``'s is NaN.)"""
    if _records_grad(spectrum):
        return spectrum.abs()
    parts = torch.view_as_real(spectrum)
    return torch.hypot(parts[..., 0], parts[..., 1])


def _at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _rfft2(x: torch.Tensor) -> torch.Tensor:
    """``rfft2`` in fp32 or fp64 (autocast leaves FFTs alone, and they refuse bfloat16 inputs)."""
    return torch.fft.rfft2(_at_least_fp32(x), norm="backward")


class FourierBranch(nn.Module):
    """Processes amplitude and phase of a spectrum separately (luminance lives in the amplitude, noise in the
    phase, the paper's observation) with 1x1-conv MLPs; returns the new complex spectrum."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.amplitude = _pointwise_mlp(channels)
        self.phase = _pointwise_mlp(channels)

    def forward(self, spectrum: torch.Tensor) -> torch.Tensor:
        return _polar_to_complex(_mlp(self.amplitude, _amplitude(spectrum)), _mlp(self.phase, spectrum.angle()))


class AmplitudeModulation(nn.Module):
    """Spatial feature transform of an amplitude map by a guide: fuse([x, x * conv(guide) + conv(guide)])."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.scale = nn.Conv2d(channels, channels, 3, padding=1)
        self.shift = nn.Conv2d(channels, channels, 3, padding=1)
        self.fuse = nn.Conv2d(2 * channels, channels, 1)

    def forward(self, x: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        return _pointwise(self.fuse, x, torch.addcmul(_conv3x3(self.shift, guide), x, _conv3x3(self.scale, guide)))


class GuidedFourierBranch(FourierBranch):
    """``FourierBranch`` whose amplitude is modulated by the low-resolution result's amplitude and whose phase
    is fused with the low-resolution result's phase (the high-resolution "adjustment")."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels)
        self.amplitude_guidance = AmplitudeModulation(channels)
        self.phase_guidance = nn.Conv2d(2 * channels, channels, 1)

    def forward(self, spectrum: torch.Tensor, guide_amplitude: torch.Tensor, guide_phase: torch.Tensor) -> torch.Tensor:
        amplitude = self.amplitude_guidance(_mlp(self.amplitude, _amplitude(spectrum)), guide_amplitude)
        phase = _pointwise(self.phase_guidance, guide_phase, _mlp(self.phase, spectrum.angle()))
        return _polar_to_complex(amplitude, phase)


class SpatialFrequencyBlock(nn.Module):
    """Residual block: spatial branch (x + coupling(x)) beside a Fourier branch, fused by a 1x1 conv.

    The official ``ProcessBlock``; its two extra 3x3 convs are never called there and are left out.
    """

    def __init__(self, channels: int, guided: bool = False) -> None:
        super().__init__()
        self.coupling = AffineCoupling(channels)
        self.fourier = GuidedFourierBranch(channels) if guided else FourierBranch(channels)
        self.fuse = nn.Conv2d(2 * channels, channels, 1)

    def forward(self, x: torch.Tensor, *guide: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        spectrum = _rfft2(x)
        spatial = [half + y for half, y in zip(x.split(self.coupling.split, dim=1), self.coupling.halves(x))]
        frequency = torch.fft.irfft2(self.fourier(spectrum, *guide), s=(h, w), norm="backward")
        return _pointwise(self.fuse, *spatial, frequency, plus=x)


class LowResolutionNet(nn.Module):
    """Three-level U-Net of ``SpatialFrequencyBlock``\\ s (widths w, 2w, 3w) on the downsampled image.

    Returns the low-resolution RGB result and the (1x1-conv transformed) amplitude and phase of the spectrum
    of its last ``guide_channels``-channel features, which guide the high-resolution network.
    """

    def __init__(self, in_channels: int = 8, width: int = 192, guide_channels: int = 12) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, width, 1)
        self.enc1 = SpatialFrequencyBlock(width)
        self.down1 = nn.Conv2d(width, 2 * width, 2, stride=2)
        self.enc2 = SpatialFrequencyBlock(2 * width)
        self.down2 = nn.Conv2d(2 * width, 3 * width, 2, stride=2)
        self.bottleneck = SpatialFrequencyBlock(3 * width)
        # The official code uses 1x1 ConvTranspose2d here, which is the same map as a 1x1 conv; initialised
        # as that layer is (its default init reads fan-in from the output side: std 0.029, not 0.019).
        self.merge2 = _transposed_init(nn.Conv2d(5 * width, 2 * width, 1))
        self.dec2 = SpatialFrequencyBlock(2 * width)
        self.merge1 = _transposed_init(nn.Conv2d(3 * width, width, 1))
        self.dec1 = SpatialFrequencyBlock(width)
        self.to_guide = nn.Conv2d(width, guide_channels, 1)
        self.to_rgb = nn.Conv2d(guide_channels, 3, 1)
        self.guide_amplitude = nn.Conv2d(guide_channels, guide_channels, 1)
        self.guide_phase = nn.Conv2d(guide_channels, guide_channels, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        e1 = self.enc1(_pointwise(self.stem, x))
        e2 = self.enc2(self.down1(e1))
        b = self.bottleneck(self.down2(e2))
        d2 = self.dec2(_pointwise(self.merge2, _resize(b, e2), e2))
        d1 = self.dec1(_pointwise(self.merge1, _resize(d2, e1), e1))
        features = _pointwise(self.to_guide, d1)
        spectrum = _rfft2(features)
        return (
            _pointwise(self.to_rgb, features),
            _pointwise(self.guide_amplitude, _amplitude(spectrum)),
            _pointwise(self.guide_phase, spectrum.angle()),
        )


def _transposed_init(conv: nn.Conv2d) -> nn.Conv2d:
    """PyTorch's default init of the equal ``ConvTranspose2d``: weight and bias uniform in +-1/sqrt(fan_in),
    where that layer's fan-in is this conv's output channels times the kernel area."""
    bound = 1.0 / math.sqrt(conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1])
    nn.init.uniform_(conv.weight, -bound, bound)
    nn.init.uniform_(conv.bias, -bound, bound)
    return conv


def _resize(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class HighResolutionNet(nn.Module):
    """Full-resolution branch: pixel-unshuffle to the low-resolution grid, guided spectrum adjustment (plus
    ``refine_blocks`` plain blocks), pixel-shuffle back, then a small conv head that also sees the
    upsampled low-resolution result. No activations in the head (as in the official code)."""

    def __init__(self, scale: int, refine_blocks: int, head_width: int, head_hidden_convs: int) -> None:
        super().__init__()
        self.scale = scale
        channels = 3 * scale * scale
        self.guided = SpatialFrequencyBlock(channels, guided=True)
        self.refine = nn.ModuleList(SpatialFrequencyBlock(channels) for _ in range(refine_blocks))
        self.after_shuffle = nn.Conv2d(3, 3, 3, padding=1)
        self.head_in = nn.Conv2d(6, head_width, 1)
        self.head_hidden = nn.Sequential(
            *(nn.Conv2d(head_width, head_width, 3, padding=1) for _ in range(head_hidden_convs))
        )
        self.head_out = nn.Conv2d(head_width, 3, 3, padding=1)

    def forward(
        self, x: torch.Tensor, lowres: torch.Tensor, guide_amplitude: torch.Tensor, guide_phase: torch.Tensor
    ) -> torch.Tensor:
        features = self.guided(F.pixel_unshuffle(x, self.scale), guide_amplitude, guide_phase)
        for block in self.refine:
            features = block(features)
        coarse = _conv3x3(self.after_shuffle, F.pixel_shuffle(features, self.scale))
        upsampled = F.interpolate(lowres, scale_factor=self.scale, mode="bilinear", align_corners=False)
        out = _pointwise(self.head_in, upsampled, coarse)
        for conv in self.head_hidden:
            out = _conv3x3(conv, out)
        return _conv3x3(self.head_out, out)


_VARIANTS = {
    # scale, high-res refinement blocks, head width, hidden 3x3 convs in the head
    "lol": dict(scale=2, refine_blocks=2, head_width=32, head_hidden_convs=2),
    "uhd": dict(scale=8, refine_blocks=0, head_width=16, head_hidden_convs=0),
}


class UHDFour(nn.Module):
    """UHDFour. ``forward(x)`` returns the full-resolution result; ``training_outputs(x)`` also returns the
    low-resolution one (``"output_lowres"``, size ``(ceil(H/scale), ceil(W/scale))``).

    Args:
        variant: ``"lol"`` (official LOLv1/v2 model, scale 2) or ``"uhd"`` (official UHD-LL model, scale 8).
        base_channels: the official ``nc`` (16): the image is lifted to ``base_channels // 2`` channels and the
            low-resolution U-Net is ``12 * base_channels`` wide.
    """

    def __init__(self, variant: str = "lol", base_channels: int = 16) -> None:
        super().__init__()
        if variant not in _VARIANTS:
            raise ValueError(f"UHDFour variant must be one of {sorted(_VARIANTS)}, got {variant!r}")
        config = _VARIANTS[variant]
        self.variant = variant
        self.scale = config["scale"]
        self.lift = nn.Conv2d(3, base_channels // 2, 1)
        self.lowres_net = LowResolutionNet(base_channels // 2, 12 * base_channels, 3 * self.scale**2)
        self.highres_net = HighResolutionNet(**config)

    @property
    def pad_multiple(self) -> int:
        return 4 * self.scale

    def lowres_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """Size of ``output_lowres`` for an input of ``size`` (H, W)."""
        return math.ceil(size[0] / self.scale), math.ceil(size[1] / self.scale)

    def lowres_reference(self, reference: torch.Tensor) -> torch.Tensor:
        """The reference the low-resolution output is compared with: bilinear resize to ``lowres_size``."""
        size = self.lowres_size(tuple(reference.shape[-2:]))
        return F.interpolate(reference, size=size, mode="bilinear", align_corners=False)

    def training_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        padded, size = pad_to_multiple(x, self.pad_multiple)
        lifted = _pointwise(self.lift, padded)
        lifted = F.interpolate(lifted, scale_factor=1 / self.scale, mode="bilinear", align_corners=False)
        lowres, guide_amplitude, guide_phase = self.lowres_net(lifted)
        output = self.highres_net(padded, lowres, guide_amplitude, guide_phase)
        return {"output": crop_to(output, size), "output_lowres": crop_to(lowres, self.lowres_size(size))}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.training_outputs(x)["output"]


UHDFOUR_RECIPE = Recipe(
    stages=(
        Stage(
            name="train",
            # 1000 epochs over LOL-v1's 485 training pairs at batch 2 (243 batches per epoch).
            iterations=243_000,
            batch_size=2,
            patch_size=None,
            losses={"smooth_l1": 5.0, "lowres_smooth_l1": 0.5, "vgg19": 0.001, "ssim": 0.002},
            optimizer={"name": "adam", "lr": 1e-4, "betas": (0.9, 0.99), "eps": 1e-8},
            scheduler={"name": "constant"},
        ),
    ),
    source="official code: src/train.py defaults, train.sh (LOLv1: --nb-epochs 1000 --batch-size 2 "
    "--train-size 400 600), src/UHDFour_model.py (losses, optimizer)",
    notes=(
        "Loss (UHDFour_model.py): 5*SmoothL1(output, ref) + 0.5*SmoothL1(output_lowres, ref resized to the low-res "
        "size) + 0.001*MSE(VGG19 conv4_4 (pre-ReLU) of output_lowres, of the resized ref; inputs in [0,1], no ImageNet "
        "normalisation: lumicap.vgg preset 'uhdfour') + 0.002*(1 - SSIM(output, ref), Gaussian window 11, sigma 1.5). "
        "Note the VGG term is computed on the low-resolution pair. "
        "Scheduler: the official code builds CosineAnnealingWarmRestarts(T_0=2, T_mult=2) but steps it once per epoch "
        "with the validation L1 as the 'epoch' argument, so the rate stays at 1e-4*(1+cos(pi*L1/2))/2, i.e. about "
        "1e-4: recorded as constant. Data: whole 600x400 images, random horizontal flip and rotation by k*90 degrees "
        "(torchvision rotate without expand, so the canvas keeps its size)."
    ),
)


@register_model(
    paper="Li et al., Embedding Fourier for Ultra-High-Definition Low-Light Image Enhancement, ICLR 2023",
    official_params=15_899_306,
    params_source=(
        "computed from the official LOL definition (Li-Chongyi/UHDFour_code src/EnhanceN_arch_LOL.py InteractNet, "
        "nc=16), counting every module its forward calls; the file also builds never-called convs (28,518,098 in "
        "total). variant='uhd' (src/EnhanceN_arch.py): 17,537,370 (33,641,978 in total)"
    ),
    recipe=UHDFOUR_RECIPE,
    constructor=UHDFour,
    allowed={"variant": Literal[tuple(_VARIANTS)]},
)
def uhdfour(**overrides) -> nn.Module:
    return UHDFour(**{"variant": "lol", "base_channels": 16, **overrides})
