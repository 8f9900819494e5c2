"""Chroma gain: the network's colours pushed away from grey by a factor chosen on validation photos.

Low-light networks trained with L1 come out pale: where a dark, noisy pixel's hue is uncertain, the loss is
lowest for the average of the candidate colours, and an average of colour vectors pointing different ways
is shorter (less saturated). PSNR barely cares along that direction: on LOL's validation carve, scaling the
2026-11 default's chroma by 1.0 to 1.4 moved PSNR by under 0.06 dB while the Hasler-Suesstrunk
colourfulness went from 19 to 26 (references: 35). So the shipped model's sidecar may carry a gain,

    Y   = 0.299 R + 0.587 G + 0.114 B          (BT.601 luma of the network's result y)
    out = clamp(Y + gain * (y - Y), 0, 1)

chosen by ``scripts/make_default_model.py`` on the training data's validation carve (never the test set):
the largest gain whose validation PSNR is within a small tolerance of the best gain's. The luma is kept,
so brightness does not move; per pixel, so tiles and whole photos agree. It runs on the network's result
before highlight protection (``lumicap.inference.highlights``), so what that step gives back from the input
is not re-saturated.
"""

from __future__ import annotations

import torch
from torch import nn

from lumicap.inference.highlights import StepAfterNetwork
from lumicap.limits import CHROMA_GAIN_RANGE, check_finite
from lumicap.names import BT601_LUMA_WEIGHTS as LUMA_WEIGHTS


class ChromaGain(StepAfterNetwork):
    """``module`` followed by the chroma scaling of the module docstring; call it like the network."""

    def __init__(self, module: nn.Module, gain: float):
        super().__init__(module)
        self.gain = check_finite(gain, *CHROMA_GAIN_RANGE, what="chroma gain")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return scale_chroma(self.module(x), self.gain)


def scale_chroma(y: torch.Tensor, gain: float) -> torch.Tensor:
    """(B, 3, H, W) images in [0, 1] with their chroma (distance from their own BT.601 luma) times ``gain``."""
    weights = y.new_tensor(LUMA_WEIGHTS).view(1, 3, 1, 1)
    luma = (y * weights).sum(dim=1, keepdim=True)
    if torch.is_grad_enabled():
        return (luma + gain * (y - luma)).clamp(0.0, 1.0)
    return y.sub_(luma).mul_(gain).add_(luma).clamp_(0.0, 1.0)  # in place: no extra full-size planes


def parse_gain(value, source: str) -> float | None:
    """A sidecar's ``inference.chroma_gain``: absent/``null``/1 -> None (no step), a number in range -> it.
    Anything else is a ``ValueError`` naming ``source``."""
    if value is None:
        return None
    try:
        gain = check_finite(value, *CHROMA_GAIN_RANGE, what="'inference.chroma_gain'")
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None
    return None if gain == 1 else gain


def choose_gain(psnr_by_gain: dict[float, float], tolerance_db: float = 0.05) -> float:
    """The largest gain whose mean validation PSNR is within ``tolerance_db`` of the best gain's: as colourful as
    the references allow without giving up fidelity (``scripts/make_default_model.py`` measures the table)."""
    if not psnr_by_gain:
        raise ValueError("choose_gain: no gains measured")
    best = max(psnr_by_gain.values())
    return max(gain for gain, value in psnr_by_gain.items() if value >= best - tolerance_db)
