"""Captions of the dark input and the enhanced output, by the ClipCap teacher (``enhance --caption``).

A caption says what the captioner can make out of a photo; comparing the two shows what enhancement
revealed (or invented). Written to ``OUT/captions.json`` as ``{image key: {"input": .., "enhanced": ..}}``
(key: the output's path under OUT without suffix), the format ``lumicap report`` reads.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from lumicap.errors import LumicapError, shown
from lumicap.files import atomic_write
from lumicap.teacher.preprocess import shrink_for_teacher

CAPTIONS_FILE = "captions.json"
DEFAULT_TEACHER = "clipcap-coco"


class CaptionWriter:
    def __init__(self, teacher, out_dir: Path, existing: dict | None = None):
        self.teacher = teacher
        self.path = Path(out_dir) / CAPTIONS_FILE
        self.existing: dict = dict(existing or {})  # what the file held when this run started
        self.entries: dict[str, dict[str, str]] = {}

    @classmethod
    def open(cls, out_dir: str | os.PathLike, device: torch.device, teacher: str = DEFAULT_TEACHER) -> "CaptionWriter":
        """Read the captions file already there (a broken one is refused now, before any photo is
        enhanced, so no computed caption is thrown away), then load the teacher (preset name, or folder
        with ``teacher.json``); one-line errors for both."""
        from lumicap.teacher import ClipCapTeacher

        existing = read_captions_file(Path(out_dir) / CAPTIONS_FILE)
        try:
            model = ClipCapTeacher.from_pretrained(teacher, device=device)
        except LumicapError as exc:
            raise LumicapError(f"--caption: teacher '{teacher}' is not available ({exc})") from None
        return cls(model, Path(out_dir), existing)

    def caption(self, image: torch.Tensor) -> str:
        small = shrink_for_teacher(image).to(self.teacher.device)
        return self.teacher.caption(small.unsqueeze(0))[0].strip()

    def key(self, target: Path) -> str:
        return target.relative_to(self.path.parent).with_suffix("").as_posix()

    def add(self, item, target: Path, enhanced: torch.Tensor, low: torch.Tensor | None) -> None:
        """``enhance_files`` callback: caption one input/output pair."""
        entry = {"enhanced": self.caption(enhanced)}
        if low is not None:
            entry = {"input": self.caption(low), **entry}
        self.entries[self.key(target)] = entry

    def add_existing(self, item, target: Path) -> None:
        """``enhance_files`` callback for an output kept from an earlier run: caption it (and its input)
        unless the captions file already has it, so a rerun fills in what an earlier run could not save."""
        from lumicap.data.io import read_image

        key = self.key(target)
        if key in self.existing or key in self.entries:
            return
        self.entries[key] = {"input": self.caption(read_image(item.path)), "enhanced": self.caption(read_image(target))}

    def save(self) -> Path | None:
        """Merge with the captions the file held (earlier runs) and write it atomically."""
        if not self.entries:
            return None
        merged = {**read_captions_file(self.path), **self.entries}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps(merged, indent=2, ensure_ascii=False) + "\n")
        return self.path


def read_captions_file(path: Path) -> dict:
    """The JSON object in an existing captions file ({} when there is none); anything else is refused,
    because writing ours would replace the user's file."""
    from lumicap.jsonfile import read_json

    if not path.exists():
        return {}
    data = read_json(path, what="captions JSON file")
    if not isinstance(data, dict):
        raise LumicapError(
            f"{shown(path)}: exists and is not a captions JSON object (it holds a {type(data).__name__}); "
            "not replaced: move it away or choose another --out"
        )
    return data
