"""CLIP's vision transformer (ViT-B/32 for the MLP ClipCap models) through transformers.

The module is ``transformers.CLIPVisionModelWithProjection``; weights come either from a Hugging Face
checkpoint (``vision_model.*`` + ``visual_projection.weight``, alone or inside a full ``CLIPModel``) or
from OpenAI's original files, whose ``visual.*`` layout is converted here:

=====================================  ==============================================================
OpenAI ``visual.``                      transformers ``vision_model.`` (+ ``visual_projection``)
=====================================  ==============================================================
conv1.weight                            embeddings.patch_embedding.weight (no bias in either)
class_embedding                         embeddings.class_embedding
positional_embedding                    embeddings.position_embedding.weight
ln_pre                                  pre_layrnorm (sic)
transformer.resblocks.N.attn.in_proj_*  encoder.layers.N.self_attn.{q,k,v}_proj.* (rows q | k | v)
transformer.resblocks.N.attn.out_proj   encoder.layers.N.self_attn.out_proj
transformer.resblocks.N.ln_1 / ln_2     encoder.layers.N.layer_norm1 / layer_norm2
transformer.resblocks.N.mlp.c_fc/c_proj encoder.layers.N.mlp.fc1 / fc2 (QuickGELU between)
ln_post                                 post_layernorm
proj (width x out, used as x @ proj)    visual_projection.weight (out x width: transposed)
=====================================  ==============================================================
"""

from __future__ import annotations

import torch
from torch import nn

from lumicap.errors import WeightsError

# OpenAI ViT-B/32: 224 px, patch 32, width 768, 12 layers, 12 heads, 512-d embedding.
VIT_B32_CONFIG = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "projection_dim": 512,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "image_size": 224,
    "patch_size": 32,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
}

_VISION_CONFIG_KEYS = tuple(VIT_B32_CONFIG) + ("num_channels",)


class CLIPViTTower(nn.Module):
    """Pixels (normalised, image_size x image_size) -> projected image embedding (B, projection_dim)."""

    def __init__(self, config: dict):
        super().__init__()
        from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

        config = {k: v for k, v in config.items() if k in _VISION_CONFIG_KEYS}
        self.model = CLIPVisionModelWithProjection(CLIPVisionConfig(**config))
        self.image_size = int(config["image_size"])
        self.output_dim = int(config["projection_dim"])

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixels).image_embeds

    def load_hf_state_dict(self, state: dict[str, torch.Tensor], source: str) -> None:
        wanted = {k: v for k, v in state.items() if k.startswith(("vision_model.", "visual_projection."))}
        if not wanted:
            raise WeightsError(f"{source}: no 'vision_model.*' keys; not a Hugging Face CLIP checkpoint")
        load_exactly(self.model, wanted, source, optional_prefixes=("vision_model.embeddings.position_ids",))


def vit_config_from_openai(state: dict[str, torch.Tensor], heads: int | None = None) -> dict:
    """Architecture of an OpenAI ViT from its (``visual.``-stripped) weights.

    The head count is not stored in the tensors; OpenAI's loader uses width // 64 (ViT-B/32: 12).
    """
    width, _, patch, _ = state["conv1.weight"].shape
    layers = len({k.split(".")[2] for k in state if k.startswith("transformer.resblocks.")})
    grid = round((state["positional_embedding"].shape[0] - 1) ** 0.5)
    return {
        "hidden_size": width,
        "intermediate_size": state["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        "projection_dim": state["proj"].shape[1],
        "num_hidden_layers": layers,
        "num_attention_heads": heads or max(1, width // 64),
        "image_size": grid * patch,
        "patch_size": patch,
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-5,
    }


def openai_vit_to_hf(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename/split OpenAI ``visual.*`` ViT weights (prefix already stripped) to transformers' keys."""
    out: dict[str, torch.Tensor] = {
        "vision_model.embeddings.patch_embedding.weight": state["conv1.weight"],
        "vision_model.embeddings.class_embedding": state["class_embedding"],
        "vision_model.embeddings.position_embedding.weight": state["positional_embedding"],
        "vision_model.pre_layrnorm.weight": state["ln_pre.weight"],
        "vision_model.pre_layrnorm.bias": state["ln_pre.bias"],
        "vision_model.post_layernorm.weight": state["ln_post.weight"],
        "vision_model.post_layernorm.bias": state["ln_post.bias"],
        "visual_projection.weight": state["proj"].t().contiguous(),
    }
    renames = {
        "attn.out_proj": "self_attn.out_proj",
        "ln_1": "layer_norm1",
        "ln_2": "layer_norm2",
        "mlp.c_fc": "mlp.fc1",
        "mlp.c_proj": "mlp.fc2",
    }
    blocks = sorted({int(k.split(".")[2]) for k in state if k.startswith("transformer.resblocks.")})
    for n in blocks:
        src = f"transformer.resblocks.{n}."
        dst = f"vision_model.encoder.layers.{n}."
        # nn.MultiheadAttention stacks the query, key and value projections row-wise in that order.
        for kind in ("weight", "bias"):
            q, k, v = state[f"{src}attn.in_proj_{kind}"].chunk(3, dim=0)
            out[f"{dst}self_attn.q_proj.{kind}"] = q
            out[f"{dst}self_attn.k_proj.{kind}"] = k
            out[f"{dst}self_attn.v_proj.{kind}"] = v
        for old, new in renames.items():
            for kind in ("weight", "bias"):
                out[f"{dst}{new}.{kind}"] = state[f"{src}{old}.{kind}"]
    return out


def load_exactly(module: nn.Module, state: dict[str, torch.Tensor], source: str, optional_prefixes=()) -> None:
    """``load_state_dict`` that names the first missing/unexpected/mis-shaped key in a one-line error."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state and not k.startswith(tuple(optional_prefixes))]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        what = f"missing key '{missing[0]}'" if missing else f"unexpected key '{unexpected[0]}'"
        count = len(missing) + len(unexpected)
        raise WeightsError(f"{source}: {what} ({count} key(s) differ); the file does not fit this architecture")
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise WeightsError(
                f"{source}: '{key}' has shape {tuple(tensor.shape)}, expected {tuple(expected[key].shape)}"
            )
    module.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=False)
