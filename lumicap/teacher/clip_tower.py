"""Load a CLIP image tower from whatever form its weights come in.

``load_clip_image_encoder(spec)`` accepts

- OpenAI's original files (``ViT-B-32.pt``, ``RN50x4.pt``): a TorchScript archive (read without running
  its code, see ``torchscript_archive``) or a plain state dict, with ``visual.*`` keys (a state dict of
  the bare tower, without the prefix, works too). ViTs are converted to transformers'
  ``CLIPVisionModelWithProjection``; ResNets load into lumicap's ``ModifiedResNet`` as they are.
  fp16 weights (OpenAI ships them so) are cast to fp32.
- a Hugging Face checkpoint: a folder in the ``openai/clip-vit-base-patch32`` layout (``config.json``
  of a full ``CLIPModel`` or of a vision model, and ``model.safetensors`` or ``pytorch_model.bin``), or
  such a weights file alone (sizes are then read from the tensors, heads = width // 64 unless given).
- a known weights name (``lumicap weights list``), resolved through the cache.

The returned module maps normalised pixels ``(B, 3, image_size, image_size)`` to embeddings
``(B, output_dim)`` and carries ``image_size`` and ``output_dim``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from lumicap.errors import WeightsError
from lumicap.teacher.clip_resnet import build_resnet, resnet_config_from_state_dict
from lumicap.teacher.clip_vit import CLIPViTTower, load_exactly, openai_vit_to_hf, vit_config_from_openai
from lumicap.teacher.torchscript_archive import is_torchscript_archive, read_torchscript_state_dict
from lumicap.weights import load_state_dict, resolve_weights

_HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def read_weights_file(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file, a torch pickle (weights only) or a TorchScript archive."""
    if path.suffix not in (".safetensors",) and is_torchscript_archive(path):
        return read_torchscript_state_dict(path)
    state = load_state_dict(path)
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise WeightsError(f"{path}: holds no tensors")
    return tensors


def load_clip_image_encoder(
    spec: str | os.PathLike,
    config: str | os.PathLike | dict | None = None,
    heads: int | None = None,
    download: bool = True,
    cache_root: Path | None = None,
) -> nn.Module:
    """Build and load a CLIP image tower; see the module docstring for what ``spec`` may be.

    ``config``: a Hugging Face ``config.json`` (path, known name or dict) for a bare weights file.
    ``heads``: attention heads, when neither a config nor OpenAI's width // 64 rule applies.
    """
    path = resolve_weights(spec, download=download, root=cache_root)
    if path.is_dir():
        config_path = path / "config.json"
        weights = next((path / name for name in _HF_WEIGHT_FILES if (path / name).is_file()), None)
        if weights is None:
            raise WeightsError(f"{path}: folder has neither {' nor '.join(_HF_WEIGHT_FILES)}")
        if config is None and config_path.is_file():
            config = config_path
        path = weights
    state = read_weights_file(path)
    if isinstance(config, (str, os.PathLike)):
        config = _read_json(resolve_weights(config, download=download, root=cache_root))
    if any(k.startswith("visual.") for k in state):
        visual = {k[len("visual.") :]: v for k, v in state.items() if k.startswith("visual.")}
        return _from_openai(visual, heads, str(path))
    if any(k.startswith("vision_model.") for k in state):
        return _from_hf(state, config, heads, str(path))
    if "conv1.weight" in state and ("proj" in state or "attnpool.c_proj.weight" in state):
        return _from_openai(state, heads, str(path))  # a bare OpenAI tower without the "visual." prefix
    raise WeightsError(
        f"{path}: neither OpenAI CLIP ('visual.*') nor Hugging Face CLIP ('vision_model.*') weights"
    )


def _read_json(path: Path) -> dict:
    from lumicap.jsonfile import expect_object, read_json

    return expect_object(read_json(path, what="JSON config", error=WeightsError), path, "config file", WeightsError)


def _from_openai(visual: dict[str, torch.Tensor], heads: int | None, source: str) -> nn.Module:
    if "proj" in visual:
        try:
            config = vit_config_from_openai(visual, heads)
            converted = openai_vit_to_hf(visual)
        except KeyError as exc:
            raise WeightsError(f"{source}: OpenAI ViT weights lack 'visual.{exc.args[0]}'") from None
        tower = CLIPViTTower(config)
        tower.load_hf_state_dict(converted, source)
        return tower.eval()
    if "attnpool.c_proj.weight" in visual:
        try:
            config = resnet_config_from_state_dict(visual)
        except KeyError as exc:
            raise WeightsError(f"{source}: OpenAI ResNet weights lack 'visual.{exc.args[0]}'") from None
        if heads:
            config["heads"] = heads
        tower = build_resnet(config)
        load_exactly(tower, visual, source)
        return tower.eval()
    raise WeightsError(
        f"{source}: 'visual.*' weights are neither a CLIP ViT ('visual.proj') nor a ResNet ('visual.attnpool')"
    )


def _from_hf(state: dict[str, torch.Tensor], config: dict | None, heads: int | None, source: str) -> nn.Module:
    vision = dict((config or {}).get("vision_config") or (config or {}))
    try:
        patch = state["vision_model.embeddings.patch_embedding.weight"]
        positions = state["vision_model.embeddings.position_embedding.weight"].shape[0]
        layers = {int(k.split(".")[3]) for k in state if k.startswith("vision_model.encoder.layers.")}
        width = patch.shape[0]
        sizes = {
            "hidden_size": width,
            "patch_size": patch.shape[-1],
            "image_size": round((positions - 1) ** 0.5) * patch.shape[-1],
            "num_hidden_layers": len(layers),
            "intermediate_size": state["vision_model.encoder.layers.0.mlp.fc1.weight"].shape[0],
            "projection_dim": state["visual_projection.weight"].shape[0],
        }
    except KeyError as exc:
        raise WeightsError(f"{source}: Hugging Face CLIP weights lack '{exc.args[0]}'") from None
    merged = {
        "hidden_act": vision.get("hidden_act", "quick_gelu"),
        "layer_norm_eps": vision.get("layer_norm_eps", 1e-5),
        "num_attention_heads": heads or vision.get("num_attention_heads") or max(1, width // 64),
        **sizes,
    }
    tower = CLIPViTTower(merged)
    tower.load_hf_state_dict(state, source)
    return tower.eval()
