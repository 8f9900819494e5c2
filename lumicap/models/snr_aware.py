"""SNR-Aware — SNR-aware Low-Light Image Enhancement (Xu et al., CVPR 2022).

Written from the paper (Fig. 2) and the facts of the official code, dvlab-research/SNR-Aware-Low-Light-Enhance
``models/archs/low_light_transformer.py`` (+ its transformer ``Encoder_patch66`` / ``EncoderLayer3`` /
``MultiHeadAttention4`` / ``PositionwiseFeedForward4`` and ``arch_util.ResidualBlock_noBN``),
``models/Video_base_model4_m.py`` (SNR map) and ``options/train/LOLv1.yml``. No code is copied.

- **SNR map** (computed inside ``forward`` from the input, as a fixed prior without gradient): the input is
  denoised with a 5x5 box filter (the official data loader's ``cv2.blur``), ``S = luma(denoised) /
  (|luma(input) - luma(denoised)| + 1e-4)`` with BT.601 luma, divided by its per-image maximum, clamped to [0, 1].
- **Encoder**: 3x3 conv 3->64, two stride-2 3x3 convs (LeakyReLU 0.1), then ``front_RBs`` residual blocks
  at 1/4 resolution.
- **Short-range branch**: 6 residual blocks (conv-ReLU-conv, 64 channels).
- **Long-range branch = SNR-aware transformer**: the 1/4-resolution features are cut into non-overlapping
  4x4 patches -> tokens of 64*16 = 1024 dims; 6 pre-norm layers (8 heads, d_k = d_v = 64, FFN 2048, ReLU);
  tokens whose mean SNR is <= 0.5 are masked out as *keys* (no attention to noisy regions).
- **SNR-guided fusion**: ``F = F_long * (1 - S) + F_short * S`` (S resized to 1/4, nearest).
- **Decoder**: ``back_RBs`` residual blocks, then two (concat skip, 3x3 conv, PixelShuffle x2, LeakyReLU)
  steps, concat the full-resolution feature, 3x3 conv 128->64, 3x3 conv 64->3, plus the input.

Variant for LOL-v1 (official options): ``nf=64, front_RBs=1, back_RBs=1, HR_in=true``.
Parameter count: **39,124,099**, computed by us from the official definition with those options; 37.8M of
it is the transformer (6 layers of 1024-d tokens). The figure "4.01M" quoted for SNR-Aware (e.g. in
Retinexformer's comparison table, and in our issue) does not match the official code; we match the code.

Speed (CPU), choices that matter: a training step (128x128) is about half convolutions and 40% the
transformer's matrix products; the transformer sees one 1024-d token per 4x4 patch of the 1/4-resolution
map (about 950 tokens at 600x400), so its attention matrix is small. As in the official code: ``nn.Linear``
on the tokens, the patches in ``F.unfold``'s order (cut and put back by reshapes here: ``F.fold``'s col2im has
no ONNX opset-17 form), and the masked softmax's function (not ``scaled_dot_product_attention``, for the
numerical reason given in ``SNRMaskedAttention``). What is not as in the official code, each the same
function with less work (``benchmarks/README.md`` has the figures):

- The masked keys are left out of the attention instead of having their scores replaced by -1e9 (their
  weight is exactly 0 either way). With every key masked, the usual case on LOL photos (on all 15 eval15
  photos no patch is kept: the SNR map is divided by its maximum, which one near-noiseless pixel makes
  large), the attention is uniform: every token receives ``fc(w_vs(mean of the tokens))``, one token's
  projections instead of every token's q, k, v and fc: a third of the transformer's work.
- The convolutions run channels-last (oneDNN's NHWC kernels), with autograd and without.
- Adam is fused in lumicap's trainer (``train.fused_optimizer``): 23 instead of 150 ms per step for the
  39M parameters (2 threads).

Sizes: the transformer needs the 1/4-resolution map to be a multiple of the 4x4 patch, so H and W are
reflect-padded to a multiple of 16 and the output is cropped back. (The official code leaves the remainder
of a non-multiple image out of the transformer - nn.Fold fills it with zeros; padding avoids that.)

Attribute names follow the official module names, so state-dict keys have the official layout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from lumicap.models.common import crop_to, pad_to_multiple, plain_form_wanted
from lumicap.models.registry import Recipe, Stage, register_model

__all__ = ["SNRAware", "snr_aware", "snr_map"]

_LUMA = (0.299, 0.587, 0.114)


def snr_map(x: torch.Tensor, blur_kernel: int = 5, eps: float = 1e-4) -> torch.Tensor:
    """SNR prior S in [0, 1], shape (B, 1, H, W), from an image (B, 3, H, W) in [0, 1] (paper Eq. 1)."""
    pad = blur_kernel // 2
    denoised = F.avg_pool2d(F.pad(x, (pad, pad, pad, pad), mode="reflect"), blur_kernel, stride=1)
    weights = x.new_tensor(_LUMA).view(1, 3, 1, 1)
    luma = (x * weights).sum(dim=1, keepdim=True)
    luma_denoised = (denoised * weights).sum(dim=1, keepdim=True)
    snr = luma_denoised / ((luma - luma_denoised).abs() + eps)
    snr = snr / (snr.flatten(1).amax(dim=1).view(-1, 1, 1, 1) + eps)
    return snr.clamp(0.0, 1.0)


class ResidualBlock(nn.Module):
    """conv3x3 -> ReLU -> conv3x3, plus identity (no BatchNorm).

    Initialised as the official ``arch_util.ResidualBlock_noBN`` (EDVR): Kaiming-normal (fan-in) weights
    scaled by 0.1 and zero biases, so each block starts close to the identity.
    """

    def __init__(self, nf: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(nf, nf, 3, padding=1)
        self.conv2 = nn.Conv2d(nf, nf, 3, padding=1)
        for conv in (self.conv1, self.conv2):
            nn.init.kaiming_normal_(conv.weight, a=0, mode="fan_in")
            with torch.no_grad():
                conv.weight.mul_(0.1)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # in place on the conv's output (a temporary; conv backward needs its input, not its output)
        return x + self.conv2(F.relu(self.conv1(x), inplace=True))


class SNRMaskedAttention(nn.Module):
    """Multi-head self-attention whose keys are restricted to high-SNR tokens; pre-norm (one LayerNorm shared
    by q, k, v), residual on the input."""

    def __init__(self, n_head: int, d_model: int, d_k: int, d_v: int):
        super().__init__()
        self.n_head, self.d_k, self.d_v = n_head, d_k, d_v
        self.w_qs = nn.Linear(d_model, n_head * d_k, bias=False)
        self.w_ks = nn.Linear(d_model, n_head * d_k, bias=False)
        self.w_vs = nn.Linear(d_model, n_head * d_v, bias=False)
        self.fc = nn.Linear(n_head * d_v, d_model, bias=False)
        self.layer_norm = nn.LayerNorm(d_model, eps=1e-6)

    def forward(self, x: torch.Tensor, key_keep: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        h, d_v = self.n_head, self.d_v
        normed = self.layer_norm(x)
        if plain_form_wanted():  # traced, compiled or MAC-counted: the official formula, no data-dependent branch
            return x + self.fc(self._masked_softmax_attention(normed, key_keep))
        keep = key_keep.reshape(b, n)
        if not keep.any():
            return x + self._uniform_attention(normed)
        q, k, v = self._heads(normed)
        # The official code replaces masked scores by -1e9 before the softmax. Whenever one key of an image is
        # kept, exp(-1e9 - max) is exactly 0 in float32, so the masked keys have weight 0 and gradient 0: the
        # attention over the kept keys alone is the same function, without the masked keys' work. With every
        # key masked the official softmax is uniform: the mean of v.
        # (No -1e9 offset is ever added: an additive bias, e.g. through scaled_dot_product_attention's mask,
        # swamps float32 precision and returns gradients that explode when most tokens are masked.)
        out = []
        for i in range(b):
            kept = keep[i].nonzero().squeeze(1)
            if kept.numel() == 0:
                out.append(v[i].mean(dim=1, keepdim=True).expand(h, n, d_v))
            elif kept.numel() == n:
                out.append((q[i] @ k[i].transpose(-2, -1)).softmax(dim=-1) @ v[i])
            else:
                out.append((q[i] @ k[i, :, kept].transpose(-2, -1)).softmax(dim=-1) @ v[i, :, kept])
        out = torch.stack(out).transpose(1, 2).reshape(b, n, h * d_v)
        return x + self.fc(out)

    def _heads(self, normed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q (already divided by sqrt(d_k)), k and v, each (B, heads, N, d). The 1/sqrt(d_k) = 1/8 scales q in
        place: a power of two, so the same numbers as the official code's scaling of q before the product."""
        b, n, _ = normed.shape
        h, d_k, d_v = self.n_head, self.d_k, self.d_v
        q = F.linear(normed, self.w_qs.weight).mul_(d_k**-0.5).view(b, n, h, d_k).transpose(1, 2)
        k = self.w_ks(normed).view(b, n, h, d_k).transpose(1, 2)
        v = self.w_vs(normed).view(b, n, h, d_v).transpose(1, 2)
        return q, k, v

    def _masked_softmax_attention(self, normed: torch.Tensor, key_keep: torch.Tensor) -> torch.Tensor:
        """The official formula: masked scores replaced by -1e9, softmax over every key (B, N, heads * d_v)."""
        b, n, _ = normed.shape
        q, k, v = self._heads(normed)
        attn = (q @ k.transpose(-2, -1)).masked_fill(~key_keep, -1e9).softmax(dim=-1)
        return (attn @ v).transpose(1, 2).reshape(b, n, self.n_head * self.d_v)

    def _uniform_attention(self, normed: torch.Tensor) -> torch.Tensor:
        """Every key of every image masked: each query attends uniformly, so every token receives
        fc(mean of v) = fc(w_vs(mean of the normed tokens)) (both maps are linear): one token's projections
        instead of n tokens' q, k, v and fc. This is the usual case, not a corner: the SNR map is divided by
        its maximum, which one near-noiseless pixel makes large, and on all 15 LOL-v1 eval15 photos no 4x4
        patch keeps a mean above 0.5. Returns (B, 1, d_model), broadcast over the tokens."""
        update = self.fc(self.w_vs(normed.mean(dim=1, keepdim=True)))
        if torch.is_grad_enabled():
            # q and k do not reach the output (their official gradient is exactly zero): keep that gradient a
            # zero tensor rather than none, so that an optimizer's state advances on them as it does there.
            update = update + 0.0 * (self.w_qs.weight.sum() + self.w_ks.weight.sum())
        return update


class PositionwiseFeedForward(nn.Module):
    """Pre-norm two-layer MLP (ReLU), residual."""

    def __init__(self, d_in: int, d_hid: int):
        super().__init__()
        self.w_1 = nn.Linear(d_in, d_hid)
        self.w_2 = nn.Linear(d_hid, d_in)
        self.layer_norm = nn.LayerNorm(d_in, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # in place on w_1's fresh output (Linear's backward needs its input, ReLU's its output)
        return x + self.w_2(F.relu(self.w_1(self.layer_norm(x)), inplace=True))


class SNRTransformerLayer(nn.Module):
    def __init__(self, d_model: int, d_inner: int, n_head: int, d_k: int, d_v: int):
        super().__init__()
        self.slf_attn = SNRMaskedAttention(n_head, d_model, d_k, d_v)
        self.pos_ffn = PositionwiseFeedForward(d_model, d_inner)

    def forward(self, x: torch.Tensor, key_keep: torch.Tensor) -> torch.Tensor:
        return self.pos_ffn(self.slf_attn(x, key_keep))


class SNRAwareTransformer(nn.Module):
    """The long-range branch's encoder (official ``Encoder_patch66``): a stack of masked layers."""

    def __init__(self, d_model: int = 1024, d_inner: int = 2048, n_layers: int = 6, n_head: int = 8,
                 d_k: int = 64, d_v: int = 64):
        super().__init__()
        self.layer_stack = nn.ModuleList(
            SNRTransformerLayer(d_model, d_inner, n_head, d_k, d_v) for _ in range(n_layers)
        )

    def forward(self, tokens: torch.Tensor, key_keep: torch.Tensor) -> torch.Tensor:
        for layer in self.layer_stack:
            tokens = layer(tokens, key_keep)
        return tokens


class SNRAware(nn.Module):
    """SNR-aware enhancement network (see module docstring). ``forward(x)`` computes the SNR map itself;
    ``forward_with_snr(x, snr)`` takes a precomputed one (B, 1, H, W)."""

    def __init__(self, nf: int = 64, front_RBs: int = 1, back_RBs: int = 1, short_range_RBs: int = 6,
                 patch: int = 4, n_layers: int = 6, d_inner: int = 2048, snr_threshold: float = 0.5):
        super().__init__()
        self.patch = patch
        self.snr_threshold = snr_threshold
        self.conv_first_1 = nn.Conv2d(3, nf, 3, padding=1)
        self.conv_first_2 = nn.Conv2d(nf, nf, 3, stride=2, padding=1)
        self.conv_first_3 = nn.Conv2d(nf, nf, 3, stride=2, padding=1)
        self.feature_extraction = nn.Sequential(*[ResidualBlock(nf) for _ in range(front_RBs)])
        self.recon_trunk = nn.Sequential(*[ResidualBlock(nf) for _ in range(back_RBs)])
        self.upconv1 = nn.Conv2d(nf * 2, nf * 4, 3, padding=1)
        self.upconv2 = nn.Conv2d(nf * 2, nf * 4, 3, padding=1)
        self.pixel_shuffle = nn.PixelShuffle(2)
        self.HRconv = nn.Conv2d(nf * 2, nf, 3, padding=1)
        self.conv_last = nn.Conv2d(nf, 3, 3, padding=1)
        # In place (as in the official model): every use is on a fresh conv or pixel-shuffle output.
        self.lrelu = nn.LeakyReLU(0.1, inplace=True)
        self.transformer = SNRAwareTransformer(d_model=nf * patch * patch, d_inner=d_inner, n_layers=n_layers)
        self.recon_trunk_light = nn.Sequential(*[ResidualBlock(nf) for _ in range(short_range_RBs)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded, size = pad_to_multiple(x, 4 * self.patch)  # two stride-2 convs, then patch x patch tokens
        with torch.no_grad():
            snr = snr_map(padded)
        return crop_to(self.forward_with_snr(padded, snr), size).contiguous()

    def forward_with_snr(self, x: torch.Tensor, snr: torch.Tensor) -> torch.Tensor:
        # Every conv runs channels-last (oneDNN's NHWC kernels): 7-23% less time for these 3x3 convs without
        # autograd; with it, 28-45% less for the 64-channel convs of the 1/4-resolution trunk and the last
        # conv, the same for the wide ones. The map is put back into that layout after the transformer's fold,
        # which writes NCHW.
        x = x.contiguous(memory_format=torch.channels_last)
        fea_1 = self.lrelu(self.conv_first_1(x))
        fea_2 = self.lrelu(self.conv_first_2(fea_1))
        fea_3 = self.lrelu(self.conv_first_3(fea_2))
        fea = self.feature_extraction(fea_3)
        short_range = self.recon_trunk_light(fea)

        h, w = fea.shape[-2:]
        snr = F.interpolate(snr, size=(h, w), mode="nearest")
        long_range = self._long_range(fea, snr)
        fea = long_range * (1 - snr) + short_range * snr  # SNR-guided fusion
        fea = fea.contiguous(memory_format=torch.channels_last)

        out = torch.cat([self.recon_trunk(fea), fea_3], dim=1)
        out = self.lrelu(self.pixel_shuffle(self.upconv1(out)))
        out = self.lrelu(self.pixel_shuffle(self.upconv2(torch.cat([out, fea_2], dim=1))))
        out = self.lrelu(self.HRconv(torch.cat([out, fea_1], dim=1)))
        return self.conv_last(out) + x

    def _long_range(self, fea: torch.Tensor, snr: torch.Tensor) -> torch.Tensor:
        p = self.patch
        b, c, h, w = fea.shape
        # Non-overlapping p x p patches, each flattened channel-major (c, row, column) as F.unfold orders them,
        # the patches in raster order; by reshapes (F.fold's col2im has no ONNX opset-17 form).
        tokens = fea.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(b, -1, c * p * p)
        token_snr = F.unfold(snr, kernel_size=p, stride=p).mean(dim=1)  # (B, N)
        key_keep = (token_snr > self.snr_threshold)[:, None, None, :]  # attend only to high-SNR patches
        tokens = self.transformer(tokens, key_keep)
        return tokens.reshape(b, h // p, w // p, c, p, p).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)


_SNR_RECIPE = Recipe(
    stages=(
        Stage(
            name="main",
            iterations=600_000,
            batch_size=32,
            patch_size=128,
            losses={"charbonnier": 1.0},
            optimizer={"name": "adam", "lr": 4e-4, "betas": (0.9, 0.99), "weight_decay": 0.0},
            scheduler={"name": "multistep", "milestones": [50_000, 100_000, 200_000, 300_000], "gamma": 0.5},
        ),
    ),
    source="dvlab-research/SNR-Aware-Low-Light-Enhance options/train/LOLv1.yml: pixel_criterion cb "
    "(Charbonnier, weight 1), Adam lr 4e-4 betas (0.9, 0.99), niter 600000, MultiStepLR lr_steps "
    "[50000, 100000, 200000, 300000] gamma 0.5, batch_size 32, GT_size/LQ_size 128, flips + rotations",
    notes="The official Charbonnier (models/loss.py) is sqrt(d^2 + 1e-6) SUMMED over the batch, not averaged; "
    "with Adam the scale mostly matters through eps. The paper also mentions a VGG perceptual term; the "
    "released LOLv1 options and training code use Charbonnier only.",
)


@register_model(
    paper="Xu et al., SNR-aware Low-Light Image Enhancement, CVPR 2022",
    official_params=39_124_099,
    params_source="computed from the official low_light_transformer(nf=64, front_RBs=1, back_RBs=1, HR_in=True) "
    "of dvlab-research/SNR-Aware-Low-Light-Enhance models/archs/low_light_transformer.py with "
    "options/train/LOLv1.yml; the often-quoted 4.01M does not match the official code",
    recipe=_SNR_RECIPE,
    constructor=SNRAware,
    allowed={
        "front_RBs": Field(ge=0),
        "back_RBs": Field(ge=0),
        "short_range_RBs": Field(ge=0),
        "snr_threshold": Field(ge=0, le=1),
    },
)
def snr_aware(**overrides) -> nn.Module:
    return SNRAware(**{"nf": 64, "front_RBs": 1, "back_RBs": 1, **overrides})
