"""Read the tensors of a TorchScript archive without running any of its code.

OpenAI distributes CLIP (``ViT-B-32.pt``, ``RN50x4.pt``) as TorchScript archives: a zip whose
``<name>/data.pkl`` pickles the module tree (objects of ``__torch__.*`` classes whose state dicts hold
tensors and sub-modules) and whose ``<name>/data/<key>`` entries hold the raw storages. ``torch.load``
refuses them with ``weights_only=True`` and ``torch.jit.load`` compiles the archive's code, so this
module unpickles ``data.pkl`` with a whitelist: module classes become inert records, tensors are rebuilt
from the storages, and any other global (a function, a class with behaviour) stops the load.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from lumicap.errors import WeightsError

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "DoubleStorage": torch.float64,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


class _ScriptObject:
    """Stand-in for a ``__torch__.*`` module: keeps the pickled attribute dict, nothing else."""

    def __init__(self, *args):
        self.attributes: dict = {}

    def __setstate__(self, state):
        if isinstance(state, dict):
            self.attributes = state


def _rebuild_tensor(storage, offset, size, stride, *rest):
    return torch.as_strided(storage, tuple(size), tuple(stride), offset)


def _rebuild_parameter(data, *rest):
    return data


def _identity(value, *rest):
    return value


_ALLOWED_FUNCTIONS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch.jit._pickle", "restore_type_tag"): _identity,
    ("torch.jit._pickle", "build_intlist"): _identity,
    ("torch.jit._pickle", "build_floatlist"): _identity,
    ("torch.jit._pickle", "build_boollist"): _identity,
    ("torch.jit._pickle", "build_doublelist"): _identity,
    ("torch.jit._pickle", "build_tensorlist"): _identity,
    ("collections", "OrderedDict"): dict,
    ("builtins", "set"): set,
}


class _ArchiveUnpickler(pickle.Unpickler):
    def __init__(self, file, archive: zipfile.ZipFile, root: str, path: Path):
        super().__init__(file)
        self._archive = archive
        self._root = root
        self._path = path
        self._storages: dict[str, torch.Tensor] = {}

    def find_class(self, module: str, name: str):
        if module.startswith("__torch__"):
            return type(name, (_ScriptObject,), {})
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        if (module, name) in _ALLOWED_FUNCTIONS:
            return _ALLOWED_FUNCTIONS[(module, name)]
        raise WeightsError(f"{self._path}: TorchScript archive refers to '{module}.{name}', which is not plain weights")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage"):
            raise WeightsError(f"{self._path}: unexpected persistent id {pid!r} in TorchScript archive")
        dtype, key = pid[1], str(pid[2])
        if key not in self._storages:
            try:
                raw = self._archive.read(f"{self._root}/data/{key}")
            except KeyError:
                raise WeightsError(
                    f"{self._path}: storage '{key}' missing from the archive (truncated file?)"
                ) from None
            self._storages[key] = torch.frombuffer(bytearray(raw), dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        return self._storages[key]


def is_torchscript_archive(path: str | Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            # torch.save zips hold only data.pkl + storages; TorchScript adds the compiled code.
            return any("/code/" in name for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def read_torchscript_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of the archive's module tree, keyed like ``module.state_dict()`` (``visual.conv1.weight``)."""
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise WeightsError(f"{path}: not a readable TorchScript archive ({exc})") from None
    with archive:
        names = archive.namelist()
        roots = [name[: -len("/data.pkl")] for name in names if name.endswith("/data.pkl") and name.count("/") == 1]
        if not roots:
            raise WeightsError(f"{path}: zip file without '<name>/data.pkl'; not a TorchScript archive")
        try:
            with archive.open(f"{roots[0]}/data.pkl") as handle:
                tree = _ArchiveUnpickler(handle, archive, roots[0], path).load()
        except WeightsError:
            raise
        except Exception as exc:
            raise WeightsError(f"{path}: damaged TorchScript archive ({type(exc).__name__}: {exc})") from None
    state: dict[str, torch.Tensor] = {}
    _collect(tree, "", state)
    if not state:
        raise WeightsError(f"{path}: TorchScript archive holds no tensors")
    return state


def _collect(node, prefix: str, out: dict[str, torch.Tensor]) -> None:
    if not isinstance(node, _ScriptObject):
        return
    for name, value in node.attributes.items():
        if isinstance(value, torch.Tensor):
            out[prefix + name] = value
        elif isinstance(value, _ScriptObject):
            _collect(value, f"{prefix}{name}.", out)
