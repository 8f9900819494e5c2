"""NIQE, the "completely blind" image-quality score of Mittal, Soundararajan and Bovik (IEEE SPL 2013).

Lower is better. The score is the distance between two multivariate Gaussians of 36 "natural scene
statistics" features: one fitted once by the authors on pristine photos (shipped in
``lumicap/assets/niqe``), one fitted here on the blocks of the photo being judged.

The steps follow the authors' MATLAB release (``niqe_release.zip``: ``computequality.m``,
``computefeature.m``, ``estimateaggdparam.m``) as BasicSR 1.4.2 ports it (``basicsr/metrics/niqe.py``),
which is what the low-light papers ran:

1. One channel: ``mode="y"`` is the Y of BT.601 YCbCr (``16 + (65.481 R + 128.553 G + 24.966 B) / 255``,
   BasicSR's default and what most papers report); ``mode="gray"`` is luma ``0.299 R + 0.587 G + 0.114 B``
   (OpenCV's weights, as BasicSR's ``convert_to='gray'``; MATLAB's ``rgb2gray``, used by the authors'
   release, has 0.2989/0.5870/0.1140, the same up to rounding). Rounded to integer levels, in float32
   as BasicSR does it, so that a value on a half level rounds the same way.
2. The image is cut to whole 96x96 blocks (rows and columns beyond the last whole block are dropped).
3. At two scales (full, then half size by MATLAB's antialiased bicubic ``imresize``): MSCN coefficients
   ``(I - mu) / (sigma + 1)``, with ``mu`` and ``sigma`` the local mean and standard deviation under the
   7x7 Gaussian window of the parameter file, edges replicated.
4. Per block (96 px at scale 1, 48 at scale 2), 18 features: an asymmetric generalised Gaussian (AGGD)
   fitted by moment matching to the MSCN coefficients (shape, mean of the two scales), and to the
   products of each coefficient with its right, lower, lower-right and lower-left neighbour (shifts
   wrap around inside the block, as MATLAB's ``circshift``): shape, mean, left scale, right scale.
   The shape comes from a table lookup over 0.2:0.001:10, as in the release.
5. The blocks' features give a mean (ignoring NaN) and a covariance (over blocks without NaN);
   ``NIQE = sqrt((mu_p - mu_d)^T pinv((S_p + S_d) / 2) (mu_p - mu_d))``.

Blocks with no negative or no positive coefficient (flat black areas, common in dark photos) give NaN
scales and the first shape of the table (0.2), exactly as the original code does; an image with fewer
than two usable blocks gives NaN.

Known spreads (``../shared/metrics/niqe/README.md``): Y against gray moves scores by 0.05-0.14; passing
RGB where BasicSR expects BGR moves them by -0.03..+0.23; other ports differ more. Compare NIQE across
papers only within about 0.3.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lumicap.metrics.noref import as_uint8_rgb
from lumicap.names import NIQE_MODES, NiqeMode

BLOCK_SIZE = 96
PARAMS_PATH = Path(__file__).resolve().parents[1] / "assets" / "niqe" / "niqe_pris_params.npz"
# basicsr 1.4.2's basicsr/metrics/niqe_pris_params.npz, byte for byte.
PARAMS_SHA256 = "2a7c182a68c9e7f1b2e2e5ec723279d6f65d912b6fcaf37eb2bf03d7367c4296"

# The AGGD shape is looked up on the release's grid 0.2:0.001:10 (9,801 values).
_SHAPES = np.arange(0.2, 10.001, 0.001)
_NEIGHBOUR_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


@dataclass(frozen=True)
class PristineModel:
    mean: np.ndarray  # (36,)
    cov: np.ndarray  # (36, 36)
    window: np.ndarray  # (7, 7), sums to 1


@functools.lru_cache(maxsize=1)
def pristine_model(path: str | Path = PARAMS_PATH) -> PristineModel:
    """The authors' pristine Gaussian, read from the shipped file after checking its sha256."""
    path = Path(path)
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != PARAMS_SHA256:
        raise RuntimeError(
            f"{path}: sha256 {digest} is not the pinned NIQE parameter file ({PARAMS_SHA256}); reinstall lumicap"
        )
    with np.load(path, allow_pickle=False) as params:
        return PristineModel(
            mean=params["mu_pris_param"].reshape(-1).astype(np.float64),
            cov=params["cov_pris_param"].astype(np.float64),
            window=params["gaussian_window"].astype(np.float64),
        )


def niqe(image: np.ndarray, mode: NiqeMode = "gray", crop_border: int = 0) -> float:
    """NIQE of an RGB photo (lower is better).

    ``image``: (H, W, 3) uint8 RGB (as ``lumicap.data.read_image_array`` returns it; 16-bit arrays and
    (3, H, W) float tensors are brought to 8-bit levels first, see ``noref.as_uint8_rgb``).
    ``mode``: ``"gray"`` or ``"y"`` (see the module docstring).
    ``crop_border``: pixels dropped on every side first (BasicSR's ``crop_border``). Needs at least one
    96x96 block after cropping; returns NaN when fewer than two blocks carry texture.
    """
    if mode not in NIQE_MODES:
        raise ValueError(f"niqe: mode must be one of {', '.join(NIQE_MODES)}, got {mode!r}")
    luminance = _luminance(as_uint8_rgb(image, "niqe"), mode)
    if crop_border:
        if crop_border < 0:
            raise ValueError(f"niqe: crop_border must be >= 0, got {crop_border}")
        luminance = luminance[crop_border:-crop_border, crop_border:-crop_border]
    return niqe_luminance(luminance)


def niqe_luminance(luminance: np.ndarray) -> float:
    """NIQE of one channel (H, W) of rounded levels in [0, 255]: steps 2-5 of the module docstring."""
    model = pristine_model()
    height, width = luminance.shape
    rows, cols = height // BLOCK_SIZE, width // BLOCK_SIZE
    if rows == 0 or cols == 0:
        raise ValueError(f"niqe: needs at least {BLOCK_SIZE}x{BLOCK_SIZE} pixels, got {width}x{height}")
    scale1 = luminance[: rows * BLOCK_SIZE, : cols * BLOCK_SIZE].astype(np.float32)
    scale2 = matlab_imresize_half(scale1 / np.float32(255.0)) * np.float32(255.0)
    features = np.concatenate(
        [
            _block_features(mscn(scale1, model.window), BLOCK_SIZE),
            _block_features(mscn(scale2, model.window), BLOCK_SIZE // 2),
        ],
        axis=1,
    )
    usable = features[~np.isnan(features).any(axis=1)]
    if len(usable) < 2:
        return float("nan")
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(features, axis=0)
    cov = np.cov(usable, rowvar=False)
    diff = model.mean - mean
    distance = diff @ np.linalg.pinv((model.cov + cov) / 2.0) @ diff
    return float(math.sqrt(distance))


def _luminance(image: np.ndarray, mode: NiqeMode) -> np.ndarray:
    """Rounded luminance levels (H, W) as float32, with BasicSR's float32 arithmetic.

    A pixel whose exact luminance lies on a half level (1 in 1,000 for gray) rounds up or down by the
    last bit of the float32 sum, and such pixels moved NIQE by up to 3e-3; so the order of the sums is
    that of BasicSR with the OpenCV that measured the reference values: for gray
    ``fma(R, 0.299, fma(B, 0.114, G * 0.587))`` on float32 ``level / 255``, then ``* 255``.
    """
    rgb = image.astype(np.float32) / np.float32(255.0)
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    if mode == "y":
        # BasicSR: float32 [0,1] RGB dotted with float64 weights, + 16, / 255 back to float32, x 255.
        red, green, blue = red.astype(np.float64), green.astype(np.float64), blue.astype(np.float64)
        y = (red * 65.481 + green * 128.553 + blue * 24.966 + 16.0) / 255.0
        return np.round(y.astype(np.float32) * np.float32(255.0))
    gray = _fused_multiply_add(blue, 0.114, green * np.float32(0.587))
    gray = _fused_multiply_add(red, 0.299, gray)
    return np.round(gray * np.float32(255.0))


def _fused_multiply_add(x: np.ndarray, weight: float, addend: np.ndarray) -> np.ndarray:
    """float32 ``x * weight + addend`` rounded once, as a CPU's FMA does: float64 holds the product of two
    float32 numbers exactly, so one float64 addition and one rounding to float32 give the fused result
    (but for a double rounding, which needs the float64 sum to fall exactly between two float32 values)."""
    return (x.astype(np.float64) * np.float64(np.float32(weight)) + addend).astype(np.float32)


def mscn(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients ``(I - mu) / (sigma + 1)`` (NIQE paper, Eq. 1).

    ``mu``/``sigma``: local mean and standard deviation under ``window`` with replicated edges
    (MATLAB ``imfilter(..., 'replicate')``). As in BasicSR, the filtered images are float32 and
    ``sigma = sqrt(|filter(I^2) - mu^2|)`` is taken in float32: in flat areas that difference is float32
    rounding noise, and the score depends on it. The filter sums run in float64 (as scipy's 2-D
    ``convolve`` does) but in two 1-D passes, the window being an outer product (3x faster at 12 MP).
    """
    from scipy import ndimage

    image = image.astype(np.float32)
    rows, cols = _separable_factors(window)

    def local_mean(values: np.ndarray) -> np.ndarray:
        filtered = ndimage.correlate1d(values.astype(np.float64), rows, axis=0, mode="nearest")
        return ndimage.correlate1d(filtered, cols, axis=1, mode="nearest").astype(np.float32)

    mean = local_mean(image)
    sigma = np.sqrt(np.abs(local_mean(image * image) - mean * mean))
    return (image - mean) / (sigma + np.float32(1.0))


def _separable_factors(window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1-D taps (rows, cols) whose outer product is ``window`` (to 1e-15), or an error if there are none."""
    rows = window.sum(axis=1)
    cols = window.sum(axis=0) / rows.sum()
    if not np.allclose(np.outer(rows, cols), window, rtol=0, atol=1e-15):
        raise ValueError("NIQE: the Gaussian window of the parameter file is not separable")
    return rows, cols


def _block_features(coefficients: np.ndarray, block: int) -> np.ndarray:
    """(blocks, 18) features of the whole ``block`` x ``block`` tiles of an MSCN map."""
    from scipy.special import gamma

    height, width = coefficients.shape
    tiles = coefficients.reshape(height // block, block, width // block, block).transpose(0, 2, 1, 3)
    tiles = tiles.reshape(-1, block, block)
    shape, left, right = aggd_fit(tiles.reshape(len(tiles), -1))
    columns = [shape, (left + right) / 2.0]
    for shift in _NEIGHBOUR_SHIFTS:
        products = tiles * np.roll(tiles, shift, axis=(1, 2))
        shape, left, right = aggd_fit(products.reshape(len(tiles), -1))
        mean = (right - left) * (gamma(2.0 / shape) / gamma(1.0 / shape))
        columns += [shape, mean, left, right]
    return np.stack(columns, axis=1)


@functools.lru_cache(maxsize=1)
def _shape_table() -> np.ndarray:
    """rho(alpha) = Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a)) on the shape grid; strictly increasing."""
    from scipy.special import gamma

    reciprocal = 1.0 / _SHAPES
    table = gamma(2.0 * reciprocal) ** 2 / (gamma(reciprocal) * gamma(3.0 * reciprocal))
    assert np.all(np.diff(table) > 0)
    return table


def aggd_fit(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Moment-matching fit of an asymmetric generalised Gaussian to each row of ``samples`` (N, M).

    Returns ``(shape, left_scale, right_scale)``, each (N,): with ``sl``/``sr`` the root mean squares
    of the negative/positive samples, ``g = sl / sr``, ``r = mean|x|^2 / mean x^2`` and
    ``R = r (g^3 + 1)(g + 1) / (g^2 + 1)^2``, the shape is the grid value whose ``rho`` is nearest to
    ``R`` (the first grid value when ``R`` is NaN, as MATLAB's/numpy's argmin give it), and each scale
    is ``s * sqrt(Gamma(1/shape) / Gamma(3/shape))``.
    """
    from scipy.special import gamma

    negative, positive = samples < 0, samples > 0
    squares = samples * samples
    with np.errstate(invalid="ignore", divide="ignore"):
        left_std = np.sqrt((squares * negative).sum(axis=1) / negative.sum(axis=1))
        right_std = np.sqrt((squares * positive).sum(axis=1) / positive.sum(axis=1))
        ratio = left_std / right_std
        r_hat = np.abs(samples).mean(axis=1) ** 2 / squares.mean(axis=1)
        r_norm = r_hat * (ratio**3 + 1) * (ratio + 1) / (ratio**2 + 1) ** 2
    shape = _SHAPES[_nearest_index(_shape_table(), r_norm)]
    factor = np.sqrt(gamma(1.0 / shape) / gamma(3.0 / shape))
    return shape, left_std * factor, right_std * factor


def _nearest_index(table: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``argmin((table - v)**2)`` for each value, on an increasing table; 0 for NaN (as argmin does).

    Equal distances resolve to the lower index, as argmin's first-minimum rule does.
    """
    upper = np.clip(np.searchsorted(table, values), 1, len(table) - 1)
    lower = upper - 1
    with np.errstate(invalid="ignore"):
        take_upper = (table[upper] - values) ** 2 < (table[lower] - values) ** 2
    index = np.where(take_upper, upper, lower)
    return np.where(np.isnan(values), 0, index)


def matlab_imresize_half(image: np.ndarray) -> np.ndarray:
    """MATLAB ``imresize(image, 0.5)`` (bicubic, antialiased) of a 2-D image, in float32.

    MATLAB's cubic kernel (a = -0.5) is stretched by 1/scale to antialias (8 taps at one half), each
    output pixel's weights are normalised to sum to 1, taps that are zero for every output are dropped,
    and the image is mirrored at its edges (``symmetric``: the edge pixel repeated). Rows first, then
    columns. Each output row (then column) is one float32 matrix-vector product over its 8 input rows
    (columns), the arithmetic of BasicSR's port: the second scale's MSCN step subtracts two nearly equal
    float32 numbers in flat areas, so the last bit of the downscaled image reaches the score (another
    float32 summation order moved scikit-image's ``rocket`` by 3.6e-4, float64 moved ``astronaut`` by 3e-4).
    """
    import torch

    image = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    height, width = image.shape
    with torch.no_grad():
        # Rows: output row i = (its 8 mirrored input rows, a (8, W) slice)^T . weights_i
        weights, first, padding = _half_weights(height)
        padded = image[padding]
        rows = torch.empty((len(weights), width), dtype=torch.float32)
        for i, start in enumerate(first):
            rows[i] = padded[start : start + weights.shape[1]].t().mv(weights[i])
        # Columns: output column j = (its 8 mirrored input columns, an (H/2, 8) slice) . weights_j
        weights, first, padding = _half_weights(width)
        padded = rows[:, padding].contiguous()
        out = torch.empty((rows.shape[0], len(weights)), dtype=torch.float32)
        for j, start in enumerate(first):
            out[:, j] = padded[:, start : start + weights.shape[1]].mv(weights[j])
    return out.numpy()


def _cubic(x: np.ndarray) -> np.ndarray:
    """MATLAB's bicubic kernel (Keys, a = -0.5)."""
    ax = np.abs(x)
    return np.where(
        ax <= 1, 1.5 * ax**3 - 2.5 * ax**2 + 1, np.where(ax <= 2, -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2, 0.0)
    )


def _half_weights(length: int):
    """For halving an axis of ``length``: the weights (out, taps) as a float32 tensor, each output's
    first tap as an index into the mirrored axis, and the mirrored axis as indices into the original
    (as far beyond each end as the taps reach, the edge pixel repeated)."""
    import torch

    scale = 0.5
    out_length = math.ceil(length * scale)
    width = 4.0 / scale  # antialiasing widens the kernel when shrinking
    centres = np.arange(1, out_length + 1) / scale + 0.5 * (1 - 1 / scale)  # 1-based input coordinates
    indices = np.floor(centres - width / 2)[:, None] + np.arange(math.ceil(width) + 2)[None, :]  # 1-based
    weights = scale * _cubic((centres[:, None] - indices) * scale)
    weights /= weights.sum(axis=1, keepdims=True)
    keep = np.any(weights != 0, axis=0)
    weights, indices = weights[:, keep], indices[:, keep].astype(np.int64) - 1  # 0-based
    # Mirror no further than the taps reach: the padded row length sets the memory layout the products
    # read, and with it the float32 summation the BLAS picks.
    before, after = int(max(0, -indices.min())), int(max(0, indices.max() - (length - 1)))
    mirrored = np.concatenate(
        [np.arange(before - 1, -1, -1), np.arange(length), np.arange(length - 1, length - 1 - after, -1)]
    )
    return torch.from_numpy(weights.astype(np.float32)), indices[:, 0] + before, torch.from_numpy(mirrored)
