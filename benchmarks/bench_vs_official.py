"""Side by side: lumicap's network against its official implementation, same weights, one process.

The official code is not part of lumicap (it may not be redistributed here): pass a local copy of the
official model file (``--official path/to/IAT_main.py``; its own imports must resolve, e.g. a ``timm``
stand-in beside it) and the class to build. The official model's state dict is loaded into lumicap's
network (strict: the key names and shapes must agree, as for IAT), the outputs are compared once, then
both are timed in interleaved rounds (official, lumicap, official, lumicap, ...) so that a busy shared
machine slows both alike; each figure is the best of ``--rounds``.

Timed: a training step (forward, L1 loss, backward, Adam step, ``zero_grad``) at ``--batch`` x ``--patch``,
and inference (``torch.inference_mode``, eval) of one ``--size`` image. When the official forward returns a
tuple, its last element is the image (IAT returns ``mul, add, image``) unless ``--official-output`` says
which.

    python benchmarks/bench_vs_official.py --model iat --official /tmp/iat/IAT_main.py --official-class IAT \\
        --official-kwargs '{"type": "lol"}' --threads 2

On a machine shared with other jobs, OpenMP's default busy-waiting makes every multi-threaded figure
wildly slower (threads spin against each other's jobs); ``OMP_WAIT_POLICY=PASSIVE`` in the environment keeps
the comparison about the networks. The run records the policy and the load average before and after.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import Column  # noqa: E402

BENCHMARK = "vs_official"
COLUMNS = [
    Column("model", "model"),
    Column("measure", "measure"),
    Column("official_s", "official (s)", "{:.3f}"),
    Column("lumicap_s", "lumicap (s)", "{:.3f}"),
    Column("ratio", "lumicap / official", "{:.2f}"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="lumicap registry name")
    parser.add_argument("--overrides", default="{}", help="JSON constructor overrides for build_model")
    parser.add_argument("--official", required=True, help="a local copy of the official model's Python file")
    parser.add_argument("--official-class", required=True, help="class in that file to build")
    parser.add_argument("--official-kwargs", default="{}", help="JSON constructor arguments of the official class")
    parser.add_argument("--official-output", type=int, default=None, help="index of the image in a tuple output (default: last)")
    parser.add_argument("--batch", type=int, default=4, help="training batch (default: %(default)s)")
    parser.add_argument("--patch", type=int, default=192, help="training patch side (default: %(default)s)")
    parser.add_argument("--size", default="600x400", help="inference image WxH (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timed rounds; best is reported (default: %(default)s)")
    parser.add_argument("--skip", choices=["train", "inference"], default=None, help="leave one measure out")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--out-dir", default=str(_common.RESULTS_DIR), help="folder of the results files")
    parser.add_argument("--no-save", action="store_true", help="print the table only, write no results file")
    parser.add_argument("--note", action="append", default=[], help="a line about the conditions (repeatable)")
    return parser


def load_official_class(path: str, class_name: str) -> type:
    from lumicap.errors import LumicapError

    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise LumicapError(f"--official {file}: no such file")
    # The official files import their siblings as a package (``from model.blocks import ...``) or flat:
    # make both the file's folder and its parent importable.
    for folder in (file.parent, file.parent.parent):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location(f"official_{file.stem}", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cls = getattr(module, class_name, None)
    if cls is None:
        raise LumicapError(f"--official {file}: no class '{class_name}' in it")
    return cls


def image_of(output: Any, index: int | None) -> torch.Tensor:
    if isinstance(output, (tuple, list)):
        return output[-1 if index is None else index]
    return output


def interleaved_best(fns: dict[str, Callable[[], None]], rounds: int) -> dict[str, list[float]]:
    for fn in fns.values():  # warm-up: first calls allocate and pick kernels
        fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return samples


def run(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from lumicap.errors import LumicapError
    from lumicap.models import build_model

    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    torch.manual_seed(0)
    official = load_official_class(args.official, args.official_class)(**json.loads(args.official_kwargs))
    ours = build_model(args.model, **json.loads(args.overrides))
    try:
        ours.load_state_dict(official.state_dict(), strict=True)
    except RuntimeError as exc:
        detail = next((line.strip() for line in str(exc).splitlines()[1:] if line.strip()), str(exc))
        raise LumicapError(f"the official state dict does not load into '{args.model}': {detail[:200]}") from None
    models = {"official": official, "lumicap": ours}
    out_index = args.official_output

    def forward(name: str, x: torch.Tensor) -> torch.Tensor:
        return image_of(models[name](x), out_index if name == "official" else None)

    gen = torch.Generator().manual_seed(1)
    probe = torch.rand(1, 3, 67, 101, generator=gen)
    for model in models.values():
        model.eval()
    with torch.no_grad():
        max_diff = (forward("official", probe) - forward("lumicap", probe)).abs().max().item()
    print(f"max |official - lumicap| on a 101x67 image, eval: {max_diff:.2e}", flush=True)

    rows: list[dict[str, Any]] = []
    measures: dict[str, dict[str, Callable[[], None]]] = {}
    if args.skip != "train":
        x = torch.rand(args.batch, 3, args.patch, args.patch, generator=gen)
        target = torch.rand(args.batch, 3, args.patch, args.patch, generator=gen)
        optimizers = {name: torch.optim.Adam(m.parameters(), lr=1e-4) for name, m in models.items()}

        def train_step(name: str) -> None:
            models[name].train()
            loss = (forward(name, x) - target).abs().mean()
            loss.backward()
            optimizers[name].step()
            optimizers[name].zero_grad(set_to_none=True)

        measures[f"train step, batch {args.batch}, {args.patch}x{args.patch}"] = {
            name: (lambda name=name: train_step(name)) for name in models
        }
    if args.skip != "inference":
        width, height = (int(v) for v in args.size.lower().split("x"))
        image = torch.rand(1, 3, height, width, generator=gen)

        def infer(name: str) -> None:
            models[name].eval()
            with torch.inference_mode():
                forward(name, image)

        measures[f"inference {width}x{height}"] = {name: (lambda name=name: infer(name)) for name in models}
    for label, fns in measures.items():
        samples = interleaved_best(fns, args.rounds)
        best = {name: min(values) for name, values in samples.items()}
        rows.append({"model": args.model, "measure": label, "official_s": best["official"], "lumicap_s": best["lumicap"],
                     "ratio": best["lumicap"] / best["official"], "samples_s": samples})
        print(f"  {label}: official {best['official']:.3f} s, lumicap {best['lumicap']:.3f} s", flush=True)
    env = _common.environment(torch.device("cpu"))
    env.update(load_before=load_before, load_after=os.getloadavg(), omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"))
    settings = {k: getattr(args, k) for k in ("model", "overrides", "official_class", "official_kwargs", "batch", "patch", "size", "rounds", "threads")}
    settings["official_file"] = Path(args.official).name
    settings["max_abs_diff_eval"] = max_diff
    return rows, {"env": env, "settings": settings}


def main(argv: list[str] | None = None):
    args = build_parser().parse_args(argv)
    rows, meta = _common.run_or_exit(run, args)
    env = meta["env"]
    notes = [
        f"same weights (official state dict loaded into lumicap), max output difference {meta['settings']['max_abs_diff_eval']:.1e}",
        f"interleaved rounds, best of {args.rounds}; {env['cpu_threads']} threads, OMP_WAIT_POLICY={env['omp_wait_policy'] or 'unset'}",
        "load average (1/5/15 min) before {:.1f}/{:.1f}/{:.1f}, after {:.1f}/{:.1f}/{:.1f}".format(*env["load_before"], *env["load_after"]),
    ]
    return _common.report(BENCHMARK, args, env, meta["settings"], COLUMNS, rows, notes)


if __name__ == "__main__":
    main()
