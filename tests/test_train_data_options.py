"""The data options of the default model's recipe, through the real training engine: several training splits
trained together, crops that carry their whole image for IAT's global branch, identity samples; a stopped run
resumes to exactly the weights of an uninterrupted one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lumicap.cli import main
from lumicap.config import load_config
from lumicap.engine.data import resolve_splits

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def two_splits(tmp_path_factory) -> Path:
    """``folders`` layout with two disjoint training splits (a/, b/) and a test split, 36x44 photos."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for split, names in (("a", ["1", "2", "3"]), ("b", ["4", "5", "6"]), ("test", ["7"])):
        for name in names:
            high = rng.integers(40, 255, (36, 44, 3), dtype=np.uint8)
            for side, array in (("low", (high * 0.2).astype(np.uint8)), ("high", high)):
                (root / split / side).mkdir(parents=True, exist_ok=True)
                Image.fromarray(array).save(root / split / side / f"{name}.png")
    return root


def recipe(root: Path, folder: Path, splits: str = "[a, b]") -> Path:
    path = folder / "tiny-default.yaml"
    path.write_text(f"""
model: {{name: iat, overrides: {{border: reflect, global_downscale: 2}}}}
data: {{root: {root}, layout: folders, train_split: {splits}, test_split: test, val_fraction: 0.2, num_workers: 0,
        exposure_range: [0.5, 3.0], identity_fraction: 0.25, whole_image_context: true}}
stages:
  - name: patches
    iterations: 8
    batch_size: 2
    patch_size: 16
    losses: {{l1: 1.0, ssim: 0.3}}
    optimizer: {{name: adam, lr: 5.0e-4}}
    scheduler: {{name: cosine, warmup_iters: 2}}
train: {{val_every: 4, ckpt_every: 4, log_every: 2}}
eval: {{val_images: 0}}
""")
    return path


def test_several_training_splits_are_one_training_set(two_splits, tmp_path):
    cfg = load_config(recipe(two_splits, tmp_path))
    splits = resolve_splits(cfg)
    names = sorted(p.name for p in splits.train + splits.val)
    assert names == ["1", "2", "3", "4", "5", "6"]
    assert len(splits.val) >= 1 and not {p.name for p in splits.val} & {p.name for p in splits.train}


def test_overlapping_splits_are_refused(two_splits, tmp_path, capsys):
    cfg = recipe(two_splits, tmp_path, splits="[a, a]")
    assert main(["train", str(cfg), "--output-dir", str(tmp_path / "runs"), "--no-progress"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "disjoint" in err[0]


def test_context_needs_a_model_with_a_global_branch(two_splits, tmp_path, capsys):
    cfg = recipe(two_splits, tmp_path)
    code = main(["train", str(cfg), "model.name=rctnet", "model.overrides={}", "--output-dir", str(tmp_path / "r"),
                 "--no-progress"])
    assert code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "whole_image_context" in err[0]


def test_a_stopped_run_resumes_to_the_uninterrupted_weights(two_splits, tmp_path):
    cfg = recipe(two_splits, tmp_path)
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert main(["train", str(cfg), "--output-dir", str(whole), "--no-progress"]) == 0
    assert main(["train", str(cfg), "--output-dir", str(parts), "--max-iters", "5", "--no-progress"]) == 0
    (stopped,) = parts.glob("tiny-default/*/seed0")
    assert json.loads((stopped / "run.json").read_text())["status"] == "stopped"
    assert main(["train", "--resume", str(stopped), "--no-progress"]) == 0
    (done,) = whole.glob("tiny-default/*/seed0")
    a = torch.load(done / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(stopped / "checkpoints" / "last.pt", weights_only=True)
    assert a["iteration"] == b["iteration"] == 8
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    # and the trained model loads for inference with its options (reflect border, downscaled global view)
    from lumicap.inference import load_inference_model

    model = load_inference_model(done, "cpu")
    assert model.module.local_net.pad > 0 and model.module.global_downscale == 2


def test_a_stage_can_keep_the_global_branch_fixed(two_splits, tmp_path):
    cfg = recipe(two_splits, tmp_path)
    text = cfg.read_text().replace("train: {", """  - name: local_only
    iterations: 4
    batch_size: 2
    patch_size: 16
    losses: {l1: 1.0}
    freeze: [global_net]
train: {""")
    cfg.write_text(text)
    assert main(["train", str(cfg), "--output-dir", str(tmp_path / "runs"), "--max-iters", "8", "--no-progress"]) == 0
    (run,) = (tmp_path / "runs").glob("tiny-default/*/seed0")
    before = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    after = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]
    moved = {k for k in before if before[k].is_floating_point() and not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith("local_net.") or "running_" in k for k in moved)  # BN statistics still follow
    assert not any(k.startswith("global_net.") and "running_" not in k for k in moved)


def test_a_freeze_prefix_that_names_nothing_is_one_line(two_splits, tmp_path, capsys):
    cfg = recipe(two_splits, tmp_path)
    cfg.write_text(cfg.read_text().replace("losses: {l1: 1.0, ssim: 0.3}", "losses: {l1: 1.0, ssim: 0.3}\n    freeze: [global]"))
    assert main(["train", str(cfg), "--output-dir", str(tmp_path / "runs"), "--no-progress"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "freeze 'global' names no parameter" in err[0] and "global_net" in err[0]
