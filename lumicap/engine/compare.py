"""The results table: baselines and their +MFR counterparts, over seeds, with paired bootstrap intervals.

``collect(paths)`` reads each run folder's ``run.json``, ``config.yaml`` and latest test results;
``build_table(runs)`` groups them into rows (one config = one row, its seeds pooled) per test set,
pairs each MFR row with the baseline of the same model, and computes

- mean ± sample std over seeds of each run's mean PSNR / SSIM (/ LPIPS when every run has it);
- the delta of the means (MFR - baseline);
- a paired bootstrap 95% interval of that delta over test images: per image, the metric averaged over
  a row's seeds; the per-image differences are resampled with replacement (fixed seed, 10,000 times by
  default) and the 2.5th / 97.5th percentiles of the resampled means are reported.

Runs that are not comparable are refused with one line naming the field and the runs: a different
metric protocol (PSNR convention, SSIM variant, GT-mean), selection split, training split, test image
set, or recipe (config differing beyond the seed). ``allow_mixed=True`` keeps them, flagging each
affected row instead. Incomplete runs (stopped by a budget) are flagged.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from lumicap.engine.rundir import CONFIG_FILE, read_run_info, runs_under
from lumicap.errors import LumicapError

METRICS = ("psnr", "ssim", "lpips")
LOWER_IS_BETTER = {"lpips"}


@dataclass
class RunRecord:
    path: Path
    name: str
    model: str
    mfr: bool
    seed: int
    status: str
    iteration: int
    config: dict
    summary: dict
    per_image: dict[str, dict[str, float]]  # image name -> metric -> value

    @property
    def dataset_key(self) -> tuple:
        d = self.summary["protocol"]["dataset"]
        return (d["layout"], d["test_split"], d["test_names_sha1"])

    @property
    def dataset_label(self) -> str:
        d = self.summary["protocol"]["dataset"]
        return f"{d['layout']}/{d['test_split']}"

    def metric_protocol(self) -> dict:
        p = self.summary["protocol"]
        return {"psnr_convention": p.get("psnr_convention"), "ssim": p.get("ssim"), "gt_mean": p.get("gt_mean")}


@dataclass
class Row:
    dataset: str
    name: str
    model: str
    mfr: bool
    runs: list[RunRecord]
    flags: list[str] = field(default_factory=list)
    stats: dict[str, tuple[float, float]] = field(default_factory=dict)  # metric -> (mean, std)
    deltas: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # metric -> (delta, lo, hi)

    @property
    def seeds(self) -> list[int]:
        return sorted(r.seed for r in self.runs)


def _latest_results(run: Path, info: dict) -> Path | None:
    if isinstance(info.get("results"), str) and info["results"] and (run / info["results"] / "summary.json").is_file():
        return run / info["results"]
    found = sorted((run / "results").glob("test-iter*/summary.json"))
    return found[-1].parent if found else None


def _read_per_image(path: Path) -> dict[str, dict[str, float]]:
    rows = {}
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                rows[row["name"]] = {k: float(row[k]) for k in METRICS if row.get(k) not in (None, "")}
    except (OSError, UnicodeDecodeError, csv.Error, KeyError, TypeError, ValueError) as exc:
        raise LumicapError(
            f"{path}: not a readable per-image results table ({type(exc).__name__}: {str(exc)[:100]})"
        ) from None
    return rows


def _read_summary(path: Path) -> dict:
    """A test ``summary.json`` with the fields the table needs, each of the right type (else one line)."""
    from lumicap.jsonfile import expect_object, read_json

    summary = expect_object(read_json(path, what="test summary"), path, "test summary")

    def need(container: dict, key: str, kind, where: str):
        value = container.get(key)
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not dict:
            raise LumicapError(f"{path}: not a lumicap test summary ('{where}' missing or of the wrong type)")
        return value

    protocol = need(summary, "protocol", dict, "protocol")
    dataset = need(protocol, "dataset", dict, "protocol.dataset")
    for key in ("layout", "test_split", "test_names_sha1", "train_split"):
        need(dataset, key, str, f"protocol.dataset.{key}")
    need(need(protocol, "selection", dict, "protocol.selection"), "on", str, "protocol.selection.on")
    for key in ("psnr", "ssim", "lpips"):
        if key in summary and summary[key] not in ("inf", "-inf", "nan"):  # how non-finite means are written
            need(summary, key, (int, float), key)
    if "iteration" in summary:
        need(summary, "iteration", int, "iteration")
    return summary


def _read_config(path: Path) -> tuple[dict, str, int]:
    """A run's config.yaml as a dict, with its model name and seed."""
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not all(isinstance(config.get(key), dict) for key in ("model", "train", "data")):
            raise TypeError("'model', 'train' and 'data' must be mappings")
        return config, str(config["model"]["name"]), int(config["train"]["seed"])
    except (OSError, UnicodeDecodeError, yaml.YAMLError, AttributeError, KeyError, TypeError, ValueError) as exc:
        raise LumicapError(
            f"{path}: not a readable run config ({type(exc).__name__}: {' '.join(str(exc).split())[:100]})"
        ) from None


def collect(paths: list[str | Path]) -> tuple[list[RunRecord], list[str]]:
    """Run records under ``paths`` (run, group or parent folders) and notes about folders left out."""
    records, notes = [], []
    seen = set()
    for path in paths:
        for run in runs_under(path):
            if run.resolve() in seen:
                continue
            seen.add(run.resolve())
            info = read_run_info(run)
            results = _latest_results(run, info)
            if results is None:
                notes.append(f"{run}: no test results yet (status {info.get('status', '?')}); left out")
                continue
            summary = _read_summary(results / "summary.json")
            config, model, seed = _read_config(run / CONFIG_FILE)
            mfr = config.get("mfr")
            records.append(
                RunRecord(
                    path=run,
                    name=str(info.get("name") or config.get("name") or run.parent.parent.name),
                    model=model,
                    mfr=bool(mfr.get("enabled")) if isinstance(mfr, dict) else False,
                    seed=seed,
                    status=str(info.get("status", "?")),
                    iteration=int(
                        summary.get("iteration", info.get("iteration") if isinstance(info.get("iteration"), int) else 0)
                    ),
                    config=config,
                    summary=summary,
                    per_image=_read_per_image(results / "per_image.csv"),
                )
            )
    if not records:
        raise LumicapError("no runs with test results under " + ", ".join(map(str, paths)))
    return records, notes


def _recipe(config: dict) -> dict:
    """The part of a config that must agree across a row's seeds."""
    out = json.loads(json.dumps(config))
    out["train"].pop("seed", None)
    out["train"].pop("max_minutes", None)
    out.pop("output_dir", None)
    out.pop("name", None)
    out["data"].pop("root", None)
    out["data"].pop("num_workers", None)
    out["data"].pop("train_split", None)  # checked on its own, with a clearer message
    return out


class _Problems:
    def __init__(self, allow_mixed: bool):
        self.allow_mixed = allow_mixed

    def report(self, message: str, rows: list[Row]) -> None:
        if not self.allow_mixed:
            raise LumicapError(f"not comparable: {message} (pass --allow-mixed to keep them, flagged)")
        for row in rows:
            row.flags.append(message)


def _flatten(value, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        out = {}
        for index, item in enumerate(value):
            out.update(_flatten(item, f"{prefix}.{index}"))
        return out
    return {prefix: value}


def _difference(a, b) -> str:
    """Short text of what differs between two values: 'x.y: 1 vs 2' for the first few keys."""
    fa, fb = _flatten(a), _flatten(b)
    keys = [k for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]
    shown = ", ".join(f"{k or 'value'}: {fa.get(k)!r} vs {fb.get(k)!r}" for k in keys[:3])
    return shown + (f" (+{len(keys) - 3} more)" if len(keys) > 3 else "")


def _check_same(field_name: str, value_of, runs: list[RunRecord], rows: list[Row], problems: _Problems) -> None:
    groups: dict[str, list[RunRecord]] = {}
    for run in runs:
        groups.setdefault(json.dumps(value_of(run), sort_keys=True), []).append(run)
    if len(groups) > 1:
        (first_key, first), (other_key, other) = list(groups.items())[:2]
        problems.report(
            f"{field_name} differs ({_difference(json.loads(first_key), json.loads(other_key))}; "
            f"e.g. {first[0].path} vs {other[0].path})",
            rows,
        )


def paired_bootstrap(diff: np.ndarray, resamples: int, seed: int) -> tuple[float, float]:
    """2.5th and 97.5th percentiles of the mean of ``diff`` resampled with replacement."""
    rng = np.random.default_rng(seed)
    n = len(diff)
    means = np.empty(resamples)
    chunk = max(1, 2_000_000 // max(n, 1))  # bounded memory for large test sets
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = diff[idx].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def build_table(
    records: list[RunRecord], *, resamples: int = 10_000, seed: int = 0, allow_mixed: bool = False
) -> tuple[list[Row], list[str]]:
    problems = _Problems(allow_mixed)
    notes: list[str] = []
    rows_by_key: dict[tuple, Row] = {}
    for rec in records:
        key = (rec.dataset_key, rec.name)
        if key not in rows_by_key:
            rows_by_key[key] = Row(rec.dataset_label, rec.name, rec.model, rec.mfr, [])
        rows_by_key[key].runs.append(rec)
    rows = list(rows_by_key.values())

    # Everything in one table must be measured and selected the same way.
    _check_same("metric protocol", RunRecord.metric_protocol, records, rows, problems)
    _check_same("selection split", lambda r: r.summary["protocol"]["selection"]["on"], records, rows, problems)

    for row in rows:
        seeds = [r.seed for r in row.runs]
        dupes = sorted({s for s in seeds if seeds.count(s) > 1})
        if dupes:
            problems.report(f"row {row.name} has seed(s) {dupes} more than once", [row])
        _check_same(
            f"training split of {row.name}",
            lambda r: r.summary["protocol"]["dataset"]["train_split"],
            row.runs,
            [row],
            problems,
        )
        _check_same(f"recipe of {row.name}", lambda r: _recipe(r.config), row.runs, [row], problems)
        partial = [f"{r.path} ({r.iteration} it, {r.status})" for r in row.runs if r.status != "complete"]
        if partial:
            row.flags.append("incomplete: " + ", ".join(partial))

    metrics = [m for m in METRICS if all(m in rec.summary for rec in records)]
    for row in rows:
        for m in metrics:
            values = np.array([float(r.summary[m]) for r in row.runs])
            row.stats[m] = (float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else float("nan"))

    # Pair each MFR row with the baseline of the same model on the same test set.
    for dataset in sorted({r.dataset_key for r in records}):
        in_set = [row for row in rows if row.runs[0].dataset_key == dataset]
        for model in sorted({row.model for row in in_set}):
            baselines = [row for row in in_set if row.model == model and not row.mfr]
            treated = [row for row in in_set if row.model == model and row.mfr]
            if len(baselines) > 1:
                problems.report(f"several baselines for {model}: {', '.join(b.name for b in baselines)}", baselines)
            if not baselines:
                if treated:
                    notes.append(f"{model} on {treated[0].dataset}: no baseline run given, deltas left out")
                continue
            base = baselines[0]
            for row in treated:
                _check_same(
                    f"training split of {base.name} vs {row.name}",
                    lambda r: r.summary["protocol"]["dataset"]["train_split"],
                    base.runs + row.runs,
                    [row],
                    problems,
                )
                _check_same(
                    f"recipe of {base.name} vs {row.name} (besides the MFR block)",
                    lambda r: {k: v for k, v in _recipe(r.config).items() if k != "mfr"},
                    base.runs + row.runs,
                    [row],
                    problems,
                )
                names = sorted(set.intersection(*(set(r.per_image) for r in base.runs + row.runs)))
                for m in metrics:
                    def per_image(rows_runs):
                        return np.array([np.mean([r.per_image[n][m] for r in rows_runs]) for n in names])

                    diff = per_image(row.runs) - per_image(base.runs)
                    low, high = paired_bootstrap(diff, resamples, seed) if len(names) > 1 else (float("nan"),) * 2
                    row.deltas[m] = (row.stats[m][0] - base.stats[m][0], low, high)
    order = {key: i for i, key in enumerate(sorted({r.dataset_key for r in records}))}
    rows.sort(key=lambda row: (order[row.runs[0].dataset_key], row.model, row.mfr, row.name))
    return rows, notes


# ------------------------------------------------------------------------------------- rendering


def _fmt(value: float, metric: str) -> str:
    digits = 2 if metric == "psnr" else 4
    return "–" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _cells(row: Row, metrics: list[str], pm: str = "±") -> list[str]:
    cells = []
    for m in metrics:
        mean, std = row.stats[m]
        cells.append(_fmt(mean, m) + ("" if math.isnan(std) else f" {pm} {_fmt(std, m)}"))
    for m in metrics:
        if m in row.deltas:
            delta, low, high = row.deltas[m]
            cells.append(f"{delta:+.{2 if m == 'psnr' else 4}f} [{_fmt(low, m)}, {_fmt(high, m)}]")
        else:
            cells.append("")
    return cells


def _header(metrics: list[str]) -> list[str]:
    names = {"psnr": "PSNR", "ssim": "SSIM", "lpips": "LPIPS↓"}
    return (
        ["Test set", "Model", "Variant", "Seeds"]
        + [names[m] for m in metrics]
        + [f"Δ{names[m]} [95% CI]" for m in metrics]
        + ["Selected on", "Iters", "Flags"]
    )


def _row_values(row: Row, metrics: list[str], flags: dict[str, int], pm: str = "±") -> list[str]:
    variant = "+MFR" if row.mfr else "baseline"
    marks = "".join(f"[{flags[f]}]" for f in row.flags)
    iters = sorted({r.iteration for r in row.runs})
    return (
        [row.dataset, row.model, f"{variant} ({row.name})", ",".join(map(str, row.seeds))]
        + _cells(row, metrics, pm)
        + [row.runs[0].summary["protocol"]["selection"]["on"], "/".join(map(str, iters)), marks]
    )


def _flag_numbers(rows: list[Row]) -> dict[str, int]:
    numbers: dict[str, int] = {}
    for row in rows:
        for f in row.flags:
            numbers.setdefault(f, len(numbers) + 1)
    return numbers


def metrics_of(rows: list[Row]) -> list[str]:
    return [m for m in METRICS if rows and m in rows[0].stats]


def footer(rows: list[Row], resamples: int, seed: int) -> list[str]:
    protocol = rows[0].runs[0].summary["protocol"]
    lines = [
        f"PSNR: {protocol.get('psnr', '?')}; SSIM: {protocol.get('ssim', '?')}; GT-mean: "
        f"{'on' if protocol.get('gt_mean') else 'off'}. Mean ± sample std over seeds of per-run means.",
        f"Δ = +MFR − baseline; [95% CI] = paired bootstrap over test images (per-image metric averaged over "
        f"seeds), {resamples} resamples, seed {seed}.",
        "Selected on: the split that chose each run's checkpoint (val = carved from training data by scene).",
    ]
    for text, number in _flag_numbers(rows).items():
        lines.append(f"[{number}] {text}")
    return lines


def to_markdown(rows: list[Row], resamples: int, seed: int) -> str:
    metrics = metrics_of(rows)
    flags = _flag_numbers(rows)
    header = _header(metrics)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_row_values(row, metrics, flags)) + " |" for row in rows]
    return "\n".join(lines) + "\n\n" + "\n".join(footer(rows, resamples, seed)) + "\n"


def to_csv(rows: list[Row]) -> str:
    metrics = metrics_of(rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    head = ["test_set", "model", "variant", "config", "seeds", "n_seeds"]
    for m in metrics:
        head += [f"{m}_mean", f"{m}_std"]
    for m in metrics:
        head += [f"delta_{m}", f"delta_{m}_ci_low", f"delta_{m}_ci_high"]
    head += ["selected_on", "iterations", "flags", "runs"]
    writer.writerow(head)
    for row in rows:
        values = [
            row.dataset,
            row.model,
            "mfr" if row.mfr else "baseline",
            row.name,
            " ".join(map(str, row.seeds)),
            len(row.runs),
        ]
        for m in metrics:
            values += [f"{row.stats[m][0]:.6f}", "" if math.isnan(row.stats[m][1]) else f"{row.stats[m][1]:.6f}"]
        for m in metrics:
            values += [f"{v:.6f}" for v in row.deltas[m]] if m in row.deltas else ["", "", ""]
        values += [
            row.runs[0].summary["protocol"]["selection"]["on"],
            " ".join(str(r.iteration) for r in row.runs),
            " | ".join(row.flags),
            " ".join(str(r.path) for r in row.runs),
        ]
        writer.writerow(values)
    return buffer.getvalue()


def _tex(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"), ("$", r"\$")):
        text = text.replace(a, b)
    return text.replace("±", r"$\pm$").replace("Δ", r"$\Delta$").replace("↓", r"$\downarrow$").replace("–", "--")


def to_latex(rows: list[Row], resamples: int, seed: int) -> str:
    metrics = metrics_of(rows)
    flags = _flag_numbers(rows)
    header = _header(metrics)[:-1]  # flags become footnote marks on the variant
    lines = [
        "% generated by lumicap compare (needs \\usepackage{booktabs})",
        "\\begin{tabular}{" + "l" * 4 + "c" * (len(header) - 4) + "}",
        "\\toprule",
        " & ".join(_tex(h) for h in header) + " \\\\",
        "\\midrule",
    ]
    for row in rows:
        values = _row_values(row, metrics, flags)
        marks = values.pop()
        values = [_tex(v) for v in values]
        if marks:
            values[2] += "$^{" + ",".join(str(flags[f]) for f in row.flags) + "}$"
        lines.append(" & ".join(values) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    lines += ["% " + line for line in footer(rows, resamples, seed)]
    return "\n".join(lines) + "\n"
