"""Known weight files and how to get them: explicit path -> cache -> download.

Every pretrained file lumicap uses is listed in ``KNOWN_WEIGHTS`` with its source (a Hugging Face
repo + filename, or a URL), its expected size and, where published, its sha256. A file downloaded for
the first time has its sha256 recorded next to it in the cache (``<file>.sha256``) and checked on every
later load, so a silently corrupted or replaced cache file is caught. Nothing here runs at import time
and no test ever downloads: tests pass explicit paths.

Cache directory: ``$LUMICAP_CACHE`` or ``~/.cache/lumicap`` (``cache_dir()``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from lumicap.errors import WeightsError


@dataclass(frozen=True)
class KnownWeights:
    """One downloadable file. Exactly one of ``repo_id`` (Hugging Face) or ``url`` is set."""

    name: str
    filename: str
    description: str
    repo_id: str | None = None
    url: str | None = None
    sha256: str | None = None  # pinned when the publisher states it; else recorded at first download
    size: int | None = None  # bytes, approximate is fine for the listing; checked only when sha256 unknown
    sha256_prefix: str | None = None  # torchvision convention: first hex digits of sha256 in the file name

    @property
    def source(self) -> str:
        if self.repo_id:
            # A direct link: what a browser or curl needs to fetch the file by hand.
            return f"https://huggingface.co/{self.repo_id}/resolve/main/{self.filename}"
        return str(self.url)


KNOWN_WEIGHTS: dict[str, KnownWeights] = {}


def register_weights(entry: KnownWeights) -> KnownWeights:
    KNOWN_WEIGHTS[entry.name] = entry
    return entry


def _populate() -> None:
    # Imported lazily so that every module registering weights is visible to ``lumicap weights list``.
    import lumicap.weights_catalog  # noqa: F401


def known_weights() -> dict[str, KnownWeights]:
    _populate()
    return dict(KNOWN_WEIGHTS)


def get_known(name: str) -> KnownWeights:
    _populate()
    if name not in KNOWN_WEIGHTS:
        raise WeightsError(f"unknown weights '{name}'; known: {', '.join(sorted(KNOWN_WEIGHTS))}")
    return KNOWN_WEIGHTS[name]


def cache_dir() -> Path:
    root = os.environ.get("LUMICAP_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "lumicap")
    return Path(root)


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def verify_file(entry: KnownWeights, path: Path) -> str:
    """Check ``path`` against the pinned or recorded sha256; record it when neither exists."""
    actual = sha256_of(path)
    expected = entry.sha256
    record = _record_path(path)
    if expected is None and record.exists():
        expected = record.read_text().split()[0]
    if expected is not None and actual != expected:
        raise WeightsError(
            f"{path}: sha256 {actual[:12]}... does not match the expected {expected[:12]}... for "
            f"'{entry.name}' (corrupt or replaced file); delete it and download again"
        )
    if entry.sha256_prefix and not actual.startswith(entry.sha256_prefix):
        raise WeightsError(
            f"{path}: sha256 {actual[:12]}... does not start with {entry.sha256_prefix} as published for '{entry.name}'"
        )
    if not record.exists():
        record.write_text(f"{actual}  {path.name}\n")
    return actual


def cached_path(entry: KnownWeights, root: Path | None = None) -> Path:
    return (root or cache_dir()) / entry.name / entry.filename


def resolve_weights(name_or_path: str | os.PathLike, *, download: bool = True, root: Path | None = None) -> Path:
    """Return a local file for ``name_or_path``.

    An existing path is returned as is (the caller validates its content). A known name is looked up in
    the cache, verified, and downloaded when absent and ``download`` is true.
    """
    candidate = Path(os.fspath(name_or_path)).expanduser()
    if candidate.exists():
        return candidate
    _populate()
    name = os.fspath(name_or_path)
    if name not in KNOWN_WEIGHTS:
        looks_like_path = os.sep in name or name.endswith((".pt", ".pth", ".bin", ".safetensors", ".ckpt"))
        if looks_like_path:
            raise WeightsError(f"{name}: no such file")
        raise WeightsError(f"unknown weights '{name}'; known: {', '.join(sorted(KNOWN_WEIGHTS))}, or give a file path")
    entry = KNOWN_WEIGHTS[name]
    target = cached_path(entry, root)
    if target.exists():
        verify_file(entry, target)
        return target
    if not download:
        raise WeightsError(_missing_message(entry, target, "downloads disabled"))
    try:
        _download(entry, target)
    except WeightsError:
        raise
    except Exception as exc:  # network, hub or disk errors: one line, with what to do instead
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(_missing_message(entry, target, reason)) from None
    verify_file(entry, target)
    return target


def _missing_message(entry: KnownWeights, target: Path, reason: str) -> str:
    return (
        f"weights '{entry.name}' ({entry.filename}) are not in the cache and could not be downloaded "
        f"from {entry.source} ({reason}); download it there and pass its path, or put it at {target}"
    )


def _download(entry: KnownWeights, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".part-", suffix=entry.filename)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if entry.repo_id:
            from huggingface_hub import hf_hub_download

            fetched = hf_hub_download(entry.repo_id, entry.filename, cache_dir=str(target.parent / ".hf"))
            shutil.copyfile(fetched, tmp)
        else:
            _download_url(str(entry.url), tmp)
        os.replace(tmp, target)  # atomic: a broken download never looks like a cached file
    finally:
        if tmp.exists():
            tmp.unlink()


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


def load_state_dict(path: str | os.PathLike) -> dict:
    """Load a state dict safely: safetensors, or a torch pickle with ``weights_only=True``.

    Pickles that would run code, truncated files and non-dict payloads raise one-line ``WeightsError``.
    A checkpoint that wraps its weights under ``state_dict``/``model``/``params`` is unwrapped.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:
            raise WeightsError(f"{path}: not a readable safetensors file ({_first_line(exc)})") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        msg = _first_line(exc)
        if "Weights only load failed" in msg or "weights_only" in msg or "Unsupported global" in str(exc):
            raise WeightsError(
                f"{path}: refused to load: the file is a pickle that would run code or build objects other "
                f"than tensors (only plain weight files are accepted)"
            ) from None
        raise WeightsError(f"{path}: not a readable checkpoint (truncated or not a torch file: {msg})") from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "params", "params_ema"):
            if key in obj and isinstance(obj[key], dict) and obj[key] and all(isinstance(k, str) for k in obj[key]):
                inner = obj[key]
                if all(hasattr(v, "shape") for v in inner.values()):
                    return inner
        return obj
    raise WeightsError(f"{path}: expected a dict of tensors, found {type(obj).__name__}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
