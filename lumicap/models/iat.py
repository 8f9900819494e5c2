"""IAT — Illumination Adaptive Transformer (Cui et al., BMVC 2022, "You Only Need 90K Parameters to Adapt
Light").

Written from the paper (Fig. 2) and the facts of the official code, cuiziteng/Illumination-Adaptive-Transformer,
``IAT_enhance/model/{IAT_main,blocks,global_net}.py`` (commit 21124d6). No code is copied.

Two branches look at the same low-light image ``x``:

- **Pixel-wise local branch** (``local_net``): a 3x3 stem (3->16, LeakyReLU 0.2) feeds two stacks of three
  *PEM* blocks (position embedding + depth-wise-conv "attention" + MLP, each normalised by a learnable
  colour-affine norm); one stack ends in a 3x3 conv + ReLU giving the multiply map ``M``, the other in a 3x3
  conv + Tanh giving the add map ``A`` (both with a shortcut from the stem). ``x_local = x * M + A``.
- **Global ISP branch** (``global_net``): two stride-2 3x3 convs (3->32->64, BatchNorm, GELU) embed the
  image; 10 learned queries cross-attend to the embedded pixels (4 heads, dim 64, no residual on the queries);
  query 0 becomes the gamma (+ a learnable base 1), queries 1..9 the 3x3 colour matrix (+ identity base).
  ``y = clamp(C @ x_local, 1e-8, 1) ** gamma`` per pixel.

Parameter count: **91,154**, computed by us from the official model definition (``IAT(type='lol')``: the
"LOL" variant whose gamma base is trainable; the paper's title rounds it to "90K", its table to 0.09M).
Sizes: works on any H, W (the global branch only strides, the local branch is fully convolutional), so no
padding is needed.

Attribute names follow the official module names, so the state-dict keys have the official layout; the
parameter shapes are the official ones too (1x1 convs keep (out, in, 1, 1) weights), so official files
and earlier lumicap files load unchanged.

Speed (CPU): IAT is 16-channel maps at full resolution, so its time goes to memory passes, not arithmetic.
``PEMBlock`` says how the local branch avoids them (channels-last, folded norms and layer scales, a
chunked in-place tail without autograd). Its time side by side with the official code
(``benchmarks/bench_vs_official.py``) is in ``benchmarks/README.md``, with the date it was measured.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from lumicap.models.common import eager_inference
from lumicap.models.registry import Recipe, Stage, register_model

__all__ = ["IAT", "iat"]


class DropPath(nn.Module):
    """Stochastic depth: in training, zero a whole residual branch per sample with probability ``p``."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    @property
    def active(self) -> bool:
        return self.training and self.p > 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.active:
            return x
        return x * self._sample_scale(x)

    def add_to(self, residual: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
        """``residual + self(branch)`` in one element-wise pass."""
        if not self.active:
            return residual + branch
        return torch.addcmul(residual, branch, self._sample_scale(branch))

    def _sample_scale(self, x: torch.Tensor) -> torch.Tensor:
        # Per sample 0 or 1/keep: the mask and the rescaling in one factor, so the map is touched once.
        keep = 1.0 - self.p
        return x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep).div_(keep)


class ColorAffineNorm(nn.Module):
    """IAT's normalisation (official ``Aff_channel``): mix channels with a learnable matrix (init identity),
    then scale and shift each channel: ``norm(t) = (t @ color.T) * alpha + beta`` on channel-last tokens.

    The norm is affine, and in IAT it always feeds a point-wise linear layer, so ``fold_into`` merges it
    into that layer's weights (a 16x16 product per forward) instead of paying a per-pixel pass for it."""

    def __init__(self, dim: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, dim))
        self.color = nn.Parameter(torch.eye(dim))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return (tokens @ self.color.t()) * self.alpha + self.beta

    def fold_into(self, weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W', b')`` with ``linear(t, W', b') == linear(self(t), weight, bias)``; ``weight`` is (out, dim)."""
        alpha, beta = self.alpha.view(-1), self.beta.view(-1)
        return (weight * alpha) @ self.color, bias + weight @ beta


def _pointwise(conv: nn.Conv2d, scale: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A 1x1 conv's weight (out, in, 1, 1) as a linear layer's (out, in), optionally times a per-output
    ``scale`` (a layer scale folded in)."""
    weight, bias = conv.weight.flatten(1), conv.bias
    if scale is None:
        return weight, bias
    scale = scale.view(-1)
    return weight * scale[:, None], bias * scale


class ConvMlp(nn.Module):
    """Point-wise MLP (official ``CMlp``): 1x1 conv, GELU, 1x1 conv (ratio 4). The weights keep the
    official 1x1-conv shapes; ``PEMBlock`` applies them as linear layers on channel-last tokens, and
    ``forward`` (the plain form on an NCHW map) is the reference it must agree with."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class PEMBlock(nn.Module):
    """The local branch's block (paper Fig. 2, "PEM"; official ``CBlock_ln``).

    x += dwconv3x3(x)                                  (position embedding)
    x += g1 * conv1x1(dwconv5x5(conv1x1(norm1(x))))    (depth-wise conv in place of self-attention)
    x += g2 * mlp(norm2(x))
    ``g1, g2`` are per-channel layer scales initialised to 1e-4, so each block starts near identity.

    Computed for speed, with the official parameters and the official result (float32 rounding aside):

    - channels-last map: the 1x1 convs become matrix products on a free ``(B, H, W, C)`` view and the
      depth-wise convs use oneDNN's channels-last kernels, with no layout copies in between. The official
      code permutes to tokens for each norm and back, and whether its 1x1 convs take oneDNN or the slow
      path depends on PyTorch's thread-count heuristics;
    - each norm is folded into the 1x1 conv after it, each layer scale into the 1x1 conv before it, the
      position embedding's residual into its centre tap: per block two per-pixel 16x16 products and six
      element-wise passes fewer, forward and backward, in a network whose work is mostly such passes;
    - without autograd, in eager mode (``eager_inference``: not while traced for ONNX export), the
      point-wise tail (``conv2``, the residuals, the MLP) runs in place, 16,384 tokens at a time on the
      CPU: the 4x wider MLP hidden then stays in cache and its buffer is reused, where a whole-map hidden
      is a fresh 61 MiB allocation per block at 600x400 (page faults dominate it); the whole network's
      gain is in ``benchmarks/README.md``.
    """

    def __init__(self, dim: int = 16, mlp_ratio: float = 4.0, drop_path: float = 0.0, init_scale: float = 1e-4):
        super().__init__()
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = ColorAffineNorm(dim)
        self.conv1 = nn.Conv2d(dim, dim, 1)
        self.attn = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.conv2 = nn.Conv2d(dim, dim, 1)
        self.drop_path = DropPath(drop_path)
        self.norm2 = ColorAffineNorm(dim)
        self.gamma_1 = nn.Parameter(init_scale * torch.ones(1, dim, 1, 1))
        self.gamma_2 = nn.Parameter(init_scale * torch.ones(1, dim, 1, 1))
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (B, C, H, W), best in ``torch.channels_last`` memory (the result is too)."""
        dim = x.shape[1]
        # x + dwconv(x) == dwconv with 1 added to the centre tap: one pass instead of two.
        identity = torch.zeros_like(self.pos_embed.weight)
        identity[:, :, 1, 1] = 1.0
        x = F.conv2d(x, self.pos_embed.weight + identity, self.pos_embed.bias, padding=1, groups=dim)
        tokens = x.permute(0, 2, 3, 1)  # (B, H, W, C): a view of a channels-last map
        y = F.linear(tokens, *self.norm1.fold_into(*_pointwise(self.conv1)))
        y = self.attn(y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        if not eager_inference() or self.drop_path.active:
            tokens = self.drop_path.add_to(tokens, F.linear(y, *_pointwise(self.conv2, self.gamma_1)))
            hidden = self.mlp.act(F.linear(tokens, *self.norm2.fold_into(*_pointwise(self.mlp.fc1))))
            tokens = self.drop_path.add_to(tokens, F.linear(hidden, *_pointwise(self.mlp.fc2, self.gamma_2)))
        else:
            tokens = self._pointwise_tail_in_chunks(tokens.contiguous(), y)
        return tokens.permute(0, 3, 1, 2)

    # Tokens per chunk of the no-grad path on the CPU (the hidden chunk is 4 MiB). On a GPU the whole map
    # is one chunk: there, many small kernels would cost launches and caches do not help.
    CHUNK_TOKENS = 16384

    @torch.no_grad()
    def _pointwise_tail_in_chunks(self, tokens: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Without autograd: ``tokens += g1*conv2(y)``, then ``tokens += g2*mlp(norm2(tokens))``, in place,
        chunk by chunk, in one reused hidden buffer. Few ops per chunk (each is a parallel region, and a
        thread barrier): conv2's bias joins the residual at the end, through the MLP's input bias."""
        dim = tokens.shape[-1]
        flat, y = tokens.view(-1, dim), y.reshape(-1, dim)
        step = self.CHUNK_TOKENS if flat.device.type == "cpu" else max(flat.shape[0], 1)
        w2, b2 = _pointwise(self.conv2, self.gamma_1)
        w_in, b_in = self.norm2.fold_into(*_pointwise(self.mlp.fc1))
        w_out, b_out = _pointwise(self.mlp.fc2, self.gamma_2)
        b_in, b_end = b_in + w_in @ b2, b2 + b_out
        # In-place ops are not autocast: give everything the map's dtype (bf16 under autocast, as F.linear would).
        w2, w_in, w_out = (w.t().to(flat.dtype) for w in (w2, w_in, w_out))
        b_in, b_end, y = b_in.to(flat.dtype), b_end.to(flat.dtype), y.to(flat.dtype)
        hidden = flat.new_empty(min(step, flat.shape[0]), w_in.shape[1])
        for start in range(0, flat.shape[0], step):
            chunk = flat[start : start + step]
            h = hidden[: chunk.shape[0]]
            chunk.addmm_(y[start : start + step], w2)
            torch.addmm(b_in, chunk, w_in, out=h)
            torch.ops.aten.gelu_(h)  # exact (erf) GELU, as nn.GELU()
            chunk.addmm_(h, w_out).add_(b_end)
        return tokens


# How far a pixel of M or A sees: the stem (1), three PEM blocks per stack (3x3 position conv: 1, 5x5
# depth-wise conv: 2) and the 3x3 end conv (1): 1 + 3 * 3 + 1 = 11 pixels on each side.
LOCAL_RADIUS = 11


class LocalBranch(nn.Module):
    """Pixel-wise local branch: predicts the multiply map M (ReLU, >= 0) and add map A (Tanh, in [-1, 1]).

    ``border="zeros"`` is the official behaviour: every conv pads with zeros, so the outermost
    ``LOCAL_RADIUS`` pixels see black beyond the photo and M, A bend there (a darker frame with a coloured
    line inside it, up to 36 levels on 8-bit outputs of a model trained on crops). ``border="reflect"``
    mirrors the input by ``LOCAL_RADIUS + 1`` pixels once, before the stem, and crops the maps back: every
    pixel of M and A is then computed from image content, as in the interior (measured: the frame goes
    to 0.2 levels), for about 8% more work at 600x400.
    """

    def __init__(
        self,
        in_dim: int = 3,
        dim: int = 16,
        drop_paths: tuple[float, ...] = (0.01, 0.05, 0.1),
        border: Literal["zeros", "reflect"] = "zeros",
    ):
        super().__init__()
        if border not in ("zeros", "reflect"):
            raise ValueError(f"IAT border must be 'zeros' or 'reflect', got {border!r}")
        self.pad = LOCAL_RADIUS + 1 if border == "reflect" else 0
        self.conv1 = nn.Conv2d(in_dim, dim, 3, padding=1)
        self.relu = nn.LeakyReLU(0.2)
        self.mul_blocks = nn.Sequential(*[PEMBlock(dim, drop_path=p) for p in drop_paths])
        self.add_blocks = nn.Sequential(*[PEMBlock(dim, drop_path=p) for p in drop_paths])
        self.mul_end = nn.Sequential(nn.Conv2d(dim, 3, 3, padding=1), nn.ReLU())
        self.add_end = nn.Sequential(nn.Conv2d(dim, 3, 3, padding=1), nn.Tanh())
        self.apply(_init_local)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pad = self.pad
        if pad:
            height, width = x.shape[-2:]
            # Reflection needs more pixels than the pad; a tiny input repeats its edge instead.
            x = F.pad(x, (pad,) * 4, mode="reflect" if min(height, width) > pad else "replicate")
        # Channels-last throughout (see PEMBlock); the 3-channel maps go back to the caller's layout.
        stem = self.relu(self.conv1(x.contiguous(memory_format=torch.channels_last)))
        mul = self.mul_end(self.mul_blocks(stem) + stem)
        add = self.add_end(self.add_blocks(stem) + stem)
        if pad:
            mul, add = mul[..., pad:-pad, pad:-pad], add[..., pad:-pad, pad:-pad]
        return mul.contiguous(), add.contiguous()


def _init_local(m: nn.Module) -> None:
    # Official init of the local branch: He-normal (fan-out) convs, zero biases.
    if isinstance(m, nn.Conv2d):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
        nn.init.normal_(m.weight, 0.0, (2.0 / fan_out) ** 0.5)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


class TokenMlp(nn.Module):
    """Token-wise MLP: linear, GELU, linear."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class QueryAttention(nn.Module):
    """Cross-attention from ``num_queries`` learned queries to the image tokens (no q projection)."""

    def __init__(self, dim: int = 64, num_heads: int = 4, num_queries: int = 10):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.q = nn.Parameter(torch.ones(1, num_queries, dim))
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        b, n, c = tokens.shape
        heads = self.num_heads

        def split(t: torch.Tensor) -> torch.Tensor:  # (B, L, C) -> (B, heads, L, C/heads)
            return t.reshape(b, -1, heads, c // heads).transpose(1, 2)

        q = split(self.q.expand(b, -1, -1))
        attn = (q @ split(self.k(tokens)).transpose(-2, -1)) * self.scale
        out = attn.softmax(dim=-1) @ split(self.v(tokens))
        return self.proj(out.transpose(1, 2).reshape(b, -1, c))


class QueryBlock(nn.Module):
    """Global branch transformer block (official ``query_SABlock``): the queries *replace* the tokens, so the
    attention has no residual; the MLP does."""

    def __init__(self, dim: int = 64, num_heads: int = 4, mlp_ratio: float = 4.0):
        super().__init__()
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = QueryAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = TokenMlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_embed(x)
        tokens = self.attn(self.norm1(x.flatten(2).transpose(1, 2)))
        return tokens + self.mlp(self.norm2(tokens))


class ConvEmbedding(nn.Module):
    """Two stride-2 3x3 convs with BatchNorm (3 -> 32 -> 64): a 4x downsampled embedding for the queries."""

    def __init__(self, in_channels: int = 3, out_channels: int = 64):
        super().__init__()
        mid = out_channels // 2
        self.proj = nn.Sequential(
            nn.Conv2d(in_channels, mid, 3, stride=2, padding=1),
            nn.BatchNorm2d(mid),
            nn.GELU(),
            nn.Conv2d(mid, out_channels, 3, stride=2, padding=1),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class GlobalBranch(nn.Module):
    """Global ISP branch: predicts a per-image gamma (B, 1) and colour matrix (B, 3, 3)."""

    def __init__(self, in_channels: int = 3, dim: int = 64, num_heads: int = 4, train_gamma_base: bool = True):
        super().__init__()
        # The exposure-correction variant freezes the gamma base; the LOL variant trains it.
        self.gamma_base = nn.Parameter(torch.ones(1), requires_grad=train_gamma_base)
        self.color_base = nn.Parameter(torch.eye(3))
        self.conv_large = ConvEmbedding(in_channels, dim)
        self.generator = QueryBlock(dim, num_heads)
        self.gamma_linear = nn.Linear(dim, 1)
        self.color_linear = nn.Linear(dim, 1)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        # Zero value projection: every query starts as the bias path, so gamma ~ 1 and colour ~ identity.
        nn.init.zeros_(self.generator.attn.v.weight)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        queries = self.generator(self.conv_large(x))  # (B, 10, dim)
        gamma = self.gamma_linear(queries[:, :1]).squeeze(-1) + self.gamma_base  # (B, 1)
        color = self.color_linear(queries[:, 1:]).squeeze(-1).view(-1, 3, 3) + self.color_base
        return gamma, color


class IAT(nn.Module):
    """Illumination Adaptive Transformer: ``y = (C @ (x * M + A)) ** gamma`` (see module docstring).

    Args:
        in_dim: input channels (3).
        with_global: with the global branch (gamma and colour matrix); without it ``y = x * M + A``.
        variant: ``"lol"`` (trainable gamma base, the LOL checkpoints) or ``"exp"`` (frozen gamma base).
        border: how the local branch treats the photo's edge: ``"zeros"`` (official) or ``"reflect"``
            (no dark frame; see ``LocalBranch``). The parameters are the same either way.
        global_downscale: the global branch sees the input average-pooled by this integer factor (1:
            official). Its gamma and colour matrix are image statistics, so a coarser view costs little,
            and in training the whole image it sees is ``global_downscale**2`` times cheaper.

    Training on crops: ``training_outputs(crop, context=whole)`` gives the global branch the whole image the
    crop was cut from (its exposure and content decide the gamma and colour, as they do at inference),
    while the local branch and the loss see the crop only.
    """

    def __init__(
        self,
        in_dim: int = 3,
        with_global: bool = True,
        variant: str = "lol",
        border: Literal["zeros", "reflect"] = "zeros",
        global_downscale: int = 1,
    ):
        super().__init__()
        if variant not in ("lol", "exp"):
            raise ValueError(f"IAT variant must be 'lol' or 'exp', got {variant!r}")
        if (
            isinstance(global_downscale, bool)
            or not isinstance(global_downscale, int)
            or not 1 <= global_downscale <= 16
        ):
            raise ValueError(f"IAT global_downscale must be an integer from 1 to 16, got {global_downscale!r}")
        self.local_net = LocalBranch(in_dim=in_dim, border=border)
        self.with_global = with_global
        self.global_downscale = global_downscale
        if with_global:
            self.global_net = GlobalBranch(in_channels=in_dim, train_gamma_base=(variant == "lol"))

    def global_params(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(gamma (B, 1), colour matrix (B, 3, 3)) of the whole image ``x``."""
        factor = self.global_downscale
        if factor > 1 and min(x.shape[-2:]) >= 2 * factor:
            x = F.avg_pool2d(x, factor)
        return self.global_net(x.contiguous(memory_format=torch.channels_last))

    def training_outputs(self, x: torch.Tensor, context: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        # Both branches run channels-last (see PEMBlock; the global branch's tokens are then a free view).
        x_cl = x.contiguous(memory_format=torch.channels_last)
        mul, add = self.local_net(x_cl)
        out = x * mul + add
        result = {"mul": mul, "add": add}
        if self.with_global:
            gamma, color = self.global_params(x_cl if context is None else context)
            out = torch.einsum("bchw,bdc->bdhw", out, color)
            out = out.clamp(1e-8, 1.0) ** gamma[:, :, None, None]
            result.update(gamma=gamma, color=color)
        result["output"] = out
        return result

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.training_outputs(x)["output"]


# Official LOL-v1 recipe (train_lol_v1_patch.py then train_lol_v1_whole.py, which loads phase 1's best
# checkpoint). Both scripts train on plain L1 (their VGG perceptual term is commented out), Adam betas
# (0.9, 0.999), batch 8, and step CosineAnnealingLR(T_max=num_epochs) once per *iteration*.
# Iterations = epochs x batches per epoch: phase 1 reads 485 images x 10 pre-cropped 256x256 patches
# (LOL_patch.py) -> ceil(4850 / 8) = 607 per epoch x 200 epochs = 121,400; phase 2 reads the 485 whole
# 600x400 images -> ceil(485 / 8) = 61 per epoch x 400 epochs = 24,400.
_IAT_RECIPE = Recipe(
    stages=(
        Stage(
            name="patches",
            iterations=121_400,
            batch_size=8,
            patch_size=256,
            losses={"l1": 1.0},
            optimizer={"name": "adam", "lr": 2e-4, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 4e-4},
            scheduler={"name": "cosine", "t_max": 121_400, "eta_min": 0.0},
        ),
        Stage(
            name="whole_images",
            iterations=24_400,
            batch_size=8,
            patch_size=None,
            losses={"l1": 1.0},
            optimizer={"name": "adam", "lr": 1e-4, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-4},
            scheduler={"name": "cosine", "t_max": 24_400, "eta_min": 0.0},
        ),
    ),
    source="cuiziteng/Illumination-Adaptive-Transformer IAT_enhance/train_lol_v1_patch.py (200 epochs, lr 2e-4, "
    "wd 4e-4, 256 patches) then train_lol_v1_whole.py (400 epochs, lr 1e-4, wd 1e-4, whole images); "
    "augmentation: 8 flips/rotations on patches, flips on whole images",
    notes="The official scripts step CosineAnnealingLR(T_max=num_epochs) every iteration, so their lr "
    "oscillates with a period of 2*T_max iterations (400 / 800); we record the evident intent, one cosine "
    "decay over each stage. Phase 2 starts from phase 1's best checkpoint.",
)


@register_model(
    paper="Cui et al., You Only Need 90K Parameters to Adapt Light: a Light Weight Transformer for Image "
    "Enhancement and Exposure Correction (IAT), BMVC 2022",
    official_params=91_154,
    params_source="computed from the official model definition IAT(type='lol'), cuiziteng/Illumination-"
    "Adaptive-Transformer IAT_enhance/model/IAT_main.py @21124d6 (paper: '90K', 0.09M)",
    recipe=_IAT_RECIPE,
    constructor=IAT,
    allowed={
        "variant": Literal["lol", "exp"],
        "border": Literal["zeros", "reflect"],
        "global_downscale": Field(ge=1, le=16),
    },
)
def iat(**overrides) -> nn.Module:
    return IAT(**{"in_dim": 3, "with_global": True, "variant": "lol", **overrides})
