"""`lumicap eval` and the evaluation runner, end to end through ``lumicap.cli.main``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lumicap.cli import main
from lumicap.engine.evaluate import evaluate_folders, measure, write_results
from lumicap.errors import LumicapError


def save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def make_folders(root: Path, names=("a", "b", "c"), size=(16, 20)) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """pred/ and gt/ with noisy predictions; returns the arrays for reference computations."""
    arrays = {}
    for i, name in enumerate(names):
        rng = np.random.default_rng(i)
        gt = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        pred = np.clip(gt.astype(int) + rng.integers(-30, 31, gt.shape), 0, 255).astype(np.uint8)
        save(root / "pred" / f"{name}.png", pred)
        save(root / "gt" / f"{name}.png", gt)
        arrays[name] = (pred, gt)
    return arrays


def numpy_psnr(pred: np.ndarray, gt: np.ndarray) -> float:
    mse = np.mean((pred.astype(np.float64) / 255 - gt.astype(np.float64) / 255) ** 2)
    return float(10 * np.log10(1 / mse))


def run_eval(*args) -> int:
    return main(["eval", *map(str, args)])


def test_eval_folders_writes_csv_json_and_prints_means(tmp_path, capsys):
    arrays = make_folders(tmp_path)
    out = tmp_path / "results"
    assert run_eval("--pred", tmp_path / "pred", "--gt", tmp_path / "gt", "--out", out, "--per-image") == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    expected = np.mean([numpy_psnr(p, g) for p, g in arrays.values()])
    assert summary["count"] == 3
    assert summary["psnr"] == pytest.approx(expected, abs=1e-6)
    assert summary["protocol"]["ssim"] == "matlab" and summary["protocol"]["psnr_convention"] == "float"
    assert summary["protocol"]["gt_mean"] is False and "psnr_gtmean" not in summary
    assert f"{expected:.4f}" in printed and "PSNR (dB)" in printed and "SSIM" in printed
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert [r["name"] for r in rows] == ["a", "b", "c"]
    assert float(rows[1]["psnr"]) == pytest.approx(numpy_psnr(*arrays["b"]), abs=1e-5)


def test_existing_results_are_not_overwritten(tmp_path, capsys):
    make_folders(tmp_path)
    out = tmp_path / "results"
    args = ("--pred", tmp_path / "pred", "--gt", tmp_path / "gt", "--out", out)
    assert run_eval(*args) == 0
    (out / "summary.json").write_text("{\"mine\": 1}")
    capsys.readouterr()
    assert run_eval(*args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "already exists" in err and "--overwrite" in err
    assert json.loads((out / "summary.json").read_text()) == {"mine": 1}
    assert run_eval(*args, "--overwrite") == 0
    assert json.loads((out / "summary.json").read_text())["count"] == 3


def test_write_results_refuses_without_overwrite(tmp_path):
    rows = [{"name": "x", "pred": "p", "gt": "g", "psnr": 1.0, "ssim": 0.5}]
    write_results(tmp_path, rows, {"count": 1})
    with pytest.raises(LumicapError, match="already exist"):
        write_results(tmp_path, rows, {"count": 1})
    write_results(tmp_path, rows, {"count": 2}, overwrite=True)
    assert json.loads((tmp_path / "summary.json").read_text()) == {"count": 2}


def test_mismatched_folders_give_one_line_listing_names(tmp_path, capsys):
    make_folders(tmp_path)
    (tmp_path / "pred" / "b.png").unlink()
    save(tmp_path / "pred" / "z.png", np.zeros((16, 20, 3), np.uint8))
    assert run_eval("--pred", tmp_path / "pred", "--gt", tmp_path / "gt", "--out", tmp_path / "r") == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "1 gt image(s) without a pred partner" in err and "b.png" in err
    assert "1 pred image(s) without a gt partner" in err and "z.png" in err
    assert not (tmp_path / "r").exists()


def test_size_mismatch_is_reported(tmp_path, capsys):
    make_folders(tmp_path)
    save(tmp_path / "pred" / "a.png", np.zeros((16, 24, 3), np.uint8))
    assert run_eval("--pred", tmp_path / "pred", "--gt", tmp_path / "gt", "--out", tmp_path / "r") == 2
    err = capsys.readouterr().err
    assert "a (pred 24x16 vs gt 20x16)" in err


def test_gt_mean_and_uint8_convention_are_labelled(tmp_path):
    make_folders(tmp_path)
    out = tmp_path / "r"
    assert run_eval("--pred", tmp_path / "pred", "--gt", tmp_path / "gt", "--out", out, "--gt-mean", "--psnr", "uint8") == 0
    summary = json.loads((out / "summary.json").read_text())
    assert {"psnr", "ssim", "psnr_gtmean", "ssim_gtmean"} <= set(summary)
    assert summary["protocol"]["gt_mean"] is True and summary["protocol"]["psnr_convention"] == "uint8"


def test_measure_gt_mean_on_a_globally_darker_output():
    gt = torch.rand(3, 24, 24, generator=torch.Generator().manual_seed(0)) * 0.5
    result = measure(gt * 0.5, gt, gt_mean=True)
    assert result["psnr"] < 30
    assert result["psnr_gtmean"] > 100 or result["psnr_gtmean"] == float("inf")  # brightness fixed exactly
    assert result["ssim_gtmean"] == pytest.approx(1.0, abs=1e-6)


def test_eval_on_a_dataset_split_matches_predictions_by_stem(tmp_path, capsys):
    rng = np.random.default_rng(0)
    data = tmp_path / "LOL-v2" / "Real_captured"
    for number in (1, 2):
        save(data / "Test" / "Low" / f"low{number:05d}.png", rng.integers(0, 256, (12, 12, 3), dtype=np.uint8))
        save(data / "Test" / "Normal" / f"normal{number:05d}.png", rng.integers(0, 256, (12, 12, 3), dtype=np.uint8))
        # predictions named after the input file, as `lumicap enhance` writes them
        save(tmp_path / "pred" / f"low{number:05d}.png", rng.integers(0, 256, (12, 12, 3), dtype=np.uint8))
    out = tmp_path / "r"
    assert run_eval("--pred", tmp_path / "pred", "--data", data, "--split", "test", "--out", out) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["count"] == 2 and summary["split"] == "test"
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert [Path(r["gt"]).name for r in rows] == ["normal00001.png", "normal00002.png"]

    (tmp_path / "pred" / "low00002.png").unlink()
    assert run_eval("--pred", tmp_path / "pred", "--data", data, "--split", "test", "--out", tmp_path / "r2") == 2
    assert "1 reference image(s) without a prediction: 00002" in capsys.readouterr().err


def test_data_without_split_and_missing_pred(tmp_path, capsys):
    assert run_eval("--pred", tmp_path / "nope", "--gt", tmp_path) == 2
    assert "no such folder (--pred)" in capsys.readouterr().err
    (tmp_path / "p").mkdir()
    assert run_eval("--pred", tmp_path / "p", "--data", tmp_path) == 2
    assert "--data needs --split" in capsys.readouterr().err


def test_lpips_unavailable_keeps_other_metrics(tmp_path, capsys):
    make_folders(tmp_path, size=(40, 40))
    out = tmp_path / "r"
    code = run_eval("--pred", tmp_path / "pred", "--gt", tmp_path / "gt", "--out", out, "--lpips",
                    "--alex-weights", tmp_path / "none.pth", "--lpips-weights", tmp_path / "none2.pth")
    assert code == 0
    captured = capsys.readouterr()
    assert "LPIPS unavailable:" in captured.err and "none.pth: no such file" in captured.err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["protocol"]["lpips"].startswith("unavailable: ")
    assert "psnr" in summary and "ssim" in summary and not any(k.startswith("lpips") for k in summary if k != "protocol")


def test_lpips_with_weight_files(tmp_path):
    # Random weights under the real key names and shapes (see test_lpips.py for the reference check).
    g = torch.Generator().manual_seed(0)
    convs = {0: (64, 3, 11), 3: (192, 64, 5), 6: (384, 192, 3), 8: (256, 384, 3), 10: (256, 256, 3)}
    alex = {}
    for index, (out_c, in_c, k) in convs.items():
        alex[f"features.{index}.weight"] = torch.randn(out_c, in_c, k, k, generator=g) * (2 / (in_c * k * k)) ** 0.5
        alex[f"features.{index}.bias"] = torch.zeros(out_c)
    heads = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) for i, c in enumerate((64, 192, 384, 256, 256))}
    torch.save(alex, tmp_path / "alex_features.pth")
    torch.save(heads, tmp_path / "heads.pth")
    make_folders(tmp_path, names=("a", "b"), size=(40, 40))
    out = tmp_path / "r"
    assert run_eval("--pred", tmp_path / "pred", "--gt", tmp_path / "gt", "--out", out, "--lpips", "--gt-mean",
                    "--alex-weights", tmp_path / "alex_features.pth", "--lpips-weights", tmp_path / "heads.pth") == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["lpips"] > 0 and "lpips_gtmean" in summary
    assert summary["protocol"]["lpips"] == "alexnet v0.1"


def test_evaluate_folders_api(tmp_path):
    arrays = make_folders(tmp_path, names=("x",))
    rows, summary = evaluate_folders(tmp_path / "pred", tmp_path / "gt")
    assert rows[0]["name"] == "x" and summary["count"] == 1
    assert rows[0]["psnr"] == pytest.approx(numpy_psnr(*arrays["x"]), abs=1e-5)


# ------------------------------------------------------------------------------- no-reference measures
def _photo_folders(root: Path, names=("p", "q")) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """enhanced/ and dark/ photos big enough for NIQE (two 96x96 blocks): crops of scikit-image's photos."""
    from skimage import data

    photos = {}
    for i, name in enumerate(names):
        enhanced = np.ascontiguousarray((data.astronaut(), data.coffee())[i % 2][:120, :200])
        dark = (enhanced // 5).astype(np.uint8)
        save(root / "enhanced" / f"{name}.png", enhanced)
        save(root / "dark" / f"{name}.png", dark)
        photos[name] = (enhanced, dark)
    return photos


def test_eval_without_a_reference_writes_the_no_reference_columns(tmp_path, capsys):
    from lumicap.metrics import clipped_share, colourfulness, loe, niqe

    photos = _photo_folders(tmp_path)
    out = tmp_path / "r"
    assert run_eval("--pred", tmp_path / "enhanced", "--low", tmp_path / "dark", "--niqe-mode", "y", "--out", out) == 0
    printed = capsys.readouterr().out
    assert "no reference: no-reference measures only" in printed and "NIQE Y (lower is better)" in printed
    rows = {r["name"]: r for r in csv.DictReader((out / "per_image.csv").open())}
    assert set(rows) == {"p", "q"} and "psnr" not in rows["p"]
    for name, (enhanced, dark) in photos.items():
        row = rows[name]
        assert float(row["niqe_y"]) == pytest.approx(niqe(enhanced, "y"), abs=1e-6)
        assert float(row["niqe_y_low"]) == pytest.approx(niqe(dark, "y"), abs=1e-6)
        assert float(row["clipped_pct"]) == pytest.approx(100 * clipped_share(enhanced), abs=1e-6)
        assert float(row["colourfulness"]) == pytest.approx(colourfulness(enhanced), abs=1e-6)
        assert float(row["loe"]) == pytest.approx(loe(dark, enhanced), abs=1e-6)
        assert Path(row["low"]).name == f"{name}.png"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["count"] == 2 and summary["protocol"]["reference"].startswith("none")
    assert summary["niqe_y"] == pytest.approx(np.mean([niqe(e, "y") for e, _ in photos.values()]), abs=1e-9)
    assert "BasicSR" in summary["protocol"]["judges"]["niqe"] and "LOE.m" in summary["protocol"]["judges"]["exposure"]


def test_eval_with_a_reference_adds_the_no_reference_columns_and_no_ref_drops_psnr(tmp_path, capsys):
    photos = _photo_folders(tmp_path)
    for name, (enhanced, _) in photos.items():
        save(tmp_path / "gt" / f"{name}.png", np.clip(enhanced.astype(int) + 9, 0, 255).astype(np.uint8))
    out = tmp_path / "r"
    assert run_eval("--pred", tmp_path / "enhanced", "--gt", tmp_path / "gt", "--low", tmp_path / "dark", "--out", out) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert {"psnr", "ssim", "niqe_gray", "niqe_gray_low", "loe", "clipped_pct_change"} <= set(summary)
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert [(Path(r["gt"]).parent.name, Path(r["low"]).parent.name) for r in rows] == [("gt", "dark")] * 2
    assert set(summary["protocol"]["judges"]) == {"niqe", "exposure"}
    assert run_eval("--pred", tmp_path / "enhanced", "--gt", tmp_path / "gt", "--no-ref", "--out", tmp_path / "r2") == 0
    summary = json.loads((tmp_path / "r2" / "summary.json").read_text())
    assert "psnr" not in summary and "niqe_gray" in summary
    capsys.readouterr()
    assert run_eval("--pred", tmp_path / "enhanced", "--lpips", "--out", tmp_path / "r3") == 2
    assert capsys.readouterr().err.strip() == "lumicap: error: --lpips needs a reference (--gt or --data, without --no-ref)"
    assert run_eval("--pred", tmp_path / "enhanced", "--captions", "--out", tmp_path / "r3") == 2
    assert "--captions needs --teacher" in capsys.readouterr().err


def test_small_photos_have_no_niqe_and_are_left_out_of_its_mean(tmp_path, capsys):
    make_folders(tmp_path)  # 16 x 20 photos: no 96x96 block
    out = tmp_path / "r"
    assert run_eval("--pred", tmp_path / "pred", "--gt", tmp_path / "gt", "--out", out) == 0
    assert "niqe_gray: 3 image(s) under 96x96 or without texture have no NIQE" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["niqe_gray"] == "nan" and summary["count"] == 3 and summary["psnr"] > 0


def test_dark_inputs_of_another_size_are_one_error(tmp_path, capsys):
    _photo_folders(tmp_path)
    save(tmp_path / "dark" / "q.png", np.zeros((100, 100, 3), np.uint8))
    assert run_eval("--pred", tmp_path / "enhanced", "--low", tmp_path / "dark", "--out", tmp_path / "r") == 2
    assert "q (pred 200x120 vs low 100x100)" in capsys.readouterr().err


def test_eval_with_a_tiny_teacher_reports_its_distances_and_captions(tmp_path):
    from lumicap.teacher import save_tiny_teacher

    _photo_folders(tmp_path)
    teacher = save_tiny_teacher(tmp_path / "teacher", "mlp", seed=1)
    out = tmp_path / "r"
    assert run_eval("--pred", tmp_path / "enhanced", "--low", tmp_path / "dark", "--teacher", teacher, "--captions",
                    "--device", "cpu", "--out", out) == 0
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert all(float(r["teacher_clip_vs_low"]) > 0 and r["caption"] and r["caption_low"] for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert "teacher_gpt_vs_low" in summary and "caption" not in summary
    assert summary["protocol"]["judges"]["teacher"].startswith(f"ClipCap teacher {teacher}")


# ------------------------------------------------------------------------------- real LOL images
def test_eval_on_lol_eval15_dark_inputs(shared_data, tmp_path, capsys):
    from skimage.metrics import structural_similarity

    root = shared_data / "lol-v1" / "eval15"
    lows = sorted((root / "low").glob("*.png"))
    psnrs, ssims = [], []
    for low_path in lows:
        low = np.asarray(Image.open(low_path).convert("RGB"))
        high = np.asarray(Image.open(root / "high" / low_path.name).convert("RGB"))
        psnrs.append(numpy_psnr(low, high))
        ssims.append(structural_similarity(low, high, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                           data_range=255, channel_axis=-1))
    out = tmp_path / "eval15"
    assert run_eval("--pred", root / "low", "--gt", root / "high", "--out", out) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["count"] == 15
    assert summary["psnr"] == pytest.approx(np.mean(psnrs), abs=1e-6)
    assert summary["ssim"] == pytest.approx(np.mean(ssims), abs=1e-6)
    assert f"{np.mean(psnrs):.4f}" in printed and f"{np.mean(ssims):.4f}" in printed
