"""Training data pipeline throughput alone: batches per second of a recipe stage's ``BatchStream``.

The trainer's loader (cached decoded pairs, random crops, flips/rotations, optional exposure augmentation,
``DataLoader`` workers, pinned memory on CUDA machines) is timed without any model: if it delivers fewer
batches per second than the GPU consumes steps, the GPU waits. Each row: ``--batches`` batches after the
workers have started and delivered ``--warmup`` batches.

    python benchmarks/bench_loader.py --data-root ../shared/data/lol-v1 --split train80 --workers 0,2,4,8
    python benchmarks/bench_loader.py --config configs/retinexformer/retinexformer-lol-v1-baseline.yaml --data-root D
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import Column  # noqa: E402

BENCHMARK = "loader"
DEFAULT_CONFIG = _common.REPO_ROOT / "configs" / "default" / "lumicap-default.yaml"
COLUMNS = [
    Column("stage", "stage"),
    Column("batch", "batch"),
    Column("patch", "patch"),
    Column("workers", "workers"),
    Column("batches_per_s", "batches/s", "{:.0f}"),
    Column("ms_per_batch", "ms/batch", "{:.2f}"),
    Column("error", "error"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="recipe whose stages are timed (default: the default model's)")
    parser.add_argument("--data-root", required=True, help="dataset folder (data.root)")
    parser.add_argument("--split", default=None, help="training split (default: the config's)")
    parser.add_argument("--workers", default="0,2,4", help="comma list of data.num_workers values")
    parser.add_argument("--batches", type=int, default=200, help="timed batches per row (default 200)")
    _common.add_common_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from lumicap.config import load_config
    from lumicap.engine.data import BatchStream, training_pairs

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config, [f"data.root={args.data_root}"] + ([f"data.train_split={args.split}"] if args.split else []))
    pairs = training_pairs(cfg)
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    env = _common.environment(torch.device("cpu"))
    print(_common.describe_environment(env), flush=True)
    warmup = args.warmup if args.warmup is not None else 5
    rows: list[dict[str, Any]] = []
    record = _common.row_recorder(rows, args.rows_out)
    for stage in cfg.stages:
        for count in workers:
            row = {"stage": stage.name, "batch": stage.batch_size, "patch": stage.patch_size or "whole",
                   "workers": count, "batches_per_s": None, "ms_per_batch": None, "error": None}
            try:
                data_cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"num_workers": count})})
                stream = BatchStream(data_cfg, stage, pairs, rank=0, world=1, seed=0,
                                     context=cfg.data.whole_image_context)
                for _ in range(warmup):
                    stream.next()
                start = time.perf_counter()
                for _ in range(args.batches):
                    stream.next()
                seconds = time.perf_counter() - start
                row.update(batches_per_s=args.batches / seconds, ms_per_batch=1000 * seconds / args.batches)
                del stream
            except Exception as exc:
                row["error"] = _common.one_line(exc)
            record(row)
            shown = f"{row['batches_per_s']:.0f} batches/s" if row["batches_per_s"] else row["error"]
            print(f"  {stage.name:14} x{stage.batch_size} {row['patch']} workers={count}: {shown}", flush=True)
    settings = {"config": args.config, "data_root": args.data_root, "pairs": len(pairs), "workers": workers,
                "batches": args.batches, "warmup": warmup}
    return rows, {"env": env, "settings": settings}


def main(argv: list[str] | None = None):
    args = build_parser().parse_args(argv)
    rows, meta = _common.run_or_exit(run, args)
    s = meta["settings"]
    notes = [f"{s['batches']} batches after {s['warmup']} (workers started); {s['pairs']} training pairs, cached; "
             "no model: the rate the trainer's data side can sustain"]
    return _common.report(BENCHMARK, args, meta["env"], s, COLUMNS, rows, notes)


if __name__ == "__main__":
    main()
