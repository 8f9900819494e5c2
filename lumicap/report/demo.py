"""Built-in demo inputs: dark versions of sample photographs that scikit-image ships, made offline.

The photographs come from ``skimage.data`` (installed with the package, no download). Each is darkened
with the usual synthetic low-light model of LLIE papers: a random gamma and exposure scale in the sRGB
domain, ``dark = beta * (alpha * x) ** gamma`` (the gamma-and-scale form of Lv et al.'s synthetic
low-light data), followed by Poisson-Gaussian sensor noise (Foi et al. 2008): a Poisson count with gain
``shot`` (variance ``shot * dark``) plus Gaussian read noise of standard deviation ``read``, clipped and
quantised to 8 bits.
Every photo draws its parameters from its own generator seeded by ``(seed, index)``, so the set is the
same on every run and adding a photo does not change the others.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lumicap.errors import LumicapError

# (file stem, skimage.data loader): colour photographs bundled inside the scikit-image wheel.
DEMO_PHOTOS: tuple[tuple[str, str], ...] = (
    ("astronaut", "astronaut"),
    ("chelsea", "chelsea"),
    ("coffee", "coffee"),
    ("rocket", "rocket"),
    ("motorcycle", "stereo_motorcycle"),
)

# Ranges of the darkening model, ours: chosen so that the dark photos have the mean brightness of LOL's
# low-light shots (0.03-0.10 for references around 0.4; LOL eval15 low: 0.026-0.098), which is what a
# model trained on LOL expects, with visible grain in the shadows.
ALPHA_RANGE = (0.9, 1.0)
BETA_RANGE = (0.15, 0.3)
GAMMA_RANGE = (1.4, 2.2)
SHOT_RANGE = (0.0005, 0.002)
READ_RANGE = (0.002, 0.005)


@dataclass(frozen=True)
class LowLightParams:
    alpha: float
    beta: float
    gamma: float
    shot: float  # Poisson gain: a pixel of value v gets variance shot * v
    read: float  # standard deviation of the Gaussian read noise

    @classmethod
    def draw(cls, rng: np.random.Generator) -> "LowLightParams":
        return cls(
            alpha=float(rng.uniform(*ALPHA_RANGE)),
            beta=float(rng.uniform(*BETA_RANGE)),
            gamma=float(rng.uniform(*GAMMA_RANGE)),
            shot=float(rng.uniform(*SHOT_RANGE)),
            read=float(rng.uniform(*READ_RANGE)),
        )


def darken(image: np.ndarray, params: LowLightParams, rng: np.random.Generator) -> np.ndarray:
    """Apply the low-light model to an (H, W, 3) float image in [0, 1]; returns float in [0, 1].

    ``dark = beta * (alpha * x) ** gamma``; ``noisy = shot * Poisson(dark / shot) + N(0, read**2)``.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {image.shape}")
    dark = params.beta * np.power(params.alpha * np.clip(image, 0.0, 1.0), params.gamma)
    noisy = params.shot * rng.poisson(dark / params.shot) + rng.normal(0.0, params.read, size=dark.shape)
    return np.clip(noisy, 0.0, 1.0)


def demo_photo(loader: str) -> np.ndarray:
    """One bundled photograph as (H, W, 3) uint8."""
    try:
        from skimage import data
    except ImportError:
        raise LumicapError("the demo needs scikit-image (pip install 'scikit-image>=0.21')") from None
    image = getattr(data, loader)()
    if isinstance(image, tuple):  # stereo_motorcycle returns (left, right, disparity)
        image = image[0]
    return np.ascontiguousarray(image[..., :3])


@dataclass(frozen=True)
class DemoSet:
    low_dir: Path
    reference_dir: Path
    names: tuple[str, ...]
    params: dict[str, dict]


def write_demo_inputs(out_dir: str | os.PathLike, seed: int = 0, names: tuple[str, ...] | None = None) -> DemoSet:
    """Write ``out_dir/low/<name>.png`` (dark, noisy) and ``out_dir/reference/<name>.png`` (the photos).

    ``names`` picks some of ``DEMO_PHOTOS`` (default all); a photo's dark version does not depend on
    which others are written. Existing files are left as they are when identical to what would be written; a
    different file with the same name is refused (the folder holds someone else's data).
    """
    import torch

    from lumicap.data.io import write_image

    out_dir = Path(out_dir)
    low_dir, reference_dir = out_dir / "low", out_dir / "reference"
    known = [name for name, _ in DEMO_PHOTOS]
    unknown = sorted(set(names or ()) - set(known))
    if unknown:
        raise LumicapError(f"unknown demo photo '{unknown[0]}'; known: {', '.join(known)}")
    written, params = [], {}
    for index, (name, loader) in enumerate(DEMO_PHOTOS):
        if names is not None and name not in names:
            continue
        photo = demo_photo(loader)
        rng = np.random.default_rng([seed, index])
        setting = LowLightParams.draw(rng)
        low = darken(photo.astype(np.float64) / 255.0, setting, rng)
        low_u8 = np.round(low * 255.0).astype(np.uint8)
        for folder, array in ((reference_dir, photo), (low_dir, low_u8)):
            target = folder / f"{name}.png"
            if target.exists():
                if not _same_pixels(target, array):
                    raise LumicapError(f"{target}: exists and is not the demo image; choose an empty --out folder")
                continue
            write_image(target, torch.from_numpy(array).permute(2, 0, 1).float() / 255.0, bit_depth=8)
        written.append(name)
        params[name] = asdict(setting)
    return DemoSet(low_dir, reference_dir, tuple(written), params)


def _same_pixels(path: Path, array: np.ndarray) -> bool:
    from lumicap.data.io import read_image_array

    try:
        existing = read_image_array(path)
    except LumicapError:
        return False
    return existing.shape == array.shape and bool(np.array_equal(existing, array))
