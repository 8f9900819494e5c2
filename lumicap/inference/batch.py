"""Enhance many photo (and video) files: find the inputs, pick whole-image or tiled passes, write outputs,
summarise.

Outputs keep the input's name (and, for a folder input, its sub-folder path) with the chosen format's
suffix (videos: the chosen video format's, ``lumicap.inference.video``). Every output path is planned before
anything is written: when one of them is any input of the run (``a.png`` and ``a.jpg`` with ``--format jpg``),
the whole batch is refused, ``overwrite`` or not. An existing output is never replaced unless ``overwrite``.
A file that cannot be read or written is reported on one line and skipped; the rest go on.
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
# TileSettings, enhance_image and the tile defaults live in tiling (video frames use them too); imported here
# as well, so lumicap.inference.batch.TileSettings and friends keep working.
from lumicap.files import check_output_folder
from lumicap.inference.tiling import (  # noqa: F401
    DEFAULT_MAX_MEGAPIXELS,
    DEFAULT_OVERLAP,
    DEFAULT_TILE,
    MIN_TILE,
    TileSettings,
    enhance_image,
    plan_tiles,
    planned_tile,
    run_tiled,
    run_whole,
)
from lumicap.inference.video import VIDEO_FORMATS, EnhancedVideo, VideoSettings, enhance_video, is_video_file

OUTPUT_SUFFIXES = {"png": ".png", "jpg": ".jpg", "tiff": ".tiff", "webp": ".webp", "heic": ".heic"}
_GLOB_CHARS = set("*?[")
# Above this many pixels a photo gets a note before it is read, with the memory its path needs
# (lumicap.inference.memory: measured per path, not one flat figure) and that it takes minutes.
LARGE_IMAGE_PIXELS = 50_000_000


@dataclass(frozen=True)
class InputImage:
    path: Path
    relative: Path  # where its output goes under the output folder (suffix replaced)


@dataclass
class EnhanceSummary:
    enhanced: list[Path] = field(default_factory=list)  # images and videos written
    skipped: list[Path] = field(default_factory=list)  # outputs that existed (no --overwrite)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0  # on images
    stale_parts_removed: int = 0  # temporary files of an earlier, killed run
    videos: list[EnhancedVideo] = field(default_factory=list)  # each video written
    video_inputs: int = 0
    unreadable: list[Path] = field(default_factory=list)  # pictures in formats lumicap does not read (not tried)

    def line(self) -> str:
        done = len(self.enhanced) - len(self.videos)
        per_image = f" ({self.seconds / done:.2f} s/image)" if done else ""
        parts = []
        if done or not self.video_inputs:
            parts.append(f"{done} image{'s' if done != 1 else ''} in {self.seconds:.1f} s{per_image}")
        if self.video_inputs:
            frames = sum(v.frames for v in self.videos)
            seconds = sum(v.seconds for v in self.videos)
            count = len(self.videos)
            fps = frames / seconds if seconds > 0 else 0.0
            speed = f" ({frames} frames in {seconds:.1f} s, {fps:.1f} fps)" if count else ""
            parts.append(f"{count} video{'s' if count != 1 else ''}{speed}")
        text = "enhanced " + " and ".join(parts)
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


# ------------------------------------------------------------------------------------------------ inputs


def collect_inputs(
    inputs: Sequence[str | os.PathLike],
    recursive: bool = False,
    exclude: str | os.PathLike | None = None,
    unreadable: list[Path] | None = None,
    videos: bool = False,
) -> list[InputImage]:
    """Expand files, folders (their image files, and video files with ``videos``; sub-folders too with
    ``recursive``) and glob patterns.

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
        return is_image_file(candidate) or (videos and is_video_file(candidate))

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
                raise LumicapError(f"{text}: pattern matches no image{' or video' if videos else ''} files")
            for member in files:
                found.setdefault(member.resolve(), InputImage(member, Path(member.name)))
        else:
            raise LumicapError(f"{text}: no such file or folder")
    return list(found.values())


def output_path(item: InputImage, out_dir: Path, fmt: str, video_format: str = "mp4") -> Path:
    """Where ``item``'s output goes: ``fmt`` (png, jpg, tiff) for an image, ``video_format`` for a video."""
    suffix = f".{video_format}" if is_video_file(item.path) else OUTPUT_SUFFIXES[fmt]
    return out_dir / item.relative.with_suffix(suffix)


def plan_outputs(
    inputs: Sequence[InputImage], out_dir: str | os.PathLike, fmt: str, video_format: str = "mp4"
) -> list[tuple[InputImage, Path]]:
    """(input, output path) for every input, decided before anything is written.

    An output that is any input of the run (same path, a link to it, or the same file under another name)
    refuses the whole batch with one ``LumicapError``: writing the others first and reporting afterwards
    would already have replaced a photo the user asked to read.
    """
    if fmt not in OUTPUT_SUFFIXES:
        raise LumicapError(f"unknown output format '{fmt}'; choose one of {', '.join(OUTPUT_SUFFIXES)}")
    if video_format not in VIDEO_FORMATS:
        raise LumicapError(f"unknown video format '{video_format}'; choose one of {', '.join(VIDEO_FORMATS)}")
    out_dir = Path(out_dir)
    by_path = {item.path.resolve(): item for item in inputs}
    by_inode = {}
    for item in inputs:
        with contextlib.suppress(OSError):
            st = item.path.stat()
            by_inode[(st.st_dev, st.st_ino)] = item
    plan = []
    for item in inputs:
        target = output_path(item, out_dir, fmt, video_format)
        victim = by_path.get(target.resolve())
        if victim is None:
            with contextlib.suppress(OSError):
                st = target.stat()
                victim = by_inode.get((st.st_dev, st.st_ino))
        if victim is not None:
            whose = "the input itself" if victim is item else f"the input {shown(victim.path)}"
            raise LumicapError(
                f"the output of {shown(item.path)} ({shown(target)}) would replace {whose}; nothing was written "
                "(inputs are never replaced, even with --overwrite): choose another --out, --format or --video-format"
            )
        plan.append((item, target))
    return plan


# ----------------------------------------------------------------------------------------------- running


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
    video=None,
) -> EnhanceSummary:
    """Enhance each input into ``out_dir``; failures are reported via ``report`` (one line each) and skipped.

    ``on_result(item, output_path, enhanced, low)`` is called after each written image (captions use
    it); ``low`` is None when the input was overwritten in place to save memory. ``quality``: JPEG only.
    ``on_skipped(item, output_path)`` is called for an output that existed and was kept (captions of an
    earlier run's outputs). Temporary files that a killed earlier run left in the output folders are
    removed first. Videos among the inputs are enhanced after the photos, with ``video``
    (``lumicap.inference.video.VideoSettings``; None: its defaults), each with a progress bar in frames.
    """
    from tqdm import tqdm

    from lumicap.files import remove_stale_partial_files

    from lumicap.inference.outputs_record import RECORD_NAME, OutputRecord

    video = video or VideoSettings()
    plan = plan_outputs(inputs, out_dir, fmt, video.fmt)
    check_output_folder(out_dir)
    record = OutputRecord(out_dir)
    if overwrite:
        # --overwrite redoes lumicap's own outputs; a file it did not write (or one changed since) is the user's.
        foreign = [target for _, target in plan if os.path.lexists(target) and not record.wrote(target)]
        if foreign:
            listed = ", ".join(shown(path) for path in foreign[:3]) + (
                f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
            )
            raise LumicapError(
                f"--overwrite would replace {len(foreign)} file(s) that lumicap enhance did not write into "
                f"{shown(out_dir)} (or that changed since): {listed}; nothing was written (only outputs recorded in "
                f"{RECORD_NAME} are replaced): move them away or choose another --out"
            )
    summary = EnhanceSummary()
    emit = report or (lambda line: tqdm.write(line, file=sys.stderr))

    def say(line: str) -> None:
        emit(one_line(line))  # a file name must not break the line

    def fail(item: InputImage, exc: BaseException) -> None:
        message = one_line(str(exc).strip() or type(exc).__name__)
        summary.failed.append((item.path, message))
        name = shown(item.path)
        say(f"lumicap: error: {message if name in message else f'{name}: {message}'}")

    for folder in sorted({target.parent for _, target in plan}):
        summary.stale_parts_removed += len(remove_stale_partial_files(folder))
    claimed: dict[Path, Path] = {}

    def wanted(item: InputImage, target: Path, tell_skipped: bool = True) -> bool:
        """False for an output name already taken in this run, or an existing output kept (no --overwrite)."""
        key = target.resolve()
        if key in claimed:
            message = f"same output name as {shown(claimed[key])} ({shown(target.name)})"
            summary.failed.append((item.path, message))
            say(f"lumicap: error: {shown(item.path)}: {message}; skipped")
            return False
        claimed[key] = item.path
        if target.exists() and not overwrite:
            summary.skipped.append(item.path)
            if on_skipped is not None and tell_skipped:
                try:
                    on_skipped(item, target)
                except (LumicapError, OSError) as exc:
                    summary.failed.append((item.path, one_line(str(exc))))
                    say(f"lumicap: error: {exc}")
            return False
        return True

    photos = [(item, target) for item, target in plan if not is_video_file(item.path)]
    videos = [(item, target) for item, target in plan if is_video_file(item.path)]
    summary.video_inputs = len(videos)
    start = time.perf_counter()
    bar = tqdm(photos, desc="enhance", unit="img", disable=not progress or not photos, file=sys.stderr,
               dynamic_ncols=True)
    for item, target in bar:
        if not wanted(item, target):
            continue
        if progress:
            def on_tile(done, total, name=shown(item.path.name)):
                bar.set_postfix_str(f"{name}: tile {done}/{total}")
        else:
            on_tile = None
        try:
            result = enhance_file(item.path, target, model, device, fmt, tiles, quality=quality,
                                  keep_input=on_result is not None, on_tile=on_tile, on_note=say)
        except (LumicapError, OSError) as exc:
            fail(item, exc)
            continue
        summary.enhanced.append(target)
        record.add(target)
        if on_result is not None:
            on_result(item, target, result.enhanced, result.low)
        del result
    bar.close()
    summary.seconds = time.perf_counter() - start
    for item, target in videos:
        if not wanted(item, target, tell_skipped=False):  # on_skipped captions photos
            continue
        try:
            written = _enhance_one_video(item, target, model, device, video, tiles, progress, say)
        except (LumicapError, OSError) as exc:
            fail(item, exc)
            continue
        summary.enhanced.append(target)
        record.add(target)
        summary.videos.append(written)
    record.compact()
    return summary


def _enhance_one_video(item: InputImage, target: Path, model, device, settings, tiles, progress: bool, say):
    """One video with its own progress bar (frames, frames per second); its notes as lines."""
    from tqdm import tqdm

    bar = tqdm(desc=shown(item.path.name), unit="frame", disable=not progress, file=sys.stderr, dynamic_ncols=True)

    def on_frame(done: int, total: int | None) -> None:
        if total and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    try:
        written = enhance_video(item.path, target, model, device, settings, tiles, on_frame=on_frame)
        bar.total = written.frames  # the count may have been an estimate
        bar.refresh()
    finally:
        bar.close()
    for note in written.notes:
        say(f"lumicap: note: {note}")
    return written


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
    on_note: Callable[[str], None] | None = None,
) -> EnhancedFile:
    """Read one photo, enhance it whole or in tiles, write ``target``: the single-file step of
    ``lumicap enhance``, shared with ``lumicap serve`` so that both write the same bytes.

    16-bit inputs give 16-bit PNGs; ``on_tile(done, total)`` follows a tiled pass. ``target`` is written
    as given (the caller decides about existing files). Before the photo is read, its memory is planned
    from its header (``lumicap.inference.memory``): a pass that would not fit in the memory available is
    tiled instead, and a photo that does not fit even in tiles is a ``LumicapError``; ``on_note`` gets a
    line when the plan changed or the photo is large. Unreadable input or unwritable output: ``LumicapError``
    (or ``OSError``).
    """
    from lumicap.data.io import check_pixel_count, image_bit_depth, image_icc_profile, image_size, write_image
    from lumicap.inference.memory import describe, plan_memory

    source = Path(source)
    height, width = image_size(source)
    check_pixel_count(source, (width, height))  # a decompression bomb is named as one before any memory talk
    plan = plan_memory(model, tiles, height, width, device, bits=image_bit_depth(source), keep_input=keep_input,
                       name=shown(source))
    if on_note is not None and plan.note:
        on_note(f"lumicap: note: {plan.note}")
    if on_note is not None and height * width > LARGE_IMAGE_PIXELS:
        on_note(f"lumicap: note: {shown(source)} is {width}x{height} ({height * width / 1e6:.0f} MP): it needs "
                f"{describe(plan)} and can take minutes")
    if plan.tile is not None and plan.tile != planned_tile(model, tiles, height, width, device):
        tiles = TileSettings(tile=plan.tile, overlap=tiles.overlap)  # tiled for memory's sake
    profile = image_icc_profile(source)  # header only; the output keeps the input's colour space
    image, in_bits = read_float_image(source)
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
    kept = image if keep_input else None
    del image  # not needed for writing (tiled in place, it is the result itself): one full-size copy less
    written = write_image(target, enhanced, bit_depth=bits, quality=quality, icc_profile=profile)
    return EnhancedFile(written, enhanced, kept, bits, total)


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
