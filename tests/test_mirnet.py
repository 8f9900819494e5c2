"""MIRNet-specific checks (the generic contract is in test_models.py): the official parameter count from
the official layer list, weight sharing as in the official code, the anti-aliased resizing modules,
SKFF and the attention gates, the three streams' shapes, the padding multiple, checkpointing
equivalence and the recipe."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lumicap.models import build_model, count_parameters, model_info
from lumicap.models.mirnet import (
    MIRNet,
    AntiAliasedDownsample,
    ChannelAttention,
    DualAttentionUnit,
    MultiScaleResidualBlock,
    ResidualDownsample,
    ResidualUpsample,
    SelectiveKernelFeatureFusion,
    SpatialAttention,
)


def _tiny(**overrides) -> MIRNet:
    torch.manual_seed(0)
    return MIRNet(**{"n_feat": 8, "n_rrg": 1, "n_mrb": 1, **overrides})


def _official_parameter_count() -> int:
    """Layer-by-layer count of swz30/MIRNet networks/MIRNet_model.py with its defaults, written from the
    official layer list independently of lumicap's modules (all convs bias-free)."""

    def dau(c: int) -> int:  # body convs, spatial 5x5 (2->1), channel squeeze/excite, 1x1 merge
        return 2 * 9 * c * c + 2 * 25 + 2 * c * (c // 8) + 2 * c * c

    def skff(c: int) -> int:
        d = max(c // 8, 4)
        return c * d + 1 + 3 * d * c  # squeeze conv + PReLU, one 1x1 per branch

    def down(c: int) -> int:  # 1x1, PReLU, 3x3, PReLU, blur, 1x1 (c->2c) + blur, 1x1 (c->2c)
        return c * c + 1 + 9 * c * c + 1 + 2 * c * c + 2 * c * c

    def up(c: int) -> int:  # 1x1, PReLU, 3x3 transposed, PReLU, 1x1 (c->c/2) + bilinear, 1x1 (c->c/2)
        return c * c + 1 + 9 * c * c + 1 + c * c // 2 + c * c // 2

    msrb = dau(64) + dau(128) + dau(256)  # one DAU per stream, repeated over the width
    msrb += (down(64) + down(128)) + down(64) + down(128)  # down '64_4', '64_2', '128_2'
    msrb += (up(256) + up(128)) + up(256) + up(128)  # up '256_4', '256_2', '128_2'
    msrb += up(128) + (up(256) + up(128))  # last_up '1', '2'
    msrb += 9 * 64 * 64 + skff(64) + skff(128) + skff(256)
    rrg = 2 * msrb + 9 * 64 * 64
    return 3 * 64 * 9 + 3 * rrg + 64 * 3 * 9 + 1  # + the PReLU all DAUs share


def test_parameter_count_is_official() -> None:
    official = _official_parameter_count()
    assert model_info("mirnet").official_params == official
    assert count_parameters(build_model("mirnet")) == official
    assert abs(official - 31_760_000) / 31_760_000 < 0.001  # published: 31.76M


def test_weight_sharing_follows_the_official_code() -> None:
    model = build_model("mirnet")
    daus = [m for m in model.modules() if isinstance(m, DualAttentionUnit)]
    assert len(daus) == 3 * 2 * 3  # RRGs x MRBs x streams: one DAU per stream, reused across the width
    assert all(d.body[1] is model.dau_activation for d in daus)  # one PReLU for every DAU
    mrb = model.groups[0].blocks[0]
    calls = []
    hook = mrb.dau[1].register_forward_hook(lambda m, i, o: calls.append(tuple(o.shape)))
    with torch.no_grad():
        mrb(torch.rand(1, 64, 16, 16))
    hook.remove()
    assert calls == [(1, 128, 8, 8)] * 2  # the same module serves both columns


def test_anti_aliased_downsample() -> None:
    blur = AntiAliasedDownsample(2)
    flat = torch.full((1, 2, 9, 12), 0.7)
    out = blur(flat)
    assert out.shape == (1, 2, 5, 6)  # ceil(H/2), ceil(W/2)
    torch.testing.assert_close(out, torch.full_like(out, 0.7))  # normalised filter, reflect padding
    # [1,2,1]/4 cancels the highest frequency exactly: an alternating +-1 pattern blurs to 0
    stripes = (torch.arange(12) % 2 * 2 - 1).float().expand(1, 2, 8, 12)
    torch.testing.assert_close(blur(stripes), torch.zeros(1, 2, 4, 6))
    assert not list(blur.parameters())  # a fixed filter, not a parameter


def test_residual_resizing_shapes() -> None:
    x = torch.rand(2, 8, 12, 16)
    assert ResidualDownsample(8)(x).shape == (2, 16, 6, 8)
    assert ResidualUpsample(8)(x).shape == (2, 4, 24, 32)


def test_residual_upsample_skip_path_is_upsample_then_1x1() -> None:
    """The paper's skip path (bilinear x2, then the 1x1 conv, bias on) is computed 1x1 first: the same map."""
    torch.manual_seed(0)
    up = ResidualUpsample(8, bias=True)
    nn.init.normal_(up.skip_conv.bias)
    x = torch.randn(2, 8, 7, 9)
    paper = up.conv_path(x) + up.skip_conv(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
    torch.testing.assert_close(up(x), paper, rtol=1e-5, atol=1e-6)


def test_skff_selects_with_softmax_weights() -> None:
    torch.manual_seed(0)
    skff = SelectiveKernelFeatureFusion(16, branches=3)
    same = torch.randn(2, 16, 5, 5)
    torch.testing.assert_close(skff([same, same, same]), same)  # weights sum to one per channel
    a, b, c = (torch.randn(2, 16, 5, 5) for _ in range(3))
    out = skff([a, b, c])
    lo = torch.minimum(torch.minimum(a, b), c)
    hi = torch.maximum(torch.maximum(a, b), c)
    assert ((out >= lo - 1e-5) & (out <= hi + 1e-5)).all()  # a convex combination of the branches
    assert skff.squeeze[0].out_channels == 4  # max(16 / 8, 4)


def test_attention_gates_scale_between_zero_and_one() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 16, 6, 7)
    for gate in (SpatialAttention(), ChannelAttention(16)):
        out = gate(x)
        ratio = out / x
        assert ((ratio > 0) & (ratio < 1)).all()
    # spatial attention: one weight per position, shared by the channels
    spatial_ratio = SpatialAttention()(x) / x
    torch.testing.assert_close(spatial_ratio, spatial_ratio[:, :1].expand_as(spatial_ratio))
    # channel attention: one weight per channel, shared by the positions
    channel_ratio = ChannelAttention(16)(x) / x
    torch.testing.assert_close(channel_ratio, channel_ratio[..., :1, :1].expand_as(channel_ratio))


def _values_and_gradients(module: nn.Module, run, inputs: list[torch.Tensor]):
    inputs = [t.detach().clone().requires_grad_() for t in inputs]
    out = run(inputs)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    grads = [t.grad for t in inputs] + [p.grad for p in module.parameters()]
    module.zero_grad()
    return out.detach(), grads


def test_dual_attention_unit_equals_the_concatenated_formula_in_train_and_eval() -> None:
    """The training path moves the gates onto the merge's product (no gated copies, no concatenation); it must
    give the paper's x + merge(cat[f * spatial(f), f * channel(f)]) with the same gradients, bias on or off."""
    torch.manual_seed(0)
    for bias in (False, True):
        dau = DualAttentionUnit(16, nn.PReLU(), bias=bias).double()
        if bias:
            nn.init.normal_(dau.merge.bias)
        x = torch.randn(2, 16, 6, 7, dtype=torch.float64)

        def paper(inputs):
            f = dau.body(inputs[0])
            return inputs[0] + F.conv2d(torch.cat([dau.spatial_attention(f), dau.channel_attention(f)], dim=1),
                                        dau.merge.weight, dau.merge.bias)

        got, got_grads = _values_and_gradients(dau, lambda inputs: dau(inputs[0]), [x])
        want, want_grads = _values_and_gradients(dau, paper, [x])
        torch.testing.assert_close(got, want)
        for g, w in zip(got_grads, want_grads):
            torch.testing.assert_close(g, w)
        with torch.no_grad():  # eval: the concatenated form on a channels-last input
            torch.testing.assert_close(dau(x.contiguous(memory_format=torch.channels_last)), want)


def test_skff_equals_the_softmax_weighted_sum_with_gradients() -> None:
    torch.manual_seed(0)
    skff = SelectiveKernelFeatureFusion(16, branches=3).double()
    features = [torch.randn(2, 16, 5, 6, dtype=torch.float64) for _ in range(3)]

    def paper(inputs):
        descriptor = skff.squeeze(sum(inputs).mean(dim=(2, 3), keepdim=True))
        weights = torch.softmax(torch.stack([fc(descriptor) for fc in skff.select]), dim=0)
        return sum(w * f for w, f in zip(weights, inputs))

    got, got_grads = _values_and_gradients(skff, skff, features)
    want, want_grads = _values_and_gradients(skff, paper, features)
    torch.testing.assert_close(got, want)
    for g, w in zip(got_grads, want_grads):
        torch.testing.assert_close(g, w)


def test_multi_scale_residual_block_streams() -> None:
    torch.manual_seed(0)
    mrb = MultiScaleResidualBlock(8, height=3, width=2, activation=nn.PReLU())
    shapes = {}
    for j, dau in enumerate(mrb.dau):
        dau.register_forward_hook(lambda m, i, o, j=j: shapes.update({j: tuple(o.shape)}))
    x = torch.rand(1, 8, 16, 24)
    assert mrb(x).shape == x.shape
    assert shapes == {0: (1, 8, 16, 24), 1: (1, 16, 8, 12), 2: (1, 32, 4, 6)}
    assert sorted(mrb.resample) == ["0_1", "0_2", "1_0", "1_2", "2_0", "2_1"]


def test_pads_to_multiple_of_4_and_crops_back() -> None:
    model = _tiny()
    seen = {}
    model.groups[0].blocks[0].dau[2].register_forward_hook(lambda m, i, o: seen.update(shape=tuple(o.shape)))
    x = torch.rand(1, 3, 37, 45)
    with torch.no_grad():
        out = model(x)
    assert out.shape == x.shape
    assert seen["shape"] == (1, 32, 10, 12)  # 40 x 48 / 4


def test_global_residual() -> None:
    model = _tiny()
    with torch.no_grad():
        model.conv_out.weight.zero_()
        x = torch.rand(1, 3, 12, 16)
        torch.testing.assert_close(model(x), x)


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


def test_recipe_follows_the_official_training_script() -> None:
    (stage,) = model_info("mirnet").recipe.stages
    assert stage.losses == {"charbonnier": 1.0}
    assert stage.batch_size == 16 and stage.patch_size == 128
    assert stage.optimizer["name"] == "adam" and stage.optimizer["lr"] == 2e-4
    assert stage.optimizer["weight_decay"] == 1e-8
    assert stage.scheduler["name"] == "cosine" and stage.scheduler["eta_min"] == 1e-6
    iterations_per_epoch = -(-485 // 16)  # LOL-v1 train pairs, drop_last=False
    assert stage.iterations == 200 * iterations_per_epoch
    assert stage.scheduler["warmup_iters"] == 3 * iterations_per_epoch
    assert stage.mixup
