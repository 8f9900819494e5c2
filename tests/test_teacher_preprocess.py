"""Differentiable CLIP preprocessing against CLIP's own PIL pipeline, and the coverage of each mode.

CLIP's transform is torchvision ``Resize(224, BICUBIC)`` + ``CenterCrop(224)`` on a PIL image; its
documented rules (shorter side to 224, longer side ``int(224 * long / short)``, crop offsets
``round((size - 224) / 2)``) are applied here with PIL itself as the reference.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lumicap.teacher.preprocess import CLIP_MEAN, CLIP_STD, clip_preprocess, tile_offsets


def pil_clip_crop(image: Image.Image, size: int = 224) -> np.ndarray:
    width, height = image.size
    if width <= height:
        new_w, new_h = size, int(size * height / width)
    else:
        new_w, new_h = int(size * width / height), size
    resized = image.resize((new_w, new_h), Image.BICUBIC)
    left, top = int(round((new_w - size) / 2.0)), int(round((new_h - size) / 2.0))
    return np.asarray(resized.crop((left, top, left + size, top + size)))


def to_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(image)).permute(2, 0, 1).float().unsqueeze(0) / 255.0


def compare_with_pil(image: Image.Image, size: int = 224) -> tuple[float, float]:
    """(max difference after rounding to 8 bits, max difference of the float result), in 1/255 units."""
    reference = torch.from_numpy(pil_clip_crop(image, size).astype(np.float32)).permute(2, 0, 1)
    ours, tiles = clip_preprocess(to_tensor(image), size, "crop", normalized=False)
    assert tiles == 1 and ours.shape == (1, 3, size, size)
    ours = ours[0] * 255.0
    return float((ours.round() - reference).abs().max()), float((ours - reference).abs().max())


def test_crop_matches_pil_on_lol_photos(shared_data):
    files = sorted((shared_data / "lol-v1" / "eval15").glob("*/*.png"))
    assert files, "eval15 has no PNG files"
    worst_rounded, worst_float = 0.0, 0.0
    for path in files:
        rounded, raw = compare_with_pil(Image.open(path).convert("RGB"))
        worst_rounded, worst_float = max(worst_rounded, rounded), max(worst_float, raw)
    # One 8-bit level at most; the float result is off only by PIL's own 8-bit rounding (< 1.1 levels).
    assert worst_rounded <= 1.0, worst_rounded
    assert worst_float < 1.1, worst_float


def test_crop_matches_pil_on_portrait_and_upscaled_images():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:300, 0:170]
    smooth = np.stack([128 + 100 * np.sin(xx / 9.0), 128 + 90 * np.cos(yy / 13.0), (xx + yy) % 256], axis=-1)
    noisy = np.clip(smooth + rng.normal(0, 12, smooth.shape), 0, 255).astype(np.uint8)
    portrait = Image.fromarray(noisy)  # 170 x 300: shorter side is the width, and it is upscaled
    rounded, _ = compare_with_pil(portrait)
    assert rounded <= 1.0
    small = Image.fromarray(noisy[:120, :150])  # downscaled width-first landscape at another size
    rounded, _ = compare_with_pil(small, size=96)
    assert rounded <= 1.0


def test_normalisation_uses_clip_constants():
    images = torch.rand(2, 3, 50, 50)
    raw, _ = clip_preprocess(images, 50, "crop", normalized=False)
    normed, _ = clip_preprocess(images, 50, "crop")
    mean, std = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    assert torch.allclose(normed, (raw - mean) / std)
    assert torch.equal(raw, images)  # already at size: nothing to resize or crop


def _input_gradient(images: torch.Tensor, mode: str, size: int) -> torch.Tensor:
    images = images.clone().requires_grad_(True)
    pixels, _ = clip_preprocess(images, size, mode)
    pixels.square().sum().backward()
    return images.grad.abs().sum(dim=1)[0]  # (H, W)


def test_tile_mode_sees_every_pixel_and_crop_mode_does_not():
    images = torch.rand(1, 3, 40, 60) * 0.8 + 0.1
    tile_grad = _input_gradient(images, "tile", 20)
    crop_grad = _input_gradient(images, "crop", 20)
    resize_grad = _input_gradient(images, "resize", 20)
    assert bool((tile_grad > 0).all()), "tile mode must cover the whole image"
    assert bool((resize_grad > 0).all())
    assert float(crop_grad[:, :3].sum()) == 0.0 and float(crop_grad[:, -3:].sum()) == 0.0  # borders unseen
    pixels, tiles = clip_preprocess(images, 20, "tile")
    assert tiles == 2 and pixels.shape == (2, 3, 20, 20)  # 30x20 after resizing: two 20x20 tiles


@pytest.mark.parametrize("length,size", [(224, 224), (336, 224), (500, 224), (449, 224), (37, 10)])
def test_tile_offsets_cover_the_length(length, size):
    offsets = tile_offsets(length, size)
    covered = np.zeros(length, dtype=bool)
    for start in offsets:
        assert 0 <= start <= length - size
        covered[start : start + size] = True
    assert covered.all() and len(offsets) == -(-length // size)


def test_tile_mode_orders_tiles_image_major():
    left = torch.zeros(1, 3, 20, 40)
    left[..., :20] = 1.0  # image 0: bright left half
    batch = torch.cat([left, left.flip(-1)])  # image 1: bright right half
    pixels, tiles = clip_preprocess(batch, 20, "tile", normalized=False)
    means = pixels.mean(dim=(1, 2, 3)).view(2, tiles)
    assert means[0, 0] > means[0, 1] and means[1, 0] < means[1, 1]


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="preprocess mode"):
        clip_preprocess(torch.rand(1, 3, 8, 8), 8, "stretch")
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        clip_preprocess(torch.rand(3, 8, 8), 8)
