"""The frozen ClipCap captioner: CLIP image tower -> mapping network -> GPT-2.

``ClipCapTeacher.from_pretrained(name_or_path)`` takes a preset name (``clipcap-coco``,
``clipcap-conceptual``, ``clipcap-coco-transformer``), a folder holding a ``teacher.json`` manifest,
or the manifest file itself. Manifest keys (paths relative to the manifest's folder, absolute, or
known weight names from ``lumicap weights list``)::

    {
      "format": "lumicap-teacher", "version": 1,
      "clip": {"weights": "ViT-B-32.pt"},         # OpenAI file, HF folder or HF weights file;
                                                  # optional "config" (HF config.json), "heads"
      "clipcap": "coco_weights.pt",               # ClipCap state dict: clip_project.* (+ gpt.*)
      "mapping": {"type": "mlp"},                 # or {"type": "transformer", "clip_length": 40,
                                                  #     "num_layers": 8, "num_heads": 8}
      "prefix_length": 10,
      "normalize_clip": false,                    # L2-normalise the CLIP embedding before the mapper
      "gpt2": {"n_head": 12},                     # optional "weights": "from-clipcap" (default) or a
                                                  # GPT-2 checkpoint; "fallback" when the ClipCap file
                                                  # has no gpt.*; size keys are checked against the weights
      "tokenizer": "tokenizer.json"               # or a folder with vocab.json + merges.txt
    }

Everything is loaded with safetensors / ``torch.load(weights_only=True)`` (TorchScript archives through a
code-free reader), every mismatch is a one-line ``WeightsError`` naming the file and key. The teacher's
parameters never require gradients and the module stays in eval mode whatever ``train()`` is called with.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from lumicap.errors import WeightsError
from lumicap.jsonfile import read_json
from lumicap.names import PreprocessMode
from lumicap.teacher.clip_tower import load_clip_image_encoder, read_weights_file
from lumicap.teacher.generation import beam_decode, greedy_decode
from lumicap.teacher.gpt2 import build_gpt2, gpt2_state_from
from lumicap.teacher.mapping import mapper_from_state_dict
from lumicap.teacher.preprocess import clip_preprocess
from lumicap.teacher.tokenizer import CaptionTokenizer, load_tokenizer
from lumicap.weights import KNOWN_SETS, KNOWN_WEIGHTS, ensure_weights, resolve_weights
from lumicap.weights.teacher_presets import PRESETS, preset, weight_names

MANIFEST_NAME = "teacher.json"
MANIFEST_FORMAT = "lumicap-teacher"


class ClipCapTeacher(nn.Module):
    """The frozen captioner; ``ClipCapTeacher.from_pretrained(name_or_path)`` builds it from files.

    Args:
        clip: the CLIP image tower: (B, 3, S, S) normalised images -> (B, D) embeddings.
        mapper: ClipCap's mapping network: (B, D) -> (B, prefix_length, GPT-2 width) prefix embeddings.
        gpt: GPT-2 with its language-model head.
        tokenizer: GPT-2's tokenizer (captions in and out).
        prefix_length: prefix positions the mapper produces (10 for the MLP models, 40 for the transformer).
        normalize_clip: L2-normalise the CLIP embedding before the mapper (the transformer model does).
        name: shown in messages and captions files.

    Its parameters never require gradients and it stays in eval mode whatever ``train()`` is called with.
    """

    def __init__(
        self,
        clip: nn.Module,
        mapper: nn.Module,
        gpt: nn.Module,
        tokenizer: CaptionTokenizer,
        prefix_length: int,
        normalize_clip: bool,
        name: str = "clipcap",
    ):
        super().__init__()
        self.clip = clip
        self.mapper = mapper
        self.gpt = gpt
        self.tokenizer = tokenizer
        self.prefix_length = prefix_length
        self.normalize_clip = normalize_clip
        self.name = name
        self.requires_grad_(False)
        super().train(False)

    # ------------------------------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        device: str | torch.device | None = None,
        download: bool = True,
        cache_dir: str | os.PathLike | None = None,
    ) -> "ClipCapTeacher":
        """Load a preset or a local teacher (folder with ``teacher.json``, or the manifest file)."""
        root = Path(cache_dir) if cache_dir else None
        text = os.fspath(name_or_path)
        source = text
        if text in PRESETS:
            manifest, base, name = preset(text), None, text
        else:
            path = Path(text).expanduser()
            manifest_path = path / MANIFEST_NAME if path.is_dir() else path
            if not manifest_path.is_file():
                raise WeightsError(
                    f"{text}: not a teacher preset ({', '.join(PRESETS)}) nor a folder with {MANIFEST_NAME}"
                )
            manifest = read_json(manifest_path, what="JSON manifest", error=WeightsError)
            if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
                raise WeightsError(f'{manifest_path}: not a lumicap teacher manifest ("format": "{MANIFEST_FORMAT}")')
            base, name = manifest_path.parent, str(manifest.get("name") or manifest_path.parent.name)
            source = str(manifest_path)  # messages name the file that holds the key
        teacher = _build_from_manifest(manifest, base, name, download, root, source=source)
        if device is not None:
            teacher.to(device)
        return teacher

    def train(self, mode: bool = True) -> "ClipCapTeacher":
        # Frozen teacher: dropout off and BatchNorm statistics fixed whatever the training loop asks.
        return super().train(False)

    # ------------------------------------------------------------------------------------------ features
    @property
    def image_size(self) -> int:
        return int(self.clip.image_size)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def clip_embedding(self, images: torch.Tensor, preprocess: PreprocessMode = "crop") -> torch.Tensor:
        """CLIP image embeddings (B, D) of images (B, 3, H, W) in [0, 1]; tiles are averaged."""
        # fp16/bf16 inputs are resized in the tower's precision (CPU bicubic has no half kernels).
        pixels, tiles = clip_preprocess(images.to(self._clip_dtype()), self.image_size, preprocess)
        features = self.clip(pixels)
        return features.view(images.shape[0], tiles, -1).mean(dim=1)

    def mapper_input(self, clip_embedding: torch.Tensor) -> torch.Tensor:
        """The embedding as the mapper sees it (L2-normalised for the transformer model)."""
        if self.normalize_clip:
            return clip_embedding / clip_embedding.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return clip_embedding

    def prefix_embeddings(self, clip_embedding: torch.Tensor) -> torch.Tensor:
        """GPT-2 input embeddings (B, prefix_length, n_embd) for CLIP embeddings (B, D)."""
        return self.mapper(self.mapper_input(clip_embedding))

    def token_embeddings(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.gpt.get_input_embeddings()(tokens)

    def language_model(self, embeddings: torch.Tensor, all_hidden_states: bool = False, logits: bool = False):
        """Run GPT-2 on input embeddings; returns (hidden states tuple or (last,), logits or None).

        Hidden states follow transformers: index 0 = input embeddings + positions, index i = output of
        block i, the last one after the final layer norm.
        """
        out = self.gpt.transformer(inputs_embeds=embeddings, output_hidden_states=all_hidden_states, use_cache=False)
        hidden = out.hidden_states if all_hidden_states else (out.last_hidden_state,)
        return hidden, (self.gpt.lm_head(out.last_hidden_state) if logits else None)

    def _clip_dtype(self) -> torch.dtype:
        return next(self.clip.parameters()).dtype

    # ------------------------------------------------------------------------------------------ captions
    @torch.no_grad()
    def caption_tokens(
        self,
        images: torch.Tensor,
        beam: bool = False,
        preprocess: PreprocessMode = "crop",
        max_tokens: int = 67,
        beam_size: int = 5,
    ) -> list[list[int]]:
        prefix = self.prefix_embeddings(self.clip_embedding(images, preprocess))
        return self.decode_prefix(prefix, beam=beam, max_tokens=max_tokens, beam_size=beam_size)

    @torch.no_grad()
    def decode_prefix(
        self, prefix: torch.Tensor, beam: bool = False, max_tokens: int = 67, beam_size: int = 5
    ) -> list[list[int]]:
        stop, vocab = self.tokenizer.stop_token_id, self.tokenizer.vocab_size
        if beam:
            return beam_decode(self.gpt, prefix, stop, vocab, beam_size=beam_size, max_tokens=max_tokens)
        return greedy_decode(self.gpt, prefix, stop, vocab, max_tokens=max_tokens)

    @torch.no_grad()
    def caption(
        self, images: torch.Tensor, beam: bool = False, preprocess: PreprocessMode = "crop", max_tokens: int = 67
    ) -> list[str]:
        """One caption per image (B, 3, H, W) in [0, 1]: greedy like ClipCap, or beam search (width 5)."""
        tokens = self.caption_tokens(images, beam=beam, preprocess=preprocess, max_tokens=max_tokens)
        return [self.tokenizer.decode(row) for row in tokens]

    def extra_repr(self) -> str:
        return f"name={self.name!r}, prefix_length={self.prefix_length}, normalize_clip={self.normalize_clip}"


# ---------------------------------------------------------------------------------------------- manifest
def _resolve_ref(ref, key: str, base: Path | None, download: bool, root: Path | None, source: str) -> Path:
    """A manifest file reference -> local path: relative to the manifest, absolute, or a known weights name."""
    if not isinstance(ref, (str, os.PathLike)) or not os.fspath(ref):
        raise WeightsError(f"{source}: manifest key '{key}' must name a file, got {ref!r}")
    text = os.fspath(ref)
    if base is not None and (base / text).exists():
        return base / text
    candidate = Path(text).expanduser()
    if candidate.is_absolute() and candidate.exists():
        return candidate
    if text in KNOWN_WEIGHTS:
        return resolve_weights(text, download=download, root=root)
    where = f" (looked in {base})" if base is not None else ""
    raise WeightsError(f"{source}: manifest key '{key}': no file '{text}'{where} and no known weights of that name")


def _fetch_known_files(manifest: dict, base: Path | None, name: str, download: bool, root: Path | None, source: str):
    """Fetch (or name as missing, all in one error) every catalogue file the manifest needs, before any is read."""
    known = [
        ref
        for ref in weight_names(manifest)
        if ref in KNOWN_WEIGHTS and not (base is not None and (base / ref).exists())
    ]
    if known:
        # A preset's weight set has the preset's name: one word fetches all of it.
        fetch = [source] if source in PRESETS and source in KNOWN_SETS else None
        ensure_weights(known, download=download, root=root, needed_by=f"teacher '{name}'", fetch_names=fetch)


def check_manifest(manifest: dict, source: str) -> None:
    """Every key's type and range, before any file is opened: one ``WeightsError`` naming the key."""

    def fail(key: str, expected: str, value) -> None:
        shown_value = (
            repr(value) if isinstance(value, (str, int, float, bool)) or value is None else type(value).__name__
        )
        raise WeightsError(f"{source}: manifest key '{key}' must be {expected}, got {shown_value[:60]}")

    def positive_int(key: str, value, optional: bool = False) -> None:
        if value is None and optional:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            fail(key, "a positive integer", value)

    def file_ref(key: str, value, optional: bool = False) -> None:
        if value is None and optional:
            return
        if not isinstance(value, str) or not value:
            fail(key, "a file name (a string)", value)

    def mapping_of(key: str, value) -> dict:
        if not isinstance(value, dict):
            fail(key, "a JSON object", value)
        return value

    for key in ("prefix_length", "mapping", "clip", "clipcap", "tokenizer"):
        if key not in manifest:
            raise WeightsError(f"{source}: manifest lacks the key '{key}'")
    positive_int("prefix_length", manifest["prefix_length"])
    mapping = mapping_of("mapping", manifest["mapping"])
    if mapping.get("type", "mlp") not in ("mlp", "transformer"):
        fail("mapping.type", "'mlp' or 'transformer'", mapping.get("type"))
    positive_int("mapping.clip_length", mapping.get("clip_length"), optional=True)
    for key in ("num_heads", "num_layers"):
        positive_int(f"mapping.{key}", mapping.get(key), optional=True)
    clip = manifest["clip"]
    if isinstance(clip, str):
        file_ref("clip", clip)
    else:
        clip = mapping_of("clip", clip)
        file_ref("clip.weights", clip.get("weights"))
        if not isinstance(clip.get("config"), dict):
            file_ref("clip.config", clip.get("config"), optional=True)
        positive_int("clip.heads", clip.get("heads"), optional=True)
    file_ref("clipcap", manifest["clipcap"])
    file_ref("tokenizer", manifest["tokenizer"])
    gpt = manifest.get("gpt2")
    if gpt is not None:
        gpt = mapping_of("gpt2", gpt)
        file_ref("gpt2.weights", gpt.get("weights"), optional=True)
        file_ref("gpt2.fallback", gpt.get("fallback"), optional=True)
        for key in ("n_head", "n_layer", "n_embd", "vocab_size", "n_positions"):
            positive_int(f"gpt2.{key}", gpt.get(key), optional=True)
        if gpt.get("eos_token_id") is not None and (
            isinstance(gpt["eos_token_id"], bool) or not isinstance(gpt["eos_token_id"], int) or gpt["eos_token_id"] < 0
        ):
            fail("gpt2.eos_token_id", "a token id (an integer >= 0)", gpt["eos_token_id"])
    if not isinstance(manifest.get("normalize_clip", False), bool):
        fail("normalize_clip", "true or false", manifest["normalize_clip"])


def _build_from_manifest(manifest: dict, base: Path | None, name: str, download: bool, root: Path | None, source: str):
    check_manifest(manifest, source)
    _fetch_known_files(manifest, base, name, download, root, source)
    prefix_length = manifest["prefix_length"]
    mapping = dict(manifest["mapping"])
    clip_spec = manifest["clip"]
    clip_spec = {"weights": clip_spec} if isinstance(clip_spec, str) else dict(clip_spec)
    gpt_spec = dict(manifest.get("gpt2") or {})

    clip_path = _resolve_ref(clip_spec.get("weights"), "clip.weights", base, download, root, source)
    clip_config = clip_spec.get("config")
    if clip_config is not None and not isinstance(clip_config, dict):
        clip_config = _resolve_ref(clip_config, "clip.config", base, download, root, source)
    clip = load_clip_image_encoder(clip_path, config=clip_config, heads=clip_spec.get("heads"), download=download)

    clipcap_path = _resolve_ref(manifest["clipcap"], "clipcap", base, download, root, source)
    clipcap_state = read_weights_file(clipcap_path)
    mapper = mapper_from_state_dict(
        clipcap_state,
        mapping.get("type", "mlp"),
        prefix_length,
        mapping.get("clip_length"),
        int(mapping.get("num_heads", 8)),
        str(clipcap_path),
    )
    mapper_state = {k[len("clip_project.") :]: v for k, v in clipcap_state.items() if k.startswith("clip_project.")}
    from lumicap.teacher.clip_vit import load_exactly

    load_exactly(mapper, mapper_state, str(clipcap_path))
    clip_dim = getattr(clip, "output_dim", None)
    mapper_in = mapper_state.get("model.0.weight", mapper_state.get("linear.weight")).shape[1]
    if clip_dim is not None and clip_dim != mapper_in:
        raise WeightsError(
            f"{clipcap_path}: the mapper expects {mapper_in}-d CLIP embeddings but {clip_path} gives {clip_dim}-d"
        )

    gpt_source = gpt_spec.get("weights", "from-clipcap")
    gpt_state = gpt2_state_from(clipcap_state, "gpt.") if gpt_source == "from-clipcap" else {}
    gpt_from = str(clipcap_path)
    if not gpt_state:
        fallback = gpt_source if gpt_source != "from-clipcap" else gpt_spec.get("fallback")
        if fallback is None:
            raise WeightsError(
                f"{clipcap_path}: no 'gpt.*' weights in the ClipCap file and the manifest names no 'gpt2.weights'"
            )
        gpt_path = _resolve_ref(fallback, "gpt2.weights", base, download, root, source)
        if gpt_path.is_dir():
            files = [gpt_path / f for f in ("model.safetensors", "pytorch_model.bin") if (gpt_path / f).is_file()]
            gpt_path = files[0] if files else gpt_path
        raw = read_weights_file(gpt_path)
        gpt_state = gpt2_state_from(raw, "gpt." if any(k.startswith("gpt.") for k in raw) else "")
        gpt_from = str(gpt_path)
    gpt = build_gpt2(gpt_spec, gpt_state, gpt_from)
    n_embd = gpt.config.n_embd
    prefix_dim = mapper_state["prefix_const"].shape[1] if "prefix_const" in mapper_state else mapper.gpt_dim
    if prefix_dim != n_embd:
        raise WeightsError(
            f"{clipcap_path}: the mapper produces {prefix_dim}-d prefixes but GPT-2 ({gpt_from}) is {n_embd}-d"
        )

    tokenizer = load_tokenizer(_resolve_ref(manifest["tokenizer"], "tokenizer", base, download, root, source))
    return ClipCapTeacher(
        clip,
        mapper,
        gpt,
        tokenizer,
        prefix_length=prefix_length,
        normalize_clip=bool(manifest.get("normalize_clip", False)),
        name=name,
    )
