"""LLFormer (Wang et al., AAAI 2023): "Ultra-High-Definition Low-Light Image Enhancement: A Benchmark and
Transformer-Based Method", https://arxiv.org/abs/2212.11548.

Written from the paper and the facts of the official ``model/LLFormer.py`` (TaoWangzj/LLFormer); no code
copied. The network (paper Fig. 3), with the official LOL configuration (``train.py``: dim 16, blocks
[2,4,8,16], 2 refinement blocks, heads [1,2,4,8], FFN expansion 2.66, no conv bias, with-bias LayerNorm,
learnable skip weights, no global residual):

1. 3x3 conv embedding (3 -> 16 channels), then three full-resolution stages of axis-based transformer
   blocks (A-MSA + DGFN); a cross-layer attention fusion block (CAFB) fuses the three stages' outputs.
2. A U-shaped body: four downsamplings (3x3 conv halving channels + pixel-unshuffle) to 32/64/128/256
   channels with 2/4/8/16 blocks, and back up (3x3 conv doubling channels + pixel-shuffle). Each
   decoder input is ``w_skip * encoder + w_up * upsampled`` with per-channel learnable weights, then a
   1x1 conv. In parallel the fused full-resolution features pass two more blocks ("latent").
3. Three refinement stages fused by a second CAFB, and a 3x3 conv to RGB.

Facts worth knowing (all from the official code):
- the attention convolutions use biases although ``bias=False`` is passed to the network (only the FFN,
  embedding, resizing and 1x1 skip/fusion convs honour it); the CAFB convolutions also carry biases;
- A-MSA attends along the width inside each row, then along the height inside each column, one after
  the other (no residual in between); queries and keys are L2-normalised and scaled by a learned
  temperature (initialised to 1) instead of ``1/sqrt(d)``;
- the body downsamples four times, so the input is padded to a multiple of 16 (the official test loader
  pads to 16 too) and cropped back.

Parameter count: the official definition holds 24,549,014 parameters (see ``LLFORMER_OFFICIAL_PARAMS``:
computed layer by layer from ``model/LLFormer.py`` with the ``train.py`` arguments; the paper states
24.52M). Two official parameters are never used in ``forward`` (a 4x2x128 ``coefficient`` tensor and the
32-channel ``skip_2_1`` conv, 2,048 values); this implementation leaves them out.

Speed (CPU), choices that matter: in a training step (128x128, one core) convolutions take about 40%,
the fused attention 16%, layout copies 13% (to and from the attention layout and around the channel
LayerNorm), GELU 6%. The attention is ``scaled_dot_product_attention`` on contiguous per-row/column
sequences (the official code materialises the scores); the LayerNorm is ``F.layer_norm`` on a channel-last
view (one fused pass; the official code computes mean and variance by hand). Channels-last convolutions
made 256x256 inference ~10% faster only with channels-last weights as well, and a training step no faster
end to end (commit 34b55d6), so the network stays NCHW.

Memory: attention along a 600-pixel row would materialise a 600x600 matrix per row, head and block
(hundreds of MB at full resolution); ``scaled_dot_product_attention`` computes the same softmax without
storing it. The column attention reshapes instead of transposing the image, so its depthwise 3x3 kernels
are the transposes of the official ones (same function class; transpose them when porting weights).
With gradients on images larger than 256x256, each transformer block's activations are recomputed in
backward (activation checkpointing): a 400x600 forward/backward otherwise needs over 20 GB (measured
5.2 GB at 200x304; 1.3 GB with checkpointing).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn
from torch.utils.checkpoint import checkpoint

from lumicap.models.common import crop_to, pad_to_multiple
from lumicap.models.registry import Recipe, Stage, register_model

# Counted from the official definition (see test_llformer.py for the layer-by-layer formula).
LLFORMER_OFFICIAL_PARAMS = 24_549_014


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of a (B,C,H,W) map (the paper's "WithBias" LayerNorm)."""

    def __init__(self, channels: int, with_bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels)) if with_bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bias is None:  # "BiasFree": scale by the std without centring
            variance = x.var(dim=1, keepdim=True, unbiased=False)
            return x * torch.rsqrt(variance + 1e-5) * self.weight[:, None, None]
        y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight, self.bias, eps=1e-5)
        return y.permute(0, 3, 1, 2)


class AxisAttention(nn.Module):
    """Multi-head self-attention along one image axis (each row, or each column, is one sequence).

    q, k, v come from a 1x1 conv followed by two depthwise 3x3 convs; the sequence length is the image
    width (``axis="width"``) or height (``axis="height"``), the feature size is channels/heads.
    """

    def __init__(self, dim: int, num_heads: int, axis: str, bias: bool = True):
        super().__init__()
        if axis not in ("width", "height"):
            raise ValueError(f"axis must be 'width' or 'height', got {axis!r}")
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.axis = axis
        self.qkv = nn.Conv2d(dim, dim * 3, kernel_size=1, bias=bias)
        self.qkv_dwconv1 = nn.Conv2d(dim * 3, dim * 3, 3, padding=1, groups=dim * 3, bias=bias)
        self.qkv_dwconv2 = nn.Conv2d(dim * 3, dim * 3, 3, padding=1, groups=dim * 3, bias=bias)
        self.temperature = nn.Parameter(torch.ones(1))
        self.project_out = nn.Conv2d(dim, dim, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        heads, head_dim = self.num_heads, c // self.num_heads
        qkv = self.qkv_dwconv2(self.qkv_dwconv1(self.qkv(x)))
        # (B, 3, heads, head_dim, H, W) -> sequences along the chosen axis: (B, heads, other, seq, head_dim)
        qkv = qkv.view(b, 3, heads, head_dim, h, w)
        order = (1, 0, 2, 4, 5, 3) if self.axis == "width" else (1, 0, 2, 5, 4, 3)
        # contiguous(): the fused attention kernel needs a unit stride on the feature axis (else: slow math path)
        q, k, v = qkv.permute(*order).contiguous().view(3, b, heads * (h if self.axis == "width" else w), -1, head_dim)
        # Cosine-similarity attention with a learned temperature; folding the temperature into q lets the
        # fused kernel compute softmax(q k^T) V without storing the (seq x seq) matrices.
        q = F.normalize(q, dim=-1) * self.temperature
        k = F.normalize(k, dim=-1)
        out = F.scaled_dot_product_attention(q, k, v, scale=1.0)
        if self.axis == "width":
            out = out.view(b, heads, h, w, head_dim).permute(0, 1, 4, 2, 3)
        else:
            out = out.view(b, heads, w, h, head_dim).permute(0, 1, 4, 3, 2)
        return self.project_out(out.reshape(b, c, h, w))


class AxisBasedMultiHeadSelfAttention(nn.Module):
    """A-MSA: width-axis attention inside each row, then height-axis attention inside each column."""

    def __init__(self, dim: int, num_heads: int, bias: bool = True):
        super().__init__()
        self.row_attention = AxisAttention(dim, num_heads, axis="width", bias=bias)
        self.column_attention = AxisAttention(dim, num_heads, axis="height", bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.column_attention(self.row_attention(x))


class DualGatedFeedForward(nn.Module):
    """DGFN: two parallel depthwise-conv branches, each gating the other through GELU."""

    def __init__(self, dim: int, expansion: float, bias: bool):
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = nn.Conv2d(dim, hidden * 2, kernel_size=1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(x2) * x1 + F.gelu(x1) * x2)


class AxisTransformerBlock(nn.Module):
    """Axis-based transformer block: x + A-MSA(LN(x)), then x + DGFN(LN(x))."""

    def __init__(self, dim: int, num_heads: int, ffn_expansion: float, bias: bool, layernorm_bias: bool):
        super().__init__()
        self.norm1 = ChannelLayerNorm(dim, layernorm_bias)
        self.attention = AxisBasedMultiHeadSelfAttention(dim, num_heads, bias=True)  # official: always biased
        self.norm2 = ChannelLayerNorm(dim, layernorm_bias)
        self.feed_forward = DualGatedFeedForward(dim, ffn_expansion, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.feed_forward(self.norm2(x))


class CrossLayerAttentionFusion(nn.Module):
    """CAFB: attention between N layers' features (an N x N map), then a 1x1 conv from N*C to C channels.

    Each layer's whole (C,H,W) feature is one token: q, k, v come from a 1x1 + depthwise 3x3 conv over
    the stacked layers, the N x N attention uses L2-normalised q, k and a learned temperature, and the
    attended features are projected and added back before the channel reduction.
    """

    def __init__(self, dim: int, num_layers: int = 3, bias: bool = False):
        super().__init__()
        stacked = dim * num_layers
        self.num_layers = num_layers
        self.temperature = nn.Parameter(torch.ones(1))
        self.qkv = nn.Conv2d(stacked, stacked * 3, kernel_size=1, bias=True)
        self.qkv_dwconv = nn.Conv2d(stacked * 3, stacked * 3, 3, padding=1, groups=stacked * 3, bias=True)
        self.project_out = nn.Conv2d(stacked, stacked, kernel_size=1, bias=True)
        self.reduce = nn.Conv2d(stacked, dim, kernel_size=1, bias=bias)

    def forward(self, layers: list[torch.Tensor]) -> torch.Tensor:
        if len(layers) != self.num_layers:
            raise ValueError(f"expected {self.num_layers} layer features, got {len(layers)}")
        x = torch.cat(layers, dim=1)  # (B, N*C, H, W), layer-major channels
        b, _, h, w = x.shape
        q, k, v = self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
        q = F.normalize(q.reshape(b, self.num_layers, -1), dim=-1)
        k = F.normalize(k.reshape(b, self.num_layers, -1), dim=-1)
        attention = torch.softmax(q @ k.transpose(-2, -1) * self.temperature, dim=-1)  # (B, N, N)
        out = (attention @ v.reshape(b, self.num_layers, -1)).view_as(x)
        return self.reduce(self.project_out(out) + x)


class Downsample(nn.Module):
    """3x3 conv halving the channels, then pixel-unshuffle: (C, H, W) -> (2C, H/2, W/2)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels // 2, 3, padding=1, bias=False)
        self.unshuffle = nn.PixelUnshuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.unshuffle(self.conv(x))


class Upsample(nn.Module):
    """3x3 conv doubling the channels, then pixel-shuffle: (C, H, W) -> (C/2, 2H, 2W)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels * 2, 3, padding=1, bias=False)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.conv(x))


class WeightedSkip(nn.Module):
    """Decoder input: per-channel learnable weights on the skip and the upsampled path, then a 1x1 conv."""

    def __init__(self, channels: int, bias: bool):
        super().__init__()
        self.weights = nn.Parameter(torch.ones(2, channels))
        self.conv = nn.Conv2d(channels, channels, kernel_size=1, bias=bias)

    def forward(self, skip: torch.Tensor, upsampled: torch.Tensor) -> torch.Tensor:
        w = self.weights[:, None, :, None, None]
        return self.conv(w[0] * skip + w[1] * upsampled)


class LLFormer(nn.Module):
    """LLFormer; ``forward`` maps (B,3,H,W) in [0,1] to (B,3,H,W) for any H, W (padded to 16 inside)."""

    pad_multiple = 16  # four 2x downsamplings

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        dim: int = 16,
        num_blocks: tuple[int, int, int, int] = (2, 4, 8, 16),
        num_refinement_blocks: int = 2,
        heads: tuple[int, int, int, int] = (1, 2, 4, 8),
        ffn_expansion: float = 2.66,
        bias: bool = False,
        layernorm_bias: bool = True,
        global_residual: bool = False,
        activation_checkpointing: str = "auto",
        checkpoint_above_pixels: int = 256 * 256,
    ):
        super().__init__()
        if len(num_blocks) != 4 or len(heads) != 4:
            raise ValueError(f"num_blocks and heads need 4 entries, got {num_blocks} and {heads}")

        def blocks(channels: int, n_heads: int, count: int) -> nn.Sequential:
            return nn.Sequential(
                *(AxisTransformerBlock(channels, n_heads, ffn_expansion, bias, layernorm_bias) for _ in range(count))
            )

        if activation_checkpointing not in ("auto", "always", "never"):
            raise ValueError(f"activation_checkpointing must be auto/always/never, got {activation_checkpointing!r}")
        # "auto": with gradients on images larger than checkpoint_above_pixels (whole-image training, not
        # the official 128x128 patches), recompute each block's activations in backward instead of
        # storing them: same result, ~1/4 of the memory (a 400x600 forward/backward needs >20 GB otherwise).
        self.activation_checkpointing = activation_checkpointing
        self.checkpoint_above_pixels = checkpoint_above_pixels
        self._checkpointing = False
        self.global_residual = global_residual
        self.embed = nn.Conv2d(in_channels, dim, 3, padding=1, bias=bias)

        # Full-resolution feature extraction: three stages fused by cross-layer attention.
        self.stages = nn.ModuleList(blocks(dim, heads[0], num_blocks[0]) for _ in range(3))
        self.stage_fusion = CrossLayerAttentionFusion(dim, 3, bias)
        self.latent = blocks(dim, heads[0], num_blocks[0])

        # U-shaped body. Level i has dim * 2**i channels; the encoder heads follow the official pairing
        # (level 1 -> heads[1], 2 -> heads[2], 3 and 4 -> heads[3]) and block counts (num_blocks[i-1]).
        level_heads = (heads[1], heads[2], heads[3], heads[3])
        self.down = nn.ModuleList(Downsample(dim * 2**i) for i in range(4))
        self.encoder = nn.ModuleList(
            blocks(dim * 2 ** (i + 1), level_heads[i], num_blocks[i]) for i in range(3)
        )
        self.bottleneck = blocks(dim * 16, level_heads[3], num_blocks[3])
        self.up = nn.ModuleList(Upsample(dim * 2 ** (i + 1)) for i in range(4))  # up[i]: level i+1 -> i
        # Decoder levels 3, 2, 1 (index i-1), each fed by a weighted skip of the same width.
        self.skips = nn.ModuleList(WeightedSkip(dim * 2**i, bias) for i in (1, 2, 3))
        self.decoder = nn.ModuleList(blocks(dim * 2**i, level_heads[i - 1], num_blocks[i - 1]) for i in (1, 2, 3))
        self.output_skip_weights = nn.Parameter(torch.ones(2, dim))  # latent vs. decoder, no conv after

        self.refinement = nn.ModuleList(blocks(dim, heads[0], num_refinement_blocks) for _ in range(3))
        self.refinement_fusion = CrossLayerAttentionFusion(dim, 3, bias)
        self.to_rgb = nn.Conv2d(dim, out_channels, 3, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded, size = pad_to_multiple(x, self.pad_multiple)
        self._checkpointing = self._should_checkpoint(padded)
        return crop_to(self._forward_padded(padded), size)

    def _should_checkpoint(self, x: torch.Tensor) -> bool:
        if self.activation_checkpointing == "never" or not torch.is_grad_enabled():
            return False
        return self.activation_checkpointing == "always" or x.shape[-2] * x.shape[-1] > self.checkpoint_above_pixels

    def _run(self, blocks: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        for block in blocks:
            if self._checkpointing:  # keep only block inputs; recompute the inside during backward
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x

    def _forward_padded(self, image: torch.Tensor) -> torch.Tensor:
        features = self.embed(image)
        stage_outputs = []
        for stage in self.stages:
            features = self._run(stage, features)
            stage_outputs.append(features)
        fused = self.stage_fusion(stage_outputs)

        encoded = []  # levels 1..3
        level = fused
        for down, encoder in zip(self.down[:3], self.encoder):
            level = self._run(encoder, down(level))
            encoded.append(level)
        decoded = self._run(self.bottleneck, self.down[3](level))
        for i in (3, 2, 1):  # decode level i from level i+1
            decoded = self._run(self.decoder[i - 1], self.skips[i - 1](encoded[i - 1], self.up[i](decoded)))
        decoded = self.up[0](decoded)

        w = self.output_skip_weights[:, None, :, None, None]
        features = w[0] * self._run(self.latent, fused) + w[1] * decoded
        refined = []
        for stage in self.refinement:
            features = self._run(stage, features)
            refined.append(features)
        out = self.to_rgb(self.refinement_fusion(refined))
        return out + image if self.global_residual else out


LLFORMER_RECIPE = Recipe(
    stages=(
        Stage(
            name="enhance",
            # Official LOL run: 1000 epochs, one random 128x128 crop per training pair per epoch, batch 8,
            # drop_last=False: LOL-v1's 485 pairs give ceil(485/8) = 61 iterations/epoch -> 61,000.
            iterations=61_000,
            batch_size=8,
            patch_size=128,
            losses={"smooth_l1": 1.0},
            optimizer={"name": "adam", "lr": 1e-4, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0},
            # 3 warm-up epochs (linear from 0, GradualWarmupScheduler with multiplier 1), then cosine
            # annealing over the remaining 997 epochs to 1e-6; stepped per epoch there, per iteration here.
            scheduler={"name": "cosine", "eta_min": 1e-6, "warmup_iters": 3 * 61},
        ),
    ),
    source=(
        "TaoWangzj/LLFormer train.py + configs/LOL/train/training_LOL.yaml (BATCH 8, EPOCHS 1000, LR 1e-4 -> "
        "LR_MIN 1e-6, TRAIN_PS 128, nn.SmoothL1Loss, Adam betas (0.9, 0.999)); transform/dataset_RGB.py "
        "(one crop per pair per epoch, random flip/rot90 augmentation)"
    ),
    notes="Iterations converted from epochs for LOL-v1 (485 pairs); scale for other datasets.",
)


@register_model(
    paper="Wang et al., Ultra-High-Definition Low-Light Image Enhancement: A Benchmark and Transformer-Based "
    "Method (LLFormer), AAAI 2023",
    official_params=LLFORMER_OFFICIAL_PARAMS,
    params_source="counted from TaoWangzj/LLFormer model/LLFormer.py with train.py's arguments (paper: 24.52M); "
    "2,048 of them are unused in forward and left out here",
    recipe=LLFORMER_RECIPE,
    constructor=LLFormer,
    allowed={
        "activation_checkpointing": Literal["auto", "always", "never"],
        "checkpoint_above_pixels": Field(ge=0),
        "num_refinement_blocks": Field(ge=0),
    },
)
def llformer(**overrides) -> nn.Module:
    return LLFormer(**overrides)
