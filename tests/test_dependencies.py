"""pyproject's runtime dependencies are exactly what the package imports: none unused, none undeclared.

The import names are read from the package's source with ``ast`` (every ``import``/``from`` statement, also
the lazy ones inside functions), so a dependency that nothing imports any more, or an import of a package
that neither the dependencies nor an extra declares, fails here.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# distribution name -> the module it is imported as (only where they differ)
IMPORT_NAME = {"pillow": "PIL", "pypng": "png", "pyyaml": "yaml", "scikit-image": "skimage",
               "tensorflow-cpu": "tensorflow", "uvicorn": "uvicorn"}
# imported through another package's module: torch.utils.tensorboard needs the tensorboard distribution
IMPORTED_VIA = {"tensorboard": "torch.utils.tensorboard"}
# modules that a declared dependency installs at the exact version it needs (declaring them apart could only
# conflict with that pin): pydantic pins pydantic-core and needs annotated-types, transformers needs tokenizers
PROVIDED_BY = {"pydantic_core": "pydantic", "annotated_types": "pydantic", "tokenizers": "transformers"}


def _dist_name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower()


def _imports() -> set[str]:
    found: set[str] = set()
    for path in (REPO / "lumicap").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
            elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "_require" and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.add(arg.value)  # optional extras imported by name (lumicap.inference.onnx_model)
    return found


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _module_of(dist: str) -> str:
    return IMPORTED_VIA.get(dist, IMPORT_NAME.get(dist, dist.replace("-", "_")))


def test_every_runtime_dependency_is_imported_by_the_package():
    imports = _imports()
    unused = []
    for requirement in _project()["dependencies"]:
        module = _module_of(_dist_name(requirement))
        if not any(name == module or name.startswith(module + ".") for name in imports):
            unused.append(requirement)
    assert not unused, f"declared but never imported by lumicap/: {unused}"


def test_every_third_party_import_is_declared():
    project = _project()
    declared = {_dist_name(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        declared.update(_dist_name(r) for r in extra)
    declared_modules = {_module_of(d).split(".")[0] for d in declared} | {"torch"}
    stdlib = set(sys.stdlib_module_names)
    top_level = {name.split(".")[0] for name in _imports()}
    provided = {m for m, dist in PROVIDED_BY.items() if dist in declared}
    undeclared = sorted(top_level - stdlib - declared_modules - provided - {"lumicap", "__future__"})
    assert not undeclared, f"imported by lumicap/ but not declared in pyproject.toml: {undeclared}"
