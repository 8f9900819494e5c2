"""The cache of known weight files and how a file gets there: explicit path -> cache -> download, verified.

Every pretrained file lumicap uses is listed in the catalogue (``lumicap.weights.catalogue``) with its
source (a Hugging Face repo + filename, or a URL), its expected size and, where published, its sha256.
Named sets group the files one thing needs (a teacher preset, LPIPS); ``lumicap weights download|bundle``
accept both. Nothing here runs at import time and no test ever downloads: tests pass explicit paths or
``file://`` sources.

Trust: a file is checked against its published sha256 when there is one. Otherwise lumicap records the
sha256 of a file it downloaded itself (``<file>.download.json`` beside it, with the source) and checks it
on every later load. A file put into the cache by hand is used but never blessed: ``lumicap weights
verify`` calls it unverified. (A record proves only that lumicap wrote it; whoever can write to the cache
can forge one.)

Offline: ``LUMICAP_OFFLINE=1`` or ``HF_HUB_OFFLINE=1`` means no network attempt at all, by any path
(Hugging Face or plain URL); a missing file is then one error that lists every missing file the caller
needs, with its source, its exact cache path and the command that fetches them all.

Cache directory: ``$LUMICAP_CACHE`` or ``~/.cache/lumicap`` (``cache_dir()``), one folder per name:
``<cache>/<name>/<filename>``. A download goes to a temporary folder in the cache and is renamed into
place only once complete and checked, so a failure leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from lumicap.errors import WeightsError
from lumicap.files import atomic_write, move_into_place
from lumicap.weights.registry import KNOWN_SETS, KNOWN_WEIGHTS, KnownWeights, get_known, unknown_weights_error

OFFLINE_VARIABLES = ("LUMICAP_OFFLINE", "HF_HUB_OFFLINE")
RECORD_SUFFIX = ".download.json"
_LEGACY_RECORD_SUFFIX = ".sha256"  # written by lumicap <= 0.x for any file it loaded, downloaded or not


def offline_reason() -> str | None:
    """``"LUMICAP_OFFLINE=1"`` (or HF_HUB_OFFLINE) when downloads are switched off, else None."""
    for variable in OFFLINE_VARIABLES:
        value = os.environ.get(variable, "")
        if value.strip().upper() in ("1", "ON", "YES", "TRUE"):
            return f"{variable}={value}"
    return None


def cache_dir() -> Path:
    root = os.environ.get("LUMICAP_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "lumicap")
    return Path(root)


def cached_path(entry: KnownWeights, root: Path | None = None) -> Path:
    return (root or cache_dir()) / entry.name / entry.filename


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------- trust
def record_path(path: Path) -> Path:
    return path.with_name(path.name + RECORD_SUFFIX)


def read_record(path: Path) -> dict | None:
    """The download record beside a cached file, or None (absent or unreadable: then it proves nothing)."""
    try:
        record = json.loads(record_path(path).read_text())
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(record, dict) or not _is_sha256(record.get("sha256")):
        return None
    return record


def write_record(entry: KnownWeights, path: Path, sha256: str, how: str) -> None:
    """Record that lumicap obtained ``path`` itself (``how``: downloaded from X / imported from bundle Y)."""
    record = {
        "name": entry.name,
        "filename": entry.filename,
        "sha256": sha256,
        "source": entry.source,
        "how": how,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write(record_path(path), json.dumps(record, indent=1) + "\n")


def _is_sha256(value) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


@dataclass(frozen=True)
class FileCheck:
    """What lumicap can say about a local file of a catalogue entry."""

    sha256: str
    trusted_by: str | None  # "published", "recorded by lumicap, downloaded from ..."; None = unverified
    problem: str | None  # a mismatch: the file is not what the catalogue or its record says


def check_file(entry: KnownWeights, path: Path, digest: str | None = None) -> FileCheck:
    """Hash ``path`` (or take ``digest``) and compare with the published sha256, the download record and
    the legacy ``.sha256`` record. Writes nothing."""
    actual = digest or sha256_of(path)
    expected, trusted_by = None, None
    if entry.sha256:
        expected, trusted_by = entry.sha256, "published"
    record = read_record(path)
    if expected is None and record is not None:
        expected, trusted_by = record["sha256"], f"recorded by lumicap, {record.get('how') or 'downloaded'}"
    legacy = path.with_name(path.name + _LEGACY_RECORD_SUFFIX)
    if expected is None and legacy.is_file():
        # Older lumicap wrote this for any file it loaded: it catches a later change, it proves no download.
        words = legacy.read_text(errors="replace").split()
        expected = words[0] if words else None
    problem = None
    if expected is not None and actual != expected:
        problem = (
            f"{path}: sha256 {actual[:12]}... does not match the expected {expected[:12]}... for "
            f"'{entry.name}' (corrupt or replaced file); delete it and download again"
        )
    elif entry.sha256_prefix and not actual.startswith(entry.sha256_prefix):
        problem = (
            f"{path}: sha256 {actual[:12]}... does not start with {entry.sha256_prefix} as published for '{entry.name}'"
        )
    return FileCheck(actual, trusted_by, problem)


def verify_file(entry: KnownWeights, path: Path) -> str:
    """Raise on a mismatch with what is published or recorded; return the sha256. Records nothing: a file
    lumicap did not download is used as it is but stays unverified."""
    result = check_file(entry, path)
    if result.problem:
        raise WeightsError(result.problem)
    return result.sha256


# ------------------------------------------------------------------------------------------- resolution
class MissingWeightsError(WeightsError):
    """Files a caller needs that are neither cached nor downloadable now; ``missing`` = [(entry, path)]."""

    def __init__(self, message: str, missing: list[tuple[KnownWeights, Path]], lines: list[str] | None = None):
        super().__init__(message)
        self.missing = missing
        # What the command line prints, one line each: the summary, one line per missing file, the way to
        # fetch them without network (``str(self)`` stays the whole story in one line, for logs and the web page).
        if lines:
            self.problems = list(lines)


def missing_message(
    missing: list[tuple[KnownWeights, Path]],
    reason: str,
    needed_by: str | None = None,
    fetch_names: list[str] | None = None,
    root: Path | None = None,
) -> str:
    """One line: every missing file (name, file, size, source -> cache path) and the commands that fetch them."""
    count = len(missing)
    what = f"{count} weight file{'' if count == 1 else 's'}"
    are = "is" if count == 1 else "are"
    who = f"{needed_by} needs {what} that {are}" if needed_by else f"{what} {are}"
    files = "; ".join(
        f"'{entry.name}' ({entry.filename}{_size_note(entry.size)}) from {entry.source} -> {target}"
        for entry, target in missing
    )
    names = " ".join(fetch_names or [entry.name for entry, _ in missing])
    cache = f" --cache-dir {root}" if root is not None else ""
    return (
        f"{who} not in the cache ({reason}): {files}; "
        f"fetch {'it' if count == 1 else 'them all'} with 'lumicap weights download {names}{cache}', or without "
        f"network here: 'lumicap weights bundle {names} --out lumicap-weights.tar' on a connected machine, "
        f"then 'lumicap weights import lumicap-weights.tar{cache}' here"
    )


def missing_lines(
    missing: list[tuple[KnownWeights, Path]],
    reason: str,
    needed_by: str | None = None,
    fetch_names: list[str] | None = None,
    root: Path | None = None,
) -> list[str]:
    """``missing_message`` for a terminal: the summary and the fetch command, then one line per missing file,
    then the way without network."""
    count = len(missing)
    what = f"{count} weight file{'' if count == 1 else 's'}"
    are = "is" if count == 1 else "are"
    who = f"{needed_by} needs {what} that {are}" if needed_by else f"{what} {are}"
    names = " ".join(fetch_names or [entry.name for entry, _ in missing])
    cache = f" --cache-dir {root}" if root is not None else ""
    lines = [f"{who} not in the cache ({reason}); fetch {'it' if count == 1 else 'them all'} with "
             f"'lumicap weights download {names}{cache}'"]
    lines += [f"  missing '{entry.name}' ({entry.filename}{_size_note(entry.size)}): from {entry.source} -> {target}"
              for entry, target in missing]
    lines.append(f"  without network here: 'lumicap weights bundle {names} --out lumicap-weights.tar' on a connected "
                 f"machine, then 'lumicap weights import lumicap-weights.tar{cache}' here")
    return lines


def _size_note(size: int | None) -> str:
    return f", {size / 1e6:.0f} MB" if size and size >= 1_000_000 else ""


def ensure_weights(
    names,
    *,
    download: bool = True,
    root: Path | None = None,
    needed_by: str | None = None,
    fetch_names: list[str] | None = None,
) -> dict[str, Path]:
    """Local paths of catalogue files ``names`` (files, not sets): cached ones are checked, missing ones
    downloaded. When any cannot be had (offline, downloads disabled, a failed download) one
    ``MissingWeightsError`` lists every file still missing; the first failed download stops the others
    (a dropped network would time out on each)."""
    paths: dict[str, Path] = {}
    missing: list[tuple[KnownWeights, Path]] = []
    for name in dict.fromkeys(names):
        entry = get_known(name)
        target = cached_path(entry, root)
        if target.is_file():
            _verify_once(entry, target)
            paths[name] = target
        else:
            missing.append((entry, target))

    def fail(reason: str, still_missing) -> MissingWeightsError:
        message = missing_message(still_missing, reason, needed_by, fetch_names, root)
        lines = missing_lines(still_missing, reason, needed_by, fetch_names, root)
        return MissingWeightsError(message, list(still_missing), lines)

    if missing:
        reason = offline_reason()
        if reason is None and not download:
            reason = "downloads disabled"
        if reason is not None:
            raise fail(reason if reason == "downloads disabled" else f"offline: {reason}", missing)
    for index, (entry, target) in enumerate(missing):
        try:
            download_to_cache(entry, target)
        except WeightsError:  # the download arrived but is not the published file
            raise
        except Exception as exc:  # network, hub or disk errors: list what is still missing, and why
            raise fail(f"downloading '{entry.name}' failed: {_first_line(exc)}", missing[index:]) from None
        paths[entry.name] = target
    return {name: paths[name] for name in dict.fromkeys(names)}


_VERIFIED: dict[tuple[str, str], tuple[int, int]] = {}


def _verify_once(entry: KnownWeights, path: Path) -> None:
    """``verify_file``, skipped when this process already checked the file and its size and mtime are
    unchanged (a teacher's files are asked for twice per load; a 636 MB file takes seconds to hash)."""
    stat = path.stat()
    key, seen = (entry.name, str(path.resolve())), (stat.st_size, stat.st_mtime_ns)
    if _VERIFIED.get(key) != seen:
        verify_file(entry, path)
        _VERIFIED[key] = seen


def resolve_weights(name_or_path: str | os.PathLike, *, download: bool = True, root: Path | None = None) -> Path:
    """Return a local file for ``name_or_path``.

    An existing path is returned as is (the caller validates its content). A known name is looked up in
    the cache, verified, and downloaded when absent, ``download`` is true and lumicap is not offline.
    """
    candidate = Path(os.fspath(name_or_path)).expanduser()
    if candidate.exists():
        return candidate
    name = os.fspath(name_or_path)
    if name not in KNOWN_WEIGHTS:
        looks_like_path = os.sep in name or name.endswith((".pt", ".pth", ".bin", ".safetensors", ".ckpt"))
        if looks_like_path:
            raise WeightsError(f"{name}: no such file")
        if name in KNOWN_SETS:
            raise WeightsError(
                f"'{name}' names a set of weight files, not one file; give one of: "
                f"{', '.join(KNOWN_SETS[name].members)}"
            )
        raise unknown_weights_error(name, ", or give a file path")
    return ensure_weights([name], download=download, root=root)[name]


# ------------------------------------------------------------------------------------------- download
def download_to_cache(entry: KnownWeights, target: Path) -> str:
    """Fetch ``entry`` to ``target`` (its cache path), check it, record its sha256; returns the sha256.

    The file is fetched into a temporary folder in the cache root and renamed into place only when
    complete and matching what is published, so a failure leaves no file and no empty folder.
    """
    reason = offline_reason()
    if reason is not None:  # callers check first; this guard keeps every path honest
        raise MissingWeightsError(missing_message([(entry, target)], f"offline: {reason}"), [(entry, target)],
                                  missing_lines([(entry, target)], f"offline: {reason}"))
    root = target.parent.parent
    created = make_folder(root)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=f".download-{entry.name}-"))
    try:
        tmp = staging / entry.filename
        _fetch(entry, tmp, staging)
        result = check_file(entry, tmp)
        if result.problem:
            raise WeightsError(
                f"the file downloaded for '{entry.name}' from {entry.source} is not the published one "
                f"(sha256 {result.sha256[:12]}...); nothing was installed"
            )
        target.parent.mkdir(exist_ok=True)
        # Record first: a crash between the two leaves a record without a file, which downloads again.
        write_record(entry, target, result.sha256, f"downloaded from {entry.source}")
        move_into_place(tmp, target)
        return result.sha256
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        remove_if_empty(created)


def make_folder(folder: Path) -> list[Path]:
    """``mkdir -p``; returns the folders it created, innermost first (for ``remove_if_empty``)."""
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    return created


def remove_if_empty(created: list[Path]) -> None:
    """Undo ``make_folder`` as far as the folders are still empty, so a failure leaves no empty folder."""
    for folder in created:
        try:
            folder.rmdir()
        except OSError:
            break


def _fetch(entry: KnownWeights, dest: Path, staging: Path) -> None:
    if entry.repo_id:
        from huggingface_hub import hf_hub_download

        fetched = hf_hub_download(entry.repo_id, entry.filename, cache_dir=str(staging / "hub"))
        # The hub's snapshot entry is a link to a blob in its cache; move the blob itself.
        move_into_place(Path(fetched).resolve(), dest)
    else:
        _download_url(str(entry.url), dest)


def _download_url(url: str, dest: Path) -> None:
    from tqdm import tqdm

    with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as out:
        if (response.headers.get("Content-Type") or "").startswith("text/html"):
            # File hosts (Google Drive above all) answer with a web page when they want a click or a login.
            raise OSError("the server returned a web page instead of the file; fetch it in a browser")
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name) as bar:
            while block := response.read(1 << 20):
                out.write(block)
                bar.update(len(block))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
