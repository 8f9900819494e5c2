"""Large photos through a transform predicted at low resolution and applied at full resolution.

IAT (``lumicap.models.iat``) does not paint pixels: it predicts a per-pixel gain ``M`` and offset ``A`` (local
branch) and one gamma and 3x3 colour matrix per image (global branch), and the output is
``(C @ (x * M + A)) ** gamma``. ``M`` and ``A`` vary slowly across a photo (illumination, not texture), so
for a photo larger than ``network_megapixels`` the network runs on an area-downscaled copy, ``M`` and ``A``
are upsampled bilinearly to the photo's size, and the transform is applied to the full-resolution pixels.
The network's cost is then bounded (about 1 MP of work for any photo) and the photo's own detail is kept;
no tiles, so no seams and no per-tile colour matrices. Photos at or below the limit run whole, unchanged.
What it costs in quality: on LOL-v1 eval15, running the network at half size this way changes the metrics by
the amounts in the README's model card (measured, not assumed).

Memory: a handful of full-size float planes (about 60 bytes per pixel at the peak); 12 MP: about 0.7 GB.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def supports_full_resolution_transform(module: nn.Module) -> bool:
    """Whether ``module`` splits into a local (M, A) and a global (gamma, colour) branch as IAT does."""
    return hasattr(module, "local_net") and hasattr(module, "global_net") and getattr(module, "with_global", False)


class FullResolutionTransform(nn.Module):
    """``module`` on photos up to ``network_megapixels``; above, its transform predicted on a smaller copy.

    Call it like the network: (B, 3, H, W) in [0, 1] -> (B, 3, H, W). ``handles_large_images`` tells
    ``lumicap enhance`` not to tile (the work is already bounded).
    """

    handles_large_images = True

    def __init__(self, module: nn.Module, network_megapixels: float = 1.0):
        super().__init__()
        if not supports_full_resolution_transform(module):
            raise ValueError(f"{type(module).__name__} has no local/global transform branches (IAT has)")
        if not network_megapixels > 0:
            raise ValueError(f"network_megapixels must be > 0, got {network_megapixels}")
        self.module = module
        self.network_megapixels = float(network_megapixels)

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        """The size the network sees: the photo's, or the largest with the same aspect within the limit."""
        limit = self.network_megapixels * 1e6
        if height * width <= limit:
            return height, width
        scale = math.sqrt(limit / (height * width))
        return max(1, int(height * scale)), max(1, int(width * scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        small_size = self.network_size(height, width)
        if small_size == (height, width):
            return self.module(x)
        small = F.interpolate(x, size=small_size, mode="area")
        mul, add = self.module.local_net(small)
        gamma, color = (
            self.module.global_params(small) if hasattr(self.module, "global_params") else self.module.global_net(small)
        )
        out = F.interpolate(mul, size=(height, width), mode="bilinear", align_corners=False)
        out.mul_(x)
        del mul
        out.add_(F.interpolate(add, size=(height, width), mode="bilinear", align_corners=False))
        out = torch.einsum("bchw,bdc->bdhw", out, color)
        return out.clamp_(1e-8, 1.0).pow_(gamma[:, :, None, None])
