"""Input validation shared by the metrics: errors show what was received."""

from __future__ import annotations

import torch


def as_batch(pred: torch.Tensor, gt: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Accept (3, H, W) or (B, 3, H, W) pairs of equal shape; return them as (B, 3, H, W)."""
    if not isinstance(pred, torch.Tensor) or not isinstance(gt, torch.Tensor):
        raise TypeError(f"{name}: expected tensors, got {type(pred).__name__} and {type(gt).__name__}")
    if pred.shape != gt.shape:
        raise ValueError(f"{name}: pred {tuple(pred.shape)} and gt {tuple(gt.shape)} differ in shape")
    if pred.dim() == 3:
        pred, gt = pred.unsqueeze(0), gt.unsqueeze(0)
    if pred.dim() != 4:
        raise ValueError(f"{name}: expected (3, H, W) or (B, 3, H, W), got {tuple(pred.shape)}")
    return pred, gt
