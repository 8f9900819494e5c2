"""Training-step time and peak memory of every model, baseline and +MFR, at its recipe's batch and patch size.

One step is what ``lumicap train`` does per iteration (``Trainer._step``): the stage's training forward
(``TrainingForward``) under the chosen autocast, the stage's pixel/perceptual/model loss terms
(``StageLoss``), for +MFR the ``MultimodalFeatureLoss`` on the output (teacher in fp32, as the trainer
runs it), backward, optimizer step (the recipe's Adam settings; fused kernels where torch has them, as the trainer's default),
``zero_grad(set_to_none=True)``. The switches mirror the trainer's speed options (``train.channels_last``,
``train.compile``, ``train.fused_optimizer``, ``train.tf32``).
Not included: data loading and augmentation (the batch is a fixed random pair already on the device),
the learning-rate schedule, EMA, logging and validation. The stage timed is the first one MFR applies to
(RetinexNet: ``relight``); whole-image stages (``patch_size: None``) use LOL's 600x400.

Perceptual terms (RCTNet's VGG16, UHDFour's VGG19) run with random weights saved in torchvision's layout;
the teacher is a random full-size ClipCap (ViT-B/32 + 10x768 MLP + GPT-2 124M) unless ``--teacher`` says
``tiny`` (CPU tests) or names a teacher folder/preset. Figures: median of ``--repeats`` timed steps after
``--warmup`` steps, CUDA-synchronised (see ``_common``).

    python benchmarks/bench_train_step.py --device cuda                          # every model, fp32, trainer defaults
    python benchmarks/bench_train_step.py --device cuda --models retinexformer --amp none,bf16 --channels-last --tf32 on
    python benchmarks/bench_train_step.py --small --models iat,retinexformer,retinexnet --teacher tiny   # CPU
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

BENCHMARK = "train_step"
SMALL = {"batch": 1, "patch": 64}  # --small: fits a shared 2-core CPU in seconds per model
WHOLE_IMAGE = (400, 600)  # LOL-v1 images, for recipe stages that train on whole images
AMP_DTYPES = {"none": None, "bf16": torch.bfloat16}
SWITCH = {"auto": None, "on": True, "off": False}  # the trainer's null / true / false
COLUMNS = [
    Column("model", "model"),
    Column("stage", "stage"),
    Column("batch", "batch"),
    Column("patch", "patch"),
    Column("amp", "amp"),
    Column("options", "options"),
    Column("mfr", "MFR"),
    Column("ms", "ms/iter", "{:.1f}"),
    Column("peak_mib", "peak MiB", "{:.0f}"),
    Column("mfr_ratio", "x baseline", "{:.2f}"),
    Column("error", "error"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="all", help="comma list of registered models (default: all)")
    parser.add_argument("--batch", type=int, default=None, help="override the recipe's batch size")
    parser.add_argument("--patch", type=int, default=None, help="override the recipe's square patch size")
    parser.add_argument("--small", action="store_true", help=f"CPU preset: batch {SMALL['batch']}, patch {SMALL['patch']}")
    parser.add_argument("--mfr", default="both", choices=["both", "off", "only"], help="baseline, +MFR or both (default)")
    parser.add_argument("--teacher", default="full", help="full (random full-size ClipCap), tiny, or a teacher folder/preset")
    parser.add_argument("--amp", default="none", help="comma list of none, bf16 (autocast of model and pixel losses)")
    parser.add_argument("--channels-last", action="store_true", help="model weights and inputs in channels-last layout")
    parser.add_argument("--compile", action="store_true", help="torch.compile the training forward")
    parser.add_argument("--compile-mode", default="default",
                        choices=["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"],
                        help="torch.compile mode for --compile and --mfr-compile (train.compile_mode)")
    parser.add_argument("--fused-optimizer", default="auto", choices=list(SWITCH),
                        help="fused Adam/AdamW kernels; auto: where torch has them (CUDA, the CPU from torch 2.4), as train.fused_optimizer's default")
    parser.add_argument("--mfr-amp", default="none", choices=list(AMP_DTYPES),
                        help="autocast dtype of the MFR teacher's passes (default none: fp32, as the trainer runs it)")
    parser.add_argument("--mfr-compile", action="store_true", help="torch.compile the MFR loss module (teacher passes)")
    parser.add_argument("--tf32", default="default", choices=["default", "on", "off"],
                        help="CUDA TF32 matmuls and convolutions; default: PyTorch's (as train.tf32: null). "
                        "cudnn.benchmark is always on, as in training")
    _common.add_common_arguments(parser)
    return parser


def stage_to_time(info):
    """The recipe stage the benchmark times: the first one MFR applies to (else the first)."""
    return next((stage for stage in info.recipe.stages if stage.mfr), info.recipe.stages[0])


def step_shape(stage, args) -> tuple[int, int, int]:
    batch = args.batch or (SMALL["batch"] if args.small else stage.batch_size)
    patch = args.patch or (SMALL["patch"] if args.small else stage.patch_size)
    height, width = (patch, patch) if patch else WHOLE_IMAGE
    return batch, height, width


def random_vgg_weights(folder: Path, arch: str) -> Path:
    """A random VGG saved with torchvision's key names (the real weights are not on benchmark machines)."""
    from lumicap.losses.vgg import VGGFeatures

    path = folder / f"{arch}-random.pth"
    if not path.exists():
        with torch.random.fork_rng():
            torch.manual_seed(0)
            torch.save(VGGFeatures(arch).state_dict(), path)
    return path


def build_mfr(teacher: str, scratch: Path, device: torch.device):
    from lumicap.teacher import MultimodalFeatureLoss

    if teacher == "full":
        from lumicap.teacher import build_random_teacher

        loss = MultimodalFeatureLoss(build_random_teacher("mlp", full_size=True))
    elif teacher == "tiny":
        from lumicap.teacher import save_tiny_teacher

        loss = MultimodalFeatureLoss.from_pretrained(save_tiny_teacher(scratch / "teacher"))
    else:
        loss = MultimodalFeatureLoss.from_pretrained(teacher, download=False)
    return loss.to(device).eval()


def make_optimizer(params, spec: dict[str, Any], device: torch.device, fused: bool | None):
    from lumicap.engine.train import fused_optimizer_kwargs

    kwargs = {"lr": spec.get("lr", 2e-4), "weight_decay": spec.get("weight_decay", 0.0)}
    extra = fused_optimizer_kwargs(fused, device)
    name = spec.get("name", "adam")
    if name in ("adam", "adamw"):
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        return cls(params, betas=tuple(spec.get("betas", (0.9, 0.999))), eps=spec.get("eps", 1e-8), **kwargs, **extra)
    return torch.optim.SGD(params, momentum=spec.get("momentum") or 0.0, **kwargs)


def build_step(name: str, stage, shape, device, amp: str, args, mfr, scratch: Path):
    """Model, losses, optimizer and a fixed batch; returns the step function (one training iteration)."""
    from lumicap.engine.train import TrainingForward
    from lumicap.losses import PERCEPTUAL_LOSSES, StageLoss
    from lumicap.models import build_model

    torch.manual_seed(0)
    model = build_model(name).to(device).train()
    # As the trainer: a model-defined stage may train part of the model (RetinexNet relight: Enhance-Net).
    if stage.objective != "enhance" and hasattr(model, "stage_parameters"):
        trainable = {id(p) for p in model.stage_parameters(stage.objective)}
        for p in model.parameters():
            p.requires_grad_(id(p) in trainable)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    params = [p for p in model.parameters() if p.requires_grad]
    vgg = [term for term in stage.losses if term in PERCEPTUAL_LOSSES]
    weights = str(random_vgg_weights(scratch, vgg[0])) if vgg else None  # a recipe has at most one VGG term
    losses = StageLoss(stage.losses, allow_model_terms=stage.objective != "enhance", perceptual_weights=weights).to(device)
    optimizer = make_optimizer(params, stage.optimizer, device, SWITCH[args.fused_optimizer])
    forward = TrainingForward(model)
    if args.compile:
        from lumicap.engine.train import compile_kwargs

        forward = torch.compile(forward, **compile_kwargs(args.compile_mode))
    batch, height, width = shape
    g = torch.Generator().manual_seed(1)
    high = torch.rand(batch, 3, height, width, generator=g)
    low = (high * 0.15 + 0.02 * torch.rand(high.shape, generator=g)).clamp(0, 1)
    low = low.to(device).contiguous(memory_format=memory_format)
    high = high.to(device).contiguous(memory_format=memory_format)
    dtype = AMP_DTYPES[amp]

    mfr_dtype = AMP_DTYPES[args.mfr_amp]

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            outputs, model_terms = forward(low, high, stage.name, stage.objective)
            total, _ = losses(outputs, high, model_terms)
        if mfr is not None:
            with torch.autocast(device.type, dtype=mfr_dtype, enabled=mfr_dtype is not None):
                total = total + mfr(outputs["output"].float(), high.float())
        total.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def mfr_precision_error(mfr, device: torch.device, dtype: torch.dtype) -> dict[str, float]:
    """Relative error of the MFR loss and of its gradient w.r.t. the output under autocast, against fp32
    (batch 4 of 128x128 random pairs; the figure that decides whether a low-precision teacher is acceptable)."""
    g = torch.Generator().manual_seed(3)
    target = torch.rand(4, 3, 128, 128, generator=g).to(device)
    output = (target + 0.1 * torch.randn(target.shape, generator=g).to(device)).clamp(0, 1)

    def loss_and_grad(autocast: bool):
        x = output.clone().requires_grad_(True)
        with torch.autocast(device.type, dtype=dtype, enabled=autocast):
            loss = mfr(x, target)
        (grad,) = torch.autograd.grad(loss, x)
        return loss.detach().float(), grad.float()

    loss32, grad32 = loss_and_grad(False)
    loss16, grad16 = loss_and_grad(True)
    return {
        "loss_rel": float((loss16 - loss32).abs() / loss32.abs().clamp_min(1e-12)),
        "grad_rel": float((grad16 - grad32).norm() / grad32.norm().clamp_min(1e-12)),
        "grad_cosine": float(torch.nn.functional.cosine_similarity(grad16.flatten(), grad32.flatten(), dim=0)),
    }


def options_label(args, device: torch.device) -> str:
    """The speed options in effect, besides the defaults (eager, contiguous, Adam fused where torch has it)."""
    from lumicap.engine.train import fused_optimizer_kwargs

    setting = SWITCH[args.fused_optimizer]
    fused = bool(fused_optimizer_kwargs(setting, device))
    away_from_default = setting is not None and fused != bool(fused_optimizer_kwargs(None, device))
    compiled = "compile" if args.compile_mode == "default" else f"compile-{args.compile_mode}"
    names = [flag for flag, on in (("channels-last", args.channels_last), (compiled, args.compile),
                                   (f"mfr-{args.mfr_amp}", args.mfr_amp != "none"), ("mfr-compile", args.mfr_compile)) if on]
    if away_from_default:
        names.append("fused-adam" if fused else "reference-adam")
    if args.tf32 != "default":
        names.append(f"tf32-{args.tf32}")
    return ",".join(names) or "eager"


def run(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from lumicap.models import list_models, model_info

    if args.threads:
        torch.set_num_threads(args.threads)
    device = _common.resolve_device(args.device)
    repeats, warmup = _common.repeats_and_warmup(args, device)
    names = _common.parse_list(args.models, [info.name for info in list_models()], "model")
    amps = _common.parse_list(args.amp, list(AMP_DTYPES), "--amp value")
    if device.type == "cuda":
        if args.tf32 != "default":
            torch.backends.cuda.matmul.allow_tf32 = args.tf32 == "on"
            torch.backends.cudnn.allow_tf32 = args.tf32 == "on"
        torch.backends.cudnn.benchmark = True  # fixed shapes, as in training: cuDNN picks its fastest kernels
    variants = {"both": [False, True], "off": [False], "only": [True]}[args.mfr]
    env = _common.environment(device)
    print(_common.describe_environment(env), flush=True)
    rows: list[dict[str, Any]] = []
    record = _common.row_recorder(rows, args.rows_out)
    with tempfile.TemporaryDirectory(prefix="lumicap-bench-") as scratch_dir:
        scratch = Path(scratch_dir)
        mfr = build_mfr(args.teacher, scratch, device) if True in variants else None
        mfr_error = None
        if mfr is not None and args.mfr_amp != "none":
            mfr_error = mfr_precision_error(mfr, device, AMP_DTYPES[args.mfr_amp])
            print(f"  MFR under {args.mfr_amp} autocast vs fp32: {mfr_error}", flush=True)
        if mfr is not None and args.mfr_compile:
            from lumicap.engine.train import compile_kwargs

            mfr = torch.compile(mfr, **compile_kwargs(args.compile_mode))
        for name in names:
            stage = stage_to_time(model_info(name))
            shape = step_shape(stage, args)
            for amp in amps:
                baseline_ms = None
                for with_mfr in variants:
                    row = {
                        "model": name, "stage": stage.name, "batch": shape[0], "patch": f"{shape[1]}x{shape[2]}",
                        "amp": amp, "options": options_label(args, device),
                        "mfr": args.teacher if with_mfr and stage.mfr else "no",
                        "ms": None, "ms_min": None, "samples_ms": None, "peak_mib": None, "mfr_ratio": None, "error": None,
                    }
                    if with_mfr and mfr_error is not None:
                        row["mfr_precision_error"] = mfr_error
                    if with_mfr and not stage.mfr:
                        row["error"] = "recipe applies no MFR"
                        record(row)
                        continue
                    try:
                        # Where a row's wall time goes (set-up, warm-up incl. autotuning/compilation, timed
                        # steps): what a time-capped campaign needs to plan its parts.
                        t0 = time.perf_counter()
                        step = build_step(name, stage, shape, device, amp, args, mfr if with_mfr else None, scratch)
                        t1 = time.perf_counter()
                        for _ in range(warmup):
                            step()
                        _common.synchronize(device)
                        t2 = time.perf_counter()
                        with _common.PeakMemory(device) as peak:
                            timing = _common.time_function(step, device, repeats, warmup=0)
                        row.update(ms=timing.median_ms, ms_min=timing.min_ms, samples_ms=list(timing.samples_ms),
                                   peak_mib=peak.mib, memory=peak.kind,
                                   wall_s={"setup": t1 - t0, "warmup": t2 - t1, "timed": time.perf_counter() - t2})
                    except Exception as exc:  # one model failing (OOM, a compile error) must not end the run
                        row["error"] = "out of memory" if _common.is_out_of_memory(exc) else f"{type(exc).__name__}: {exc}".splitlines()[0][:120]
                    finally:
                        step = None
                        _common.release_memory(device)
                    if not with_mfr:
                        baseline_ms = row["ms"]
                    elif baseline_ms and row["ms"]:
                        row["mfr_ratio"] = row["ms"] / baseline_ms
                    record(row)
                    status = f"{row['ms']:.1f} ms, peak {row['peak_mib']:.0f} MiB" if row["ms"] else row["error"]
                    print(f"  {name:14} {stage.name:12} amp={amp:4} mfr={row['mfr']:5} {row['patch']:>8} x{shape[0]}: {status}", flush=True)
    settings = {
        "models": names, "amp": amps, "mfr": args.mfr, "teacher": args.teacher, "batch": args.batch, "patch": args.patch,
        "small": args.small, "channels_last": args.channels_last, "compile": args.compile, "fused_optimizer": args.fused_optimizer,
        "tf32": args.tf32, "mfr_amp": args.mfr_amp, "mfr_compile": args.mfr_compile, "compile_mode": args.compile_mode,
        "repeats": repeats, "warmup": warmup, "device": str(device),
    }
    return rows, {"env": env, "settings": settings}


def main(argv: list[str] | None = None):
    args = build_parser().parse_args(argv)
    rows, meta = _common.run_or_exit(run, args)
    notes = [
        "one step = training forward + stage losses (+ MFR) + backward + optimizer step; data loading excluded",
        f"median of {meta['settings']['repeats']} timed steps after {meta['settings']['warmup']} warm-up steps",
        f"peak memory: {rows[0].get('memory', 'see JSON') if rows else '-'}",
    ]
    return _common.report(BENCHMARK, args, meta["env"], meta["settings"], COLUMNS, rows, notes)


if __name__ == "__main__":
    main()
