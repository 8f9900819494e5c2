"""The experiment config schema: pydantic v2 models, every numeric field with its range.

pydantic rather than omegaconf structured configs: it checks value ranges and cross-field rules, collects
every problem of a document in one pass, and writes the JSON Schema editors use; omegaconf checks types only.

Strict mode throughout: ``"8"`` is not an integer, ``true`` is not a number, ``2.5`` is not a batch size.
Lists given where the schema keeps a tuple (``betas``, ``mfr.weights``) are accepted as such.
Cross-field rules (a scheduler's own keys, the SSIM window against the patch, loss names, model
overrides against the model's constructor) are after-validators that report every problem they find.
"""

from __future__ import annotations

import typing
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

from lumicap.names import (
    BUILTIN_LOSSES,
    SSIM_WINDOW,
    DeviceChoice,
    FeatureDistance,
    GptLayerChoice,
    LayoutChoice,
    PreprocessMode,
    PsnrConvention,
    model_key,
)
from lumicap.problems import CUSTOM, problems_from

INT64_MAX = 2**63 - 1
MAX_COUNT = 2**31 - 1  # iterations and intervals: far above any recipe (150k), within int32

SCHEDULERS = ("constant", "multistep", "cosine", "cosine_restart_cyclic")
OPTIMIZERS = ("adam", "adamw", "sgd")
LAYOUTS = typing.get_args(LayoutChoice)  # lumicap.names.LAYOUTS and "auto"
MIN_PATCH = 8
# The smallest patch each loss can compare (ssim: one Gaussian window, valid region only).
LOSS_MIN_PATCH = {"ssim": SSIM_WINDOW}


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def Int(ge: int = 0, le: int = INT64_MAX) -> Any:  # noqa: N802 (reads as a type in the field list)
    return Annotated[int, Field(ge=ge, le=le)]


def Num(  # noqa: N802
    *, gt: float | None = None, ge: float | None = None, lt: float | None = None, le: float | None = None
) -> Any:
    return Annotated[float, Field(gt=gt, ge=ge, lt=lt, le=le, allow_inf_nan=False)]


Count = Int(1, MAX_COUNT)
Seed = Int(0, INT64_MAX)
Weight = Num(ge=0, le=1e6)
LearningRate = Num(gt=0, le=10)
Unit = Num(ge=0, lt=1)
NonEmpty = Annotated[str, Field(min_length=1, max_length=4096)]


def _problem(loc: tuple, value: Any, allowed: str, kind: str = "value") -> InitErrorDetails:
    return InitErrorDetails(
        type=PydanticCustomError(CUSTOM, "{allowed}", {"allowed": allowed, "kind": kind}), loc=loc, input=value
    )


def _raise_all(model: type, problems: list[InitErrorDetails]) -> None:
    if problems:
        raise ValidationError.from_exception_data(model.__name__, problems)


class Section(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class ModelConfig(Section):
    name: NonEmpty = Field(description="registered network (lumicap models)")
    overrides: dict[str, Any] = Field(
        default_factory=dict, description="constructor arguments of the network, checked against its signature"
    )
    init_weights: Optional[NonEmpty] = Field(
        None,
        description="start from these weights (fine-tuning): a .safetensors / .pt state dict, a lumicap "
        "checkpoint, an official checkpoint of the model (detected by content) or the catalogue name of official "
        "weights (e.g. retinexformer-lol-v1-official); ignored on --resume, where the run's own checkpoint is the "
        "state",
    )

    @model_validator(mode="after")
    def _known_model_and_arguments(self) -> "ModelConfig":
        from lumicap.models.registry import model_names, override_problems

        names = model_names()
        key = model_key(self.name)
        if key not in names:
            _raise_all(type(self), [_problem(("name",), self.name, "one of " + ", ".join(names))])
        found = [
            _problem(("overrides", *p.key.split(".")), p.value, p.allowed, p.kind)
            for p in override_problems(key, self.overrides)
        ]
        _raise_all(type(self), found)
        return self


class DataConfig(Section):
    root: NonEmpty = Field(description="dataset folder")
    layout: LayoutChoice = Field("auto", description="folder layout; auto detects it")
    train_split: Union[NonEmpty, Annotated[list[NonEmpty], Field(min_length=1, max_length=64)]] = Field(
        "train", description="a split, or a list of splits trained together (e.g. [train80, train200])"
    )
    val_split: Optional[NonEmpty] = Field(None, description="null: carve a validation set from train by whole scenes")
    test_split: NonEmpty = "test"
    val_fraction: Unit = Field(0.1, description="share of training pairs carved out for validation")
    val_seed: Seed = Field(0, description="the carve is fixed per dataset, independent of the training seed")
    cache: bool = Field(True, description="decode the training images once and keep them in memory")
    num_workers: Int(0, 256) = 2
    mixup_alpha: Num(gt=0, le=100) = Field(1.2, description="Beta(alpha, alpha) for stages with mixup")
    exposure_range: Optional[Annotated[tuple[Num(gt=0, le=100), Num(gt=0, le=100)], BeforeValidator(_as_tuple)]] = (
        Field(
            None,
            description="training low images multiplied by a factor drawn log-uniformly from [low, high] (the "
            "reference unchanged), so the network learns less gain for brighter inputs; null: off",
        )
    )
    identity_fraction: Num(ge=0, le=1) = Field(
        0.0,
        description="share of training samples whose input is the reference itself (target = input): a photo "
        "that is already well exposed must stay as it was",
    )
    whole_image_context: bool = Field(
        False,
        description="crops also carry the whole low image they were cut from, for models whose global branch "
        "judges the whole photo (IAT): the loss sees the crop, the gamma/colour come from the whole image",
    )

    @model_validator(mode="after")
    def _ordered_exposure_range(self) -> "DataConfig":
        if self.exposure_range is not None and self.exposure_range[0] > self.exposure_range[1]:
            _raise_all(
                type(self), [_problem(("exposure_range",), list(self.exposure_range), "[low, high] with low <= high")]
            )
        return self


class OptimizerConfig(Section):
    name: Literal[OPTIMIZERS] = "adam"  # type: ignore[valid-type]
    lr: LearningRate = 2e-4
    betas: Annotated[tuple[Unit, Unit], BeforeValidator(_as_tuple)] = (0.9, 0.999)
    eps: Num(gt=0, le=1) = 1e-8
    weight_decay: Num(ge=0, le=10) = 0.0
    momentum: Optional[Unit] = Field(None, description="sgd only (null: 0)")


# scheduler name -> (required fields, optional fields); any other field set is an error
SCHEDULER_FIELDS = {
    "constant": ((), ()),
    "multistep": (("milestones", "gamma"), ()),
    "cosine": ((), ("warmup_iters", "eta_min", "t_max")),
    "cosine_restart_cyclic": (("periods", "restart_weights", "eta_mins"), ()),
}
_LIST = 1000  # list lengths (milestones, periods): a record stays readable


class SchedulerConfig(Section):
    """One learning-rate schedule; which fields apply depends on ``name`` (``SCHEDULER_FIELDS``)."""

    name: Literal[SCHEDULERS] = "constant"  # type: ignore[valid-type]
    milestones: Optional[Annotated[list[Count], Field(max_length=_LIST)]] = Field(None, description="multistep")
    gamma: Optional[Num(gt=0, le=1)] = Field(None, description="multistep")
    warmup_iters: Optional[Int(0, MAX_COUNT)] = Field(None, description="cosine: linear warm-up (default 0)")
    eta_min: Optional[Num(ge=0, le=10)] = Field(None, description="cosine (default 0)")
    t_max: Optional[Count] = Field(None, description="cosine: length after warm-up (default: rest of the stage)")
    periods: Optional[Annotated[list[Count], Field(min_length=1, max_length=_LIST)]] = Field(
        None, description="cosine_restart_cyclic"
    )
    restart_weights: Optional[Annotated[list[Num(ge=0, le=10)], Field(max_length=_LIST)]] = Field(
        None, description="cosine_restart_cyclic"
    )
    eta_mins: Optional[Annotated[list[Num(ge=0, le=10)], Field(max_length=_LIST)]] = Field(
        None, description="cosine_restart_cyclic"
    )

    @model_validator(mode="after")
    def _fields_of_this_schedule(self) -> "SchedulerConfig":
        required, optional = SCHEDULER_FIELDS[self.name]
        found = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name == "name":
                continue
            if name in required and value is None:
                found.append(_problem((name,), value, f"scheduler '{self.name}' needs it", "missing"))
            elif name not in required + optional and value is not None:
                takes = ", ".join(required + optional) or "no other keys"
                found.append(
                    _problem((name,), value, f"null (not used by scheduler '{self.name}', which takes {takes})")
                )
        if not found and self.name == "multistep" and sorted(self.milestones) != self.milestones:
            found.append(_problem(("milestones",), self.milestones, "increasing iteration numbers"))
        if not found and self.name == "cosine_restart_cyclic":
            n = len(self.periods)
            for name in ("restart_weights", "eta_mins"):
                if len(getattr(self, name)) != n:
                    found.append(_problem((name,), getattr(self, name), f"a list as long as periods ({n} items)"))
        _raise_all(type(self), found)
        return self


class StageConfig(Section):
    name: Annotated[str, Field(min_length=1, max_length=64)] = Field(description="stage name (overrides may use it)")
    iterations: Count
    batch_size: Int(1, 65536)
    patch_size: Optional[Int(MIN_PATCH, 65536)] = Field(description="square training crops; null: whole images")
    losses: Annotated[dict[NonEmpty, Weight], Field(min_length=1, max_length=32)] = Field(
        description=f"loss name -> weight; built in: {', '.join(BUILTIN_LOSSES)}"
    )
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    mixup: bool = False
    objective: NonEmpty = Field("enhance", description="enhance, or a model-defined stage (model.stage_losses)")
    mfr: bool = Field(True, description="whether MFR applies to this stage; only when mfr.enabled is true (the "
                      "run-wide switch): with mfr.enabled false no stage uses MFR, whatever this says")
    freeze: Annotated[list[NonEmpty], Field(max_length=64)] = Field(
        default_factory=list,
        description="parameters kept fixed in this stage, by name prefix (e.g. global_net: IAT's global branch)",
    )

    @model_validator(mode="after")
    def _losses_fit_the_stage(self) -> "StageConfig":
        found = []
        if self.objective == "enhance":
            for loss in self.losses:
                if loss not in BUILTIN_LOSSES:
                    allowed = "built-in losses: " + ", ".join(BUILTIN_LOSSES)
                    found.append(_problem(("losses", loss), self.losses[loss], allowed, "unknown"))
        needs = {loss: LOSS_MIN_PATCH[loss] for loss in self.losses if loss in LOSS_MIN_PATCH}
        if needs and self.patch_size is not None and self.patch_size < max(needs.values()):
            loss, size = max(needs.items(), key=lambda item: item[1])
            found.append(_problem(
                ("patch_size",), self.patch_size,
                f">= {size} or null (the {loss} loss compares {size}x{size} windows)",
            ))
        sch = self.scheduler
        if sch.name == "cosine_restart_cyclic" and sum(sch.periods) < self.iterations:
            found.append(
                _problem(
                    ("scheduler", "periods"),
                    sch.periods,
                    f"periods that sum to at least the stage's {self.iterations} iterations (they sum to "
                    f"{sum(sch.periods)})",
                )
            )
        _raise_all(type(self), found)
        return self


class MFRConfig(Section):
    enabled: bool = False
    teacher: NonEmpty = Field("clipcap-coco", description="teacher preset name or a local path (file or folder)")
    weights: Annotated[tuple[Weight, Weight, Weight], BeforeValidator(_as_tuple)] = Field(
        (1.0, 1.0, 1.0), description="CLIP embedding, prefix, GPT-2 hidden states"
    )
    distance: FeatureDistance = "l1"
    gpt_layers: GptLayerChoice | Annotated[list[Int(-64, 64)], Field(min_length=1, max_length=64)] = "last"
    preprocess: PreprocessMode = "crop"
    normalize: bool = True
    caption_conditioned: bool = False
    kl_weight: Weight = 0.0
    # Speed: the teacher's passes under bf16 autocast (its error against fp32 is printed by
    # benchmarks/bench_train_step.py --mfr-amp bf16), and torch.compile of the loss (train.compile_mode).
    amp: Literal["none", "bf16"] = Field("none", description="autocast dtype of the teacher's passes (none: fp32)")
    compile: bool = Field(False, description="torch.compile the MFR loss (the teacher's passes)")


class EvalConfig(Section):
    psnr_convention: PsnrConvention = "float"
    lpips: bool = Field(False, description="also measure LPIPS on the test split")
    gt_mean: bool = Field(False, description="also report the GT-mean variants")
    val_images: Int(0, 1000) = Field(3, description="validation images written to TensorBoard each validation")


class TrainConfig(Section):
    seed: Seed = 0
    amp: Literal["none", "bf16", "fp16"] = "none"
    grad_clip: Optional[Num(gt=0, le=1e6)] = Field(None, description="max global gradient norm")
    ema_decay: Optional[Num(gt=0, lt=1)] = Field(None, description="e.g. 0.999; validation/test use the EMA weights")
    val_every: Count = 1000
    ckpt_every: Count = 1000
    log_every: Count = 20
    select_on: Literal["val", "test"] = "val"
    select_metric: Literal["psnr", "ssim"] = "psnr"
    max_iters: Optional[Count] = Field(None, description="cap on the run's total iterations")
    max_minutes: Optional[Num(gt=0, le=1e7)] = Field(None, description="wall-clock budget per invocation")
    device: DeviceChoice = "auto"
    allow_missing_perceptual: bool = Field(False, description="drop VGG terms (recorded) when weights are missing")
    perceptual_weights: Optional[NonEmpty] = Field(None, description="VGG weights file; null: lumicap.vgg's resolution")
    # Speed options (benchmarks/bench_train_step.py measures them).
    channels_last: bool = Field(False, description="weights and batches in NHWC")
    compile: bool = Field(False, description="torch.compile the training forward")
    compile_mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = Field(
        "default", description="torch.compile mode for train.compile and mfr.compile (reduce-overhead: CUDA graphs)"
    )
    fused_optimizer: Optional[bool] = Field(
        None, description="Adam/AdamW in one fused kernel (null: where torch has it: CUDA, and the CPU from torch 2.4)"
    )
    tf32: Optional[bool] = Field(None, description="TF32 matmuls/convolutions on CUDA (null: PyTorch's defaults)")


class Config(Section):
    model: ModelConfig
    data: DataConfig
    stages: Annotated[list[StageConfig], Field(min_length=1, max_length=64)]
    mfr: MFRConfig = Field(default_factory=MFRConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    output_dir: NonEmpty = Field("runs", description="parent folder of run folders")
    name: Optional[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$", max_length=128)]] = Field(
        None, description="run-folder name (letters, digits, . _ + -); default: the config file's stem"
    )

    @model_validator(mode="after")
    def _unique_stage_names(self) -> "Config":
        names = [stage.name for stage in self.stages]
        found = [
            _problem(("stages", i, "name"), name, "a name no other stage has")
            for i, name in enumerate(names)
            if names.index(name) != i
        ]
        _raise_all(type(self), found)
        return self

    @property
    def total_iterations(self) -> int:
        total = sum(stage.iterations for stage in self.stages)
        return min(total, self.train.max_iters) if self.train.max_iters else total


def validate(data: Any) -> tuple[Config | None, list]:
    """(config, []) or (None, problems): every problem of the document, one ``Problem`` each."""
    try:
        return Config.model_validate(data), []
    except ValidationError as exc:
        return None, problems_from(Config, exc, data)
