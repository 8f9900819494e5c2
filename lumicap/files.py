"""The files a user names and the files lumicap writes: the one IO seam.

Writing safely is the one way lumicap puts a file where a user (or a later run) will read it.

Every file is written to a temporary file beside its target, named ``.<name>.lumicap-<pid>-<token>.part``,
and renamed over the target only when complete, so a crash, a full disk or Ctrl-C never leaves a half-written
file under the real name and never destroys the previous version. ``durable=True`` (checkpoints, run
records) also flushes the file and the folder to disk before and after the rename, so the rename survives a
power cut. The temporary's mode is what an ordinary ``open()`` gives (0666 less the umask).

The writer's pid is in the temporary's name, so a later run can tell a killed writer's leftover from a live
one's (``remove_stale_partial_files``). ``os.replace`` is called here and nowhere else in lumicap (a test
keeps it that way).

Reading: ``open()`` on a FIFO waits for a writer that may never come (``lumicap config check f.yaml`` blocked
forever), and a device such as ``/dev/zero`` never ends. ``read_regular`` opens without blocking, asks the open
file what it is (no gap between looking and reading), and refuses anything but a regular file in one line;
``not_regular`` says the same for code that hands the path to another library.

Output folders: ``check_output_folder`` says in one line, before any work, that an ``--out`` folder is an
existing file or cannot be written (a read-only folder, ``/proc``), instead of one error per image or a
traceback at the end.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Union

from lumicap.errors import LumicapError, shown

PARTIAL_FILE = re.compile(r"^\..*\.lumicap-(\d+)-[^.]*\.part$")

Content = Union[bytes, str, Callable[[BinaryIO], None]]


def partial_name(target: Path) -> Path:
    """A fresh temporary path beside ``target`` (not created)."""
    return target.with_name(f".{target.name}.lumicap-{os.getpid()}-{secrets.token_hex(4)}.part")


@contextlib.contextmanager
def replacing(path: str | os.PathLike, *, durable: bool = False) -> Iterator[Path]:
    """Yield an empty temporary file beside ``path`` for a writer that wants a path (ONNX export); when the
    block ends without an exception it is renamed over ``path``, otherwise it is removed."""
    target = Path(path)
    while True:
        tmp = partial_name(target)
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:  # another writer drew the same token: draw again
            continue
    try:
        yield tmp
        if durable:
            _fsync(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_folder(target.parent)


def atomic_write(path: str | os.PathLike, content: Content, *, durable: bool = False, encoding: str = "utf-8") -> Path:
    """Write ``content`` (bytes, text, or a function that writes into the open binary file) to ``path``
    through a temporary file renamed into place; returns ``path``."""
    target = Path(path)
    with replacing(target, durable=durable) as tmp:
        with open(tmp, "wb") as handle:
            if callable(content):
                content(handle)
            else:
                handle.write(content.encode(encoding) if isinstance(content, str) else content)
    return target


def move_into_place(source: str | os.PathLike, target: str | os.PathLike, *, durable: bool = False) -> None:
    """Rename a finished file or folder (a checked download, a staged bundle, an accepted upload) over
    ``target``, on the same file system; nothing is copied."""
    os.replace(source, target)
    if durable:
        _fsync_folder(Path(target).parent)


def is_partial_file(name: str) -> bool:
    """True for the name of a temporary file lumicap writes before renaming it into place."""
    return PARTIAL_FILE.match(name) is not None


def remove_stale_partial_files(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that killed lumicap processes left in ``folder``.

    Only files whose writing process no longer exists are removed, so a run writing into the same
    folder at the same time keeps its own. Returns the removed paths.
    """
    folder = Path(folder)
    removed: list[Path] = []
    try:
        names = [entry.name for entry in os.scandir(folder) if entry.is_file(follow_symlinks=False)]
    except OSError:
        return removed
    for name in names:
        match = PARTIAL_FILE.match(name)
        if match is None or _process_alive(int(match.group(1))):
            continue
        try:
            (folder / name).unlink()
        except OSError:
            continue
        removed.append(folder / name)
    return removed


def _process_alive(pid: int) -> bool:
    if os.name != "posix":  # no harmless existence probe elsewhere (os.kill would terminate it): keep the file
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    # Makes the rename itself durable; not possible on every platform/filesystem, and harmless to skip.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# Reading the files a user names: regular files only (a FIFO blocks an open() forever, a device never ends).
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
        raise LumicapError(
            f"{label}: cannot write into {shown(existing)} ({exc.strerror or type(exc).__name__})"
        ) from None
