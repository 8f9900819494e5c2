"""The training objective's plain terms: pixel, structural and perceptual losses, their composition from a
recipe stage (``StageLoss``), and the VGG feature extractor the perceptual terms use.

    terms  the built-in terms and ``StageLoss`` (the caption-guided MFR term is ``lumicap.teacher``'s)
    vgg    VGG16/VGG19 features from torchvision's ImageNet files, and the perceptual loss built on them
"""

from lumicap.losses.terms import (
    AUXILIARY_LOSSES,
    BUILTIN,
    PERCEPTUAL_LOSSES,
    PIXEL_LOSSES,
    CharbonnierLoss,
    ChromaLoss,
    L1Loss,
    LowResSmoothL1Loss,
    MSELoss,
    SmoothL1Loss,
    SSIMLoss,
    StageLoss,
    perceptual_loss,
)
from lumicap.losses.vgg import VGGFeatures, VGGPerceptualLoss

__all__ = [
    "AUXILIARY_LOSSES", "BUILTIN", "PERCEPTUAL_LOSSES", "PIXEL_LOSSES", "CharbonnierLoss", "ChromaLoss", "L1Loss",
    "LowResSmoothL1Loss", "MSELoss", "SSIMLoss", "SmoothL1Loss", "StageLoss", "VGGFeatures", "VGGPerceptualLoss",
    "perceptual_loss",
]
