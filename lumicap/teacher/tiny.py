"""Random ClipCap teachers saved in the real file formats, for tests (tiny) and benchmarks (full size).

``save_tiny_teacher(directory, variant)`` writes, in well under two seconds:

- ``tokenizer/``: a byte-level BPE trained offline on a few captions (``tokenizer.json``, ``vocab.json``,
  ``merges.txt``);
- the CLIP tower: for ``variant="mlp"`` a ViT as a Hugging Face folder ``clip/`` written by
  ``CLIPModel.save_pretrained`` (the ``openai/clip-vit-base-patch32`` layout: full CLIP config + text
  tower) or, with ``clip_format="openai"``, an OpenAI-style ``clip_visual.pt`` (``visual.*`` keys, fp16,
  plus the text keys and the ``input_resolution``/``context_length``/``vocab_size`` entries of OpenAI's
  state dicts); for ``variant="transformer"`` a modified ResNet in OpenAI's layout;
- ``clipcap.pt``: the ClipCap state dict. MLP variant: ``clip_project.model.{0,2}`` and the GPT-2 under
  ``gpt.*`` with the legacy ``attn.bias`` (uint8 causal mask) and ``attn.masked_bias`` buffers, as in
  ``coco_weights.pt``. Transformer variant: ``clip_project.*`` only; its frozen GPT-2 is a separate
  Hugging Face checkpoint ``gpt2/model.safetensors`` (bare ``h.N.*`` keys with the legacy buffers);
- ``teacher.json``: the manifest ``ClipCapTeacher.from_pretrained(directory)`` reads.

``save_random_teacher(..., full_size=True)`` writes the real sizes instead (ViT-B/32 or RN50x4,
10 x 768 MLP or the 40-token transformer mapper, GPT-2 124M) with the same tiny tokenizer.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from lumicap.teacher.clip_resnet import RN50X4_CONFIG, build_resnet
from lumicap.teacher.clip_vit import VIT_B32_CONFIG
from lumicap.teacher.clipcap import MANIFEST_FORMAT, MANIFEST_NAME
from lumicap.teacher.gpt2 import GPT2_SMALL_CONFIG
from lumicap.teacher.mapping import MLPMapper, TransformerMapper
from lumicap.teacher.tokenizer import train_tiny_tokenizer

TINY_VIT = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "projection_dim": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": 32,
    "patch_size": 8,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
}
TINY_RESNET = {"layers": (1, 1, 1, 1), "width": 8, "heads": 4, "output_dim": 32, "image_size": 64}
TINY_GPT2 = {"n_layer": 2, "n_head": 2, "n_embd": 32, "n_positions": 128}
TINY_PREFIX = {
    "mlp": {"prefix_length": 4},
    "transformer": {"prefix_length": 4, "clip_length": 3, "num_layers": 2, "num_heads": 2},
}
FULL_PREFIX = {
    "mlp": {"prefix_length": 10},
    "transformer": {"prefix_length": 40, "clip_length": 40, "num_layers": 8, "num_heads": 8},
}


def save_tiny_teacher(directory: str | Path, variant: str = "mlp", seed: int = 0, clip_format: str = "hf") -> Path:
    """Write a tiny random teacher in the real formats to ``directory``; returns the directory."""
    return save_random_teacher(directory, variant=variant, seed=seed, clip_format=clip_format, full_size=False)


def save_random_teacher(
    directory: str | Path, variant: str = "mlp", seed: int = 0, clip_format: str = "hf", full_size: bool = False
) -> Path:
    if variant not in ("mlp", "transformer"):
        raise ValueError(f"variant must be 'mlp' or 'transformer', got {variant!r}")
    if clip_format not in ("hf", "openai"):
        raise ValueError(f"clip_format must be 'hf' or 'openai', got {clip_format!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        tokenizer_dir = train_tiny_tokenizer(directory / "tokenizer")
        vocab_size = json.loads((tokenizer_dir / "tokenizer.json").read_text())["model"]["vocab"].__len__()
        gpt_config = dict(GPT2_SMALL_CONFIG) if full_size else {**TINY_GPT2, "vocab_size": vocab_size}
        gpt_state = _random_gpt2_state(gpt_config, eos_token_id=0 if not full_size else 50256)
        mapping = dict(FULL_PREFIX[variant] if full_size else TINY_PREFIX[variant])
        prefix_length = mapping.pop("prefix_length")
        manifest: dict = {
            "format": MANIFEST_FORMAT,
            "version": 1,
            "name": f"random-{variant}-{'full' if full_size else 'tiny'}",
            "description": "random weights (tests/benchmarks), real file formats",
            "prefix_length": prefix_length,
            "normalize_clip": variant == "transformer",
            "gpt2": {"n_head": gpt_config["n_head"]},
            "tokenizer": "tokenizer/tokenizer.json",
        }
        if variant == "mlp":
            vit = dict(VIT_B32_CONFIG if full_size else TINY_VIT)
            clip_dim = vit["projection_dim"]
            if clip_format == "hf":
                _save_hf_clip(directory / "clip", vit)
                manifest["clip"] = {"weights": "clip"}
            else:
                torch.save(_openai_vit_state(vit), directory / "clip_visual.pt")
                manifest["clip"] = {"weights": "clip_visual.pt", "heads": vit["num_attention_heads"]}
            mapper = MLPMapper(clip_dim, gpt_config["n_embd"], prefix_length)
            manifest["mapping"] = {"type": "mlp"}
            clipcap = {f"clip_project.{k}": v for k, v in mapper.state_dict().items()}
            clipcap.update({f"gpt.{k}": v for k, v in gpt_state.items()})
            for layer in range(gpt_config["n_layer"]):  # buffers that old transformers saved
                n = gpt_config["n_positions"]
                causal = torch.tril(torch.ones(n, n, dtype=torch.uint8)).view(1, 1, n, n)
                clipcap[f"gpt.transformer.h.{layer}.attn.bias"] = causal
                clipcap[f"gpt.transformer.h.{layer}.attn.masked_bias"] = torch.tensor(-1e4)
        else:
            resnet = dict(RN50X4_CONFIG if full_size else TINY_RESNET)
            torch.save(_openai_resnet_state(resnet), directory / "clip_visual.pt")
            manifest["clip"] = {"weights": "clip_visual.pt"}
            mapper = TransformerMapper(resnet["output_dim"], gpt_config["n_embd"], prefix_length, **mapping)
            with torch.no_grad():
                # Untrained constants (randn) would drown the image tokens of a unit-norm embedding; a
                # trained mapper balances them, so the random one is scaled to keep the prefix image-dependent.
                mapper.prefix_const.mul_(0.1)
                mapper.linear.weight.mul_(4.0)
            manifest["mapping"] = {"type": "transformer", **mapping}
            clipcap = {f"clip_project.{k}": v for k, v in mapper.state_dict().items()}
            _save_hf_gpt2(directory / "gpt2", gpt_config, gpt_state)
            manifest["gpt2"]["weights"] = "gpt2"
        torch.save(clipcap, directory / "clipcap.pt")
        manifest["clipcap"] = "clipcap.pt"
        (directory / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    finally:
        torch.random.set_rng_state(generator_state)
    return directory


def _random_gpt2_state(config: dict, eos_token_id: int) -> dict[str, torch.Tensor]:
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(**config, bos_token_id=eos_token_id, eos_token_id=eos_token_id))
    state = dict(model.state_dict())
    state["lm_head.weight"] = state["transformer.wte.weight"]  # tied, as in every GPT-2 file
    return {k: v.detach().clone() for k, v in state.items()}


def _save_hf_clip(folder: Path, vit: dict) -> None:
    from transformers import CLIPConfig, CLIPModel

    text = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "vocab_size": 99,
    }
    if vit["hidden_size"] >= 768:
        text = {}  # full size: transformers' defaults are CLIP ViT-B/32's text tower
    from safetensors.torch import save_file

    config = CLIPConfig(text_config=text, vision_config=vit, projection_dim=vit["projection_dim"])
    model = CLIPModel(config)
    # What save_pretrained writes (config.json + model.safetensors), without its progress bar.
    folder.mkdir(parents=True, exist_ok=True)
    config.to_json_file(str(folder / "config.json"))
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})


def _save_hf_gpt2(folder: Path, config: dict, state: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    # Hugging Face's original GPT-2 files hold a bare GPT2Model (keys "h.N.*", "wte.weight") with the
    # causal-mask buffers of the time; no lm_head (tied to wte).
    bare = {k[len("transformer.") :]: v.contiguous() for k, v in state.items() if k.startswith("transformer.")}
    n = config["n_positions"]
    for layer in range(config["n_layer"]):
        bare[f"h.{layer}.attn.bias"] = torch.tril(torch.ones(n, n, dtype=torch.uint8)).view(1, 1, n, n)
    save_file(bare, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", **config}, indent=2) + "\n")


def _openai_text_keys(embed_dim: int) -> dict[str, torch.Tensor]:
    """The non-visual entries of an OpenAI CLIP state dict (tiny text tower), ignored by the loader."""
    width = 16
    return {
        "positional_embedding": torch.randn(8, width),
        "token_embedding.weight": torch.randn(20, width),
        "ln_final.weight": torch.ones(width),
        "ln_final.bias": torch.zeros(width),
        "text_projection": torch.randn(width, embed_dim),
        "logit_scale": torch.tensor(4.6052),
        "input_resolution": torch.tensor(224),
        "context_length": torch.tensor(8),
        "vocab_size": torch.tensor(20),
    }


def _openai_vit_state(vit: dict) -> dict[str, torch.Tensor]:
    """A random ViT in OpenAI's ``visual.*`` layout (fp16, as OpenAI ships it)."""
    width, layers, patch = vit["hidden_size"], vit["num_hidden_layers"], vit["patch_size"]
    grid, out = vit["image_size"] // patch, vit["projection_dim"]
    scale = width**-0.5
    state = {
        "visual.conv1.weight": torch.randn(width, 3, patch, patch) * 0.02,
        "visual.class_embedding": torch.randn(width) * scale,
        "visual.positional_embedding": torch.randn(grid * grid + 1, width) * scale,
        "visual.ln_pre.weight": 1 + 0.1 * torch.randn(width),
        "visual.ln_pre.bias": 0.1 * torch.randn(width),
        "visual.ln_post.weight": 1 + 0.1 * torch.randn(width),
        "visual.ln_post.bias": 0.1 * torch.randn(width),
        "visual.proj": torch.randn(width, out) * scale,
    }
    hidden = vit["intermediate_size"]
    for n in range(layers):
        p = f"visual.transformer.resblocks.{n}."
        state.update({
            p + "attn.in_proj_weight": torch.randn(3 * width, width) * scale,
            p + "attn.in_proj_bias": 0.02 * torch.randn(3 * width),
            p + "attn.out_proj.weight": torch.randn(width, width) * scale,
            p + "attn.out_proj.bias": 0.02 * torch.randn(width),
            p + "ln_1.weight": 1 + 0.1 * torch.randn(width),
            p + "ln_1.bias": 0.1 * torch.randn(width),
            p + "mlp.c_fc.weight": torch.randn(hidden, width) * scale,
            p + "mlp.c_fc.bias": 0.02 * torch.randn(hidden),
            p + "mlp.c_proj.weight": torch.randn(width, hidden) * hidden**-0.5,
            p + "mlp.c_proj.bias": 0.02 * torch.randn(width),
            p + "ln_2.weight": 1 + 0.1 * torch.randn(width),
            p + "ln_2.bias": 0.1 * torch.randn(width),
        })
    state = {k: v.half() for k, v in state.items()}
    state.update(_openai_text_keys(out))
    return state


def _openai_resnet_state(config: dict) -> dict[str, torch.Tensor]:
    """A random CLIP ResNet in OpenAI's ``visual.*`` layout (fp16), with non-trivial BatchNorm statistics."""
    tower = build_resnet(config)
    state = {}
    for key, value in tower.state_dict().items():
        if value.dim() == 4:  # convolutions: He-normal, so the signal keeps its scale through the depth
            value = torch.randn_like(value) * (2.0 / value[0].numel()) ** 0.5
        elif key.endswith("running_mean"):
            value = 0.1 * torch.randn_like(value)
        elif key.endswith("running_var"):
            value = 0.5 + torch.rand_like(value)
        elif key.endswith("bn3.weight") or key.endswith(("bn1.weight", "bn2.weight")):
            value = 1 + 0.1 * torch.randn_like(value)
        state[f"visual.{key}"] = value.half() if value.is_floating_point() else value
    state.update(_openai_text_keys(config["output_dim"]))
    return state


def build_random_teacher(
    variant: str = "mlp", full_size: bool = True, seed: int = 0, tokenizer_dir: str | Path | None = None
):
    """A random ``ClipCapTeacher`` built in memory (no files): for benchmarks, where only sizes matter.

    Sizes as ``save_random_teacher``; the tokenizer is the tiny one (trained into ``tokenizer_dir`` or a
    temporary folder).
    """
    import tempfile

    from lumicap.teacher.clip_vit import CLIPViTTower
    from lumicap.teacher.clipcap import ClipCapTeacher
    from lumicap.teacher.tokenizer import load_tokenizer

    if variant not in ("mlp", "transformer"):
        raise ValueError(f"variant must be 'mlp' or 'transformer', got {variant!r}")
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as scratch:
        tokenizer = load_tokenizer(train_tiny_tokenizer(tokenizer_dir or scratch) / "tokenizer.json")
    gpt_config = dict(GPT2_SMALL_CONFIG) if full_size else {**TINY_GPT2, "vocab_size": tokenizer.vocab_size}
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt = GPT2LMHeadModel(GPT2Config(**gpt_config, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)).eval()
    mapping = dict(FULL_PREFIX[variant] if full_size else TINY_PREFIX[variant])
    prefix_length = mapping.pop("prefix_length")
    if variant == "mlp":
        clip = CLIPViTTower(dict(VIT_B32_CONFIG if full_size else TINY_VIT))
        mapper = MLPMapper(clip.output_dim, gpt_config["n_embd"], prefix_length)
    else:
        clip = build_resnet(dict(RN50X4_CONFIG if full_size else TINY_RESNET))
        mapper = TransformerMapper(clip.output_dim, gpt_config["n_embd"], prefix_length, **mapping)
    return ClipCapTeacher(clip.eval(), mapper, gpt, tokenizer, prefix_length, normalize_clip=variant == "transformer",
                          name=f"random-{variant}")
