"""MIRNet (Zamir et al., ECCV 2020): "Learning Enriched Features for Real Image Restoration and
Enhancement", https://arxiv.org/abs/2003.06792.

Written from the paper and the facts of the official ``networks/MIRNet_model.py`` (swz30/MIRNet); no code
copied. The network (paper Fig. 1): a 3x3 conv to 64 channels, three recursive residual groups (RRG),
a 3x3 conv back to RGB, and a global residual (output = input + predicted residual).

- An RRG is two multi-scale residual blocks (MRB) and a 3x3 conv, with a residual connection.
- An MRB (paper Fig. 2) runs three parallel streams at full, 1/2 and 1/4 resolution with 64, 128 and
  256 channels. Each stream applies a dual attention unit (DAU) twice; between the two applications
  every stream receives all three streams' features, resampled to its scale and merged by selective
  kernel feature fusion (SKFF). At the end the streams are upsampled to full resolution, fused by
  SKFF, passed through a 3x3 conv and added to the block input.
- DAU (Fig. 4): conv-PReLU-conv, then spatial attention (channel max and mean -> 5x5 conv -> sigmoid)
  and channel attention (global average pool -> 1x1 squeeze by 8 -> ReLU -> 1x1 -> sigmoid) side by
  side, concatenated, 1x1 conv, residual.
- SKFF (Fig. 3): sum the branches, global average pool, 1x1 conv to max(C/8, 4) channels + PReLU, one
  1x1 conv per branch back to C, softmax across branches, weighted sum.
- Residual resizing modules (Fig. 5): downsampling = [1x1, PReLU, 3x3, PReLU, anti-aliased stride-2
  blur, 1x1 to 2C] + [anti-aliased blur, 1x1 to 2C]; upsampling = [1x1, PReLU, 3x3 transposed conv
  stride 2, PReLU, 1x1 to C/2] + [bilinear x2, 1x1 to C/2]. The blur is the fixed [1,2,1]x[1,2,1]/16
  filter with reflect padding (Zhang, "Making convolutional networks shift-invariant again").

Facts of the official code that change the parameter count or behaviour, reproduced here:
- a stream's two DAU applications share one module (``ModuleList([DAU(...)] * width)``);
- every DAU in the network uses one shared PReLU (a default-argument instance);
- SKFF of the full-resolution stream is used both inside the mesh and for the final fusion;
- all convolutions are bias-free (``bias=False``), including the channel-attention squeeze/excite.

Parameter count: 31,787,419, counted layer by layer from the official definition with its defaults
(n_feat 64, chan_factor 2, 3 RRGs of 2 MRBs, height 3, width 2); this implementation has exactly as
many. Published figures: 31.76M (the figure quoted for MIRNet in later papers, e.g. MIRNetv2's
comparison, which swz30/MIRNet issue #25 points to) and "31.7 Million" (authors, swz30/MIRNet issue #8);
both within 0.1% of the count. The blur filters are buffers, not parameters.

Padding: two stride-2 blurs need H and W divisible by 4 (the official test feeds images unchanged;
LOL's 400x600 already is); the input is padded to a multiple of 4 and the output cropped back.

Speed (CPU): the network is convolutions through and through, as in the official code (the profile of a
training step is ~70% convolution forward/backward; the blur, bilinear resizing and PReLU are the rest).
Without autograd the input goes channels-last, so every convolution runs oneDNN's NHWC kernels (the 3x3
and depth-wise ones are several times faster there than in NCHW). Training stays in NCHW: its backward was
slower channels-last (figures: ``benchmarks/README.md``; re-measured 2026-12-07 for the whole train step at
128x128, 1 thread: channels-last 0.97 of the official time against 0.93 for NCHW).
Op choices in training that matter (1 thread, 128x128 train step, interleaved with the official code):
- 1x1 convolutions are batched matrix products (``PointwiseConv``); per shape a forward+backward costs the
  same as oneDNN's or the native 1x1 convolution (all three are the same three GEMMs), so this is neutral.
- the DAU merges its two gated branches without making them: s * (W_s f) + (W_c c) f, one batched product
  (no concatenation, no gated copies), and SKFF pools each branch instead of their sum and accumulates the
  weighted sum with ``addcmul``: together about 1% of the step (the non-convolution ops, ~0.1 s of ~9.6 s).
- not kept: PReLU as relu(x) - a * relu(-x) (the same values; its five autograd ops cost more than
  ``prelu``'s fused backward in the network, +0.2 s per step).
About 75% of the step is the 3x3 and transposed 3x3 convolutions, the same calls as the official code's; the
64-channel 128x128 ones run at 12-20 ms a forward depending on where the allocator places the tensors.

Memory: with gradients on images larger than 256x256, activations are recomputed in backward
(two-level checkpointing: MRB inputs, then each unit inside); a 400x600 forward/backward would
otherwise hold about 40 GB of activations (measured ~10.7 GB at 200x300).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn
from torch.utils.checkpoint import checkpoint

from lumicap.models.common import PointwiseConv, channels_last_without_grad, crop_to, pad_to_multiple
from lumicap.models.registry import Recipe, Stage, register_model

MIRNET_OFFICIAL_PARAMS = 31_787_419


def conv3x3(in_channels: int, out_channels: int, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias)


def conv1x1(in_channels: int, out_channels: int, bias: bool = False) -> nn.Conv2d:
    return PointwiseConv(in_channels, out_channels, bias=bias)


def training_layout(x: torch.Tensor) -> bool:
    """True where the training formulations below apply: autograd on and a contiguous NCHW tensor (inference
    runs channels-last through oneDNN's convolutions, see "Speed")."""
    return torch.is_grad_enabled() and x.is_contiguous()


class SelectiveKernelFeatureFusion(nn.Module):
    """SKFF: attention weights, softmax-normalised across the branches, select among same-size inputs."""

    def __init__(self, channels: int, branches: int = 3, reduction: int = 8, bias: bool = False):
        super().__init__()
        squeezed = max(channels // reduction, 4)
        self.branches = branches
        self.squeeze = nn.Sequential(conv1x1(channels, squeezed, bias), nn.PReLU())
        self.select = nn.ModuleList(conv1x1(squeezed, channels, bias) for _ in range(branches))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        if len(features) != self.branches:
            raise ValueError(f"SKFF expects {self.branches} inputs, got {len(features)}")
        # The pooled sum is the sum of the pooled branches (reductions read each branch once, no summed copy).
        pooled = features[0].mean(dim=(2, 3), keepdim=True)
        for f in features[1:]:
            pooled = pooled + f.mean(dim=(2, 3), keepdim=True)
        descriptor = self.squeeze(pooled)
        weights = torch.softmax(torch.stack([fc(descriptor) for fc in self.select]), dim=0).unbind(0)  # K x (B,C,1,1)
        fused = features[0] * weights[0]
        for w, f in zip(weights[1:], features[1:]):
            fused = torch.addcmul(fused, f, w)
        return fused


class SpatialAttention(nn.Module):
    """Channel-wise max and mean -> 5x5 conv -> sigmoid gate over positions."""

    def __init__(self, kernel_size: int = 5):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation: global average pool -> 1x1 (C/r) -> ReLU -> 1x1 (C) -> sigmoid gate."""

    def __init__(self, channels: int, reduction: int = 8, bias: bool = False):
        super().__init__()
        self.excite = nn.Sequential(
            conv1x1(channels, channels // reduction, bias),
            nn.ReLU(),
            conv1x1(channels // reduction, channels, bias),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.excite(x.mean(dim=(2, 3), keepdim=True))


class DualAttentionUnit(nn.Module):
    """DAU: conv-act-conv, spatial and channel attention in parallel, 1x1 merge, residual."""

    def __init__(self, channels: int, activation: nn.Module, reduction: int = 8, bias: bool = False):
        super().__init__()
        self.body = nn.Sequential(conv3x3(channels, channels, bias), activation, conv3x3(channels, channels, bias))
        self.spatial_attention = SpatialAttention()
        self.channel_attention = ChannelAttention(channels, reduction, bias)
        self.merge = conv1x1(channels * 2, channels, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.body(x)
        if not training_layout(features):
            attended = torch.cat([self.spatial_attention(features), self.channel_attention(features)], dim=1)
            return x + self.merge(attended)
        # merge([f * s, f * c]) with s a per-pixel gate and c a per-channel gate is
        # s * (W_s @ f) + (W_c * c) @ f: the gates move onto the matrix product's output and weight, so
        # neither gated copy nor their concatenation is made; one batched product computes both halves.
        b, channels, h, w = features.shape
        gate = self.spatial_attention.gate(features).view(b, 1, h * w)
        excite = self.channel_attention.excite(features.mean(dim=(2, 3), keepdim=True)).view(b, 1, channels)
        weight = self.merge.weight.view(1, channels, 2 * channels)
        stacked = torch.cat([weight[:, :, :channels].expand(b, -1, -1), weight[:, :, channels:] * excite], dim=1)
        both = torch.bmm(stacked, features.view(b, channels, h * w))  # (B, 2C, HW): W_s f above W_c c f
        merged = torch.addcmul(both[:, channels:], both[:, :channels], gate)
        if self.merge.bias is not None:
            merged = merged + self.merge.bias.view(1, -1, 1)
        return x + merged.view(b, channels, h, w)


class AntiAliasedDownsample(nn.Module):
    """Blur with the binomial [1,2,1] x [1,2,1] / 16 filter (reflect padding), keeping every 2nd pixel."""

    def __init__(self, channels: int):
        super().__init__()
        taps = torch.tensor([1.0, 2.0, 1.0])
        kernel = torch.outer(taps, taps) / 16.0
        self.register_buffer("kernel", kernel.expand(channels, 1, 3, 3).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), self.kernel, stride=2, groups=x.shape[1])


class ResidualDownsample(nn.Module):
    """(C, H, W) -> (2C, H/2, W/2): a conv path and an identity-like path, both anti-aliased, summed."""

    def __init__(self, channels: int, bias: bool = False):
        super().__init__()
        self.conv_path = nn.Sequential(
            conv1x1(channels, channels, bias),
            nn.PReLU(),
            conv3x3(channels, channels, bias),
            nn.PReLU(),
            AntiAliasedDownsample(channels),
            conv1x1(channels, channels * 2, bias),
        )
        self.skip_path = nn.Sequential(AntiAliasedDownsample(channels), conv1x1(channels, channels * 2, bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_path(x) + self.skip_path(x)


class ResidualUpsample(nn.Module):
    """(C, H, W) -> (C/2, 2H, 2W): a transposed-conv path and a bilinear path, summed."""

    def __init__(self, channels: int, bias: bool = False):
        super().__init__()
        self.conv_path = nn.Sequential(
            conv1x1(channels, channels, bias),
            nn.PReLU(),
            nn.ConvTranspose2d(channels, channels, 3, stride=2, padding=1, output_padding=1, bias=bias),
            nn.PReLU(),
            conv1x1(channels, channels // 2, bias),
        )
        self.skip_conv = conv1x1(channels, channels // 2, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The skip path is [bilinear x2, 1x1 conv] as in the paper, computed in the other order: both maps are
        # linear and act on different axes (positions, channels; bilinear weights sum to 1, so a bias passes
        # through), so convolving first is the same map on a quarter of the pixels, and the interpolation
        # then moves half the channels.
        skip = F.interpolate(self.skip_conv(x), scale_factor=2, mode="bilinear", align_corners=False)
        return self.conv_path(x) + skip


def resampler(channels: int, source: int, target: int, bias: bool) -> nn.Sequential:
    """Chain of residual resizing modules from stream ``source`` (``channels`` wide) to stream ``target``."""
    steps = []
    for _ in range(abs(target - source)):
        if target > source:
            steps.append(ResidualDownsample(channels, bias))
            channels *= 2
        else:
            steps.append(ResidualUpsample(channels, bias))
            channels //= 2
    return nn.Sequential(*steps)


class MultiScaleResidualBlock(nn.Module):
    """MRB: ``height`` parallel streams (stream i: n_feat * 2**i channels at 1/2**i resolution), each
    applying its DAU ``width`` times, with SKFF information exchange between the applications."""

    def __init__(self, n_feat: int, height: int, width: int, activation: nn.Module, bias: bool = False):
        super().__init__()
        self.height, self.width = height, width
        channels = [n_feat * 2**i for i in range(height)]
        # One DAU per stream, reused for every column (the official ModuleList repeats one instance).
        self.dau = nn.ModuleList(DualAttentionUnit(c, activation, bias=bias) for c in channels)
        # resample["k_j"] maps stream k to stream j (j != k); used for the first column and the exchange.
        self.resample = nn.ModuleDict(
            {f"{k}_{j}": resampler(channels[k], k, j, bias) for k in range(height) for j in range(height) if j != k}
        )
        self.fuse = nn.ModuleList(SelectiveKernelFeatureFusion(c, height, bias=bias) for c in channels)
        # Separate upsamplers bring every stream back to full resolution for the final fusion.
        self.to_full_resolution = nn.ModuleList(resampler(channels[k], k, 0, bias) for k in range(1, height))
        self.conv_out = conv3x3(n_feat, n_feat, bias)

    def forward(self, x: torch.Tensor, checkpointing: bool = False) -> torch.Tensor:
        def run(module: nn.Module, inputs):
            # With checkpointing, only each unit's output is kept; its insides are recomputed in backward.
            return checkpoint(module, inputs, use_reentrant=False) if checkpointing else module(inputs)

        streams = [run(self.dau[0], x)]
        for j in range(1, self.height):  # first column: each stream starts from the one above it
            streams.append(run(self.dau[j], run(self.resample[f"{j - 1}_{j}"], streams[-1])))
        for _ in range(1, self.width):
            exchanged = [
                run(self.fuse[j], [s if k == j else run(self.resample[f"{k}_{j}"], s) for k, s in enumerate(streams)])
                for j in range(self.height)
            ]
            streams = [run(self.dau[j], f) for j, f in enumerate(exchanged)]
        full = [streams[0]] + [run(up, s) for up, s in zip(self.to_full_resolution, streams[1:])]
        return x + self.conv_out(run(self.fuse[0], full))


class RecursiveResidualGroup(nn.Module):
    """RRG: MRBs then a 3x3 conv, plus the group input."""

    def __init__(self, n_feat: int, n_mrb: int, height: int, width: int, activation: nn.Module, bias: bool):
        super().__init__()
        self.blocks = nn.ModuleList(
            MultiScaleResidualBlock(n_feat, height, width, activation, bias) for _ in range(n_mrb)
        )
        self.conv = conv3x3(n_feat, n_feat, bias)

    def forward(self, x: torch.Tensor, checkpointing: bool = False) -> torch.Tensor:
        features = x
        for block in self.blocks:
            if checkpointing:  # two levels: keep MRB inputs only; inside, unit outputs only during recompute
                features = checkpoint(block, features, True, use_reentrant=False)
            else:
                features = block(features)
        return x + self.conv(features)


class MIRNet(nn.Module):
    """MIRNet; ``forward`` maps (B,3,H,W) in [0,1] to (B,3,H,W) for any H, W (padded to 2**(height-1))."""

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        n_feat: int = 64,
        n_rrg: int = 3,
        n_mrb: int = 2,
        height: int = 3,
        width: int = 2,
        bias: bool = False,
        activation_checkpointing: str = "auto",
        checkpoint_above_pixels: int = 256 * 256,
    ):
        super().__init__()
        if activation_checkpointing not in ("auto", "always", "never"):
            raise ValueError(f"activation_checkpointing must be auto/always/never, got {activation_checkpointing!r}")
        # "auto": with gradients on images larger than checkpoint_above_pixels (whole-image training, not
        # the official 128x128 patches), recompute activations in backward instead of storing them: a
        # 400x600 forward/backward needs ~40 GB otherwise. Same result, about 1.7x the compute.
        self.activation_checkpointing = activation_checkpointing
        self.checkpoint_above_pixels = checkpoint_above_pixels
        if height < 1 or width < 1:
            raise ValueError(f"height and width must be >= 1, got {height} and {width}")
        self.pad_multiple = 2 ** (height - 1)
        # The official DAUs all share one PReLU (one learned slope for the whole network).
        self.dau_activation = nn.PReLU()
        self.conv_in = conv3x3(in_channels, n_feat, bias)
        self.groups = nn.ModuleList(
            RecursiveResidualGroup(n_feat, n_mrb, height, width, self.dau_activation, bias) for _ in range(n_rrg)
        )
        self.conv_out = conv3x3(n_feat, out_channels, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded, size = pad_to_multiple(x, self.pad_multiple)
        checkpointing = self._should_checkpoint(padded)
        padded = channels_last_without_grad(padded)  # see "Speed" above
        features = self.conv_in(padded)
        for group in self.groups:
            features = group(features, checkpointing)
        return crop_to(padded + self.conv_out(features), size).contiguous()

    def _should_checkpoint(self, x: torch.Tensor) -> bool:
        if self.activation_checkpointing == "never" or not torch.is_grad_enabled():
            return False
        return self.activation_checkpointing == "always" or x.shape[-2] * x.shape[-1] > self.checkpoint_above_pixels


MIRNET_RECIPE = Recipe(
    stages=(
        Stage(
            name="enhance",
            # Official code is epoch-based (train_denoising.py, "use the same training code for image
            # enhancement", NUM_EPOCHS 200 for enhancement: swz30, MIRNet issue #11). One random 128x128
            # crop per pair per epoch, batch 16, drop_last=False: LOL-v1's 485 pairs give
            # ceil(485/16) = 31 iterations/epoch -> 200 * 31 = 6,200 iterations.
            iterations=6_200,
            batch_size=16,
            patch_size=128,
            losses={"charbonnier": 1.0},  # eps 1e-3, on the output clamped to [0, 1]
            optimizer={"name": "adam", "lr": 2e-4, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-8},
            # 3 warm-up epochs (linear from 0), then cosine over the remaining 197 epochs to 1e-6.
            scheduler={"name": "cosine", "eta_min": 1e-6, "warmup_iters": 3 * 31},
            mixup=True,  # MixUp_AUG after epoch 5; used for enhancement too (swz30, MIRNet issue #21)
        ),
    ),
    source=(
        "swz30/MIRNet train_denoising.py + training.yml (BATCH_SIZE 16, LR_INITIAL 2e-4, cosine to 1e-6 after "
        "3 warm-up epochs, Adam weight_decay 1e-8, CharbonnierLoss, TRAIN_PS 128, MixUp after epoch 5); "
        "enhancement: NUM_EPOCHS 200 (issue #11) and MixUp (issue #21)"
    ),
    notes=(
        "Iterations converted from 200 epochs for LOL-v1 (485 pairs, one crop each per epoch). The training "
        "script clamps the output to [0, 1] before the loss. MixUp starts after epoch 5 (~155 iterations)."
    ),
)


@register_model(
    paper="Zamir et al., Learning Enriched Features for Real Image Restoration and Enhancement (MIRNet), ECCV 2020",
    official_params=MIRNET_OFFICIAL_PARAMS,
    params_source="counted from swz30/MIRNet networks/MIRNet_model.py defaults; published as 31.76M "
    "and '31.7 Million' (authors, swz30/MIRNet issue #8), both within 0.1%",
    recipe=MIRNET_RECIPE,
    constructor=MIRNet,
    allowed={"activation_checkpointing": Literal["auto", "always", "never"], "checkpoint_above_pixels": Field(ge=0)},
)
def mirnet(**overrides) -> nn.Module:
    return MIRNet(**overrides)
