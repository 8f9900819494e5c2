"""Enhance many photo files: find the inputs, pick whole-image or tiled passes, write outputs, summarise.

Outputs keep the input's name (and, for a folder input, its sub-folder path) with the chosen format's
suffix. An existing output is never replaced unless ``overwrite``; an output that would replace its own
input is refused. A file that cannot be read or written is reported on one line and skipped; the rest go on.
"""

from __future__ import annotations

import glob
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from lumicap.data.io import DEFAULT_JPEG_QUALITY
from lumicap.errors import LumicapError
from lumicap.inference.tiling import plan_tiles, run_tiled, run_whole

OUTPUT_SUFFIXES = {"png": ".png", "jpg": ".jpg", "tiff": ".tiff"}
DEFAULT_TILE = 512
DEFAULT_OVERLAP = 64
# Images above this many megapixels go through tiles. On a CPU a whole-image pass of a small network
# at 2 MP already needs about a GB of activations; GPUs have more room, and fall back to tiles on OOM.
DEFAULT_MAX_MEGAPIXELS = {"cpu": 2.0, "cuda": 4.0}
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class InputImage:
    path: Path
    relative: Path  # where its output goes under the output folder (suffix replaced)


@dataclass
class EnhanceSummary:
    enhanced: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # outputs that existed (no --overwrite)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0

    def line(self) -> str:
        done = len(self.enhanced)
        per_image = f" ({self.seconds / done:.2f} s/image)" if done else ""
        text = f"enhanced {done} image{'s' if done != 1 else ''} in {self.seconds:.1f} s{per_image}"
        if self.skipped:
            text += f"; skipped {len(self.skipped)} whose output exists (--overwrite redoes them)"
        text += f"; {len(self.failed)} failed"
        return text


@dataclass(frozen=True)
class TileSettings:
    """How to split images: ``tile`` forces tiling at that size; otherwise images above
    ``max_megapixels`` are tiled at ``DEFAULT_TILE`` (None: the device's default budget)."""

    tile: int | None = None
    overlap: int = DEFAULT_OVERLAP
    max_megapixels: float | None = None

    def budget(self, device: torch.device) -> float:
        if self.max_megapixels is not None:
            return self.max_megapixels
        return DEFAULT_MAX_MEGAPIXELS.get(device.type, DEFAULT_MAX_MEGAPIXELS["cpu"])

    def tile_for(self, height: int, width: int, device: torch.device) -> int | None:
        """Tile size to use for an image, or None for a whole-image pass."""
        if self.tile is not None:
            return self.tile
        if height * width > self.budget(device) * 1e6:
            return DEFAULT_TILE
        return None


# ------------------------------------------------------------------------------------------------ inputs


def collect_inputs(
    inputs: Sequence[str | os.PathLike], recursive: bool = False, exclude: str | os.PathLike | None = None
) -> list[InputImage]:
    """Expand files, folders (their image files; sub-folders too with ``recursive``) and glob patterns.

    Files under ``exclude`` (the output folder) are left out of folder and glob expansions, so a run
    whose output folder sits inside its input folder never enhances its own earlier outputs.
    An argument that matches nothing is an error (a typo should not silently enhance nothing).
    """
    from lumicap.data.io import is_image_file

    excluded = Path(exclude).resolve() if exclude is not None else None

    def wanted(candidate: Path) -> bool:
        if not (candidate.is_file() and is_image_file(candidate)):
            return False
        return excluded is None or not candidate.resolve().is_relative_to(excluded)

    found: dict[Path, InputImage] = {}
    for item in inputs:
        text = os.fspath(item)
        path = Path(text).expanduser()
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            members = sorted(p for p in path.glob(pattern) if wanted(p))
            members = [p for p in members if not any(part.startswith(".") for part in p.relative_to(path).parts)]
            for member in members:
                found.setdefault(member.resolve(), InputImage(member, member.relative_to(path)))
        elif path.is_file():
            found.setdefault(path.resolve(), InputImage(path, Path(path.name)))
        elif _GLOB_CHARS & set(text):
            matches = sorted(glob.glob(os.path.expanduser(text), recursive=recursive))
            files = [Path(m) for m in matches if wanted(Path(m))]
            if not files:
                raise LumicapError(f"{text}: pattern matches no image files")
            for member in files:
                found.setdefault(member.resolve(), InputImage(member, Path(member.name)))
        else:
            raise LumicapError(f"{text}: no such file or folder")
    return list(found.values())


def output_path(item: InputImage, out_dir: Path, fmt: str) -> Path:
    return out_dir / item.relative.with_suffix(OUTPUT_SUFFIXES[fmt])


# ----------------------------------------------------------------------------------------------- running


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
            tile = DEFAULT_TILE
    try:
        return run_tiled(model, image, tile=tile, overlap=tiles.overlap, device=device, inplace=inplace, on_tile=on_tile)
    except (RuntimeError, MemoryError) as exc:
        if not _is_out_of_memory(exc):
            raise
        if device.type == "cuda":
            torch.cuda.empty_cache()
        smaller = max(64, tile // 2)
        raise LumicapError(f"out of memory on {device} with {tile}px tiles; try --tile {smaller}") from None


def enhance_files(
    inputs: Sequence[InputImage],
    out_dir: str | os.PathLike,
    model: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device,
    fmt: str = "png",
    overwrite: bool = False,
    tiles: TileSettings = TileSettings(),
    progress: bool = True,
    on_result: Callable[[InputImage, Path, torch.Tensor, torch.Tensor | None], None] | None = None,
    report: Callable[[str], None] | None = None,
    quality: int = DEFAULT_JPEG_QUALITY,
) -> EnhanceSummary:
    """Enhance each input into ``out_dir``; failures are reported via ``report`` (one line each) and skipped.

    ``on_result(item, output_path, enhanced, low)`` is called after each written image (captions use
    it); ``low`` is None when the input was overwritten in place to save memory. ``quality``: JPEG only.
    """
    from tqdm import tqdm

    if fmt not in OUTPUT_SUFFIXES:
        raise LumicapError(f"unknown output format '{fmt}'; choose one of {', '.join(OUTPUT_SUFFIXES)}")
    out_dir = Path(out_dir)
    summary = EnhanceSummary()
    report = report or (lambda line: tqdm.write(line, file=sys.stderr))
    claimed: dict[Path, Path] = {}
    start = time.perf_counter()
    bar = tqdm(inputs, desc="enhance", unit="img", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    for item in bar:
        target = output_path(item, out_dir, fmt)
        key = target.resolve()
        if key == item.path.resolve():
            summary.failed.append((item.path, "output would replace the input itself"))
            report(f"lumicap: error: {item.path}: output would replace the input itself; choose another --out")
            continue
        if key in claimed:
            message = f"same output name as {claimed[key]} ({target.name})"
            summary.failed.append((item.path, message))
            report(f"lumicap: error: {item.path}: {message}; skipped")
            continue
        claimed[key] = item.path
        if target.exists() and not overwrite:
            summary.skipped.append(item.path)
            continue
        if progress:
            def on_tile(done, total, name=item.path.name):
                bar.set_postfix_str(f"{name}: tile {done}/{total}")
        else:
            on_tile = None
        try:
            result = enhance_file(item.path, target, model, device, fmt, tiles, quality=quality,
                                  keep_input=on_result is not None, on_tile=on_tile)
        except (LumicapError, OSError) as exc:
            message = _one_line(exc)
            summary.failed.append((item.path, message))
            name = str(item.path)
            report(f"lumicap: error: {message if name in message else f'{name}: {message}'}")
            continue
        summary.enhanced.append(target)
        if on_result is not None:
            on_result(item, target, result.enhanced, result.low)
        del result
    bar.close()
    summary.seconds = time.perf_counter() - start
    return summary


@dataclass
class EnhancedFile:
    """What ``enhance_file`` wrote and computed for one photo."""

    path: Path
    enhanced: torch.Tensor  # (3,H,W) in [0,1], before quantisation to the file's levels
    low: torch.Tensor | None  # the input as read, when ``keep_input``
    bit_depth: int  # of the written file
    tiles: int  # tiles planned (0: one whole-image pass)


def enhance_file(
    source: str | os.PathLike,
    target: str | os.PathLike,
    model: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device,
    fmt: str = "png",
    tiles: TileSettings = TileSettings(),
    *,
    quality: int = DEFAULT_JPEG_QUALITY,
    keep_input: bool = False,
    on_tile: Callable[[int, int], None] | None = None,
) -> EnhancedFile:
    """Read one photo, enhance it whole or in tiles, write ``target``: the single-file step of
    ``lumicap enhance``, shared with ``lumicap serve`` so that both write the same bytes.

    16-bit inputs give 16-bit PNGs; ``on_tile(done, total)`` follows a tiled pass. ``target`` is written
    as given (the caller decides about existing files). Unreadable input: ``LumicapError``; unwritable
    output: ``OSError``.
    """
    from lumicap.data.io import write_image

    image, in_bits = read_float_image(Path(source))
    bits = 16 if fmt == "png" and in_bits == 16 else 8
    height, width = image.shape[-2:]
    tile = planned_tile(model, tiles, height, width, device)
    total = plan_tiles(height, width, tile, tiles.overlap).count if tile is not None else 0
    done = [0]

    def count_tile():
        done[0] += 1
        on_tile(done[0], total)

    enhanced = enhance_image(model, image, device, tiles, inplace=not keep_input,
                             on_tile=count_tile if on_tile is not None else None)
    written = write_image(target, enhanced, bit_depth=bits, quality=quality)
    return EnhancedFile(written, enhanced, image if keep_input else None, bits, total)


def read_float_image(path: Path) -> tuple[torch.Tensor, int]:
    """(3,H,W) float32 in [0,1] and the file's bit depth (8 or 16), with one float allocation.

    ``read_image`` converts through an intermediate float copy; for a 24-megapixel photo that is
    another 288 MB at the peak, which matters for the memory bound of a big-photo run.
    """
    from lumicap.data.io import read_image_array

    array = read_image_array(path)
    bits = 16 if array.dtype.itemsize == 2 else 8
    image = torch.empty(array.shape[2], array.shape[0], array.shape[1], dtype=torch.float32)
    image.copy_(torch.from_numpy(array).permute(2, 0, 1))
    del array
    return image.div_(65535.0 if bits == 16 else 255.0), bits


def _is_out_of_memory(exc: BaseException) -> bool:
    # torch.cuda.OutOfMemoryError subclasses RuntimeError; the CPU allocator raises a plain RuntimeError.
    if isinstance(exc, MemoryError) or isinstance(exc, getattr(torch.cuda, "OutOfMemoryError", ())):
        return True
    text = str(exc)
    return "out of memory" in text or "can't allocate memory" in text


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
