"""`lumicap train` under `torchrun --nproc_per_node 2` (gloo on CPU): DDP keeps the replicas identical,
each rank holds its own frozen MFR teacher, only rank 0 writes the run folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from lumicap.engine.train import state_hash


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from lumicap.teacher import save_tiny_teacher

    root = tmp_path_factory.mktemp("ddp")
    rng = np.random.default_rng(1)
    for split, count in (("train", 10), ("test", 2)):
        for side in ("low", "high"):
            (root / "data" / split / side).mkdir(parents=True)
        for i in range(count):
            high = rng.integers(30, 255, (36, 36, 3), dtype=np.uint8)
            Image.fromarray((high * 0.2).astype(np.uint8)).save(root / "data" / split / "low" / f"{i}.png")
            Image.fromarray(high).save(root / "data" / split / "high" / f"{i}.png")
    teacher = save_tiny_teacher(root / "teacher")
    config = root / "ddp-mfr.yaml"
    config.write_text(
        f"""
model: {{name: iat}}
data: {{root: {root / 'data'}, layout: folders, val_fraction: 0.2, num_workers: 0}}
stages:
  - {{name: main, iterations: 6, batch_size: 4, patch_size: 24, losses: {{l1: 1.0}}, mixup: true,
      optimizer: {{name: adam, lr: 1.0e-3}}}}
mfr: {{enabled: true, teacher: {teacher}}}
train: {{val_every: 3, ckpt_every: 3, log_every: 2, ema_decay: 0.9}}
"""
    )
    return root, config


def test_two_process_gloo_training_keeps_replicas_identical(setup):
    root, config = setup
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "lumicap", "train", str(config), "--output-dir", str(root / "runs"), "--no-progress",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    (run,) = sorted((root / "runs" / "ddp-mfr").glob("*/seed0"))
    info = json.loads((run / "run.json").read_text())
    assert info["world_size"] == 2 and info["status"] == "complete" and info["iteration"] == 6

    replicas = [json.loads((run / "replicas" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["rank"] for r in replicas] == [0, 1] and all(r["iteration"] == 6 for r in replicas)
    assert replicas[0]["parameters_sha256"] == replicas[1]["parameters_sha256"]
    last = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    from lumicap.models import build_model

    names = {name for name, _ in build_model("iat").named_parameters()}
    assert state_hash({k: v for k, v in last["model"].items() if k in names}) == replicas[0]["parameters_sha256"]
    # Each rank's RNG state is kept so a resume under torchrun continues every replica exactly.
    assert len(last["rng_per_rank"]) == 2
    assert not torch.equal(last["rng_per_rank"][0]["torch"], last["rng_per_rank"][1]["torch"])
    # Rank 0 alone logs: one line per logged step, not two.
    train_iters = [json.loads(l)["iter"] for l in (run / "log.jsonl").read_text().splitlines() if '"train"' in l]
    assert train_iters == [2, 4, 6]
    selected = torch.load(run / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)["best"]["iteration"]
    assert info["results"] == f"results/test-iter{selected:07d}"  # named after the weights it measured
    assert (run / info["results"] / "summary.json").is_file()
