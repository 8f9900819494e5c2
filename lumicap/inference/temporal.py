"""Steady video: what a network predicts per frame, smoothed over time, reset at scene cuts.

Enhanced frame by frame, a video flickers: a network that adapts to each frame's content changes its answer
as sensor noise and moving content change the frame, and the eye sees every small change of global
brightness or colour. Two smoothers, one per kind of network, both exponential moving averages over the
frames' timestamps (so a 60 fps clip is smoothed over the same seconds as a 24 fps one):

- ``TransformSmoother`` for networks that predict a transform (IAT, ``lumicap.inference.fullres``): the
  global parameters (gamma, colour matrix) are averaged; the gain and offset maps keep their per-frame
  *shape* (they follow moving content, and averaging them would leave a trail) while their per-channel
  *level* (mean over the frame) is averaged, because that level is a global brightness too. The
  benchmark (``benchmarks/bench_video.py``) measures what each part contributes.
- ``OutputLevelSmoother`` for other networks: each enhanced frame's channel means are pulled to their
  moving average by a per-channel gain (no blending of frames, so no ghosts of moving objects).

``SceneCutDetector`` resets both at a cut (a new scene must get its own look at once, not fade into it
from the old one's), and at a sudden change of the light (a lamp switched on).
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
import torch.nn.functional as F

from lumicap.inference.fullres import PredictedTransform

DEFAULT_SMOOTH_SECONDS = 0.5
# Rec. 709 luma weights on (linear-ish) RGB: a measure of brightness, not a colour conversion.
LUMA_WEIGHTS = (0.2126, 0.7152, 0.0722)


def luminance(frames: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) RGB -> (..., H, W) luminance with the Rec. 709 weights."""
    weights = frames.new_tensor(LUMA_WEIGHTS).view(3, 1, 1)
    return (frames * weights).sum(dim=-3)


class SceneCutDetector:
    """Says whether a frame starts a new shot, from a 16x9 luminance thumbnail of it and of the frame before.

    A cut: the thumbnails, each divided by its own mean (so that a dark and a bright version of one scene
    look alike, and noise in a dark frame does not count for more), differ by more than ``threshold`` on
    average, or the mean brightness changes by more than a factor ``brightness_ratio`` from one frame to
    the next. Averaging over thumbnail cells makes sensor noise negligible; a slow pan moves content by a
    fraction of a cell per frame.
    """

    THUMBNAIL = (9, 16)

    def __init__(self, threshold: float = 0.25, brightness_ratio: float = 1.5):
        self.threshold = threshold
        self.brightness_ratio = brightness_ratio
        self._previous: torch.Tensor | None = None
        self._previous_mean = 0.0

    def reset(self) -> None:
        self._previous = None

    def __call__(self, frame: torch.Tensor) -> bool:
        """``frame``: (1, 3, H, W) in [0, 1]. True for the first frame and for every cut."""
        # Every step-th pixel (at least 8 per thumbnail cell along the short side) is plenty to average over,
        # and pooling a whole 1080p frame would cost more than the rest of the smoothing.
        step = max(1, min(frame.shape[-2:]) // (8 * self.THUMBNAIL[0]))
        thumb = luminance(F.adaptive_avg_pool2d(frame[..., ::step, ::step].float(), self.THUMBNAIL))[0]
        mean = float(thumb.mean()) + 1e-3  # pitch-black frames compare as equal, not as 0/0
        previous, previous_mean = self._previous, self._previous_mean
        self._previous, self._previous_mean = thumb, mean
        if previous is None:
            return True
        change = float((thumb / mean - previous / previous_mean).abs().mean())
        return change > self.threshold or max(mean / previous_mean, previous_mean / mean) > self.brightness_ratio


class _MovingAverage:
    """Exponential moving average of named tensors over time: weight ``1 - exp(-dt / seconds)`` for the newest."""

    def __init__(self, seconds: float):
        if not seconds > 0:
            raise ValueError(f"smoothing time must be > 0 seconds, got {seconds}")
        self.seconds = seconds
        self.state: dict[str, torch.Tensor] | None = None

    def update(self, values: dict[str, torch.Tensor], dt: float, restart: bool) -> dict[str, torch.Tensor]:
        if self.state is None or restart:
            self.state = {k: v.detach().clone() for k, v in values.items()}
        else:
            weight = 1.0 - math.exp(-max(dt, 0.0) / self.seconds)
            for key, value in values.items():
                self.state[key].lerp_(value, weight)
        return self.state


class TransformSmoother:
    """Smooths an IAT transform over time: gamma, colour matrix, and the levels of the gain/offset maps.

    ``smooth_map_levels=False`` leaves the maps as predicted (the benchmark compares both). Call it once
    per frame, in order: ``smoother(frame, transform, dt)`` -> the transform to apply to that frame.
    """

    def __init__(self, seconds: float = DEFAULT_SMOOTH_SECONDS, smooth_map_levels: bool = True,
                 cuts: SceneCutDetector | None = None):
        self.average = _MovingAverage(seconds)
        self.smooth_map_levels = smooth_map_levels
        self.cuts = cuts or SceneCutDetector()
        self.cut_frames: list[int] = []  # frame numbers where it restarted (0 is the first frame)
        self._frame = 0

    def __call__(self, frame: torch.Tensor, transform: PredictedTransform, dt: float) -> PredictedTransform:
        cut = self.cuts(frame)
        if cut:
            self.cut_frames.append(self._frame)
        self._frame += 1
        values = {"gamma": transform.gamma, "color": transform.color}
        if self.smooth_map_levels:
            values["mul_level"] = transform.mul.mean(dim=(-2, -1), keepdim=True)
            values["add_level"] = transform.add.mean(dim=(-2, -1), keepdim=True)
        smoothed = self.average.update(values, dt, restart=cut)
        result = replace(transform, gamma=smoothed["gamma"].clone(), color=smoothed["color"].clone())
        if self.smooth_map_levels:
            # Gain: rescale the map to the averaged level (ratio, so the map's shape is kept and stays >= 0);
            # offset: shift it to the averaged level.
            result.mul = transform.mul * (smoothed["mul_level"] / values["mul_level"].clamp_min(1e-6))
            result.add = transform.add + (smoothed["add_level"] - values["add_level"])
        return result


class OutputLevelSmoother:
    """For networks that paint pixels: each enhanced frame's per-channel mean is pulled to its moving average
    (a per-channel gain, so the frame itself is never mixed with other frames)."""

    def __init__(self, seconds: float = DEFAULT_SMOOTH_SECONDS, cuts: SceneCutDetector | None = None):
        self.average = _MovingAverage(seconds)
        self.cuts = cuts or SceneCutDetector()
        self.cut_frames: list[int] = []
        self._frame = 0

    def __call__(self, frame: torch.Tensor, enhanced: torch.Tensor, dt: float) -> torch.Tensor:
        """``frame``: the input (1, 3, H, W); ``enhanced``: the network's output for it, same shape."""
        cut = self.cuts(frame)
        if cut:
            self.cut_frames.append(self._frame)
        self._frame += 1
        level = enhanced.mean(dim=(-2, -1), keepdim=True)
        smoothed = self.average.update({"level": level}, dt, restart=cut)["level"]
        return (enhanced * (smoothed / level.clamp_min(1e-4))).clamp_(0.0, 1.0)
