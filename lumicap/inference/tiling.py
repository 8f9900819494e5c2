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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn


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


def planned_tile(model, tiles, height: int, width: int, device: torch.device) -> int | None:
    """The tile size ``enhance_image`` will use for this photo, model and ``TileSettings``, or None for one whole
    pass (here, not in ``batch``, so that the memory plan can ask it without an import circle)."""
    if tiles.tile is None and tiles.max_megapixels is None and getattr(model, "handles_large_images", False):
        return None  # the model bounds its own work on big photos (lumicap.inference.fullres): no seams
    return tiles.tile_for(height, width, device)
