"""`lumicap train` checks everything a run needs before it makes a run folder (issue 13, item 4): each bad
value, a hostile YAML document or an unusable output folder is one stderr line naming the key or file,
exit 2, and no run folder is left behind stuck at "created"."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from lumicap.cli import main


def _dataset(root: Path, train: int, test: int = 1, size: int = 20) -> Path:
    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("test", test)):
        for side in ("low", "high"):
            (root / split / side).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            high = rng.integers(30, 255, (size, size, 3), dtype=np.uint8)
            Image.fromarray(high).save(root / split / "high" / f"{i}.png")
            Image.fromarray(high // 6).save(root / split / "low" / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return _dataset(tmp_path_factory.mktemp("data"), train=4)


def _config(tmp_path: Path, data_root: Path, **edits) -> Path:
    config = {
        "model": {"name": "retinexnet", "overrides": {"channels": 4, "decom_layers": 2}},
        "data": {"root": str(data_root), "layout": "folders", "num_workers": 0, "val_fraction": 0.25, "cache": False},
        "stages": [{"name": "main", "iterations": 2, "batch_size": 2, "patch_size": 16, "losses": {"l1": 1.0}}],
        "train": {"seed": 0, "val_every": 1, "ckpt_every": 1, "log_every": 1, "device": "cpu"},
        "output_dir": str(tmp_path / "runs"),
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _fails_in_one_line(capsys, argv: list[str], *must_contain: str) -> str:
    rc = main(argv)
    captured = capsys.readouterr()
    assert rc == 2, f"exit {rc}; stderr: {captured.err[-2000:]!r}"
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, lines[:5]
    assert lines[0].startswith("lumicap: error: ") and len(lines[0]) < 400, lines[0][:500]
    for text in must_contain:
        assert text in lines[0], f"{text!r} not in {lines[0]!r}"
    return lines[0]


def _no_run_folder(tmp_path: Path) -> None:
    made = list((tmp_path / "runs").rglob("run.json")) if (tmp_path / "runs").exists() else []
    assert not made, f"a run folder was made: {made}"


BAD_OVERRIDES = {
    "adam eps below zero": (["stages.0.optimizer.eps=-1"], ["stages.0.optimizer.eps", "-1", "(0, 1]"]),
    "sgd momentum below zero": (
        ["stages.0.optimizer={name: sgd, lr: 0.01, momentum: -1}"], ["stages.0.optimizer.momentum", "-1"]
    ),
    "seed beyond 64 bits": ([f"train.seed={2**64}"], ["train.seed", str(2**64), str(2**63 - 1)]),
    "unknown model variant": (["model.overrides={variant: evil}"], ["model.overrides.variant", "evil"]),
    "bad value of a model argument": (["model.overrides={channels: -4}"], ["model.overrides.channels", "-4"]),
    "huge learning rate": (["stages.0.optimizer.lr=1e300"], ["stages.0.optimizer.lr", "1e+300"]),
    "infinite learning rate": (["stages.0.optimizer.lr=.inf"], ["stages.0.optimizer.lr", "inf"]),
    "ssim patch below its window": (
        ["stages.0.losses={l1: 1, ssim: 1}", "stages.0.patch_size=8"], ["stages.0.patch_size", "8", "ssim", "11"]
    ),
}


@pytest.mark.parametrize("case", list(BAD_OVERRIDES))
def test_bad_value_is_one_line_before_any_run_folder(capsys, tmp_path, data_root, case):
    overrides, expected = BAD_OVERRIDES[case]
    config = _config(tmp_path, data_root)
    _fails_in_one_line(capsys, ["train", str(config), *overrides, "--no-progress"], *expected)
    _no_run_folder(tmp_path)


def test_seeds_flag_beyond_64_bits(capsys, tmp_path, data_root):
    config = _config(tmp_path, data_root)
    _fails_in_one_line(capsys, ["train", str(config), "--seeds", f"1,{2**64}"], "--seeds", str(2**63 - 1))
    _no_run_folder(tmp_path)


def test_yaml_nested_100000_deep(capsys, tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("model: " + "[" * 100_000 + "]" * 100_000 + "\n")
    _fails_in_one_line(capsys, ["train", str(path)], str(path), "nest")


@pytest.mark.parametrize("what", ["a file", "below a file", "not writable"])
def test_output_dir_that_cannot_be_made(capsys, tmp_path, data_root, what):
    config = _config(tmp_path, data_root)
    target = tmp_path / "blocker"
    if what == "a file":
        target.write_text("x")
    elif what == "below a file":
        (tmp_path / "file").write_text("x")
        target = tmp_path / "file" / "runs"
    else:
        if os.geteuid() == 0:
            pytest.skip("root may write into read-only folders")
        target.mkdir()
        target.chmod(0o500)
    try:
        _fails_in_one_line(capsys, ["train", str(config), "--output-dir", str(target), "--no-progress"], str(target))
    finally:
        if what == "not writable":
            target.chmod(0o700)
    _no_run_folder(tmp_path)


@pytest.mark.parametrize("pairs", [0, 1])
def test_training_split_too_small_is_refused_before_the_folder(capsys, tmp_path, pairs):
    data = _dataset(tmp_path / "data", train=pairs)
    config = _config(tmp_path, data)
    _fails_in_one_line(capsys, ["train", str(config), "--no-progress"], "train")
    _no_run_folder(tmp_path)


def test_empty_test_split_is_refused_before_the_folder(capsys, tmp_path):
    data = _dataset(tmp_path / "data", train=4, test=0)
    config = _config(tmp_path, data)
    _fails_in_one_line(capsys, ["train", str(config), "--no-progress"], "test")
    _no_run_folder(tmp_path)


def test_batch_larger_than_the_training_split(capsys, tmp_path, data_root):
    config = _config(tmp_path, data_root)
    _fails_in_one_line(capsys, ["train", str(config), "stages.0.batch_size=8", "--no-progress"], "stages.0.batch_size", "8")
    _no_run_folder(tmp_path)


def test_init_weights_of_another_architecture(capsys, tmp_path, data_root):
    import torch

    weights = tmp_path / "other.pt"
    torch.save({"conv.weight": torch.zeros(1, 1, 1, 1)}, weights)
    config = _config(tmp_path, data_root)
    _fails_in_one_line(capsys, ["train", str(config), f"model.init_weights={weights}", "--no-progress"], "model.init_weights")
    _no_run_folder(tmp_path)


def test_a_run_that_fails_after_its_folder_exists_is_marked_failed(tmp_path, data_root, monkeypatch):
    """What preflight cannot foresee (here: the trainer's set-up breaking) still leaves a folder saying why."""
    import json

    def broken(self):
        raise RuntimeError("set-up broke")

    monkeypatch.setattr("lumicap.engine.train.Trainer._build_mfr", broken)
    config = _config(tmp_path, data_root)
    with pytest.raises(RuntimeError, match="set-up broke"):
        main(["train", str(config), "--no-progress"])
    (run_json,) = (tmp_path / "runs").rglob("run.json")
    assert json.loads(run_json.read_text())["status"] == "failed: RuntimeError: set-up broke"


def test_group_folder_that_cannot_be_made_is_one_line(tmp_path):
    """The last guard, for what changes between the check and the mkdir (a file appearing, a full disk)."""
    from lumicap.engine.rundir import new_group_dir
    from lumicap.errors import LumicapError

    (tmp_path / "runs").write_text("not a folder")
    with pytest.raises(LumicapError, match=r"output_dir \(--output-dir\): cannot create .*runs/exp"):
        new_group_dir(tmp_path / "runs", "exp")
