"""`lumicap train` end to end on CPU: IAT + MFR (tiny random ClipCap teacher), artifacts, exact resume,
seeds, budgets, and `lumicap compare` on the runs it produced."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lumicap.cli import main

TRAIN_SCENES, TEST_SCENES = 8, 3


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tiny tensors: a second OpenMP thread only adds spin-waiting on a shared CI machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory) -> Path:
    from lumicap.teacher import save_tiny_teacher

    return save_tiny_teacher(tmp_path_factory.mktemp("teacher"))


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """``folders`` layout: train/{low,high} with two exposures per scene (shared reference), test/{low,high}."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for split, scenes, exposures in (("train", TRAIN_SCENES, 2), ("test", TEST_SCENES, 1)):
        (root / split / "low").mkdir(parents=True)
        (root / split / "high").mkdir(parents=True)
        for scene in range(scenes):
            high = rng.integers(30, 255, (40, 48, 3), dtype=np.uint8)
            for exposure in range(exposures):
                low = (high * (0.15 + 0.1 * exposure)).astype(np.uint8)
                Image.fromarray(low).save(root / split / "low" / f"s{scene}e{exposure}.png")
                Image.fromarray(high).save(root / split / "high" / f"s{scene}e{exposure}.png")
    return root


def baseline_yaml(data_root: Path, **train) -> str:
    train_settings = {"val_every": 10, "ckpt_every": 10, "log_every": 5, "ema_decay": 0.9, "grad_clip": 0.5, **train}
    return f"""
model: {{name: iat}}
data: {{root: {data_root}, layout: folders, val_fraction: 0.25, num_workers: 1}}
stages:
  - name: patches
    iterations: 18
    batch_size: 2
    patch_size: 32
    losses: {{l1: 1.0, ssim: 0.1}}
    optimizer: {{name: adam, lr: 2.0e-4, weight_decay: 1.0e-4}}
    scheduler: {{name: cosine_restart_cyclic, periods: [8, 10], restart_weights: [1, 1], eta_mins: [3.0e-4, 1.0e-6]}}
    mixup: true
  - name: whole
    iterations: 12
    batch_size: 2
    patch_size: null
    losses: {{l1: 1.0}}
    optimizer: {{name: adam, lr: 1.0e-4}}
    scheduler: {{name: cosine, warmup_iters: 2}}
train: {json.dumps(train_settings)}
"""


@pytest.fixture(scope="module")
def configs(tmp_path_factory, tiny_data, teacher_dir) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("configs")
    (folder / "tiny-baseline.yaml").write_text(baseline_yaml(tiny_data))
    (folder / "tiny-mfr.yaml").write_text(
        f"base: tiny-baseline.yaml\nmfr: {{enabled: true, teacher: {teacher_dir}, weights: [1.0, 0.5, 0.5]}}\n"
    )
    return {"baseline": folder / "tiny-baseline.yaml", "mfr": folder / "tiny-mfr.yaml"}


def train(*args: str) -> None:
    assert main(["train", *map(str, args), "--no-progress"]) == 0


def runs_of(output: Path, name: str) -> list[Path]:
    return sorted(output.glob(f"{name}/*/seed*"))


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def mfr_run(tmp_path_factory, configs) -> Path:
    output = tmp_path_factory.mktemp("runs")
    train(configs["mfr"], "--output-dir", output)
    (run,) = runs_of(output, "tiny-mfr")
    return run


def test_mfr_run_writes_checkpoints_logs_tensorboard_and_results(mfr_run):
    info = json.loads((mfr_run / "run.json").read_text())
    assert info["status"] == "complete" and info["iteration"] == 30 and info["mfr"] is True
    assert info["protocol"]["selection"]["on"] == "val"
    assert info["protocol"]["dataset"]["test_pairs"] == TEST_SCENES

    last, best = load(mfr_run / "checkpoints/last.pt"), load(mfr_run / "checkpoints/best.pt")
    assert last["iteration"] == 30 and last["stage"] == 1 and last["ema"] is not None
    assert set(last["rng_per_rank"][0]) == {"python", "numpy", "torch", "cuda"}
    assert best["best"]["iteration"] in (10, 20, 30)

    records = read_jsonl(mfr_run / "log.jsonl")
    train_records = [r for r in records if r["kind"] == "train"]
    assert [r["iter"] for r in train_records] == list(range(5, 31, 5))
    for key in ("loss", "l1", "ssim", "mfr_clip", "mfr_prefix", "mfr_gpt", "lr"):
        assert key in train_records[0], key
    assert all(r["mfr_clip"] > 0 for r in train_records)
    assert "ssim" not in train_records[-1]  # the whole-image stage has L1 only
    assert [r["iter"] for r in records if r["kind"] == "val"] == [10, 20, 30]

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(mfr_run / "tb"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    for tag in ("train/loss", "train/mfr_clip", "train/mfr_prefix", "train/mfr_gpt", "train/lr", "val/psnr", "val/ssim", "test/psnr"):
        assert tag in tags["scalars"], tag
    assert len(tags["images"]) == 3
    assert [e.step for e in events.Scalars("val/psnr")] == [10, 20, 30]

    # Named after the iteration of the weights measured (the selected ones), not the last iteration.
    results = mfr_run / json.loads((mfr_run / "run.json").read_text())["results"]
    assert results.name == f"test-iter{best['best']['iteration']:07d}"
    summary = json.loads((results / "summary.json").read_text())
    rows = list(csv.DictReader(open(results / "per_image.csv")))
    assert summary["count"] == len(rows) == TEST_SCENES
    assert summary["psnr"] == pytest.approx(np.mean([float(r["psnr"]) for r in rows]), abs=1e-5)
    assert summary["selected"]["on"] == "val" and summary["selected"]["weights"] == "ema"


def test_interrupted_and_resumed_run_equals_uninterrupted(tmp_path, configs, mfr_run):
    # Stop mid-way through the first stage, then resume across the stage boundary to the end.
    train(configs["mfr"], "--output-dir", tmp_path, "--max-iters", 13)
    (run,) = runs_of(tmp_path, "tiny-mfr")
    assert run != mfr_run
    stopped = json.loads((run / "run.json").read_text())
    assert stopped["status"] == "stopped" and load(run / "checkpoints/last.pt")["iteration"] == 13
    # Stopped at 13; the weights measured are those selected at the validation of iteration 10.
    assert (run / "results" / "test-iter0000010" / "summary.json").is_file()

    train("--resume", run)
    resumed, uninterrupted = load(run / "checkpoints/last.pt"), load(mfr_run / "checkpoints/last.pt")
    assert resumed["iteration"] == uninterrupted["iteration"] == 30
    for part in ("model",):
        for key, value in uninterrupted[part].items():
            assert torch.equal(resumed[part][key], value), key
    for key, value in uninterrupted["ema"]["module"].items():
        assert torch.equal(resumed["ema"]["module"][key], value), key
    for index, state in uninterrupted["optimizer"]["state"].items():
        assert torch.equal(resumed["optimizer"]["state"][index]["exp_avg_sq"], state["exp_avg_sq"])
    assert resumed["data"] == uninterrupted["data"] and resumed["best"] == uninterrupted["best"]
    assert json.loads((run / "run.json").read_text())["status"] == "complete"
    events = [(r["event"], r.get("stage")) for r in read_jsonl(run / "log.jsonl") if r["kind"] == "event"]
    assert events == [
        ("start", None), ("stage", "patches"), ("stopped", None), ("resume", None), ("stage", "whole"), ("complete", None)
    ]


def test_seeds_budgets_and_resuming_a_group(tmp_path, configs):
    short = ["stages.patches.iterations=4", "stages.whole.iterations=2", "train.val_every=3"]
    train(configs["baseline"], *short, "--seeds", "1,2", "--output-dir", tmp_path)
    runs = runs_of(tmp_path, "tiny-baseline")
    assert [r.name for r in runs] == ["seed1", "seed2"] and runs[0].parent == runs[1].parent
    seed1, seed2 = (load(r / "checkpoints/last.pt") for r in runs)
    assert any(not torch.equal(seed1["model"][k], seed2["model"][k]) for k in seed1["model"])  # seeds differ
    group = runs[0].parent
    # A tiny time budget stops the new seed after its first step; the complete seeds are skipped.
    train("--resume", group, "--seeds", "1,2,3", "--max-minutes", "0.00001")
    seed3 = group / "seed3"
    info = json.loads((seed3 / "run.json").read_text())
    assert info["status"] == "stopped" and info["iteration"] == 1
    train("--resume", seed3)
    assert json.loads((seed3 / "run.json").read_text())["status"] == "complete"
    assert load(seed3 / "checkpoints/last.pt")["iteration"] == 6


def test_compare_prints_the_table_for_baseline_and_mfr_runs(tmp_path, configs, mfr_run, capsys):
    train(configs["baseline"], "--output-dir", tmp_path)
    capsys.readouterr()
    assert main(["compare", str(mfr_run), str(tmp_path), "--out", str(tmp_path / "table"), "--resamples", "500"]) == 0
    printed = capsys.readouterr().out
    lines = [line for line in printed.splitlines() if line.startswith("| folders/test")]
    assert len(lines) == 2 and "baseline (tiny-baseline)" in lines[0] and "+MFR (tiny-mfr)" in lines[1]
    assert "[" in lines[1].split("|")[7]  # the +MFR row carries a delta with its interval
    assert {p.name for p in (tmp_path / "table").iterdir()} == {"table.md", "table.csv", "table.tex"}
    assert main(["compare", str(mfr_run), str(tmp_path), "--out", str(tmp_path / "table")]) == 2  # no overwrite


def test_bad_command_lines_fail_in_one_line(tmp_path, configs, capsys):
    assert main(["train", str(configs["baseline"]), "train.amp=fp32", "--output-dir", str(tmp_path)]) == 2
    assert "train.amp: got 'fp32'; allowed: one of none, bf16, fp16" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "nothing")]) == 2
    assert "run folder not found" in capsys.readouterr().err
    assert main(["train", str(configs["baseline"]), "--seeds", "1,x"]) == 2
    assert "--seeds" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing was created by the failed invocations


def test_real_lol_patches_with_mfr(tmp_path, shared_data, teacher_dir):
    """30 iterations of IAT + MFR on 64x64 patches of LOL-v1 train80, tested on three eval15 pairs
    (full-resolution inference of all fifteen would dominate the suite's time on a CPU)."""
    lol = shared_data / "lol-v1"
    root = tmp_path / "lol"
    root.mkdir()
    (root / "train80").symlink_to(lol / "train80", target_is_directory=True)
    test_names = sorted(p.name for p in (lol / "eval15" / "low").glob("*.png"))[:3]
    for side in ("low", "high"):
        (root / "eval3" / side).mkdir(parents=True)
        for name in test_names:
            (root / "eval3" / side / name).symlink_to(lol / "eval15" / side / name)
    config = tmp_path / "iat-train80-mfr.yaml"
    config.write_text(
        f"""
model: {{name: iat}}
data: {{root: {root}, layout: folders, train_split: train80, test_split: eval3, val_fraction: 0.025, num_workers: 0}}
stages:
  - {{name: main, iterations: 30, batch_size: 2, patch_size: 64, losses: {{l1: 1.0}}, mixup: true,
      optimizer: {{name: adam, lr: 2.0e-4}}}}
mfr: {{enabled: true, teacher: {teacher_dir}}}
train: {{val_every: 30, ckpt_every: 15, log_every: 10}}
"""
    )
    train(config, "--output-dir", tmp_path / "runs")
    (run,) = runs_of(tmp_path / "runs", "iat-train80-mfr")
    assert (run / "checkpoints/last.pt").is_file() and (run / "checkpoints/best.pt").is_file()
    assert list((run / "tb").glob("events.out.tfevents.*"))
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "complete" and "2 pairs carved by scene from 'train80'" in info["protocol"]["selection"]["val"]
    records = read_jsonl(run / "log.jsonl")
    assert [r["iter"] for r in records if r["kind"] == "train"] == [10, 20, 30]
    assert all(np.isfinite(r["mfr_gpt"]) and r["mfr_gpt"] > 0 for r in records if r["kind"] == "train")
    rows = list(csv.DictReader(open(run / "results" / "test-iter0000030" / "per_image.csv")))
    assert sorted(r["name"] for r in rows) == [Path(n).stem for n in test_names]
    assert all(5 < float(r["psnr"]) < 40 for r in rows)


@pytest.mark.parametrize("target", ["trainer", "process group"])
def test_ctrl_c_checkpoints_at_a_step_boundary_and_the_run_resumes(tmp_path, configs, target):
    """SIGINT (Ctrl-C, or SIGTERM from a scheduler) finishes the step, checkpoints, measures the weights
    selected so far (validation every iteration here, so there are some), exits cleanly. A terminal's Ctrl-C
    and ``kill -- -PGID`` reach the data-loading worker too (the config uses one): it must not take the run down."""
    import os
    import signal
    import subprocess
    import sys
    import time

    command = [sys.executable, "-m", "lumicap", "train", str(configs["baseline"]), "stages.patches.iterations=100000",
               "stages.patches.scheduler={name: constant}", "train.log_every=1", "train.val_every=1", "--output-dir", str(tmp_path), "--no-progress"]
    process = subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    log = None
    while time.monotonic() < deadline and process.poll() is None:
        logs = list(tmp_path.glob("tiny-baseline/*/seed0/log.jsonl"))
        if logs and '"kind": "train"' in logs[0].read_text():
            log = logs[0]
            break
        time.sleep(0.2)
    assert log is not None, process.communicate()[1][-2000:]
    if target == "trainer":
        process.send_signal(signal.SIGINT)
    else:
        os.killpg(process.pid, signal.SIGTERM)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-2000:]
    run = log.parent
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "stopped" and 1 <= info["iteration"] < 100_012
    assert load(run / "checkpoints/last.pt")["iteration"] == info["iteration"]
    assert (run / info["results"] / "summary.json").is_file()
    assert f"continue with: lumicap train --resume {run}" in out
    train("--resume", run, "--max-iters", info["iteration"] + 2)
    assert load(run / "checkpoints/last.pt")["iteration"] == info["iteration"] + 2
