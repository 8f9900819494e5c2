"""Large photos through a transform predicted at low resolution and applied at full resolution.

IAT (``lumicap.models.iat``) does not paint pixels: it predicts a per-pixel gain ``M`` and offset ``A`` (local
branch) and one gamma and 3x3 colour matrix per image (global branch), and the output is
``(C @ (x * M + A)) ** gamma``. ``M`` and ``A`` vary slowly across a photo (illumination, not texture), so
for a photo larger than ``network_megapixels`` the network runs on an area-downscaled copy, ``M`` and ``A``
are upsampled bilinearly to the photo's size, and the transform is applied to the full-resolution pixels.
The network's cost is then bounded (about 1 MP of work for any photo) and the photo's own detail is kept;
no tiles, so no seams and no per-tile colour matrices. Photos at or below the limit run whole (the same numbers
as the network's own forward). The two steps are separate methods, ``predict`` (the network: maps, gamma,
colour matrix) and ``apply`` (the transform on the full-resolution pixels), so that video can smooth the
prediction over time between them (``lumicap.inference.video``) and still apply it as photos do.
What it costs in quality: on LOL-v1 eval15, running the network at half size this way changes the metrics by
the amounts in the README's model card (measured, not assumed).

Memory: a handful of full-size float planes (about 60 bytes per pixel at the peak); 12 MP: about 0.7 GB.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable

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

    def __init__(self, module: nn.Module, network_megapixels: float = 1.0,
                 adjust: Callable[[torch.Tensor, PredictedTransform], PredictedTransform] | None = None):
        super().__init__()
        if not supports_full_resolution_transform(module):
            raise ValueError(f"{type(module).__name__} has no local/global transform branches (IAT has)")
        # 'not x > 0' refuses NaN too; infinity is allowed: never downscale (video's whole frames). The user's
        # --network-megapixels is checked finite before it gets here (lumicap.limits).
        if not network_megapixels > 0:
            raise ValueError(f"network_megapixels must be > 0, got {network_megapixels}")
        self.module = module
        self.network_megapixels = float(network_megapixels)
        # Between predict and apply: ``adjust(x, transform)`` -> the transform to apply (video smooths it over time).
        self.adjust = adjust

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        """The size the network sees: the photo's, or the largest with the same aspect within the limit."""
        limit = self.network_megapixels * 1e6
        if height * width <= limit:
            return height, width
        scale = math.sqrt(limit / (height * width))
        return max(1, int(height * scale)), max(1, int(width * scale))

    def predict(self, x: torch.Tensor) -> PredictedTransform:
        """Run the network (on the photo, or on its copy of at most ``network_megapixels``): its transform."""
        small_size = self.network_size(*x.shape[-2:])
        small = x if small_size == tuple(x.shape[-2:]) else F.interpolate(x, size=small_size, mode="area")
        # Both branches see a channels-last copy, as inside IAT's own forward (same kernels, same numbers).
        small = small.contiguous(memory_format=torch.channels_last)
        mul, add = self.module.local_net(small)
        # IAT's own global step (a coarser view of the frame where the model asks for one); older modules: the branch.
        gamma, color = (
            self.module.global_params(small) if hasattr(self.module, "global_params") else self.module.global_net(small)
        )
        return PredictedTransform(mul=mul, add=add, gamma=gamma, color=color)

    def apply(self, x: torch.Tensor, transform: PredictedTransform) -> torch.Tensor:
        """``(C @ (x * M + A)) ** gamma`` on the full-resolution ``x``, the maps upsampled to its size."""
        height, width = x.shape[-2:]
        mul = transform.mul
        # Upsampled, the gain map is a fresh full-size plane: multiply into it (one plane less at the peak).
        out = mul * x if tuple(mul.shape[-2:]) == (height, width) else _resized(mul, height, width).mul_(x)
        out.add_(_resized(transform.add, height, width))
        out = torch.einsum("bchw,bdc->bdhw", out, transform.color)
        return out.clamp_(1e-8, 1.0).pow_(transform.gamma[:, :, None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        transform = self.predict(x)
        if self.adjust is not None:
            transform = self.adjust(x, transform)
        return self.apply(x, transform)


def with_transform_step(
    chain: nn.Module,
    network_megapixels: float,
    adjust: Callable[[torch.Tensor, PredictedTransform], PredictedTransform] | None = None,
) -> nn.Module | None:
    """``chain`` (an inference module: wrappers with a ``.module`` inside one another, such as highlight
    protection, around a ``FullResolutionTransform`` or a bare IAT) with its transform step rebuilt: the network
    on at most ``network_megapixels``, ``adjust`` between predict and apply. The wrappers around it are kept
    (shallow copies sharing their parameters; ``chain`` itself is not changed), so the result computes what
    ``chain`` computes for a photo, with the new step inside. None when no network in it predicts a transform.
    """
    if isinstance(chain, FullResolutionTransform):
        return FullResolutionTransform(chain.module, network_megapixels, adjust)
    if supports_full_resolution_transform(chain):
        return FullResolutionTransform(chain, network_megapixels, adjust)
    inner = getattr(chain, "module", None)
    if not isinstance(inner, nn.Module):
        return None
    rebuilt = with_transform_step(inner, network_megapixels, adjust)
    if rebuilt is None:
        return None
    wrapper = copy.copy(chain)
    wrapper._modules = dict(chain._modules)  # its own child table: setting .module must not touch ``chain``
    wrapper.module = rebuilt
    return wrapper


@dataclass
class PredictedTransform:
    """What IAT predicts for a batch: gain ``mul`` and offset ``add`` maps (B, 3, h, w) at the network's
    size, a gamma (B, 1) and a colour matrix (B, 3, 3). Video smooths these over time between
    ``FullResolutionTransform.predict`` and ``apply`` (``lumicap.inference.temporal``)."""

    mul: torch.Tensor
    add: torch.Tensor
    gamma: torch.Tensor
    color: torch.Tensor


def _resized(plane: torch.Tensor, height: int, width: int) -> torch.Tensor:
    if tuple(plane.shape[-2:]) == (height, width):
        return plane
    return F.interpolate(plane, size=(height, width), mode="bilinear", align_corners=False)
