"""Helpers for the reliability tests: files that would run code when unpickled, truncated copies, a tiny
real training run, and the check that a CLI failure is one line without a traceback."""

from __future__ import annotations

import pickle
import shutil
import zipfile
from pathlib import Path

import torch
import yaml

from reliability.fuzzrun import run_cli
from reliability.soak import make_dataset


class RunsCodeOnLoad:
    """Unpickling this calls ``open(marker, "w")``: the marker file appearing proves code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_code_pickle(path: Path, marker: Path, legacy: bool = False) -> Path:
    """A torch checkpoint (zip, or the pre-1.6 legacy format) whose unpickling creates ``marker``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"model": {"weight": torch.zeros(2)}, "payload": RunsCodeOnLoad(marker)}
    torch.save(payload, path, _use_new_zipfile_serialization=not legacy)
    return path


def write_code_torchscript(path: Path, marker: Path) -> Path:
    """A zip laid out like OpenAI's TorchScript CLIP files (``code/`` + ``data.pkl``) whose pickle runs code."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ViT-B-32/version", "3\n")
        archive.writestr("ViT-B-32/code/__torch__/model.py", "class Model: pass\n")
        archive.writestr("ViT-B-32/data.pkl", pickle.dumps(RunsCodeOnLoad(marker), protocol=2))
    return path


def truncate(path: Path, fraction: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * fraction))])
    return path


def assert_one_line_error(rc, stdout: str, stderr: str, tb, *must_contain: str) -> str:
    assert tb is None, f"exception escaped the CLI:\n{tb}"
    assert rc == 2, f"exit {rc}; stderr: {stderr!r}"
    assert "Traceback" not in stderr + stdout
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one stderr line, got {lines!r}"
    assert lines[0].startswith("lumicap: error: ")
    for text in must_contain:
        assert text in lines[0], f"{text!r} not in {lines[0]!r}"
    return lines[0]


def tiny_train_config(tmp: Path, iterations: int = 4, **train) -> Path:
    """A real config: IAT on 24x24 generated pairs, 16-pixel patches, checkpoint every iteration."""
    data = tmp / "data"
    if not data.is_dir():
        make_dataset(data, train_pairs=4, test_pairs=1, size=24)
    config = {
        "model": {"name": "iat"},
        "data": {"root": str(data), "layout": "folders", "num_workers": 0, "val_fraction": 0.25},
        "stages": [
            {"name": "main", "iterations": iterations, "batch_size": 2, "patch_size": 16, "losses": {"l1": 1.0}}
        ],
        "train": {"seed": 0, "val_every": 2, "ckpt_every": 1, "log_every": 1, "device": "cpu", **train},
        "output_dir": str(tmp / "runs"),
    }
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def train_stopped_run(tmp: Path) -> Path:
    """Train 2 of 4 iterations (the run stays resumable); returns its run folder."""
    config = tiny_train_config(tmp)
    rc, out, err, tb = run_cli(["train", str(config), "--max-iters", "2", "--no-progress"])
    assert tb is None and rc == 0, (rc, err, tb)
    (run,) = sorted((tmp / "runs").glob("tiny/*/seed0"))
    return run


def shared_stopped_run(tmp_path_factory) -> Path:
    """One stopped run per test session (several test modules copy it; none may change it)."""
    base = tmp_path_factory.getbasetemp() / "reliability-stopped-run"
    record = base / "run-path.txt"
    if not record.is_file():
        base.mkdir(exist_ok=True)
        record.write_text(str(train_stopped_run(base)))
    return Path(record.read_text())


def copy_run(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    return dest
