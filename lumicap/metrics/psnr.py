"""Peak signal-to-noise ratio, in the two conventions the low-light papers use.

``convention="float"`` (Retinexformer / BasicSR test scripts): both images clamped to [0, 1], MSE over
all RGB samples in floating point, ``PSNR = 10 log10(1 / MSE)``.
``convention="uint8"`` (scripts that measure saved PNGs): both images rounded to 8-bit levels first,
``PSNR = 10 log10(255^2 / MSE)``.
Identical images give ``inf``. Computed in float64 so that the value does not depend on the device.
"""

from __future__ import annotations

import torch

from lumicap.metrics._checks import as_batch
from lumicap.names import PSNR_CONVENTIONS, PsnrConvention


def psnr(pred: torch.Tensor, gt: torch.Tensor, convention: PsnrConvention = "float") -> torch.Tensor:
    """PSNR in dB per image: (B,) float64 for inputs (B, 3, H, W) (or (1,) for (3, H, W)) in [0, 1]."""
    if convention not in PSNR_CONVENTIONS:
        raise ValueError(f"psnr: convention must be one of {PSNR_CONVENTIONS}, got '{convention}'")
    pred, gt = as_batch(pred, gt, "psnr")
    pred = pred.detach().to(torch.float64).clamp(0.0, 1.0)
    gt = gt.detach().to(torch.float64).clamp(0.0, 1.0)
    if convention == "uint8":
        pred, gt = torch.round(pred * 255.0), torch.round(gt * 255.0)
        peak = 255.0
    else:
        peak = 1.0
    mse = (pred - gt).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(peak**2 / mse)
