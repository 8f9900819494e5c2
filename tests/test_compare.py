"""`lumicap compare` on run folders: statistics over seeds, paired bootstrap, protocol refusals, outputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from lumicap.cli import main
from lumicap.config import dump_yaml, from_dict
from lumicap.engine.compare import build_table, collect, paired_bootstrap, to_csv, to_latex
from lumicap.errors import LumicapError

NAMES = [f"img{i}" for i in range(12)]


def make_run(root: Path, name: str, seed: int, psnr: np.ndarray, ssim: np.ndarray, *, mfr: bool, model="iat",
             select_on="val", psnr_convention="float", train_split="train", status="complete", lr=2e-4) -> Path:
    run = root / name / "20260101-000000" / f"seed{seed}"
    results = run / "results" / "test-iter0000100"
    results.mkdir(parents=True)
    cfg = from_dict(
        {
            "model": {"name": model},
            "data": {"root": "/data/lol", "train_split": train_split},
            "stages": [{"name": "main", "iterations": 100, "batch_size": 2, "patch_size": 32, "losses": {"l1": 1.0},
                        "optimizer": {"lr": lr}}],
            "mfr": {"enabled": mfr},
            "train": {"seed": seed, "select_on": select_on},
            "eval": {"psnr_convention": psnr_convention},
        },
        name=name,
    )
    (run / "config.yaml").write_text(dump_yaml(cfg))
    (run / "run.json").write_text(json.dumps({"name": name, "status": status, "iteration": 100}))
    with open(results / "per_image.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["name", "psnr", "ssim", "pred", "gt"])
        for n, p, s in zip(NAMES, psnr, ssim):
            writer.writerow([n, f"{p:.6f}", f"{s:.6f}", "", f"/data/lol/test/high/{n}.png"])
    summary = {
        "count": len(NAMES),
        "psnr": float(np.mean(np.round(psnr, 6))),
        "ssim": float(np.mean(np.round(ssim, 6))),
        "protocol": {
            "psnr": "float", "psnr_convention": psnr_convention, "ssim": "matlab", "gt_mean": False, "lpips": "not requested",
            "dataset": {"root": "/data/lol", "layout": "lol-v1", "train_split": train_split, "test_split": "test",
                        "test_pairs": 12, "test_names_sha1": "abc"},
            "selection": {"on": select_on, "metric": "psnr", "val": "carved"},
        },
        "iteration": 100,
    }
    (results / "summary.json").write_text(json.dumps(summary))
    return run


@pytest.fixture
def runs(tmp_path):
    rng = np.random.default_rng(0)
    base = {s: 20 + rng.normal(0, 1, 12) for s in (1, 2, 3)}
    gain = {s: base[s] + 0.5 + rng.normal(0, 0.2, 12) for s in (1, 2, 3)}
    ssim = {s: 0.7 + rng.normal(0, 0.02, 12) for s in (1, 2, 3)}
    for s in (1, 2, 3):
        make_run(tmp_path, "iat-baseline", s, base[s], ssim[s], mfr=False)
        make_run(tmp_path, "iat-mfr", s, gain[s], ssim[s] + 0.01, mfr=True)
    return tmp_path, base, gain


def test_rows_statistics_and_bootstrap_interval(runs):
    root, base, gain = runs
    records, notes = collect([root])
    rows, _ = build_table(records, resamples=2000, seed=7)
    assert [(r.name, r.seeds) for r in rows] == [("iat-baseline", [1, 2, 3]), ("iat-mfr", [1, 2, 3])]
    base_means = [np.mean(np.round(base[s], 6)) for s in (1, 2, 3)]
    mean, std = rows[0].stats["psnr"]
    assert mean == pytest.approx(np.mean(base_means)) and std == pytest.approx(np.std(base_means, ddof=1))

    # Independent computation: per-image seed-mean difference (images in name order), resampled.
    diff = np.mean([np.round(gain[s], 6) for s in (1, 2, 3)], axis=0) - np.mean([np.round(base[s], 6) for s in (1, 2, 3)], axis=0)
    diff = diff[np.argsort(NAMES)]
    rng = np.random.default_rng(7)
    boot = diff[rng.integers(0, 12, size=(2000, 12))].mean(axis=1)
    delta, low, high = rows[1].deltas["psnr"]
    assert delta == pytest.approx(diff.mean(), abs=1e-9)
    assert (low, high) == pytest.approx(tuple(np.percentile(boot, [2.5, 97.5])), abs=1e-9)
    assert low < delta < high and low > 0  # a consistent +0.5 dB gain is significant
    assert rows[1].deltas["ssim"][0] == pytest.approx(0.01, abs=1e-6)
    assert not rows[0].deltas  # the baseline row carries no delta


def test_bootstrap_is_reproducible_and_chunked():
    diff = np.random.default_rng(1).normal(0.1, 1.0, 300)
    assert paired_bootstrap(diff, 10_000, 0) == paired_bootstrap(diff, 10_000, 0)
    assert paired_bootstrap(diff, 10_000, 0) != paired_bootstrap(diff, 10_000, 1)


def test_cli_prints_markdown_and_writes_csv_and_latex(runs, capsys):
    root, _, _ = runs
    assert main(["compare", str(root), "--out", str(root / "table"), "--resamples", "1000"]) == 0
    out = capsys.readouterr().out
    assert "| lol-v1/test | iat | baseline (iat-baseline) | 1,2,3 |" in out
    assert "| lol-v1/test | iat | +MFR (iat-mfr) | 1,2,3 |" in out and "±" in out
    rows = list(csv.DictReader(open(root / "table" / "table.csv")))
    assert [r["variant"] for r in rows] == ["baseline", "mfr"] and rows[1]["delta_psnr_ci_low"]
    tex = (root / "table" / "table.tex").read_text()
    assert "\\begin{tabular}" in tex and "$\\pm$" in tex and "iat-mfr" not in tex.replace("iat-mfr)", "")  # escaped
    assert "(iat-mfr)" in tex and "\\_" not in "iat-mfr"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"select_on": "test"}, "selection split differs"),
        ({"psnr_convention": "uint8"}, "metric protocol differs"),
        ({"train_split": "train80"}, "training split of iat-mfr differs"),
        ({"lr": 1e-4}, "recipe of iat-mfr differs"),
    ],
)
def test_runs_under_different_protocols_are_refused_or_flagged(runs, change, message):
    root, base, gain = runs
    make_run(root / "other", "iat-mfr", 4, gain[1], gain[1] * 0 + 0.7, mfr=True, **change)
    records, _ = collect([root])
    with pytest.raises(LumicapError, match=message):
        build_table(records, resamples=200)
    rows, _ = build_table(records, resamples=200, allow_mixed=True)
    flagged = [row for row in rows if row.flags]
    assert flagged and all(any(message.split(" ")[0] in f for f in row.flags) for row in flagged)
    assert "[1]" in to_latex(rows, 200, 0) or "$^{1" in to_latex(rows, 200, 0)


def test_incomplete_runs_flagged_missing_baseline_noted_unfinished_left_out(tmp_path):
    values = np.linspace(15, 25, 12)
    make_run(tmp_path, "iat-mfr", 1, values, values * 0 + 0.7, mfr=True, status="stopped")
    unfinished = tmp_path / "iat-mfr" / "20260101-000001" / "seed2"
    unfinished.mkdir(parents=True)
    (unfinished / "run.json").write_text(json.dumps({"status": "running"}))
    (unfinished / "config.yaml").write_text("{}")
    records, notes = collect([tmp_path])
    assert len(records) == 1 and "no test results yet" in notes[0]
    rows, notes = build_table(records, resamples=200)
    assert rows[0].flags and rows[0].flags[0].startswith("incomplete:")
    assert "no baseline run given" in notes[0]
    assert "incomplete" in to_csv(rows)


def test_baseline_and_mfr_rows_must_share_the_recipe_besides_the_mfr_block(tmp_path):
    values = np.linspace(15, 25, 12)
    make_run(tmp_path, "iat-baseline", 1, values, values * 0 + 0.7, mfr=False, lr=1e-4)
    make_run(tmp_path, "iat-mfr", 1, values + 1, values * 0 + 0.7, mfr=True)
    with pytest.raises(LumicapError, match=r"recipe of iat-baseline vs iat-mfr \(besides the MFR block\) differs "
                       r"\(stages.0.optimizer.lr: 0.0001 vs 0.0002"):
        build_table(collect([tmp_path])[0], resamples=200)


def test_duplicate_seed_in_a_row_is_refused(runs):
    root, base, _ = runs
    make_run(root / "again", "iat-baseline", 1, base[1], base[1] * 0 + 0.7, mfr=False)
    with pytest.raises(LumicapError, match=r"row iat-baseline has seed\(s\) \[1\] more than once"):
        build_table(collect([root])[0], resamples=200)


def test_no_results_is_a_one_line_error(tmp_path):
    with pytest.raises(LumicapError, match="no runs with test results"):
        collect([tmp_path])
