"""CLIP's modified ResNet image tower (RN50x4 is the one ClipCap's transformer model was trained on).

Differences from a torchvision ResNet, as described in the CLIP paper (Radford et al. 2021, §2.4) and
laid out in OpenAI's checkpoints (parameter names here equal the ``visual.*`` keys minus ``visual.``):

- a stem of three 3x3 convolutions (the first with stride 2; widths width/2, width/2, width) each
  followed by BatchNorm + ReLU, then a 2x2 average pool instead of a max pool;
- anti-aliased downsampling: bottleneck convolutions all have stride 1, and a block that downsamples
  average-pools after its 3x3 convolution; its shortcut average-pools before a 1x1 convolution
  (``downsample.0`` conv, ``downsample.1`` BatchNorm);
- the global average pool is replaced by one multi-head attention step (``attnpool``) whose query is
  the mean of the final feature map, with learned positional embeddings for the mean token and every
  spatial position, and whose output projection ``c_proj`` gives the embedding.

RN50x4: width 80, blocks (4, 6, 10, 6), 288 px input, 40 heads, 640-d output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.avgpool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.downsample = None
        if stride > 1 or in_channels != planes * self.expansion:
            # Keys "downsample.0"/"downsample.1" as in the checkpoints; the pool has no parameters.
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, planes * self.expansion, 1, bias=False),
                nn.BatchNorm2d(planes * self.expansion),
            )
            self.shortcut_pool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(self.avgpool(out)))
        identity = x if self.downsample is None else self.downsample(self.shortcut_pool(x))
        return F.relu(out + identity)


class AttentionPool2d(nn.Module):
    """One attention step whose only query is the mean token; returns that token's output."""

    def __init__(self, grid: int, dim: int, num_heads: int, output_dim: int):
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.randn(grid * grid + 1, dim) / dim**0.5)
        self.k_proj = nn.Linear(dim, dim)
        self.q_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.c_proj = nn.Linear(dim, output_dim)
        self.num_heads = num_heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, dim = x.shape[:2]
        tokens = x.flatten(2).transpose(1, 2)  # (B, HW, C)
        tokens = torch.cat([tokens.mean(dim=1, keepdim=True), tokens], dim=1)
        if tokens.shape[1] != self.positional_embedding.shape[0]:
            raise ValueError(
                f"attention pool expects a {self.positional_embedding.shape[0] - 1}-position feature map, "
                f"got {tokens.shape[1] - 1} (wrong input resolution for this CLIP ResNet)"
            )
        tokens = tokens + self.positional_embedding.to(tokens.dtype)
        head_dim = dim // self.num_heads

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, t.shape[1], self.num_heads, head_dim).transpose(1, 2)

        # Only the mean token's output is used, so only its query is computed.
        query = heads(self.q_proj(tokens[:, :1]))
        attended = F.scaled_dot_product_attention(query, heads(self.k_proj(tokens)), heads(self.v_proj(tokens)))
        return self.c_proj(attended.transpose(1, 2).reshape(batch, dim))


class ModifiedResNet(nn.Module):
    def __init__(self, layers: tuple[int, int, int, int], output_dim: int, heads: int, image_size: int, width: int):
        super().__init__()
        self.image_size = image_size
        self.output_dim = output_dim
        self.conv1 = nn.Conv2d(3, width // 2, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width // 2)
        self.conv2 = nn.Conv2d(width // 2, width // 2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width // 2)
        self.conv3 = nn.Conv2d(width // 2, width, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.avgpool = nn.AvgPool2d(2)
        channels = width
        stages = []
        for index, blocks in enumerate(layers):
            planes = width * 2**index
            stage = [Bottleneck(channels, planes, stride=1 if index == 0 else 2)]
            channels = planes * Bottleneck.expansion
            stage += [Bottleneck(channels, planes) for _ in range(1, blocks)]
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.attnpool = AttentionPool2d(image_size // 32, width * 32, heads, output_dim)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(pixels)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = self.avgpool(F.relu(self.bn3(self.conv3(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.attnpool(x)


def resnet_config_from_state_dict(state: dict[str, torch.Tensor]) -> dict:
    """Architecture of a CLIP ResNet from its (``visual.``-stripped) weights, as OpenAI's loader infers it."""
    layers = tuple(len({k.split(".")[1] for k in state if k.startswith(f"layer{i}.")}) for i in range(1, 5))
    width = state["layer1.0.conv1.weight"].shape[0]
    positions = state["attnpool.positional_embedding"].shape[0]
    grid = round((positions - 1) ** 0.5)
    return {
        "layers": layers,
        "width": width,
        "heads": width * 32 // 64,
        "output_dim": state["attnpool.c_proj.weight"].shape[0],
        "image_size": grid * 32,
    }


def build_resnet(config: dict) -> ModifiedResNet:
    return ModifiedResNet(
        layers=tuple(config["layers"]),
        output_dim=config["output_dim"],
        heads=config["heads"],
        image_size=config["image_size"],
        width=config["width"],
    )


# RN50x4 as published by OpenAI (used by ClipCap's transformer-mapper COCO model).
RN50X4_CONFIG = {"layers": (4, 6, 10, 6), "width": 80, "heads": 40, "output_dim": 640, "image_size": 288}
