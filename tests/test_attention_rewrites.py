"""The attention blocks that compute the official function with less work (Retinexformer's IG-MSA, SNR-Aware's
masked attention) equal the official formula written out plainly, in eval and with gradients.

The plain formulas below follow the official code's order of operations (RetinexFormer_arch.py IG_MSA;
SNR-Aware's MultiHeadAttention4 with its masked_fill(-1e9) softmax); the modules' weights are random."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lumicap.models.retinexformer import IGMSA
from lumicap.models.snr_aware import SNRMaskedAttention


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def plain_igmsa(m: IGMSA, x: torch.Tensor, light_up: torch.Tensor) -> torch.Tensor:
    b, h, w, c = x.shape
    heads, d = m.num_heads, m.dim_head
    tokens = x.reshape(b, h * w, c)
    q, k, v_inp = (F.linear(tokens, layer.weight) for layer in (m.to_q, m.to_k, m.to_v))

    def split(t):  # (B, N, heads*d) -> (B, heads, d, N)
        return t.reshape(b, h * w, heads, d).permute(0, 2, 3, 1)

    q, k = F.normalize(split(q), dim=-1), F.normalize(split(k), dim=-1)
    v = split(v_inp) * split(light_up.reshape(b, h * w, c))
    attn = (k @ q.transpose(-2, -1) * m.rescale).softmax(dim=-1)
    out = (attn @ v).permute(0, 3, 1, 2).reshape(b, h * w, c)
    out = m.proj(out).view(b, h, w, c)
    position = m.pos_emb(v_inp.reshape(b, h, w, c).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    return out + position


def plain_snr_attention(m: SNRMaskedAttention, x: torch.Tensor, key_keep: torch.Tensor) -> torch.Tensor:
    b, n, _ = x.shape
    normed = m.layer_norm(x)

    def split(layer, d):
        return layer(normed).view(b, n, m.n_head, d).transpose(1, 2)

    q, k, v = split(m.w_qs, m.d_k), split(m.w_ks, m.d_k), split(m.w_vs, m.d_v)
    scores = (q / m.d_k**0.5) @ k.transpose(-2, -1)
    attn = scores.masked_fill(~key_keep, -1e9).softmax(dim=-1)
    return x + m.fc((attn @ v).transpose(1, 2).reshape(b, n, m.n_head * m.d_v))


def _compare(module, plain, inputs, grad_input: int = 0):
    module.eval()
    with torch.inference_mode():
        torch.testing.assert_close(module(*inputs), plain(module, *inputs), rtol=1e-5, atol=2e-6)
    module.train()
    grads = []
    for fn in (module, lambda *a: plain(module, *a)):
        module.zero_grad()
        leaf = inputs[grad_input].clone().requires_grad_()
        args = list(inputs)
        args[grad_input] = leaf
        (fn(*args) * torch.linspace(-1, 1, leaf.shape[-1])).sum().backward()
        grads.append([leaf.grad] + [p.grad.clone() for p in module.parameters()])
    for ours, theirs in zip(*grads):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("batch,heads,size", [(1, 1, (7, 9)), (2, 2, (5, 6)), (1, 1, (91, 97))])  # the last: more tokens than one norm block
def test_igmsa_equals_the_official_formula(batch, heads, size):
    torch.manual_seed(0)
    c = 8 * heads
    module = IGMSA(c, dim_head=8, heads=heads)
    with torch.no_grad():
        module.rescale.uniform_(0.5, 3.0)  # per-head temperatures that differ
        module.proj.bias.uniform_(-0.5, 0.5)
    x = torch.randn(batch, *size, c)
    light_up = torch.randn(batch, *size, c)
    _compare(module, plain_igmsa, (x, light_up))


def test_igmsa_keeps_f_normalize_floor_for_an_all_zero_channel():
    torch.manual_seed(1)
    module = IGMSA(8, dim_head=8, heads=1)
    with torch.no_grad():
        module.to_q.weight[3] = 0  # q channel 3 is zero everywhere: F.normalize divides by eps, not by 0
    x, light_up = torch.randn(1, 4, 5, 8), torch.randn(1, 4, 5, 8)
    module.eval()
    with torch.inference_mode():
        ours = module(x, light_up)
        assert torch.isfinite(ours).all()
        torch.testing.assert_close(ours, plain_igmsa(module, x, light_up), rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("kept", ["some", "none", "all", "mixed"])
def test_snr_attention_over_kept_keys_equals_the_masked_softmax(kept):
    torch.manual_seed(2)
    module = SNRMaskedAttention(n_head=2, d_model=16, d_k=8, d_v=8)
    b, n = 2, 11
    x = torch.randn(b, n, 16)
    keep = {
        "some": torch.rand(b, n) < 0.4,
        "none": torch.zeros(b, n, dtype=torch.bool),
        "all": torch.ones(b, n, dtype=torch.bool),
        "mixed": torch.stack([torch.zeros(n, dtype=torch.bool), torch.arange(n) % 3 == 0]),
    }[kept]
    if kept == "some":
        keep[:, 0] = True  # at least one key per image
    _compare(module, plain_snr_attention, (x, keep[:, None, None, :]))


def test_snr_attention_recorded_on_an_all_masked_example_still_masks_per_input():
    # A trace (ONNX export, torch.jit.trace) keeps the branch its example took: the shortcuts for masked keys
    # must not be recorded, or a graph traced on a dark photo would attend uniformly on every photo after it.
    torch.manual_seed(3)
    module = SNRMaskedAttention(n_head=2, d_model=16, d_k=8, d_v=8).eval()
    x = torch.randn(1, 9, 16)
    none_kept = torch.zeros(1, 1, 1, 9, dtype=torch.bool)
    with torch.no_grad():
        traced = torch.jit.trace(module, (x, none_kept), check_trace=False)
        some_kept = (torch.arange(9) % 2 == 0).view(1, 1, 1, 9)
        torch.testing.assert_close(traced(x, some_kept), plain_snr_attention(module, x, some_kept), rtol=1e-5, atol=2e-6)
        torch.testing.assert_close(traced(x, none_kept), module(x, none_kept), rtol=1e-5, atol=2e-6)


def test_snr_patches_cut_and_put_back_as_official_unfold_and_fold():
    from lumicap.models.snr_aware import SNRAware

    torch.manual_seed(4)
    model = SNRAware(nf=4, n_layers=1, d_inner=16, short_range_RBs=1).eval()
    fea = torch.randn(2, 4, 8, 12).contiguous(memory_format=torch.channels_last)
    snr = torch.rand(2, 1, 8, 12)
    p = model.patch
    tokens = F.unfold(fea, kernel_size=p, stride=p).transpose(1, 2)
    keep = (F.unfold(snr, kernel_size=p, stride=p).mean(dim=1) > model.snr_threshold)[:, None, None, :]
    with torch.no_grad():
        expected = F.fold(model.transformer(tokens, keep).transpose(1, 2), output_size=(8, 12), kernel_size=p, stride=p)
        torch.testing.assert_close(model._long_range(fea, snr), expected, rtol=1e-5, atol=2e-6)


def test_retinexformer_skip_fusion_without_concatenation_equals_the_conv_of_the_concatenation():
    from lumicap.models.retinexformer import _fuse_pair

    torch.manual_seed(5)
    fuse = torch.nn.Conv2d(12, 4, 1, bias=False)
    a = torch.randn(2, 4, 5, 7).contiguous(memory_format=torch.channels_last).requires_grad_()
    b = torch.randn(2, 8, 5, 7).requires_grad_()  # NCHW: read through a copy, the same numbers
    ours = _fuse_pair(fuse, a, b)
    theirs = fuse(torch.cat([a, b], dim=1))
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=2e-6)
    assert ours.is_contiguous(memory_format=torch.channels_last)
    weights = torch.linspace(-1, 1, 7)
    grads = [torch.autograd.grad((out * weights).sum(), (a, b, fuse.weight)) for out in (ours, theirs)]
    for mine, reference in zip(*grads):
        torch.testing.assert_close(mine, reference, rtol=1e-5, atol=1e-5)
