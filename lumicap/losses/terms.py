"""Pixel, structural and perceptual losses, and their composition from a recipe stage's ``losses``.

Each term is a plain ``nn.Module`` ``term(prediction, target) -> scalar``:

=====================  ===========================================================================
``l1``                 mean |p - t|
``mse`` / ``l2``       mean (p - t)^2
``charbonnier``        mean sqrt((p - t)^2 + eps^2), eps = 1e-3 (SNR-Aware's value)
``smooth_l1``          Huber with beta 1 (``F.smooth_l1_loss``; LLFormer, UHDFour)
``ssim``               1 - SSIM (Gaussian window 11, sigma 1.5; differentiable, ``lumicap.metrics.ssim``)
``chroma``             mean | |c(p)| - |c(t)| |, c = (R - G, (R + G) / 2 - B): how saturated each pixel is,
                       whatever its hue (see ``ChromaLoss``)
``vgg19`` / ``vgg16``  VGG feature distance (``lumicap.losses.vgg``): ``vgg19`` is UHDFour's term (conv4_4, MSE, no
                       ImageNet normalisation), ``vgg16`` RCTNet's (relu1_2/2_2/3_2, L1, normalised)
``lowres_smooth_l1``   smooth L1 between the model's ``output_lowres`` and the target resized to its size
=====================  ===========================================================================

``StageLoss(losses)`` weighs and sums them and returns ``(total, {name: unweighted term})``. A stage
whose objective is model-defined (RetinexNet's decomposition) passes the model's own terms in
``extra_terms``; names in ``losses`` that are neither built in nor supplied are an error.

VGG terms need ImageNet weights. When they cannot be found the loss fails at construction with a
one-line message, unless ``allow_missing_perceptual`` is set: then the term is dropped and listed in
``StageLoss.dropped`` (the trainer records it in the run, so the deviation from the recipe is visible).
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lumicap.errors import LumicapError


class L1Loss(nn.Module):
    def forward(self, prediction: Tensor, target: Tensor) -> Tensor:
        return F.l1_loss(prediction, target)


class MSELoss(nn.Module):
    def forward(self, prediction: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(prediction, target)


class CharbonnierLoss(nn.Module):
    """mean(sqrt((p - t)^2 + eps^2)); a smooth L1 that stays differentiable at zero."""

    def __init__(self, eps: float = 1e-3):
        super().__init__()
        self.eps = eps

    def forward(self, prediction: Tensor, target: Tensor) -> Tensor:
        return torch.sqrt((prediction - target) ** 2 + self.eps**2).mean()


class SmoothL1Loss(nn.Module):
    def __init__(self, beta: float = 1.0):
        super().__init__()
        self.beta = beta

    def forward(self, prediction: Tensor, target: Tensor) -> Tensor:
        return F.smooth_l1_loss(prediction, target, beta=self.beta)


class SSIMLoss(nn.Module):
    """1 - SSIM, with the differentiable SSIM from ``lumicap.metrics`` (inputs in [0, 1])."""

    def forward(self, prediction: Tensor, target: Tensor) -> Tensor:
        from lumicap.metrics import ssim

        return 1.0 - ssim(prediction, target).mean()


class ChromaLoss(nn.Module):
    """Per-pixel saturation against the reference, whatever the hue: ``mean | |c(p)| - |c(t)| |`` with the
    opponent axes of Hasler and Suesstrunk's colourfulness, ``c = (R - G, (R + G) / 2 - B)``.

    Why: a network that is unsure of a dark, noisy pixel's hue averages candidate colours, and the average
    of colour vectors pointing different ways is shorter: L1-trained low-light networks come out pale
    (measured on the 2026-11 default: LOL validation PSNR stays within 0.06 dB when its outputs' chroma is
    scaled by 1.0 to 1.4, while colourfulness goes from 19 to 26; the references have 35). L1 does not
    care along that direction; this term does, without asking for a hue the network cannot know.
    """

    def __init__(self, eps: float = 1e-6):
        super().__init__()
        self.eps = eps

    def magnitude(self, image: Tensor) -> Tensor:
        r, g, b = image.unbind(dim=-3)
        return torch.sqrt((r - g) ** 2 + (0.5 * (r + g) - b) ** 2 + self.eps)

    def forward(self, prediction: Tensor, target: Tensor) -> Tensor:
        return F.l1_loss(self.magnitude(prediction), self.magnitude(target))


class LowResSmoothL1Loss(nn.Module):
    """Smooth L1 between a low-resolution output and the target resized (area) to the same size."""

    def forward(self, prediction: Tensor, target: Tensor) -> Tensor:
        if target.shape[-2:] != prediction.shape[-2:]:
            target = F.interpolate(target, size=prediction.shape[-2:], mode="area")
        return F.smooth_l1_loss(prediction, target)


PIXEL_LOSSES = {
    "l1": L1Loss,
    "mse": MSELoss,
    "l2": MSELoss,
    "charbonnier": CharbonnierLoss,
    "smooth_l1": SmoothL1Loss,
    "ssim": SSIMLoss,
    "chroma": ChromaLoss,
}
# The recipes that use a perceptual term each define it; the loss name picks that definition.
PERCEPTUAL_LOSSES = {"vgg19": "uhdfour", "vgg16": "rctnet"}
# Terms computed on an auxiliary model output rather than the final image: name -> output key.
AUXILIARY_LOSSES = {"lowres_smooth_l1": "output_lowres"}
BUILTIN = tuple(PIXEL_LOSSES) + tuple(PERCEPTUAL_LOSSES) + tuple(AUXILIARY_LOSSES)


def perceptual_loss(name: str, weights: str | None = None) -> nn.Module:
    """The recipe's VGG perceptual term; missing weights raise a one-line ``WeightsError``."""
    from lumicap.losses.vgg import VGGPerceptualLoss

    return VGGPerceptualLoss.from_preset(PERCEPTUAL_LOSSES[name], weights=weights)


class StageLoss(nn.Module):
    """Weighted sum of a stage's loss terms.

    ``forward(outputs, target, extra_terms=None)``: ``outputs`` is the enhanced image or a dict with
    ``"output"`` plus auxiliary tensors (``"output_lowres"``); returns ``(total, terms)`` where
    ``terms`` holds each unweighted term (tensors, still attached to the graph).

    Args:
        losses: loss name -> weight; built-in names are ``lumicap.names.BUILTIN_LOSSES``.
        allow_model_terms: accept other names, to be supplied by the model's ``stage_losses`` as
            ``extra_terms`` (RetinexNet's decomposition stage).
        perceptual_weights: VGG weights file or known name for ``vgg16``/``vgg19`` (default: from the cache).
        allow_missing_perceptual: drop a VGG term whose weights cannot be found (listed in ``dropped``)
            instead of failing.
    """

    def __init__(
        self,
        losses: Mapping[str, float],
        *,
        allow_model_terms: bool = False,
        perceptual_weights: str | None = None,
        allow_missing_perceptual: bool = False,
    ):
        super().__init__()
        self.weights: dict[str, float] = {}
        self.terms = nn.ModuleDict()
        self.model_terms: list[str] = []
        self.dropped: dict[str, str] = {}
        for name, weight in losses.items():
            if name in PIXEL_LOSSES:
                self.terms[name] = PIXEL_LOSSES[name]()
            elif name in AUXILIARY_LOSSES:
                self.terms[name] = LowResSmoothL1Loss()
            elif name in PERCEPTUAL_LOSSES:
                try:
                    self.terms[name] = perceptual_loss(name, perceptual_weights)
                except LumicapError as exc:
                    if not allow_missing_perceptual:
                        raise LumicapError(
                            f"loss '{name}': {exc} (or set train.allow_missing_perceptual=true to drop the term)"
                        ) from None
                    self.dropped[name] = str(exc)
                    continue
            elif allow_model_terms:
                self.model_terms.append(name)
            else:
                raise LumicapError(f"unknown loss '{name}'; known: {', '.join(BUILTIN)}")
            self.weights[name] = float(weight)

    def forward(
        self,
        outputs: Tensor | Mapping[str, Tensor],
        target: Tensor | None,
        extra_terms: Mapping[str, Tensor] | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        if isinstance(outputs, Tensor):
            outputs = {"output": outputs}
        extra_terms = extra_terms or {}
        terms: dict[str, Tensor] = {}
        for name, module in self.terms.items():
            key = AUXILIARY_LOSSES.get(name, "output")
            if key not in outputs:
                raise LumicapError(f"loss '{name}' needs the model output '{key}', which this model does not provide")
            terms[name] = module(outputs[key].float(), target.float())
        for name in self.model_terms:
            if name not in extra_terms:
                known = ", ".join(sorted(extra_terms)) or "none"
                raise LumicapError(f"loss '{name}' is not a built-in loss nor a term the model returns ({known})")
            terms[name] = extra_terms[name]
        total = sum(self.weights[name] * value for name, value in terms.items())
        if not terms:
            raise LumicapError("stage has no loss terms left (all were dropped)")
        return total, terms
