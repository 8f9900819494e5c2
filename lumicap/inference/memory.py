"""How much memory enhancing one photo takes, for the path it actually takes, and what to do when it will not fit.

A 12000x12000 photo with ``--max-megapixels 200`` was announced as "needs about 2.6 GB" (a flat 18 bytes
per pixel) and then grew to 21.6 GB until the kernel killed it: the whole-image pass of a network holds
hundreds of bytes per pixel of activations, and reading, transforming and writing the photo hold several
full-size copies. The estimate here follows the path ``enhance_file`` takes, with figures measured on the
CPU by ``benchmarks/bench_memory_estimate.py`` (peak RSS growth of one photo, read to written; results in
``benchmarks/results/memory_estimate_cpu_*.md``):

- ``transform``: the full-resolution transform of a network that predicts one (IAT, the default model:
  ``lumicap.inference.fullres``): a handful of full-size float maps, ``PATH_BYTES_PER_PIXEL["transform"]``.
- ``tiles``: the photo tiled in place; the photo and its writing per pixel, plus two strips of tile rows
  (the blending accumulators) and one tile's activations.
- ``whole``: one pass of the network over the whole photo: the photo and its writing, plus the network's
  activations, ``NETWORK_BYTES_PER_PIXEL[model]`` (a network not in the table counts as the largest there).

``plan_memory`` compares the estimate with the memory this machine has available (``MemAvailable`` and the
cgroup limit): a whole-image or transform pass that would not fit is tiled instead (with a note); a photo that
does not fit even in tiles is refused in one line before it is read. On CUDA the network's activations live on
the GPU (whose own out-of-memory falls back to tiles): only the host's share is counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from lumicap.errors import LumicapError
from lumicap.inference.tiling import planned_tile

# Peak bytes per pixel of one photo beyond the loaded program, by path (8-bit input, CPU), measured end to end
# (read, enhance, write) by benchmarks/bench_memory_estimate.py. Adjust here when a path changes (e.g. more
# full-size maps in fullres.py) and re-measure.
PATH_BYTES_PER_PIXEL = {
    # The float photo (12) while the network runs; its activations come from NETWORK_BYTES_PER_PIXEL.
    "whole": 12.0,
    # The float photo, the upsampled gain and offset maps, the colour-transformed photo and its temporaries
    # (lumicap.inference.fullres); the network's own pass on its small copy is counted apart (see below).
    "transform": 52.0,
    # The float photo, tiled in place (12), then written: the result, its 8-bit levels and the encoder's copy.
    "tiles": 20.0,
}
HIGHLIGHT_BYTES_PER_PIXEL = 12.0  # highlight protection (inference/highlights.py): its weight map and temporaries
KEPT_INPUT_BYTES_PER_PIXEL = 12.0  # the input kept beside the result (serve, --caption): one more float copy
SIXTEEN_BIT_EXTRA_BYTES_PER_PIXEL = 18.0  # decoding a 16-bit PNG (pypng rows, then one array)
STRIP_BYTES_PER_PIXEL = 32.0  # tiled: the blending accumulators of a strip of tile rows (16), twice while it grows
# Activations of one whole-image, no-grad pass per pixel (the output included), measured at 512x512 and
# 1024x1024 with benchmarks/bench_memory_estimate.py --calibrate (the larger, rounded up; LLFormer and MIRNet
# at 256x256 only: their passes take minutes on two cores).
NETWORK_BYTES_PER_PIXEL = {
    "iat": 400.0,
    "retinexformer": 2900.0,
    "rctnet": 780.0,
    "retinexnet": 2350.0,
    "snr_aware": 2700.0,
    "uhdfour": 3200.0,
    "llformer": 3200.0,
    "mirnet": 3200.0,
}
FIXED_BYTES = 150e6  # allocator slack and per-call buffers, whatever the photo
SAFETY = 0.9  # act when the estimate passes this share of the available memory (others need some too)


@dataclass(frozen=True)
class MemoryPlan:
    """What enhancing one photo will take: its ``tile`` (None: one pass), the ``path`` name and the estimate."""

    tile: int | None
    path: str  # "transform" | "tiles" | "whole"
    bytes: float
    available: float | None  # what the machine had when planned (None: unknown)
    note: str | None = None  # said to the user before the photo is read (a changed plan)

    @property
    def gigabytes(self) -> float:
        return self.bytes / 1e9


def network_bytes_per_pixel(model) -> float:
    name = str(getattr(model, "name", "")).lower().replace("-", "_")
    return NETWORK_BYTES_PER_PIXEL.get(name, max(NETWORK_BYTES_PER_PIXEL.values()))


def estimate_bytes(model, path: str, height: int, width: int, device: torch.device, *, tile: int | None = None,
                   bits: int = 8, keep_input: bool = False) -> float:
    """Peak memory (bytes, host) of enhancing a ``height x width`` photo along ``path``.

    whole:     photo + network activations over the photo
    transform: the larger of (photo + the network's pass over its small copy) and the full-size transform
    tiles:     photo and its writing + a strip of blending accumulators + one tile's activations
    """
    pixels = height * width
    network = network_bytes_per_pixel(model) if device.type == "cpu" else 0.0  # on CUDA they are the GPU's
    extra = (KEPT_INPUT_BYTES_PER_PIXEL if keep_input else 0.0) + (
        SIXTEEN_BIT_EXTRA_BYTES_PER_PIXEL if bits == 16 else 0.0
    )
    if _protects_highlights(model) and path != "tiles":  # tiles: per tile only, a strip's worth
        extra += HIGHLIGHT_BYTES_PER_PIXEL
    photo = (PATH_BYTES_PER_PIXEL[path] + extra) * pixels
    if path == "whole":
        return FIXED_BYTES + photo + network * pixels
    if path == "transform":
        small = min(pixels, _network_megapixels(model) * 1e6)
        return FIXED_BYTES + max(photo, (PATH_BYTES_PER_PIXEL["whole"] + extra) * pixels + network * small)
    tile_h, tile_w = min(tile or height, height), min(tile or width, width)
    return FIXED_BYTES + photo + STRIP_BYTES_PER_PIXEL * tile_h * width + network * tile_h * tile_w


def meminfo_bytes(key: str) -> float | None:
    """One ``/proc/meminfo`` entry (e.g. ``MemAvailable``, ``MemTotal``) in bytes; None where it cannot be read."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key + ":"):
                return float(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def available_memory() -> float | None:
    """Bytes this process can still take: the least of ``MemAvailable`` and the cgroup's limit headroom
    (None where neither can be read: no check then)."""
    available = meminfo_bytes("MemAvailable")
    candidates = [] if available is None else [available]
    for limit_file, usage_file in (("memory.max", "memory.current"),  # cgroup v2
                                   ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):  # v1
        try:
            limit = Path("/sys/fs/cgroup", limit_file).read_text().strip()
            usage = Path("/sys/fs/cgroup", usage_file).read_text().strip()
        except OSError:
            continue
        if limit.isdigit() and usage.isdigit() and int(limit) < 1 << 60:
            candidates.append(float(int(limit) - int(usage)))
    return min(candidates) if candidates else None


def plan_memory(model, tiles, height: int, width: int, device: torch.device, *, bits: int = 8,
                keep_input: bool = False, name: str = "photo") -> MemoryPlan:
    """The pass ``enhance_file`` makes for this photo, tiled instead when a whole-image or transform pass would
    not fit in the available memory; ``LumicapError`` when not even tiles fit."""
    tile = planned_tile(model, tiles, height, width, device)
    if tile is not None:
        path = "tiles"
    elif _transform_applies(model, height, width):
        path = "transform"
    else:
        path = "whole"
    options = dict(bits=bits, keep_input=keep_input)
    need = estimate_bytes(model, path, height, width, device, tile=tile, **options)
    available = available_memory()
    if available is None or need <= SAFETY * available:
        return MemoryPlan(tile, path, need, available)
    # Smaller tiles hold less: the automatic size first, then halves down to twice the overlap.
    sizes = [
        size for size in (tiles.automatic_tile, 256, 128) if size >= 2 * tiles.overlap and (tile is None or size < tile)
    ]
    for size in sizes:
        tiled = estimate_bytes(model, "tiles", height, width, device, tile=size, **options)
        if tiled < need and tiled <= SAFETY * available:
            note = (
                f"a {_describe(path)} of {name} ({width}x{height}) would need about {need / 1e9:.1f} GB of memory and "
                f"{available / 1e9:.1f} GB is available: it runs in {size}-px tiles instead"
            )
            return MemoryPlan(size, "tiles", tiled, available, note)
    smallest = min(
        [need] + [estimate_bytes(model, "tiles", height, width, device, tile=size, **options) for size in sizes]
    )
    raise LumicapError(
        f"{name}: {width}x{height} ({width * height / 1e6:.1f} MP) needs about {smallest / 1e9:.1f} GB of memory "
        f"however it is split, and {available / 1e9:.1f} GB is available: not enhanced (free memory, or use a "
        "smaller copy)"
    )


def _protects_highlights(model) -> bool:
    from lumicap.inference.highlights import HighlightProtection

    return isinstance(getattr(model, "module", model), HighlightProtection)


def _network_megapixels(model) -> float:
    return float(getattr(getattr(model, "module", model), "network_megapixels", 0.0) or 0.0)


def _transform_applies(model, height: int, width: int) -> bool:
    """True when the model's full-resolution transform (not its network) does the full-size work."""
    module = getattr(model, "module", model)
    limit = _network_megapixels(model)
    return bool(getattr(module, "handles_large_images", False)) and limit > 0 and height * width > limit * 1e6


def _describe(path: str) -> str:
    return {"whole": "whole-image pass", "transform": "full-resolution transform", "tiles": "tiled pass"}[path]


def describe(plan: MemoryPlan) -> str:
    """``about 2.6 GB of memory (full-resolution transform)``: for the note before a big photo."""
    tiles = "" if plan.tile is None else f", {plan.tile}-px tiles"
    return f"about {plan.gigabytes:.1f} GB of memory ({_describe(plan.path)}{tiles})"

