"""Writing files safely: the one way lumicap puts a file where a user (or a later run) will read it.

Every file is written to a temporary file beside its target, named ``.<name>.lumicap-<pid>-<token>.part``,
and renamed over the target only when complete, so a crash, a full disk or Ctrl-C never leaves a half-written
file under the real name and never destroys the previous version. ``durable=True`` (checkpoints, run
records) also flushes the file and the folder to disk before and after the rename, so the rename survives a
power cut. The temporary's mode is what an ordinary ``open()`` gives (0666 less the umask).

The writer's pid is in the temporary's name, so a later run can tell a killed writer's leftover from a live
one's (``remove_stale_partial_files``). ``os.replace`` is called here and nowhere else in lumicap (a test
keeps it that way).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Union

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
