"""LLFormer-specific checks (the generic contract is in test_models.py): the official parameter count
from the official layer list, axis attention against a direct computation and its row/column reach,
the dual gated FFN and cross-layer fusion, the padding multiple, checkpointing equivalence, the recipe."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lumicap.models import build_model, count_parameters, model_info
from lumicap.models.llformer import (
    AxisAttention,
    AxisBasedMultiHeadSelfAttention,
    CrossLayerAttentionFusion,
    DualGatedFeedForward,
    LLFormer,
)


def _tiny(**overrides) -> LLFormer:
    torch.manual_seed(0)
    cfg = dict(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1, heads=(1, 2, 2, 2))
    return LLFormer(**{**cfg, **overrides})


def _official_parameter_count(dim: int = 16, blocks=(2, 4, 8, 16), refinement: int = 2, heads_unused=None) -> int:
    """Layer-by-layer count of TaoWangzj/LLFormer model/LLFormer.py with train.py's arguments.

    Written from the official layer list, independently of lumicap's modules: attention convs carry
    biases (NextAttentionZ is built without the bias argument), everything else follows bias=False.
    """

    def block(d: int) -> int:
        hidden = int(d * 2.66)
        axis_attention = (d * 3 * d + 3 * d) + 2 * (3 * d * 9 + 3 * d) + 1 + (d * d + d)
        return 2 * (2 * d) + 2 * axis_attention + d * 2 * hidden + 2 * hidden * 9 + hidden * d

    def layer_attention(c: int) -> int:
        return 1 + (c * 3 * c + 3 * c) + (3 * c * 9 + 3 * c) + (c * c + c)

    d = dim
    total = 4 * 2 * (d * 8)  # `coefficient`, defined but unused
    total += 3 * d * 9  # patch embedding
    total += 3 * blocks[0] * block(d) + layer_attention(3 * d) + 3 * d * d  # encoders 1-3, fusion, conv_fuss
    total += blocks[0] * block(d)  # latent
    total += sum(c * (c // 2) * 9 for c in (d, 2 * d, 4 * d, 8 * d))  # downsamplings
    total += sum(n * block(c) for n, c in zip(blocks, (2 * d, 4 * d, 8 * d, 16 * d)))  # encoder levels 1-4
    total += sum(c * 2 * c * 9 for c in (16 * d, 8 * d, 4 * d, 2 * d))  # upsamplings
    total += blocks[2] * block(8 * d) + blocks[1] * block(4 * d) + blocks[0] * block(2 * d)  # decoder 3-1
    total += 2 * (8 * d + 4 * d + 2 * d + d)  # skip coefficients
    total += (8 * d) ** 2 + (4 * d) ** 2 + (2 * d) ** 2 + (2 * d) ** 2  # skip_4_3, 3_2, 2_1 (unused), 1_0
    total += 3 * refinement * block(d) + layer_attention(3 * d) + 3 * d * d + d * 3 * 9  # refinement, output
    return total


UNUSED_OFFICIAL_PARAMETERS = 4 * 2 * 128 + 32 * 32  # `coefficient` and `skip_2_1`


def test_parameter_count_is_official_minus_unused() -> None:
    official = _official_parameter_count()
    assert 24_500_000 < official < 24_600_000  # the paper states 24.52M
    assert model_info("llformer").official_params == official
    assert count_parameters(build_model("llformer")) == official - UNUSED_OFFICIAL_PARAMETERS


def test_default_configuration_is_the_official_one() -> None:
    model = build_model("llformer")
    first = model.stages[0][0]
    assert [len(s) for s in model.stages] == [2, 2, 2] and len(model.latent) == 2
    assert [len(e) for e in model.encoder] + [len(model.bottleneck)] == [2, 4, 8, 16]
    assert [len(d) for d in model.decoder] == [2, 4, 8]  # levels 1, 2, 3
    assert [len(r) for r in model.refinement] == [2, 2, 2]
    widths = [e[0].norm1.weight.numel() for e in model.encoder] + [model.bottleneck[0].norm1.weight.numel()]
    assert widths == [32, 64, 128, 256] and first.norm1.weight.numel() == 16
    heads = [e[0].attention.row_attention.num_heads for e in model.encoder]
    assert heads + [model.bottleneck[0].attention.row_attention.num_heads] == [2, 4, 8, 8]
    assert first.feed_forward.project_in.out_channels == 2 * int(16 * 2.66)
    assert first.feed_forward.project_in.bias is None and first.attention.row_attention.qkv.bias is not None
    assert first.norm1.bias is not None  # "WithBias" LayerNorm
    assert model.to_rgb.bias is None and not model.global_residual


def _direct_axis_attention(module: AxisAttention, x: torch.Tensor) -> torch.Tensor:
    """Softmax attention written out with einsum over one axis, using the module's own convs."""
    b, c, h, w = x.shape
    heads = module.num_heads
    q, k, v = module.qkv_dwconv2(module.qkv_dwconv1(module.qkv(x))).chunk(3, dim=1)
    split = lambda t: t.reshape(b, heads, c // heads, h, w)  # noqa: E731
    q, k, v = split(q), split(k), split(v)
    q, k = F.normalize(q, dim=2), F.normalize(k, dim=2)
    if module.axis == "width":  # sequences are rows: tokens differ in w
        scores = torch.einsum("bndhw,bndhv->bnhwv", q, k) * module.temperature
        out = torch.einsum("bnhwv,bndhv->bndhw", scores.softmax(dim=-1), v)
    else:  # sequences are columns: tokens differ in h
        scores = torch.einsum("bndhw,bndgw->bnwhg", q, k) * module.temperature
        out = torch.einsum("bnwhg,bndgw->bndhw", scores.softmax(dim=-1), v)
    return module.project_out(out.reshape(b, c, h, w))


def test_axis_attention_matches_direct_computation() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 8, 6, 10)
    for axis in ("width", "height"):
        module = AxisAttention(8, num_heads=2, axis=axis)
        with torch.no_grad():
            module.temperature.fill_(3.0)  # the learned temperature must scale the cosine scores
        torch.testing.assert_close(module(x), _direct_axis_attention(module, x), atol=1e-5, rtol=1e-4)
        # channels-last input (the CPU layout the network uses) gives the same result
        cl = x.contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(module(cl), module(x), atol=1e-5, rtol=1e-4)


def test_axis_attention_reaches_along_its_axis_only() -> None:
    """A change at one pixel reaches the whole row (width axis) or column (height axis), but no farther
    than the two depthwise 3x3 convs spread it (2 pixels) across the other axis; A-MSA reaches everywhere."""
    torch.manual_seed(0)
    x = torch.randn(1, 8, 16, 20)
    bumped = x.clone()
    bumped[:, :, 8, 3] += 5.0  # row 8, column 3
    for axis in ("width", "height"):
        module = AxisAttention(8, num_heads=1, axis=axis)
        with torch.no_grad():
            changed = (module(bumped) - module(x)).abs().amax(dim=(0, 1)) > 1e-6  # (H, W)
        if axis == "width":  # rows 6..10 change, each across its whole width
            assert changed.any(dim=1).nonzero().flatten().tolist() == [6, 7, 8, 9, 10]
            assert changed[8, 19]
        else:  # columns 1..5 change, each across its whole height
            assert changed.any(dim=0).nonzero().flatten().tolist() == [1, 2, 3, 4, 5]
            assert changed[15, 3]
    msa = AxisBasedMultiHeadSelfAttention(8, num_heads=1)
    with torch.no_grad():
        assert ((msa(bumped) - msa(x)).abs().amax(dim=(0, 1)) > 1e-6).all()


def test_dual_gated_feed_forward_gates_both_ways() -> None:
    torch.manual_seed(0)
    ffn = DualGatedFeedForward(16, 2.66, bias=False)
    x = torch.randn(1, 16, 5, 7)
    hidden = ffn.dwconv(ffn.project_in(x))
    x1, x2 = hidden.chunk(2, dim=1)
    assert x1.shape[1] == 42
    expected = ffn.project_out(F.gelu(x2) * x1 + F.gelu(x1) * x2)
    torch.testing.assert_close(ffn(x), expected)
    assert not torch.allclose(ffn(x), ffn.project_out(F.gelu(x1) * x2))  # the second gate matters


def test_cross_layer_attention_fusion() -> None:
    torch.manual_seed(0)
    fusion = CrossLayerAttentionFusion(4, num_layers=3)
    layers = [torch.randn(2, 4, 5, 6) for _ in range(3)]
    out = fusion(layers)
    assert out.shape == (2, 4, 5, 6)
    # direct computation: each layer's whole feature map is one token of a 3x3 attention
    x = torch.cat(layers, dim=1)
    q, k, v = fusion.qkv_dwconv(fusion.qkv(x)).chunk(3, dim=1)
    tokens = lambda t: t.reshape(2, 3, -1)  # noqa: E731
    attn = (F.normalize(tokens(q), dim=-1) @ F.normalize(tokens(k), dim=-1).transpose(1, 2)).softmax(-1)
    attended = (attn @ tokens(v)).reshape(2, 12, 5, 6)
    torch.testing.assert_close(out, fusion.reduce(fusion.project_out(attended) + x))
    # the order of the layers matters (attention mixes them asymmetrically)
    assert not torch.allclose(out, fusion(layers[::-1]))


def test_pads_to_multiple_of_16_and_crops_back() -> None:
    model = _tiny()
    seen = {}
    model.bottleneck[-1].register_forward_hook(lambda m, i, o: seen.update(shape=tuple(o.shape)))
    x = torch.rand(1, 3, 33, 47)
    out = model(x)
    assert out.shape == x.shape
    assert seen["shape"] == (1, 8 * 16, 3, 3)  # 33, 47 padded to 48 -> 48 / 16
    # a size that is already a multiple of 16 is not padded
    assert model(torch.rand(1, 3, 32, 64)).shape == (1, 3, 32, 64) and seen["shape"][2:] == (2, 4)


def test_checkpointing_gives_the_same_outputs_and_gradients() -> None:
    x = torch.rand(1, 3, 16, 20)
    results = []
    for mode in ("never", "always"):
        model = _tiny(activation_checkpointing=mode)
        out = model(x)
        out.square().mean().backward()
        results.append((out.detach(), [p.grad.clone() for p in model.parameters()]))
    (out_a, grads_a), (out_b, grads_b) = results
    torch.testing.assert_close(out_a, out_b)
    for ga, gb in zip(grads_a, grads_b):
        torch.testing.assert_close(ga, gb, atol=1e-6, rtol=1e-4)


def test_auto_checkpointing_only_for_large_images_with_gradients() -> None:
    model = _tiny(checkpoint_above_pixels=24 * 24)
    calls = []
    original = model._run

    def spy(blocks: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        calls.append(model._checkpointing)
        return original(blocks, x)

    model._run = spy
    model(torch.rand(1, 3, 16, 16))  # 16x16 <= 24x24
    model(torch.rand(1, 3, 32, 32))
    with torch.no_grad():
        model(torch.rand(1, 3, 32, 32))
    per_call = len(calls) // 3
    assert set(calls[:per_call]) == {False}
    assert set(calls[per_call : 2 * per_call]) == {True}
    assert set(calls[2 * per_call :]) == {False}


def test_recipe_is_the_official_lol_one() -> None:
    (stage,) = model_info("llformer").recipe.stages
    assert stage.losses == {"smooth_l1": 1.0}
    assert stage.batch_size == 8 and stage.patch_size == 128
    assert stage.optimizer["name"] == "adam" and stage.optimizer["lr"] == 1e-4
    assert stage.scheduler["name"] == "cosine" and stage.scheduler["eta_min"] == 1e-6
    iterations_per_epoch = -(-485 // 8)  # LOL-v1 train pairs, drop_last=False
    assert stage.iterations == 1000 * iterations_per_epoch
    assert stage.scheduler["warmup_iters"] == 3 * iterations_per_epoch
    assert not stage.mixup
