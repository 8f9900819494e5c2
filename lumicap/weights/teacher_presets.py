"""The three published ClipCap models as teacher manifests over known weight files (catalogue data: the
catalogue makes a weights set of each, and ``lumicap.teacher`` builds the captioner from them).

A manifest (also the content of a local ``teacher.json``) says which files make the captioner and how
they fit together; see ``lumicap.teacher.clipcap`` for every key. File references are known weight
names here (``lumicap weights list``); in a local manifest they may also be paths.

Facts (ClipCap paper and official repository, rmokady/CLIP_prefix_caption):
- COCO and Conceptual Captions: CLIP ViT-B/32, MLP mapper 512 -> 3840 -> 7680 (prefix 10 x 768),
  GPT-2 fine-tuned and stored in the same file, raw (unnormalised) CLIP embeddings.
- COCO transformer: CLIP RN50x4 (640-d), transformer mapper (8 layers, 8 heads, mlp ratio 2,
  clip_length 40, prefix 40), frozen original GPT-2, CLIP embeddings L2-normalised before the mapper.
"""

from __future__ import annotations

import copy

PRESETS: dict[str, dict] = {
    "clipcap-coco": {
        "description": "ClipCap COCO: ViT-B/32, MLP mapper, fine-tuned GPT-2, prefix 10",
        "clip": {"weights": "clip-vit-b32-openai"},
        "clipcap": "clipcap-coco",
        "mapping": {"type": "mlp"},
        "prefix_length": 10,
        "normalize_clip": False,
        "gpt2": {"n_head": 12},
        "tokenizer": "gpt2-tokenizer",
    },
    "clipcap-conceptual": {
        "description": "ClipCap Conceptual Captions: ViT-B/32, MLP mapper, fine-tuned GPT-2, prefix 10",
        "clip": {"weights": "clip-vit-b32-openai"},
        "clipcap": "clipcap-conceptual",
        "mapping": {"type": "mlp"},
        "prefix_length": 10,
        "normalize_clip": False,
        "gpt2": {"n_head": 12},
        "tokenizer": "gpt2-tokenizer",
    },
    "clipcap-coco-transformer": {
        "description": "ClipCap COCO: RN50x4, transformer mapper, frozen GPT-2, prefix 40",
        "clip": {"weights": "clip-rn50x4-openai"},
        "clipcap": "clipcap-coco-transformer",
        "mapping": {"type": "transformer", "clip_length": 40, "num_layers": 8, "num_heads": 8},
        "prefix_length": 40,
        "normalize_clip": True,
        # The frozen GPT-2 is the original one: taken from the ClipCap file when it holds 'gpt.*'
        # (state_dict() of the official model does), else from the Hugging Face GPT-2 weights.
        "gpt2": {"n_head": 12, "weights": "from-clipcap", "fallback": "gpt2-hf"},
        "tokenizer": "gpt2-tokenizer",
    },
}


def preset(name: str) -> dict:
    return copy.deepcopy(PRESETS[name])


def weight_names(manifest: dict, optional: bool = False) -> list[str]:
    """The file references of a manifest (known weight names in a preset), in loading order.

    ``optional``: add ``gpt2.fallback``, read only when the ClipCap file holds no GPT-2 (the official
    files all do, so presets' weight sets leave it out).
    """
    # Wrong types are left for the loader to report (with the key); here they just name no file.
    clip = manifest.get("clip")
    clip = {"weights": clip} if isinstance(clip, str) else clip if isinstance(clip, dict) else {}
    gpt = manifest.get("gpt2") if isinstance(manifest.get("gpt2"), dict) else {}
    refs = [clip.get("weights"), clip.get("config"), manifest.get("clipcap")]
    if gpt.get("weights", "from-clipcap") != "from-clipcap":
        refs.append(gpt["weights"])
    elif optional:
        refs.append(gpt.get("fallback"))
    refs.append(manifest.get("tokenizer"))
    return [ref for ref in dict.fromkeys(refs) if isinstance(ref, str) and ref]
