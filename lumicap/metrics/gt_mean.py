"""The "GT-mean" protocol: rescale the output's brightness to the reference's before measuring.

KinD, LLFlow and many later papers (Retinexformer's ``--GT_mean``) multiply the output by
``mean_gray(GT) / mean_gray(output)`` and clamp, so that the metric ignores a global exposure error.
The gray level is ITU-R BT.601 luma, ``0.299 R + 0.587 G + 0.114 B`` (OpenCV's ``COLOR_RGB2GRAY``, as in
LLFlow's measure.py), averaged over the image in floating point. Two details of the originals are not
reproduced: OpenCV rounds the uint8 gray image before averaging (on LOL eval15's dark inputs this moves
GT-mean PSNR by at most 0.012 dB per image, 0.0002 dB on the mean), and Retinexformer's script passes RGB
data to ``COLOR_BGR2GRAY`` (R and B weights swapped); pass ``weights=(0.114, 0.587, 0.299)`` for that.
"""

from __future__ import annotations

import torch

from lumicap.names import BT601_LUMA_WEIGHTS as GRAY_WEIGHTS_BT601


def mean_gray(image: torch.Tensor, weights: tuple[float, float, float] = GRAY_WEIGHTS_BT601) -> torch.Tensor:
    """Mean gray level per image: (B,) for (B, 3, H, W), or a 0-d tensor for (3, H, W)."""
    if image.dim() not in (3, 4) or image.shape[-3] != 3:
        raise ValueError(f"mean_gray: expected (3, H, W) or (B, 3, H, W), got {tuple(image.shape)}")
    w = torch.tensor(weights, dtype=image.dtype, device=image.device).view(3, 1, 1)
    return (image * w).sum(dim=-3).mean(dim=(-2, -1))


def gt_mean_scale(
    pred: torch.Tensor, gt: torch.Tensor, weights: tuple[float, float, float] = GRAY_WEIGHTS_BT601
) -> torch.Tensor:
    """``clamp(pred * mean_gray(gt) / mean_gray(pred), 0, 1)``, per image, same shape as ``pred``."""
    if pred.shape != gt.shape:
        raise ValueError(f"gt_mean_scale: pred {tuple(pred.shape)} and gt {tuple(gt.shape)} differ in shape")
    pred_mean = mean_gray(pred, weights)
    gt_mean = mean_gray(gt, weights)
    # An all-black output has no brightness to rescale; the guard keeps it black instead of NaN.
    scale = gt_mean / pred_mean.clamp_min(1e-8)
    scale = scale.view(*scale.shape, 1, 1, 1)
    return (pred * scale).clamp(0.0, 1.0)
