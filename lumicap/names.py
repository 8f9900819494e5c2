"""One source for the names lumicap's layers share: the closed choices a config, a command and a library call
all accept, as ``Literal`` types (for signatures and the config schema) and tuples (for checks and messages).

Torch-free and import-free, so the config schema, the losses, the metrics, the data readers and the model
registry can all import it; the owners below use these, they never copy them.
"""

from __future__ import annotations

from typing import Literal, get_args

# Loss terms the engine implements itself (lumicap.losses); a stage whose objective is not "enhance" may also
# name terms its model returns from ``stage_losses``.
LossName = Literal[
    "l1", "mse", "l2", "charbonnier", "smooth_l1", "ssim", "chroma", "vgg19", "vgg16", "lowres_smooth_l1"
]
BUILTIN_LOSSES: tuple[str, ...] = get_args(LossName)

# Dataset folder layouts lumicap.data recognises; "auto" (configs, commands) detects one of them.
Layout = Literal["lol-v1", "lol-v2-real", "lol-v2-synthetic", "folders"]
LAYOUTS: tuple[str, ...] = get_args(Layout)
LayoutChoice = Literal["auto", Layout]

# ITU-R BT.601 luma, 0.299 R + 0.587 G + 0.114 B (OpenCV's COLOR_RGB2GRAY): GT-mean's gray level and the
# grey the chroma gain scales colours away from.
BT601_LUMA_WEIGHTS = (0.299, 0.587, 0.114)

# SSIM as the LLIE papers compute it (MATLAB convention): Gaussian window of 11 pixels, sigma 1.5. The window
# is also the smallest image SSIM can measure (valid region only), so it bounds training patches.
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5

# PSNR on float RGB in [0, 1] after clamping (the papers' code), or on 8-bit levels.
PsnrConvention = Literal["float", "uint8"]
PSNR_CONVENTIONS: tuple[str, ...] = get_args(PsnrConvention)

# The MFR loss: distance of each feature term, which GPT-2 layers count, how an image becomes CLIP's square.
FeatureDistance = Literal["l1", "l2", "cosine"]
FEATURE_DISTANCES: tuple[str, ...] = get_args(FeatureDistance)
GptLayerChoice = Literal["last", "all"]
PreprocessMode = Literal["crop", "resize", "tile"]
PREPROCESS_MODES: tuple[str, ...] = get_args(PreprocessMode)

# NIQE's luminance: MATLAB rgb2gray ("gray", closest to the authors' release) or the Y of YCbCr as BasicSR
# computes it ("y"); a report may also leave NIQE out ("off").
NiqeMode = Literal["gray", "y"]
NIQE_MODES: tuple[str, ...] = get_args(NiqeMode)
NIQE_REPORT_CHOICES: tuple[str, ...] = (*NIQE_MODES, "off")

# Where a command runs: "auto" is CUDA when PyTorch sees a GPU, else the CPU.
DeviceChoice = Literal["auto", "cpu", "cuda"]
DEVICE_CHOICES: tuple[str, ...] = get_args(DeviceChoice)

# Videos (lumicap enhance, lumicap.inference.video): the output container, the encoder, and whether the
# network's answer is smoothed over time.
VideoFormat = Literal["mp4", "mov", "mkv"]
VIDEO_FORMAT_CHOICES: tuple[str, ...] = get_args(VideoFormat)
VideoCodec = Literal["h264", "hevc"]
VIDEO_CODEC_CHOICES: tuple[str, ...] = get_args(VideoCodec)
TemporalMode = Literal["smooth", "none"]
TEMPORAL_MODES: tuple[str, ...] = get_args(TemporalMode)


def model_key(name: str) -> str:
    """The registry key of a model name as people write it: ``"SNR-Aware"`` -> ``"snr_aware"``."""
    return name.lower().replace("-", "_")
