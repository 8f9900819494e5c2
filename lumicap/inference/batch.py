"""Enhance many photo files: find the inputs, pick whole-image or tiled passes, write outputs, summarise.

Outputs keep the input's name (and, for a folder input, its sub-folder path) with the chosen format's
suffix. Every output path is planned before anything is written: when one of them is any input of the
run (``a.png`` and ``a.jpg`` with ``--format jpg``), the whole batch is refused, ``overwrite`` or not.
An existing output is never replaced unless ``overwrite``. A file that cannot be read or written is
reported on one line and skipped; the rest go on.
"""

from __future__ import annotations

import contextlib
import glob
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from lumicap.data.io import DEFAULT_JPEG_QUALITY
from lumicap.errors import LumicapError, one_line, shown
from lumicap.inference.tiling import plan_tiles, run_tiled, run_whole

OUTPUT_SUFFIXES = {"png": ".png", "jpg": ".jpg", "tiff": ".tiff", "webp": ".webp", "heic": ".heic"}
DEFAULT_TILE = 512
DEFAULT_OVERLAP = 64
MIN_TILE = 16
# Images above this many megapixels go through tiles. On a CPU a whole-image pass of a small network
# at 2 MP already needs about a GB of activations; GPUs have more room, and fall back to tiles on OOM.
DEFAULT_MAX_MEGAPIXELS = {"cpu": 2.0, "cuda": 4.0}
_GLOB_CHARS = set("*?[")
# Above this many pixels a photo gets a note before it is read: decoding alone then needs gigabytes.
LARGE_IMAGE_PIXELS = 50_000_000
# Peak memory per pixel of one photo: the decoded 8-bit array (3 B, twice while Pillow converts it) and
# the float32 image the tiles are written back into (12 B).
BYTES_PER_PIXEL = 18


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
    stale_parts_removed: int = 0  # temporary files of an earlier, killed run
    unreadable: list[Path] = field(default_factory=list)  # pictures in formats lumicap does not read (not tried)

    def line(self) -> str:
        done = len(self.enhanced)
        per_image = f" ({self.seconds / done:.2f} s/image)" if done else ""
        text = f"enhanced {done} image{'s' if done != 1 else ''} in {self.seconds:.1f} s{per_image}"
        if self.skipped:
            text += f"; skipped {len(self.skipped)} whose output exists (--overwrite redoes them)"
        text += f"; {len(self.failed)} failed"
        if self.stale_parts_removed:
            text += f"; removed {self.stale_parts_removed} partial file(s) an interrupted run left"
        if self.unreadable:
            text += f"; not read: {unreadable_note(self.unreadable)}"
        return text


def unreadable_note(paths: Sequence[Path], named: int = 5) -> str:
    """'3 pictures in formats lumicap does not read (.dng, .gif): a.gif, b.dng, c.dng'."""
    kinds = sorted({p.suffix.lower() for p in paths})
    names = ", ".join(shown(p) for p in paths[:named]) + (f", +{len(paths) - named} more" if len(paths) > named else "")
    count = len(paths)
    return f"{count} picture{'s' if count != 1 else ''} in formats lumicap does not read ({', '.join(kinds)}): {names}"


@dataclass(frozen=True)
class TileSettings:
    """How to split images: ``tile`` forces tiling at that size; otherwise images above
    ``max_megapixels`` are tiled at ``DEFAULT_TILE`` (None: the device's default budget).

    Args:
        tile: tile side in pixels (at least ``MIN_TILE`` and twice ``overlap``), or None for automatic tiles.
        overlap: pixels two neighbouring tiles share, blended with a raised cosine (>= 0).
        max_megapixels: images above this size are tiled (> 0); None: 2 MP on a CPU, 4 MP on CUDA.

    Values outside these ranges are refused here with the command-line option's name (``lumicap enhance``
    and ``lumicap serve`` build their settings through this class, so both say the same thing).
    """

    tile: int | None = None
    overlap: int = DEFAULT_OVERLAP
    max_megapixels: float | None = None

    def __post_init__(self) -> None:
        if self.tile is not None and self.overlap > self.tile // 2:
            raise LumicapError(f"--tile-overlap {self.overlap} is more than half of --tile {self.tile}")
        if self.tile is not None and self.tile < MIN_TILE:
            raise LumicapError(f"--tile {self.tile} is too small (at least {MIN_TILE})")
        if self.overlap < 0:
            raise LumicapError("--tile-overlap must not be negative")
        if self.max_megapixels is not None and self.max_megapixels <= 0:
            raise LumicapError("--max-megapixels must be positive")

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


# ------------------------------------------------------------------------------------------------ inputs


def collect_inputs(
    inputs: Sequence[str | os.PathLike],
    recursive: bool = False,
    exclude: str | os.PathLike | None = None,
    unreadable: list[Path] | None = None,
) -> list[InputImage]:
    """Expand files, folders (their image files; sub-folders too with ``recursive``) and glob patterns.

    Files under ``exclude`` (the output folder) are left out of folder and glob expansions, so a run
    whose output folder sits inside its input folder never enhances its own earlier outputs.
    An argument that matches nothing is an error (a typo should not silently enhance nothing).
    Pictures in formats lumicap does not read (GIF, camera RAW: ``IMAGE_LIKE_EXTENSIONS``) found by a folder
    or glob expansion are appended to ``unreadable`` so the caller can name them; a file named explicitly is
    always an input (reading it then says what is wrong).
    """
    from lumicap.data.io import is_image_file, is_unreadable_image_kind

    excluded = Path(exclude).resolve() if exclude is not None else None
    seen_unreadable: set[Path] = set()

    def wanted(candidate: Path) -> bool:
        if not candidate.is_file():
            return False
        if excluded is not None and candidate.resolve().is_relative_to(excluded):
            return False
        if is_unreadable_image_kind(candidate):
            if unreadable is not None and candidate.resolve() not in seen_unreadable:
                seen_unreadable.add(candidate.resolve())
                unreadable.append(candidate)
            return False
        return is_image_file(candidate)

    found: dict[Path, InputImage] = {}
    for item in inputs:
        text = os.fspath(item)
        path = Path(text).expanduser()
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            members = sorted(p for p in path.glob(pattern)
                             if not any(part.startswith(".") for part in p.relative_to(path).parts))
            for member in filter(wanted, members):
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


def plan_outputs(inputs: Sequence[InputImage], out_dir: str | os.PathLike, fmt: str) -> list[tuple[InputImage, Path]]:
    """(input, output path) for every input, decided before anything is written.

    An output that is any input of the run (same path, a link to it, or the same file under another name)
    refuses the whole batch with one ``LumicapError``: writing the others first and reporting afterwards
    would already have replaced a photo the user asked to read.
    """
    if fmt not in OUTPUT_SUFFIXES:
        raise LumicapError(f"unknown output format '{fmt}'; choose one of {', '.join(OUTPUT_SUFFIXES)}")
    out_dir = Path(out_dir)
    by_path = {item.path.resolve(): item for item in inputs}
    by_inode = {}
    for item in inputs:
        with contextlib.suppress(OSError):
            st = item.path.stat()
            by_inode[(st.st_dev, st.st_ino)] = item
    plan = []
    for item in inputs:
        target = output_path(item, out_dir, fmt)
        victim = by_path.get(target.resolve())
        if victim is None:
            with contextlib.suppress(OSError):
                st = target.stat()
                victim = by_inode.get((st.st_dev, st.st_ino))
        if victim is not None:
            whose = "the input itself" if victim is item else f"the input {shown(victim.path)}"
            raise LumicapError(
                f"the output of {shown(item.path)} ({shown(target)}) would replace {whose}; nothing was written "
                "(inputs are never replaced, even with --overwrite): choose another --out or --format"
            )
        plan.append((item, target))
    return plan


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
    on_skipped: Callable[[InputImage, Path], None] | None = None,
) -> EnhanceSummary:
    """Enhance each input into ``out_dir``; failures are reported via ``report`` (one line each) and skipped.

    ``on_result(item, output_path, enhanced, low)`` is called after each written image (captions use
    it); ``low`` is None when the input was overwritten in place to save memory. ``quality``: JPEG only.
    ``on_skipped(item, output_path)`` is called for an output that existed and was kept (captions of an
    earlier run's outputs). Temporary files that a killed earlier run left in the output folders are
    removed first.
    """
    from tqdm import tqdm

    from lumicap.files import remove_stale_partial_files

    plan = plan_outputs(inputs, out_dir, fmt)
    summary = EnhanceSummary()
    emit = report or (lambda line: tqdm.write(line, file=sys.stderr))

    def say(line: str) -> None:
        emit(one_line(line))  # a file name must not break the line

    for folder in sorted({target.parent for _, target in plan}):
        summary.stale_parts_removed += len(remove_stale_partial_files(folder))
    claimed: dict[Path, Path] = {}
    start = time.perf_counter()
    bar = tqdm(plan, desc="enhance", unit="img", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    for item, target in bar:
        key = target.resolve()
        if key in claimed:
            message = f"same output name as {shown(claimed[key])} ({shown(target.name)})"
            summary.failed.append((item.path, message))
            say(f"lumicap: error: {shown(item.path)}: {message}; skipped")
            continue
        claimed[key] = item.path
        if target.exists() and not overwrite:
            summary.skipped.append(item.path)
            if on_skipped is not None:
                try:
                    on_skipped(item, target)
                except (LumicapError, OSError) as exc:
                    summary.failed.append((item.path, one_line(str(exc))))
                    say(f"lumicap: error: {exc}")
            continue
        if progress:
            def on_tile(done, total, name=shown(item.path.name)):
                bar.set_postfix_str(f"{name}: tile {done}/{total}")
        else:
            on_tile = None
        try:
            _announce_large(item.path, say)
            result = enhance_file(item.path, target, model, device, fmt, tiles, quality=quality,
                                  keep_input=on_result is not None, on_tile=on_tile)
        except (LumicapError, OSError) as exc:
            message = one_line(str(exc).strip() or type(exc).__name__)
            summary.failed.append((item.path, message))
            name = shown(item.path)
            say(f"lumicap: error: {message if name in message else f'{name}: {message}'}")
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
    from lumicap.data.io import image_icc_profile, write_image

    profile = image_icc_profile(Path(source))  # header only; the output keeps the input's colour space
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
    written = write_image(target, enhanced, bit_depth=bits, quality=quality, icc_profile=profile)
    return EnhancedFile(written, enhanced, image if keep_input else None, bits, total)


def _announce_large(path: Path, report: Callable[[str], None]) -> None:
    """Say so before a photo that needs gigabytes of memory and minutes of work (read from the header)."""
    from lumicap.data.io import image_size

    height, width = image_size(path)
    pixels = height * width
    if pixels > LARGE_IMAGE_PIXELS:
        gigabytes = pixels * BYTES_PER_PIXEL / 1e9
        report(
            f"lumicap: note: {shown(path)} is {width}x{height} ({pixels / 1e6:.0f} MP): it needs about "
            f"{gigabytes:.1f} GB of memory and can take minutes"
        )


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

