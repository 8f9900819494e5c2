"""Learning-rate schedules as pure functions of the iteration (so a resumed run sets the same rate).

The schedules the recipes use:

- ``constant``: ``lr = base``.
- ``multistep``: ``lr = base * gamma ** (number of milestones <= t)``.
- ``cosine``: optional linear warm-up ``base * (t + 1) / warmup_iters``, then cosine from ``base`` to
  ``eta_min`` over ``t_max`` iterations (default: the rest of the stage), held at ``eta_min`` after.
- ``cosine_restart_cyclic``: BasicSR's ``CosineAnnealingRestartCyclicLR`` (Restormer, Retinexformer).
  Cycle ``i`` covers iterations ``(C[i-1], C[i]]`` of the cumulative periods ``C``; inside it
  ``lr = eta_mins[i] + restart_weights[i] * (base - eta_mins[i]) * (1 + cos(pi * (t - C[i-1]) / periods[i])) / 2``.
  Note ``eta_mins[i]`` may exceed ``base`` (Retinexformer's first cycle rises from 2e-4 to 3e-4).

``t`` counts the optimizer steps already taken in the stage: the first step uses ``f(0)``.
"""

from __future__ import annotations

import bisect
import math

from torch.optim import Optimizer

from lumicap.config import SchedulerConfig


def lr_at(cfg: SchedulerConfig, base_lr: float, t: int, total: int) -> float:
    """Learning rate for step ``t`` (0-based) of a stage of ``total`` steps."""
    if cfg.name == "constant":
        return base_lr
    if cfg.name == "multistep":
        return base_lr * cfg.gamma ** bisect.bisect_right(cfg.milestones, t)
    if cfg.name == "cosine":
        warmup = cfg.warmup_iters or 0
        eta_min = cfg.eta_min or 0.0
        if t < warmup:
            return base_lr * (t + 1) / warmup
        span = cfg.t_max or max(1, total - warmup)
        progress = min(1.0, (t - warmup) / span)
        return eta_min + 0.5 * (base_lr - eta_min) * (1 + math.cos(math.pi * progress))
    if cfg.name == "cosine_restart_cyclic":
        cumulative = [sum(cfg.periods[: i + 1]) for i in range(len(cfg.periods))]
        idx = min(bisect.bisect_left(cumulative, t), len(cumulative) - 1)  # first cycle with t <= C[idx]
        start = 0 if idx == 0 else cumulative[idx - 1]
        eta_min = cfg.eta_mins[idx]
        progress = min(1.0, (t - start) / cfg.periods[idx])
        return eta_min + cfg.restart_weights[idx] * 0.5 * (base_lr - eta_min) * (1 + math.cos(math.pi * progress))
    raise ValueError(f"unknown scheduler {cfg.name!r}")  # config validation rejects this earlier


class StageScheduler:
    """Sets each parameter group's rate from ``lr_at``; its only state is the step counter."""

    def __init__(self, optimizer: Optimizer, cfg: SchedulerConfig, total_iterations: int):
        self.optimizer = optimizer
        self.cfg = cfg
        self.total = total_iterations
        self.base_lrs = [group.get("initial_lr", group["lr"]) for group in optimizer.param_groups]
        for group, base in zip(optimizer.param_groups, self.base_lrs):
            group["initial_lr"] = base
        self.step_count = 0
        self._apply()

    def _apply(self) -> None:
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = lr_at(self.cfg, base, self.step_count, self.total)

    def step(self) -> None:
        self.step_count += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {"step_count": self.step_count, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict) -> None:
        self.step_count = int(state["step_count"])
        self.base_lrs = [float(v) for v in state["base_lrs"]]
        self._apply()
