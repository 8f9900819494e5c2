"""GPT-2 through ``transformers.GPT2LMHeadModel``, with weights from a ClipCap file or a GPT-2 checkpoint.

ClipCap files store the (fine-tuned) language model under ``gpt.transformer.*`` and
``gpt.lm_head.weight``; files written with older transformers also carry the causal-mask buffers
``gpt.transformer.h.N.attn.bias`` and ``.attn.masked_bias``, which current versions no longer have
(the mask is built on the fly), so they are dropped. Hugging Face GPT-2 checkpoints use either
``transformer.*`` or bare ``h.N.*`` / ``wte.weight`` keys and may omit ``lm_head.weight`` (tied to
the token embedding).

The head count is not stored in the tensors, so it comes from the config (GPT-2 124M: 12 heads).
"""

from __future__ import annotations

import torch

from lumicap.errors import WeightsError

GPT2_SMALL_CONFIG = {"n_layer": 12, "n_head": 12, "n_embd": 768, "vocab_size": 50257, "n_positions": 1024}
_LEGACY_SUFFIXES = (".attn.bias", ".attn.masked_bias", ".crossattention.bias", ".crossattention.masked_bias")


def gpt2_state_from(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Keys under ``prefix`` (e.g. ``gpt.``) renamed to GPT2LMHeadModel's, legacy buffers dropped."""
    out = {}
    for key, tensor in state.items():
        if not key.startswith(prefix) or key.endswith(_LEGACY_SUFFIXES):
            continue
        name = key[len(prefix) :]
        if not name.startswith(("transformer.", "lm_head.")):
            name = "transformer." + name  # bare GPT2Model checkpoint
        out[name] = tensor
    if "lm_head.weight" not in out and "transformer.wte.weight" in out:
        out["lm_head.weight"] = out["transformer.wte.weight"]
    return out


def gpt2_config_from_state(state: dict[str, torch.Tensor], n_head: int) -> dict:
    wte = state["transformer.wte.weight"]
    layers = {int(k.split(".")[2]) for k in state if k.startswith("transformer.h.")}
    return {
        "n_layer": len(layers),
        "n_head": n_head,
        "n_embd": wte.shape[1],
        "vocab_size": wte.shape[0],
        "n_positions": state["transformer.wpe.weight"].shape[0],
    }


def build_gpt2(config: dict, state: dict[str, torch.Tensor], source: str):
    """A GPT2LMHeadModel in eval mode with ``state`` (already renamed by ``gpt2_state_from``) loaded."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from lumicap.teacher.clip_vit import load_exactly

    if "transformer.wte.weight" not in state:
        raise WeightsError(f"{source}: no GPT-2 weights (expected 'gpt.transformer.wte.weight' or 'wte.weight')")
    inferred = gpt2_config_from_state(state, int(config.get("n_head", GPT2_SMALL_CONFIG["n_head"])))
    for key in ("n_layer", "n_embd", "vocab_size", "n_positions"):
        if key in config and int(config[key]) != inferred[key]:
            raise WeightsError(f"{source}: GPT-2 weights have {key}={inferred[key]} but the config says {config[key]}")
    if inferred["n_embd"] % inferred["n_head"]:
        raise WeightsError(
            f"{source}: GPT-2 width {inferred['n_embd']} is not divisible by n_head={inferred['n_head']}"
        )
    eos = int(config.get("eos_token_id", min(50256, inferred["vocab_size"] - 1)))
    gpt_config = GPT2Config(
        **inferred,
        bos_token_id=eos,
        eos_token_id=eos,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        tie_word_embeddings=torch.equal(state["lm_head.weight"], state["transformer.wte.weight"]),
    )
    model = GPT2LMHeadModel(gpt_config)
    load_exactly(model, state, source)
    if not gpt_config.tie_word_embeddings:
        # transformers may have tied them at construction; keep the file's own head.
        model.lm_head.weight = torch.nn.Parameter(state["lm_head.weight"].float().clone())
    return model.eval()
