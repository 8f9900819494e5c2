"""Everything a training run needs, checked before its run folder is made.

The schema has already checked every value on its own; what is left depends on the machine and the
files: the network built with the config's overrides (on the ``meta`` device: no memory, no time),
``model.init_weights`` against it, the dataset's splits, sizes and pair counts against each stage,
VGG weights for perceptual terms, the MFR teacher, and the output folder. All problems are raised
together as one ``ConfigError``, one line each, so a bad config never leaves a run folder behind
stuck at "created" and one attempt shows everything to fix.
"""

from __future__ import annotations

import os
from pathlib import Path

from lumicap.config import Config, LOSS_MIN_PATCH
from lumicap.errors import ConfigError, LumicapError

SSIM_WINDOW = LOSS_MIN_PATCH["ssim"]  # evaluation measures SSIM on every validation and test image


def _line(exc: BaseException) -> str:
    """One line; lumicap's own messages whole (their reason comes last), others cut to 300 characters."""
    text = " ".join(str(exc).split())
    if not isinstance(exc, LumicapError):
        text = text[:300]
    return text or type(exc).__name__


def check_run(cfg: Config, world_size: int = 1, *, new_run: bool = True, output_dir: bool = True):
    """Raise one ``ConfigError`` listing every problem; returns the data splits (``Splits``) on success.

    ``new_run``: the run starts from scratch (``model.init_weights`` is used; a resumed run ignores it);
    ``output_dir``: the run folder will be made under ``cfg.output_dir`` (not inside an existing group)."""
    problems: list[str] = []
    _check_model(cfg, problems, check_init=new_run)
    splits = _check_data(cfg, problems, world_size)
    _check_losses(cfg, problems)
    _check_teacher(cfg, problems)
    if output_dir:
        _check_output_dir(cfg.output_dir, problems)
    if problems:
        raise ConfigError(*problems)
    return splits


def _check_model(cfg: Config, problems: list[str], check_init: bool):
    from lumicap.models.registry import model_info

    info = model_info(cfg.model.name)
    try:
        # A real CPU build (under a second for every registered network; the trainer seeds afterwards):
        # it catches what no single argument's range shows (heads that do not divide the width, ...).
        model = info.builder(**cfg.model.overrides)
    except Exception as exc:  # noqa: BLE001 - a constructor may raise anything for a bad combination
        problems.append(f"model.overrides: {info.name} cannot be built with {cfg.model.overrides} ({_line(exc)})")
        return None
    for i, stage in enumerate(cfg.stages):
        if stage.objective == "enhance":
            continue
        stages = getattr(model, "STAGES", None)
        if not hasattr(model, "stage_losses") or (stages is not None and stage.objective not in stages):
            allowed = ", ".join(["enhance", *(stages or ())])
            problems.append(f"stages.{i}.objective: got {stage.objective!r}; allowed: {allowed} (for {info.name})")
    if check_init and cfg.model.init_weights:
        _check_init_weights(cfg.model.init_weights, info.name, model, problems)
    return model


def _check_init_weights(weights: str, name: str, model, problems: list[str]) -> None:
    """Load ``weights`` into the throw-away build as the trainer will (a lumicap or official checkpoint of
    the model, detected by content, or a catalogue name of official weights, fetched into the cache)."""
    from lumicap.inference.loading import load_weights_into

    try:
        load_weights_into(model, name, weights)
    except LumicapError as exc:
        problems.append(f"model.init_weights: {_line(exc)}")


def _check_data(cfg: Config, problems: list[str], world_size: int):
    from lumicap.data import image_size
    from lumicap.engine.data import resolve_splits

    d = cfg.data
    if not Path(d.root).expanduser().is_dir():
        problems.append(f"data.root: no such folder: {d.root} (set it on the command line: data.root=/path/to/LOL-v1)")
        return None
    try:
        splits = resolve_splits(cfg)
    except LumicapError as exc:
        problems.append(f"data: {_line(exc)}")
        return None
    for label, pairs in (("val", splits.val), ("test", splits.test)):
        if not pairs:
            problems.append(f"data: the {label} set is empty ({splits.val_source if label == 'val' else d.test_split})")
    try:
        train_sizes = [image_size(pair.low) for pair in splits.train]
        eval_sizes = [(pair, image_size(pair.low)) for pair in splits.val + splits.test]
    except LumicapError as exc:
        problems.append(f"data: {_line(exc)}")
        return splits
    for i, stage in enumerate(cfg.stages):
        per_process = stage.batch_size // world_size
        if stage.batch_size % world_size:
            problems.append(
                f"stages.{i}.batch_size: got {stage.batch_size}; allowed: a multiple of the {world_size} processes"
            )
        elif len(splits.train) // world_size < per_process:
            problems.append(
                f"stages.{i}.batch_size: got {stage.batch_size}; allowed: at most the {len(splits.train)} training "
                f"pairs of data.train_split '{d.train_split}'"
                + (f" ({world_size} processes)" if world_size > 1 else "")
            )
        if not train_sizes:
            continue
        smallest = min(min(size) for size in train_sizes)
        if stage.patch_size is not None and stage.patch_size > smallest:
            problems.append(
                f"stages.{i}.patch_size: got {stage.patch_size}; allowed: at most {smallest} "
                f"(the smallest side among the training images)"
            )
        if stage.patch_size is None:
            needs = max((LOSS_MIN_PATCH.get(loss, 0) for loss in stage.losses), default=0)
            if smallest < needs:
                problems.append(
                    f"stages.{i}.losses: whole training images down to {smallest} px are smaller than the "
                    f"{needs}x{needs} SSIM window"
                )
            if stage.batch_size > 1 and len(set(train_sizes)) > 1:
                problems.append(
                    f"stages.{i}.batch_size: got {stage.batch_size} with patch_size null; allowed: 1, or a patch_size "
                    f"(whole training images differ in size: {len(set(train_sizes))} sizes)"
                )
    for pair, size in eval_sizes:
        if min(size) < SSIM_WINDOW:
            problems.append(
                f"data: {pair.low} is {size[1]}x{size[0]}; evaluation measures SSIM on "
                f"{SSIM_WINDOW}x{SSIM_WINDOW} windows"
            )
            break
    return splits


def _check_losses(cfg: Config, problems: list[str]) -> None:
    if cfg.train.allow_missing_perceptual:
        return
    from lumicap.losses.vgg import resolve_vgg_weights

    checked: dict[str, str | None] = {}
    for i, stage in enumerate(cfg.stages):
        for loss in stage.losses:
            if loss not in ("vgg16", "vgg19"):
                continue
            if loss not in checked:
                try:
                    resolve_vgg_weights(loss, cfg.train.perceptual_weights, download=False)
                    checked[loss] = None
                except LumicapError as exc:
                    checked[loss] = _line(exc)
            if checked[loss]:
                problems.append(
                    f"stages.{i}.losses.{loss}: {checked[loss]} "
                    "(or set train.allow_missing_perceptual=true to drop the term)"
                )


def _check_teacher(cfg: Config, problems: list[str]) -> None:
    if not cfg.mfr.enabled or not any(stage.mfr for stage in cfg.stages):
        return
    from lumicap.weights.teacher_presets import PRESETS

    if cfg.mfr.teacher not in PRESETS and not Path(cfg.mfr.teacher).expanduser().exists():
        problems.append(
            f"mfr.teacher: '{cfg.mfr.teacher}' is neither a teacher preset ({', '.join(PRESETS)}) "
            "nor an existing file or folder"
        )


def _check_output_dir(output_dir: str, problems: list[str]) -> None:
    """The folder must be one, or be creatable: its nearest existing ancestor a writable folder."""
    target = Path(output_dir).expanduser()
    probe = target
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        what = "is a file" if probe == target else f"cannot be created: {probe} is a file"
        problems.append(f"output_dir (--output-dir): {output_dir} {what}")
    elif probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        what = "is not writable" if probe == target else f"cannot be created: {probe} is not writable"
        problems.append(f"output_dir (--output-dir): {output_dir} {what}")
