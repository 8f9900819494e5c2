"""Training speed options (train.channels_last, train.compile, train.fused_optimizer, train.tf32): each is
wired into the trainer, and a run with them computes the same weights as the plain run (CPU, tiny data)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lumicap.cli import main
from lumicap.config import load_config
from lumicap.engine.distributed import DistInfo
from lumicap.engine.train import Trainer, fused_optimizer_kwargs
from lumicap.errors import LumicapError

ITERATIONS = 4


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for split, scenes in (("train", 4), ("test", 2)):
        (root / split / "low").mkdir(parents=True)
        (root / split / "high").mkdir(parents=True)
        for scene in range(scenes):
            high = rng.integers(30, 255, (40, 48, 3), dtype=np.uint8)
            Image.fromarray((high * 0.2).astype(np.uint8)).save(root / split / "low" / f"s{scene}.png")
            Image.fromarray(high).save(root / split / "high" / f"s{scene}.png")
    path = tmp_path_factory.mktemp("configs") / "speed.yaml"
    path.write_text(f"""
model: {{name: retinexformer, overrides: {{n_feat: 8, num_blocks: [1, 1, 1]}}}}
data: {{root: {root}, layout: folders, val_fraction: 0.25, num_workers: 0}}
stages:
  - name: main
    iterations: {ITERATIONS}
    batch_size: 2
    patch_size: 32
    losses: {{l1: 1.0}}
    optimizer: {{name: adam, lr: 1.0e-3}}
train: {{val_every: {ITERATIONS}, ckpt_every: {ITERATIONS}, log_every: 2}}
""")
    return path


def _final_weights(output: Path) -> dict[str, torch.Tensor]:
    (last,) = output.glob("speed/*/seed*/checkpoints/last.pt")
    return torch.load(last, map_location="cpu", weights_only=True)["model"]


def _train(config: Path, output: Path, *overrides: str) -> dict[str, torch.Tensor]:
    assert main(["train", str(config), *overrides, "--output-dir", str(output), "--no-progress"]) == 0
    return _final_weights(output)


def test_options_are_read_from_the_config_and_default_off(config):
    plain = load_config(config).train
    assert (plain.channels_last, plain.compile, plain.fused_optimizer, plain.tf32) == (False, False, None, None)
    fast = load_config(config, ["train.channels_last=true", "train.compile=true", "train.fused_optimizer=false", "train.tf32=true"]).train
    assert (fast.channels_last, fast.compile, fast.fused_optimizer, fast.tf32) == (True, True, False, True)
    with pytest.raises(LumicapError, match="train.channels_last"):
        load_config(config, ["train.channels_last=sometimes"])


def test_fused_optimizer_defaults_to_where_torch_has_it():
    assert fused_optimizer_kwargs(None, torch.device("cuda")) == {"fused": True}
    assert fused_optimizer_kwargs(None, torch.device("cpu")) == {"fused": True}  # torch >= 2.4 (the CPU wheel is 2.13)
    assert fused_optimizer_kwargs(None, torch.device("meta")) == {}
    assert fused_optimizer_kwargs(False, torch.device("cpu")) == {}
    assert fused_optimizer_kwargs(True, torch.device("cpu")) == {"fused": True}
    assert fused_optimizer_kwargs(False, torch.device("cuda")) == {}


def test_trainer_applies_the_options(config, tmp_path):
    cfg = load_config(config, ["train.channels_last=true", "train.compile=true", "train.fused_optimizer=true"])
    trainer = Trainer(cfg, tmp_path, DistInfo(), show_progress=False)
    trainer._enter_stage(0)
    convs = [p for p in trainer.model.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    assert trainer.optimizer.defaults["fused"] is True
    assert isinstance(trainer.forward, torch._dynamo.eval_frame.OptimizedModule)  # compiled lazily, on first call
    plain = Trainer(load_config(config), tmp_path / "plain", DistInfo(), show_progress=False)
    plain._enter_stage(0)
    assert plain.optimizer.defaults["fused"] is True  # the default on the CPU too
    assert not isinstance(plain.forward, torch._dynamo.eval_frame.OptimizedModule)
    reference = Trainer(load_config(config, ["train.fused_optimizer=false"]), tmp_path / "ref", DistInfo(), show_progress=False)
    reference._enter_stage(0)
    assert not reference.optimizer.defaults.get("fused")


def test_fast_options_train_the_same_weights(config, tmp_path, monkeypatch):
    """channels-last + fused Adam + a compiled forward change the arithmetic's order, not its result."""
    reference = _train(config, tmp_path / "plain", "train.fused_optimizer=false")
    # Inductor's CPU code generation takes minutes on a shared CI core; the "eager" backend still traces the
    # forward with dynamo and runs the captured graph, which is what the option wires in.
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    fast = _train(config, tmp_path / "fast", "train.channels_last=true", "train.fused_optimizer=true", "train.compile=true")
    assert set(fast) == set(reference)  # no "_orig_mod." prefixes from the compiled forward
    for key, value in reference.items():
        torch.testing.assert_close(fast[key], value, rtol=1e-4, atol=1e-5, msg=lambda m: f"{key}: {m}")
    initial = Trainer(load_config(config), tmp_path / "init", DistInfo(), show_progress=False).model.state_dict()
    changed = sum(not torch.equal(initial[k], reference[k]) for k in reference if reference[k].is_floating_point())
    assert changed > len(reference) // 2  # the runs did train: equality is not two untouched models


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    from lumicap.teacher import save_tiny_teacher

    return save_tiny_teacher(tmp_path_factory.mktemp("teacher"))


def test_mfr_speed_options_are_read_and_wired(config, teacher, tmp_path):
    plain = load_config(config, ["mfr.enabled=true", f"mfr.teacher={teacher}"])
    assert (plain.mfr.amp, plain.mfr.compile, plain.train.compile_mode) == ("none", False, "default")
    cfg = load_config(config, ["mfr.enabled=true", f"mfr.teacher={teacher}", "mfr.amp=bf16", "mfr.compile=true",
                               "train.compile_mode=reduce-overhead"])
    trainer = Trainer(cfg, tmp_path, DistInfo(), show_progress=False)
    assert trainer.mfr_dtype is torch.bfloat16
    assert isinstance(trainer.mfr_forward, torch._dynamo.eval_frame.OptimizedModule)
    assert trainer.mfr_forward._orig_mod is trainer.mfr  # the compiled loss wraps the one that logs its terms
    for bad in ("mfr.amp=fp8", "train.compile_mode=fastest"):
        with pytest.raises(LumicapError, match=bad.split("=")[0]):
            load_config(config, [bad])


def test_compiled_teacher_trains_the_same_weights_and_bf16_teacher_stays_close(config, teacher, tmp_path, monkeypatch):
    base = ["mfr.enabled=true", f"mfr.teacher={teacher}"]
    reference = _train(config, tmp_path / "plain", *base)
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))  # see above
    compiled = _train(config, tmp_path / "compiled", *base, "mfr.compile=true")
    for key, value in reference.items():
        torch.testing.assert_close(compiled[key], value, rtol=1e-4, atol=1e-5, msg=lambda m: f"{key}: {m}")
    low_precision = _train(config, tmp_path / "bf16", *base, "mfr.amp=bf16")
    # bf16 teacher features change the MFR gradient a little, not the run: every weight stays near the fp32 run's
    # (the model's own pixel loss and step are unchanged), and at least one weight differs (the option acted).
    differs = False
    for key, value in reference.items():
        if value.is_floating_point():
            torch.testing.assert_close(low_precision[key], value, rtol=0.05, atol=5e-3, msg=lambda m: f"{key}: {m}")
            differs |= not torch.equal(low_precision[key], value)
    assert differs
