"""Old import paths of modules that moved, kept working: ``import lumicap.weights_catalog`` gives the module
``lumicap.weights.catalogue`` itself (the same object, so monkeypatching either name patches both).

A finder on ``sys.meta_path`` answers only for the names in ``MOVED``; every other import is untouched.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

# old name -> where the module lives now
MOVED = {
    "lumicap.weights_catalog": "lumicap.weights.catalogue",
    "lumicap.weights_bundle": "lumicap.weights.bundle",
    "lumicap.teacher.presets": "lumicap.weights.teacher_presets",
    "lumicap.vgg": "lumicap.losses.vgg",
    "lumicap.demo": "lumicap.report.demo",
    "lumicap.config.problems": "lumicap.problems",
}


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        module = importlib.import_module(MOVED[spec.name])
        spec.loader_state = module.__spec__  # the machinery is about to give the module the alias's spec
        return module

    def exec_module(self, module):
        module.__spec__ = module.__spec__.loader_state  # its own spec back (reload, pickling by module path)


def install() -> None:
    if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _MovedModuleFinder())  # first: a stale copy of an old file must not win
