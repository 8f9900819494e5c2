"""Carry weights to a machine without network: ``lumicap weights bundle`` and ``lumicap weights import``.

A bundle is a folder or an uncompressed ``.tar`` (weights do not compress) laid out like the cache::

    lumicap-weights.json        manifest: {"format": "lumicap-weights-bundle", "version": 1, "names": [...],
                                "files": [{"name", "filename", "path", "size", "sha256", "source", "trusted_by"}]}
    <name>/<filename>           one per catalogue file

``make_bundle`` takes each file from the cache (downloading what is missing) and bundles only files
lumicap can vouch for: a published sha256, or one it recorded when it downloaded the file itself.
``import_bundle`` reads nothing but the manifest's files, checks each against the manifest and the
catalogue (known name, its file name, its published sha256), and installs all of them or none: anything
unknown, mismatched or in conflict with a different cached file refuses the whole bundle. A cached file
is never overwritten. Sizes are checked before anything is extracted: each file's size in the bundle
must be the manifest's, the cache's disk must hold them all, and no copy reads past the declared size
(a 14 MB compressed or 10 KB sparse tar can hold a 3 GiB member: it is refused without writing it). Files
without a published sha256 are as trustworthy as the bundle's manifest: carry it the way you would carry the
weights themselves.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from lumicap.errors import WeightsError
from lumicap.files import atomic_write, move_into_place
from lumicap.weights.registry import KnownWeights, expand_names, known_weights
from lumicap.weights.store import (
    cache_dir,
    cached_path,
    check_file,
    ensure_weights,
    make_folder,
    remove_if_empty,
    sha256_of,
    write_record,
)

MANIFEST_NAME = "lumicap-weights.json"
BUNDLE_FORMAT = "lumicap-weights-bundle"
MAX_MANIFEST_BYTES = 16 << 20  # a manifest lists a few dozen files
_COMPRESSED = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip", ".gz")


@dataclass(frozen=True)
class BundledFile:
    entry: KnownWeights
    sha256: str
    size: int
    status: str  # make_bundle: "bundled"; import_bundle: "installed", "already cached[, now verified]"


# ------------------------------------------------------------------------------------------------ bundle
def make_bundle(
    names: list[str], out: str | os.PathLike, root: Path | None = None, download: bool = True
) -> list[BundledFile]:
    """Write every file ``names`` (files or sets) need to ``out`` (a new folder, or a new ``.tar``)."""
    out = Path(out).expanduser()
    if out.name.lower().endswith(_COMPRESSED):
        raise WeightsError(f"{out}: a bundle is a folder or an uncompressed .tar (weights do not compress)")
    as_tar = out.suffix.lower() == ".tar"
    if out.exists() and (as_tar or not out.is_dir() or any(out.iterdir())):
        raise WeightsError(
            f"{out} already exists; give a new {'file' if as_tar else 'folder'} (nothing is overwritten)"
        )
    entries = expand_names(names)
    # Cached files first: refuse the ones nothing vouches for before downloading anything.
    checks, unverified = {}, []
    for entry in entries:
        target = cached_path(entry, root)
        if target.is_file():
            checks[entry.name] = result = check_file(entry, target)
            if result.problem:
                raise WeightsError(result.problem)
            if result.trusted_by is None:
                unverified.append(f"'{entry.name}' ({target})")
    if unverified:
        one = len(unverified) == 1
        raise WeightsError(
            f"not bundled: {', '.join(unverified)} {'was' if one else 'were'} not downloaded by lumicap and "
            f"{'has' if one else 'have'} no published sha256 (unverified); delete {'it' if one else 'them'} "
            f"and run the bundle again to download a checked copy"
        )
    paths = {e.name: cached_path(e, root) for e in entries if e.name in checks}
    paths.update(
        ensure_weights(
            [e.name for e in entries if e.name not in checks], download=download, root=root, fetch_names=list(names)
        )
    )
    files = []
    for entry in entries:
        # A fresh download was checked and recorded on its way in; hash it once more for the manifest.
        result = checks.get(entry.name) or check_file(entry, paths[entry.name])
        files.append((entry, paths[entry.name], result))
    manifest = {
        "format": BUNDLE_FORMAT,
        "version": 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "names": list(names),
        "files": [
            {
                "name": entry.name,
                "filename": entry.filename,
                "path": f"{entry.name}/{entry.filename}",
                "size": path.stat().st_size,
                "sha256": result.sha256,
                "source": entry.source,
                "trusted_by": result.trusted_by,
            }
            for entry, path, result in files
        ],
    }
    payload = (json.dumps(manifest, indent=1) + "\n").encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    if as_tar:
        _write_tar(out, payload, [(path, item["path"]) for (_, path, _), item in zip(files, manifest["files"])])
    else:
        _write_folder(out, payload, [(path, item["path"]) for (_, path, _), item in zip(files, manifest["files"])])
    return [BundledFile(e, r.sha256, p.stat().st_size, "bundled") for e, p, r in files]


def _write_tar(out: Path, manifest: bytes, files: list[tuple[Path, str]]) -> None:
    import io

    def write(handle) -> None:
        with tarfile.open(fileobj=handle, mode="w", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo(MANIFEST_NAME)
            info.size, info.mtime, info.mode = len(manifest), int(time.time()), 0o644
            tar.addfile(info, io.BytesIO(manifest))
            for path, arcname in files:
                # Plain file members only (a symlinked cache file is stored as its content).
                info = tarfile.TarInfo(arcname)
                info.size, info.mtime, info.mode = path.stat().st_size, int(path.stat().st_mtime), 0o644
                with open(path, "rb") as fh:
                    tar.addfile(info, fh)

    atomic_write(out, write)


def _write_folder(out: Path, manifest: bytes, files: list[tuple[Path, str]]) -> None:
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part"))
    try:
        for path, relative in files:
            (staging / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, staging / relative)
        (staging / MANIFEST_NAME).write_bytes(manifest)
        if out.exists():
            out.rmdir()  # checked empty above
        move_into_place(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ import
def import_bundle(bundle: str | os.PathLike, root: Path | None = None) -> list[BundledFile]:
    """Check every file of ``bundle`` and install them all into the cache, or refuse and install none."""
    bundle = Path(bundle).expanduser()
    if bundle.is_dir():
        reader = _FolderReader(bundle)
    elif bundle.is_file():
        try:
            reader = _TarReader(bundle)
        except (tarfile.TarError, OSError) as exc:
            raise WeightsError(f"{bundle}: not a bundle folder nor a readable .tar ({exc})") from None
    else:
        raise WeightsError(f"{bundle}: no such bundle (a folder or .tar written by 'lumicap weights bundle')")
    with reader:
        items = _read_manifest(bundle, reader.read_manifest())
        catalogue = known_weights()
        listed = {item["path"] for item in items} | {MANIFEST_NAME}
        problems = [f"unknown file '{name}' (not in the manifest)" for name in sorted(reader.members() - listed)]
        problems += [problem for item in items for problem in _catalogue_problems(item, catalogue)]
        problems += [problem for item in items for problem in _size_problems(reader, item)]
        if problems:
            raise WeightsError(f"{bundle}: refused, nothing installed: {'; '.join(problems)}")
        root = root or cache_dir()
        try:
            _check_free_space(bundle, root, items)
            created = make_folder(root)
            staging = Path(tempfile.mkdtemp(dir=root, prefix=".import-"))
        except OSError as exc:
            raise WeightsError(f"{root}: cannot use it as the weights cache ({exc.strerror or exc})") from None
        try:
            staged = [
                _stage(reader, item, catalogue[item["name"]], staging / f"{index}-{item['filename']}", root)
                for index, item in enumerate(items)
            ]
            problems = [f"'{item['path']}': {one.problem}" for item, one in zip(items, staged) if one.problem]
            if problems:
                raise WeightsError(f"{bundle}: refused, nothing installed: {'; '.join(problems)}")
            return [_install(one, root, f"imported from bundle {bundle.resolve()}") for one in staged]
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            remove_if_empty(created)


@dataclass(frozen=True)
class _Staged:
    entry: KnownWeights
    tmp: Path
    sha256: str | None
    problem: str | None
    status: str | None  # "installed", "already cached", "already cached, now verified"


def _size_problems(reader, item: dict) -> list[str]:
    """The file's size in the bundle (tar header or folder entry) against the manifest's, before any copy."""
    found = reader.size(item["path"])
    if found is None or found == item["size"]:
        return []  # a missing member is reported when it is copied
    return [f"'{item['path']}' is {found:,} bytes in the bundle, the manifest says {item['size']:,}"]


def _check_free_space(bundle: Path, root: Path, items: list[dict]) -> None:
    needed = sum(item["size"] for item in items)
    existing = next(folder for folder in (root, *root.parents) if folder.exists())  # the cache may not exist yet
    free = shutil.disk_usage(existing).free
    if needed > free:
        raise WeightsError(
            f"{bundle}: refused, nothing installed: its files need {needed / 1e9:.2f} GB and the cache's disk "
            f"({root}) has {free / 1e9:.2f} GB free"
        )


def _stage(reader, item: dict, entry: KnownWeights, tmp: Path, root: Path) -> _Staged:
    """Copy one bundle file out and check it against the manifest, the catalogue and the cache."""
    problem = reader.copy(item["path"], tmp, item["size"])
    if problem is not None:
        return _Staged(entry, tmp, None, problem, None)
    digest = sha256_of(tmp)
    if digest != item["sha256"]:
        problem = f"sha256 {digest[:12]}... does not match the manifest's {item['sha256'][:12]}..."
        return _Staged(entry, tmp, digest, problem, None)
    problem = check_file(entry, tmp, digest).problem
    if problem is not None:
        return _Staged(entry, tmp, digest, problem, None)
    problem, status = _compare_with_cache(entry, cached_path(entry, root), digest)
    return _Staged(entry, tmp, digest, problem, status)


def _install(staged: _Staged, root: Path, how: str) -> BundledFile:
    target = cached_path(staged.entry, root)
    if staged.status == "installed":
        target.parent.mkdir(exist_ok=True)
        write_record(staged.entry, target, staged.sha256, how)
        move_into_place(staged.tmp, target)
    elif staged.status == "already cached, now verified":
        # Same bytes as a file the bundler vouched for: the cached copy is vouched for now too.
        write_record(staged.entry, target, staged.sha256, f"identical to the file {how}")
    return BundledFile(staged.entry, staged.sha256, target.stat().st_size, staged.status)


def _read_manifest(bundle: Path, raw: bytes | None) -> list[dict]:
    if raw is None:
        raise WeightsError(f"{bundle}: no {MANIFEST_NAME}; not a bundle written by 'lumicap weights bundle'")
    try:
        manifest = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise WeightsError(f"{bundle}: {MANIFEST_NAME} is not readable JSON ({str(exc)[:120]})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise WeightsError(f"{bundle}: {MANIFEST_NAME} is not a lumicap weights bundle manifest")
    if manifest.get("version") != 1:
        raise WeightsError(f"{bundle}: bundle version {manifest.get('version')!r} is not supported (1 is)")
    files = manifest.get("files")
    fields = ("name", "filename", "path", "sha256")

    def entry_ok(f) -> bool:
        size = f.get("size") if isinstance(f, dict) else None
        return (all(isinstance(f.get(k), str) for k in fields) and isinstance(size, int) and not isinstance(size, bool)
                and size >= 0)

    if not isinstance(files, list) or not all(entry_ok(f) for f in files):
        raise WeightsError(
            f"{bundle}: {MANIFEST_NAME}: 'files' must be a list of entries with {', '.join(fields)} and size (bytes)"
        )
    if not files:
        raise WeightsError(f"{bundle}: {MANIFEST_NAME} lists no files: nothing to import")
    names = [f["name"] for f in files]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise WeightsError(f"{bundle}: {MANIFEST_NAME} lists {', '.join(duplicates)} more than once")
    return files


def _catalogue_problems(item: dict, catalogue: dict[str, KnownWeights]) -> list[str]:
    entry = catalogue.get(item["name"])
    if entry is None:
        return [f"'{item['name']}' is not in this lumicap's weights catalogue"]
    problems = []
    if item["filename"] != entry.filename or item["path"] != f"{entry.name}/{entry.filename}":
        problems.append(f"'{item['path']}' is not where '{entry.name}' belongs ({entry.name}/{entry.filename})")
    sha = item["sha256"]
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        problems.append(f"'{item['name']}': sha256 {sha[:70]!r} is not a sha256")
    elif entry.sha256 and sha != entry.sha256:
        problems.append(f"'{item['name']}': sha256 {sha[:12]}... is not the published {entry.sha256[:12]}...")
    return problems


def _compare_with_cache(entry: KnownWeights, target: Path, digest: str) -> tuple[str | None, str]:
    if not target.exists():
        return None, "installed"
    if not target.is_file():
        return f"{target} exists and is not a file", ""
    cached = check_file(entry, target)
    if cached.sha256 == digest:
        return None, "already cached" if cached.trusted_by else "already cached, now verified"
    return (
        f"the cache already holds a different {entry.filename} ({target}, sha256 {cached.sha256[:12]}...); "
        "it is never replaced: delete it to import this one"
    ), ""


class _FolderReader:
    def __init__(self, folder: Path):
        self.folder = folder

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def read_manifest(self) -> bytes | None:
        path = self.folder / MANIFEST_NAME
        if not path.is_file():
            return None
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise WeightsError(
                f"{self.folder}: {MANIFEST_NAME} is larger than a manifest can be ({MAX_MANIFEST_BYTES >> 20} MiB)"
            )
        return path.read_bytes()

    def members(self) -> set[str]:
        return {p.relative_to(self.folder).as_posix() for p in self.folder.rglob("*") if not p.is_dir()}

    def _plain_file(self, relative: str) -> Path | None:
        source = self.folder / relative
        if ".." in Path(relative).parts or source.is_symlink() or not source.is_file():
            return None
        return source

    def size(self, relative: str) -> int | None:
        source = self._plain_file(relative)
        return source.stat().st_size if source is not None else None

    def copy(self, relative: str, dest: Path, size: int) -> str | None:
        source = self._plain_file(relative)
        if source is None:
            return "missing from the bundle, or not a plain file"
        with open(source, "rb") as fh:
            return _copy_at_most(fh, dest, size)


class _TarReader:
    def __init__(self, path: Path):
        self.tar = tarfile.open(path, "r:*")
        self.by_name = {}
        for member in self.tar.getmembers():
            self.by_name.setdefault(member.name.removeprefix("./"), []).append(member)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.tar.close()
        return False

    def read_manifest(self) -> bytes | None:
        members = self.by_name.get(MANIFEST_NAME, [])
        if len(members) != 1 or not members[0].isreg():
            return None
        if members[0].size > MAX_MANIFEST_BYTES:
            raise WeightsError(
                f"{self.tar.name}: {MANIFEST_NAME} is larger than a manifest can be ({MAX_MANIFEST_BYTES >> 20} MiB)"
            )
        return self.tar.extractfile(members[0]).read()

    def members(self) -> set[str]:
        return {name for name, members in self.by_name.items() if not all(m.isdir() for m in members)}

    def _member(self, relative: str):
        members = self.by_name.get(relative, [])
        # Links, devices and duplicate names are never followed: only one plain file per path.
        return members[0] if len(members) == 1 and members[0].isreg() else None

    def size(self, relative: str) -> int | None:
        member = self._member(relative)
        return member.size if member is not None else None

    def copy(self, relative: str, dest: Path, size: int) -> str | None:
        member = self._member(relative)
        if member is None:
            return "missing from the bundle, or not one plain file"
        with self.tar.extractfile(member) as source:
            return _copy_at_most(source, dest, size)


def _copy_at_most(source, dest: Path, size: int, chunk: int = 1 << 20) -> str | None:
    """Copy ``source`` into ``dest`` up to ``size`` bytes; a problem when it holds more (nothing past it is written)."""
    written = 0
    with open(dest, "wb") as out:
        while block := source.read(min(chunk, size + 1 - written)):
            written += len(block)
            if written > size:  # one byte past the declared size is enough to know
                return f"holds more than the {size:,} bytes its manifest entry says"
            out.write(block)
    return None
