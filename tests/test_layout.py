"""The joins between modules stay single: one file writer, one torch reader, and the old import paths.

- ``torch.load`` is called only in ``lumicap/weights/reader.py`` (``read_torch_file``: always
  ``weights_only=True``, one error line for a refused or damaged file);
- ``os.replace``/``os.rename``, ``Path.rename`` and hand-made temporary files (``tempfile.mkstemp``,
  ``NamedTemporaryFile``) only in ``lumicap/files.py`` (``atomic_write``, ``replacing``, ``move_into_place``);
- modules that moved keep importing under their old names, as the same module object.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lumicap"

# call (module, attribute) -> the only file allowed to make it
ONLY_IN = {
    ("torch", "load"): "weights/reader.py",
    ("os", "replace"): "files.py",
    ("os", "rename"): "files.py",
    ("tempfile", "mkstemp"): "files.py",
    ("tempfile", "NamedTemporaryFile"): "files.py",
}


def calls_outside_their_place(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        where = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in {module for module, _ in ONLY_IN}:
                for alias in node.names:  # 'from os import replace' would hide the call from the check below
                    allowed = ONLY_IN.get((node.module, alias.name))
                    if allowed is not None and allowed != where:
                        found.append(f"{where}:{node.lineno}: from {node.module} import {alias.name}")
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            owner = node.func.value
            name = owner.id if isinstance(owner, ast.Name) else None
            allowed = ONLY_IN.get((name, node.func.attr))
            if allowed is not None and allowed != where:
                found.append(f"{where}:{node.lineno}: {name}.{node.func.attr}")
            # pathlib's rename (str has no rename, so any .rename() call is a file system rename)
            if node.func.attr == "rename" and name != "os" and where != "files.py":
                found.append(f"{where}:{node.lineno}: .rename()")
    return found


def test_torch_load_and_file_renames_live_in_one_place_each():
    assert calls_outside_their_place(PACKAGE) == []


def test_the_check_finds_a_stray_call(tmp_path):
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "reader.py").write_text("import torch\ntorch.load('x', weights_only=True)\n")
    (tmp_path / "files.py").write_text("import os\nos.replace('a', 'b')\n")
    (tmp_path / "stray.py").write_text(
        "import os, torch\nfrom pathlib import Path\nfrom os import replace\n"
        "def f():\n    torch.load('x')\n    os.replace('a', 'b')\n    Path('a').rename('b')\n"
    )
    assert calls_outside_their_place(tmp_path) == [
        "stray.py:3: from os import replace", "stray.py:5: torch.load", "stray.py:6: os.replace", "stray.py:7: .rename()",
    ]


@pytest.mark.parametrize(
    "old, new",
    [
        ("lumicap.weights_catalog", "lumicap.weights.catalogue"),
        ("lumicap.weights_bundle", "lumicap.weights.bundle"),
        ("lumicap.teacher.presets", "lumicap.weights.teacher_presets"),
        ("lumicap.vgg", "lumicap.losses.vgg"),
        ("lumicap.demo", "lumicap.report.demo"),
        ("lumicap.config.problems", "lumicap.problems"),
    ],
)
def test_moved_modules_import_under_their_old_names(old, new):
    moved = importlib.import_module(old)
    assert moved is importlib.import_module(new)
    assert moved.__spec__.name == new  # still itself: reload and pickling use the real path


def test_old_names_of_the_packages_that_replaced_modules_still_work():
    from lumicap.losses import BUILTIN, StageLoss  # noqa: F401  (was lumicap/losses.py)
    from lumicap.report import CLIP_LEVEL, build_report  # noqa: F401  (was lumicap/report.py)
    from lumicap.weights import (  # noqa: F401  (was lumicap/weights.py)
        KNOWN_WEIGHTS,
        KnownWeights,
        ensure_weights,
        known_weights,
        load_state_dict,
        resolve_weights,
        sha256_of,
        torch_load_failure,
    )

    assert "clipcap-coco" in known_weights()  # the catalogue is loaded with the package
