"""Which files in an output folder ``lumicap enhance`` wrote, so ``--overwrite`` replaces only those.

``enhance D -r --out D/x --overwrite`` with the user's own ``D/x/a.png`` (a photo they put there, not an earlier
output) used to replace it silently. Now each written output is recorded in ``OUT/.lumicap-outputs.jsonl``
(one JSON line per file: its path under OUT, size and modification time), and ``--overwrite`` refuses the whole
batch, before anything is written, when an output would replace a file that is not in the record as it is now:
a file lumicap did not write, or one changed since (the user edited it). Lines are only ever appended, so a
killed run leaves at worst one broken last line, which is ignored. Hidden, so never read as an input.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from pathlib import Path

from lumicap.errors import LumicapError
from lumicap.files import atomic_write, read_regular

RECORD_NAME = ".lumicap-outputs.jsonl"
_MAX_RECORD_BYTES = 64 << 20  # about half a million outputs


class OutputRecord:
    """The outputs ``lumicap enhance`` wrote into ``folder`` (and its sub-folders)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.path = self.folder / RECORD_NAME
        self._entries: dict[str, tuple[int, int]] = {}
        self._lines = 0
        self._read()

    def _key(self, target: str | os.PathLike) -> str:
        return Path(os.path.relpath(os.path.abspath(target), os.path.abspath(self.folder))).as_posix()

    def _read(self) -> None:
        try:
            raw = read_regular(self.path, _MAX_RECORD_BYTES)
        except (OSError, LumicapError):
            return  # no record (yet), or not a file lumicap can read: nothing counts as written by lumicap
        for line in raw.decode("utf-8", "replace").splitlines():
            self._lines += 1
            try:
                item = json.loads(line)
                self._entries[str(item["path"])] = (int(item["size"]), int(item["mtime_ns"]))
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a killed run, or edited by hand: ignored

    def wrote(self, target: str | os.PathLike) -> bool:
        """True when ``target`` is a regular file lumicap wrote and nobody changed since."""
        try:
            st = os.lstat(target)
        except OSError:
            return False
        return stat.S_ISREG(st.st_mode) and self._entries.get(self._key(target)) == (st.st_size, st.st_mtime_ns)

    def add(self, target: str | os.PathLike) -> None:
        """Record ``target`` as written now (best effort: a record that cannot be written only means a later
        ``--overwrite`` refuses to replace the file, the safe side)."""
        with contextlib.suppress(OSError):
            st = os.stat(target)
            key = self._key(target)
            line = json.dumps({"path": key, "size": st.st_size, "mtime_ns": st.st_mtime_ns}, ensure_ascii=False)
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")
            self._entries[key] = (st.st_size, st.st_mtime_ns)
            self._lines += 1

    def compact(self) -> None:
        """Rewrite the record with one line per file still there when repeated runs have tripled it."""
        if self._lines <= 3 * len(self._entries) + 100:
            return
        kept = {key: value for key, value in self._entries.items() if self.wrote(self.folder / key)}
        lines = "".join(
            json.dumps({"path": key, "size": size, "mtime_ns": mtime_ns}, ensure_ascii=False) + "\n"
            for key, (size, mtime_ns) in kept.items()
        )
        try:
            atomic_write(self.path, lines)
        except OSError:
            return  # the long record still works
        self._entries, self._lines = kept, len(kept)
