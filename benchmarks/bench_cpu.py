"""CPU table: per model, one training step and one 600x400 inference, in one table with the machine and threads.

The training step is ``bench_train_step``'s (training forward, the recipe stage's losses, backward, the
recipe's Adam step; baseline, no MFR) at a small ``--batch`` x ``--patch`` that a laptop runs in seconds;
inference is ``bench_inference``'s (a decoded image through ``run_whole``/``run_tiled`` by the project's
tiling rule, eval mode, random weights). Each figure is the median of ``--repeats`` timed calls after
``--warmup`` untimed ones; the best call is kept too (on a shared machine it is the better estimate).

    python benchmarks/bench_cpu.py --threads 2                       # every model
    python benchmarks/bench_cpu.py --threads 2 --models iat,rctnet --size 1920x1080

The header line names the CPU, torch's thread count and ``OMP_WAIT_POLICY``; a row records the load
average when it was measured. On a machine shared with other jobs, OpenMP's default busy-waiting makes
multi-threaded figures much slower and erratic; ``OMP_WAIT_POLICY=PASSIVE`` avoids that.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import bench_inference  # noqa: E402
import bench_train_step  # noqa: E402
from _common import Column  # noqa: E402

BENCHMARK = "cpu_models"
COLUMNS = [
    Column("model", "model"),
    Column("params_m", "params (M)", "{:.3f}"),
    Column("train_shape", "train step (batch x patch)"),
    Column("train_ms", "train ms (median)", "{:.0f}"),
    Column("train_best_ms", "train ms (best)", "{:.0f}"),
    Column("infer_mode", "inference"),
    Column("infer_ms", "inference ms (median)", "{:.0f}"),
    Column("infer_best_ms", "inference ms (best)", "{:.0f}"),
    Column("load", "load avg", "{:.1f}"),
    Column("error", "error"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="all", help="comma list of registered models (default: all)")
    parser.add_argument("--batch", type=int, default=1, help="training batch (default: %(default)s)")
    parser.add_argument("--patch", type=int, default=128, help="training patch side (default: %(default)s)")
    parser.add_argument("--size", default="600x400", help="inference image WxH (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per figure (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls first (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--out-dir", default=str(_common.RESULTS_DIR), help="folder of the results files (default: %(default)s)")
    parser.add_argument("--no-save", action="store_true", help="print the table only, write no results file")
    parser.add_argument("--note", action="append", default=[], help="a line about the conditions (repeatable)")
    return parser


def train_figures(name: str, args: argparse.Namespace, scratch: Path) -> tuple[_common.Timing, str]:
    from lumicap.models import model_info

    stage = bench_train_step.stage_to_time(model_info(name))
    step_args = bench_train_step.build_parser().parse_args(
        ["--device", "cpu", "--batch", str(args.batch), "--patch", str(args.patch), "--mfr", "off"]
    )
    shape = bench_train_step.step_shape(stage, step_args)
    step = bench_train_step.build_step(name, stage, shape, torch.device("cpu"), "none", step_args, None, scratch)
    timing = _common.time_function(step, torch.device("cpu"), args.repeats, args.warmup)
    return timing, f"{shape[0]} x {shape[1]}x{shape[2]} ({stage.name})"


def inference_figures(name: str, args: argparse.Namespace) -> tuple[_common.Timing, str]:
    from lumicap.inference import DEFAULT_OVERLAP, TileSettings
    from lumicap.models import build_model

    (height, width), = bench_inference.parse_sizes(args.size)
    device = torch.device("cpu")
    tile = TileSettings(overlap=DEFAULT_OVERLAP).tile_for(height, width, device)
    torch.manual_seed(0)
    model = build_model(name).eval()
    image = torch.rand(3, height, width, generator=torch.Generator().manual_seed(1))
    timing, _ = bench_inference.measure(model, image, tile, DEFAULT_OVERLAP, device, "none", args.repeats, args.warmup)
    return timing, f"{width}x{height} " + bench_inference.mode_label(tile, height, width, DEFAULT_OVERLAP)


def run(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from lumicap.models import build_model, count_parameters, list_models

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.repeats < 1 or args.warmup < 0:
        from lumicap.errors import LumicapError

        raise LumicapError(f"--repeats must be at least 1 and --warmup at least 0, got {args.repeats} and {args.warmup}")
    names = _common.parse_list(args.models, [info.name for info in list_models()], "model")
    env = _common.environment(torch.device("cpu"))
    env["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY")
    print(_common.describe_environment(env), flush=True)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="lumicap-bench-") as scratch_dir:
        for name in names:
            row: dict[str, Any] = {"model": name, "params_m": count_parameters(build_model(name)) / 1e6, "error": None}
            errors = []
            for kind, measure in (("train", lambda: train_figures(name, args, Path(scratch_dir))),
                                  ("infer", lambda: inference_figures(name, args))):
                try:
                    timing, label = measure()
                    row.update({f"{kind}_ms": timing.median_ms, f"{kind}_best_ms": timing.min_ms,
                                f"{kind}_samples_ms": list(timing.samples_ms),
                                ("train_shape" if kind == "train" else "infer_mode"): label})
                except Exception as exc:  # one model failing must not end the table
                    errors.append(f"{kind}: " + ("out of memory" if _common.is_out_of_memory(exc)
                                                 else f"{type(exc).__name__}: {exc}".splitlines()[0][:100]))
                finally:
                    _common.release_memory(torch.device("cpu"))
            row["load"] = os.getloadavg()[0]
            row["error"] = "; ".join(errors) or None
            rows.append(row)
            train = f"{row['train_ms']:.0f} ms" if row.get("train_ms") else "-"
            infer = f"{row['infer_ms']:.0f} ms" if row.get("infer_ms") else "-"
            print(f"  {name:14} train {train:>10}  inference {infer:>10}  {row['error'] or ''}", flush=True)
    settings = {"models": names, "batch": args.batch, "patch": args.patch, "size": args.size,
                "repeats": args.repeats, "warmup": args.warmup, "threads": torch.get_num_threads()}
    return rows, {"env": env, "settings": settings}


def main(argv: list[str] | None = None):
    args = build_parser().parse_args(argv)
    rows, meta = _common.run_or_exit(run, args)
    env = meta["env"]
    notes = [
        f"{env['cpu_threads']} torch threads, OMP_WAIT_POLICY={env['omp_wait_policy'] or 'unset'}",
        "train: training forward + the recipe stage's losses + backward + Adam step, no MFR, fp32",
        "inference: a decoded image through the network (whole, or tiled by the project's rule) and back, fp32",
        f"median and best of {args.repeats} timed calls after {args.warmup} warm-up calls; random weights",
    ]
    return _common.report(BENCHMARK, args, env, meta["settings"], COLUMNS, rows, notes)


if __name__ == "__main__":
    main()
