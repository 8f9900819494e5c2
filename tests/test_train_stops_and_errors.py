"""`lumicap train` hardening: stopping never changes what a run validates or selects; a dataset error in a
DataLoader worker, a one-pair training split and a hostile or truncated last.pt are one line each.
Tiny real runs: IAT on 24x24 generated pairs, 16-pixel patches (see _reliability_support.tiny_train_config)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from _reliability_support import (
    assert_one_line_error,
    copy_run,
    shared_stopped_run,
    tiny_train_config,
    truncate,
    write_code_pickle,
)
from reliability.fuzzrun import run_cli


def _train(*argv) -> None:
    rc, out, err, tb = run_cli(["train", *map(str, argv), "--no-progress"])
    assert tb is None and rc == 0, (rc, err, tb)


def _validated_at(run: Path) -> list[int]:
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [r["iter"] for r in records if r["kind"] == "val"]


def _summary(run: Path) -> dict:
    info = json.loads((run / "run.json").read_text())
    return json.loads((run / info["results"] / "summary.json").read_text())


@pytest.fixture(scope="module")
def schedule(tmp_path_factory) -> tuple[Path, Path]:
    """Validation every 4 and a checkpoint every 3 of 10 iterations, and that run uninterrupted."""
    tmp = tmp_path_factory.mktemp("schedule")
    config = tiny_train_config(tmp, iterations=10, val_every=4, ckpt_every=3, log_every=1)
    _train(config, "--output-dir", tmp / "reference")
    (reference,) = (tmp / "reference").glob("tiny/*/seed0")
    return config, reference


@pytest.mark.parametrize("stop_at", [6, 7], ids=["on-a-checkpoint", "between-checkpoints"])
def test_a_stop_and_resume_validates_and_selects_as_the_uninterrupted_run(schedule, tmp_path, stop_at):
    """--max-iters (like Ctrl-C/SIGTERM) off the validation schedule: no extra validation, same best.pt."""
    config, reference = schedule
    _train(config, "--output-dir", tmp_path, "--max-iters", stop_at)
    (run,) = tmp_path.glob("tiny/*/seed0")
    assert json.loads((run / "run.json").read_text())["status"] == "stopped"
    _train("--resume", run)

    assert _validated_at(run) == _validated_at(reference) == [4, 8, 10]
    best, reference_best = (torch.load(r / "checkpoints" / "best.pt", weights_only=True) for r in (run, reference))
    assert best["best"] == reference_best["best"] and best["iteration"] == reference_best["iteration"]
    for key, value in reference_best["model"].items():
        assert torch.equal(best["model"][key], value), key
    summary, reference_summary = _summary(run), _summary(reference)
    assert summary["selected"] == reference_summary["selected"]
    assert (summary["psnr"], summary["ssim"]) == (reference_summary["psnr"], reference_summary["ssim"])


def test_a_stop_before_the_first_validation_tests_nothing(schedule, tmp_path):
    config, _ = schedule
    rc, out, err, tb = run_cli(["train", str(config), "--output-dir", str(tmp_path), "--max-iters", "3", "--no-progress"])
    assert tb is None and rc == 0, err
    (run,) = tmp_path.glob("tiny/*/seed0")
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "stopped" and info["iteration"] == 3 and "results" not in info
    assert not (run / "checkpoints" / "best.pt").exists() and _validated_at(run) == []
    assert "no selected weights to test yet" in out


def test_a_dataset_error_in_a_loader_worker_is_one_line(tmp_path):
    config = tiny_train_config(tmp_path, iterations=2)
    # Not cached: the pairs are decoded by the two worker processes, not by this one at start-up.
    text = config.read_text().replace("num_workers: 0", "num_workers: 2\n  cache: false")
    assert "num_workers: 2" in text
    config.write_text(text)
    for low in sorted((tmp_path / "data" / "train" / "low").glob("*.png")):
        truncate(low, 0.5)  # the header (and size) stays readable; decoding the pixels fails in the worker

    line = assert_one_line_error(*run_cli(["train", str(config), "--no-progress"]), "cannot decode image")
    assert "Original Traceback" not in line and "\\n" not in line and "worker" not in line


def test_a_single_training_pair_says_why_no_validation_set_can_be_carved(tmp_path):
    config = tiny_train_config(tmp_path, iterations=2)
    for side in ("low", "high"):
        for extra in sorted((tmp_path / "data" / "train" / side).glob("*.png"))[1:]:
            extra.unlink()
    # the pre-flight check (before any run folder) says it: one pair cannot give a validation set
    line = assert_one_line_error(*run_cli(["train", str(config), "--no-progress"]), "1 pair", "validation")
    assert "all show the same scene" not in line


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory) -> Path:
    return shared_stopped_run(tmp_path_factory)


@pytest.mark.parametrize("damage", ["code-pickle", "truncated"])
def test_a_hostile_or_truncated_last_checkpoint_is_explained_whole(stopped_run, tmp_path, damage):
    run = copy_run(stopped_run, tmp_path / "run")
    last = run / "checkpoints" / "last.pt"
    if damage == "code-pickle":
        write_code_pickle(last, tmp_path / "ran")
    else:
        truncate(last, 0.5)

    line = assert_one_line_error(*run_cli(["train", "--resume", str(run), "--no-progress"]), str(last))

    assert "weights_only" not in line  # PyTorch's advice to load it unsafely is not passed on
    if damage == "code-pickle":
        assert "refused to load" in line and "nothing in it was run" in line
    else:  # PyTorch's first sentence, whole; not its paragraph cut at a character count
        assert "truncated or not a torch file: PytorchStreamReader" in line and "likelihood" not in line
