"""The files and folders a user names: read regular files only; check an output folder before the work.

``open()`` on a FIFO waits for a writer that may never come (``lumicap config check f.yaml`` blocked forever),
and a device such as ``/dev/zero`` never ends. ``read_regular`` opens without blocking, asks the open file
what it is (no gap between looking and reading), and refuses anything but a regular file in one line;
``not_regular`` says the same for code that hands the path to another library.

``check_output_folder`` says in one line, before any work, that an ``--out`` folder is an existing file or
cannot be written (a read-only folder, ``/proc``), instead of one error per image or a traceback at the end.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from lumicap.errors import LumicapError, shown

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def kind_of(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def not_regular(path: str | os.PathLike) -> str | None:
    """Why ``path`` is not a regular file that can be read (None when it is one, or does not exist)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None  # missing or unreadable: the caller's own message says so
    if stat.S_ISREG(mode):
        return None
    return f"{shown(path)}: {kind_of(mode)}, not a regular file; lumicap reads only regular files here"


def read_regular(path: str | os.PathLike, limit: int | None = None, error: type[LumicapError] = LumicapError) -> bytes:
    """The bytes of ``path`` (at most ``limit + 1`` of them, so a caller can tell it is too large); ``error``
    when it is not a regular file. ``OSError`` (missing, unreadable) passes through for the caller to word."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise error(f"{shown(path)}: {kind_of(mode)}, not a regular file; lumicap reads only regular files here")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read() if limit is None else fh.read(limit + 1)
    finally:
        os.close(fd)


def is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def check_output_folder(out_dir: str | os.PathLike, option: str = "--out") -> None:
    """``LumicapError`` when ``out_dir`` cannot be an output folder: it (or a parent) is a file, or nothing can
    be created where it would go. Nothing is created (the probe folder is removed at once)."""
    _check_writable(Path(out_dir), f"{option} {shown(out_dir)}")


def check_output_file(path: str | os.PathLike, option: str = "--out") -> None:
    """The same for an output file: its folder must be writable, and an existing ``path`` a regular file."""
    path = Path(path)
    label = f"{option} {shown(path)}"
    if os.path.lexists(path) and not path.is_file():
        raise LumicapError(f"{label}: exists and is not a file")
    _check_writable(path.parent, label)


def _check_writable(folder: Path, label: str) -> None:
    existing = next((p for p in (folder, *folder.parents) if os.path.lexists(p)), None)
    if existing is not None and not existing.is_dir():
        where = f"{shown(folder)} is a file" if existing == folder else f"{shown(existing)} is a file"
        raise LumicapError(f"{label}: {where}, not a folder")
    if existing is None:
        return
    try:  # read-only folders, /proc and /sys refuse even root, which os.access would not show
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".lumicap-probe-"))
    except OSError as exc:
        raise LumicapError(f"{label}: cannot write into {shown(existing)} ({exc.strerror or type(exc).__name__})") from None
