"""ClipCap's mapping networks: one CLIP image embedding -> ``prefix_length`` GPT-2 input embeddings.

Module and parameter names follow the official checkpoints (``clip_project.*`` once nested in the
captioner), so ClipCap files load with ``load_state_dict`` as they are:

- ``MLPMapper``: ``model.0`` Linear(clip_dim -> prefix_length * gpt_dim / 2), Tanh, ``model.2``
  Linear(-> prefix_length * gpt_dim); the COCO and Conceptual Captions models (512 -> 3840 -> 7680).
- ``TransformerMapper``: ``linear`` maps the embedding to ``clip_length`` tokens, the learned
  ``prefix_const`` (prefix_length x gpt_dim) is appended, ``transformer.layers.N`` pre-norm blocks
  (``norm1``, ``attn.to_queries`` / ``attn.to_keys_values`` without bias, ``attn.project``, ``norm2``,
  ``mlp.fc1`` / ReLU / ``mlp.fc2`` with hidden size ``mlp_ratio * gpt_dim``) process the whole
  sequence, and the last ``prefix_length`` positions are the prefix. The published COCO model uses
  8 layers, 8 heads, mlp ratio 2 and clip_length = prefix_length = 40 on RN50x4 features (640-d).
"""

from __future__ import annotations

import torch
from torch import nn


class MLPMapper(nn.Module):
    def __init__(self, clip_dim: int, gpt_dim: int, prefix_length: int):
        super().__init__()
        self.prefix_length = prefix_length
        self.gpt_dim = gpt_dim
        hidden = gpt_dim * prefix_length // 2
        self.model = nn.Sequential(
            nn.Linear(clip_dim, hidden),
            nn.Tanh(),
            nn.Linear(hidden, gpt_dim * prefix_length),
        )

    def forward(self, clip_embedding: torch.Tensor) -> torch.Tensor:
        return self.model(clip_embedding).view(-1, self.prefix_length, self.gpt_dim)


class MapperAttention(nn.Module):
    """Multi-head self-attention with ClipCap's projections: queries, fused keys+values, output."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"mapper width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.to_queries = nn.Linear(dim, dim, bias=False)
        self.to_keys_values = nn.Linear(dim, 2 * dim, bias=False)
        self.project = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        head_dim = dim // self.num_heads
        queries = self.to_queries(x).view(batch, length, self.num_heads, head_dim).transpose(1, 2)
        # The fused projection lays out all keys first, then all values (each heads x head_dim).
        keys_values = self.to_keys_values(x).view(batch, length, 2, self.num_heads, head_dim)
        keys = keys_values[:, :, 0].transpose(1, 2)
        values = keys_values[:, :, 1].transpose(1, 2)
        attended = nn.functional.scaled_dot_product_attention(queries, keys, values)
        return self.project(attended.transpose(1, 2).reshape(batch, length, dim))


class MapperMLP(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


class MapperLayer(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_hidden: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MapperAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MapperMLP(dim, mlp_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class MapperTransformer(nn.Module):
    def __init__(self, dim: int, num_heads: int, num_layers: int, mlp_hidden: int):
        super().__init__()
        self.layers = nn.ModuleList(MapperLayer(dim, num_heads, mlp_hidden) for _ in range(num_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class TransformerMapper(nn.Module):
    def __init__(
        self,
        clip_dim: int,
        gpt_dim: int,
        prefix_length: int,
        clip_length: int,
        num_layers: int = 8,
        num_heads: int = 8,
        mlp_ratio: float = 2.0,
        mlp_hidden: int | None = None,
    ):
        super().__init__()
        self.clip_length = clip_length
        self.prefix_length = prefix_length
        self.linear = nn.Linear(clip_dim, clip_length * gpt_dim)
        self.prefix_const = nn.Parameter(torch.randn(prefix_length, gpt_dim))
        self.transformer = MapperTransformer(gpt_dim, num_heads, num_layers, mlp_hidden or int(gpt_dim * mlp_ratio))

    def forward(self, clip_embedding: torch.Tensor) -> torch.Tensor:
        batch = clip_embedding.shape[0]
        clip_tokens = self.linear(clip_embedding).view(batch, self.clip_length, -1)
        constants = self.prefix_const.unsqueeze(0).expand(batch, -1, -1).to(clip_tokens.dtype)
        sequence = self.transformer(torch.cat([clip_tokens, constants], dim=1))
        return sequence[:, self.clip_length :]


def mapper_from_state_dict(
    state: dict[str, torch.Tensor], kind: str, prefix_length: int, clip_length: int | None, num_heads: int, source: str
) -> nn.Module:
    """Build the mapper whose ``clip_project.*`` weights are in ``state`` (sizes read from the tensors)."""
    from lumicap.errors import WeightsError

    def need(key: str) -> torch.Tensor:
        if key not in state:
            raise WeightsError(f"{source}: key '{key}' missing; not a ClipCap {kind} checkpoint")
        return state[key]

    if kind == "mlp":
        first, last = need("clip_project.model.0.weight"), need("clip_project.model.2.weight")
        clip_dim = first.shape[1]
        if last.shape[0] % prefix_length:
            raise WeightsError(
                f"{source}: clip_project.model.2 outputs {last.shape[0]} values, "
                f"not a multiple of prefix length {prefix_length}"
            )
        return MLPMapper(clip_dim, last.shape[0] // prefix_length, prefix_length)
    if kind == "transformer":
        linear = need("clip_project.linear.weight")
        constants = need("clip_project.prefix_const")
        gpt_dim = constants.shape[1]
        if constants.shape[0] != prefix_length:
            raise WeightsError(
                f"{source}: clip_project.prefix_const has {constants.shape[0]} rows but the prefix length is "
                f"{prefix_length}"
            )
        clip_length = clip_length or linear.shape[0] // gpt_dim
        layers = {int(k.split(".")[3]) for k in state if k.startswith("clip_project.transformer.layers.")}
        hidden = need("clip_project.transformer.layers.0.mlp.fc1.weight").shape[0]
        return TransformerMapper(
            linear.shape[1], gpt_dim, prefix_length, clip_length, len(layers), num_heads, mlp_hidden=hidden
        )
    raise WeightsError(f"{source}: unknown mapping type '{kind}' (mlp or transformer)")
