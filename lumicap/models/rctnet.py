"""RCTNet: "Representative Color Transform for Image Enhancement" (Kim, Choi, Kim, Koh, ICCV 2021).

No official code exists. This file follows the paper's description (Sec. 3 and Fig. 2-3); where the text
leaves a detail open, the choice below was cross-checked against two unofficial re-implementations
(github.com/ThanosM97/Representative-Color-Transform and github.com/georgewux/RCTNet), which agree on it
unless noted. Pieces, as in the paper's Fig. 2:

* **Encoder** (Sec. 3.1): the input resized to 256x256 goes through six conv-bn-swish blocks, five 3x3
  stride-2 convs (16, 32, 64, 128, 256 channels) and one 1x1 conv (1024) followed by global average pooling.
  The last four outputs (32x32, 16x16, 8x8, 1x1) are the multi-scale features.
* **Feature fusion** (Sec. 3.1): bidirectional cross-scale connections as in EfficientDet's BiFPN, every node a
  conv-bn-swish block with 128 filters, 3x3 kernels except at the coarsest (1x1) level, where they are 1x1;
  a node with several inputs first takes their fast normalised weighted sum
  ``O = sum_i w_i I_i / (eps + sum_j w_j)`` with learnable non-negative ``w``. Resampling between levels is
  not specified: nearest-neighbour upsampling and 2x2 max-pool downsampling (BiFPN's choices) and global
  average pooling into the 1x1 level (the encoder's own way there).
* **Image features** F (C = 16 channels) from the full-resolution input by a conv-bn-swish-conv block.
* **Global RCT** (Sec. 3.2): from the 1x1 fused feature, two conv-bn-swish-conv blocks give N_G = 64
  representative features R_G (C x N_G) and their transformed RGB colours T_G (3 x N_G). Every pixel attends
  to the representative features, ``A = softmax(F R_G / sqrt(C))``, and takes ``Y_G = A T_G^T``. The paper
  does not give these blocks' kernel size; on a 1x1 map a 3x3 kernel only uses its centre, so 1x1 convs are
  used (as in georgewux/RCTNet; ThanosM97 uses 3x3, which adds 1.2M parameters that see only zero padding).
* **Local RCT** (Sec. 3.3, Fig. 3): from the 32x32 fused feature, two conv-bn-swish-conv blocks (3x3) give
  N_L = 16 representative features and colours *per mesh vertex*. A uniform 31x31 mesh is laid over the
  image (32x32 vertices). Each pixel of a cell attends to the 4 * N_L representatives of the cell's four
  corner vertices (their sets concatenated, as the paper describes: no bilinear weights) and takes the
  attention-weighted transformed colours. The image features are reflect-padded to a multiple of 31 so
  that cells are equal, and the result is cropped back.
* **Output** (Sec. 3.4): ``Y = alpha * Y_G + beta * Y_L`` with learnable non-negative alpha, beta (ReLU of a
  parameter initialised to 0.5).

Loss (Sec. 3.5): L1 + 0.04 * sum of L1 distances of VGG16 features at layers 2, 4 and 6 (relu1_2, relu2_2,
relu3_2): ``lumicap.vgg`` preset ``"rctnet"``.

Batch statistics: the coarsest-level nodes see one value per channel and sample; with a batch of one, batch
norm has no statistics to compute (PyTorch refuses; in the limit the output would be all zeros), so those
layers then normalise with their running statistics (``SingleSampleSafeBatchNorm2d``). The paper trains
with batches of 8, where nothing changes.

Parameters of this configuration: 2,900,634 (no count is published; computed from the configuration above).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from lumicap.models.common import crop_to
from lumicap.models.registry import Recipe, Stage, register_model


class SingleSampleSafeBatchNorm2d(nn.BatchNorm2d):
    """``BatchNorm2d`` that uses its running statistics when a training batch holds a single value per
    channel (batch 1 on a 1x1 map), where batch statistics are undefined."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.numel() // x.shape[1] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


class ConvBNSwish(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2),
            SingleSampleSafeBatchNorm2d(out_channels),
            nn.SiLU(),
        )


def conv_bn_swish_conv(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(
        ConvBNSwish(in_channels, in_channels, kernel_size),
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
    )


class Encoder(nn.Module):
    """Six conv-bn-swish blocks; returns the last four outputs (finest first)."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128, 256, 1024)) -> None:
        super().__init__()
        strided = []
        in_channels = 3
        for width in widths[:-1]:
            strided.append(ConvBNSwish(in_channels, width, 3, stride=2))
            in_channels = width
        self.strided = nn.ModuleList(strided)
        self.top = ConvBNSwish(in_channels, widths[-1], 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for block in self.strided:
            x = block(x)
            outputs.append(x)
        outputs.append(F.adaptive_avg_pool2d(self.top(x), 1))
        return outputs[-4:]


class WeightedSum(nn.Module):
    """EfficientDet's fast normalised fusion of same-shaped inputs."""

    def __init__(self, n_inputs: int, eps: float = 1e-4) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.ones(n_inputs))
        self.eps = eps

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        w = F.relu(self.weights)
        w = w / (w.sum() + self.eps)
        return sum(wi * x for wi, x in zip(w, inputs))


class FeatureFusion(nn.Module):
    """BiFPN over four levels (32x32, 16x16, 8x8, 1x1 for a 256x256 encoder input); returns the fused levels,
    finest first."""

    def __init__(self, in_widths: tuple[int, int, int, int] = (64, 128, 256, 1024), width: int = 128) -> None:
        super().__init__()
        kernels = (3, 3, 3, 1)  # 1x1 at the coarsest level
        self.inputs = nn.ModuleList(ConvBNSwish(c, width, k) for c, k in zip(in_widths, kernels))
        # top-down intermediate nodes at levels 2 and 1 (16x16, 8x8 for a 256 input)
        self.top_down = nn.ModuleList(ConvBNSwish(width, width, 3) for _ in range(2))
        self.top_down_sum = nn.ModuleList(WeightedSum(2) for _ in range(2))
        # output nodes at every level
        self.outputs = nn.ModuleList(ConvBNSwish(width, width, k) for k in kernels)
        self.output_sum = nn.ModuleList(WeightedSum(n) for n in (2, 3, 3, 2))

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        p = [node(f) for node, f in zip(self.inputs, features)]

        def up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
            return F.interpolate(x, size=like.shape[-2:], mode="nearest")

        td2 = self.top_down[1](self.top_down_sum[1](p[2], up(p[3], p[2])))
        td1 = self.top_down[0](self.top_down_sum[0](p[1], up(td2, p[1])))
        out0 = self.outputs[0](self.output_sum[0](p[0], up(td1, p[0])))
        out1 = self.outputs[1](self.output_sum[1](p[1], td1, F.max_pool2d(out0, 2)))
        out2 = self.outputs[2](self.output_sum[2](p[2], td2, F.max_pool2d(out1, 2)))
        out3 = self.outputs[3](self.output_sum[3](p[3], F.adaptive_avg_pool2d(out2, 1)))
        return [out0, out1, out2, out3]


def representative_color_transform(
    features: torch.Tensor, representatives: torch.Tensor, colors: torch.Tensor
) -> torch.Tensor:
    """``softmax(F R / sqrt(C)) T^T``: features (..., P, C), representatives (..., C, N), colors (..., 3, N)
    -> (..., P, 3). Each of P pixels takes the attention-weighted transformed colours of N representatives."""
    attention = torch.softmax(features @ representatives / math.sqrt(features.shape[-1]), dim=-1)
    return attention @ colors.transpose(-1, -2)


class GlobalRCT(nn.Module):
    def __init__(self, width: int = 128, feature_dim: int = 16, n_colors: int = 64) -> None:
        super().__init__()
        self.feature_dim, self.n_colors = feature_dim, n_colors
        self.to_representatives = conv_bn_swish_conv(width, feature_dim * n_colors, 1)
        self.to_colors = conv_bn_swish_conv(width, 3 * n_colors, 1)

    def forward(self, image_features: torch.Tensor, coarsest: torch.Tensor) -> torch.Tensor:
        b, c, h, w = image_features.shape
        representatives = self.to_representatives(coarsest).view(b, self.feature_dim, self.n_colors)
        colors = self.to_colors(coarsest).view(b, 3, self.n_colors)
        pixels = image_features.flatten(2).transpose(1, 2)  # (B, HW, C)
        return representative_color_transform(pixels, representatives, colors).transpose(1, 2).reshape(b, 3, h, w)


class LocalRCT(nn.Module):
    """Representative colours per mesh vertex; each cell's pixels attend to its four corners' sets."""

    def __init__(self, width: int = 128, feature_dim: int = 16, n_colors: int = 16) -> None:
        super().__init__()
        self.feature_dim, self.n_colors = feature_dim, n_colors
        self.to_representatives = conv_bn_swish_conv(width, feature_dim * n_colors, 3)
        self.to_colors = conv_bn_swish_conv(width, 3 * n_colors, 3)

    @staticmethod
    def _corner_sets(per_vertex: torch.Tensor) -> torch.Tensor:
        """(B, D, N, V, V) vertex sets -> (B, V-1, V-1, D, 4N): each cell's four corner sets, concatenated."""
        corners = [per_vertex[..., di : di + per_vertex.shape[-2] - 1, dj : dj + per_vertex.shape[-1] - 1]
                   for di in (0, 1) for dj in (0, 1)]
        return torch.cat(corners, dim=2).permute(0, 3, 4, 1, 2)

    def forward(self, image_features: torch.Tensor, finest: torch.Tensor) -> torch.Tensor:
        b, c = image_features.shape[:2]
        vertices_h, vertices_w = finest.shape[-2:]
        cells_h, cells_w = vertices_h - 1, vertices_w - 1
        representatives = self.to_representatives(finest).view(b, c, self.n_colors, vertices_h, vertices_w)
        colors = self.to_colors(finest).view(b, 3, self.n_colors, vertices_h, vertices_w)

        size = (image_features.shape[-2], image_features.shape[-1])
        pad_h, pad_w = (-size[0]) % cells_h, (-size[1]) % cells_w
        padded = image_features
        if pad_h or pad_w:  # equal cells: pad bottom/right (reflect, as pad_to_multiple; replicate if too small)
            mode = "reflect" if pad_h < size[0] and pad_w < size[1] else "replicate"
            padded = F.pad(image_features, (0, pad_w, 0, pad_h), mode=mode)
        cell_h, cell_w = padded.shape[-2] // cells_h, padded.shape[-1] // cells_w
        # (B, C, cells_h, cell_h, cells_w, cell_w) -> (B, cells_h, cells_w, pixels per cell, C)
        pixels = padded.view(b, c, cells_h, cell_h, cells_w, cell_w).permute(0, 2, 4, 3, 5, 1)
        pixels = pixels.reshape(b, cells_h, cells_w, cell_h * cell_w, c)
        out = representative_color_transform(pixels, self._corner_sets(representatives), self._corner_sets(colors))
        out = out.view(b, cells_h, cells_w, cell_h, cell_w, 3).permute(0, 5, 1, 3, 2, 4)
        return crop_to(out.reshape(b, 3, cells_h * cell_h, cells_w * cell_w), size)


class RCTNet(nn.Module):
    """RCTNet. ``forward(x)`` returns ``alpha * Y_G + beta * Y_L``; ``training_outputs(x)`` also returns the
    global and local results (``"global_output"``, ``"local_output"``), all of the input's size.

    Args:
        encoder_size: side of the square the encoder sees (256); the local mesh has ``encoder_size/8 - 1`` cells
            per side (31).
        fusion_width: filters of every feature-fusion node (128).
        feature_dim: C, the dimension of image and representative features (16).
        global_colors / local_colors: N_G (64) and N_L (16).
    """

    def __init__(
        self,
        encoder_size: int = 256,
        encoder_widths: tuple[int, ...] = (16, 32, 64, 128, 256, 1024),
        fusion_width: int = 128,
        feature_dim: int = 16,
        global_colors: int = 64,
        local_colors: int = 16,
    ) -> None:
        super().__init__()
        if encoder_size % 32 != 0:
            raise ValueError(f"encoder_size must be a multiple of 32, got {encoder_size}")
        if len(encoder_widths) < 4:  # the feature fusion joins the encoder's last four levels
            raise ValueError(f"encoder_widths needs at least 4 widths (the fused levels), got {len(encoder_widths)}")
        self.encoder_size = encoder_size
        self.encoder = Encoder(tuple(encoder_widths))
        self.fusion = FeatureFusion(tuple(encoder_widths[-4:]), fusion_width)
        self.image_features = conv_bn_swish_conv(3, feature_dim, 3)
        self.global_rct = GlobalRCT(fusion_width, feature_dim, global_colors)
        self.local_rct = LocalRCT(fusion_width, feature_dim, local_colors)
        self.global_weight = nn.Parameter(torch.tensor(0.5))  # alpha
        self.local_weight = nn.Parameter(torch.tensor(0.5))  # beta

    def training_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        small = F.interpolate(x, size=(self.encoder_size,) * 2, mode="bilinear", align_corners=False, antialias=True)
        fused = self.fusion(self.encoder(small))
        features = self.image_features(x)
        y_global = self.global_rct(features, fused[-1])
        y_local = self.local_rct(features, fused[0])
        output = F.relu(self.global_weight) * y_global + F.relu(self.local_weight) * y_local
        return {"output": output, "global_output": y_global, "local_output": y_local}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.training_outputs(x)["output"]


RCTNET_RECIPE = Recipe(
    stages=(
        Stage(
            name="train",
            # 500 epochs over LOL's 485 pairs at batch 8 (61 batches per epoch)
            iterations=30_500,
            batch_size=8,
            patch_size=256,
            losses={"l1": 1.0, "vgg16": 0.04},
            optimizer={"name": "adam", "lr": 5e-4, "betas": (0.9, 0.999), "weight_decay": 1e-5},
            scheduler={"name": "constant"},
        ),
    ),
    source="Kim et al., ICCV 2021, Sec. 3.5 (loss, lambda=0.04) and Sec. 4.1 (Adam 5e-4, weight decay 1e-5, "
    "random crops and 90-degree rotations), as restated by both unofficial re-implementations",
    notes=(
        "No official code. vgg16 term: sum of L1 distances of VGG16 relu1_2, relu2_2, relu3_2 features with ImageNet "
        "normalisation (lumicap.vgg preset 'rctnet'). Batch size 8, 256x256 crops and 500 epochs follow "
        "georgewux/RCTNet's options and ThanosM97's reported 500-epoch run; both re-implementations add "
        "CosineAnnealingLR(T_max=10), which we could not trace to the paper, so the rate is kept constant. "
        "Augmentation: random crop and rotation by k*90 degrees."
    ),
)


@register_model(
    paper="Kim, Choi, Kim, Koh, Representative Color Transform for Image Enhancement, ICCV 2021",
    official_params=2_900_634,
    params_source=(
        "no official code or published count: computed from the paper's configuration (encoder 16-32-64-128-256-1024, "
        "fusion width 128, C=16, N_G=64, N_L=16, 31x31 mesh; 1x1 global blocks, 3x3 local blocks)"
    ),
    recipe=RCTNET_RECIPE,
    constructor=RCTNet,
    allowed={"encoder_size": Field(ge=32, multiple_of=32)},
)
def rctnet(**overrides) -> nn.Module:
    return RCTNet(**overrides)
