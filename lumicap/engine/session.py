"""One ``lumicap train`` invocation: which runs to start or resume, and each run's life cycle.

``train_invocation(Invocation(...))`` is what the command calls (tests call it in-process too):

1. new runs: validate the config and check everything the runs need (``lumicap.engine.preflight``), then
   create ``<output_dir>/<name>/<timestamp>/seed<S>/`` per seed, write ``config.yaml`` and ``run.json``;
   resumed runs: read them back, check them the same way and check the checkpoint matches;
2. per run: ``Trainer.fit`` within the budget, then (rank 0) the test split with the selected weights.

Under torchrun every rank executes this; rank 0 creates folders and broadcasts their paths.
"""

from __future__ import annotations

import hashlib
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

from lumicap.config import Config, load_config, resolved_yaml, to_dict
from lumicap.engine import distributed as dist_utils
from lumicap.engine.rundir import (
    CONFIG_FILE,
    hold_run_lock,
    is_run_dir,
    new_group_dir,
    new_run_dir,
    read_run_info,
    runs_under,
    update_run_info,
)
from lumicap.errors import LumicapError


@dataclass
class Invocation:
    config: Path | None = None
    overrides: list[str] = field(default_factory=list)
    resume: Path | None = None
    seeds: list[int] | None = None
    max_iters: int | None = None
    max_minutes: float | None = None
    output_dir: str | None = None
    show_progress: bool = True
    command: str = ""


@dataclass
class RunResult:
    run_dir: Path
    status: str  # complete | stopped | skipped
    iteration: int
    results_dir: Path | None = None


@dataclass
class PlannedRun:
    run_dir: Path
    cfg: Config
    is_new: bool
    splits: object = None  # lumicap.engine.data.Splits from the pre-flight check (resolved once per invocation)


def _with_seed(cfg: Config, seed: int) -> Config:
    return cfg.model_copy(update={"train": cfg.train.model_copy(update={"seed": seed})})


def _plan(inv: Invocation, info: dist_utils.DistInfo) -> list[PlannedRun]:
    """Every run this invocation handles, each checked (``lumicap.engine.preflight``) before any folder
    is made: a bad value, missing data or an unusable output folder costs one line per problem."""
    from lumicap.engine.preflight import check_run

    if inv.resume is None:
        cfg = load_config(inv.config, inv.overrides)
        if inv.output_dir:
            cfg = cfg.model_copy(update={"output_dir": inv.output_dir})
        splits = _checked(inv.config, check_run, cfg, world_size=info.world_size)
        seeds = inv.seeds or [cfg.train.seed]
        group = None
        if info.is_main:
            group = new_group_dir(cfg.output_dir, cfg.name)
        group = Path(dist_utils.broadcast_object(str(group) if group else None, info))
        return [PlannedRun(group / f"seed{s}", _with_seed(cfg, s), True, splits) for s in seeds]

    target = inv.resume
    runs = runs_under(target)
    if not runs:
        raise LumicapError(f"{target}: no run folders (with {CONFIG_FILE} and run.json) found to resume")
    plan = [PlannedRun(run, load_config(run / CONFIG_FILE), False) for run in runs]
    if inv.seeds:
        if is_run_dir(target):
            raise LumicapError(f"--seeds with --resume needs the group folder ({target.parent}), not one run")
        existing = {item.cfg.train.seed for item in plan}
        plan = [item for item in plan if item.cfg.train.seed in inv.seeds]
        template = plan[0].cfg if plan else load_config(runs[0] / CONFIG_FILE)
        plan += [PlannedRun(target / f"seed{s}", _with_seed(template, s), True) for s in inv.seeds if s not in existing]
    checked: dict[tuple, object] = {}
    for item in plan:  # runs of one group share their data settings: resolve the splits once
        if not item.is_new and _finished(item.run_dir):
            continue  # skipped by run_one; its data may be gone by now
        record = to_dict(item.cfg)
        record["train"].pop("seed")
        key = (repr(record), item.is_new)
        if key not in checked:
            checked[key] = _checked(
                item.run_dir / CONFIG_FILE, check_run, item.cfg, world_size=info.world_size, new_run=item.is_new,
                output_dir=False,
            )
        item.splits = checked[key]
    return plan


def _checked(source: Path, check, *args, **kwargs):
    """``check(*args, **kwargs)`` with each problem line naming the config file it is about."""
    from lumicap.errors import ConfigError

    try:
        return check(*args, **kwargs)
    except ConfigError as exc:
        raise ConfigError(*(f"{source}: {line}" for line in exc.problems)) from None


def _finished(run_dir: Path) -> bool:
    info = read_run_info(run_dir)
    return info.get("status") == "complete" and bool(info.get("results"))


def dataset_protocol(cfg: Config, splits) -> dict:
    """What makes two runs' test numbers comparable: the data, the split, the selection rule."""
    from lumicap.data import detect_layout

    layout = detect_layout(cfg.data.root) if cfg.data.layout == "auto" else cfg.data.layout
    names = sorted(p.name for p in splits.test)
    return {
        "dataset": {
            "root": str(Path(cfg.data.root).resolve()),
            "layout": layout,
            "train_split": cfg.data.train_split,
            "test_split": cfg.data.test_split,
            "test_pairs": len(names),
            "test_names_sha1": hashlib.sha1("\n".join(names).encode()).hexdigest(),
        },
        "selection": {
            "on": cfg.train.select_on,
            "metric": cfg.train.select_metric,
            "val": splits.val_source,
        },
    }


def _versions() -> dict:
    import torch

    from lumicap import __version__

    return {"lumicap": __version__, "torch": torch.__version__, "python": platform.python_version()}


def run_one(
    run_dir: Path, cfg: Config, is_new: bool, inv: Invocation, info: dist_utils.DistInfo, splits=None
) -> RunResult:
    if is_new and info.is_main:
        new_run_dir(run_dir.parent, cfg.train.seed)
    with hold_run_lock(run_dir, enabled=info.is_main):
        return _run_locked(run_dir, cfg, is_new, inv, info, splits)


def _run_locked(
    run_dir: Path, cfg: Config, is_new: bool, inv: Invocation, info: dist_utils.DistInfo, splits=None
) -> RunResult:
    from lumicap.engine import checkpoint as ckpt
    from lumicap.engine.train import Budget, Trainer

    if is_new:
        if info.is_main:
            (run_dir / CONFIG_FILE).write_text(resolved_yaml(cfg), encoding="utf-8")
            update_run_info(
                run_dir,
                name=cfg.name,
                seed=cfg.train.seed,
                model=cfg.model.name,
                mfr=cfg.mfr.enabled,
                config_source=str(inv.config) if inv.config else None,
                overrides=list(inv.overrides),
                command=inv.command,
                created=time.strftime("%Y-%m-%dT%H:%M:%S"),
                status="created",
                iteration=0,
                total_iterations=cfg.total_iterations,
                versions=_versions(),
            )
        dist_utils.barrier(info)
    else:
        run_info = read_run_info(run_dir)
        recorded_iteration = int(run_info.get("iteration") or 0)
        if run_info.get("status") == "complete" and run_info.get("results"):
            return RunResult(run_dir, "skipped", int(run_info.get("iteration", 0)), run_dir / run_info["results"])

    trainer = None
    try:
        # Inside the try: a failure the pre-flight check could not foresee still marks the run failed.
        trainer = Trainer(cfg, run_dir, info, show_progress=inv.show_progress, splits=splits)
        last = run_dir / "checkpoints" / "last.pt"
        if not is_new and last.is_file():
            state = ckpt.load_checkpoint(last, map_location=trainer.device)
            if _normalized(state["config"], last) != to_dict(cfg):
                raise LumicapError(f"{run_dir / CONFIG_FILE} no longer matches the config stored in {last}")
            try:
                trainer.restore(state)
            except (RuntimeError, KeyError, TypeError, ValueError) as exc:
                # A hand-edited or foreign last.pt: say which file and key, not a load_state_dict traceback.
                raise LumicapError(f"{last}: does not fit this run ({' '.join(str(exc).split())[:300]})") from None
        elif not is_new and recorded_iteration > 0:
            # Starting again from iteration 0 would silently replace best.pt and the results of the lost run.
            raise LumicapError(
                f"{last} is missing but {run_dir / 'run.json'} records iteration {recorded_iteration}; "
                "put the checkpoint back, or start a new run"
            )
        protocol = dataset_protocol(cfg, trainer.splits)
        if info.is_main:
            update_run_info(
                run_dir,
                status="running",
                world_size=info.world_size,
                device=str(trainer.device),
                protocol=protocol,
                dropped_loss_terms=trainer.dropped_terms(),
            )
        budget = Budget(
            max_iters=inv.max_iters,
            max_minutes=inv.max_minutes if inv.max_minutes is not None else cfg.train.max_minutes,
        )
        status = trainer.fit(budget)
        results = None
        if info.is_main and not (run_dir / "checkpoints" / "best.pt").is_file():
            # Stopped before its first scheduled validation: no weights are selected yet (none are
            # validated off the schedule, see Trainer.fit), so there is nothing to test.
            trainer.log.message(
                f"{run_dir}: {status} at iteration {trainer.iteration}/{cfg.total_iterations}, before its first "
                f"validation (every {cfg.train.val_every} iterations): no selected weights to test yet"
            )
        elif info.is_main:
            results = trainer.test(protocol)
            update_run_info(run_dir, status=status, results=str(results.relative_to(run_dir)))
            summary = _read_summary(results)
            trainer.log.message(
                f"{run_dir}: {status} at iteration {trainer.iteration}/{cfg.total_iterations}; test "
                f"PSNR {float(summary['psnr']):.3f} SSIM {float(summary['ssim']):.4f} "
                f"(selected on {cfg.train.select_on} "
                f"@ iter {summary['selected']['iteration']}) -> {results}"
            )
        if info.is_main and status != "complete":
            trainer.log.message(f"continue with: lumicap train --resume {run_dir}")
        dist_utils.barrier(info)
        return RunResult(run_dir, status, trainer.iteration, results)
    except BaseException as exc:
        if info.is_main:
            update_run_info(run_dir, status=f"failed: {type(exc).__name__}: {str(exc)[:200]}")
        raise
    finally:
        if trainer is not None:
            trainer.close()


def _normalized(stored: dict, source: Path) -> dict:
    """A checkpoint's config through today's schema: keys added to lumicap since it was written take
    their defaults, so upgrading lumicap does not make interrupted runs impossible to resume."""
    from lumicap.config import from_dict

    try:
        return to_dict(from_dict(stored))
    except LumicapError as exc:
        lines = str(exc).splitlines() or [""]
        more = f"; and {len(lines) - 1} more" if len(lines) > 1 else ""
        raise LumicapError(
            f"{source}: its stored config is not valid for this lumicap version ({lines[0]}{more})"
        ) from None


def _read_summary(results: Path) -> dict:
    from lumicap.jsonfile import read_json

    return read_json(results / "summary.json", what="test summary")


def train_invocation(inv: Invocation) -> list[RunResult]:
    # The device preference lives in the config; read it before the process group starts.
    if inv.resume is None:
        preference = load_config(inv.config, inv.overrides).train.device
    else:
        first = runs_under(inv.resume)
        preference = load_config(first[0] / CONFIG_FILE).train.device if first else "auto"
    info = dist_utils.setup(preference)
    try:
        return [run_one(p.run_dir, p.cfg, p.is_new, inv, info, p.splits) for p in _plan(inv, info)]
    finally:
        dist_utils.cleanup(info)
