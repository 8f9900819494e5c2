"""Exposure and colour measures of one photo (no reference needed), as photographers and the low-light
papers use them on unpaired sets. All take RGB ``uint8`` arrays (H, W, 3), as
``lumicap.data.read_image_array`` returns them (16-bit arrays are brought to 8-bit levels first);
``as_uint8_rgb`` turns a (3, H, W) float tensor in [0, 1] into one.

- ``clipped_share``: share of pixels with any channel >= 250 (blown highlights).
- ``mean_brightness``: mean of all RGB samples, in [0, 1].
- ``colourfulness``: Hasler and Suesstrunk (2003).
- ``loe``: lightness order error, Wang et al. (2013), on their downsampled grid.
- ``border_frame``: a bright or dark frame along the image edges, per side.
"""

from __future__ import annotations

import math

import numpy as np

CLIP_THRESHOLD = 250  # 8-bit level from which a channel counts as clipped
LOE_GRID = 50  # Wang et al.: the shorter side is sampled about 50 times
LOE_WINDOW_RADIUS = 7  # Wang et al.: lightness is the local maximum over a 15x15 window


def as_uint8_rgb(image, name: str = "image") -> np.ndarray:
    """(H, W, 3) uint8 levels from a uint8/uint16 array (H, W, 3) or a float tensor/array (3, H, W) in [0, 1].

    Floats are clamped and rounded to the nearest level (what writing an 8-bit PNG keeps); 16-bit levels
    are divided by 257 and rounded (65535 -> 255).
    """
    if not isinstance(image, np.ndarray):
        try:
            import torch
        except ImportError:  # pragma: no cover - torch is a dependency
            torch = None
        if torch is not None and isinstance(image, torch.Tensor):
            if image.dim() != 3 or image.shape[0] != 3:
                raise ValueError(f"{name}: expected a (3, H, W) tensor, got shape {tuple(image.shape)}")
            return image.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        raise TypeError(f"{name}: expected a numpy array (H, W, 3) or a tensor (3, H, W), got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name}: expected an RGB array (H, W, 3), got shape {image.shape}")
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return np.round(image / 257.0).astype(np.uint8)
    raise ValueError(
        f"{name}: expected uint8 or uint16 levels, got {image.dtype} (convert floats with as_uint8_rgb on a tensor)"
    )


def clipped_share(image: np.ndarray, threshold: int = CLIP_THRESHOLD) -> float:
    """Share (0..1) of pixels with any channel at or above ``threshold`` (8-bit levels).

    ``mean_over_pixels[max(R, G, B) >= threshold]``. 250 rather than 255: JPEG and the resize of a
    preview turn a blown highlight into levels just below 255, and a photographer calls those blown too.
    """
    rgb = as_uint8_rgb(image, "clipped_share")
    if not 0 <= threshold <= 255:
        raise ValueError(f"clipped_share: threshold must be an 8-bit level (0..255), got {threshold}")
    return float((rgb.max(axis=2) >= threshold).mean())


def mean_brightness(image: np.ndarray) -> float:
    """Mean of all R, G and B samples divided by 255: 0 black, 1 white (``lumicap report``'s "mean")."""
    rgb = as_uint8_rgb(image, "mean_brightness")
    return float(rgb.mean(dtype=np.float64) / 255.0)


def colourfulness(image: np.ndarray) -> float:
    """Hasler and Suesstrunk's colourfulness M (Proc. SPIE 5007, 2003, "Measuring colourfulness in natural
    images"), on 8-bit levels::

        rg = R - G,  yb = (R + G) / 2 - B
        M = sqrt(std(rg)^2 + std(yb)^2) + 0.3 * sqrt(mean(rg)^2 + mean(yb)^2)

    (population standard deviations over all pixels). About 0 for grey images; the authors' scale calls
    15 slightly, 33 moderately, 45 averagely, 59 quite and 82 highly colourful.
    """
    rgb = as_uint8_rgb(image, "colourfulness").astype(np.float64)
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg = red - green
    yb = 0.5 * (red + green) - blue
    spread = math.sqrt(rg.var() + yb.var())
    offset = math.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    return float(spread + 0.3 * offset)


def loe(low: np.ndarray, enhanced: np.ndarray) -> float:
    """Lightness order error of ``enhanced`` against its input ``low`` (Wang, Zheng, Hu and Li, "Naturalness
    preserved enhancement algorithm for non-uniform illumination images", IEEE TIP 2013). Lower is better:
    0 when every pair of places keeps its order of lightness.

    As the authors' released ``LOE.m``: lightness ``L = max(R, G, B)``, then its local maximum over a
    15x15 window (edges mirrored without repeating the edge pixel); both images are sampled on the grid
    ``step = floor(min(H, W) / 50)``, rows and columns ``step, 2*step, ...`` (1-based), so about 50
    samples across the shorter side; for each sample ``x``,
    ``RD(x) = sum_y [L(x) >= L(y)] xor [L_e(x) >= L_e(y)]`` over all samples ``y``, and
    ``LOE = mean_x RD(x)``. (LIME's and later papers' ``loe.m`` instead resize ``max(R, G, B)``
    bicubically to 50 pixels on the shorter side, without the local maximum; its numbers are not
    comparable with these.) A photo under 50 pixels on its shorter side is sampled at every pixel.
    """
    low_rgb, enhanced_rgb = as_uint8_rgb(low, "loe (low)"), as_uint8_rgb(enhanced, "loe (enhanced)")
    if low_rgb.shape != enhanced_rgb.shape:
        raise ValueError(f"loe: low {low_rgb.shape} and enhanced {enhanced_rgb.shape} differ in shape")
    height, width = low_rgb.shape[:2]
    step = max(1, min(height, width) // LOE_GRID)
    rows = np.arange(1, height // step + 1) * step - 1
    cols = np.arange(1, width // step + 1) * step - 1
    before = _sampled_local_max(low_rgb.max(axis=2), rows, cols).ravel()
    after = _sampled_local_max(enhanced_rgb.max(axis=2), rows, cols).ravel()
    # order[i, j] = L(j) >= L(i); the error counts pairs whose order the enhancement changed.
    changed = (before[None, :] >= before[:, None]) != (after[None, :] >= after[:, None])
    return float(changed.sum(axis=1).mean())


def _sampled_local_max(lightness: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Maximum over the (2r+1)^2 window around each sample, edges mirrored as the authors' ``getextpic``."""
    from numpy.lib.stride_tricks import sliding_window_view

    r = LOE_WINDOW_RADIUS
    padded = np.pad(lightness, r, mode="reflect")
    windows = sliding_window_view(padded, (2 * r + 1, 2 * r + 1))
    return windows[rows][:, cols].max(axis=(2, 3)).astype(np.int16)


def border_frame(image: np.ndarray) -> dict[str, float]:
    """A frame along the edges, per side, in 8-bit levels: ``{"top", "bottom", "left", "right"}``.

    For the top: ``mean|row0 - row1| - mean|row1 - row2|`` over columns and channels (row 0 at the edge);
    the other sides alike. Photos change about as much between the first two lines as between the next
    two (under 4 levels for LOL's references); a network that darkens or brightens its outermost pixels
    (padding effects) makes the first step stand out. Needs 3 pixels on each side.
    """
    rgb = as_uint8_rgb(image, "border_frame").astype(np.int16)
    if min(rgb.shape[:2]) < 3:
        raise ValueError(f"border_frame: needs at least 3x3 pixels, got {rgb.shape[1]}x{rgb.shape[0]}")
    lines = {
        "top": (rgb[0], rgb[1], rgb[2]),
        "bottom": (rgb[-1], rgb[-2], rgb[-3]),
        "left": (rgb[:, 0], rgb[:, 1], rgb[:, 2]),
        "right": (rgb[:, -1], rgb[:, -2], rgb[:, -3]),
    }
    return {
        side: float(np.abs(edge - first).mean() - np.abs(first - second).mean())
        for side, (edge, first, second) in lines.items()
    }
