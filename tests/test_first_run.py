"""A newcomer's first training run: the README's small recipe (configs/default/lumicap-first-run.yaml) in a tiny
form leaves weights that `lumicap eval` and `lumicap enhance --model RUN_DIR` use; `lumicap train` says what it
is doing before the first step and how long it will take, also without a progress bar; results are named after
the weights they measure; the resolved config says when the stages' MFR flag is inactive; `lumicap eval` says
where it wrote.

The recipe file itself is used (only sizes are overridden: 16 iterations on 32x32 patches of tiny photos), so
a change to it that breaks the run, or stops it from validating before its end, fails here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lumicap.cli import main

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "configs" / "default" / "lumicap-first-run.yaml"
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def lol_like(tmp_path_factory) -> Path:
    """LOL-v1's folder layout (our485 and eval15, low/high, N.png) with tiny photos."""
    root = tmp_path_factory.mktemp("LOL-v1")
    rng = np.random.default_rng(0)
    for split, count in (("our485", 8), ("eval15", 2)):
        for side in ("low", "high"):
            (root / split / side).mkdir(parents=True)
        for index in range(count):
            high = rng.integers(40, 255, (36, 44, 3), dtype=np.uint8)
            Image.fromarray((high * 0.2).astype(np.uint8)).save(root / split / "low" / f"{index + 1}.png")
            Image.fromarray(high).save(root / split / "high" / f"{index + 1}.png")
    return root


TINY = ["stages.0.iterations=16", "stages.0.batch_size=2", "stages.0.patch_size=32", "stages.0.scheduler.warmup_iters=2",
        "train.val_every=8", "train.ckpt_every=8", "train.log_every=8", "data.val_fraction=0.25", "data.exposure_range=null"]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, lol_like) -> tuple[Path, str]:
    import contextlib
    import io

    output = tmp_path_factory.mktemp("runs")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["train", str(RECIPE), f"data.root={lol_like}", *TINY, "--output-dir", str(output), "--no-progress"]) == 0
    (run,) = sorted(output.glob("lumicap-first-run/*/seed0"))
    return run, printed.getvalue()


def test_the_recipe_validates_before_its_end_and_fits_the_budget():
    from lumicap.config import load_config

    cfg = load_config(RECIPE)
    assert cfg.model.name == "iat" and len(cfg.stages) == 1 and not cfg.mfr.enabled
    # Selected weights exist well before the end, so a stopped first run has something to use.
    assert cfg.train.val_every * 4 <= cfg.total_iterations
    # The README's "about 5 minutes" was measured for 400 steps of 4 128x128 patches (282 CPU-seconds in all):
    # a bigger recipe needs a new measurement before it can keep that promise.
    samples = cfg.total_iterations * cfg.stages[0].batch_size * cfg.stages[0].patch_size ** 2
    assert samples <= 400 * 4 * 128 * 128


def test_first_run_prints_a_banner_and_an_eta_without_a_progress_bar(first_run, lol_like):
    run, printed = first_run
    lines = printed.splitlines()
    assert lines[0] == f"run: {run} (new run)"
    assert lines[1] == "model: iat (91,154 parameters)"
    assert lines[2] == (f"data: {lol_like}: train 6 pairs (train), validation 2 pairs (carved by scene from 'train' "
                        "(seed 0)), test 2 pairs (test)")
    assert lines[3] == "stages: patches 16 it (batch 2, 32x32 patches); 16 iterations, validation every 8"
    assert lines[4] == "mfr: off (mfr.enabled is false)"
    assert re.fullmatch(r"device: cpu, \d+ CPU threads", lines[5])
    eta = [line for line in lines if line.startswith("speed: ")]
    assert len(eta) == 1 and re.search(r"s per iteration after 13 iterations; about \d+ s left to iteration 16", eta[0])
    assert any(line.startswith("iter 16: val psnr") and "left" in line for line in lines)


def test_first_run_leaves_weights_eval_and_enhance_use(first_run, lol_like, tmp_path, capsys, monkeypatch):
    run, _ = first_run
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "complete"
    best = torch.load(run / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)
    assert info["results"] == f"results/test-iter{best['best']['iteration']:07d}"
    out = tmp_path / "enhanced"
    assert main(["enhance", str(lol_like / "eval15" / "low"), "--out", str(out), "--model", str(run), "--no-progress"]) == 0
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["1.png", "2.png"]
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["eval", "--pred", str(out), "--gt", str(lol_like / "eval15" / "high")]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith(f"wrote {Path('eval_results') / 'enhanced' / 'per_image.csv'}")
    assert "default folder eval_results/<name of --pred> in the current folder" in last
    assert (tmp_path / "eval_results" / "enhanced" / "summary.json").is_file()


def test_stage_mfr_flag_is_marked_inactive_when_mfr_is_off(first_run, capsys):
    run, _ = first_run
    assert main(["config", "show", str(RECIPE)]) == 0
    shown = capsys.readouterr().out
    assert "  mfr: true  # inactive: mfr.enabled is false" in shown
    assert "inactive" in (run / "config.yaml").read_text()  # the run's record says it too
    assert main(["config", "show", str(RECIPE), "mfr.enabled=true"]) == 0
    assert "inactive" not in capsys.readouterr().out
