"""Judges: one interface for everything that scores an enhanced photo, with or without a reference.

A judge has a ``name``, a one-line ``protocol`` (stored beside its numbers) and one method::

    judge.score(image, reference=None, low=None) -> {"column": value, ...}

``image`` is the enhanced photo, ``reference`` its normal-light reference when there is one, ``low`` the
dark input it was made from; all RGB ``uint8`` arrays (H, W, 3) as ``lumicap.data.read_image_array``
returns them. A judge returns the columns it can fill with what it was given and ignores the rest.
Values are floats (NaN where a measure is undefined, e.g. NIQE of a photo under 96x96) or, for
captions, strings. Three judges ship:

- ``niqe`` (``NiqeJudge``): ``niqe_<mode>`` of the photo (and ``niqe_<mode>_low`` of the dark input);
- ``exposure`` (``ExposureJudge``): ``brightness``, ``clipped_pct``, ``colourfulness`` (and with the dark
  input ``brightness_low``, ``clipped_pct_low``, ``clipped_pct_change``, ``loe``);
- ``teacher`` (``TeacherJudge``): the three MFR distances of the ClipCap teacher (the loss's own code, no
  gradient) to the reference (``teacher_{clip,prefix,gpt}_vs_ref``) and to the dark input
  (``..._vs_low``: did enhancing change what the captioner sees?), and optionally the captions.

Adding a judge (a learned one such as Q-Align, or an MLLM such as DepictQA): subclass ``Judge``, load
its weights in ``__init__`` through ``lumicap.weights`` (a known name with a pinned sha256 is fetched to
the cache once, ``weights_only`` loading, offline afterwards: the way the teacher loads), return its
columns from ``score``, and register a factory with ``register_judge("name")``; ``make_judge("name",
**options)`` builds it.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Callable

import numpy as np

from lumicap.metrics.niqe import BLOCK_SIZE, PARAMS_SHA256, niqe
from lumicap.metrics.noref import (
    CLIP_THRESHOLD,
    LOE_GRID,
    as_uint8_rgb,
    clipped_share,
    colourfulness,
    loe,
    mean_brightness,
)
from lumicap.names import NIQE_MODES, NiqeMode

Score = dict[str, "float | str"]


class Judge(ABC):
    name: str = "judge"

    @property
    def protocol(self) -> str:
        """How the numbers are made (conventions, parameters), stored in eval summaries."""
        return self.name

    @abstractmethod
    def score(self, image: np.ndarray, reference: np.ndarray | None = None, low: np.ndarray | None = None) -> Score:
        """Columns for one enhanced photo; see the module docstring."""


_FACTORIES: dict[str, Callable[..., Judge]] = {}


def register_judge(name: str):
    """Decorator: ``make_judge(name, **options)`` calls the decorated factory (a class or function)."""

    def add(factory: Callable[..., Judge]):
        if name in _FACTORIES:
            raise ValueError(f"a judge named {name!r} is already registered")
        _FACTORIES[name] = factory
        return factory

    return add


def make_judge(name: str, **options) -> Judge:
    if name not in _FACTORIES:
        raise ValueError(f"unknown judge {name!r}; known: {', '.join(sorted(_FACTORIES))}")
    return _FACTORIES[name](**options)


def judge_names() -> list[str]:
    return sorted(_FACTORIES)


@register_judge("niqe")
class NiqeJudge(Judge):
    """NIQE (lower is better) of the photo and, when given, of its dark input."""

    name = "niqe"

    def __init__(self, mode: NiqeMode = "gray"):
        if mode not in NIQE_MODES:
            raise ValueError(f"NIQE mode must be one of {', '.join(NIQE_MODES)}, got {mode!r}")
        self.mode = mode

    @property
    def protocol(self) -> str:
        channel = (
            "Y of BT.601 YCbCr (BasicSR convert_to='y')"
            if self.mode == "y"
            else "luma 0.299R+0.587G+0.114B (BasicSR convert_to='gray')"
        )
        return (f"NIQE (Mittal et al. 2013) as BasicSR 1.4.2, {channel}, crop border 0, pristine model sha256 "
                f"{PARAMS_SHA256[:12]}; NaN for photos under {BLOCK_SIZE}x{BLOCK_SIZE}, left out of means")

    def score(self, image, reference=None, low=None) -> Score:
        key = f"niqe_{self.mode}"
        result = {key: _niqe_or_nan(image, self.mode)}
        if low is not None:
            result[f"{key}_low"] = _niqe_or_nan(low, self.mode)
        return result


def _niqe_or_nan(image: np.ndarray, mode: str) -> float:
    rgb = as_uint8_rgb(image, "niqe")
    if min(rgb.shape[:2]) < BLOCK_SIZE:
        return math.nan
    return niqe(rgb, mode)


@register_judge("exposure")
class ExposureJudge(Judge):
    """Brightness, blown highlights and colourfulness; with the dark input, their change and LOE."""

    name = "exposure"

    @property
    def protocol(self) -> str:
        return (f"brightness: mean RGB in [0,1]; clipped_pct: % of pixels with a channel >= {CLIP_THRESHOLD}; "
                f"colourfulness: Hasler-Suesstrunk 2003 on 8-bit RGB; loe: Wang et al. 2013 (released LOE.m: "
                f"max RGB, 15x15 local max, grid step floor(min(H,W)/{LOE_GRID}))")

    def score(self, image, reference=None, low=None) -> Score:
        result: Score = {
            "brightness": mean_brightness(image),
            "clipped_pct": 100.0 * clipped_share(image),
            "colourfulness": colourfulness(image),
        }
        if low is not None:
            result["brightness_low"] = mean_brightness(low)
            result["clipped_pct_low"] = 100.0 * clipped_share(low)
            result["clipped_pct_change"] = result["clipped_pct"] - result["clipped_pct_low"]
            result["loe"] = loe(low, image)
        return result


@register_judge("teacher")
class TeacherJudge(Judge):
    """The captioner as a judge: MFR distances (no gradient) and, optionally, captions.

    ``teacher``: a preset name or a teacher folder (``ClipCapTeacher.from_pretrained``), or a loaded
    ``MultimodalFeatureLoss``. The distances are the loss's unweighted terms with its defaults (L1,
    normalised by the second image's feature scale, so about 1 for unrelated photos and 0 for identical
    ones; CLIP's centre crop, as the captions see it); both photos are first shrunk (area average) to
    448 pixels on the shorter side, as ``lumicap enhance --caption`` does.
    """

    name = "teacher"

    def __init__(self, teacher="clipcap-coco", captions: bool = False, device=None, download: bool = True):
        from lumicap.teacher.loss import MultimodalFeatureLoss

        if isinstance(teacher, MultimodalFeatureLoss):
            self.loss = teacher
        else:
            self.loss = MultimodalFeatureLoss.from_pretrained(teacher, device=device, download=download)
        self.source = teacher if isinstance(teacher, str) else self.loss.teacher.name
        self.captions = captions

    @property
    def protocol(self) -> str:
        loss = self.loss
        return (f"ClipCap teacher {self.source}: MFR terms clip/prefix/gpt (distance {loss.distance}, "
                f"normalized {loss.normalize}, preprocess {loss.preprocess}, gpt layers {loss.gpt_layers}), "
                f"photos shrunk to 448 px on the shorter side")

    def score(self, image, reference=None, low=None) -> Score:
        import torch

        enhanced = self._tensor(image)
        result: Score = {}
        for suffix, other in (("ref", reference), ("low", low)):
            if other is None:
                continue
            other_tensor = self._tensor(other)
            if other_tensor.shape != enhanced.shape:
                raise ValueError(f"teacher judge: the {suffix} image is {tuple(other_tensor.shape[1:])}, "
                                 f"the enhanced one {tuple(enhanced.shape[1:])}")
            with torch.no_grad():
                self.loss(enhanced.unsqueeze(0), other_tensor.unsqueeze(0))
            terms = self.loss.last_terms
            for term in ("clip", "prefix", "gpt"):
                result[f"teacher_{term}_vs_{suffix}"] = float(terms[f"mfr_{term}"])
        if self.captions:
            teacher = self.loss.teacher
            result["caption"] = teacher.caption(enhanced.unsqueeze(0))[0].strip()
            if low is not None:
                result["caption_low"] = teacher.caption(self._tensor(low).unsqueeze(0))[0].strip()
            if reference is not None:
                result["caption_ref"] = teacher.caption(self._tensor(reference).unsqueeze(0))[0].strip()
        return result

    def _tensor(self, image: np.ndarray):
        import torch

        from lumicap.teacher.preprocess import shrink_for_teacher

        rgb = as_uint8_rgb(image, "teacher judge")
        tensor = torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255.0)
        return shrink_for_teacher(tensor).to(self.loss.teacher.device)
