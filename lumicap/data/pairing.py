"""Which low-light file goes with which reference: folder pairing, LOL layouts, scene-safe splits.

Known layouts (folder names are matched case-insensitively):

``lol-v1``            ``<root>/{our485,eval15}/{low,high}/N.png``
``lol-v2-real``       ``<root>/{Train,Test}/Low/lowNNNNN.png`` <-> ``Normal/normalNNNNN.png``
``lol-v2-synthetic``  ``<root>/{Train,Test}/{Low,Normal}/NAME.png`` (same names on both sides)
``folders``           ``<root>/<split>/{low,high}/`` or ``<root>/{low,high}/``, files matched by stem

Every problem in a pair of folders (missing partners, duplicate stems, size mismatches, unreadable
headers) is collected and raised as one ``DatasetError`` line, so one run shows everything to fix.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path

from lumicap.data.io import IMAGE_EXTENSIONS, image_size, is_image_file, read_image_array
from lumicap.errors import DatasetError, ImageReadError
from lumicap.names import LAYOUTS, LayoutChoice

_LOW_DIR_NAMES = ("low", "input")
_HIGH_DIR_NAMES = ("high", "normal", "gt", "target")
# Split aliases per layout, tried in order; a literal sub-folder name always works too.
_SPLIT_ALIASES = {
    "lol-v1": {"train": ("our485",), "test": ("eval15",), "eval": ("eval15",), "val": ("eval15",)},
    "lol-v2-real": {"train": ("train",), "test": ("test",), "eval": ("test",), "val": ("test",)},
    "lol-v2-synthetic": {"train": ("train",), "test": ("test",), "eval": ("test",), "val": ("test",)},
    "folders": {"test": ("test", "eval"), "eval": ("eval", "test"), "val": ("val", "eval", "test")},
}
# LOL-v2 Real_captured names the two sides low00001.png / normal00001.png.
_LOL_V2_REAL_PREFIXES = ("low", "normal")
_MAX_LISTED = 10


@dataclass(frozen=True)
class ImagePair:
    """A low-light image, its normal-light reference and the pair's name (the shared file stem)."""

    low: Path
    high: Path
    name: str


def compact_list(items: list[str], limit: int = _MAX_LISTED) -> str:
    """'a, b, c' or 'a, b, ... (+N more)': long problem lists stay on one readable line."""
    items = list(items)
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown}, ... (+{len(items) - limit} more)"


def natural_key(text: str) -> tuple:
    """Sort '2' before '10' (LOL files are numbered without zero padding)."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text))


def list_images(folder: str | os.PathLike) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder")
    return sorted((p for p in folder.iterdir() if p.is_file() and is_image_file(p)), key=lambda p: natural_key(p.name))


def _index_by_key(files: list[Path], prefix: str) -> tuple[dict[str, Path], dict[str, list[Path]]]:
    """Map pairing key -> file; keys claimed by several files (e.g. 1.png and 1.jpg) are returned apart."""
    by_key: dict[str, list[Path]] = {}
    for path in files:
        key = path.stem
        if prefix and key.lower().startswith(prefix):
            key = key[len(prefix):]
        by_key.setdefault(key, []).append(path)
    unique = {k: v[0] for k, v in by_key.items() if len(v) == 1}
    duplicates = {k: v for k, v in by_key.items() if len(v) > 1}
    return unique, duplicates


def find_pairs(
    low_dir: str | os.PathLike,
    high_dir: str | os.PathLike,
    *,
    low_prefix: str = "",
    high_prefix: str = "",
    check_sizes: bool = True,
    labels: tuple[str, str] = ("low", "high"),
) -> list[ImagePair]:
    """Pair the images of two folders by file stem (after removing ``low_prefix``/``high_prefix``).

    Raises one ``DatasetError`` listing every missing partner, duplicate stem, unreadable header and
    (with ``check_sizes``) size mismatch. ``labels`` names the two sides in messages (e.g. pred/gt).
    Pairs come back in natural order of their names.
    """
    low_dir, high_dir = Path(low_dir), Path(high_dir)
    low_files, high_files = list_images(low_dir), list_images(high_dir)
    if not low_files:
        raise DatasetError(f"{low_dir}: no images ({' '.join(IMAGE_EXTENSIONS)})")
    if not high_files:
        raise DatasetError(f"{high_dir}: no images ({' '.join(IMAGE_EXTENSIONS)})")
    low_by_key, low_dups = _index_by_key(low_files, low_prefix.lower())
    high_by_key, high_dups = _index_by_key(high_files, high_prefix.lower())

    problems: list[str] = []
    for label, folder, dups in ((labels[0], low_dir, low_dups), (labels[1], high_dir, high_dups)):
        if dups:
            names = [
                " = ".join(p.name for p in paths)
                for _, paths in sorted(dups.items(), key=lambda kv: natural_key(kv[0]))
            ]
            problems.append(f"{len(dups)} duplicate stem(s) in {label} {folder}: {compact_list(names)}")
    all_low_keys = set(low_by_key) | set(low_dups)
    all_high_keys = set(high_by_key) | set(high_dups)
    no_high = sorted(all_low_keys - all_high_keys, key=natural_key)
    no_low = sorted(all_high_keys - all_low_keys, key=natural_key)
    if no_high:
        names = [_display_name(low_by_key, low_dups, k) for k in no_high]
        problems.append(
            f"{len(no_high)} {labels[0]} image(s) without a {labels[1]} partner in {high_dir}: {compact_list(names)}"
        )
    if no_low:
        names = [_display_name(high_by_key, high_dups, k) for k in no_low]
        problems.append(
            f"{len(no_low)} {labels[1]} image(s) without a {labels[0]} partner in {low_dir}: {compact_list(names)}"
        )

    keys = sorted(set(low_by_key) & set(high_by_key), key=natural_key)
    pairs = [ImagePair(low=low_by_key[k], high=high_by_key[k], name=k) for k in keys]

    if check_sizes:
        unreadable, mismatched = [], []
        for pair in pairs:
            try:
                low_size, high_size = image_size(pair.low), image_size(pair.high)
            except ImageReadError as exc:
                unreadable.append(str(exc))
                continue
            if low_size != high_size:
                mismatched.append(
                    f"{pair.name} ({low_size[1]}x{low_size[0]} vs {high_size[1]}x{high_size[0]})"
                )
        if unreadable:
            problems.append(f"{len(unreadable)} unreadable image(s): {compact_list(unreadable, 3)}")
        if mismatched:
            problems.append(
                f"{len(mismatched)} size mismatch(es) {labels[0]} vs {labels[1]}: {compact_list(mismatched)}"
            )

    if problems:
        raise DatasetError(f"{low_dir} <-> {high_dir}: " + "; ".join(problems))
    return pairs


def _display_name(unique: dict[str, Path], dups: dict[str, list[Path]], key: str) -> str:
    return unique[key].name if key in unique else dups[key][0].name


# ------------------------------------------------------------------------------------------- layouts
def _child_dir(folder: Path, names: tuple[str, ...]) -> Path | None:
    """The first sub-folder of ``folder`` whose name matches one of ``names`` case-insensitively."""
    if not folder.is_dir():
        return None
    children = {p.name.lower(): p for p in folder.iterdir() if p.is_dir()}
    for name in names:
        if name.lower() in children:
            return children[name.lower()]
    return None


def _has_low_high(folder: Path) -> bool:
    return _child_dir(folder, _LOW_DIR_NAMES) is not None and _child_dir(folder, _HIGH_DIR_NAMES) is not None


def _split_folders(root: Path) -> list[Path]:
    return sorted((p for p in root.iterdir() if p.is_dir() and _has_low_high(p)), key=lambda p: natural_key(p.name))


def detect_layout(root: str | os.PathLike) -> str:
    """Name the layout of ``root`` (one of ``LAYOUTS``) from its folder names and file names."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    splits = _split_folders(root)
    names = {p.name.lower() for p in splits}
    if names & {"our485", "eval15"}:
        return "lol-v1"
    if names & {"train", "test"}:
        v2_splits = [p for p in splits if _child_dir(p, ("low",)) and _child_dir(p, ("normal",))]
        if v2_splits:
            low_files = list_images(_child_dir(v2_splits[0], ("low",)))
            high_files = list_images(_child_dir(v2_splits[0], ("normal",)))
            real = low_files and high_files and all(p.stem.lower().startswith("low") for p in low_files) and all(
                p.stem.lower().startswith("normal") for p in high_files
            )
            return "lol-v2-real" if real else "lol-v2-synthetic"
    if splits or _has_low_high(root):
        return "folders"
    nested = [p.name for p in root.iterdir() if p.is_dir() and _split_folders(p)]
    hint = f"; it contains datasets in {compact_list(nested)}: pass one of those" if nested else ""
    raise DatasetError(
        f"{root}: cannot recognise the dataset layout (expected {', '.join(LAYOUTS)}; see lumicap.data.pairing){hint}"
    )


def resolve_split(root: str | os.PathLike, split: str | None, layout: LayoutChoice = "auto") -> list[ImagePair]:
    """The image pairs of ``split`` ('train', 'test', or a literal sub-folder like 'eval15') under ``root``."""
    root = Path(root)
    if layout == "auto":
        layout = detect_layout(root)
    if layout not in LAYOUTS:
        raise DatasetError(f"unknown layout '{layout}'; known: auto, {', '.join(LAYOUTS)}")
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")

    if layout == "folders" and _has_low_high(root) and split in (None, "", "all"):
        split_dir = root
    else:
        available = [p.name for p in _split_folders(root)]
        if not split:
            raise DatasetError(f"{root}: choose a split ({compact_list(available)})")
        candidates = (split,) + _SPLIT_ALIASES[layout].get(split.lower(), ())
        split_dir = _child_dir(root, candidates)
        if split_dir is None or not _has_low_high(split_dir):
            raise DatasetError(
                f"{root}: no split '{split}' in layout {layout} (available: {compact_list(available) or 'none'})"
            )

    low_dir = _child_dir(split_dir, _LOW_DIR_NAMES)
    high_dir = _child_dir(split_dir, _HIGH_DIR_NAMES)
    if low_dir is None or high_dir is None:
        raise DatasetError(f"{split_dir}: expected low/ and high/ (or Low/ and Normal/) sub-folders")
    if layout == "lol-v2-real":
        return find_pairs(low_dir, high_dir, low_prefix=_LOL_V2_REAL_PREFIXES[0], high_prefix=_LOL_V2_REAL_PREFIXES[1])
    return find_pairs(low_dir, high_dir)


# ------------------------------------------------------------------------------------- scene splits
def scene_groups(pairs: list[ImagePair]) -> list[int]:
    """A group id per pair; pairs whose reference images have identical pixels share an id.

    Some sets reuse one reference for several exposures of a scene; a validation split must keep
    such pairs together or it measures memorisation. Pixels are hashed, not file bytes, so re-encoded
    copies of a reference still group together.
    """
    ids: dict[str, int] = {}
    groups = []
    for pair in pairs:
        array = read_image_array(pair.high)
        digest = hashlib.sha1(str(array.shape).encode() + str(array.dtype).encode() + array.tobytes()).hexdigest()
        groups.append(ids.setdefault(digest, len(ids)))
    return groups


def split_by_scene(
    pairs: list[ImagePair], val_fraction: float, seed: int = 0, groups: list[int] | None = None
) -> tuple[list[ImagePair], list[ImagePair]]:
    """Split ``pairs`` into (train, val) with about ``val_fraction`` of the pairs in val, whole scenes only.

    Scenes are drawn in a seeded random order until val holds at least ``round(val_fraction * n)`` pairs
    (at least one scene when the fraction is positive); both lists keep the input order.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise DatasetError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if groups is None:
        groups = scene_groups(pairs)
    if len(groups) != len(pairs):
        raise DatasetError(f"scene groups ({len(groups)}) and pairs ({len(pairs)}) differ in length")
    if val_fraction == 0.0 or not pairs:
        return list(pairs), []
    scenes = sorted(set(groups))
    if len(scenes) < 2:
        why = "a single pair is a single scene" if len(pairs) == 1 else f"all {len(pairs)} pairs show the same scene"
        raise DatasetError(
            f"cannot carve a validation set by scene: {why}, and validation needs a scene of its own besides "
            "the training scenes; add pairs of other scenes, name a data.val_split, or set train.select_on=test"
        )
    random.Random(seed).shuffle(scenes)
    target = max(1, round(val_fraction * len(pairs)))
    sizes = {g: groups.count(g) for g in scenes}
    val_scenes: set[int] = set()
    count = 0
    for scene in scenes[:-1]:  # the last scene always stays in train so train is never empty
        if count >= target:
            break
        val_scenes.add(scene)
        count += sizes[scene]
    train = [p for p, g in zip(pairs, groups) if g not in val_scenes]
    val = [p for p, g in zip(pairs, groups) if g in val_scenes]
    return train, val
