"""The MFR loss on tiny random teachers: zero/positive, where gradients go, the teacher stays frozen,
the terms are what the documentation says (recomputed here from the teacher's public feature methods),
and it runs under autocast and inside a DDP step."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lumicap.teacher import MultimodalFeatureLoss, save_tiny_teacher


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def teacher_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("mfr-teachers")
    return {v: save_tiny_teacher(root / v, v, seed=7) for v in ("mlp", "transformer")}


def images(seed=0, batch=2, height=36, width=52):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(batch, 3, height, width, generator=g) * 0.8 + 0.1
    output = (target + 0.1 * torch.randn(target.shape, generator=g)).clamp(0, 1)
    return output, target


CONFIGS = [
    {"distance": "l1"},
    {"distance": "l2", "gpt_layers": "all"},
    {"distance": "cosine", "gpt_layers": [0, 2]},
    {"caption_conditioned": True, "kl_weight": 1.0, "max_caption_tokens": 6},
    {"preprocess": "tile", "fuse_passes": True},
    {"preprocess": "resize", "normalize": False},
]


@pytest.mark.parametrize("variant", ["mlp", "transformer"])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_zero_for_identical_positive_otherwise_gradient_only_into_output(teacher_dirs, variant, config):
    mfr = MultimodalFeatureLoss.from_pretrained(teacher_dirs[variant], **config)
    output, target = images()
    same = mfr(target.clone(), target)
    assert same.item() == 0.0 and all(v == 0.0 for v in mfr.last_terms.values())

    output.requires_grad_(True)
    target.requires_grad_(True)  # even a target that asks for gradients gets none
    loss = mfr(output, target)
    assert loss.dim() == 0 and loss.item() > 0
    expected = {"mfr_clip", "mfr_prefix", "mfr_gpt"} | ({"mfr_kl"} if config.get("kl_weight") else set())
    assert set(mfr.last_terms) == expected and all(v > 0 for v in mfr.last_terms.values())
    loss.backward()
    assert output.grad is not None and torch.isfinite(output.grad).all() and output.grad.abs().sum() > 0
    assert target.grad is None
    assert all(p.grad is None and not p.requires_grad for p in mfr.parameters())


@pytest.mark.parametrize("preprocess,seen", [("crop", False), ("tile", True), ("resize", True)])
def test_a_change_outside_the_centre_crop_counts_only_where_the_mode_sees_it(teacher_dirs, preprocess, seen):
    """The docstring's promise: with "crop" the left/right bands of a wide image contribute exactly 0."""
    mfr = MultimodalFeatureLoss.from_pretrained(teacher_dirs["mlp"], preprocess=preprocess)
    _, target = images(batch=1, height=36, width=70)  # CLIP size 32: crop keeps columns ~17..52
    output = target.clone()
    output[..., :5] = 1.0 - output[..., :5]  # change only the five leftmost columns
    output.requires_grad_(True)
    loss = mfr(output, target)
    loss.backward()
    if seen:
        assert loss.item() > 0 and output.grad[..., :5].abs().sum() > 0
    else:
        assert loss.item() == 0.0 and output.grad.abs().sum() == 0


def test_teacher_does_not_change_when_the_output_is_optimised(teacher_dirs):
    mfr = MultimodalFeatureLoss.from_pretrained(teacher_dirs["mlp"], caption_conditioned=True, max_caption_tokens=4)
    before = {k: v.clone() for k, v in mfr.state_dict().items()}
    output, target = images(1)
    output = nn.Parameter(output)
    optimizer = torch.optim.Adam([output, *mfr.parameters()], lr=1e-2)  # even if handed to the optimizer
    first = None
    for _ in range(3):
        optimizer.zero_grad()
        loss = mfr(output, target)
        loss.backward()
        optimizer.step()
        first = first if first is not None else loss.item()
    assert mfr(output, target).item() < first, "optimising the output should reduce the loss"
    assert all(torch.equal(before[k], v) for k, v in mfr.state_dict().items())
    mfr.train()
    assert mfr.training and not mfr.teacher.training and all(not m.training for m in mfr.teacher.modules())


def test_identical_samples_contribute_nothing_in_a_mixed_batch(teacher_dirs):
    mfr = MultimodalFeatureLoss.from_pretrained(teacher_dirs["mlp"])
    output, target = images(2)
    mixed_output = torch.cat([target[:1], output[1:]])
    mixed = mfr(mixed_output, target)
    alone = mfr(output[1:], target[1:])
    assert torch.allclose(mixed, alone / 2, rtol=1e-5)


def _l1_rel(out, ref):
    return ((out - ref).abs().flatten(1).mean(1) / ref.abs().flatten(1).mean(1)).mean()


def test_terms_match_their_definition(teacher_dirs):
    mfr = MultimodalFeatureLoss.from_pretrained(teacher_dirs["transformer"], weights=(0.5, 2.0, 3.0), gpt_layers=[0, -1])
    teacher = mfr.teacher
    output, target = images(3)
    loss = mfr(output, target)
    with torch.no_grad():
        clip_o, clip_t = teacher.clip_embedding(output), teacher.clip_embedding(target)
        # The transformer teacher L2-normalises CLIP embeddings before its mapper: that is what is compared.
        unit_o, unit_t = (F.normalize(c, dim=-1) for c in (clip_o, clip_t))
        prefix_o, prefix_t = teacher.prefix_embeddings(clip_o), teacher.prefix_embeddings(clip_t)
        hidden_o, _ = teacher.language_model(prefix_o, all_hidden_states=True)
        hidden_t, _ = teacher.language_model(prefix_t, all_hidden_states=True)
    expected = {
        "mfr_clip": _l1_rel(unit_o, unit_t),
        "mfr_prefix": _l1_rel(prefix_o, prefix_t),
        "mfr_gpt": (_l1_rel(hidden_o[0], hidden_t[0]) + _l1_rel(hidden_o[-1], hidden_t[-1])) / 2,
    }
    terms = mfr.last_terms
    for name, value in expected.items():
        assert terms[name] == pytest.approx(value.item(), rel=1e-4), name
    total = 0.5 * expected["mfr_clip"] + 2.0 * expected["mfr_prefix"] + 3.0 * expected["mfr_gpt"]
    assert loss.item() == pytest.approx(total.item(), rel=1e-4)


def test_l2_and_cosine_definitions(teacher_dirs):
    output, target = images(4)
    l2 = MultimodalFeatureLoss.from_pretrained(teacher_dirs["mlp"], weights=(1, 0, 0), distance="l2")
    cosine = MultimodalFeatureLoss.from_pretrained(teacher_dirs["mlp"], weights=(1, 0, 0), distance="cosine")
    with torch.no_grad():
        o, t = l2.teacher.clip_embedding(output), l2.teacher.clip_embedding(target)
    l2(output, target)
    cosine(output, target)
    expected_l2 = ((o - t).square().mean(1) / t.square().mean(1)).mean()
    expected_cos = (1 - F.cosine_similarity(o, t, dim=-1)).mean()
    assert l2.last_terms == {"mfr_clip": pytest.approx(expected_l2.item(), rel=1e-4)}
    assert cosine.last_terms["mfr_clip"] == pytest.approx(expected_cos.item(), rel=1e-3, abs=1e-7)


def test_caption_conditioned_mode_compares_caption_positions(teacher_dirs):
    plain = MultimodalFeatureLoss.from_pretrained(teacher_dirs["mlp"], weights=(0, 0, 1))
    conditioned = MultimodalFeatureLoss.from_pretrained(
        teacher_dirs["mlp"], weights=(0, 0, 1), caption_conditioned=True, max_caption_tokens=5
    )
    output, target = images(5)
    plain(output, target)
    conditioned(output, target)
    teacher = conditioned.teacher
    assert conditioned.last_captions == teacher.caption(target, max_tokens=5)
    # Recompute: the reference's caption tokens after both prefixes, hidden states over all valid positions.
    with torch.no_grad():
        prefix_o = teacher.prefix_embeddings(teacher.clip_embedding(output))
        prefix_t = teacher.prefix_embeddings(teacher.clip_embedding(target))
        rows = teacher.caption_tokens(target, max_tokens=5)
        per_sample = []
        for i, row in enumerate(rows):
            words = teacher.token_embeddings(torch.tensor([row]))
            (h_o,), _ = teacher.language_model(torch.cat([prefix_o[i : i + 1], words], dim=1))
            (h_t,), _ = teacher.language_model(torch.cat([prefix_t[i : i + 1], words], dim=1))
            per_sample.append((h_o - h_t).abs().mean() / h_t.abs().mean())
    assert conditioned.last_terms["mfr_gpt"] == pytest.approx(torch.stack(per_sample).mean().item(), rel=1e-4)
    assert conditioned.last_terms["mfr_gpt"] != pytest.approx(plain.last_terms["mfr_gpt"], rel=1e-3)


def test_fused_and_separate_passes_agree(teacher_dirs):
    output, target = images(6)
    results = []
    for fuse in (False, True):
        mfr = MultimodalFeatureLoss.from_pretrained(teacher_dirs["transformer"], fuse_passes=fuse, kl_weight=0.5)
        x = output.clone().requires_grad_(True)
        loss = mfr(x, target)
        loss.backward()
        results.append((loss.detach(), x.grad))
    assert torch.allclose(results[0][0], results[1][0], rtol=1e-4)
    assert torch.allclose(results[0][1], results[1][1], rtol=1e-3, atol=1e-7)


def test_runs_under_autocast(teacher_dirs):
    mfr = MultimodalFeatureLoss.from_pretrained(teacher_dirs["mlp"])
    output, target = images(7)
    output.requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = mfr(output, target)
    assert loss.dtype == torch.float32 and torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    assert torch.isfinite(output.grad).all() and output.grad.abs().sum() > 0


def test_one_ddp_training_step_without_wrapping_the_teacher(teacher_dirs, tmp_path):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    mfr = MultimodalFeatureLoss.from_pretrained(teacher_dirs["mlp"])
    frozen = {k: v.clone() for k, v in mfr.state_dict().items()}
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        net = DistributedDataParallel(nn.Conv2d(3, 3, 3, padding=1))
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
        low, high = images(8)
        weight_before = net.module.weight.detach().clone()
        output = torch.sigmoid(net(low))
        loss = F.l1_loss(output, high) + mfr(output, high)
        loss.backward()
        optimizer.step()
    finally:
        dist.destroy_process_group()
    assert not torch.equal(net.module.weight, weight_before)
    assert all(torch.equal(frozen[k], v) for k, v in mfr.state_dict().items())


def test_configuration_errors(teacher_dirs):
    with pytest.raises(ValueError, match="distance"):
        MultimodalFeatureLoss.from_pretrained(teacher_dirs["mlp"], distance="l3")
    with pytest.raises(ValueError, match="out of range"):
        MultimodalFeatureLoss.from_pretrained(teacher_dirs["mlp"], gpt_layers=[5])
    with pytest.raises(ValueError, match="three non-negative"):
        MultimodalFeatureLoss.from_pretrained(teacher_dirs["mlp"], weights=(1, 1))
    mfr = MultimodalFeatureLoss.from_pretrained(teacher_dirs["mlp"], weights=(1, 0, 0))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        mfr(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))
    with pytest.raises(ValueError, match="mfr.to"):
        mfr(torch.rand(1, 3, 8, 8, device="meta"), torch.rand(1, 3, 8, 8, device="meta"))
    output, target = images(9)
    mfr(output, target)
    assert set(mfr.last_terms) == {"mfr_clip"}  # zero-weight terms are not computed
    assert set(mfr.last_term_tensors) == {"mfr_clip"}
