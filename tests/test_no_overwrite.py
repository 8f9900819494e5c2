"""Nothing is overwritten without the explicit flag: training runs, enhanced photos, eval results,
reports, exported models and cached weights. Each test records the files' bytes first and checks them after."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _reliability_support import assert_one_line_error, copy_run, shared_stopped_run, tiny_train_config
from reliability.fuzzrun import run_cli


def _snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file below ``folder`` (the lock file is a lock, not content)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def _photos(folder: Path, count: int = 2, level: int = 30) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(np.full((16, 20, 3), level + i, np.uint8)).save(folder / f"p{i}.png")
    return folder


# --------------------------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory) -> Path:
    return shared_stopped_run(tmp_path_factory)


def test_train_twice_makes_a_new_run_folder(stopped_run, tmp_path):
    config = stopped_run.parents[3] / "tiny.yaml"
    first = copy_run(stopped_run, tmp_path / "runs" / "tiny" / stopped_run.parent.name / "seed0")
    before = _snapshot(first)

    rc, out, err, tb = run_cli(["train", str(config), "--output-dir", str(tmp_path / "runs"), "--max-iters", "1", "--no-progress"])

    assert tb is None and rc == 0, err
    runs = sorted((tmp_path / "runs" / "tiny").glob("*/seed0"))
    assert len(runs) == 2 and first in runs
    assert _snapshot(first) == before  # the first run is untouched


def test_new_run_dir_refuses_an_existing_folder(tmp_path):
    from lumicap.engine.rundir import new_group_dir, new_run_dir
    from lumicap.errors import LumicapError

    first, second = new_group_dir(tmp_path, "x"), new_group_dir(tmp_path, "x")
    assert first != second  # same second: a -2 suffix, never the same folder
    new_run_dir(first, 0)
    with pytest.raises(LumicapError, match="already exists"):
        new_run_dir(first, 0)


def test_concurrent_resume_of_one_run_is_refused(stopped_run, tmp_path):
    """Two processes training one run folder would overwrite each other's last.pt."""
    from lumicap.engine.rundir import hold_run_lock

    run = copy_run(stopped_run, tmp_path / "run")
    before = _snapshot(run)
    with hold_run_lock(run):  # another process is training it
        assert_one_line_error(*run_cli(["train", "--resume", str(run), "--no-progress"]), "another process")
    assert _snapshot(run) == before


def test_resume_removes_half_written_temporaries_and_continues(stopped_run, tmp_path):
    run = copy_run(stopped_run, tmp_path / "run")
    stale = run / "checkpoints" / ".last.pt.tmp-999999"
    stale.write_bytes(b"half a checkpoint")  # what a SIGKILL inside atomic_save leaves

    rc, out, err, tb = run_cli(["train", "--resume", str(run), "--max-iters", "3", "--no-progress"])

    assert tb is None and rc == 0, err
    assert not stale.exists()
    assert json.loads((run / "run.json").read_text())["iteration"] == 3


def test_resume_of_a_complete_run_changes_nothing(tmp_path):
    config = tiny_train_config(tmp_path, iterations=2)
    rc, _, err, tb = run_cli(["train", str(config), "--no-progress"])
    assert tb is None and rc == 0, err
    (run,) = (tmp_path / "runs").glob("tiny/*/seed0")
    before = _snapshot(run)

    rc, _, err, tb = run_cli(["train", "--resume", str(run), "--no-progress"])

    assert tb is None and rc == 0, err
    assert _snapshot(run) == before


# ---------------------------------------------------------------------------------------------- enhance
def test_enhance_skips_existing_outputs_unless_overwrite(tmp_path):
    from reliability.fuzzrun import save_random_model

    model = save_random_model(tmp_path / "model")
    photos, out = _photos(tmp_path / "in"), tmp_path / "out"
    out.mkdir()
    (out / "p0.png").write_bytes(b"the user's own file")
    argv = ["enhance", str(photos), "--out", str(out), "--model", str(model), "--device", "cpu", "--no-progress"]

    rc, stdout, err, tb = run_cli(argv)
    assert tb is None and rc == 0, err
    assert (out / "p0.png").read_bytes() == b"the user's own file"
    assert "skipped 1" in stdout
    first_p1 = (out / "p1.png").read_bytes()
    assert first_p1.startswith(b"\x89PNG")

    rc, stdout, err, tb = run_cli(argv)  # a second run: both outputs exist now
    assert tb is None and rc == 0 and "skipped 2" in stdout
    assert (out / "p1.png").read_bytes() == first_p1

    rc, stdout, err, tb = run_cli(argv + ["--overwrite"])  # never the user's own file, even when asked
    assert_one_line_error(rc, stdout, err, tb, "p0.png", "did not write", "nothing was written")
    assert (out / "p0.png").read_bytes() == b"the user's own file"
    assert (out / "p1.png").read_bytes() == first_p1
    (out / "p0.png").unlink()
    rc, stdout, err, tb = run_cli(argv + ["--overwrite"])  # lumicap's own output is redone when asked
    assert tb is None and rc == 0 and "enhanced 2 images" in stdout, err
    assert (out / "p0.png").read_bytes().startswith(b"\x89PNG")


def test_enhance_never_writes_over_its_input(tmp_path):
    from reliability.fuzzrun import save_random_model

    model = save_random_model(tmp_path / "model")
    photos = _photos(tmp_path / "in")
    before = _snapshot(photos)
    files = [str(p) for p in sorted(photos.glob("*.png"))]  # named one by one: nothing filters them out
    rc, stdout, err, tb = run_cli(["enhance", *files, "--out", str(photos), "--model", str(model),
                                   "--overwrite", "--device", "cpu", "--no-progress"])
    assert_one_line_error(rc, stdout, err, tb, "would replace the input itself", "nothing was written")
    assert _snapshot(photos) == before


# ------------------------------------------------------------------------------------------ eval, report
def test_eval_refuses_existing_results_unless_overwrite(tmp_path):
    pred, gt, out = _photos(tmp_path / "pred", level=40), _photos(tmp_path / "gt", level=90), tmp_path / "res"
    argv = ["eval", "--pred", str(pred), "--gt", str(gt), "--out", str(out), "--device", "cpu"]
    rc, _, err, tb = run_cli(argv)
    assert tb is None and rc == 0, err
    before = _snapshot(out)
    Image.fromarray(np.full((16, 20, 3), 85, np.uint8)).save(pred / "p0.png")  # new predictions, new numbers

    assert_one_line_error(*run_cli(argv), "--overwrite")
    assert _snapshot(out) == before

    rc, _, err, tb = run_cli(argv + ["--overwrite"])
    assert tb is None and rc == 0, err
    assert _snapshot(out) != before


def test_report_refuses_an_existing_report_unless_overwrite(tmp_path):
    pred, gt, out = _photos(tmp_path / "pred", level=40), _photos(tmp_path / "gt", level=90), tmp_path / "report"
    argv = ["report", str(pred), "--gt", str(gt), "--out", str(out)]
    rc, _, err, tb = run_cli(argv)
    assert tb is None and rc == 0, err
    before = _snapshot(out)
    Image.fromarray(np.full((16, 20, 3), 85, np.uint8)).save(pred / "p0.png")

    assert_one_line_error(*run_cli(argv), "--overwrite")
    assert _snapshot(out) == before

    rc, _, err, tb = run_cli(argv + ["--overwrite"])
    assert tb is None and rc == 0, err
    assert _snapshot(out) != before


@pytest.mark.parametrize("command", ["eval", "report"])
def test_results_folder_that_is_a_file_is_refused(tmp_path, command):
    pred, gt, out = _photos(tmp_path / "pred"), _photos(tmp_path / "gt", level=90), tmp_path / "results"
    out.write_bytes(b"someone's file")
    argv = ["eval", "--pred", str(pred), "--gt", str(gt), "--out", str(out), "--device", "cpu"] if command == "eval" else \
        ["report", str(pred), "--gt", str(gt), "--out", str(out)]
    assert_one_line_error(*run_cli(argv), str(out), "not a folder")
    assert out.read_bytes() == b"someone's file"


# ------------------------------------------------------------------------------ exported models, caches
def test_saving_an_inference_model_refuses_existing_files(tmp_path):
    from lumicap.errors import LumicapError
    from lumicap.inference import save_inference_model
    from lumicap.models import build_model

    state = build_model("iat").state_dict()
    path, sidecar = save_inference_model(tmp_path / "m.safetensors", "iat", state)
    before = _snapshot(tmp_path)
    with pytest.raises(LumicapError, match="already exists"):
        save_inference_model(path, "iat", {k: v + 1 for k, v in state.items()})
    assert _snapshot(tmp_path) == before


def test_weights_cache_is_not_replaced_on_mismatch(tmp_path, monkeypatch):
    from lumicap.weights import store as weights
    from lumicap.errors import WeightsError

    monkeypatch.setenv("LUMICAP_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "alex.pth"
    source.write_bytes(b"downloaded once")
    entry = dataclasses.replace(weights.get_known("lpips-alex-v0.1"), url=source.as_uri())
    monkeypatch.setitem(weights.KNOWN_WEIGHTS, entry.name, entry)
    cached = weights.resolve_weights("lpips-alex-v0.1")  # downloaded by lumicap: its sha256 is recorded
    cached.write_bytes(b"replaced behind our back")
    before = _snapshot(cached.parent)
    monkeypatch.setattr(weights, "download_to_cache", lambda *a, **k: pytest.fail("downloaded over a mismatching cache file"))

    for _ in range(2):  # asking again changes nothing either
        with pytest.raises(WeightsError, match="does not match"):
            weights.resolve_weights("lpips-alex-v0.1")
    assert _snapshot(cached.parent) == before
    assert os.path.getsize(cached) == len(b"replaced behind our back")


def test_resume_without_last_checkpoint_refuses_to_start_over(stopped_run, tmp_path):
    """A lost last.pt must not turn --resume into a silent restart that replaces best.pt and the results."""
    run = copy_run(stopped_run, tmp_path / "run")
    (run / "checkpoints" / "last.pt").unlink()
    before = _snapshot(run)

    assert_one_line_error(*run_cli(["train", "--resume", str(run), "--no-progress"]), "last.pt is missing", "iteration 2")
    after = _snapshot(run)
    assert after.pop("run.json") and before.pop("run.json")  # run.json records the refusal ...
    assert after == before  # ... and nothing else changed
    assert json.loads((run / "run.json").read_text())["iteration"] == 2


def test_resume_after_an_upgrade_that_added_a_config_key(stopped_run, tmp_path):
    """A checkpoint written before a config key existed (here: train.allow_missing_perceptual) still resumes."""
    import torch

    run = copy_run(stopped_run, tmp_path / "run")
    last = run / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    del state["config"]["train"]["allow_missing_perceptual"]
    torch.save(state, last)

    rc, out, err, tb = run_cli(["train", "--resume", str(run), "--max-iters", "3", "--no-progress"])

    assert tb is None and rc == 0, err
    assert json.loads((run / "run.json").read_text())["iteration"] == 3


def test_resume_with_an_edited_config_is_refused(stopped_run, tmp_path):
    run = copy_run(stopped_run, tmp_path / "run")
    config = run / "config.yaml"
    text = config.read_text()
    assert "\n  seed: 0\n" in text
    config.write_text(text.replace("\n  seed: 0\n", "\n  seed: 5\n"))  # train.seed, not data.val_seed
    before = _snapshot(run / "checkpoints")
    assert_one_line_error(*run_cli(["train", "--resume", str(run), "--no-progress"]), "no longer matches")
    assert _snapshot(run / "checkpoints") == before
