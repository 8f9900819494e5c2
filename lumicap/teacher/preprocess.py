"""CLIP's image preprocessing, done on tensors so that gradients reach the pixels.

OpenAI's CLIP feeds its towers with ``Resize(n, bicubic)`` (shorter side to ``n``, the longer one
truncated to ``int(n * long / short)``), ``CenterCrop(n)`` (offsets ``round((size - n) / 2)``), then
``(x - mean) / std`` with the constants below. PIL's bicubic is a separable convolution with the
Keys kernel a = -0.5 whose support widens with the downscale factor (antialiasing). It runs the
horizontal pass first and clips that intermediate image to the pixel range before the vertical pass;
``F.interpolate(mode="bicubic", antialias=True)`` implements the same filter, so we run it one axis at
a time with the same clipping (a single 2-D call differs from PIL by up to 8/255 next to saturated
edges). On the LOL eval15 photos the crop mode then agrees with PIL to one 8-bit level per pixel after
rounding (``tests/test_teacher_preprocess.py``); the unrounded tensor differs by at most 1.06/255,
which is PIL's own rounding of its intermediate and final 8-bit images. An independent check against the
official CLIP and ClipCap code (same random weights in the published layouts) found the teacher equal to
the official modules on the same pixels, and this difference worth about 1e-3 relative on the CLIP
embedding: it changes a caption only where two tokens are nearly tied, and is kept on purpose (PIL's
8-bit path has no gradient).

Modes (all return ``(B * tiles, 3, n, n)`` and the number of tiles per image):

- ``crop``: CLIP's own resize + centre crop (the borders of a non-square image are not seen: no loss and
  no gradient there);
- ``resize``: a plain resize of the whole image to ``n x n`` (aspect ratio not kept);
- ``tile``: shorter side to ``n``, then as many ``n x n`` crops as needed to cover the longer side,
  evenly spaced (overlapping where they must); the caller averages the tiles' features, so every
  pixel of the image takes part in the loss.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lumicap.names import PREPROCESS_MODES, PreprocessMode

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# Photos are shrunk (area average) to this shorter side before CLIP's own bicubic resize to 224 when they are
# captioned or judged: the caption is the same and a 24-megapixel tensor never goes through the bicubic filter.
CAPTION_SHORT_SIDE = 448


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"expected images of shape (B, 3, H, W) with values in [0, 1], got {shape}")


def resized_shorter_side(height: int, width: int, size: int) -> tuple[int, int]:
    """Output (height, width) of torchvision's ``Resize(size)`` on a PIL image: shorter side = ``size``."""
    if height <= width:
        return size, int(size * width / height)
    return int(size * height / width), size


def bicubic_resize(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """PIL-style bicubic resize: width pass, clip to [0, 1], height pass, clip (as PIL does on 8-bit images)."""
    out = images
    if out.shape[-1] != width:
        out = F.interpolate(out, size=(out.shape[-2], width), mode="bicubic", align_corners=False, antialias=True)
        out = out.clamp(0.0, 1.0)
    if out.shape[-2] != height:
        out = F.interpolate(out, size=(height, width), mode="bicubic", align_corners=False, antialias=True)
        out = out.clamp(0.0, 1.0)
    return out


def center_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    height, width = images.shape[-2:]
    top = int(round((height - size) / 2.0))
    left = int(round((width - size) / 2.0))
    return images[..., top : top + size, left : left + size]


def tile_offsets(length: int, size: int) -> list[int]:
    """Start offsets of the fewest ``size``-long windows that cover ``length``, evenly spread."""
    count = max(1, math.ceil(length / size))
    if count == 1:
        return [(length - size) // 2]
    step = (length - size) / (count - 1)
    return [int(round(i * step)) for i in range(count)]


def normalize(images: torch.Tensor) -> torch.Tensor:
    mean = images.new_tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(CLIP_STD).view(1, 3, 1, 1)
    return (images - mean) / std


def clip_preprocess(
    images: torch.Tensor, size: int, mode: PreprocessMode = "crop", normalized: bool = True
) -> tuple[torch.Tensor, int]:
    """Turn ``images`` (B, 3, H, W) in [0, 1] into CLIP tower input; returns ``(pixels, tiles_per_image)``.

    ``pixels`` has shape ``(B * tiles, 3, size, size)``, image-major (the tiles of image 0 first).
    ``normalized=False`` skips the mean/std step (handy to compare with PIL in [0, 1]).
    """
    _check_images(images)
    if mode not in PREPROCESS_MODES:
        raise ValueError(f"unknown preprocess mode '{mode}'; choose one of {', '.join(PREPROCESS_MODES)}")
    height, width = images.shape[-2:]
    if mode == "resize":
        pixels, tiles = bicubic_resize(images, size, size), 1
    else:
        new_h, new_w = resized_shorter_side(height, width, size)
        resized = bicubic_resize(images, new_h, new_w)
        if mode == "crop":
            pixels, tiles = center_crop(resized, size), 1
        else:
            crops = [
                resized[..., top : top + size, left : left + size]
                for top in tile_offsets(new_h, size)
                for left in tile_offsets(new_w, size)
            ]
            tiles = len(crops)
            pixels = torch.stack(crops, dim=1).flatten(0, 1)
    if normalized:
        pixels = normalize(pixels)
    return pixels, tiles


def shrink_for_teacher(image: torch.Tensor) -> torch.Tensor:
    """``image`` (3, H, W) shrunk by area averaging to 448 pixels on its shorter side (unchanged if smaller)."""
    height, width = image.shape[-2:]
    scale = CAPTION_SHORT_SIDE / min(height, width)
    if scale >= 1:
        return image
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    return F.interpolate(image.unsqueeze(0), size=size, mode="area")[0]
