"""What the repository tracks: source, configs, small fixtures; never a wheel or an archive.

A wheel or tarball committed by accident (a dependency downloaded into the checkout) bloats every clone and
is code nobody reviews; the `.gitignore` keeps the quick start's outputs out of `git status`.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ARCHIVE_SUFFIXES = (".whl", ".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tbz2", ".txz", ".7z",
                    ".rar", ".egg", ".gz", ".bz2", ".xz")


def _tracked_files() -> list[str]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout (an unpacked source archive): nothing is tracked")
    listing = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True)
    return [name for name in listing.stdout.decode("utf-8", "surrogateescape").split("\0") if name]


def test_no_wheel_or_archive_is_tracked():
    archives = [name for name in _tracked_files() if name.lower().endswith(ARCHIVE_SUFFIXES)]
    assert archives == [], f"wheels/archives committed (remove them; install packages through pip): {archives}"


def test_gitignore_covers_the_quick_start_and_eval_outputs():
    _tracked_files()  # skips outside a git checkout
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "lumicap-demo/report/index.html", "eval_results/E/summary.json"],
        cwd=REPO, capture_output=True, text=True,
    )
    assert ignored.stdout.split() == ["lumicap-demo/report/index.html", "eval_results/E/summary.json"]
