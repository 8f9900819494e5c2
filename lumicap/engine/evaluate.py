"""The evaluation runner: predictions vs references -> per-image rows and a labelled summary.

One protocol, stated in every summary: PSNR on float RGB in [0, 1] after clamping (or on 8-bit levels,
``psnr_convention="uint8"``), SSIM in the MATLAB convention (``lumicap.metrics.ssim``), optionally
LPIPS (AlexNet, v0.1), and on request the same metrics after GT-mean brightness scaling, under keys
suffixed ``_gtmean``. Means are plain averages over images, as the papers report them.

Judges (``lumicap.metrics.judges``: NIQE, exposure measures, the captioner) add their columns to the same
rows, with or without a reference (``evaluate_no_reference``); a judge's NaN (e.g. NIQE of a photo under
96x96) is left out of its mean, and its protocol line is stored in the summary.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

import torch

from lumicap import jsonfile
from lumicap.errors import LumicapError, shown
from lumicap.files import atomic_write
from lumicap.names import DeviceChoice, PsnrConvention

CSV_NAME = "per_image.csv"
SUMMARY_NAME = "summary.json"
SSIM_PROTOCOL = (
    "matlab: gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, uint8 RGB (range 255), per channel, valid region"
)
PSNR_PROTOCOLS = {
    "float": "float RGB in [0,1], clamped, 10*log10(1/MSE) (Retinexformer/BasicSR)",
    "uint8": "RGB rounded to 8-bit levels, 10*log10(255^2/MSE)",
}
GT_MEAN_PROTOCOL = "output scaled by mean_gray(gt)/mean_gray(output), clamped; gray = 0.299R+0.587G+0.114B"


def measure(
    pred: torch.Tensor,
    gt: torch.Tensor,
    lpips: torch.nn.Module | None = None,
    gt_mean: bool = False,
    psnr_convention: PsnrConvention = "float",
) -> dict[str, float]:
    """Metrics of one image pair (3, H, W) or (1, 3, H, W) in [0, 1]: psnr, ssim[, lpips][, *_gtmean]."""
    from lumicap.metrics import gt_mean_scale, psnr, ssim_matlab

    if pred.dim() == 3:
        pred, gt = pred.unsqueeze(0), gt.unsqueeze(0)
    if pred.shape != gt.shape or pred.shape[0] != 1:
        raise ValueError(
            f"measure: expected one image pair of equal shape, got {tuple(pred.shape)} and {tuple(gt.shape)}"
        )
    variants = [("", pred)]
    if gt_mean:
        variants.append(("_gtmean", gt_mean_scale(pred, gt)))
    result: dict[str, float] = {}
    with torch.no_grad():
        for suffix, candidate in variants:
            result[f"psnr{suffix}"] = float(psnr(candidate, gt, convention=psnr_convention)[0])
            result[f"ssim{suffix}"] = float(ssim_matlab(candidate, gt)[0])
            if lpips is not None:
                result[f"lpips{suffix}"] = float(lpips(candidate.clamp(0, 1), gt)[0])
    return result


def protocol(psnr_convention: PsnrConvention, gt_mean: bool, lpips_status: str) -> dict[str, object]:
    """The description stored beside every number: which conventions produced it."""
    return {
        "psnr": PSNR_PROTOCOLS[psnr_convention],
        "psnr_convention": psnr_convention,
        "ssim": "matlab",
        "ssim_details": SSIM_PROTOCOL,
        "gt_mean": bool(gt_mean),
        "gt_mean_details": GT_MEAN_PROTOCOL if gt_mean else "off (keys *_gtmean absent)",
        "lpips": lpips_status,
        "mean": "arithmetic mean over images",
    }


def evaluate_pairs(
    pred_paths: list[str | os.PathLike],
    gt_paths: list[str | os.PathLike],
    lpips: torch.nn.Module | None = None,
    gt_mean: bool = False,
    *,
    psnr_convention: PsnrConvention = "float",
    names: list[str] | None = None,
    lpips_status: str | None = None,
    device: DeviceChoice | torch.device = "cpu",
    progress: bool = False,
    judges: list | None = None,
    low_paths: list[str | os.PathLike] | None = None,
) -> tuple[list[dict], dict]:
    """Measure each prediction file against its reference file.

    Returns ``(rows, summary)``: one row per image (name, pred, gt, metrics) and a summary with the
    mean of each metric, ``count`` and ``protocol``. Images of different sizes raise one error naming
    every such pair. ``lpips_status`` is stored in the protocol (e.g. "unavailable: <reason>").
    ``judges`` add their columns to each row (given the prediction, its reference and, with
    ``low_paths``, the dark input it was made from).
    """
    from tqdm import tqdm

    from lumicap.data.io import image_size, read_image
    from lumicap.data.pairing import compact_list

    if psnr_convention not in PSNR_PROTOCOLS:
        raise LumicapError(f"unknown PSNR convention '{psnr_convention}' (use {' or '.join(PSNR_PROTOCOLS)})")
    pred_paths, gt_paths = [Path(p) for p in pred_paths], [Path(p) for p in gt_paths]
    if len(pred_paths) != len(gt_paths):
        raise LumicapError(f"evaluate_pairs: {len(pred_paths)} predictions but {len(gt_paths)} references")
    if not pred_paths:
        raise LumicapError("evaluate_pairs: nothing to evaluate (no image pairs)")
    names = list(names) if names is not None else [p.stem for p in pred_paths]
    low_paths = _check_lows(names, pred_paths, low_paths)

    from lumicap.metrics.ssim import WINDOW_SIZE

    # MATLAB-style SSIM is defined on the valid region of its 11x11 window; LPIPS's AlexNet needs 32x32.
    min_side, needs = (
        (32, "LPIPS's 32x32 minimum")
        if lpips is not None
        else (WINDOW_SIZE, f"SSIM's {WINDOW_SIZE}x{WINDOW_SIZE} window")
    )
    mismatched, too_small = [], []
    for name, pred_path, gt_path in zip(names, pred_paths, gt_paths):
        pred_size, gt_size = image_size(pred_path), image_size(gt_path)
        if pred_size != gt_size:
            mismatched.append(f"{name} (pred {pred_size[1]}x{pred_size[0]} vs gt {gt_size[1]}x{gt_size[0]})")
        elif min(pred_size) < min_side:
            too_small.append(f"{name} ({pred_size[1]}x{pred_size[0]})")
    if mismatched:
        raise LumicapError(
            f"{len(mismatched)} prediction(s) differ in size from their reference: {compact_list(mismatched)}"
        )
    if too_small:
        raise LumicapError(
            f"{len(too_small)} image(s) smaller than {needs} cannot be measured: {compact_list(too_small)}"
        )

    if lpips is not None:
        lpips = lpips.to(device)
    rows = []
    triples = zip(names, pred_paths, gt_paths)
    for name, pred_path, gt_path in tqdm(
        triples, total=len(names), desc="eval", unit="img", disable=not progress, leave=False
    ):
        pred = read_image(pred_path).to(device)
        gt = read_image(gt_path).to(device)
        if pred.shape != gt.shape:  # the headers agreed; the decoded pictures must too
            raise LumicapError(
                f"{shown(name)}: prediction decodes to {pred.shape[2]}x{pred.shape[1]} but its reference to "
                f"{gt.shape[2]}x{gt.shape[1]} ({shown(pred_path)} vs {shown(gt_path)})"
            )
        metrics = measure(pred, gt, lpips=lpips, gt_mean=gt_mean, psnr_convention=psnr_convention)
        row = {"name": name, "pred": str(pred_path), "gt": str(gt_path), **metrics}
        low_path = low_paths[len(rows)] if low_paths is not None else None
        if low_path is not None:
            row["low"] = str(low_path)
        if judges:
            row.update(judge_one(judges, name, pred, reference=gt, low_path=low_path))
        rows.append(row)

    if lpips_status is None:
        lpips_status = "alexnet v0.1" if lpips is not None else "not requested"
    summary = summarize(rows, psnr_convention=psnr_convention, gt_mean=gt_mean, lpips_status=lpips_status)
    if judges:
        summary["protocol"]["judges"] = {judge.name: judge.protocol for judge in judges}
    return rows, summary


def evaluate_no_reference(
    pred_paths: list[str | os.PathLike],
    judges: list,
    *,
    names: list[str] | None = None,
    low_paths: list[str | os.PathLike] | None = None,
    progress: bool = False,
) -> tuple[list[dict], dict]:
    """Score enhanced photos that have no reference: one row per photo (name, pred, [low], the judges'
    columns) and a summary with ``count``, each numeric column's mean (NaN left out) and the judges'
    protocols. ``low_paths``: the dark inputs, one per photo, same sizes (for LOE, the change of
    clipping, the teacher's distance to the dark photo)."""
    from tqdm import tqdm

    from lumicap.data.io import read_image

    pred_paths = [Path(p) for p in pred_paths]
    if not pred_paths:
        raise LumicapError("evaluate_no_reference: nothing to evaluate (no images)")
    if not judges:
        raise LumicapError("evaluate_no_reference: no judges to score with")
    names = list(names) if names is not None else [p.stem for p in pred_paths]
    low_paths = _check_lows(names, pred_paths, low_paths)
    rows = []
    for index, (name, pred_path) in enumerate(tqdm(list(zip(names, pred_paths)), desc="eval", unit="img",
                                                  disable=not progress, leave=False)):
        low_path = low_paths[index] if low_paths is not None else None
        row = {"name": name, "pred": str(pred_path)}
        if low_path is not None:
            row["low"] = str(low_path)
        row.update(judge_one(judges, name, read_image(pred_path), reference=None, low_path=low_path))
        rows.append(row)
    summary: dict[str, object] = {"count": len(rows)}
    summary.update(column_means(rows))
    summary["protocol"] = {"reference": "none (no-reference measures only)",
                           "judges": {judge.name: judge.protocol for judge in judges},
                           "mean": "arithmetic mean over images; NaN (undefined) values left out"}
    return rows, summary


def judge_one(
    judges: list, name: str, pred: torch.Tensor, reference: torch.Tensor | None, low_path: Path | None
) -> dict:
    """Every judge's columns for one photo, given as a (3, H, W) tensor (8-bit levels are what they see)."""
    from lumicap.data.io import read_image
    from lumicap.metrics.noref import as_uint8_rgb

    image = as_uint8_rgb(pred.cpu())
    ref = as_uint8_rgb(reference.cpu()) if reference is not None else None
    low = None
    if low_path is not None:
        low = as_uint8_rgb(read_image(low_path))
        if low.shape != image.shape:
            raise LumicapError(f"{shown(name)}: the dark input {shown(low_path)} is {low.shape[1]}x{low.shape[0]}, "
                               f"the prediction {image.shape[1]}x{image.shape[0]}")
    columns: dict = {}
    for judge in judges:
        columns.update(judge.score(image, reference=ref, low=low))
    return columns


def _check_lows(names: list[str], pred_paths: list[Path], low_paths) -> list[Path] | None:
    """The dark inputs as paths, one per prediction, same sizes (all mismatches in one error)."""
    from lumicap.data.io import image_size
    from lumicap.data.pairing import compact_list

    if low_paths is None:
        return None
    low_paths = [Path(p) for p in low_paths]
    if len(low_paths) != len(pred_paths):
        raise LumicapError(f"{len(pred_paths)} predictions but {len(low_paths)} dark inputs")
    mismatched = []
    for name, pred_path, low_path in zip(names, pred_paths, low_paths):
        pred_size, low_size = image_size(pred_path), image_size(low_path)
        if pred_size != low_size:
            mismatched.append(f"{name} (pred {pred_size[1]}x{pred_size[0]} vs low {low_size[1]}x{low_size[0]})")
    if mismatched:
        raise LumicapError(
            f"{len(mismatched)} prediction(s) differ in size from their dark input: {compact_list(mismatched)}"
        )
    return low_paths


PATH_KEYS = ("name", "pred", "gt", "low")


def metric_keys(rows: list[dict]) -> list[str]:
    """Every column but the name and the paths, in row order (numbers, and captions when asked for)."""
    return [k for k in rows[0] if k not in PATH_KEYS] if rows else []


def numeric_keys(rows: list[dict]) -> list[str]:
    return [k for k in metric_keys(rows) if isinstance(rows[0][k], (int, float))]


def column_means(rows: list[dict]) -> dict[str, float]:
    """Mean of each numeric column; NaN values (undefined for that image) are left out, an infinite
    PSNR (identical images) is not."""
    means = {}
    for key in numeric_keys(rows):
        values = [row[key] for row in rows if not math.isnan(row[key])]
        means[key] = math.fsum(values) / len(values) if values else math.nan
    return means


def summarize(rows: list[dict], psnr_convention: PsnrConvention, gt_mean: bool, lpips_status: str) -> dict:
    summary: dict[str, object] = {"count": len(rows)}
    summary.update(column_means(rows))
    summary["protocol"] = protocol(psnr_convention, gt_mean, lpips_status)
    return summary


def evaluate_folders(
    pred_dir: str | os.PathLike,
    gt_dir: str | os.PathLike,
    lpips: torch.nn.Module | None = None,
    gt_mean: bool = False,
    **kwargs,
) -> tuple[list[dict], dict]:
    """``evaluate_pairs`` on two folders whose files are matched by stem (all mismatches in one error)."""
    from lumicap.data.pairing import find_pairs

    pairs = find_pairs(pred_dir, gt_dir, check_sizes=False, labels=("pred", "gt"))
    rows, summary = evaluate_pairs(
        [p.low for p in pairs],
        [p.high for p in pairs],
        lpips=lpips,
        gt_mean=gt_mean,
        names=[p.name for p in pairs],
        **kwargs,
    )
    summary["pred_dir"], summary["gt_dir"] = str(pred_dir), str(gt_dir)
    return rows, summary


def match_predictions(pred_dir: str | os.PathLike, pairs: list) -> list[tuple[Path, object]]:
    """Match the files of ``pred_dir`` to dataset pairs by stem: the pair's name, its low or its high stem.

    Predictions missing for some pairs and prediction files that match no pair are reported together.
    """
    from lumicap.data.pairing import compact_list, list_images

    pred_files = list_images(pred_dir)
    by_stem: dict[str, list[Path]] = {}
    for path in pred_files:
        by_stem.setdefault(path.stem.lower(), []).append(path)
    matched, missing, used = [], [], set()
    for pair in pairs:
        candidates = []
        for stem in dict.fromkeys((pair.name.lower(), pair.low.stem.lower(), pair.high.stem.lower())):
            candidates.extend(by_stem.get(stem, []))
        if len(candidates) == 1:
            matched.append((candidates[0], pair))
            used.add(candidates[0])
        elif not candidates:
            missing.append(pair.name)
        else:
            raise LumicapError(
                f"{pred_dir}: several predictions for '{pair.name}': {', '.join(p.name for p in candidates)}"
            )
    unmatched = [p.name for p in pred_files if p not in used]
    problems = []
    if missing:
        problems.append(f"{len(missing)} reference image(s) without a prediction: {compact_list(missing)}")
    if unmatched:
        problems.append(f"{len(unmatched)} prediction(s) matching no reference: {compact_list(unmatched)}")
    if problems:
        raise LumicapError(f"{pred_dir}: " + "; ".join(problems))
    return matched


def write_results(
    out_dir: str | os.PathLike, rows: list[dict], summary: dict, overwrite: bool = False
) -> tuple[Path, Path]:
    """Write ``per_image.csv`` and ``summary.json`` into ``out_dir``; existing files need ``overwrite``."""
    out_dir = Path(out_dir)
    csv_path, json_path = out_dir / CSV_NAME, out_dir / SUMMARY_NAME
    existing = [str(p) for p in (csv_path, json_path) if p.exists()]
    if existing and not overwrite:
        raise LumicapError(f"{' and '.join(existing)} already exist(s); pass --overwrite (overwrite=True) to replace")
    if out_dir.exists() and not out_dir.is_dir():
        raise LumicapError(f"{out_dir}: exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)

    buffer = io.StringIO()
    fields = ["name", *metric_keys(rows), *(k for k in ("pred", "gt", "low") if rows and k in rows[0])]
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{row[k]:.6f}" if isinstance(row.get(k), float) else row.get(k, "")) for k in fields})
    atomic_write(csv_path, buffer.getvalue())
    atomic_write(json_path, jsonfile.dumps(summary, indent=2) + "\n")  # an infinite PSNR is written "inf"
    return csv_path, json_path
