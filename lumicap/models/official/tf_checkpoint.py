"""Read TensorFlow (1.x ``tf.train.Saver``) checkpoints into ``{variable name: tensor}``.

A TF checkpoint is a prefix ``P`` with ``P.index`` (the variable table) and ``P.data-00000-of-00001``
(the values), usually in a folder whose ``checkpoint`` text file names the latest prefix. Accepted:
the ``.index`` file, the prefix, a checkpoint folder, or a folder of checkpoint folders (RetinexNet's
``model/`` with ``Decom/`` and ``Relight/``: their variables come back as ``Decom/<name>``,
``Relight/<name>``). Reading needs TensorFlow, an optional extra: ``pip install 'lumicap[tf]'``.
Nothing here runs code from the file: the table and the values are data.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import numpy as np
import torch

from lumicap.errors import WeightsError

EXTRA_HINT = "pip install 'lumicap[tf]' (in a checkout: pip install -e '.[tf]')"


def is_tf_checkpoint(path: Path) -> bool:
    """Whether ``path`` looks like a TF checkpoint (file, prefix or folder) rather than a torch file."""
    path = Path(path)
    if path.is_file():
        return path.suffix == ".index" or _data_prefix(path) is not None
    if Path(f"{path}.index").is_file():
        return True
    if path.is_dir():
        return bool(_prefixes_in(path)) or any(_prefixes_in(sub) for sub in _subfolders(path))
    return False


def _data_prefix(path: Path) -> Path | None:
    """``P`` for a data shard ``P.data-00000-of-00001`` whose ``P.index`` exists."""
    match = re.fullmatch(r"(.+)\.data-\d{5}-of-\d{5}", path.name)
    if match and (path.parent / f"{match.group(1)}.index").is_file():
        return path.parent / match.group(1)
    return None


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir())


def _prefixes_in(folder: Path) -> list[Path]:
    """The checkpoint prefix of a folder: the one its ``checkpoint`` file names, else its only ``.index``."""
    named = folder / "checkpoint"
    if named.is_file():
        match = re.search(r'^model_checkpoint_path:\s*"([^"]+)"', named.read_text(errors="replace"), re.M)
        if match:
            prefix = Path(match.group(1))
            prefix = prefix if prefix.is_absolute() else folder / prefix
            if Path(f"{prefix}.index").is_file():
                return [prefix]
            prefix = folder / prefix.name  # a checkpoint file written on another machine
            if Path(f"{prefix}.index").is_file():
                return [prefix]
    indexes = sorted(folder.glob("*.index"))
    return [Path(str(p)[: -len(".index")]) for p in indexes]


def read_tf_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """All numeric variables of the checkpoint(s) at ``path`` as CPU tensors (see the module docstring)."""
    path = Path(path)
    _tensorflow(path)  # without TensorFlow, say so about the path the user gave
    if path.suffix == ".index":
        return _read_prefix(Path(str(path)[: -len(".index")]), path)
    if path.is_file() and _data_prefix(path) is not None:
        return _read_prefix(_data_prefix(path), path)
    if path.is_dir():
        own = _prefixes_in(path)
        if len(own) > 1:
            raise WeightsError(f"{path}: {len(own)} TensorFlow checkpoints and no 'checkpoint' file naming one")
        if own:
            return _read_prefix(own[0], path)
        state: dict[str, torch.Tensor] = {}
        for sub in _subfolders(path):
            prefixes = _prefixes_in(sub)
            if len(prefixes) == 1:
                state.update({f"{sub.name}/{k}": v for k, v in _read_prefix(prefixes[0], sub).items()})
        if not state:
            raise WeightsError(f"{path}: a folder without a TensorFlow checkpoint (no .index file) or weight file")
        return state
    if Path(f"{path}.index").is_file():
        return _read_prefix(path, path)
    raise WeightsError(f"{path}: no such TensorFlow checkpoint (expected a .index file, its prefix or a folder)")


def read_tf_checkpoint_files(parts: dict[str, tuple[Path, Path]]) -> dict[str, torch.Tensor]:
    """Checkpoints given as separate files (e.g. from the download cache): ``{folder name: (index, data)}``.
    TensorFlow wants ``P.index`` beside ``P.data-...``, so each pair is linked into one temporary folder."""
    state: dict[str, torch.Tensor] = {}
    with tempfile.TemporaryDirectory(prefix="lumicap-tf-") as tmp:
        for name, (index, data) in parts.items():
            folder = Path(tmp) / name
            folder.mkdir(parents=True)
            prefix = folder / "checkpoint-files"
            _link(index, Path(f"{prefix}.index"))
            _link(data, Path(f"{prefix}.data-00000-of-00001"))
            state.update({f"{name}/{k}": v for k, v in _read_prefix(prefix, index).items()})
    return state


def _link(source: Path, target: Path) -> None:
    try:
        target.symlink_to(Path(source).resolve())
    except OSError:  # no symlinks (some Windows setups): copy
        import shutil

        shutil.copyfile(source, target)


def _tensorflow(shown: Path):
    # TF's start-up chatter is not for our users; oneDNN only matters for computing, and we only read files.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    try:
        import tensorflow as tf
    except ImportError:
        raise WeightsError(
            f"{shown}: a TensorFlow checkpoint; reading it needs TensorFlow, which is not installed: {EXTRA_HINT}"
        ) from None
    return tf


def _read_prefix(prefix: Path, shown: Path) -> dict[str, torch.Tensor]:
    tf = _tensorflow(shown)
    try:
        reader = tf.train.load_checkpoint(str(prefix))
        shapes = reader.get_variable_to_shape_map()
        dtypes = reader.get_variable_to_dtype_map()
        state = {}
        for name in sorted(shapes):
            if not (dtypes[name].is_floating or dtypes[name].is_integer):
                continue  # e.g. string variables: not weights
            state[name] = torch.from_numpy(np.array(reader.get_tensor(name)))  # 0-d values come as numpy scalars
        return state
    except Exception as exc:  # truncated data, corrupt table, missing shard: one line
        text = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise WeightsError(f"{shown}: not a readable TensorFlow checkpoint (truncated or corrupt: {text})") from None
