"""Time to quality: test-split PSNR/SSIM of a recipe after fixed amounts of training time, baseline and +MFR.

A run trains ``CONFIG`` with ``lumicap``'s trainer (``Trainer.fit``, the same step as ``lumicap train``) in
segments: after each wall-clock point (minutes of training, the evaluation itself not counted) the
*current* weights are measured on the test split. Those are not selected weights, so the curve shows
what the recipe learns per minute. ``--variants baseline,mfr`` runs the recipe as written and with the MFR
block enabled; with ``--teacher full`` the teacher is a random full-size ClipCap (ViT-B/32 + MLP + GPT-2
124M) saved in the real file format: it costs what the real teacher costs, so the +MFR row measures what
the regularizer costs in iterations per minute, not what it gains (that needs the real weights).

    python benchmarks/bench_time_to_quality.py configs/default/lumicap-default.yaml \\
        --data-root /data/lol-v1 --train-split train80 --test-split eval15 --points 0.5,1,2 --variants baseline,mfr
    python benchmarks/bench_time_to_quality.py configs/default/lumicap-default.yaml --data-root D --points 0.05 \\
        --teacher tiny --device cpu stages.0.batch_size=1 stages.0.patch_size=32      # a CPU smoke run
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import Column  # noqa: E402

BENCHMARK = "time_to_quality"
COLUMNS = [
    Column("variant", "variant"),
    Column("minutes", "train min", "{:.2f}"),
    Column("iterations", "iterations"),
    Column("it_per_min", "it/min", "{:.0f}"),
    Column("psnr", "test PSNR", "{:.3f}"),
    Column("ssim", "test SSIM", "{:.4f}"),
    Column("error", "error"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="YAML recipe (e.g. configs/default/lumicap-default.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides")
    parser.add_argument("--data-root", required=True, help="dataset folder (data.root)")
    parser.add_argument("--train-split", default=None, help="data.train_split (default: the config's)")
    parser.add_argument("--test-split", default=None, help="data.test_split (default: the config's)")
    parser.add_argument("--points", default="0.5,1,2", help="comma list of training minutes to measure at")
    parser.add_argument("--variants", default="baseline,mfr", help="comma list of baseline, mfr")
    parser.add_argument("--teacher", default="full", help="for mfr: full (random full size), tiny, or a teacher folder/preset")
    parser.add_argument("--amp", default=None, choices=["none", "bf16", "fp16"], help="train.amp (default: the config's)")
    _common.add_common_arguments(parser)
    return parser


def parse_points(text: str) -> list[float]:
    from lumicap.errors import LumicapError

    try:
        points = [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        points = []
    if not points or any(p <= 0 for p in points) or points != sorted(set(points)):
        raise LumicapError(f"--points: expected increasing positive minutes like 0.5,1,2, got '{text}'")
    return points


def teacher_folder(spec: str, scratch: Path) -> str:
    """A teacher the config's ``mfr.teacher`` can name: random weights saved in the real format, or as given."""
    from lumicap.teacher.tiny import save_random_teacher

    if spec in ("full", "tiny"):
        return str(save_random_teacher(scratch / f"teacher-{spec}", variant="mlp", full_size=spec == "full"))
    return spec


@torch.no_grad()
def measure_test(trainer) -> dict[str, float]:
    """Mean test-split metrics of the trainer's current weights (EMA when the recipe keeps one)."""
    from lumicap.engine.data import eval_loader
    from lumicap.engine.evaluate import measure

    model = trainer.eval_model()
    was_training = model.training
    model.eval()
    rows = [
        measure(trainer.predict(model, batch["low"]), batch["high"].to(trainer.device),
                psnr_convention=trainer.cfg.eval.psnr_convention)
        for batch in eval_loader(trainer.splits.test, cache=True)
    ]
    model.train(was_training)
    return {key: sum(row[key] for row in rows) / len(rows) for key in ("psnr", "ssim")}


def run_variant(args, variant: str, points: list[float], device: torch.device, scratch: Path, emit) -> None:
    from lumicap.config import load_config
    from lumicap.engine.distributed import DistInfo
    from lumicap.engine.train import Budget, Trainer

    overrides = [f"data.root={args.data_root}", "train.val_every=1000000000", "train.ckpt_every=1000000000",
                 f"train.device={device.type}", *args.overrides]
    if args.train_split:
        overrides.append(f"data.train_split={args.train_split}")
    if args.test_split:
        overrides.append(f"data.test_split={args.test_split}")
    if args.amp:
        overrides.append(f"train.amp={args.amp}")
    if variant == "mfr":
        overrides += ["mfr.enabled=true", f"mfr.teacher={teacher_folder(args.teacher, scratch)}"]
    cfg = load_config(args.config, overrides)
    run_dir = scratch / f"run-{variant}"
    (run_dir / "checkpoints").mkdir(parents=True)
    trainer = Trainer(cfg, run_dir, DistInfo(device=device), show_progress=False)
    trained = 0.0
    try:
        for point in points:
            start = time.monotonic()
            status = trainer.fit(Budget(max_minutes=point - trained))
            trained = point
            metrics = measure_test(trainer)
            row = {"variant": variant, "minutes": point, "iterations": trainer.iteration,
                   "it_per_min": trainer.iteration / point, "fit_seconds": time.monotonic() - start,
                   "psnr": metrics["psnr"], "ssim": metrics["ssim"], "error": None}
            emit(row)
            if status == "complete":  # the recipe ended before this point
                break
    finally:
        trainer.close()


def run(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = _common.resolve_device(args.device)
    points = parse_points(args.points)
    variants = _common.parse_list(args.variants, ["baseline", "mfr"], "variant")
    env = _common.environment(device)
    print(_common.describe_environment(env), flush=True)
    rows: list[dict[str, Any]] = []

    keep = _common.row_recorder(rows, args.rows_out)

    def record(row: dict[str, Any]) -> None:
        keep(row)
        shown = f"{row['psnr']:.3f} dB / {row['ssim']:.4f}" if row.get("psnr") is not None else row["error"]
        print(f"  {row['variant']:8} {row['minutes']:5.2f} min {row.get('iterations') or 0:7d} it: {shown}", flush=True)

    with tempfile.TemporaryDirectory(prefix="lumicap-ttq-") as scratch_dir:
        for variant in variants:
            try:
                run_variant(args, variant, points, device, Path(scratch_dir), record)
            except Exception as exc:  # one variant failing must not lose the other's rows
                record({"variant": variant, "minutes": 0.0, "error": _common.one_line(exc)})
            finally:
                _common.release_memory(device)
    settings = {"config": args.config, "overrides": args.overrides, "data_root": args.data_root,
                "train_split": args.train_split, "test_split": args.test_split, "points": points,
                "variants": variants, "teacher": args.teacher, "amp": args.amp, "device": str(device)}
    return rows, {"env": env, "settings": settings}


def main(argv: list[str] | None = None):
    args = build_parser().parse_intermixed_args(argv)  # overrides may follow the options
    rows, meta = _common.run_or_exit(run, args)
    notes = [
        "minutes of training only (evaluations not counted); metrics of the current weights, not selected ones",
        "mfr: the recipe plus the MFR block; teacher " + meta["settings"]["teacher"],
    ]
    return _common.report(BENCHMARK, args, meta["env"], meta["settings"], COLUMNS, rows, notes)


if __name__ == "__main__":
    main()
