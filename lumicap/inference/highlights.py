"""Highlight protection: what was already bright in the photo stays as it was.

A network trained on LOL's very dark inputs learns large gains. On a photo that is dark only in parts (a
backlit street, a sunset, a lit tower at night) the same gains push the bright parts past white: skies clip
to flat white or take a colour cast when one channel saturates first, lamps bloom. The fix needs no
knowledge of the network: per pixel, blend the enhanced value back towards the input where the input is
already bright,

    w   = clamp((end - max_c(x)) / (end - start), 0, 1)     1 below ``start``, 0 from ``end`` up
    out = x + w * (y - x)

with ``max_c`` the largest of the three channels of the input pixel (a saturated blue sky is bright even if
its luminance is not). Dark pixels get the network's result unchanged, pixels the camera already exposed
near white keep their value, and the ramp between avoids a visible edge. It is per pixel, so it gives the
same result on tiles as on the whole photo, and it runs after the full-resolution transform
(``lumicap.inference.fullres``) at the photo's own resolution.

Measured on the previous default's outputs (DESIGN.md, 2026-12-07): with ``start=0.5, end=0.9`` the worst
growth of clipped pixels on the DICM/LIME photos fell from +32 points to +0.1 while LOL-v1 eval15 PSNR moved by
0.01 dB (LOL's dark inputs never reach the ramp). It does nothing for halos, haze, noise or pale colours.
"""

from __future__ import annotations

import torch
from torch import nn

DEFAULT_RAMP = (0.5, 0.9)


class StepAfterNetwork(nn.Module):
    """A per-pixel step run on a network's result (this module's protection, ``lumicap.inference.chroma``'s gain):
    holds the network (or the step before) as ``module`` and passes through the attributes the inference code
    reads (``handles_large_images``, ``network_megapixels``), so the steps stack in any order.
    """

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    @property
    def handles_large_images(self) -> bool:
        return bool(getattr(self.module, "handles_large_images", False))

    @property
    def network_megapixels(self) -> float | None:
        return getattr(self.module, "network_megapixels", None)


class HighlightProtection(StepAfterNetwork):
    """``module`` followed by the per-pixel blend of the module docstring; call it like the network.

    ``start``/``end``: the input brightness (max channel, in [0, 1]) where protection begins and where it is
    complete.
    """

    def __init__(self, module: nn.Module, start: float = DEFAULT_RAMP[0], end: float = DEFAULT_RAMP[1]):
        start, end = float(start), float(end)
        if not 0.0 <= start < end <= 1.0:
            raise ValueError(f"highlight protection needs 0 <= start < end <= 1, got start={start}, end={end}")
        super().__init__(module)
        self.start, self.end = start, end

    def weight(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W): 1 where the network's result is kept, 0 where the input is."""
        brightest = x.amax(dim=1, keepdim=True)
        return ((self.end - brightest) / (self.end - self.start)).clamp_(0.0, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.module(x)
        weight = self.weight(x)
        if torch.is_grad_enabled():
            return x + weight * (y - x)
        return y.sub_(x).mul_(weight).add_(x)  # in place: no extra full-size planes at inference


def parse_ramp(value, source: str) -> tuple[float, float] | None:
    """A sidecar's ``inference.highlight_protection``: ``false``/absent -> None, ``true`` -> the default ramp,
    ``[start, end]`` -> that ramp. Anything else is a ``ValueError`` naming ``source``."""
    if value is None or value is False:
        return None
    if value is True:
        return DEFAULT_RAMP
    ok = (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        and 0.0 <= value[0] < value[1] <= 1.0
    )
    if not ok:
        raise ValueError(
            f"{source}: 'inference.highlight_protection' must be true, false or [start, end] with "
            f"0 <= start < end <= 1, got {value!r}"
        )
    return float(value[0]), float(value[1])
