"""RetinexNet — Deep Retinex Decomposition for Low-Light Enhancement (Wei et al., BMVC 2018).

Written from the paper (Fig. 1, Sec. 3) and the facts of the official TensorFlow code, weichen582/RetinexNet
``model.py`` and ``main.py``. No code is copied.

- **Decom-Net**: input = image ++ its channel-wise max (4 channels); a 9x9 conv (4->64, no activation), five
  3x3 convs (64, ReLU), a 3x3 conv to 4 channels; sigmoid -> reflectance R (3 channels) and illumination
  I (1 channel). The same Decom-Net (shared weights) decomposes the low and the normal-light image.
- **Enhance-Net** (official ``RelightNet``): input R_low ++ I_low; 3x3 conv (no activation), three stride-2
  3x3 convs (ReLU); three (nearest-neighbour resize to the skip's size, 3x3 conv + ReLU, + skip) steps;
  multi-scale concatenation of the three decoder outputs (resized to full size), 1x1 conv, 3x3 conv -> I_delta.
- Output ``S = R_low * I_delta`` (I_delta broadcast over the colour channels). (The paper's BM3D denoising of
  R is not part of the official network or of its reported training.)

Losses (official ``model.py``, all means of absolute values):
- decomposition: ``L_recon = sum_ij lambda_ij |R_i * I_j - S_j|`` with lambda_ii = 1, lambda_ij = 0.001;
  ``L_ir = |R_low - R_high|`` (weight 0.01); ``L_is = sum_i |grad I_i| * exp(-10 * avg3x3|grad gray(R_i)|)``
  (weight 0.1 each).
- relight: ``|R_low * I_delta - S_high|`` (weight 1) + 3 * smoothness of I_delta guided by R_low.
The gradients are forward differences. Unlike the TF code, whose 2x2 'SAME' convolution zero-pads the last
row/column (so a constant illumination gets a spurious edge at the border), we treat the border as having
no gradient, which makes the smoothness term exactly zero for a constant illumination, as the paper's
formula says.

Parameter count: **444,613** (Decom-Net 207,748 + Enhance-Net 236,865), computed by us from the official TF
definition (DecomNet channel 64, kernel 3, layer_num 5; RelightNet channel 64). Comparison tables elsewhere
quote other figures for RetinexNet (e.g. 0.84M in Retinexformer's Table 1); we match the official code.

Speed (CPU): all convolutions, as in the official code (~90% of a training step's profile is convolution
forward/backward). Without autograd both sub-networks run channels-last (``channels_last_without_grad``):
oneDNN's NHWC kernels make inference faster (``benchmarks/README.md``). Training stays NCHW (not measured
to gain from NHWC).

Sizes: any H, W. The stride-2 convs pad as TF 'SAME' does (``SameStrideConv2d``: ceil(H/2) outputs, the
extra row/column of an even side at the bottom/right), and every upsampling resizes to the skip's exact
size, so no padding is needed.

Initialisation as the official ``tf.layers.conv2d``: Glorot-uniform kernels, zero biases. Official
checkpoints (two TF1 checkpoint folders, ``model/Decom`` and ``model/Relight``) are read by
``lumicap.models.official.retinexnet`` (needs the ``tf`` extra).
"""

from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from lumicap.errors import LumicapError
from lumicap.models.common import channels_last_without_grad
from lumicap.models.registry import Recipe, Stage, register_model

__all__ = [
    "RetinexNet",
    "retinexnet",
    "reconstruction_loss",
    "invariable_reflectance_loss",
    "illumination_smoothness_loss",
]

_GRAY = (0.2989, 0.5870, 0.1140)  # tf.image.rgb_to_grayscale


class DecomNet(nn.Module):
    """Decomposes an image into reflectance R (B, 3, H, W) and illumination I (B, 1, H, W), both in (0, 1)."""

    def __init__(self, channels: int = 64, kernel_size: int = 3, layer_num: int = 5):
        super().__init__()
        self.shallow_feature_extraction = nn.Conv2d(4, channels, kernel_size * 3, padding=(kernel_size * 3) // 2)
        self.activated_layers = nn.Sequential(*[
            nn.Sequential(nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2), nn.ReLU())
            for _ in range(layer_num)
        ])
        self.recon_layer = nn.Conv2d(channels, 4, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = channels_last_without_grad(torch.cat([x.amax(dim=1, keepdim=True), x], dim=1))
        out = self.recon_layer(self.activated_layers(self.shallow_feature_extraction(x)))
        return torch.sigmoid(out[:, :3]).contiguous(), torch.sigmoid(out[:, 3:4]).contiguous()


class SameStrideConv2d(nn.Conv2d):
    """A strided convolution padded as TensorFlow's ``padding='SAME'``: output size ceil(n / stride), the total
    padding split with the smaller half at the top/left. For a 3x3 kernel at stride 2 an even side gets 0
    rows on top and 1 at the bottom (a symmetric ``padding=1`` would shift every output by one pixel and
    differ from the official model by up to 0.12); an odd side gets 1 and 1."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride)):
            total = max((-(-size // s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


class EnhanceNet(nn.Module):
    """Predicts the adjusted illumination I_delta (B, 1, H, W) from (R, I); official ``RelightNet``."""

    def __init__(self, channels: int = 64, kernel_size: int = 3):
        super().__init__()
        pad = kernel_size // 2
        self.conv0 = nn.Conv2d(4, channels, kernel_size, padding=pad)
        self.down = nn.ModuleList(SameStrideConv2d(channels, channels, kernel_size, stride=2) for _ in range(3))
        self.up = nn.ModuleList(nn.Conv2d(channels, channels, kernel_size, padding=pad) for _ in range(3))
        self.feature_fusion = nn.Conv2d(channels * 3, channels, 1)
        self.output = nn.Conv2d(channels, 1, 3, padding=1)

    def forward(self, reflectance: torch.Tensor, illumination: torch.Tensor) -> torch.Tensor:
        conv0 = self.conv0(channels_last_without_grad(torch.cat([reflectance, illumination], dim=1)))
        skips = [conv0]
        for down in self.down:
            skips.append(F.relu(down(skips[-1])))
        fea = skips.pop()  # the coarsest level
        decoded = []
        for up, skip in zip(self.up, reversed(skips)):
            fea = F.relu(up(F.interpolate(fea, size=skip.shape[-2:], mode="nearest"))) + skip
            decoded.append(fea)
        full = decoded[-1].shape[-2:]
        gathered = torch.cat([F.interpolate(d, size=full, mode="nearest") for d in decoded], dim=1)
        return self.output(self.feature_fusion(gathered))


# ----------------------------------------------------------------------------------------------- losses


def reconstruction_loss(reflectance: torch.Tensor, illumination: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """mean |R * I - S| (I broadcast over colour channels)."""
    return (reflectance * illumination - image).abs().mean()


def invariable_reflectance_loss(reflectance_low: torch.Tensor, reflectance_high: torch.Tensor) -> torch.Tensor:
    """mean |R_low - R_high|: a scene has one reflectance whatever the lighting."""
    return (reflectance_low - reflectance_high).abs().mean()


def _forward_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """|x[., j+1] - x[., j]| and |x[i+1, .] - x[i, .]|, same size as x, zero past the last column/row."""
    gx = F.pad((x[..., :, 1:] - x[..., :, :-1]).abs(), (0, 1, 0, 0))
    gy = F.pad((x[..., 1:, :] - x[..., :-1, :]).abs(), (0, 0, 0, 1))
    return gx, gy


def illumination_smoothness_loss(illumination: torch.Tensor, reflectance: torch.Tensor,
                                 edge_weight: float = 10.0) -> torch.Tensor:
    """Structure-aware smoothness: mean over pixels of ``|grad I| * exp(-10 * avg3x3 |grad gray(R)|)`` for x and y.

    Illumination may vary freely where the reflectance has edges, and must be smooth elsewhere.
    """
    gray = (reflectance * reflectance.new_tensor(_GRAY).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
    i_x, i_y = _forward_gradients(illumination)
    r_x, r_y = _forward_gradients(gray)

    def local_mean(g: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(g, 3, stride=1, padding=1, count_include_pad=False)  # TF 'SAME' average pooling

    weighted = i_x * torch.exp(-edge_weight * local_mean(r_x)) + i_y * torch.exp(-edge_weight * local_mean(r_y))
    return weighted.mean()


# ------------------------------------------------------------------------------------------------ model


class RetinexNet(nn.Module):
    """Decom-Net + Enhance-Net. ``forward(low)`` is the enhanced image ``R_low * I_delta``.

    Training runs in two stages (see the recipe): ``stage_losses("decomposition", low, high)`` gives the
    Decom-Net terms, ``stage_losses("relight", low, high)`` the enhanced image (``"output"``) plus the
    Enhance-Net's smoothness term; ``stage_parameters(stage)`` names the sub-network each stage trains.
    """

    STAGES = ("decomposition", "relight")

    def __init__(self, channels: int = 64, kernel_size: int = 3, decom_layers: int = 5):
        super().__init__()
        self.decom_net = DecomNet(channels, kernel_size, decom_layers)
        self.relight_net = EnhanceNet(channels, kernel_size)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):  # tf.layers.conv2d defaults: Glorot-uniform kernels, zero biases
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def decompose(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(R (B, 3, H, W), I (B, 1, H, W)) of an image."""
        return self.decom_net(x)

    def training_outputs(self, low: torch.Tensor) -> dict[str, torch.Tensor]:
        reflectance, illumination = self.decompose(low)
        illumination_delta = self.relight_net(reflectance, illumination)
        return {
            "output": reflectance * illumination_delta,
            "reflectance": reflectance,
            "illumination": illumination,
            "illumination_delta": illumination_delta,
        }

    def forward(self, low: torch.Tensor) -> torch.Tensor:
        return self.training_outputs(low)["output"]

    def stage_losses(self, stage: str, low: torch.Tensor, high: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named, unweighted, non-negative loss terms of a training stage (weights live in the recipe)."""
        if stage == "decomposition":
            r_low, i_low = self.decompose(low)
            r_high, i_high = self.decompose(high)
            return {
                "recon_low": reconstruction_loss(r_low, i_low, low),
                "recon_high": reconstruction_loss(r_high, i_high, high),
                "recon_mutual_low": reconstruction_loss(r_high, i_low, low),
                "recon_mutual_high": reconstruction_loss(r_low, i_high, high),
                "invariable_reflectance": invariable_reflectance_loss(r_low, r_high),
                "smooth_low": illumination_smoothness_loss(i_low, r_low),
                "smooth_high": illumination_smoothness_loss(i_high, r_high),
            }
        if stage == "relight":
            out = self.training_outputs(low)
            return {
                "output": out["output"],  # the trainer's "l1" term (|R_low * I_delta - S_high|) and MFR use it
                "relight_smoothness": illumination_smoothness_loss(out["illumination_delta"], out["reflectance"]),
            }
        raise LumicapError(f"RetinexNet has no training stage {stage!r}; stages: {', '.join(self.STAGES)}")

    def stage_parameters(self, stage: str) -> Iterator[nn.Parameter]:
        """Decom-Net in the decomposition stage, Enhance-Net only in the relight stage (as officially)."""
        if stage == "decomposition":
            return self.decom_net.parameters()
        if stage == "relight":
            return self.relight_net.parameters()
        raise LumicapError(f"RetinexNet has no training stage {stage!r}; stages: {', '.join(self.STAGES)}")


# Official training (main.py): 100 epochs per phase, batch 16, 48x48 patches, Adam lr 1e-3 for 20 epochs
# then 1e-4, on LOL our485 + 1000 synthetic pairs (1485 images). One epoch = 1485 // 16 = 92 iterations,
# so a phase is 9,200 iterations with the drop at 1,840.
_PHASE = {"iterations": 9_200, "batch_size": 16, "patch_size": 48}
_OPTIMIZER = {"name": "adam", "lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8}
_SCHEDULER = {"name": "multistep", "milestones": [1_840], "gamma": 0.1}

_RETINEXNET_RECIPE = Recipe(
    stages=(
        Stage(
            name="decomposition",
            **_PHASE,
            losses={
                "recon_low": 1.0,
                "recon_high": 1.0,
                "recon_mutual_low": 0.001,
                "recon_mutual_high": 0.001,
                "invariable_reflectance": 0.01,
                "smooth_low": 0.1,
                "smooth_high": 0.1,
            },
            optimizer=_OPTIMIZER,
            scheduler=_SCHEDULER,
            objective="decomposition",
            mfr=False,
        ),
        Stage(
            name="relight",
            **_PHASE,
            losses={"l1": 1.0, "relight_smoothness": 3.0},
            optimizer=_OPTIMIZER,
            scheduler=_SCHEDULER,
            objective="relight",
            mfr=True,
        ),
    ),
    source="weichen582/RetinexNet model.py (loss_Decom = recon_low + recon_high + 0.001 mutual x2 + 0.1 smooth x2 "
    "+ 0.01 equal_R; loss_Relight = relight + 3 smooth_delta) and main.py (epoch 100, batch 16, patch 48, "
    "start_lr 1e-3, lr /10 after epoch 20, 8 flips/rotations)",
    notes="Official training data: LOL our485 plus 1000 synthetic pairs; on our485 alone one epoch is "
    "485 // 16 = 30 iterations. The relight stage trains only the Enhance-Net (stage_parameters); the "
    "Decom-Net stays as the decomposition stage left it.",
)


@register_model(
    paper="Wei et al., Deep Retinex Decomposition for Low-Light Enhancement (RetinexNet), BMVC 2018",
    official_params=444_613,
    params_source="computed from the official TF definition, weichen582/RetinexNet model.py: DecomNet (channel 64, "
    "kernel 3, 5 layers) 207,748 + RelightNet (channel 64) 236,865",
    recipe=_RETINEXNET_RECIPE,
    constructor=RetinexNet,
)
def retinexnet(**overrides) -> nn.Module:
    return RetinexNet(**{"channels": 64, "kernel_size": 3, "decom_layers": 5, **overrides})
