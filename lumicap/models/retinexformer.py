"""Retinexformer — One-stage Retinex-based Transformer (Cai et al., ICCV 2023).

Written from the paper (Fig. 2) and the facts of the official code, caiyuanhao1998/Retinexformer
``basicsr/models/archs/RetinexFormer_arch.py`` and ``Options/RetinexFormer_LOL_v1.yml``. No code is copied.

One-stage Retinex framework (ORF), paper Fig. 2 (a):

- **Illumination Estimator**: input = image ++ its channel mean (4 channels); 1x1 conv (4->40), 5x5 conv in
  4 groups (40->40), 1x1 conv (40->3). It returns the *light-up feature* ``F_lu`` (40 channels) and the
  *light-up map* ``L_bar`` (3 channels); the lit-up image is ``I_lu = I * L_bar + I``.
- **Corruption Restorer = Illumination-Guided Transformer (IGT)**, Fig. 2 (b): a U-shaped encoder-decoder
  (3x3 embedding 3->40; two levels, each downsampling with a 4x4 stride-2 conv for the features and another
  for ``F_lu``; bottleneck; decoder with 2x2 stride-2 transposed convs, 1x1 fusion of the skip); every
  level is a stack of **IGAB**s (Fig. 2 (c)): ``x = IG-MSA(x, F_lu) + x; x = FFN(LN(x)) + x``.
- **IG-MSA** (Fig. 2 (d)): channel-wise ("transposed") self-attention, heads of 40 channels, queries and keys
  L2-normalised over space, a learnable per-head temperature, values modulated by ``F_lu``; plus a
  position branch (3x3 depth-wise conv, GELU, 3x3 depth-wise conv) on the values. Cost is linear in H*W.
- Output ``= mapping(features) + I_lu``.

Variant for LOL-v1 (official options): ``n_feat=40, stage=1, num_blocks=[1, 2, 2]``.
Parameter count: **1,605,701**, computed by us from the official definition with those options (the paper
and README: 1.61M). Published cost: 15.57 GFLOPs at 256x256 — fvcore ``FlopCountAnalysis.total()`` (which
counts one multiply-add as one op, i.e. MACs) divided by 1024**3 in the official script, plus fvcore's
element-wise counts for LayerNorm; ``lumicap models`` reports conv/matmul MACs / 1e9 (see ``flops.py``).

Speed (CPU), choices that matter: the attention is channel-wise (a d x d matrix per head), so its cost is
linear in H*W, and the projections are ``nn.Linear`` on channel-last tokens, as in the official code; the
FFN's 1x1 convs run on a channel-last view (oneDNN takes it as NHWC). Not as in the official code, each the
same function with less work (figures in ``benchmarks/README.md``):

- IG-MSA: one product gives q and k; the d x d logits are divided by the outer product of the norms
  (squares summed a block of tokens at a time) instead of normalising full-size copies of q and k; the
  attention is folded into the output projection's c x c matrix, so the values are multiplied once
  instead of twice.
- Residuals are added in place into each branch's fresh output (no new full-size map per add).
- No concatenated copies: the estimator's conv1 folds the channel-mean prior into its weight (the mean is
  linear), and each decoder level's 1x1 fusion of (upsampled, skip) is two matrix products, the second
  accumulated in place (``_fuse_pair``). The map is channels-last from the first conv on, so no block needs
  a layout copy. (Quiet machine, 2 threads: the ratio to the official code went 0.87 -> 0.75 for the train
  step and 0.88 -> 0.77 for 600x400 inference with these two.)
- Without autograd, on the CPU, the feed-forward runs a band of rows at a time (``residual_in_bands``): its
  4x wide maps exist one cache-sized band at a time instead of whole, and each GELU is applied by the
  convolution before it as it writes its output (``conv_gelu_fused``; where that is not available the
  GELUs overwrite their input, ``GELUInPlaceWithoutGrad``).

Sizes: two stride-2 levels, so H and W are reflect-padded to a multiple of 4 (the official test script's
``factor = 4``) and the output is cropped back.

Attribute names follow the official module names, so state-dict keys have the official layout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lumicap.models.common import (
    GELUInPlaceWithoutGrad,
    conv_gelu_fused,
    crop_to,
    eager_inference,
    pad_to_multiple,
    plain_form_wanted,
)
from lumicap.models.registry import Recipe, Stage, register_model

__all__ = ["Retinexformer", "retinexformer"]


class IlluminationEstimator(nn.Module):
    """Fig. 2 (a) left: returns (light-up feature F_lu, light-up map L_bar)."""

    def __init__(self, n_fea_middle: int, n_fea_in: int = 4, n_fea_out: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(n_fea_in, n_fea_middle, 1)
        # Grouped (groups = input channels = 4), not fully depth-wise: as in the official model.
        self.depth_conv = nn.Conv2d(n_fea_middle, n_fea_middle, 5, padding=2, groups=n_fea_in)
        self.conv2 = nn.Conv2d(n_fea_middle, n_fea_out, 1)

    def forward(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # conv1 sees the image and its channel mean (the illumination prior L_p). The mean is linear in the
        # image, so conv1(cat[img, mean]) is one 1x1 map of the image whose weight adds the prior's column,
        # divided by the channel count, to each image column: no 4-channel copy is made. It is applied as a
        # matrix product on channel-last pixels, so the grouped 5x5 conv after it gets a channels-last map
        # (oneDNN's NHWC kernel for it takes 2-3x less time than the NCHW one, with autograd or without,
        # benchmarks/README.md; the transformer wants the feature channel-last anyway).
        channels = img.shape[1]
        weight = self.conv1.weight.flatten(1)
        weight = weight[:, :channels] + weight[:, channels:] / channels
        lifted = F.linear(img.permute(0, 2, 3, 1), weight, self.conv1.bias).permute(0, 3, 1, 2)
        light_up_feature = self.depth_conv(lifted)
        return light_up_feature, self.conv2(light_up_feature)


class IGMSA(nn.Module):
    """Illumination-Guided Multi-head Self-Attention, Fig. 2 (d). Works on channel-last maps (B, H, W, C)."""

    def __init__(self, dim: int, dim_head: int, heads: int):
        super().__init__()
        self.num_heads = heads
        self.dim_head = dim_head
        self.to_q = nn.Linear(dim, dim_head * heads, bias=False)
        self.to_k = nn.Linear(dim, dim_head * heads, bias=False)
        self.to_v = nn.Linear(dim, dim_head * heads, bias=False)
        self.rescale = nn.Parameter(torch.ones(heads, 1, 1))  # per-head temperature
        self.proj = nn.Linear(dim_head * heads, dim)
        self.pos_emb = nn.Sequential(
            nn.Conv2d(dim, dim, 3, padding=1, bias=False, groups=dim),
            GELUInPlaceWithoutGrad(),
            nn.Conv2d(dim, dim, 3, padding=1, bias=False, groups=dim),
        )

    def forward(self, x: torch.Tensor, light_up: torch.Tensor) -> torch.Tensor:
        # The official order is: q, k, v = three projections; q and k L2-normalised over the tokens;
        # attn = softmax(k q^T * rescale) per head (d x d); out = proj(attn v). The same function with
        # less work (see the module docstring): one matrix product gives q and k; the d x d logits k q^T are
        # divided by the outer product of the norms instead of normalising two full-size maps; the squared
        # norms are summed over blocks of tokens, so the squares never form a full-size map (F.normalize's
        # norm is also less exact over 240,000 tokens: 3e-5 relative, these sums 2e-7). And since proj is
        # linear, proj(blockdiag(attn) v) = v (W_proj blockdiag(attn))^T + b: the attention is folded into
        # the projection's c x c matrix, so the values are multiplied once, not twice.
        b, h, w, c = x.shape
        n = h * w
        heads, d = self.num_heads, self.dim_head
        tokens = x.reshape(b, n, c)
        qk = F.linear(tokens, torch.cat([self.to_q.weight, self.to_k.weight]))  # (B, N, 2c)
        v_inp = self.to_v(tokens)
        if plain_form_wanted():  # a recording would fix the number of blocks to its example's size
            squares = qk.square().sum(dim=1)  # (B, 2c)
        else:
            squares = sum(block.square().sum(dim=1) for block in qk.split(_NORM_BLOCK_TOKENS, dim=1))
        norms = squares.sqrt().clamp_min(_NORMALIZE_EPS)  # F.normalize's floor
        q_norm, k_norm = norms[:, :c].view(b, heads, 1, d), norms[:, c:].view(b, heads, d, 1)
        q, k = qk.split(c, dim=-1)
        kq = k.view(b, n, heads, d).permute(0, 2, 3, 1) @ q.view(b, n, heads, d).permute(0, 2, 1, 3)
        attn = (kq / (k_norm * q_norm) * self.rescale).softmax(dim=-1)  # (B, heads, d, d)
        folded = torch.einsum("ohi,bhij->bohj", self.proj.weight.view(c, heads, d), attn).reshape(b, c, c)
        v = v_inp * light_up.reshape(b, n, c)
        out = torch.baddbmm(self.proj.bias.view(1, 1, c), v, folded.transpose(1, 2)).view(b, h, w, c)
        values = v_inp.reshape(b, h, w, c).permute(0, 3, 1, 2)
        first = conv_gelu_fused(self.pos_emb[0], values)  # inference on the CPU: conv and GELU in one pass
        position = self.pos_emb(values) if first is None else self.pos_emb[2](first)
        # in place on baddbmm's fresh output (its backward needs the inputs only)
        return out.add_(position.permute(0, 2, 3, 1))


_NORMALIZE_EPS = 1e-12  # F.normalize's default: a norm below it is taken as eps
_NORM_BLOCK_TOKENS = 8192  # squares summed 8192 tokens at a time (a few MB: stays in cache, no page faults)


class FeedForward(nn.Module):
    """1x1 conv (x4), GELU, 3x3 depth-wise conv, GELU, 1x1 conv; on channel-last maps."""

    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        # The GELUs work on 4x wide maps: in place at inference (see GELUInPlaceWithoutGrad).
        self.net = nn.Sequential(
            nn.Conv2d(dim, dim * mult, 1, bias=False),
            GELUInPlaceWithoutGrad(),
            nn.Conv2d(dim * mult, dim * mult, 3, padding=1, bias=False, groups=dim * mult),
            GELUInPlaceWithoutGrad(),
            nn.Conv2d(dim * mult, dim, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)

    def residual_in_bands(self, x: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor | None:
        """``x + self(norm(x))`` (B, H, W, C), computed a band of rows at a time, or None where not eager
        inference on the CPU. Every op is per pixel except the 3x3 depth-wise conv, so a band needs one row
        of the normed input above and below it (a zero-padded border only at the image's own edges): the
        same numbers, while the 4x wide maps exist one band at a time instead of whole (1.3 GB each at
        1920x1080 at the first level), and each conv writes its GELU'd output at once (``conv_gelu_fused``)."""
        if x.device.type != "cpu" or not eager_inference():
            return None
        expand, gelu, depthwise, _, project = self.net
        out = torch.empty_like(x)
        height = x.shape[1]
        rows = max(1, _BAND_ELEMENTS // (x.shape[0] * x.shape[2] * expand.out_channels))
        for top in range(0, height, rows):
            bottom = min(top + rows, height)
            above, below = max(top - 1, 0), min(bottom + 1, height)  # the band and its one-row halo
            normed = norm(x[:, above:below]).permute(0, 3, 1, 2)
            hidden = conv_gelu_fused(expand, normed)
            if hidden is None:
                hidden = gelu(expand(normed))
            spread = conv_gelu_fused(depthwise, hidden)
            if spread is None:
                spread = gelu(depthwise(hidden))
            spread = spread[:, :, top - above : top - above + bottom - top]  # the halo rows' outputs dropped
            if x.shape[0] == 1:  # the band's rows are contiguous: the projection and the residual in one product
                pixels = spread.permute(0, 2, 3, 1).reshape(-1, spread.shape[1])
                rows_x = x[:, top:bottom].reshape(-1, x.shape[-1])
                torch.addmm(rows_x, pixels, project.weight.flatten(1).t(), out=out[:, top:bottom].view(-1, x.shape[-1]))
            else:
                torch.add(project(spread).permute(0, 2, 3, 1), x[:, top:bottom], out=out[:, top:bottom])
        return out


# A band of the FFN's wide maps holds about this many values (4 MB): it stays in the caches.
_BAND_ELEMENTS = 1 << 20


class PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.fn = fn
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """``x + fn(norm(x))``: the feed-forward's banded form where it has one."""
        banded = self.fn.residual_in_bands(x, self.norm) if hasattr(self.fn, "residual_in_bands") else None
        return self(x).add_(x) if banded is None else banded


class IGAB(nn.Module):
    """Illumination-Guided Attention Block(s), Fig. 2 (c): ``num_blocks`` x (IG-MSA + LN/FFN), residual each.
    The attention has no pre-norm (as in the official model); the FFN has one."""

    def __init__(self, dim: int, dim_head: int, heads: int, num_blocks: int):
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.ModuleList([IGMSA(dim, dim_head, heads), PreNorm(dim, FeedForward(dim))]) for _ in range(num_blocks)
        )

    def forward(self, x: torch.Tensor, light_up: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        light_up = light_up.permute(0, 2, 3, 1)
        for attn, ff in self.blocks:
            # residuals added in place into each branch's fresh output (a new full-size map per add costs
            # page faults on the CPU; the branches' last ops do not keep their outputs for backward)
            x = attn(x, light_up).add_(x)
            x = ff.residual(x)
        return x.permute(0, 3, 1, 2)


class IlluminationGuidedTransformer(nn.Module):
    """The corruption restorer (official ``Denoiser``), Fig. 2 (b): U-shaped IGAB encoder-decoder."""

    def __init__(self, in_dim: int = 3, out_dim: int = 3, dim: int = 40, level: int = 2,
                 num_blocks: tuple[int, ...] = (1, 2, 2)):
        super().__init__()
        if len(num_blocks) < level + 1:  # as the official code: one count per level, the last for the bottleneck
            raise ValueError(f"num_blocks needs {level + 1} counts (one per level, then the bottleneck), "
                             f"got {len(num_blocks)}: {list(num_blocks)}")
        self.level = level
        self.embedding = nn.Conv2d(in_dim, dim, 3, padding=1, bias=False)
        self.encoder_layers = nn.ModuleList()
        width = dim
        for i in range(level):
            self.encoder_layers.append(nn.ModuleList([
                IGAB(width, dim_head=dim, heads=width // dim, num_blocks=num_blocks[i]),
                nn.Conv2d(width, width * 2, 4, stride=2, padding=1, bias=False),  # features down
                nn.Conv2d(width, width * 2, 4, stride=2, padding=1, bias=False),  # light-up feature down
            ]))
            width *= 2
        self.bottleneck = IGAB(width, dim_head=dim, heads=width // dim, num_blocks=num_blocks[-1])
        self.decoder_layers = nn.ModuleList()
        for i in range(level):
            self.decoder_layers.append(nn.ModuleList([
                nn.ConvTranspose2d(width, width // 2, kernel_size=2, stride=2),
                nn.Conv2d(width, width // 2, 1, bias=False),  # fuse upsampled ++ skip
                IGAB(width // 2, dim_head=dim, heads=(width // 2) // dim, num_blocks=num_blocks[level - 1 - i]),
            ]))
            width //= 2
        self.mapping = nn.Conv2d(dim, out_dim, 3, padding=1, bias=False)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, lit_up: torch.Tensor, light_up: torch.Tensor) -> torch.Tensor:
        fea = self.embedding(lit_up)
        skips, guides = [], []
        for igab, down, guide_down in self.encoder_layers:
            fea = igab(fea, light_up)
            skips.append(fea)
            guides.append(light_up)
            fea, light_up = down(fea), guide_down(light_up)
        fea = self.bottleneck(fea, light_up)
        for i, (up, fuse, igab) in enumerate(self.decoder_layers):
            skip = skips[self.level - 1 - i]
            fea = _fuse_pair(fuse, up(fea), skip)
            fea = igab(fea, guides[self.level - 1 - i])
        return self.mapping(fea) + lit_up


def _fuse_pair(fuse: nn.Conv2d, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``fuse(torch.cat([a, b], 1))`` for a bias-free 1x1 conv and channels-last maps, without the concatenated
    copy: ``W_a a + W_b b`` as matrix products on the channel-last pixels, the second accumulated in place.
    Returns a channels-last (B, C, H, W) map."""
    weight_a, weight_b = fuse.weight.flatten(1).split([a.shape[1], b.shape[1]], dim=1)
    out = F.linear(a.permute(0, 2, 3, 1), weight_a)  # (B, H, W, C)
    if plain_form_wanted():  # a tracer does not follow an in-place update made through a view
        return (out + F.linear(b.permute(0, 2, 3, 1), weight_b)).permute(0, 3, 1, 2)
    flat = out.view(-1, out.shape[-1])
    flat.addmm_(b.permute(0, 2, 3, 1).reshape(-1, b.shape[1]), weight_b.t())
    return out.permute(0, 3, 1, 2)


class RetinexformerStage(nn.Module):
    """One ORF stage: illumination estimator, light-up, corruption restorer."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, n_feat: int = 40, level: int = 2,
                 num_blocks: tuple[int, ...] = (1, 2, 2)):
        super().__init__()
        self.estimator = IlluminationEstimator(n_feat)
        self.denoiser = IlluminationGuidedTransformer(in_channels, out_channels, n_feat, level, num_blocks)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        light_up_feature, light_up_map = self.estimator(img)
        # channels-last from the first conv on, so that no block needs a layout copy (the transformer's blocks
        # work on channel-last maps)
        lit_up = torch.addcmul(img, img, light_up_map).contiguous(memory_format=torch.channels_last)
        return self.denoiser(lit_up, light_up_feature)


class Retinexformer(nn.Module):
    """``stage`` ORF stages in sequence (1 for the published LOL models)."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, n_feat: int = 40, stage: int = 1,
                 num_blocks: tuple[int, ...] = (1, 2, 2)):
        super().__init__()
        self.level = 2
        self.body = nn.Sequential(*[
            RetinexformerStage(in_channels, out_channels, n_feat, self.level, tuple(num_blocks)) for _ in range(stage)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded, size = pad_to_multiple(x, 2**self.level)
        return crop_to(self.body(padded), size)


_RETINEXFORMER_RECIPE = Recipe(
    stages=(
        Stage(
            name="main",
            iterations=150_000,
            batch_size=8,
            patch_size=128,
            losses={"l1": 1.0},
            optimizer={"name": "adam", "lr": 2e-4, "betas": (0.9, 0.999)},
            scheduler={
                "name": "cosine_restart_cyclic",
                "periods": [46_000, 104_000],
                "restart_weights": [1.0, 1.0],
                "eta_mins": [3e-4, 1e-6],
            },
            mixup=True,
        ),
    ),
    source="caiyuanhao1998/Retinexformer Options/RetinexFormer_LOL_v1.yml: L1 (mean), Adam 2e-4 betas "
    "(0.9, 0.999) no weight decay, total_iter 150000, batch 8, gt_size 128, CosineAnnealingRestartCyclicLR "
    "periods [46000, 104000] restart_weights [1, 1] eta_mins [3e-4, 1e-6], mixup (beta 1.2, with identity), "
    "geometric augmentation, manual_seed 100",
    notes="use_grad_clip: true -> clip_grad_norm_(max_norm=0.01) every step (BasicSR ImageCleanModel); "
    "the first cycle's eta_min (3e-4) is above the base lr, so the lr rises from 2e-4 to 3e-4 over 46k "
    "iterations, then falls from 2e-4 to 1e-6.",
)


@register_model(
    paper="Cai et al., Retinexformer: One-stage Retinex-based Transformer for Low-light Image Enhancement, "
    "ICCV 2023",
    official_params=1_605_701,
    params_source="computed from the official RetinexFormer(n_feat=40, stage=1, num_blocks=[1,2,2]) of "
    "caiyuanhao1998/Retinexformer basicsr/models/archs/RetinexFormer_arch.py (paper/README: 1.61M)",
    recipe=_RETINEXFORMER_RECIPE,
    constructor=Retinexformer,
)
def retinexformer(**overrides) -> nn.Module:
    return Retinexformer(**{"n_feat": 40, "stage": 1, "num_blocks": (1, 2, 2), **overrides})
