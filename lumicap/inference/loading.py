"""Load an enhancement network for inference from any of the files lumicap writes or accepts.

``load_inference_model(spec, device, weights=None)`` takes

- ``None`` or ``"default"``: the model shipped in the package, ``lumicap/assets/default_model.safetensors``
  with its sidecar ``default_model.json``;
- a ``.safetensors`` file with a JSON sidecar of the same stem (``save_inference_model`` writes both);
- a lumicap training checkpoint (or a run folder: its ``checkpoints/best.pt``, else ``last.pt``;
  ``lumicap.engine.checkpoint``: a dict with the ``"model"`` state dict,
  the ``"ema"`` average when the run kept one, and the run's ``"config"`` whose ``model`` entry names the
  registry model and its constructor overrides); the EMA weights are used when present, because they
  are what the run validated and selected;
- a registry model name (``"iat"``) together with ``weights=`` a state-dict file (safetensors or a torch
  pickle, wrapped or not), an official checkpoint of that model (detected by content, see
  ``lumicap.models.official``; RetinexNet's TensorFlow checkpoint folder with the ``tf`` extra) or a known
  weights name; ``overrides=`` gives the constructor overrides of ``build_model`` for a checkpoint of a
  non-default size;
- the name of an official pretrained checkpoint in the catalogue (``"retinexformer-lol-v1-official"``,
  ``lumicap weights list``): the model it belongs to, its weights from the cache (downloaded when absent).

Everything is read with safetensors or ``torch.load(weights_only=True)``; a file that does not fit the
architecture, is truncated, or lacks the information to build the network raises a one-line
``WeightsError`` naming the file and the problem.

Sidecar JSON (``default_model.json`` follows it)::

    {"format": "lumicap-inference-model", "version": 1,
     "model": "iat",                      # registry name (required)
     "overrides": {},                     # constructor overrides for build_model (optional)
     "training_command": "lumicap train ...", "data": "...", "metrics": {...}}   # free-form record
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import safe_open
from safetensors.torch import save
from torch import nn

from lumicap.errors import LumicapError, WeightsError, shown
from lumicap.files import not_regular, replacing
from lumicap.inference.fullres import FullResolutionTransform, supports_full_resolution_transform
from lumicap.inference.chroma import ChromaGain, parse_gain
from lumicap.inference.highlights import DEFAULT_RAMP, HighlightProtection, parse_ramp
from lumicap.inference.onnx_model import OnnxEnhancer
from lumicap.jsonfile import parse_json, read_json
from lumicap.limits import NETWORK_MEGAPIXELS_RANGE, check_finite
from lumicap.models import build_model, list_models, official
from lumicap.models.official.tf_checkpoint import is_tf_checkpoint, read_tf_checkpoint, read_tf_checkpoint_files
from lumicap.names import DeviceChoice, model_key
from lumicap.weights import ensure_weights, load_state_dict, resolve_weights
from lumicap.weights.catalogue import OFFICIAL_MODELS, official_model
from lumicap.weights.reader import read_torch_file, read_training_checkpoint, training_checkpoint_problem

ASSETS_DIR = Path(__file__).resolve().parents[1] / "assets"
DEFAULT_WEIGHTS = ASSETS_DIR / "default_model.safetensors"
# Models in the package itself (loaded offline by name): the default, and the previous default for those who
# prefer Retinexformer's quality over the default's speed (README model card).
SHIPPED_MODELS = {
    "default": DEFAULT_WEIGHTS.name,
    "retinexformer-lumicap": "retinexformer_lumicap.safetensors",
    # The default of 2026-11 (IAT on train80): the starting point of today's default's recipe, kept by name.
    "iat-lumicap-2026-11": "iat_lumicap_2026_11.safetensors",
}
DEFAULT_METADATA = ASSETS_DIR / "default_model.json"
SIDECAR_FORMAT = "lumicap-inference-model"
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")


@dataclass
class ModelWeights:
    """What a model spec resolves to before the network is built (the hand-off from each source below
    to ``load_inference_model``)."""

    name: str  # registry model name
    overrides: dict[str, Any]  # constructor overrides the file records
    state: dict[str, torch.Tensor]
    metadata: dict[str, Any]  # the sidecar or checkpoint record, kept in InferenceModel.metadata
    source: str  # where the weights came from, for messages


@dataclass
class InferenceModel:
    """A network in eval mode on ``device``, with where it came from; call it like the network."""

    module: nn.Module
    name: str
    source: str
    device: torch.device
    metadata: dict[str, Any] = field(default_factory=dict)
    note: str | None = None  # one line for the user, e.g. official tensors that were left out

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)

    @property
    def handles_large_images(self) -> bool:
        """True when the module bounds its own work on big photos (``FullResolutionTransform``): no tiles."""
        return bool(getattr(self.module, "handles_large_images", False))

    def describe(self) -> str:
        text = f"{self.name} from {self.source} on {self.device}"
        limit = getattr(self.module, "network_megapixels", None)
        if limit is not None:
            text += f" (network at most {limit:g} MP; its transform applied at full resolution)"
        step = self.module
        if isinstance(step, HighlightProtection):
            text += f"; highlights protected from {step.start:g} to {step.end:g}"
            step = step.module
        if isinstance(step, ChromaGain):
            text += f"; chroma x{step.gain:g}"
        return text


def resolve_device(device: DeviceChoice | torch.device | None) -> torch.device:
    """``"auto"``/None -> CUDA when available, else CPU; an unavailable CUDA is a one-line error."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise LumicapError(f"unknown device '{device}'; use cpu, cuda or auto") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise LumicapError("--device cuda requested but PyTorch sees no CUDA GPU on this machine; use --device cpu")
    return resolved


def load_inference_model(
    spec: str | os.PathLike | None = None,
    device: str | torch.device | None = "cpu",
    weights: str | os.PathLike | None = None,
    network_megapixels: float | None = None,
    overrides: dict[str, Any] | None = None,
    highlight_protection: bool | None = None,
    chroma_gain: float | None = None,
) -> InferenceModel:
    """Build and load the network named or stored by ``spec``; see the module docstring for the forms.

    ``network_megapixels``: for networks that predict a transform (IAT), run the network on at most this many
    megapixels and apply its transform at full resolution (``lumicap.inference.fullres``); 0 turns it off.
    None: what the model's sidecar says (``"inference": {"network_megapixels": X}``), else off.
    ``highlight_protection``: blend the result back towards the input where the input is already bright
    (``lumicap.inference.highlights``); None: what the sidecar says (``"highlight_protection": true`` or
    ``[start, end]``), else off; False: off (the bare network, e.g. for export); True: on (the sidecar's ramp
    or the default one).
    ``chroma_gain``: scale the result's chroma around its luma (``lumicap.inference.chroma``), before highlight
    protection; None: what the sidecar says (``"chroma_gain": X``), else none; 1: none (the bare network).
    ``overrides`` (constructor arguments of ``build_model``) are applied over those the file records.
    """
    text = None if spec is None else os.fspath(spec)
    if text is not None and text.lower().endswith(".onnx"):
        return _from_onnx(Path(text).expanduser(), device, weights)
    target = resolve_device(device)
    read = next((read for _, matches, read in SPEC_FORMS if matches(text, weights)), _needs_weights)
    loaded = read(text, weights)
    all_overrides = {**loaded.overrides, **dict(overrides or {})}
    module = _build(loaded.name, all_overrides, loaded.source)
    conversion = _load_weights(module, loaded.state, loaded.name, loaded.source)
    metadata = {**loaded.metadata, "overrides": all_overrides}
    if conversion is not None:
        metadata["official_format"] = conversion.description
        metadata["official_keys_left_out"] = conversion.ignored_keys
    module = _with_full_resolution_transform(module, network_megapixels, metadata, loaded.source)
    module = _with_chroma_gain(module, chroma_gain, metadata, loaded.source)
    module = _with_highlight_protection(module, highlight_protection, metadata, loaded.source)
    module.to(target).eval()
    note = conversion.note() if conversion is not None else None
    return InferenceModel(
        module=module, name=loaded.name, source=loaded.source, device=target, metadata=metadata, note=note
    )


def load_weights_into(module: nn.Module, name: str, weights: str | os.PathLike):
    """Load ``weights`` (any file or catalogue name ``load_inference_model`` takes with a model name) into
    an already built ``module`` of registry model ``name`` (fine-tuning starts); returns the official
    ``Conversion`` when the file was an official checkpoint, else None."""
    text = os.fspath(weights)
    if official_model(text) is not None:
        loaded = _from_official_model(text)
        state, source = loaded.state, loaded.source
    elif text in SHIPPED_MODELS:  # a model in the package (a recipe may continue one)
        loaded = _from_shipped(text, None)
        state, source = loaded.state, loaded.source
    else:
        path = resolve_weights(text, download=True)
        state, source = read_weights(path), str(path)
    return _load_weights(module, state, name, source)


def read_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from a weight file (safetensors, torch pickle read with ``weights_only=True``, wrapped
    or not) or a TensorFlow checkpoint (file, prefix or folder; needs the ``tf`` extra)."""
    path = Path(path).expanduser()
    if is_tf_checkpoint(path):
        return read_tf_checkpoint(path)
    if path.is_dir():
        raise WeightsError(f"{path}: a folder, not a weight file (nor a TensorFlow checkpoint folder)")
    return load_state_dict(path)


def _with_full_resolution_transform(
    module: nn.Module, megapixels: float | None, metadata: dict, source: str
) -> nn.Module:
    if megapixels is None:
        megapixels = _inference_setting(metadata, "network_megapixels")
        if megapixels is not None:
            try:
                check_finite(megapixels, *NETWORK_MEGAPIXELS_RANGE, what="its value")
            except ValueError as exc:
                raise WeightsError(f"{source}: sidecar 'inference.network_megapixels': {exc} (0: off)") from None
    else:
        try:  # NaN would pass 'not megapixels' and '< 0' alike
            check_finite(megapixels, *NETWORK_MEGAPIXELS_RANGE, what="--network-megapixels")
        except ValueError as exc:
            raise LumicapError(f"{exc} (0: off)") from None
    if not megapixels:
        return module
    if not supports_full_resolution_transform(module):
        raise LumicapError(
            f"--network-megapixels needs a network that predicts a transform (IAT); {type(module).__name__} "
            "paints pixels"
        )
    return FullResolutionTransform(module, float(megapixels))


def _inference_setting(metadata: dict, key: str):
    """``key`` of a sidecar's ``"inference"`` block; None where the block or the key is missing."""
    settings = metadata.get("inference") if isinstance(metadata, dict) else None
    return settings.get(key) if isinstance(settings, dict) else None


def _with_chroma_gain(module: nn.Module, wanted: float | None, metadata: dict, source: str) -> nn.Module:
    if wanted is None:
        try:
            gain = parse_gain(_inference_setting(metadata, "chroma_gain"), source)
        except ValueError as exc:
            raise WeightsError(str(exc)) from None
    else:
        gain = None if wanted == 1 else wanted
    return module if gain is None else ChromaGain(module, gain)


def _with_highlight_protection(module: nn.Module, wanted: bool | None, metadata: dict, source: str) -> nn.Module:
    try:
        ramp = parse_ramp(_inference_setting(metadata, "highlight_protection"), source)
    except ValueError as exc:
        raise WeightsError(str(exc)) from None
    if wanted is False or (wanted is None and ramp is None):
        return module
    return HighlightProtection(module, *(ramp or DEFAULT_RAMP))


def _from_onnx(path: Path, device, weights) -> InferenceModel:
    if weights is not None:
        raise LumicapError(f"{path}: an ONNX file holds its weights; drop --weights")
    if device is not None and str(device) not in ("auto", "cpu"):
        raise LumicapError(f"{path}: ONNX models run on the CPU through ONNX Runtime; drop --device {device}")
    enhancer = OnnxEnhancer(path)
    name = enhancer.metadata.get("lumicap_model", "onnx")
    return InferenceModel(module=enhancer, name=name, source=str(path), device=torch.device("cpu"),
                          metadata=dict(enhancer.metadata))


# ----------------------------------------------------------------------------------------------- sources


def _from_shipped(spec: str | None, weights: str | os.PathLike | None) -> ModelWeights:
    if weights is not None:
        raise LumicapError("--weights needs --model NAME (the registry model the weights belong to)")
    key = spec or "default"
    weights = ASSETS_DIR / SHIPPED_MODELS[key]
    sidecar = weights.with_suffix(".json")
    if not weights.is_file() or not sidecar.is_file():
        missing = weights if not weights.is_file() else sidecar
        raise WeightsError(
            f"the {'default model' if key == 'default' else f'shipped model {key!r}'} is not installed in this copy "
            f"of lumicap ({missing} is missing); "
            f"pass --model FILE.safetensors (with its .json), a training checkpoint, or --model NAME --weights FILE"
        )
    return _from_safetensors(weights, source="default model" if key == "default" else f"shipped model '{key}'")


def _from_safetensors(path: Path, source: str | None = None) -> ModelWeights:
    if not path.is_file():
        raise WeightsError(not_regular(path) or f"{path}: no such file")
    sidecar = path.with_suffix(".json")
    metadata = _read_sidecar(sidecar) if sidecar.is_file() else _read_header_metadata(path)
    if metadata is None:
        raise WeightsError(
            f"{path}: no sidecar {sidecar.name} saying which model these weights are for; "
            f"pass --model NAME --weights {path}"
        )
    state = load_state_dict(path)
    return ModelWeights(metadata["model"], metadata.get("overrides") or {}, state, metadata, source or str(path))


def _from_name_and_weights(name: str, weights: str | os.PathLike) -> ModelWeights:
    if official_model(name) is not None:  # "--model iat-lol-v1-official --weights FILE": FILE is such a file
        name = official_model(name).model
    _require_registry_name(name)
    if official_model(os.fspath(weights)) is not None:
        loaded = _from_official_model(os.fspath(weights))
        if model_key(loaded.name) != model_key(name):
            raise WeightsError(f"weights '{os.fspath(weights)}' are for model '{loaded.name}', not '{name}'")
        return ModelWeights(name, {}, loaded.state, loaded.metadata, loaded.source)
    path = resolve_weights(weights, download=True)
    if path.suffix in CHECKPOINT_SUFFIXES and path.is_file():
        # A training checkpoint given with an explicit name: keep its overrides when it names the same model.
        raw = read_torch_file(path)
        if training_checkpoint_problem(raw) is None:
            ck_name, overrides = _model_from_config(raw.get("config"), path)
            if ck_name is not None and model_key(ck_name) != model_key(name):
                raise WeightsError(f"{path}: checkpoint is for model '{ck_name}', not '{name}'")
            state, which = _checkpoint_weights(raw, path)
            record = {"model": name, "overrides": overrides, "weights": which}
            return ModelWeights(name, overrides, state, record, str(path))
    return ModelWeights(name, {}, read_weights(path), {"model": name}, str(path))


def _from_official_model(text: str) -> ModelWeights:
    """A catalogue name of official pretrained weights: its model, and its file(s) from the cache."""
    entry = official_model(text)
    found = ensure_weights(entry.files, download=True, needed_by=f"model '{entry.name}'", fetch_names=[entry.name])
    paths = [found[file] for file in entry.files]
    if entry.tf_folders:
        parts = {folder: (paths[2 * i], paths[2 * i + 1]) for i, folder in enumerate(entry.tf_folders)}
        state, source = read_tf_checkpoint_files(parts), f"{entry.name} ({paths[0].parent.parent})"
    else:
        state, source = read_weights(paths[0]), str(paths[0])
    return ModelWeights(entry.model, {}, state, {"model": entry.model, "weights": entry.name}, source)


def _from_checkpoint(path: Path) -> ModelWeights:
    raw = read_training_checkpoint(path)
    name, overrides = _model_from_config(raw.get("config"), path)
    if name is None:
        raise WeightsError(f"{path}: the checkpoint's config names no model (config.model.name)")
    state, which = _checkpoint_weights(raw, path)
    metadata = {"model": name, "overrides": overrides, "weights": which}
    for key in ("kind", "iteration", "best", "selected_on"):
        if key in raw and isinstance(raw[key], (int, float, str, dict)):
            metadata[key] = raw[key]
    return ModelWeights(name, overrides, state, metadata, str(path))


def _from_run_folder(folder: Path) -> ModelWeights:
    return _from_checkpoint(_checkpoint_in_run_folder(folder))


def _needs_weights(spec: str, weights: None) -> ModelWeights:
    """No form matched: a registry name without weights (or an unknown name, or a missing file)."""
    _require_registry_name(spec)
    trained = trained_names_for(spec)
    use = f", or use trained weights by name: {', '.join(trained)}" if trained else ""
    raise LumicapError(
        f"model '{spec}' is a network without weights, so it needs weights: add --weights FILE (a checkpoint "
        f"of '{spec}'){use}; 'lumicap models' lists every name --model takes"
    )


def _path(spec: str) -> Path:
    return Path(spec).expanduser()


SpecTest = Callable[[Any, Any], bool]
SpecReader = Callable[[Any, Any], ModelWeights]
# The forms ``load_inference_model(spec, weights=...)`` accepts, tried in this order; the first whose test
# matches reads the spec (an .onnx file is handled before: it holds a network, not weights).
SPEC_FORMS: tuple[tuple[str, SpecTest, SpecReader], ...] = (
    ("a model shipped in the package, by name (SHIPPED_MODELS; None: 'default')",
     lambda spec, weights: spec is None or spec in SHIPPED_MODELS, _from_shipped),
    ("registry model name with weights=",
     lambda spec, weights: weights is not None, _from_name_and_weights),
    ("official pretrained name from the catalogue",
     lambda spec, weights: official_model(spec) is not None, lambda spec, _: _from_official_model(spec)),
    ("lumicap run folder (its best.pt, else last.pt)",
     lambda spec, weights: _path(spec).is_dir(), lambda spec, _: _from_run_folder(_path(spec))),
    (".safetensors file with its sidecar",
     lambda spec, weights: _path(spec).suffix == ".safetensors", lambda spec, _: _from_safetensors(_path(spec))),
    ("lumicap training checkpoint",
     lambda spec, weights: _path(spec).suffix in CHECKPOINT_SUFFIXES or _path(spec).is_file(),
     lambda spec, _: _from_checkpoint(_path(spec))),
)


def _checkpoint_in_run_folder(folder: Path) -> Path:
    """A ``lumicap train`` run folder stands for its selected weights (``checkpoints/best.pt``), else
    its latest state (``checkpoints/last.pt``)."""
    for candidate in (folder / "checkpoints" / "best.pt", folder / "checkpoints" / "last.pt"):
        if candidate.is_file():
            return candidate
    raise WeightsError(f"{folder}: a folder, but not a lumicap run folder (no checkpoints/best.pt or last.pt)")


def _checkpoint_weights(raw: dict, path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """The EMA average when the checkpoint has one (``{"module": state_dict, ...}``), else ``model``."""
    ema = raw.get("ema")
    if isinstance(ema, dict) and isinstance(ema.get("module"), dict) and ema["module"]:
        return _tensors_only(ema["module"], path), "ema"
    return _tensors_only(raw.get("model"), path), "model"


# ----------------------------------------------------------------------------------------------- helpers


def _model_from_config(config: Any, path: Path) -> tuple[str | None, dict]:
    """Model name and overrides from a training config (dict) in the shapes the trainer writes."""
    if not isinstance(config, dict):
        raise WeightsError(f"{path}: checkpoint 'config' is a {type(config).__name__}, expected a dict")
    model = config.get("model")
    if isinstance(model, str):
        return model, dict(config.get("model_overrides") or {})
    if isinstance(model, dict):
        name = model.get("name")
        overrides = model.get("overrides")
        if overrides is None:  # flat form: {"name": "iat", "dim": 16, ...}
            overrides = {k: v for k, v in model.items() if k not in ("name", "weights", "pretrained")}
        if not isinstance(overrides, dict):
            raise WeightsError(f"{path}: config.model.overrides is a {type(overrides).__name__}, expected a mapping")
        return name, dict(overrides)
    return None, {}


def _tensors_only(state: Any, path: Path) -> dict[str, torch.Tensor]:
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: checkpoint 'model' entry is not a state dict of tensors")
    return state


def _read_sidecar(path: Path) -> dict:
    return _check_metadata(read_json(path, what="JSON sidecar", error=WeightsError), path)


def _read_header_metadata(path: Path) -> dict | None:
    """The same record stored in the safetensors header (``__metadata__["lumicap"]``), if any."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
    except Exception:
        return None  # load_state_dict reports an unreadable file with the proper message
    if "lumicap" not in header:
        return None
    return _check_metadata(parse_json(header["lumicap"], path, "header metadata 'lumicap' (JSON)", WeightsError), path)


def _check_metadata(metadata: Any, path: Path) -> dict:
    if not isinstance(metadata, dict) or not isinstance(metadata.get("model"), str):
        raise WeightsError(f"{path}: expected a JSON object with a string 'model' (the registry model name)")
    if not isinstance(metadata.get("overrides", {}) or {}, dict):
        raise WeightsError(f"{path}: 'overrides' must be a JSON object of constructor arguments")
    return metadata


def _require_registry_name(name: str) -> None:
    known = {info.name for info in list_models()}
    if model_key(name) not in known:
        looks_like_path = os.sep in name or "." in Path(name).name
        if looks_like_path:
            raise WeightsError(f"{name}: no such file")
        shipped = ", ".join(SHIPPED_MODELS)
        raise LumicapError(
            f"unknown model '{name}': not a file, a shipped model ({shipped}), official weights by name "
            f"(e.g. iat-lol-v1-official) or a network ({', '.join(sorted(known))}: with --weights FILE); "
            f"'lumicap models' lists every name --model takes"
        )


def trained_names_for(network: str) -> list[str]:
    """Names that load trained weights of registry network ``network``: the shipped models built on it
    (their sidecars say which network) and the official pretrained weights of it."""
    key = model_key(network)
    names = []
    for name, filename in SHIPPED_MODELS.items():
        sidecar = (ASSETS_DIR / filename).with_suffix(".json")
        try:
            record = read_json(sidecar, what="JSON sidecar") if sidecar.is_file() else {}
        except LumicapError:
            continue  # a broken sidecar is reported when that model is loaded
        if isinstance(record, dict) and isinstance(record.get("model"), str) and model_key(record["model"]) == key:
            names.append(f"{name} (shipped)")
    names += [
        f"{name} (the authors')" for name, entry in sorted(OFFICIAL_MODELS.items()) if model_key(entry.model) == key
    ]
    return names


def _build(name: str, overrides: dict, source: str) -> nn.Module:
    try:
        return build_model(name, **overrides)
    except LumicapError as exc:
        raise WeightsError(f"{shown(source)}: cannot build the model it names ({exc})") from None


def _load_weights(module: nn.Module, state: dict[str, torch.Tensor], name: str, source: str):
    """Load ``state`` into ``module``: as a lumicap state dict, else as the model's official layout
    (``lumicap.models.official``), whichever fits; returns the ``Conversion`` for an official file."""
    expected = module.state_dict()
    candidate = official.fit_to_model(official.strip_wrapper_prefixes(state, set(expected)), module)
    problems = official.fit_problems(candidate, expected)
    conversion, read_as, unknown = None, None, []
    fmt = official.official_format(name) if any(problems) else None
    if fmt is not None:
        try:
            converted = official.convert(fmt, state, module)
        except WeightsError as exc:
            raise WeightsError(f"{source}: {exc}") from None
        fitted = official.fit_to_model(converted.state, module)
        official_problems = official.fit_problems(fitted, expected)
        if not any(official_problems) and not converted.unknown:
            candidate, problems, conversion = fitted, official_problems, converted
        elif len(official_problems[0]) < len(problems[0]):  # the official reading found more of the model
            candidate, problems, read_as, unknown = fitted, official_problems, fmt.description, converted.unknown
    missing, unexpected, mismatched = problems
    unexpected = unknown + unexpected
    if missing or unexpected or mismatched:
        raise WeightsError(_misfit_message(source, name, candidate, expected, missing, unexpected, mismatched, read_as))
    bad = [k for k, v in candidate.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise WeightsError(f"{source}: weights contain NaN or infinite values (e.g. {bad[0]})")
    module.load_state_dict(candidate, strict=True)
    return conversion


def _misfit_message(source, name, state, expected, missing, unexpected, mismatched, read_as) -> str:
    parts = []
    if mismatched:
        k = mismatched[0]
        parts.append(
            f"{len(mismatched)} shape mismatches (e.g. {k}: file {tuple(state[k].shape)}, model "
            f"{tuple(expected[k].shape)})"
        )
    if missing:
        parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:2])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:2])})")
    how = f" (read as the {read_as})" if read_as else ""
    hint = ""
    if mismatched and not missing and not unexpected:
        hint = "; a checkpoint of another size needs the model's constructor overrides (overrides=... / --override)"
    return f"{source}: weights do not fit model '{name}'{how}: {'; '.join(parts)}{hint}"


# ----------------------------------------------------------------------------------------------- writing


def save_inference_model(
    path: str | os.PathLike,
    model_name: str,
    state_dict: dict[str, torch.Tensor],
    overrides: dict | None = None,
    overwrite: bool = False,
    **record: Any,
) -> tuple[Path, Path]:
    """Write ``path`` (.safetensors) and its ``.json`` sidecar so ``load_inference_model(path)`` can rebuild it.

    ``record`` is free-form JSON (training command, data, metrics) kept in the sidecar and in the
    safetensors header. Existing files are refused unless ``overwrite``. Returns (weights, sidecar).
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise LumicapError(f"{path}: inference models are saved as .safetensors")
    sidecar = path.with_suffix(".json")
    for existing in (path, sidecar):
        if existing.exists() and not overwrite:
            raise LumicapError(f"{existing}: already exists (pass overwrite=True to replace it)")
        if os.path.lexists(existing) and not existing.is_file():
            raise LumicapError(f"{existing}: exists and is not a file; nothing was written")
    metadata = {
        "format": SIDECAR_FORMAT,
        "version": 1,
        "model": model_name,
        "overrides": dict(overrides or {}),
        **record,
    }
    text = json.dumps(metadata, indent=2, sort_keys=False)
    # safetensors wants contiguous tensors that share no storage.
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    # Both files are complete beside their targets before either is renamed into place (the sidecar first, then
    # the weights); a failure on the way removes both temporaries: weights without their sidecar (or the reverse)
    # cannot be loaded, so it is both or neither.
    with replacing(path) as weights_tmp, replacing(sidecar) as sidecar_tmp:
        weights_tmp.write_bytes(save(tensors, metadata={"lumicap": json.dumps(metadata)}))
        sidecar_tmp.write_text(text + "\n")
    return path, sidecar


def export_checkpoint(
    checkpoint: str | os.PathLike, path: str | os.PathLike, overwrite: bool = False, **record: Any
) -> tuple[Path, Path]:
    """Convert a lumicap training checkpoint into ``path`` (.safetensors) + sidecar, checking it loads."""
    loaded = _from_checkpoint(Path(checkpoint))
    module = _build(loaded.name, loaded.overrides, str(checkpoint))
    _load_weights(module, loaded.state, loaded.name, str(checkpoint))
    extra = {k: v for k, v in loaded.metadata.items() if k not in ("model", "overrides")}
    return save_inference_model(
        path, loaded.name, module.state_dict(), loaded.overrides, overwrite=overwrite, **{**extra, **record}
    )
