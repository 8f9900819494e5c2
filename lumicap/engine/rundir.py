"""Run folders: ``<output_dir>/<config name>/<timestamp>/seed<S>/``, never reused for a new run.

A ``lumicap train`` invocation creates one *group* folder named after the time it started (with a
``-2``, ``-3`` ... suffix when that name exists) and one run folder per seed inside it. Folders are
created with ``mkdir(exist_ok=False)`` so two runs can never share one. A run folder holds::

    config.yaml          the validated config the run uses (what --resume reads back)
    run.json             metadata: status, iteration, seed, protocol, world size, versions, notes
    checkpoints/         last.pt (latest state, atomically replaced), best.pt (selected weights)
    log.jsonl            one JSON object per logged event (train losses, lr, validation, test)
    tb/                  TensorBoard event files
    results/             test-iterNNNNNNN/{per_image.csv, summary.json}: one folder per test evaluation, named
                         after the iteration of the weights it measured (the selected ones)
    .lock                held (flock) by the process training the run; a second one is refused
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path
from typing import Any, Iterator

from lumicap.errors import LumicapError
from lumicap.files import atomic_write, is_partial_file

RUN_FILE = "run.json"
CONFIG_FILE = "config.yaml"
LOCK_FILE = ".lock"
_LEGACY_PARTIAL = re.compile(r"^\..*\.tmp-\d+$")  # what lumicap <= 0.1 named its temporaries


def new_group_dir(output_dir: str | os.PathLike, name: str) -> Path:
    parent = Path(output_dir) / name
    try:
        parent.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for suffix in [""] + [f"-{i}" for i in range(2, 1000)]:
            candidate = parent / f"{stamp}{suffix}"
            try:
                candidate.mkdir()
                return candidate
            except FileExistsError:
                continue
    except OSError as exc:  # a file in the way, no permission, a full or read-only disk
        raise LumicapError(f"output_dir (--output-dir): cannot create {parent} ({exc.strerror or exc})") from None
    raise LumicapError(f"cannot create a new run folder under {parent}")


def new_run_dir(group: Path, seed: int) -> Path:
    run = group / f"seed{seed}"
    try:
        run.mkdir()
    except FileExistsError:
        raise LumicapError(f"run folder {run} already exists; use --resume {run} to continue it") from None
    return run


@contextlib.contextmanager
def hold_run_lock(run: Path, enabled: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on ``run`` while training it; a second process gets a one-line error.

    Without it, two ``lumicap train --resume RUN`` at once would both write ``last.pt`` and silently
    overwrite each other's progress. ``flock`` locks die with their process (even on SIGKILL), so a killed
    run never leaves a stale lock. With the lock held, temporary files that killed processes left
    half-written (``lumicap.files``' ``.last.pt.lumicap-<pid>-<token>.part``, and ``.last.pt.tmp-<pid>`` of
    lumicap <= 0.1) are removed: no live writer can own them.
    """
    if not enabled:
        yield
        return
    try:
        import fcntl
    except ImportError:  # no advisory locks (Windows): train without the guard
        yield
        return
    handle = open(run / LOCK_FILE, "a")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise LumicapError(
                f"{run} is being trained by another process (it holds {run / LOCK_FILE}); wait for it to finish "
                "or stop it"
            ) from None
        for folder in (run, run / "checkpoints"):
            if folder.is_dir():
                for stale in folder.glob(".*"):
                    if is_partial_file(stale.name) or _LEGACY_PARTIAL.match(stale.name):
                        stale.unlink(missing_ok=True)
        yield
    finally:
        handle.close()


def is_run_dir(path: Path) -> bool:
    return (path / RUN_FILE).is_file() and (path / CONFIG_FILE).is_file()


def runs_under(path: str | os.PathLike) -> list[Path]:
    """The run folders at or below ``path`` (a run folder, a group folder, or any parent)."""
    path = Path(path)
    if not path.is_dir():
        raise LumicapError(f"run folder not found: {path}")
    if is_run_dir(path):
        return [path]
    return sorted(p.parent for p in path.rglob(RUN_FILE) if is_run_dir(p.parent))


def read_run_info(run: Path) -> dict[str, Any]:
    from lumicap.jsonfile import expect_object, read_json

    path = run / RUN_FILE
    return expect_object(read_json(path, what="run record"), path, "run record")


def write_json_atomic(path: Path, data: Any) -> None:
    from lumicap.jsonfile import dumps

    atomic_write(path, dumps(data, indent=2, sort_keys=False) + "\n", durable=True)


def update_run_info(run: Path, **fields: Any) -> dict[str, Any]:
    info = read_run_info(run) if (run / RUN_FILE).is_file() else {}
    info.update(fields)
    write_json_atomic(run / RUN_FILE, info)
    return info
