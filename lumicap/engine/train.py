"""The training loop: one run (one config, one seed) in one run folder, resumable to the bit.

    trainer = Trainer(cfg, run_dir, dist_info)         # builds model, teacher, data, logs
    trainer.restore(load_checkpoint(...))              # optional: continue an interrupted run
    status = trainer.fit(budget)                       # "complete" or "stopped"

One step: a batch (optionally mixed up), the model's outputs through the stage's loss terms, plus the
MFR loss on the enhanced image when the config enables it for the stage, backward (with a gradient
scaler under fp16), optional gradient clipping, the optimizer and schedule step, and the EMA update.
Every ``val_every`` iterations rank 0 validates and keeps the best weights; every ``ckpt_every`` it
writes ``last.pt`` (after that iteration's validation). At the end the selected weights are measured on
the test split. Stopping (``--max-iters``, ``--max-minutes``, Ctrl-C, SIGTERM) checkpoints and nothing
else: no validation off the schedule, so where a run stops never changes which weights it selects.

Exactness of a resume rests on: schedules that are functions of the iteration, data order that is a
function of (seed, epoch, position), mixup draws seeded by (seed, iteration, rank), and the global
RNG states (python, numpy, torch, cuda) of every rank stored in the checkpoint.
"""

from __future__ import annotations

import hashlib
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lumicap.config import Config, to_dict
from lumicap.engine import checkpoint as ckpt
from lumicap.engine import distributed as dist_utils
from lumicap.engine.data import BatchStream, Splits, eval_loader, resolve_splits
from lumicap.engine.ema import ModelEMA
from lumicap.engine.rundir import update_run_info
from lumicap.engine.runlog import NullLogger, RunLogger
from lumicap.engine.schedulers import StageScheduler
from lumicap.errors import LumicapError
from lumicap.losses import StageLoss


@dataclass
class Budget:
    """Limits of this invocation (not part of the experiment's record)."""

    max_iters: int | None = None  # stop when the run's iteration counter reaches this
    max_minutes: float | None = None  # stop after this much wall-clock time in this invocation


def derived_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from integers (seeds for data order and mixup draws)."""
    state = np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(2, np.uint32)
    return (int(state[0]) << 31 | int(state[1])) & (2**63 - 1)


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed & 0xFFFFFFFF)
    torch.manual_seed(seed)


def state_hash(module_or_state: nn.Module | dict) -> str:
    """sha256 of every tensor in a module's state dict (replica checks, resume tests)."""
    state = module_or_state.state_dict() if isinstance(module_or_state, nn.Module) else module_or_state
    digest = hashlib.sha256()
    for key, value in sorted(state.items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class TrainingForward(nn.Module):
    """What DDP wraps: the model's training forward for a stage objective, so gradients synchronise.

    ``enhance``: ``({"output": model(low), ...auxiliary outputs}, {})``. Other objectives (RetinexNet's
    decomposition): the model's own ``stage_losses`` terms, plus its ``"output"`` image when it gives one.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, low: torch.Tensor, high: torch.Tensor, stage: str, objective: str, context=None):
        if objective == "enhance":
            if context is not None:  # crops with the whole image for the global branch (data.whole_image_context)
                outputs = dict(self.model.training_outputs(low, context=context))
            elif hasattr(self.model, "training_outputs"):
                outputs = dict(self.model.training_outputs(low))
            else:
                outputs = {"output": self.model(low)}
            return outputs, {}
        terms = dict(self.model.stage_losses(objective, low, high))
        outputs = {"output": terms.pop("output")} if "output" in terms else {}
        return outputs, terms


def _stop_signal_handler() -> tuple[threading.Event, callable]:
    """First Ctrl-C/SIGTERM: finish the step, checkpoint, stop. A second Ctrl-C interrupts at once."""
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        return requested, lambda: None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, frame):
        if requested.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        requested.set()

    for sig in previous:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return requested, restore


def load_init_weights(model: nn.Module, weights: str, name: str) -> str | None:
    """Fine-tuning start: copy a state dict, a checkpoint's ``model``, an official checkpoint of the model
    (detected by content) or a catalogue name's weights into ``model``, every key required. Returns a
    one-line note when official tensors were left out."""
    from lumicap.inference.loading import load_weights_into

    conversion = load_weights_into(model, name, weights)
    return conversion.note() if conversion is not None else None


def compile_kwargs(mode: str) -> dict:
    """``torch.compile`` arguments for ``train.compile_mode`` ("default" passes none: any backend accepts that)."""
    return {} if mode == "default" else {"mode": mode}


def fused_optimizer_kwargs(setting: bool | None, device: torch.device) -> dict:
    """``train.fused_optimizer``: Adam/AdamW update every parameter in one kernel instead of a few per
    tensor. ``None``: wherever torch has the fused kernel for the device (CUDA; the CPU from torch 2.4).

    On the CPU the fused update is the same arithmetic (within 3e-8 of the reference loop on every baseline's
    parameters) and takes 2.5-6.6x less time: on 2 threads 23 instead of 150 ms per step for SNR-Aware's 39M
    parameters, 21 instead of 55 ms for MIRNet's 32M (``benchmarks/README.md``)."""
    use = _fused_available(device) if setting is None else setting
    return {"fused": True} if use else {}


def _fused_available(device: torch.device) -> bool:
    if device.type == "cuda":
        return True
    if device.type == "cpu":
        major, minor = (int(part) for part in torch.__version__.split(".")[:2])
        return (major, minor) >= (2, 4)
    return False


class _Eta:
    """Time left, from the steps of this invocation after a short warm-up (the first steps pay for
    allocator growth, cuDNN autotuning, data workers starting). Validation time is not included."""

    WARMUP = 3  # steps not timed
    FIRST_REPORT = 10  # timed steps before the first estimate is printed

    def __init__(self, start: int, limit: int):
        self.limit, self.started_at, self.reported = limit, start + self.WARMUP, False
        self.t0: float | None = None

    def after_step(self, iteration: int) -> str | None:
        """The one-line estimate once, right after the first timed steps; else None."""
        if iteration == self.started_at:
            self.t0 = time.monotonic()
        if self.reported or self.t0 is None or iteration < self.started_at + self.FIRST_REPORT:
            return None
        self.reported = True
        per_step = (time.monotonic() - self.t0) / (iteration - self.started_at)
        return f"speed: {per_step:.3g} s per iteration after {iteration} iterations; {self.left(iteration)}"

    def left(self, iteration: int) -> str | None:
        if self.t0 is None or iteration <= self.started_at:
            return None
        per_step = (time.monotonic() - self.t0) / (iteration - self.started_at)
        remaining = max(0, self.limit - iteration) * per_step
        return f"about {_duration(remaining)} left to iteration {self.limit:,} (training steps only)"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def frozen_parameters(model: nn.Module, prefixes: list[str], stage: str) -> set[int]:
    """ids of the parameters a stage keeps fixed (``stages[].freeze``: name prefixes, each matching some)."""
    names = dict(model.named_parameters())
    frozen: set[int] = set()
    for prefix in prefixes:
        matched = [p for name, p in names.items() if name == prefix or name.startswith(prefix.rstrip(".") + ".")]
        if not matched:
            roots = sorted({name.split(".")[0] for name in names})
            raise LumicapError(
                f"stage '{stage}': freeze '{prefix}' names no parameter of the model (its parts: {', '.join(roots)})"
            )
        frozen.update(id(p) for p in matched)
    return frozen


def _check_context_support(model: nn.Module, cfg: Config) -> None:
    """``data.whole_image_context`` needs a model that takes the whole image beside the crop, and no mixup
    (a mixed crop has no single whole image)."""
    import inspect

    method = getattr(model, "training_outputs", None)
    if method is None or "context" not in inspect.signature(method).parameters:
        raise LumicapError(
            f"data.whole_image_context: model '{cfg.model.name}' has no global branch that takes the whole image "
            "(IAT has); set data.whole_image_context=false"
        )
    mixed = [stage.name for stage in cfg.stages if stage.mixup]
    if mixed:
        raise LumicapError(f"data.whole_image_context cannot be combined with mixup (stages {', '.join(mixed)})")


class Trainer:
    """One training run of one seed: model, losses (pixel terms + MFR), optimizer, schedule, EMA, validation,
    checkpoints and the final test; ``lumicap.engine.session`` makes run folders and drives it.

    Args:
        cfg: the validated experiment config.
        run_dir: the run folder (config.yaml, run.json, checkpoints/, results/, log.jsonl).
        info: this process's place in a distributed run (rank, world size, device).
        show_progress: a progress bar on the main process.
        splits: the data splits, when the caller resolved them already (pre-flight checks do).
    """

    def __init__(
        self,
        cfg: Config,
        run_dir: Path,
        info: dist_utils.DistInfo,
        show_progress: bool = True,
        splits: Splits | None = None,
    ):
        from lumicap.models import build_model

        self.cfg, self.run_dir, self.info = cfg, Path(run_dir), info
        self.device = info.device
        self.show_progress = show_progress
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed patch sizes: let cuDNN pick its fastest kernels
            if cfg.train.tf32 is not None:
                torch.backends.cuda.matmul.allow_tf32 = cfg.train.tf32
                torch.backends.cudnn.allow_tf32 = cfg.train.tf32
        seed_everything(cfg.train.seed)
        self.model = build_model(cfg.model.name, **cfg.model.overrides)
        if cfg.data.whole_image_context:
            _check_context_support(self.model, cfg)
        for stage in cfg.stages:  # a freeze prefix that names nothing is refused before the first step
            frozen_parameters(self.model, stage.freeze, stage.name)
        if cfg.model.init_weights:
            note = load_init_weights(self.model, cfg.model.init_weights, cfg.model.name)
            if note and info.is_main:
                print(f"model.init_weights: {note}", file=sys.stderr)
        self.model = self.model.to(self.device)
        if cfg.train.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if info.rank:
            seed_everything(derived_seed(cfg.train.seed, info.rank))  # own dropout draws per replica
        self.ema = ModelEMA(self.model, cfg.train.ema_decay) if cfg.train.ema_decay else None
        self.splits: Splits = splits if splits is not None else resolve_splits(cfg)  # pre-flight resolved them
        self.val_loader = eval_loader(self.splits.val, cache=cfg.data.cache) if info.is_main else None
        self.mfr = self._build_mfr()
        self.losses = {
            stage.name: StageLoss(
                stage.losses,
                allow_model_terms=stage.objective != "enhance",
                perceptual_weights=cfg.train.perceptual_weights,
                allow_missing_perceptual=cfg.train.allow_missing_perceptual,
            ).to(self.device)
            for stage in cfg.stages
        }
        self.autocast_dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[cfg.train.amp]
        self.iteration = 0
        self.stage_index = -1
        self.best = {"metric": cfg.train.select_metric, "value": None, "iteration": None}
        self._resume_state: dict | None = None
        self.log = NullLogger()

    # ----------------------------------------------------------------------------------- set-up
    def _build_mfr(self) -> nn.Module | None:
        m = self.cfg.mfr
        if not m.enabled or not any(stage.mfr for stage in self.cfg.stages):
            return None
        from lumicap.teacher import MultimodalFeatureLoss

        loss = MultimodalFeatureLoss.from_pretrained(
            m.teacher,
            weights=tuple(m.weights),
            distance=m.distance,
            gpt_layers=m.gpt_layers,
            preprocess=m.preprocess,
            normalize=m.normalize,
            caption_conditioned=m.caption_conditioned,
            kl_weight=m.kl_weight,
        )
        # Every rank holds its own frozen copy; it has no trainable parameters, so DDP never sees it.
        loss = loss.to(self.device).eval()
        self.mfr_dtype = {"none": None, "bf16": torch.bfloat16}[m.amp]
        self.mfr_forward = torch.compile(loss, **compile_kwargs(self.cfg.train.compile_mode)) if m.compile else loss
        return loss

    def dropped_terms(self) -> dict[str, str]:
        return {f"{stage}.{name}": why for stage, loss in self.losses.items() for name, why in loss.dropped.items()}

    def stage_for(self, iteration: int) -> int:
        end = 0
        for index, stage in enumerate(self.cfg.stages):
            end += stage.iterations
            if iteration < end:
                return index
        return len(self.cfg.stages) - 1

    def stage_start(self, index: int) -> int:
        return sum(stage.iterations for stage in self.cfg.stages[:index])

    def _enter_stage(self, index: int) -> None:
        """Optimizer, schedule, scaler, DDP wrapper and data stream of a stage (fresh, or from the checkpoint)."""
        cfg, stage = self.cfg, self.cfg.stages[index]
        self.stage_index, self.stage = index, stage
        # Model-defined stages may train part of the model (RetinexNet: Decom-Net, then Enhance-Net).
        restricted = stage.objective != "enhance" and hasattr(self.model, "stage_parameters")
        trainable = {id(p) for p in self.model.stage_parameters(stage.objective)} if restricted else None
        frozen = frozen_parameters(self.model, stage.freeze, stage.name)
        for p in self.model.parameters():
            p.requires_grad_((trainable is None or id(p) in trainable) and id(p) not in frozen)
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise LumicapError(f"stage '{stage.name}': the model has no parameters to train in this stage")
        self.params = params
        o = stage.optimizer
        fused = fused_optimizer_kwargs(cfg.train.fused_optimizer, self.device)
        if o.name == "adam":
            self.optimizer = torch.optim.Adam(
                params, lr=o.lr, betas=o.betas, eps=o.eps, weight_decay=o.weight_decay, **fused
            )
        elif o.name == "adamw":
            self.optimizer = torch.optim.AdamW(
                params, lr=o.lr, betas=o.betas, eps=o.eps, weight_decay=o.weight_decay, **fused
            )
        else:
            self.optimizer = torch.optim.SGD(params, lr=o.lr, momentum=o.momentum or 0.0, weight_decay=o.weight_decay)
        self.scheduler = StageScheduler(self.optimizer, stage.scheduler, stage.iterations)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.train.amp == "fp16")
        forward = TrainingForward(self.model)
        if self.info.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.forward = DDP(
                forward,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                # Multi-objective models (stage-specific parameters/losses) may leave some unused.
                find_unused_parameters=hasattr(self.model, "stage_losses"),
            )
        else:
            self.forward = forward
        if cfg.train.compile:
            # Compiled around DDP (the supported order); the model itself stays uncompiled, so its
            # state-dict keys carry no "_orig_mod." prefix.
            self.forward = torch.compile(self.forward, **compile_kwargs(cfg.train.compile_mode))
        data_seed = derived_seed(cfg.train.seed, index)
        self.stream = BatchStream(
            cfg, stage, self.splits.train, self.info.rank, self.info.world_size, data_seed,
            context=cfg.data.whole_image_context,
        )
        state = self._resume_state
        if state is not None and state["stage"] == index:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            if state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
            self.stream.seek(state["data"]["epoch"], state["data"]["position"])
        self._resume_state = None

    def restore(self, state: dict) -> None:
        """Load a ``last.pt`` checkpoint; the stage's optimizer state is applied when the loop enters it."""
        self.model.load_state_dict(state["model"])
        if self.ema is not None:
            if not state.get("ema"):
                raise LumicapError("checkpoint has no EMA state but the config enables train.ema_decay")
            self.ema.load_state_dict(state["ema"])
        self.iteration = int(state["iteration"])
        self.best = dict(state["best"])
        rng = state["rng_per_rank"]
        if len(rng) != self.info.world_size:
            raise LumicapError(
                f"checkpoint was written by {len(rng)} processes, this run has {self.info.world_size}; "
                "resume with the same number of processes"
            )
        ckpt.set_rng_state(rng[self.info.rank])
        self._resume_state = state

    # ------------------------------------------------------------------------------------ step
    def _mixup(self, low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from lumicap.data import mixup_pairs

        # Retinexformer (BasicSR Mixing_Augment with use_identity) mixes half of the batches.
        gen = torch.Generator().manual_seed(derived_seed(self.cfg.train.seed, self.iteration, self.info.rank, 7))
        if float(torch.rand(1, generator=gen)) < 0.5:
            return low, high
        return mixup_pairs(low, high, gen, alpha=self.cfg.data.mixup_alpha)

    def _step(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        stage = self.stage
        low = batch["low"].to(self.device, non_blocking=True)
        high = batch["high"].to(self.device, non_blocking=True)
        if self.cfg.train.channels_last:
            low = low.contiguous(memory_format=torch.channels_last)
            high = high.contiguous(memory_format=torch.channels_last)
        if stage.mixup:
            low, high = self._mixup(low, high)
        context = batch.get("context")
        if context is not None:
            context = context.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            outputs, model_terms = self.forward(low, high, stage.name, stage.objective, context)
            total, terms = self.losses[stage.name](outputs, high, model_terms)
        if self.mfr is not None and stage.mfr:
            if "output" not in outputs:
                raise LumicapError(
                    f"stage '{stage.name}': MFR needs an enhanced image but the model's stage gives none"
                )
            # The teacher runs in fp32 unless mfr.amp says bf16; its reference features carry no gradient.
            # Its terms (mfr, mfr_clip, mfr_prefix, mfr_gpt[, mfr_kl]) are read when logging: one sync.
            with torch.autocast(self.device.type, dtype=self.mfr_dtype, enabled=self.mfr_dtype is not None):
                total = total + self.mfr_forward(outputs["output"].float(), high.float())
        self.scaler.scale(total).backward()
        if self.cfg.train.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.params, self.cfg.train.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        return total.detach(), {k: v.detach() for k, v in terms.items()}

    # ------------------------------------------------------------------------------ evaluation
    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model

    @torch.no_grad()
    def predict(self, model: nn.Module, low: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            return model(low.to(self.device)).float().clamp(0, 1)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean metrics on the validation pairs; keeps ``best.pt`` when the selection metric improves."""
        from lumicap.engine.evaluate import measure

        model = self.eval_model()
        was_training = model.training
        model.eval()
        rows = []
        for i, batch in enumerate(self.val_loader):
            pred = self.predict(model, batch["low"])
            high = batch["high"].to(self.device)
            rows.append(
                measure(pred, high, gt_mean=self.cfg.eval.gt_mean, psnr_convention=self.cfg.eval.psnr_convention)
            )
            if i < self.cfg.eval.val_images:
                panel = torch.cat([batch["low"][0].to(self.device), pred[0], high[0]], dim=-1)
                self.log.images(f"val/{batch['name'][0]}", self.iteration, panel)
        model.train(was_training)
        means = {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}
        self.log.scalars("val", self.iteration, means)
        value = means[self.cfg.train.select_metric]
        if self.best["value"] is None or value > self.best["value"]:
            self.best = {"metric": self.cfg.train.select_metric, "value": value, "iteration": self.iteration}
            self._save_best(model)
        return means

    @torch.no_grad()
    def test(self, protocol_extra: dict) -> Path:
        """Measure the selected weights (``best.pt``) on the test split; writes per-image CSV + summary JSON."""
        from lumicap.engine.evaluate import measure, summarize, write_results
        from lumicap.models import build_model

        best = ckpt.load_checkpoint(self.run_dir / "checkpoints" / "best.pt", map_location=self.device)
        model = build_model(self.cfg.model.name, **self.cfg.model.overrides).to(self.device)
        model.load_state_dict(best["model"])
        model.eval()
        lpips, lpips_status = None, "not requested"
        if self.cfg.eval.lpips:
            from lumicap.metrics import try_load_lpips

            lpips, reason = try_load_lpips(download=False)
            lpips_status = "alexnet v0.1" if lpips is not None else f"unavailable: {reason}"
            if lpips is not None:
                lpips = lpips.to(self.device)
        rows = []
        for batch, pair in zip(eval_loader(self.splits.test), self.splits.test):
            pred = self.predict(model, batch["low"])
            metrics = measure(
                pred,
                batch["high"].to(self.device),
                lpips=lpips,
                gt_mean=self.cfg.eval.gt_mean,
                psnr_convention=self.cfg.eval.psnr_convention,
            )
            rows.append({"name": pair.name, **metrics, "pred": "", "gt": str(pair.high)})
        summary = summarize(rows, self.cfg.eval.psnr_convention, self.cfg.eval.gt_mean, lpips_status)
        summary["protocol"].update(protocol_extra)
        summary["selected"] = {
            "on": self.cfg.train.select_on,
            "metric": best["best"]["metric"],
            "iteration": best["best"]["iteration"],
            "value": best["best"]["value"],
            "weights": "ema" if self.ema is not None else "model",
        }
        summary["iteration"] = self.iteration
        # Named after the iteration of the weights measured (the selected ones), not the iteration training
        # stopped at; summary.json records both.
        selected = int(best["best"]["iteration"] if best["best"]["iteration"] is not None else best["iteration"])
        out = self.run_dir / "results" / f"test-iter{selected:07d}"
        suffix = 1
        while out.exists():  # a re-test of the same weights gets its own folder, nothing is replaced
            suffix += 1
            out = self.run_dir / "results" / f"test-iter{selected:07d}-{suffix}"
        write_results(out, rows, summary)
        self.log.scalars("test", self.iteration, {k: v for k, v in summary.items() if isinstance(v, float)})
        return out

    def _save_best(self, model: nn.Module) -> None:
        ckpt.atomic_save(
            {
                "format": ckpt.FORMAT,
                "kind": "best",
                "iteration": self.iteration,
                "best": dict(self.best),
                "selected_on": self.cfg.train.select_on,
                "model": model.state_dict(),
                "ema": None,  # ``model`` already holds the selected (EMA, when enabled) weights
                "config": to_dict(self.cfg),
            },
            self.run_dir / "checkpoints" / "best.pt",
        )

    # ----------------------------------------------------------------------------- checkpoints
    def save_last(self) -> None:
        rng = dist_utils.all_gather_object(ckpt.rng_state(), self.info)
        if not self.info.is_main:
            return
        ckpt.atomic_save(
            {
                "format": ckpt.FORMAT,
                "kind": "last",
                "iteration": self.iteration,
                "stage": self.stage_index,
                "data": self.stream.state(),
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
                "ema": self.ema.state_dict() if self.ema is not None else None,
                "rng_per_rank": rng,
                "best": dict(self.best),
                "config": to_dict(self.cfg),
                "world_size": self.info.world_size,
            },
            self.run_dir / "checkpoints" / "last.pt",
        )
        update_run_info(self.run_dir, iteration=self.iteration, best=dict(self.best))

    # ------------------------------------------------------------------------------------ loop
    def fit(self, budget: Budget = Budget()) -> str:
        """Train until the run's end or the budget; returns ``"complete"`` or ``"stopped"``."""
        cfg, info = self.cfg, self.info
        total = cfg.total_iterations
        limit = min(total, budget.max_iters) if budget.max_iters else total
        if info.is_main:
            self.log = RunLogger(self.run_dir, self.iteration, total, self.show_progress)
            self.log.event(
                self.iteration, event="start" if self.iteration == 0 else "resume", world_size=info.world_size
            )
            for line in self.banner(limit):
                self.log.message(line)
            for name, why in self.dropped_terms().items():
                self.log.message(f"warning: loss term {name} dropped (allow_missing_perceptual): {why}")
        stop_requested, restore_signals = _stop_signal_handler()
        started = time.monotonic()
        step_time, steps = 0.0, 0
        clock = _Eta(self.iteration, limit)
        last_ckpt = None
        self.model.train()
        try:
            while self.iteration < limit:
                index = self.stage_for(self.iteration)
                if index != self.stage_index:
                    self._enter_stage(index)
                    if info.is_main and self.iteration == self.stage_start(index):
                        self.log.event(self.iteration, event="stage", stage=self.stage.name)
                t0 = time.perf_counter()
                batch = self.stream.next()
                loss, terms = self._step(batch)
                self.iteration += 1
                steps += 1
                if info.is_main and (line := clock.after_step(self.iteration)) is not None:
                    self.log.message(line)
                log_now = self.iteration % cfg.train.log_every == 0 or self.iteration == limit
                if log_now:
                    values = {"loss": float(loss), **{k: float(v) for k, v in terms.items()}}
                    if self.mfr is not None and self.stage.mfr:
                        values.update(self.mfr.last_terms)
                    if not all(math.isfinite(v) for v in values.values()):
                        raise LumicapError(f"non-finite loss at iteration {self.iteration}: {values}")
                    step_time += time.perf_counter() - t0
                    self.log.scalars(
                        "train",
                        self.iteration,
                        {**values, "lr": self.scheduler.get_last_lr()[0], "stage": float(self.stage_index)},
                    )
                    shown = {k: values[k] for k in ("loss", "mfr") if k in values}
                    self.log.progress(self.iteration, {**shown, "lr": self.scheduler.get_last_lr()[0]})
                else:
                    step_time += time.perf_counter() - t0
                    self.log.progress(self.iteration, {})
                # Validation first: a last.pt written at this iteration records the best it selected.
                if self.iteration % cfg.train.val_every == 0 or self.iteration == total:
                    self._validate_all_ranks(clock.left(self.iteration))
                if self.iteration % cfg.train.ckpt_every == 0 or self.iteration == total:
                    self.save_last()
                    last_ckpt = self.iteration
                # Under DDP the ranks agree on stopping through a collective, which syncs the device:
                # only at logging steps, which every rank reaches at the same iteration.
                if not info.enabled or log_now:
                    over_time = budget.max_minutes is not None and time.monotonic() - started > budget.max_minutes * 60
                    if dist_utils.any_rank(stop_requested.is_set() or over_time, info):
                        break
            if self.stage_index < 0:  # nothing left to train (resumed a finished run)
                self._enter_stage(self.stage_for(max(0, self.iteration - 1)))
            # A stop (budget, signal) validates nothing extra: only scheduled validations select weights, so
            # a stopped-and-resumed run selects exactly what an uninterrupted one does. A due validation has
            # already run above, before its last.pt: a resume never repeats it against an older best.
            if last_ckpt != self.iteration:
                self.save_last()
        finally:
            restore_signals()
        status = "complete" if self.iteration >= total else "stopped"
        if info.is_main:
            ms = 1000 * step_time / steps if steps else None
            self.log.event(self.iteration, event=status, ms_per_iter=ms, minutes=(time.monotonic() - started) / 60)
            update_run_info(self.run_dir, status=status, iteration=self.iteration, best=dict(self.best), ms_per_iter=ms)
        if info.enabled:
            self._write_replica_hash()
        return status

    def _validate_all_ranks(self, left: str | None = None) -> None:
        if self.info.is_main:
            with ckpt.preserved_rng():  # validating or not must not change the training trajectory
                means = self.validate()
            self.log.message(
                f"iter {self.iteration}: val psnr {means['psnr']:.3f} ssim {means['ssim']:.4f} "
                f"(best {self.best['metric']} {self.best['value']:.4f} @ {self.best['iteration']})"
                + (f"; {left}" if left else "")
            )
        dist_utils.barrier(self.info)

    def banner(self, limit: int) -> list[str]:
        """What this run is, before its first step (also without a progress bar): folder, model, data,
        stages, MFR, device. ``limit``: the iteration this invocation stops at."""
        cfg, splits = self.cfg, self.splits
        total = cfg.total_iterations
        params = sum(p.numel() for p in self.model.parameters())
        where = "new run" if self.iteration == 0 else f"resumed at iteration {self.iteration:,}"
        lines = [f"run: {self.run_dir} ({where})"]
        init = f", starting from {cfg.model.init_weights}" if cfg.model.init_weights else ""
        lines.append(f"model: {cfg.model.name} ({params:,} parameters){init}")
        val_source = str(splits.val_source).removeprefix(f"{len(splits.val)} pairs ")
        lines.append(
            f"data: {cfg.data.root}: train {len(splits.train)} pairs ({cfg.data.train_split}), validation "
            f"{len(splits.val)} pairs ({val_source}), test {len(splits.test)} pairs ({cfg.data.test_split})"
        )
        parts = []
        for stage in cfg.stages:
            patch = f"{stage.patch_size}x{stage.patch_size} patches" if stage.patch_size else "whole images"
            parts.append(f"{stage.name} {stage.iterations:,} it (batch {stage.batch_size}, {patch})")
        stop = f"; this invocation stops at {limit:,}" if limit < total else ""
        lines.append(
            f"stages: {', '.join(parts)}; {total:,} iterations, validation every {cfg.train.val_every:,}{stop}"
        )
        if self.mfr is None:
            why = "mfr.enabled is false" if not cfg.mfr.enabled else "no stage has mfr: true"
            lines.append(f"mfr: off ({why})")
        else:
            on = [stage.name for stage in cfg.stages if stage.mfr]
            lines.append(f"mfr: on, teacher {cfg.mfr.teacher}, in stage{'s' if len(on) > 1 else ''} {', '.join(on)}")
        device = str(self.device)
        if self.device.type == "cuda":
            device += f" ({torch.cuda.get_device_name(self.device)})"
        processes = f", {self.info.world_size} processes" if self.info.enabled else ""
        lines.append(f"device: {device}, {torch.get_num_threads()} CPU threads{processes}")
        return lines

    def _write_replica_hash(self) -> None:
        """Each rank records a hash of its parameters; identical hashes prove the replicas stayed in sync.

        Buffers are hashed apart: BatchNorm running statistics are broadcast from rank 0 at the start of
        every forward, so after the last step each rank holds the statistics of its own last batch."""
        import json

        params = dict(self.model.named_parameters())
        digest = state_hash(params)
        buffers = state_hash(dict(self.model.named_buffers()))
        folder = self.run_dir / "replicas"
        folder.mkdir(exist_ok=True)
        record = {
            "rank": self.info.rank,
            "iteration": self.iteration,
            "parameters_sha256": digest,
            "buffers_sha256": buffers,
        }
        (folder / f"rank{self.info.rank}.json").write_text(json.dumps(record) + "\n")
        hashes = dist_utils.all_gather_object(digest, self.info)
        if self.info.is_main and len(set(hashes)) != 1:
            self.log.message(f"warning: replica parameters differ after training: {hashes}")

    def close(self) -> None:
        self.log.close()
