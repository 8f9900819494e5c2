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
import torch.nn.functional as F

from lumicap.errors import LumicapError

CAPTIONS_FILE = "captions.json"
DEFAULT_TEACHER = "clipcap-coco"
# Photos are shrunk (area average) to this shorter side before CLIP's own bicubic resize to 224:
# the caption is the same and a 24-megapixel tensor never goes through the bicubic filter.
_CAPTION_SHORT_SIDE = 448


class CaptionWriter:
    def __init__(self, teacher, out_dir: Path):
        self.teacher = teacher
        self.path = Path(out_dir) / CAPTIONS_FILE
        self.entries: dict[str, dict[str, str]] = {}

    @classmethod
    def open(cls, out_dir: str | os.PathLike, device: torch.device, teacher: str = DEFAULT_TEACHER) -> "CaptionWriter":
        """Load the teacher (preset name, or folder with ``teacher.json``); a one-line error when unavailable."""
        from lumicap.teacher import ClipCapTeacher

        try:
            model = ClipCapTeacher.from_pretrained(teacher, device=device)
        except LumicapError as exc:
            raise LumicapError(f"--caption: teacher '{teacher}' is not available ({exc})") from None
        return cls(model, Path(out_dir))

    def caption(self, image: torch.Tensor) -> str:
        small = _shrink(image).to(self.teacher.device)
        return self.teacher.caption(small.unsqueeze(0))[0].strip()

    def add(self, item, target: Path, enhanced: torch.Tensor, low: torch.Tensor | None) -> None:
        """``enhance_files`` callback: caption one input/output pair."""
        key = target.relative_to(self.path.parent).with_suffix("").as_posix()
        entry = {"enhanced": self.caption(enhanced)}
        if low is not None:
            entry = {"input": self.caption(low), **entry}
        self.entries[key] = entry

    def save(self) -> Path | None:
        """Merge with captions already in the file (earlier runs) and write it atomically."""
        if not self.entries:
            return None
        merged: dict = {}
        if self.path.is_file():
            try:
                merged = json.loads(self.path.read_text())
            except (OSError, json.JSONDecodeError):
                raise LumicapError(f"{self.path}: exists and is not a captions JSON file; not replaced") from None
        merged.update(self.entries)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.part")
        tmp.write_text(json.dumps(merged, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)
        return self.path


def _shrink(image: torch.Tensor) -> torch.Tensor:
    height, width = image.shape[-2:]
    scale = _CAPTION_SHORT_SIDE / min(height, width)
    if scale >= 1:
        return image
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    return F.interpolate(image.unsqueeze(0), size=size, mode="area")[0]
