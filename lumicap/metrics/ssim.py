"""Structural similarity (Wang et al. 2004) with the 11x11 Gaussian window (sigma 1.5).

``ssim_matlab`` is the number the low-light papers report: both images rounded to 8-bit levels,
dynamic range 255, K1 = 0.01, K2 = 0.03, population (not sample) variances, each RGB channel
separately over the *valid* region (no padding: the map is 10 pixels smaller than the image in each
dimension), then the mean over pixels and channels. It equals scikit-image's
``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255,
channel_axis=-1)`` on uint8 images (float64 here; tests check 1e-6 on LOL). Library defaults (a 7x7
box window, sample covariance) differ in the 2nd-4th decimal, which is why the convention is pinned.

``ssim`` is the same formula on unrounded float32 inputs with a chosen ``data_range``, differentiable,
for use in losses.
"""

from __future__ import annotations

import torch

from lumicap.metrics._checks import as_batch
from lumicap.names import SSIM_SIGMA as WINDOW_SIGMA
from lumicap.names import SSIM_WINDOW as WINDOW_SIZE
K1, K2 = 0.01, 0.03


def gaussian_window(
    size: int = WINDOW_SIZE, sigma: float = WINDOW_SIGMA, dtype=torch.float64, device=None
) -> torch.Tensor:
    """Normalised 1-D Gaussian taps (the 2-D window is its outer product)."""
    coords = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2.0
    taps = torch.exp(-(coords**2) / (2.0 * sigma**2))
    return (taps / taps.sum()).to(dtype)


def _filter_valid(x: torch.Tensor, taps: list[float]) -> torch.Tensor:
    """Separable Gaussian filtering of each channel of (B, C, H, W), valid region only.

    Written as in-place weighted sums of shifted views rather than a convolution: float64 convolution
    has no fast CPU kernel, and this is also quicker than grouped conv2d for float32.
    """
    size = len(taps)
    height, width = x.shape[-2:]
    rows = x[..., : height - size + 1, :] * taps[0]
    for k in range(1, size):
        rows.add_(x[..., k : k + height - size + 1, :], alpha=taps[k])
    out = rows[..., : width - size + 1] * taps[0]
    for k in range(1, size):
        out.add_(rows[..., k : k + width - size + 1], alpha=taps[k])
    return out


def _ssim_per_channel(x: torch.Tensor, y: torch.Tensor, data_range: float) -> torch.Tensor:
    """Mean SSIM over the valid region, per image and channel: (B, C)."""
    if min(x.shape[-2:]) < WINDOW_SIZE:
        raise ValueError(f"ssim: images must be at least {WINDOW_SIZE}x{WINDOW_SIZE}, got {tuple(x.shape[-2:])}")
    taps = gaussian_window().tolist()
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    # One filtering pass for the five local moments.
    moments = _filter_valid(torch.cat([x, y, x * x, y * y, x * y], dim=1), taps)
    mu_x, mu_y, xx, yy, xy = moments.chunk(5, dim=1)
    var_x = xx - mu_x * mu_x
    var_y = yy - mu_y * mu_y
    cov_xy = xy - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)
    denominator = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return (numerator / denominator).mean(dim=(-2, -1))


def ssim_matlab(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Paper-convention SSIM per image, (B,) float64, for inputs in [0, 1] of shape (B, 3, H, W) or (3, H, W)."""
    pred, gt = as_batch(pred, gt, "ssim_matlab")
    x = torch.round(pred.detach().to(torch.float64).clamp(0.0, 1.0) * 255.0)
    y = torch.round(gt.detach().to(torch.float64).clamp(0.0, 1.0) * 255.0)
    return _ssim_per_channel(x, y, data_range=255.0).mean(dim=1)


def ssim(pred: torch.Tensor, gt: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Differentiable SSIM per image, (B,), same window and constants, no rounding or clamping."""
    pred, gt = as_batch(pred, gt, "ssim")
    return _ssim_per_channel(pred, gt, data_range=data_range).mean(dim=1)
