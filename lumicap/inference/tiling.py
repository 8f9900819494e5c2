"""Run an enhancement network on an image of any size in overlapping tiles, blended without seams.

Why tiles: activations of an LLIE network grow with the pixel count (a 24-megapixel photo needs tens of
GB through most of them), while a 512x512 tile needs a few hundred MB. The result is only the same as a
whole-image pass where the network is local: a pixel's output must depend on pixels within
``overlap // 4`` of it. Convolution-only networks with a small receptive field satisfy that exactly;
networks with global operations (IAT's global colour matrix and gamma, UHDFour's low-resolution branch,
channel attention pooled over the whole image) see each tile's statistics instead of the photo's, so their
tiled output differs from the whole-image output (slowly varying, hidden by the blending, but not zero).

Blending: along each axis a tile's weight is 0 for the first ``overlap // 4`` pixels that face a
neighbour (where the tile border's zero padding corrupts the output), rises as a raised cosine over the
middle half of the overlap, and is 1 elsewhere. Two neighbours' weights sum to 1 over a nominal overlap,
and every pixel has at least one tile with a positive weight. Tile sides that lie on the image border keep
weight 1 there, so border pixels see the same image border as a whole-image pass.

Memory: the output is finalised one row of tiles at a time into the input tensor itself (rows above the
next tile row are never read again), so beyond the image the extra memory is one strip of
``tile`` rows plus one tile's activations, whatever the image size.

``TileSettings`` (the tiling options of the commands) and ``enhance_image`` (one image: whole, or in tiles
when it is large or a whole pass runs out of memory) are here so that both batch enhancement of files
(``batch``) and video frames (``video``) use them without importing each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from lumicap.errors import LumicapError
from lumicap.limits import MAX_MEGAPIXELS_RANGE, OVERLAP_RANGE, TILE_RANGE, check_finite

DEFAULT_TILE = 512
DEFAULT_OVERLAP = 64
MIN_TILE = TILE_RANGE[0]
# Images above this many megapixels go through tiles. On a CPU a whole-image pass of a small network
# at 2 MP already needs about a GB of activations; GPUs have more room, and fall back to tiles on OOM.
DEFAULT_MAX_MEGAPIXELS = {"cpu": 2.0, "cuda": 4.0}


@dataclass(frozen=True)
class TilePlan:
    """Tile starts along each axis; every tile is ``tile_h x tile_w`` (the last one aligned to the end)."""

    ys: tuple[int, ...]
    xs: tuple[int, ...]
    tile_h: int
    tile_w: int
    overlap: int

    @property
    def count(self) -> int:
        return len(self.ys) * len(self.xs)


def tile_starts(length: int, tile: int, overlap: int) -> tuple[int, ...]:
    """Starts of tiles of size ``tile`` covering ``[0, length)``, stepping ``tile - overlap``.

    The last tile is pulled back to end exactly at ``length``, so every overlap is at least ``overlap``.
    """
    if length <= tile:
        return (0,)
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return tuple(dict.fromkeys(starts))


def plan_tiles(height: int, width: int, tile: int, overlap: int) -> TilePlan:
    if tile < 16:
        raise ValueError(f"tile size must be at least 16 pixels, got {tile}")
    if not 0 <= overlap <= tile // 2:
        raise ValueError(f"tile overlap must be between 0 and half the tile size ({tile // 2}), got {overlap}")
    return TilePlan(
        ys=tile_starts(height, tile, overlap),
        xs=tile_starts(width, tile, overlap),
        tile_h=min(tile, height),
        tile_w=min(tile, width),
        overlap=overlap,
    )


def blend_ramp(overlap: int) -> torch.Tensor:
    """Weights for the ``overlap`` pixels where a tile meets its neighbour, rising from 0 to 1.

    A zero margin of ``overlap // 4`` pixels, a raised cosine over the middle, ones after; the ramp
    ``r`` and its mirror ``1 - r`` sum to one, so two neighbours blend to an unbiased average.
    """
    margin = overlap // 4
    rise = overlap - 2 * margin
    ramp = torch.zeros(overlap)
    if rise > 0:
        t = (torch.arange(rise, dtype=torch.float64) + 0.5) / rise
        ramp[margin : margin + rise] = (0.5 - 0.5 * torch.cos(math.pi * t)).float()
    ramp[margin + rise :] = 1.0
    return ramp


def axis_weights(start: int, size: int, length: int, overlap: int) -> torch.Tensor:
    """1-D weights of a tile spanning ``[start, start + size)`` of an axis of ``length`` pixels."""
    weights = torch.ones(size)
    if overlap == 0:
        return weights
    ramp = blend_ramp(overlap)
    if start > 0:  # a neighbour before this tile
        weights[:overlap] = ramp
    if start + size < length:  # a neighbour after it
        weights[size - overlap :] = torch.minimum(weights[size - overlap :], ramp.flip(0))
    return weights


Enhancer = Callable[[torch.Tensor], torch.Tensor]


def run_whole(model: nn.Module | Enhancer, image: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """Enhance a (3,H,W) image in one pass; returns a CPU (3,H,W) tensor clamped to [0, 1]."""
    with torch.no_grad():
        out = model(image.unsqueeze(0).to(device))
    return out[0].float().clamp_(0, 1).cpu()


def run_tiled(
    model: nn.Module | Enhancer,
    image: torch.Tensor,
    tile: int = 512,
    overlap: int = 64,
    device: torch.device | str = "cpu",
    inplace: bool = False,
    on_tile: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Enhance a (3,H,W) float image in overlapping ``tile x tile`` tiles blended with raised-cosine weights.

    ``image`` stays on the CPU; each tile goes to ``device`` alone. With ``inplace=True`` the result
    is written into ``image`` (saves one image-sized buffer); otherwise ``image`` is left untouched.
    ``on_tile`` is called after each tile (progress reporting). Returns the (3,H,W) result in [0, 1].
    """
    if image.dim() != 3:
        raise ValueError(f"expected a (C,H,W) image, got shape {tuple(image.shape)}")
    channels, height, width = image.shape
    plan = plan_tiles(height, width, tile, overlap)
    out = image if inplace else image.clone()
    # Rows [base, base + acc.shape[1]) still collecting contributions from tiles.
    acc = torch.zeros(channels, 0, width)
    acc_w = torch.zeros(0, width)
    base = 0
    column_weights = [axis_weights(x, plan.tile_w, width, overlap) for x in plan.xs]
    with torch.no_grad():
        for row, y in enumerate(plan.ys):
            end = y + plan.tile_h
            grow = end - (base + acc.shape[1])
            if grow > 0:
                acc = torch.cat([acc, torch.zeros(channels, grow, width)], dim=1)
                acc_w = torch.cat([acc_w, torch.zeros(grow, width)], dim=0)
            row_weights = axis_weights(y, plan.tile_h, height, overlap)
            for x, col_weights in zip(plan.xs, column_weights):
                patch = out[:, y:end, x : x + plan.tile_w].unsqueeze(0).to(device)
                result = model(patch)[0].float().cpu()
                weight = row_weights[:, None] * col_weights[None, :]
                acc[:, y - base : end - base, x : x + plan.tile_w] += result * weight
                acc_w[y - base : end - base, x : x + plan.tile_w] += weight
                if on_tile is not None:
                    on_tile()
            # Later tiles start at or below the next tile row: everything above it is final.
            next_start = plan.ys[row + 1] if row + 1 < len(plan.ys) else height
            done = next_start - base
            out[:, base:next_start] = (acc[:, :done] / acc_w[:done]).clamp_(0, 1)
            acc = acc[:, done:].clone()
            acc_w = acc_w[done:].clone()
            base = next_start
    return out


@dataclass(frozen=True)
class TileSettings:
    """How to split images: ``tile`` forces tiling at that size; otherwise images above
    ``max_megapixels`` are tiled at ``DEFAULT_TILE`` (None: the device's default budget).

    Args:
        tile: tile side in pixels (``TILE_RANGE`` of ``lumicap.limits``, and at least twice ``overlap``), or None
            for automatic tiles.
        overlap: pixels two neighbouring tiles share, blended with a raised cosine (``OVERLAP_RANGE``).
        max_megapixels: images above this size are tiled (``MAX_MEGAPIXELS_RANGE``: above 0, finite); None: 2 MP
            on a CPU, 4 MP on CUDA.

    Values outside these ranges (NaN and infinity included: a NaN budget would compare false with every photo and
    quietly switch tiling off) are refused here in one line with the command-line option's name (``lumicap
    enhance`` and ``lumicap serve`` build their settings through this class, so both say the same thing).
    """

    tile: int | None = None
    overlap: int = DEFAULT_OVERLAP
    max_megapixels: float | None = None

    def __post_init__(self) -> None:
        def whole(value, option: str) -> None:
            if isinstance(value, bool) or not isinstance(value, int):
                raise LumicapError(f"{option} must be a whole number, got {value!r}")

        if self.tile is not None:
            whole(self.tile, "--tile")
        whole(self.overlap, "--tile-overlap")
        if self.tile is not None and self.overlap > self.tile // 2:
            raise LumicapError(f"--tile-overlap {self.overlap} is more than half of --tile {self.tile}")
        if self.tile is not None and self.tile < MIN_TILE:
            raise LumicapError(f"--tile {self.tile} is too small (at least {MIN_TILE})")
        if self.tile is not None and self.tile > TILE_RANGE[1]:
            raise LumicapError(f"--tile {self.tile} is too large (at most {TILE_RANGE[1]})")
        if self.overlap < 0:
            raise LumicapError("--tile-overlap must not be negative")
        if self.overlap > OVERLAP_RANGE[1]:
            raise LumicapError(f"--tile-overlap {self.overlap} is too large (at most {OVERLAP_RANGE[1]})")
        value = self.max_megapixels
        if value is not None:
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value <= 0:
                raise LumicapError("--max-megapixels must be positive")
            try:  # NaN compares false with everything: only an explicit finiteness check catches it
                check_finite(value, *MAX_MEGAPIXELS_RANGE, low_open=True, what="--max-megapixels")
            except ValueError as exc:
                raise LumicapError(str(exc)) from None

    def budget(self, device: torch.device) -> float:
        if self.max_megapixels is not None:
            return self.max_megapixels
        return DEFAULT_MAX_MEGAPIXELS.get(device.type, DEFAULT_MAX_MEGAPIXELS["cpu"])

    def tile_for(self, height: int, width: int, device: torch.device) -> int | None:
        """Tile size to use for an image, or None for a whole-image pass.

        Automatic tiles are ``DEFAULT_TILE``, or twice the overlap when that is larger (a tile must be at
        least twice its overlap), so any ``--tile-overlap`` works with ``--max-megapixels``.
        """
        if self.tile is not None:
            return self.tile
        if height * width > self.budget(device) * 1e6:
            return self.automatic_tile
        return None

    @property
    def automatic_tile(self) -> int:
        return max(DEFAULT_TILE, 2 * self.overlap)


def planned_tile(model, tiles: TileSettings, height: int, width: int, device: torch.device) -> int | None:
    """The tile size ``enhance_image`` will use for this photo and model, or None for one whole pass."""
    if tiles.tile is None and tiles.max_megapixels is None and getattr(model, "handles_large_images", False):
        return None  # the model bounds its own work on big photos (lumicap.inference.fullres): no seams
    return tiles.tile_for(height, width, device)


def enhance_image(
    model: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    device: torch.device,
    tiles: TileSettings = TileSettings(),
    inplace: bool = False,
    on_tile: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Enhance one (3,H,W) image, whole or in tiles per ``tiles``; returns a CPU tensor in [0, 1].

    A whole-image pass that runs out of memory (GPU or CPU allocator) is retried in tiles; tiles that
    still do not fit raise a one-line ``LumicapError`` suggesting a smaller ``--tile``.
    """
    height, width = image.shape[-2:]
    tile = planned_tile(model, tiles, height, width, device)
    if tile is None:
        try:
            return run_whole(model, image, device)
        except (RuntimeError, MemoryError) as exc:
            if not _is_out_of_memory(exc):
                raise
            if device.type == "cuda":
                torch.cuda.empty_cache()
            tile = tiles.automatic_tile
    try:
        return run_tiled(
            model, image, tile=tile, overlap=tiles.overlap, device=device, inplace=inplace, on_tile=on_tile
        )
    except (RuntimeError, MemoryError) as exc:
        if not _is_out_of_memory(exc):
            raise
        if device.type == "cuda":
            torch.cuda.empty_cache()
        smaller = max(64, tile // 2)
        raise LumicapError(f"out of memory on {device} with {tile}px tiles; try --tile {smaller}") from None


def _is_out_of_memory(exc: BaseException) -> bool:
    # torch.cuda.OutOfMemoryError subclasses RuntimeError; the CPU allocator raises a plain RuntimeError.
    if isinstance(exc, MemoryError) or isinstance(exc, getattr(torch.cuda, "OutOfMemoryError", ())):
        return True
    text = str(exc)
    return "out of memory" in text or "can't allocate memory" in text
