#!/usr/bin/env python
"""Write ``configs/<model>/<model>-<dataset>-{baseline,mfr}.yaml`` from the registered models' recipes.

Each baseline YAML is a complete record of one experiment (model, data, every stage of the original
recipe, training and evaluation settings); each ``-mfr`` YAML is ``base: <baseline>`` plus the MFR
block, so the pair differs in exactly that block. For every model with official LOL-v1 weights,
``<model>-lol-v1-mfr-finetune.yaml`` is the ``-mfr`` config started from those weights with one short
stage (see ``finetune_dict``). Re-run after a recipe changes or a model lands:

    python scripts/make_configs.py            # all registered models
    python scripts/make_configs.py --check    # exit 1 if any committed YAML is stale (CI)

It also writes ``configs/lumicap-config.schema.json`` (``lumicap config schema``), which the first line
of every generated file names for editors (``# yaml-language-server: $schema=...``). The schema text
depends a little on pydantic's version, so ``--check`` compares it only under the version it records.

Recipes are written by the model files as data (``lumicap.models.registry.Stage``); their optimizer
and scheduler dicts use the recipe authors' key names, translated here to the config schema. A key
this script does not know stops it, so nothing in a recipe is silently dropped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lumicap.config import dump_yaml, from_dict, json_schema, load_config, to_dict  # noqa: E402
from lumicap.models.registry import list_models  # noqa: E402

# Where each benchmark is expected (override with data.root=...). Layout names are lumicap.data's.
DATASETS = {
    "lol-v1": {"root": "datasets/LOL-v1", "layout": "lol-v1"},
    "lol-v2-real": {"root": "datasets/LOL-v2/Real_captured", "layout": "lol-v2-real"},
    "lol-v2-synthetic": {"root": "datasets/LOL-v2/Synthetic", "layout": "lol-v2-synthetic"},
}

# Training settings a recipe states outside its stages (see the model file's recipe notes).
TRAIN_EXTRAS = {
    # BasicSR ImageCleanModel with use_grad_clip: clip_grad_norm_(max_norm=0.01) every step.
    "retinexformer": {"grad_clip": 0.01},
}

# The MFR block every +MFR config adds: the COCO ClipCap teacher, all three feature terms.
MFR_BLOCK = {
    "enabled": True,
    "teacher": "clipcap-coco",
    "weights": [1.0, 1.0, 1.0],
    "distance": "l1",
    "gpt_layers": "last",
    "preprocess": "crop",
    "normalize": True,
    "caption_conditioned": False,
    "kl_weight": 0.0,
}

TRAIN_DEFAULTS = {
    "seed": 0,
    "amp": "none",  # the official recipes train in fp32; bf16 is a command-line override away
    "grad_clip": None,
    "ema_decay": None,
    "val_every": 1000,
    "ckpt_every": 1000,
    "log_every": 100,
    "select_on": "val",
    "select_metric": "psnr",
}

_OPTIMIZER_KEYS = {"name", "lr", "betas", "eps", "weight_decay", "momentum"}
_SCHEDULER_KEYS = {
    "constant": {},
    "multistep": {"milestones": "milestones", "gamma": "gamma"},
    "cosine": {"t_max": "t_max", "eta_min": "eta_min", "warmup_iterations": "warmup_iters", "warmup_iters": "warmup_iters"},
    "cosine_restart_cyclic": {"periods": "periods", "restart_weights": "restart_weights", "eta_mins": "eta_mins"},
}


def _optimizer(model: str, raw: dict) -> dict:
    unknown = set(raw) - _OPTIMIZER_KEYS
    if unknown:
        raise SystemExit(f"{model}: recipe optimizer keys not understood: {sorted(unknown)}")
    out = {k: raw[k] for k in ("name", "lr", "betas", "eps", "weight_decay", "momentum") if k in raw}
    out["name"] = str(out.get("name", "adam")).lower()
    if "betas" in out:
        out["betas"] = list(out["betas"])
    return out


def _scheduler(model: str, raw: dict) -> dict:
    name = str(raw.get("name", "constant")).lower()
    if name not in _SCHEDULER_KEYS:
        raise SystemExit(f"{model}: recipe scheduler '{name}' not understood (known: {sorted(_SCHEDULER_KEYS)})")
    mapping = _SCHEDULER_KEYS[name]
    unknown = set(raw) - {"name"} - set(mapping)
    if unknown:
        raise SystemExit(f"{model}: recipe scheduler '{name}' keys not understood: {sorted(unknown)}")
    out = {"name": name}
    for key, value in raw.items():
        if key != "name":
            out[mapping[key]] = list(value) if isinstance(value, (list, tuple)) else value
    return out


def baseline_dict(info, dataset: str) -> dict:
    stages = []
    for stage in info.recipe.stages:
        stages.append(
            {
                "name": stage.name,
                "iterations": stage.iterations,
                "batch_size": stage.batch_size,
                "patch_size": stage.patch_size,
                "losses": dict(stage.losses),
                "optimizer": _optimizer(info.name, dict(stage.optimizer)),
                "scheduler": _scheduler(info.name, dict(stage.scheduler)),
                "mixup": stage.mixup,
                "objective": stage.objective,
                "mfr": stage.mfr,
            }
        )
    return {
        "model": {"name": info.name, "overrides": {}},
        "data": {
            **DATASETS[dataset],
            "train_split": "train",
            "val_split": None,
            "test_split": "test",
            "val_fraction": 0.1,
            "val_seed": 0,
            "cache": True,
            "num_workers": 4,
        },
        "stages": stages,
        "mfr": {"enabled": False},
        "train": {**TRAIN_DEFAULTS, **TRAIN_EXTRAS.get(info.name, {})},
        "eval": {"psnr_convention": "float", "lpips": False, "gt_mean": False, "val_images": 3},
        "output_dir": "runs",
    }


SCHEMA_FILE = "lumicap-config.schema.json"
MODELINE = f"# yaml-language-server: $schema=../{SCHEMA_FILE}\n"  # editors: completion and inline errors


# Fine-tuning the authors' LOL-v1 weights with MFR: the catalogue name of those weights (lumicap weights list).
FINETUNE_WEIGHTS = {
    "retinexformer": "retinexformer-lol-v1-official",
    "iat": "iat-lol-v1-official",
    "snr_aware": "snr-aware-lol-v1-official",
    "retinexnet": "retinexnet-lol-v1-official",
    "llformer": "llformer-lol-v1-official",
    "uhdfour": "uhdfour-lol-v1-official",
    "mirnet": "mirnet-lol-v1-official",
}
FINETUNE_MAX_ITERATIONS = 5_000


def finetune_dict(info) -> dict:
    """The fine-tuning schedule, one rule for every model: the recipe's last stage that MFR applies to
    (its losses, batch, patch, optimizer and mixup; RetinexNet: relighting, the decomposition stays as
    published), a fifth of the recipe's iterations capped at 5,000, the learning rate divided by 10 and
    decayed by a cosine to a tenth of that. A converged model needs small steps; MFR gets a few
    thousand of them to move it."""
    stage = [s for s in info.recipe.stages if s.mfr][-1]
    total = sum(s.iterations for s in info.recipe.stages)
    iterations = min(FINETUNE_MAX_ITERATIONS, max(100, int(round(total / 5, -2))))
    optimizer = _optimizer(info.name, dict(stage.optimizer))
    optimizer["lr"] = float(f"{stage.optimizer['lr'] / 10:.3g}")
    every = min(500, iterations // 4)
    return {
        "model": {"init_weights": FINETUNE_WEIGHTS[info.name]},
        "stages": [
            {
                "name": "finetune",
                "iterations": iterations,
                "batch_size": stage.batch_size,
                "patch_size": stage.patch_size,
                "losses": dict(stage.losses),
                "optimizer": optimizer,
                "scheduler": {"name": "cosine", "eta_min": float(f"{optimizer['lr'] / 10:.3g}")},
                "mixup": stage.mixup,
                "objective": stage.objective,
                "mfr": True,
            }
        ],
        "train": {"val_every": every, "ckpt_every": every},
    }


def render_finetune(info) -> str:
    data = finetune_dict(info)
    stage = data["stages"][0]
    header = [
        f"{info.name} on lol-v1 + MFR, fine-tuned from the authors' LOL-v1 weights ({FINETUNE_WEIGHTS[info.name]}): "
        f"the -mfr config with one short stage ({stage['iterations']} iterations at a tenth of the recipe's "
        f"learning rate, cosine decay). Generated by scripts/make_configs.py.",
        f"Weights: lumicap weights download {FINETUNE_WEIGHTS[info.name]} (or put the file where "
        f"'lumicap weights path {FINETUNE_WEIGHTS[info.name]}' says); they are fetched when training starts.",
        "Train: lumicap train THIS_FILE data.root=/path/to/LOL-v1 [--seeds 1,2,3]",
    ]
    return _header(_wrap(header)) + dump_yaml({"base": f"{info.name}-lol-v1-mfr.yaml", **data})


def _header(lines: list[str]) -> str:
    return MODELINE + "".join(f"# {line}\n" if line else "#\n" for line in lines)


def schema_text() -> str:
    import json

    import pydantic

    schema = {"$comment": f"Generated by scripts/make_configs.py (lumicap config schema) with pydantic {pydantic.VERSION}",
              **json_schema()}
    return json.dumps(schema, indent=2) + "\n"


def _schema_is_current(path: Path, text: str) -> bool:
    """Current, or written under another pydantic version (whose schema text may differ in details)."""
    import json

    if not path.is_file():
        return False
    old = path.read_text(encoding="utf-8")
    if old == text:
        return True
    try:
        recorded = json.loads(old).get("$comment", "")
    except ValueError:
        return False
    return recorded != json.loads(text)["$comment"]


def render(info, dataset: str) -> tuple[str, str]:
    base_name = f"{info.name}-{dataset}-baseline"
    data = baseline_dict(info, dataset)
    cfg = to_dict(from_dict(data))  # validates: a recipe the schema rejects fails here
    cfg.pop("name")  # run folders are named after each file's stem, so the -mfr file must not inherit one
    cfg["mfr"] = {"enabled": False}  # the -mfr file adds the whole block
    header = [
        f"{info.name} on {dataset}, baseline (original recipe). Generated by scripts/make_configs.py from the",
        f"recipe in lumicap/models/{info.builder.__module__.rsplit('.', 1)[-1]}.py: edit the recipe, then re-run.",
        f"Recipe source: {info.recipe.source}" if info.recipe.source else "",
        "Train: lumicap train THIS_FILE data.root=/path/to/dataset [--seeds 1,2,3]",
    ]
    if info.recipe.notes:
        header.insert(3, f"Notes: {info.recipe.notes}")
    baseline = _header(_wrap(header)) + dump_yaml(cfg)
    mfr = _header(
        _wrap(
            [
                f"{info.name} on {dataset} + MFR: the baseline config plus the multimodal feature regularization block.",
                "Generated by scripts/make_configs.py.",
            ]
        )
    ) + dump_yaml({"base": f"{base_name}.yaml", "mfr": MFR_BLOCK})
    return baseline, mfr


def _wrap(lines: list[str], width: int = 108) -> list[str]:
    import textwrap

    out = []
    for line in lines:
        if not line:
            continue
        out += textwrap.wrap(line, width) or [""]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "configs"))
    parser.add_argument("--check", action="store_true", help="only report stale or missing files")
    args = parser.parse_args(argv)
    out = Path(args.out)
    stale = []
    models = list_models()
    for info in models:
        for dataset in DATASETS:
            baseline, mfr = render(info, dataset)
            folder = out / info.name
            for variant, text in (("baseline", baseline), ("mfr", mfr)):
                path = folder / f"{info.name}-{dataset}-{variant}.yaml"
                if path.is_file() and path.read_text(encoding="utf-8") == text:
                    continue
                stale.append(path)
                if not args.check:
                    folder.mkdir(parents=True, exist_ok=True)
                    path.write_text(text, encoding="utf-8")
            if not args.check:
                load_config(folder / f"{info.name}-{dataset}-mfr.yaml")  # the pair resolves and validates
        if info.name in FINETUNE_WEIGHTS:
            path = out / info.name / f"{info.name}-lol-v1-mfr-finetune.yaml"
            text = render_finetune(info)
            if not (path.is_file() and path.read_text(encoding="utf-8") == text):
                stale.append(path)
                if not args.check:
                    path.write_text(text, encoding="utf-8")
                    load_config(path)
    schema_path = out / SCHEMA_FILE
    text = schema_text()
    if not _schema_is_current(schema_path, text) or (not args.check and not schema_path.is_file()):
        stale.append(schema_path)
        if not args.check:
            out.mkdir(parents=True, exist_ok=True)
            schema_path.write_text(text, encoding="utf-8")
    verb = "stale or missing" if args.check else "written"
    print(f"{len(models)} models x {len(DATASETS)} datasets x 2 variants + {len(FINETUNE_WEIGHTS)} fine-tune "
          f"configs; {len(stale)} file(s) {verb}")
    for path in stale:
        print(f"  {path.relative_to(out.parent) if out.parent in path.parents else path}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
