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
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lumicap.errors import LumicapError, WeightsError, shown
from lumicap.userfiles import not_regular

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
        from lumicap.inference.highlights import HighlightProtection

        if isinstance(self.module, HighlightProtection):
            text += f"; highlights protected from {self.module.start:g} to {self.module.end:g}"
        return text


def resolve_device(device: str | torch.device | None) -> torch.device:
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
) -> InferenceModel:
    """Build and load the network named or stored by ``spec``; see the module docstring for the forms.

    ``network_megapixels``: for networks that predict a transform (IAT), run the network on at most this many
    megapixels and apply its transform at full resolution (``lumicap.inference.fullres``); 0 turns it off.
    None: what the model's sidecar says (``"inference": {"network_megapixels": X}``), else off.
    ``highlight_protection``: blend the result back towards the input where the input is already bright
    (``lumicap.inference.highlights``); None: what the sidecar says (``"highlight_protection": true`` or
    ``[start, end]``), else off; False: off (the bare network, e.g. for export); True: on (the sidecar's ramp
    or the default one).
    ``overrides`` (constructor arguments of ``build_model``) are applied over those the file records.
    """
    text = None if spec is None else os.fspath(spec)
    if text is not None and text.lower().endswith(".onnx"):
        return _from_onnx(Path(text).expanduser(), device, weights)
    target = resolve_device(device)
    if text is None or text in SHIPPED_MODELS:
        if weights is not None:
            raise LumicapError("--weights needs --model NAME (the registry model the weights belong to)")
        name, base, state, metadata, source = _from_shipped(text or "default")
    elif weights is not None:
        name, base, state, metadata, source = _from_name_and_weights(text, weights)
    elif _official_model(text) is not None:
        name, base, state, metadata, source = _from_official_model(text)
    else:
        path = Path(text).expanduser()
        if path.is_dir():
            path = _checkpoint_in_run_folder(path)
        if path.suffix == ".safetensors":
            name, base, state, metadata, source = _from_safetensors(path)
        elif path.suffix in CHECKPOINT_SUFFIXES or path.is_file():
            name, base, state, metadata, source = _from_checkpoint(path)
        else:
            _require_registry_name(text)
            raise LumicapError(
                f"model '{text}' needs weights: add --weights FILE (a state dict for '{text}'), "
                f"or pass a .safetensors file with its .json sidecar or a lumicap training checkpoint"
            )
    all_overrides = {**base, **dict(overrides or {})}
    module = _build(name, all_overrides, source)
    conversion = _load_weights(module, state, name, source)
    metadata = {**metadata, "overrides": all_overrides}
    if conversion is not None:
        metadata["official_format"] = conversion.description
        metadata["official_keys_left_out"] = conversion.ignored_keys
    module = _with_full_resolution_transform(module, network_megapixels, metadata, source)
    module = _with_highlight_protection(module, highlight_protection, metadata, source)
    module.to(target).eval()
    note = conversion.note() if conversion is not None else None
    return InferenceModel(module=module, name=name, source=source, device=target, metadata=metadata, note=note)


def load_weights_into(module: nn.Module, name: str, weights: str | os.PathLike):
    """Load ``weights`` (any file or catalogue name ``load_inference_model`` takes with a model name) into
    an already built ``module`` of registry model ``name`` (fine-tuning starts); returns the official
    ``Conversion`` when the file was an official checkpoint, else None."""
    text = os.fspath(weights)
    if _official_model(text) is not None:
        _, _, state, _, source = _from_official_model(text)
    elif text in SHIPPED_MODELS:  # a model in the package (a recipe may continue one)
        _, _, state, _, source = _from_shipped(text)
    else:
        from lumicap.weights import resolve_weights

        path = resolve_weights(text, download=True)
        state, source = read_weights(path), str(path)
    return _load_weights(module, state, name, source)


def read_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from a weight file (safetensors, torch pickle read with ``weights_only=True``, wrapped
    or not) or a TensorFlow checkpoint (file, prefix or folder; needs the ``tf`` extra)."""
    from lumicap.models.official.tf_checkpoint import is_tf_checkpoint, read_tf_checkpoint
    from lumicap.weights import load_state_dict

    path = Path(path).expanduser()
    if is_tf_checkpoint(path):
        return read_tf_checkpoint(path)
    if path.is_dir():
        raise WeightsError(f"{path}: a folder, not a weight file (nor a TensorFlow checkpoint folder)")
    return load_state_dict(path)


def _with_full_resolution_transform(module: nn.Module, megapixels: float | None, metadata: dict, source: str) -> nn.Module:
    from lumicap.inference.fullres import FullResolutionTransform, supports_full_resolution_transform

    from lumicap.options import NETWORK_MEGAPIXELS_RANGE, check_finite

    if megapixels is None:
        settings = metadata.get("inference") if isinstance(metadata, dict) else None
        megapixels = settings.get("network_megapixels") if isinstance(settings, dict) else None
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
            f"--network-megapixels needs a network that predicts a transform (IAT); {type(module).__name__} paints pixels"
        )
    return FullResolutionTransform(module, float(megapixels))


def _with_highlight_protection(module: nn.Module, wanted: bool | None, metadata: dict, source: str) -> nn.Module:
    from lumicap.inference.highlights import DEFAULT_RAMP, HighlightProtection, parse_ramp

    settings = metadata.get("inference") if isinstance(metadata, dict) else None
    try:
        ramp = parse_ramp(settings.get("highlight_protection") if isinstance(settings, dict) else None, source)
    except ValueError as exc:
        raise WeightsError(str(exc)) from None
    if wanted is False or (wanted is None and ramp is None):
        return module
    return HighlightProtection(module, *(ramp or DEFAULT_RAMP))


def _from_onnx(path: Path, device, weights) -> InferenceModel:
    from lumicap.inference.onnx_model import OnnxEnhancer

    if weights is not None:
        raise LumicapError(f"{path}: an ONNX file holds its weights; drop --weights")
    if device is not None and str(device) not in ("auto", "cpu"):
        raise LumicapError(f"{path}: ONNX models run on the CPU through ONNX Runtime; drop --device {device}")
    enhancer = OnnxEnhancer(path)
    name = enhancer.metadata.get("lumicap_model", "onnx")
    return InferenceModel(module=enhancer, name=name, source=str(path), device=torch.device("cpu"),
                          metadata=dict(enhancer.metadata))


# ----------------------------------------------------------------------------------------------- sources


def _from_shipped(key: str):
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


def _from_safetensors(path: Path, source: str | None = None):
    if not path.is_file():
        raise WeightsError(not_regular(path) or f"{path}: no such file")
    sidecar = path.with_suffix(".json")
    metadata = _read_sidecar(sidecar) if sidecar.is_file() else _read_header_metadata(path)
    if metadata is None:
        raise WeightsError(
            f"{path}: no sidecar {sidecar.name} saying which model these weights are for; "
            f"pass --model NAME --weights {path}"
        )
    from lumicap.weights import load_state_dict

    state = load_state_dict(path)
    return metadata["model"], metadata.get("overrides") or {}, state, metadata, source or str(path)


def _from_name_and_weights(name: str, weights: str | os.PathLike):
    if _official_model(name) is not None:  # "--model iat-lol-v1-official --weights FILE": FILE is such a file
        name = _official_model(name).model
    _require_registry_name(name)
    if _official_model(os.fspath(weights)) is not None:
        model, _, state, metadata, source = _from_official_model(os.fspath(weights))
        if _registry_key(model) != _registry_key(name):
            raise WeightsError(f"weights '{os.fspath(weights)}' are for model '{model}', not '{name}'")
        return name, {}, state, metadata, source
    from lumicap.weights import resolve_weights

    path = resolve_weights(weights, download=True)
    if path.suffix in CHECKPOINT_SUFFIXES and path.is_file():
        # A training checkpoint given with an explicit name: keep its overrides when it names the same model.
        raw = _torch_load(path)
        if isinstance(raw, dict) and isinstance(raw.get("model"), dict) and "config" in raw:
            ck_name, overrides = _model_from_config(raw["config"], path)
            if ck_name is not None and _registry_key(ck_name) != _registry_key(name):
                raise WeightsError(f"{path}: checkpoint is for model '{ck_name}', not '{name}'")
            state, which = _checkpoint_weights(raw, path)
            return name, overrides, state, {"model": name, "overrides": overrides, "weights": which}, str(path)
    return name, {}, read_weights(path), {"model": name}, str(path)


def _official_model(text: str):
    from lumicap.weights_catalog import official_model

    return official_model(text)


def _from_official_model(text: str):
    """A catalogue name of official pretrained weights: its model, and its file(s) from the cache."""
    from lumicap.weights import ensure_weights

    entry = _official_model(text)
    found = ensure_weights(entry.files, download=True, needed_by=f"model '{entry.name}'", fetch_names=[entry.name])
    paths = [found[file] for file in entry.files]
    if entry.tf_folders:
        from lumicap.models.official.tf_checkpoint import read_tf_checkpoint_files

        parts = {folder: (paths[2 * i], paths[2 * i + 1]) for i, folder in enumerate(entry.tf_folders)}
        state, source = read_tf_checkpoint_files(parts), f"{entry.name} ({paths[0].parent.parent})"
    else:
        state, source = read_weights(paths[0]), str(paths[0])
    return entry.model, {}, state, {"model": entry.model, "weights": entry.name}, source


def _from_checkpoint(path: Path):
    if not path.is_file():
        raise WeightsError(not_regular(path) or f"{path}: no such file")
    raw = _torch_load(path)
    if not isinstance(raw, dict) or "model" not in raw or "config" not in raw:
        keys = ", ".join(sorted(map(str, raw))[:6]) if isinstance(raw, dict) else type(raw).__name__
        raise WeightsError(
            f"{path}: not a lumicap training checkpoint (expected keys 'model' and 'config', found {keys}); "
            f"for a bare state dict pass --model NAME --weights {path}"
        )
    name, overrides = _model_from_config(raw["config"], path)
    if name is None:
        raise WeightsError(f"{path}: the checkpoint's config names no model (config.model.name)")
    state, which = _checkpoint_weights(raw, path)
    metadata = {"model": name, "overrides": overrides, "weights": which}
    for key in ("kind", "iteration", "best", "selected_on"):
        if key in raw and isinstance(raw[key], (int, float, str, dict)):
            metadata[key] = raw[key]
    return name, overrides, state, metadata, str(path)


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
    return _tensors_only(raw["model"], path), "model"


# ----------------------------------------------------------------------------------------------- helpers


def _torch_load(path: Path) -> Any:
    from lumicap.weights import torch_load_failure

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"{shown(path)}: {torch_load_failure(exc)}") from None


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
    from lumicap.jsonfile import read_json

    return _check_metadata(read_json(path, what="JSON sidecar", error=WeightsError), path)


def _read_header_metadata(path: Path) -> dict | None:
    """The same record stored in the safetensors header (``__metadata__["lumicap"]``), if any."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
    except Exception:
        return None  # load_state_dict reports an unreadable file with the proper message
    if "lumicap" not in header:
        return None
    from lumicap.jsonfile import parse_json

    return _check_metadata(parse_json(header["lumicap"], path, "header metadata 'lumicap' (JSON)", WeightsError), path)


def _check_metadata(metadata: Any, path: Path) -> dict:
    if not isinstance(metadata, dict) or not isinstance(metadata.get("model"), str):
        raise WeightsError(f"{path}: expected a JSON object with a string 'model' (the registry model name)")
    if not isinstance(metadata.get("overrides", {}) or {}, dict):
        raise WeightsError(f"{path}: 'overrides' must be a JSON object of constructor arguments")
    return metadata


def _registry_key(name: str) -> str:
    return name.lower().replace("-", "_")


def _require_registry_name(name: str) -> None:
    from lumicap.models import list_models

    known = {info.name for info in list_models()}
    if _registry_key(name) not in known:
        looks_like_path = os.sep in name or "." in Path(name).name
        if looks_like_path:
            raise WeightsError(f"{name}: no such file")
        raise LumicapError(f"unknown model '{name}'; known models: {', '.join(sorted(known)) or 'none'}")


def _build(name: str, overrides: dict, source: str) -> nn.Module:
    from lumicap.models import build_model

    try:
        return build_model(name, **overrides)
    except LumicapError as exc:
        raise WeightsError(f"{shown(source)}: cannot build the model it names ({exc})") from None


def _load_weights(module: nn.Module, state: dict[str, torch.Tensor], name: str, source: str):
    """Load ``state`` into ``module``: as a lumicap state dict, else as the model's official layout
    (``lumicap.models.official``), whichever fits; returns the ``Conversion`` for an official file."""
    from lumicap.models import official

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
            f"{len(mismatched)} shape mismatches (e.g. {k}: file {tuple(state[k].shape)}, model {tuple(expected[k].shape)})"
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
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise LumicapError(f"{path}: inference models are saved as .safetensors")
    sidecar = path.with_suffix(".json")
    for existing in (path, sidecar):
        if existing.exists() and not overwrite:
            raise LumicapError(f"{existing}: already exists (pass overwrite=True to replace it)")
        if os.path.lexists(existing) and not existing.is_file():
            raise LumicapError(f"{existing}: exists and is not a file; nothing was written")
    metadata = {"format": SIDECAR_FORMAT, "version": 1, "model": model_name, "overrides": dict(overrides or {}), **record}
    text = json.dumps(metadata, indent=2, sort_keys=False)
    # safetensors wants contiguous tensors that share no storage.
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    # Both files are complete beside their targets before either is renamed into place: weights without
    # their sidecar (or the reverse) cannot be loaded, so it is both or neither.
    temporaries = []
    try:
        temporaries = [_temp_beside(path), _temp_beside(sidecar)]
        save_file(tensors, str(temporaries[0]), metadata={"lumicap": json.dumps(metadata)})
        temporaries[1].write_text(text + "\n")
        os.replace(temporaries[0], path)
        os.replace(temporaries[1], sidecar)
    finally:
        for tmp in temporaries:
            tmp.unlink(missing_ok=True)
    return path, sidecar


def export_checkpoint(
    checkpoint: str | os.PathLike, path: str | os.PathLike, overwrite: bool = False, **record: Any
) -> tuple[Path, Path]:
    """Convert a lumicap training checkpoint into ``path`` (.safetensors) + sidecar, checking it loads."""
    name, overrides, state, metadata, _ = _from_checkpoint(Path(checkpoint))
    module = _build(name, overrides, str(checkpoint))
    _load_weights(module, state, name, str(checkpoint))
    extra = {k: v for k, v in metadata.items() if k not in ("model", "overrides")}
    return save_inference_model(path, name, module.state_dict(), overrides, overwrite=overwrite, **{**extra, **record})


def _temp_beside(path: Path) -> Path:
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    return Path(name)
